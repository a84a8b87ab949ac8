//! `normflow bench`: time one operation of a flow.
//!
//! The flow is built from its spec (with its initial parameters) in a
//! [`FlowModel`] over a standard normal; the input is a fixed `D × B` batch of
//! standard-normal values. After the warm-up calls, each timed call is
//! measured on its own, and the report gives the median, minimum and maximum
//! seconds per call and `B / median` samples per second.

use std::hint::black_box;
use std::time::Instant;

use clap::ValueEnum;
use nalgebra::DMatrix;
use normflow::Real;
use normflow::bijector::DataStage;
use normflow::prelude::*;
use normflow::spec::FlowLayer;
use normflow::train::{Adam, FlowModel, Optimizer, TrainableDensity};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::Dtype;
use crate::outln;

/// The operation to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// `log_prob` of the batch (the density direction).
    LogProb,
    /// Draw a batch of samples (the sampling direction).
    Sample,
    /// One maximum-likelihood step: mean log-density and its parameter
    /// gradient, then an Adam update.
    TrainStep,
    /// The bare matrix products of the flow's MADE layers (`W·X` for every
    /// dense layer of every `maf`, on a batch of `B` columns), with the same
    /// kernel and nothing else: the gemm bound of `log-prob`.
    Gemm,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::LogProb => "log-prob",
            Op::Sample => "sample",
            Op::TrainStep => "train-step",
            Op::Gemm => "gemm",
        }
    }
}

/// What to time, from the command line.
pub struct BenchArgs {
    /// The flow, in the DSL.
    pub flow: String,
    /// Data dimension.
    pub dim: usize,
    /// Samples per call.
    pub batch: usize,
    /// The operation.
    pub op: Op,
    /// Arithmetic precision.
    pub dtype: Dtype,
    /// Timed calls.
    pub repeat: usize,
    /// Untimed calls first.
    pub warmup: usize,
    /// Seed of the parameters and the data.
    pub seed: u64,
    /// One JSON object on stdout instead of a sentence.
    pub json: bool,
}

/// The most timed (or warm-up) calls one run makes.
pub const MAX_CALLS: usize = 1_000_000;

/// Runs the benchmark and prints its result.
pub fn run(args: &BenchArgs) -> crate::Result<()> {
    let spec = FlowSpec::parse(&args.flow).map_err(|e| format!("invalid --flow:\n{e}"))?;
    for (name, v) in [
        ("--dim", args.dim),
        ("--batch", args.batch),
        ("--repeat", args.repeat),
    ] {
        if v == 0 {
            return Err(format!("{name} must be at least 1"));
        }
    }
    for (name, v) in [("--repeat", args.repeat), ("--warmup", args.warmup)] {
        if v > MAX_CALLS {
            return Err(format!("{name} {v} is over the limit of {MAX_CALLS} calls"));
        }
    }
    let Timing { times, flops, kept } = match args.dtype {
        Dtype::F32 => time::<f32>(&spec, args)?,
        Dtype::F64 => time::<f64>(&spec, args)?,
    };
    let stats = Stats::of(times);
    let per_s = args.batch as f64 / stats.median;
    let dtype = match args.dtype {
        Dtype::F32 => "f32",
        Dtype::F64 => "f64",
    };
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "op": args.op.name(),
                "flow": spec.to_string(),
                "dim": args.dim,
                "batch": args.batch,
                "dtype": dtype,
                "repeat": args.repeat,
                "warmup": args.warmup,
                "median_s": stats.median,
                "min_s": stats.min,
                "max_s": stats.max,
                "samples_per_s": per_s,
                "gemm_flops": flops,
                "gflop_per_s": flops.map(|f| f / stats.median / 1e9),
                "kept_flops": kept,
                "kept_gflop_per_s": kept.map(|f| f / stats.median / 1e9),
                "kernels": normflow::nn::dense_kernels(),
            })
        );
    } else {
        outln!(
            "{} of `{spec}`, D = {}, batch {}, {dtype}: median {} (min {}, max {}) over {} calls, {} samples/s ({})",
            args.op.name(),
            args.dim,
            args.batch,
            seconds(stats.median),
            seconds(stats.min),
            seconds(stats.max),
            args.repeat,
            rate(per_s),
            normflow::nn::dense_kernels(),
        );
        if let Some(f) = flops {
            outln!("{:.2} GFLOP/s", f / stats.median / 1e9);
        }
        if let Some(f) = kept {
            outln!(
                "{:.2} GFLOP/s of the multiply-adds the masks keep",
                f / stats.median / 1e9
            );
        }
    }
    Ok(())
}

/// What [`time`] measured.
struct Timing {
    /// The timed calls, in seconds.
    times: Vec<f64>,
    /// For `gemm`: the floating-point operations of one call.
    flops: Option<f64>,
    /// For `log-prob` and `gemm` of a flow with `maf` layers: those of one
    /// call's products that the masks keep (see [`kept_flops`]).
    kept: Option<f64>,
}

