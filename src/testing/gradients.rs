//! Gradient checks: the hand-written backward passes against central finite
//! differences in `f64`.

use nalgebra::{DMatrix, DVector};

use super::{CheckFailure, Property, broken_gradient, fail, refuse};
use crate::Error;
use crate::bijector::Differentiable;

/// The worst errors seen by [`check_gradients`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GradientReport {
    /// Directions whose backward pass was checked (`"inverse"`, `"forward"`).
    pub directions: Vec<&'static str>,
    /// Directions skipped because the layer does not support their gradient
    /// (the sequential direction of autoregressive layers), with the reason.
    pub skipped: Vec<String>,
    /// Number of parameters checked (per direction).
    pub params: usize,
    /// Worst `|analytic − numerical| / (1 + |numerical|)` over parameter gradients.
    pub max_param_error: f64,
    /// The same over input gradients.
    pub max_input_error: f64,
    /// Problems that are not wrong gradients: a type that implements
    /// `Differentiable` but whose `impl Bijector` leaves out
    /// [`trainable!`](crate::trainable), so that a chain holding it would
    /// not train it.
    pub warnings: Vec<String>,
}

/// Default relative tolerance of [`check_gradients`].
pub const GRADIENT_TOLERANCE: f64 = 1e-6;

/// [`check_gradients_with`] with tolerance [`GRADIENT_TOLERANCE`].
pub fn check_gradients<B: Differentiable<f64> + Clone>(
    b: &B,
    x: &DMatrix<f64>,
) -> Result<GradientReport, CheckFailure> {
    check_gradients_with(b, x, GRADIENT_TOLERANCE)
}

