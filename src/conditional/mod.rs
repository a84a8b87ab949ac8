//! Conditional flows: densities `p(x | c)` of a `D`-dimensional `x` given a
//! `C`-dimensional **context** `c`.
//!
//! There is one hierarchy: a context is an optional argument of every
//! [`Bijector`](crate::Bijector) and [`Distribution`](crate::Distribution).
//! A conditioned layer reports its context dimension `C ≥ 1`
//! ([`Bijector::context_dim`](crate::Bijector::context_dim)) and is called
//! through the `_given` methods (`forward_and_log_det_given(x, c)`,
//! `inverse_and_log_det_given(y, c)`, `log_prob_given(x, c)`,
//! `sample_given(c, rng)`); every other layer has context dimension 0 and
//! ignores the context it is given, so permutations, LU, ActNorm and
//! elementwise maps sit in a conditional flow unchanged. A batch is a `D × n`
//! matrix of samples beside a `C × n` matrix of contexts, **column `j` of one
//! belonging to column `j` of the other**.
//!
//! The conditioned layers are the built-in ones, built with a context:
//! [`MaskedAutoregressiveFlow::conditional`](crate::bijector::MaskedAutoregressiveFlow::conditional),
//! [`InverseAutoregressiveFlow::conditional`](crate::bijector::InverseAutoregressiveFlow::conditional),
//! [`SplineAutoregressive::conditional`](crate::bijector::SplineAutoregressive::conditional)
//! (the MADE reads the context as inputs of degree 0, so the autoregressive
//! property holds),
//! [`AffineCoupling::conditional`](crate::bijector::AffineCoupling::conditional)
//! and [`SplineCoupling::conditional`](crate::bijector::SplineCoupling::conditional)
//! (the conditioner reads `[x_A; c]`). This module adds what has no
//! unconditional twin: [`ContextAffine`] (a shift and scale that are a
//! network of the context), [`ConditionalDiagonalGaussian`] (the amortised
//! Gaussian of a VAE, a trainable conditional base), [`JointBijector`] (a
//! conditional map as an ordinary bijector of `[x; c]`) and the stacking
//! helpers [`stack_context`] and [`split_context`].
//!
//! ```
//! use nalgebra::DMatrix;
//! use normflow::prelude::*;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
//! let maf = MaskedAutoregressiveFlow::<f64>::conditional(2, 1, &cfg, &mut rng)?; // D = 2, C = 1
//! let x = DMatrix::from_row_slice(2, 3, &[0.1, -0.4, 1.0, 0.5, 0.2, -1.0]);
//! let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, 2.0]);
//! let (u, ildj) = maf.inverse_and_log_det_given(&x, &c);    // one MADE pass
//! let (x_back, fldj) = maf.forward_and_log_det_given(&u, &c); // D steps
//! assert!((x_back - &x).amax() < 1e-10);
//! assert!((ildj + fldj).amax() < 1e-10);
//! // A standard normal pushed through it is a conditional density p(x | c).
//! let dist = TransformedDistribution::new(StandardNormal::new(2)?, maf)?;
//! assert_eq!(dist.context_dim(), 1);
//! let lp = dist.log_prob_given(&x, &c);
//! assert!(lp.iter().all(|v| v.is_finite()));
//! # Ok::<(), normflow::Error>(())
//! ```
//!
//! Flows are usually built from the DSL with
//! [`FlowSpec::build_conditional`](crate::FlowSpec::build_conditional) and
//! fitted as a [`FlowModel::conditional`](crate::train::FlowModel::conditional);
//! `docs/conditional.md` walks through a complete `p(x | c)` example.

use nalgebra::DMatrix;

use crate::Real;

mod gaussian;
mod joint;

pub use gaussian::{ConditionalDiagonalGaussian, ContextAffine};
pub use joint::JointBijector;

/// The conditional MAF is [`MaskedAutoregressiveFlow`](crate::bijector::MaskedAutoregressiveFlow)
/// built with [`conditional`](crate::bijector::MaskedAutoregressiveFlow::conditional).
#[deprecated(note = "use MaskedAutoregressiveFlow::conditional(dim, context_dim, config, rng)")]
pub type ConditionalMaf<T> = crate::bijector::MaskedAutoregressiveFlow<T>;

