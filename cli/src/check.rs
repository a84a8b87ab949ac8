//! `normflow check`: the verification kit on a flow with random parameters.

use nalgebra::DMatrix;

use normflow::prelude::*;
use normflow::testing::{check_bijector, check_gradients_with};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::outln;

/// The largest dimension `check` takes: its numerical Jacobians are
/// `D × D` per test point, and their cost grows as `D³`.
pub const MAX_DIM: usize = 256;

/// `normflow check`: random parameters, random inputs, every property.
pub fn run(flow: &str, dim: usize, seed: u64) -> crate::Result<()> {
    if dim > MAX_DIM {
        return Err(format!(
            "--dim {dim} is over the limit of {MAX_DIM}: the check differentiates numerically, a {dim} × {dim} Jacobian per test point"
        ));
    }
    let spec = FlowSpec::parse(flow).map_err(|e| format!("invalid --flow:\n{e}"))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut built = spec
        .build::<f64>(dim, &mut rng)
        .map_err(|e| e.to_string())?;
    // Random parameters: the built ones plus N(0, 0.1²) noise, so that
    // identity-initialised layers are checked away from the identity.
    let noisy: Vec<f64> = built
        .params_to_vec()
        .iter()
        .map(|p| {
            let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            p + 0.1 * z
        })
        .collect();
    built.set_params(&noisy).map_err(|e| e.to_string())?;
    let x = DMatrix::from_fn(dim, 16, |_, _| {
        let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
        z
    });
    // Elementwise maps onto bounded sets need inputs in their domain: the
    // forward direction takes any point, so check at x.
    let mut failed = false;
    outln!(
        "flow `{spec}` in {dim} dimensions, {} parameters, 16 random points",
        built.num_params()
    );
    outln!("{:<40} {:>12}", "property", "worst error");
    match check_bijector(&built, &x) {
        Ok(r) => {
            for (name, v) in [
                ("round trip inverse(forward(x)) = x", r.max_round_trip_error),
                (
                    "round trip forward(inverse(y)) = y",
                    r.max_reverse_round_trip_error,
                ),
                ("log-det vs numerical Jacobian", r.max_log_det_error),
                (
                    "inverse log-det = -forward log-det",
                    r.max_inverse_log_det_error,
                ),
                ("fused calls vs separate calls", r.max_fused_error),
            ] {
                outln!("{name:<40} {v:>12.3e}");
            }
        }
        Err(f) => {
            failed = true;
            outln!("FAILED: {f}");
        }
    }
    // Gradients against finite differences at 1e-4 relative: a ReLU
    // conditioner's kinks limit what a difference quotient can resolve (the
    // library's own tests use smooth activations at 1e-6).
    match check_gradients_with(&built, &x, 1e-4) {
        Ok(r) => {
            outln!(
                "{:<40} {:>12.3e}",
                "parameter gradients vs differences",
                r.max_param_error
            );
            outln!(
                "{:<40} {:>12.3e}",
                "input gradients vs differences",
                r.max_input_error
            );
            for s in &r.skipped {
                outln!("skipped: {s}");
            }
        }
        Err(f) => {
            failed = true;
            outln!("FAILED: {f}");
        }
    }
    if failed {
        Err("the verification kit found a failing property".into())
    } else {
        Ok(())
    }
}