/// Checks both backward passes of `b` against central finite differences.
///
/// A layer conditioned on a context is refused with a failure that names
/// [`check_gradients_given`](super::check_gradients_given), which also checks
/// the gradient with respect to the context.
///
/// For each direction — `forward_and_log_det` at `x`, and
/// `inverse_and_log_det` at `y = forward(x)` (so the input is in the image) —
/// the scalar loss `L = Σ W ⊙ out + Σ w ⊙ log_det` with fixed pseudo-random
/// weights `W`, `w` in `[−1, 1]` is differentiated two ways: by the backward
/// pass, and by Richardson-extrapolated central differences (steps
/// `ε^{1/3}(1 + |θ|)` and half that) in every parameter and every input entry. The relative error
/// `|analytic − numerical| / (1 + |numerical|)` must not exceed `tolerance`.
///
/// Inputs should avoid kinks of the layer (a ReLU conditioner's
/// pre-activations at 0): a difference quotient across a kink measures neither
/// side's derivative. A direction whose backward pass returns
/// [`Error::Unsupported`] is skipped and listed in the report.
///
/// The fused calls ([`Differentiable::inverse_and_log_det_through`] and its
/// forward twin) are checked too: with the same cotangents they must pass
/// the same values to their continuation and return the same gradients as
/// the separate value and backward calls (relative 1e-10).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use normflow::testing::check_gradients;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cfg = ConditionerConfig { hidden: 8, activation: Activation::Tanh, identity_init: false, ..Default::default() };
/// let layer = AffineCoupling::<f64>::new(CouplingMask::half(3, false)?, &cfg, &mut rng)?;
/// let x = DMatrix::from_fn(3, 4, |i, j| (i as f64 - 1.0) * 0.7 + j as f64 * 0.2);
/// let report = check_gradients(&layer, &x).unwrap();
/// assert_eq!(report.directions, ["forward", "inverse"]);
/// assert!(report.max_param_error < 1e-6);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn check_gradients_with<B: Differentiable<f64> + Clone>(
    b: &B,
    x: &DMatrix<f64>,
    tolerance: f64,
) -> Result<GradientReport, CheckFailure> {
    if b.context_dim() > 0 {
        return Err(refuse(
            Property::Input,
            format!(
                "the bijector is conditioned on a context of dimension {}: check it with \
                 check_gradients_given (the gradients in the context too), for instance at \
                 probe_contexts({}, n)",
                b.context_dim(),
                b.context_dim()
            ),
        ));
    }
    let mut report = GradientReport {
        params: b.num_params(),
        ..GradientReport::default()
    };
    if b.as_differentiable().is_none() {
        report.warnings.push(format!(
            "`{}` implements Differentiable, but its `impl Bijector` does not say so: a Chain, \
             Invert or Box<dyn Bijector> holding it would not train it; add \
             `normflow::trainable!(f64);` (`trainable!(T);` in a generic impl) to it",
            std::any::type_name::<B>()
        ));
    }
    let y = b.forward(x);
    for (name, input) in [("forward", x), ("inverse", &y)] {
        let forward = name == "forward";
        let (d, n) = input.shape();
        let w_out =
            weights(d * n, 17 + d as u64).reshape_generic(nalgebra::Dyn(d), nalgebra::Dyn(n));
        let w_ld = weights(n, 29 + n as u64);
        let loss = |layer: &B, inp: &DMatrix<f64>| -> f64 {
            let (out, ld) = if forward {
                layer.forward_and_log_det(inp)
            } else {
                layer.inverse_and_log_det(inp)
            };
            out.component_mul(&w_out).sum() + ld.dot(&w_ld)
        };
        let mut grad_params = vec![0.0; b.num_params()];
        let grad_in = if forward {
            b.forward_and_log_det_backward(input, &w_out, &w_ld, &mut grad_params)
        } else {
            b.inverse_and_log_det_backward(input, &w_out, &w_ld, &mut grad_params)
        };
        let grad_in = match grad_in {
            Ok(g) => g,
            Err(e @ Error::Unsupported { .. }) => {
                report.skipped.push(format!("{name}: {e}"));
                continue;
            }
            Err(e) => {
                return Err(broken_gradient(
                    tolerance,
                    format!("{name} backward pass failed: {e}"),
                ));
            }
        };
        if grad_in.shape() != input.shape() || grad_params.iter().any(|g| !g.is_finite()) {
            return Err(broken_gradient(
                tolerance,
                format!(
                    "{name} backward pass returned a gradient of the wrong shape or a non-finite value"
                ),
            ));
        }
        // The fused call (value, continuation, backward in one) must agree
        // with the separate value and backward calls.
        if let Some(msg) =
            fused_disagreement(b, input, forward, &w_out, &w_ld, &grad_in, &grad_params)
        {
            return Err(broken_gradient(tolerance, format!("{name} pass: {msg}")));
        }
        // Parameters.
        let theta = b.params_to_vec();
        let mut work = b.clone();
        for k in 0..theta.len() {
            let num = richardson(theta[k], |v| {
                let mut p = theta.clone();
                p[k] = v;
                set(&mut work, &p);
                loss(&work, input)
            });
            let e = rel(grad_params[k], num);
            report.max_param_error = report.max_param_error.max(e);
            if e.is_nan() || e > tolerance {
                return Err(fail(
                    Property::Gradient,
                    None,
                    Some(k),
                    num,
                    grad_params[k],
                    e,
                    tolerance,
                    format!("{name} pass: gradient of parameter {k}"),
                ));
            }
        }
        set(&mut work, &theta);
        // Inputs.
        for s in 0..n {
            for i in 0..d {
                let num = richardson(input[(i, s)], |v| {
                    let mut moved = input.clone();
                    moved[(i, s)] = v;
                    loss(b, &moved)
                });
                let e = rel(grad_in[(i, s)], num);
                report.max_input_error = report.max_input_error.max(e);
                if e.is_nan() || e > tolerance {
                    return Err(fail(
                        Property::Gradient,
                        Some(s),
                        Some(i),
                        num,
                        grad_in[(i, s)],
                        e,
                        tolerance,
                        format!("{name} pass: gradient of the input"),
                    ));
                }
            }
        }
        report.directions.push(name);
    }
    Ok(report)
}