/// The conditional IAF is [`InverseAutoregressiveFlow`](crate::bijector::InverseAutoregressiveFlow)
/// built with [`conditional`](crate::bijector::InverseAutoregressiveFlow::conditional).
#[deprecated(note = "use InverseAutoregressiveFlow::conditional(dim, context_dim, config, rng)")]
pub type ConditionalIaf<T> = crate::bijector::InverseAutoregressiveFlow<T>;

/// The conditional autoregressive spline is [`SplineAutoregressive`](crate::bijector::SplineAutoregressive)
/// built with [`conditional`](crate::bijector::SplineAutoregressive::conditional).
#[deprecated(
    note = "use SplineAutoregressive::conditional(dim, context_dim, bins, bound, config, rng)"
)]
pub type ConditionalSplineAutoregressive<T> = crate::bijector::SplineAutoregressive<T>;

/// The conditional affine coupling is [`AffineCoupling`](crate::bijector::AffineCoupling)
/// built with [`conditional`](crate::bijector::AffineCoupling::conditional).
#[deprecated(note = "use AffineCoupling::conditional(mask, context_dim, config, rng)")]
pub type ConditionalAffineCoupling<T> = crate::bijector::AffineCoupling<T>;

/// The conditional spline coupling is [`SplineCoupling`](crate::bijector::SplineCoupling)
/// built with [`conditional`](crate::bijector::SplineCoupling::conditional).
#[deprecated(note = "use SplineCoupling::conditional(mask, context_dim, bins, bound, config, rng)")]
pub type ConditionalSplineCoupling<T> = crate::bijector::SplineCoupling<T>;

/// [`Invert`](crate::bijector::Invert) inverts conditional maps too.
#[deprecated(note = "use Invert, which passes the context through")]
pub type ConditionalInvert<B> = crate::bijector::Invert<B>;

/// [`TransformedDistribution`](crate::TransformedDistribution) is
/// conditional when its base or its bijector is.
#[deprecated(note = "use TransformedDistribution, which is conditional when its parts are")]
pub type ConditionalTransformedDistribution<T, D, B> = crate::TransformedDistribution<T, D, B>;

/// Stacks samples and their contexts into one `(D + C) × n` matrix
/// (`x` above `c`), the layout of paired data files and of
/// [`Validation::Data`](crate::train::Validation::Data) for conditional fitting.
///
/// # Panics
/// If `x` and `c` have different numbers of columns.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::{split_context, stack_context};
/// let x = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]);
/// let c = DMatrix::from_row_slice(1, 2, &[9.0, 8.0]);
/// let xc = stack_context(&x, &c);
/// assert_eq!(xc.column(0).as_slice(), &[1.0, 3.0, 9.0]);
/// assert_eq!(split_context(&xc, 2), (x, c));
/// ```
pub fn stack_context<T: Real>(x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
    assert_eq!(
        x.ncols(),
        c.ncols(),
        "stack_context: {} samples but {} contexts",
        x.ncols(),
        c.ncols()
    );
    let (d, k) = (x.nrows(), c.nrows());
    let mut out = DMatrix::zeros(d + k, x.ncols());
    out.rows_mut(0, d).copy_from(x);
    out.rows_mut(d, k).copy_from(c);
    out
}

/// Splits a `(D + C) × n` matrix into its first `dim` rows and the rest:
/// the inverse of [`stack_context`].
///
/// # Panics
/// If `dim` exceeds the number of rows.
pub fn split_context<T: Real>(xc: &DMatrix<T>, dim: usize) -> (DMatrix<T>, DMatrix<T>) {
    assert!(
        dim <= xc.nrows(),
        "split_context: {dim} data rows requested from a matrix of {} rows",
        xc.nrows()
    );
    (
        xc.rows(0, dim).clone_owned(),
        xc.rows(dim, xc.nrows() - dim).clone_owned(),
    )
}
