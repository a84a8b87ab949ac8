//! Checks of bijectors under contexts (`x ↦ f(x; c)`): every property of the
//! kit at fixed contexts, plus the gradient with respect to the context.

use nalgebra::DMatrix;

use super::{
    CheckFailure, CheckReport, GRADIENT_TOLERANCE, GradientReport, Tolerances, check_gradients_with,
};
use crate::Real;
use crate::bijector::{Bijector, Differentiable};
use crate::conditional::{JointBijector, stack_context};

/// [`check_bijector_given_with`] with the default tolerances of `T`.
pub fn check_bijector_given<T: Real, B: Bijector<T>>(
    b: &B,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> Result<CheckReport, CheckFailure> {
    check_bijector_given_with(b, x, c, &Tolerances::for_type::<T>())
}

/// The former name of [`check_bijector_given`].
#[deprecated(note = "use check_bijector_given")]
pub fn check_conditional_bijector<T: Real, B: Bijector<T>>(
    b: &B,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> Result<CheckReport, CheckFailure> {
    check_bijector_given(b, x, c)
}

/// Checks the bijector contract of `x ↦ f(x; c_j)` at every column `j` of `x`
/// with its own context column `c_j`: finite outputs, both round trips, the
/// forward log-determinant against `log|det|` of the numerical Jacobian in
/// `x`, the inverse log-determinant against minus the forward one, and the
/// fused calls against the separate ones.
///
/// It runs [`check_bijector_with`] on the [`JointBijector`]
/// `[x; c] ↦ [f(x; c); c]`, whose Jacobian is block triangular with an
/// identity block for `c`, so its log-determinant is that of `∂f/∂x`. In a
/// failure, coordinates `≥ D` are context rows.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use normflow::testing::check_bijector_given;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cfg = ConditionerConfig { hidden: 8, activation: Activation::Tanh, identity_init: false, ..Default::default() };
/// let layer = SplineCoupling::<f64>::conditional(CouplingMask::half(3, false)?, 2, 6, 3.0, &cfg, &mut rng)?;
/// let x = DMatrix::from_fn(3, 4, |i, j| (i as f64 - 1.0) * 0.8 + j as f64 * 0.3);
/// let c = DMatrix::from_fn(2, 4, |i, j| (i + 2 * j) as f64 * 0.25 - 1.0);
/// let report = check_bijector_given(&layer, &x, &c).unwrap();
/// assert!(report.max_log_det_error < 1e-6);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn check_bijector_given_with<T: Real, B: Bijector<T>>(
    b: &B,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    tol: &Tolerances,
) -> Result<CheckReport, CheckFailure> {
    let joint = JointBijector::with_dim(b, b.dim().unwrap_or(x.nrows()));
    if let Some(failure) = shape_failure(b.dim(), b.context_dim(), x, c) {
        return Err(failure);
    }
    super::checks::check_maps(&joint, &stack_context(x, c), tol)
}

/// [`check_gradients_given_with`] with tolerance [`GRADIENT_TOLERANCE`].
pub fn check_gradients_given<B: Differentiable<f64> + Clone + 'static>(
    b: &B,
    x: &DMatrix<f64>,
    c: &DMatrix<f64>,
) -> Result<GradientReport, CheckFailure> {
    check_gradients_given_with(b, x, c, GRADIENT_TOLERANCE)
}

/// The former name of [`check_gradients_given`].
#[deprecated(note = "use check_gradients_given")]
pub fn check_conditional_gradients<B: Differentiable<f64> + Clone + 'static>(
    b: &B,
    x: &DMatrix<f64>,
    c: &DMatrix<f64>,
) -> Result<GradientReport, CheckFailure> {
    check_gradients_given(b, x, c)
}

/// Checks both backward passes of a conditional bijector against
/// Richardson-extrapolated central differences: the gradients in every
/// parameter, every input entry **and every context entry**, and the fused
/// `*_through` calls against the separate value and backward calls.
///
/// It runs [`check_gradients_with`] on the [`JointBijector`]
/// `[x; c] ↦ [f(x; c); c]`: the input gradient of the joint map is
/// `[∂L/∂x; ∂L/∂c]`, so `max_input_error` of the report covers both, and a
/// failing input coordinate `≥ D` is context row `coordinate − D` (the
/// failure's detail says so). Directions whose backward pass is unsupported
/// (the sequential direction of autoregressive layers) are skipped and listed.
///
/// Inputs and contexts should avoid kinks of the conditioner (use a smooth
/// activation such as `tanh`).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use normflow::testing::check_gradients_given;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cfg = ConditionerConfig { hidden: 8, activation: Activation::Tanh, identity_init: false, ..Default::default() };
/// let maf = MaskedAutoregressiveFlow::<f64>::conditional(3, 2, &cfg, &mut rng)?;
/// let x = DMatrix::from_fn(3, 4, |i, j| (i as f64 - 1.0) * 0.7 + j as f64 * 0.2);
/// let c = DMatrix::from_fn(2, 4, |i, j| (i as f64) - 0.4 * j as f64);
/// let report = check_gradients_given(&maf, &x, &c).unwrap();
/// assert_eq!(report.directions, ["inverse"]); // sampling is D sequential passes
/// assert!(report.max_input_error < 1e-6); // x and c
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn check_gradients_given_with<B: Differentiable<f64> + Clone + 'static>(
    b: &B,
    x: &DMatrix<f64>,
    c: &DMatrix<f64>,
    tolerance: f64,
) -> Result<GradientReport, CheckFailure> {
    if let Some(failure) = shape_failure(b.dim(), b.context_dim(), x, c) {
        return Err(failure);
    }
    let d = b.dim().unwrap_or(x.nrows());
    let joint = JointBijector::with_dim(b.clone(), d);
    check_gradients_with(&joint, &stack_context(x, c), tolerance).map_err(|mut f| {
        if f.detail.contains("gradient of the input")
            && let Some(i) = f.coordinate.filter(|&i| i >= d)
        {
            f.detail = format!("{} (context row {})", f.detail, i - d);
        }
        f
    })
}

fn shape_failure<T: Real>(
    dim: Option<usize>,
    context_dim: usize,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> Option<CheckFailure> {
    let bad = |detail: String| Some(super::refuse(super::Property::Input, detail));
    if let Some(d) = dim
        && d != x.nrows()
    {
        return bad(format!(
            "the bijector has dimension {d} but the input has {} rows",
            x.nrows()
        ));
    }
    if c.nrows() != context_dim {
        return bad(format!(
            "the bijector takes a context of dimension {context_dim} but the context has {} rows",
            c.nrows()
        ));
    }
    if c.ncols() != x.ncols() {
        return bad(format!(
            "{} samples but {} contexts (one context column per sample)",
            x.ncols(),
            c.ncols()
        ));
    }
    None
}

/// The former name of [`check_bijector_given_with`].
#[deprecated(note = "use check_bijector_given_with")]
pub fn check_conditional_bijector_with<T: Real, B: Bijector<T>>(
    b: &B,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    tol: &Tolerances,
) -> Result<CheckReport, CheckFailure> {
    check_bijector_given_with(b, x, c, tol)
}

/// The former name of [`check_gradients_given_with`].
#[deprecated(note = "use check_gradients_given_with")]
pub fn check_conditional_gradients_with<B: Differentiable<f64> + Clone + 'static>(
    b: &B,
    x: &DMatrix<f64>,
    c: &DMatrix<f64>,
    tolerance: f64,
) -> Result<GradientReport, CheckFailure> {
    check_gradients_given_with(b, x, c, tolerance)
}
