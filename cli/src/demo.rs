//! `normflow demo`: fit a neural spline flow to two moons and draw it.
//!
//! Writes `model.json`, `density.png` (the learned density with test points
//! over it), `samples.png` (test data beside model samples) and `loss.png`
//! (training and validation NLL per epoch) into a folder, and prints the
//! test log-likelihood.

use std::path::Path;
use std::time::Instant;

use nalgebra::DMatrix;
use normflow::data::{two_moons, two_moons_log_density};
use normflow::prelude::*;
use normflow::train::{FitOptions, FlowModel, Schedule, Validation, fit_with_observer};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::fit::Outcome;
use crate::output::Output;
use crate::plot::{self, Size};
use crate::progress::FitProgress;
use crate::{errln, outln};

/// The flow: six rational-quadratic spline couplings (alternating halves).
pub const SPEC: &str = "spline_coupling(6, hidden = 64, bins = 8)";
/// Default number of epochs (about half a minute on two cores in release mode).
pub const EPOCHS: usize = 60;
/// Noise of the two-moons data (standard deviation).
const NOISE: f64 = 0.05;
/// Sizes of the training, validation and test sets.
const N_TRAIN: usize = 10_000;
const N_VALID: usize = 2_000;
const N_TEST: usize = 5_000;
/// Samples per step and Adam's initial learning rate (cosine-decayed to 0).
const BATCH: usize = 256;
const LEARNING_RATE: f64 = 3e-3;
/// Model samples drawn for `samples.png`.
const N_SAMPLES: usize = 2_000;

/// Runs the demo into `out`.
pub fn run(out: &Path, force: bool, seed: u64, epochs: usize) -> crate::Result<Outcome> {
    if epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    prepare_folder(out, force)?;
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let train = two_moons(N_TRAIN, NOISE, &mut rng);
    let valid = two_moons(N_VALID, NOISE, &mut rng);
    let test = two_moons(N_TEST, NOISE, &mut rng);

    let spec = FlowSpec::parse(SPEC).expect("the demo's spec parses");
    errln!(
        "fitting `{spec}` to two moons (noise {NOISE}): {N_TRAIN} training, {N_VALID} validation, {N_TEST} test points, {epochs} epochs"
    );
    // f32 trains about 1.4 times faster than f64 here and is as accurate.
    let mut model = FlowModel::<f32>::new(&spec, 2, seed).map_err(|e| e.to_string())?;
    let to_f32 = |m: &DMatrix<f64>| m.map(|v| v as f32);
    let batches = N_TRAIN.div_ceil(BATCH) as u64;
    let options = FitOptions {
        epochs,
        batch_size: BATCH,
        learning_rate: LEARNING_RATE,
        schedule: Schedule::Cosine {
            total_steps: epochs as u64 * batches,
            min_factor: 0.0,
        },
        seed,
        validation: Validation::Data(to_f32(&valid)),
        standardize: true,
        ..Default::default()
    };
    let mut progress = FitProgress::new(epochs);
    let report = fit_with_observer(&mut model, &to_f32(&train), &options, &mut |e| {
        progress.observe(e)
    })
    .map_err(|e| e.to_string())?;
    progress.finish();
    if report.history.is_empty() {
        return Err("interrupted before the first epoch ended; nothing was written".into());
    }
    let fit_s = start.elapsed().as_secs_f64();

    // Evaluated and saved in f64, like `fit`.
    let model = FlowModel::<f64>::from_json(&model.to_json()).map_err(|e| e.to_string())?;
    let lp = model.log_prob(&test);
    let (mean, se) = mean_and_se(lp.iter().copied());
    let (truth, _) = mean_and_se(two_moons_log_density(&test, N_TEST, NOISE).into_iter());

    let path = |name: &str| -> crate::Result<Output> { Output::check(&out.join(name), force, &[]) };
    let written = [
        path("model.json")?,
        path("density.png")?,
        path("samples.png")?,
        path("loss.png")?,
    ];
    written[0].write_bytes(model.to_json().as_bytes())?;
    plot::density_png(
        &written[1],
        &model,
        Some(&test),
        Size {
            width: 600,
            height: 500,
        },
        "learned density, test points in white",
    )?;
    let samples = model.sample(N_SAMPLES, &mut StdRng::seed_from_u64(seed ^ 0xD3_40));
    plot::samples_png(
        &written[2],
        &test,
        &samples,
        Size {
            width: 900,
            height: 450,
        },
        "two moons: test data and model samples",
    )?;
    plot::loss_png(
        &written[3],
        &report.history,
        Size {
            width: 600,
            height: 400,
        },
        "negative log-likelihood per epoch",
    )?;

    if report.interrupted {
        outln!("stopped by Ctrl-C after {} epochs", report.history.len());
    }
    outln!(
        "flow `{spec}`, {} epochs ({:.1} s){}",
        report.history.len(),
        fit_s,
        report
            .best_valid_nll
            .filter(|v| v.is_finite())
            .map(|v| format!(
                ", best validation NLL {v:.4} at epoch {}",
                report.best_epoch
            ))
            .unwrap_or_default()
    );
    if lp.iter().all(|v| v.is_finite()) {
        outln!(
            "test log-likelihood: {mean:.4} ± {se:.4} nats per point (mean ± standard error, {N_TEST} points); the generating density scores {truth:.4}"
        );
    } else {
        let mut summary = crate::eval::Summary::default();
        summary.add(lp.as_slice());
        outln!("test {}", summary.sentence());
    }
    outln!("wrote:");
    for p in &written {
        outln!("  {}", p.path().display());
    }
    outln!("wall time {:.1} s", start.elapsed().as_secs_f64());
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
}

/// Creates `out` if missing; refuses a non-empty folder without `force`.
pub fn prepare_folder(out: &Path, force: bool) -> crate::Result<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(format!("{} exists and is not a folder", out.display()));
        }
        let mut entries = std::fs::read_dir(out)
            .map_err(|e| format!("{}: cannot read the folder: {e}", out.display()))?;
        if entries.next().is_some() && !force {
            return Err(format!(
                "{} is not empty; pass --force to write into it (files of the same names are replaced)",
                out.display()
            ));
        }
        Ok(())
    } else {
        std::fs::create_dir_all(out)
            .map_err(|e| format!("{}: cannot create the folder: {e}", out.display()))
    }
}

/// Mean and standard error of the mean (0 and 0 for no values).
pub fn mean_and_se(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = v.collect();
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}