/// Builds the model and times `args.warmup + args.repeat` calls.
fn time<T: Real>(spec: &FlowSpec, args: &BenchArgs) -> crate::Result<Timing> {
    crate::models::check_training_memory(spec, args.dim, 0, args.batch, std::mem::size_of::<T>())?;
    let mut model = FlowModel::<T>::new(spec, args.dim, args.seed).map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5EED);
    let x = DMatrix::from_fn(args.dim, args.batch, |_, _| {
        let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
        T::lit(z)
    });
    let mut flops = None;
    let kept = matches!(args.op, Op::LogProb | Op::Gemm)
        .then(|| kept_flops(&model, args.batch))
        .flatten();
    let mut call: Box<dyn FnMut() -> crate::Result<()> + '_> = match args.op {
        Op::Gemm => {
            let products = dense_products::<T>(&model, args.batch, &mut rng)?;
            flops = Some(
                products
                    .iter()
                    .map(|(w, x, _)| 2.0 * (w.nrows() * w.ncols() * x.ncols()) as f64)
                    .sum(),
            );
            let mut products = products;
            Box::new(move || {
                for (w, x, z) in products.iter_mut() {
                    normflow::nn::matmul(w, x, z);
                }
                black_box(&products);
                Ok(())
            })
        }
        Op::LogProb => Box::new(|| {
            black_box(model.log_prob(black_box(&x)));
            Ok(())
        }),
        Op::Sample => Box::new(|| {
            black_box(model.sample(args.batch, &mut rng));
            Ok(())
        }),
        Op::TrainStep => {
            // As `fit` does: data-dependent initialisation, training mode,
            // then each step ascends the mean log-density with Adam.
            model.prepare_with_data(&x, DataStage::Initialize);
            model.set_training(true);
            let mut grad = vec![T::zero(); model.num_params()];
            let mut adam = Adam::new(1e-3);
            Box::new(move || {
                grad.iter_mut().for_each(|g| *g = T::zero());
                let mean = model
                    .mean_log_prob_and_grad(black_box(&x), &mut grad)
                    .map_err(|e| e.to_string())?;
                black_box(mean);
                grad.iter_mut().for_each(|g| *g = -*g);
                // In place, as `fit` does.
                adam.step_params(&mut model, &grad, adam.learning_rate);
                Ok(())
            })
        }
    };
    for _ in 0..args.warmup {
        call()?;
    }
    let mut times = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let start = Instant::now();
        call()?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(Timing { times, flops, kept })
}

/// The floating-point operations of one call's products that the masks of
/// the flow's `maf` layers keep (2 per kept weight and sample), or `None`
/// without `maf` layers: what a product that skips every masked
/// multiply-add would do.
fn kept_flops<T: Real>(model: &FlowModel<T>, batch: usize) -> Option<f64> {
    let mut kept = 0usize;
    for layer in model.flow().layers() {
        if let FlowLayer::Maf(maf) = layer {
            for m in maf.made().masks() {
                kept += m.iter().filter(|v| **v != T::zero()).count();
            }
        }
    }
    (kept > 0).then_some(2.0 * kept as f64 * batch as f64)
}

/// For every dense layer of every `maf` layer's MADE: its weights (`out × in`),
/// a random `in × B` input and an `out × B` output buffer.
#[allow(clippy::type_complexity)]
fn dense_products<T: Real>(
    model: &FlowModel<T>,
    batch: usize,
    rng: &mut StdRng,
) -> crate::Result<Vec<(DMatrix<T>, DMatrix<T>, DMatrix<T>)>> {
    let mut out = Vec::new();
    for layer in model.flow().layers() {
        if let FlowLayer::Maf(maf) = layer {
            let net = maf.made().net();
            for l in 0..net.num_layers() {
                let w = net.layer(l).0.clone_owned();
                let x = DMatrix::from_fn(w.ncols(), batch, |_, _| {
                    let z: f64 =
                        rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut *rng);
                    T::lit(z)
                });
                let z = DMatrix::zeros(w.nrows(), batch);
                out.push((w, x, z));
            }
        }
    }
    if out.is_empty() {
        return Err("--op gemm times the dense layers of `maf` layers; this flow has none".into());
    }
    Ok(out)
}

/// Median, minimum and maximum of a non-empty list of times.
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(mut t: Vec<f64>) -> Stats {
        t.sort_by(f64::total_cmp);
        let n = t.len();
        let median = if n % 2 == 1 {
            t[n / 2]
        } else {
            0.5 * (t[n / 2 - 1] + t[n / 2])
        };
        // A call faster than the clock's resolution still gets a positive time.
        let floor = 1e-9;
        Stats {
            median: median.max(floor),
            min: t[0].max(floor),
            max: t[n - 1].max(floor),
        }
    }
}

/// Seconds in a readable unit.
fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// A rate in a readable unit.
fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Stats::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stats::of(vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }
}