/// Runs the fused `*_through` call of one direction with a continuation that
/// returns the loss weights as cotangents, and compares what the continuation
/// saw and what the call returned against the separate calls. Returns a
/// description of the first disagreement (relative 1e-10).
#[allow(clippy::too_many_arguments)]
fn fused_disagreement<B: Differentiable<f64>>(
    b: &B,
    input: &DMatrix<f64>,
    forward: bool,
    w_out: &DMatrix<f64>,
    w_ld: &DVector<f64>,
    grad_in: &DMatrix<f64>,
    grad_params: &[f64],
) -> Option<String> {
    const TOL: f64 = 1e-10;
    let (out, ld) = if forward {
        b.forward_and_log_det(input)
    } else {
        b.inverse_and_log_det(input)
    };
    let mut seen = None;
    let mut rest = |z: &DMatrix<f64>, l: &DVector<f64>| {
        seen = Some((z.clone(), l.clone()));
        Ok((w_out.clone(), w_ld.clone()))
    };
    let mut fused_params = vec![0.0; grad_params.len()];
    let fused = if forward {
        b.forward_and_log_det_through(input, &mut fused_params, &mut rest)
    } else {
        b.inverse_and_log_det_through(input, &mut fused_params, &mut rest)
    };
    let fused = match fused {
        Ok(g) => g,
        Err(e) => return Some(format!("the fused call failed: {e}")),
    };
    let Some((z, l)) = seen else {
        return Some("the fused call never ran its continuation".into());
    };
    let close = |a: f64, b: f64| (a - b).abs() <= TOL * (1.0 + b.abs());
    if z.shape() != out.shape() || z.iter().zip(out.iter()).any(|(a, b)| !close(*a, *b)) {
        return Some("the fused call passed a different output to its continuation".into());
    }
    if l.len() != ld.len() || l.iter().zip(ld.iter()).any(|(a, b)| !close(*a, *b)) {
        return Some("the fused call passed a different log-det to its continuation".into());
    }
    if fused.shape() != grad_in.shape()
        || fused
            .iter()
            .zip(grad_in.iter())
            .any(|(a, b)| !close(*a, *b))
    {
        return Some("the fused call's input gradient differs from the backward pass".into());
    }
    if let Some(k) = (0..grad_params.len()).find(|&k| !close(fused_params[k], grad_params[k])) {
        return Some(format!(
            "the fused call's gradient of parameter {k} ({}) differs from the backward pass ({})",
            fused_params[k], grad_params[k]
        ));
    }
    None
}

/// `d/dv f(v)` at `v` by central differences `D(h)` with `h = ε^{1/3}(1 + |v|)`,
/// combined with `D(h/2)` by one Richardson step, `(4 D(h/2) − D(h)) / 3`,
/// which cancels the `O(h²)` error (maps with strong curvature such as
/// `atanh` near ±1 need it).
fn richardson(v: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    let h = f64::EPSILON.cbrt() * (1.0 + v.abs());
    let mut quotient = |h: f64| {
        let (a, b) = (v + h, v - h);
        (f(a) - f(b)) / (a - b)
    };
    let d1 = quotient(h);
    let d2 = quotient(h / 2.0);
    (4.0 * d2 - d1) / 3.0
}

fn set<B: Differentiable<f64>>(b: &mut B, p: &[f64]) {
    b.set_params(p)
        .expect("the parameter vector has the layer's length");
}

fn rel(analytic: f64, numerical: f64) -> f64 {
    (analytic - numerical).abs() / (1.0 + numerical.abs())
}

/// Deterministic weights in `[−1, 1]` (a linear congruential sequence).
fn weights(n: usize, seed: u64) -> DVector<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    DVector::from_fn(n, |_, _| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}
