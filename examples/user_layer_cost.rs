//! What a user layer costs against a built-in of the same shape: a training
//! step (log-density and its gradient) of `sinh_arcsinh` (two parameters per
//! coordinate, gradients by dual numbers) against `actnorm` (two parameters
//! per coordinate, hand-written backward pass), and of `user_affine` (the
//! map of `actnorm` written as a user layer, which isolates what the dual
//! numbers cost), same data, same process.
//!
//! `cargo run --release --example user_layer_cost`

use std::time::Instant;

use nalgebra::DMatrix;
use normflow::autodiff::Scalar;
use normflow::bijector::ScalarBijector;
use normflow::spec::register_layer;
use normflow::train::{FlowModel, TrainableDensity};
use normflow::{Distribution, FlowSpec, Parameters, StandardNormal};
use rand::SeedableRng;

/// `y = sinh((asinh x + skew)·exp(log_tail))` (TFP's SinhArcsinh).
#[derive(Debug, Clone, Default)]
struct SinhArcsinh;

impl ScalarBijector for SinhArcsinh {
    const NAME: &'static str = "sinh_arcsinh";
    const PARAMS: &'static [&'static str] = &["skew", "log_tail"];
    fn forward<S: Scalar>(&self, x: S, p: &[S]) -> S {
        ((x.asinh() + p[0]) * p[1].exp()).sinh()
    }
    fn inverse(&self, y: f64, p: &[f64]) -> f64 {
        (y.asinh() * (-p[1]).exp() - p[0]).sinh()
    }
    fn log_derivative<S: Scalar>(&self, x: S, p: &[S]) -> S {
        let u = ((x.asinh() + p[0]) * p[1].exp()).abs();
        u + (u * -2.0).exp().ln_1p() - std::f64::consts::LN_2 + p[1] - (x * x).ln_1p() * 0.5
    }
}

/// `y = x·exp(log_scale) + shift`: the map of `actnorm`, as a user layer.
#[derive(Debug, Clone, Default)]
struct UserAffine;

impl ScalarBijector for UserAffine {
    const NAME: &'static str = "user_affine";
    const PARAMS: &'static [&'static str] = &["log_scale", "shift"];
    fn forward<S: Scalar>(&self, x: S, p: &[S]) -> S {
        x * p[0].exp() + p[1]
    }
    fn inverse(&self, y: f64, p: &[f64]) -> f64 {
        (y - p[1]) * (-p[0]).exp()
    }
    fn log_derivative<S: Scalar>(&self, _x: S, p: &[S]) -> S {
        p[0]
    }
}

/// Median seconds of one call of `step` over `rounds` rounds of `reps` calls.
fn time(rounds: usize, reps: usize, mut step: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..reps {
                step();
            }
            s.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[rounds / 2]
}

fn main() -> Result<(), normflow::Error> {
    register_layer::<SinhArcsinh>()?;
    register_layer::<UserAffine>()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    println!("| D | batch | layer | train step | log-prob |");
    println!("|---|---|---|---|---|");
    for (d, n) in [(2, 256), (8, 256), (64, 256)] {
        let x: DMatrix<f64> = StandardNormal::new(d)?.sample(n, &mut rng);
        let mut per = Vec::new();
        for name in ["actnorm", "user_affine", "sinh_arcsinh"] {
            let model = FlowModel::<f64>::new(&FlowSpec::parse(name)?, d, 0)?;
            let mut grad = vec![0.0; model.num_params()];
            let train = time(7, 200, || {
                model.mean_log_prob_and_grad(&x, &mut grad).unwrap();
            });
            let eval = time(7, 200, || {
                std::hint::black_box(model.log_prob(&x));
            });
            println!(
                "| {d} | {n} | {name} | {:.1} µs | {:.1} µs |",
                train * 1e6,
                eval * 1e6
            );
            per.push((train, eval));
        }
        for (i, name) in [(1, "user_affine"), (2, "sinh_arcsinh")] {
            println!(
                "| {d} | {n} | {name} / actnorm | {:.1}× | {:.1}× |",
                per[i].0 / per[0].0,
                per[i].1 / per[0].1
            );
        }
    }
    Ok(())
}
