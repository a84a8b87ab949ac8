//! Conditional flows: densities `p(x | c)` of a `D`-dimensional `x` given a
//! `C`-dimensional **context** `c`.
//!
//! A batch is a `D × n` matrix of samples beside a `C × n` matrix of
//! contexts, **column `j` of one belonging to column `j` of the other**.
//! Every conditioned layer sees the context: conditional MADE layers
//! ([`ConditionalMaf`], [`ConditionalIaf`], [`ConditionalSplineAutoregressive`])
//! feed it to every hidden unit (context inputs have MADE degree 0, so the
//! autoregressive property holds), conditional couplings
//! ([`ConditionalAffineCoupling`], [`ConditionalSplineCoupling`]) concatenate
//! it to the conditioner's input `x_A`. Layers without a conditioner
//! (permutations, LU, ActNorm, elementwise maps) pass the context through
//! untouched: [`IgnoreContext`] turns any bijector into a conditional one.
//!
//! The traits mirror the unconditional ones with one more argument:
//!
//! - [`ConditionalBijector`]: `forward_and_log_det(x, c)`,
//!   `inverse_and_log_det(y, c)` (forward = base → data, as everywhere);
//! - [`ConditionalDifferentiable`]: flat parameters and backward passes that
//!   also **add `∂L/∂c`** into a `C × n` buffer (an encoder upstream of the
//!   context needs it);
//! - [`ConditionalDistribution`]: `log_prob(x, c)`, `sample(c, rng)` (one
//!   sample per context column) and `sample_and_log_prob(c, rng)`.
//!
//! Conditional bijectors do not implement [`Bijector`](crate::Bijector) (and
//! conditional distributions not [`Distribution`](crate::Distribution)), so
//! the method names can stay the same without ambiguity: a context can never
//! be forgotten.
//!
//! ```
//! use nalgebra::DMatrix;
//! use normflow::conditional::*;
//! use normflow::prelude::*;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
//! let maf = ConditionalMaf::<f64>::new(2, 1, &cfg, &mut rng)?; // D = 2, C = 1
//! let x = DMatrix::from_row_slice(2, 3, &[0.1, -0.4, 1.0, 0.5, 0.2, -1.0]);
//! let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, 2.0]);
//! let (u, ildj) = maf.inverse_and_log_det(&x, &c);    // one MADE pass
//! let (x_back, fldj) = maf.forward_and_log_det(&u, &c); // D passes
//! assert!((x_back - &x).amax() < 1e-10);
//! assert!((ildj + fldj).amax() < 1e-10);
//! // Another context, another map.
//! let other = DMatrix::from_element(1, 3, -2.0);
//! assert!((maf.inverse(&x, &other) - &u).amax() > 1e-3);
//! # Ok::<(), normflow::Error>(())
//! ```
//!
//! Flows are usually built from the DSL with
//! [`FlowSpec::build_conditional`](crate::FlowSpec::build_conditional) and
//! fitted as a [`ConditionalFlowModel`](crate::train::ConditionalFlowModel);
//! `docs/conditional.md` walks through a complete `p(x | c)` example.

use std::fmt::Debug;

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use crate::bijector::{Continuation, DataStage};
use crate::{Error, Real};

mod autoregressive;
mod coupling;
mod gaussian;
mod ignore;
mod invert;
mod joint;
mod transformed;

pub use autoregressive::{ConditionalMaf, ConditionalSplineAutoregressive};
pub use coupling::{ConditionalAffineCoupling, ConditionalSplineCoupling};
pub use gaussian::{ConditionalDiagonalGaussian, ContextAffine};
pub use ignore::IgnoreContext;
pub use invert::{ConditionalIaf, ConditionalInvert};
pub use joint::JointBijector;
pub use transformed::ConditionalTransformedDistribution;
pub(crate) use transformed::{conditional_mean_log_prob_and_grad, log_prob_from};

/// An invertible map `x ↦ f(x; c)` of `R^D` for every context `c ∈ R^C`,
/// with a tractable log-determinant in `x`.
///
/// Inputs are a `D × n` batch and a `C × n` batch of contexts (column `j` of
/// each is sample `j`). `log|det|` is `log|det ∂f/∂x|` at fixed `c`: the
/// context is not transformed, so the density of `x` given `c` follows from
/// the change of variables in `x` alone.
///
/// # Panics
/// Every method panics with a clear message when `x` or `c` has the wrong
/// number of rows, or when their column counts differ (nalgebra's convention
/// for shape errors, as in [`Bijector`](crate::Bijector)).
pub trait ConditionalBijector<T: Real>: Debug + Send + Sync {
    /// The dimension `D` of `x`, or `None` if the map works for any.
    fn dim(&self) -> Option<usize>;

    /// The dimension `C` of the context.
    fn context_dim(&self) -> usize;

    /// `(f(x; c), log|det ∂f/∂x|)`: base → data.
    fn forward_and_log_det(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>);

    /// `(f⁻¹(y; c), log|det ∂f⁻¹/∂y|)`: data → base.
    fn inverse_and_log_det(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>);

    /// `f(x; c)`.
    fn forward(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        self.forward_and_log_det(x, c).0
    }

    /// `f⁻¹(y; c)`.
    fn inverse(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        self.inverse_and_log_det(y, c).0
    }
}

/// A conditional bijector whose parameters can be trained: flat parameters
/// (as in [`Differentiable`](crate::bijector::Differentiable)) and the reverse
/// modes of its two fused calls, which also give the gradient with respect to
/// the context.
///
/// For `y ↦ (x, l) = inverse_and_log_det(y, c)` and a scalar loss `L(x, l)`,
/// [`inverse_and_log_det_backward`](ConditionalDifferentiable::inverse_and_log_det_backward)
/// takes the cotangents `∂L/∂x` (`D × n`) and `∂L/∂l` (`n`), **adds** `∂L/∂θ`
/// into `grad_params` and `∂L/∂c` into `grad_context` (`C × n`), and returns
/// `∂L/∂y`. The forward direction is the same with `x` and `y` swapped.
/// Autoregressive layers differentiate their parallel direction only; the
/// sequential one returns [`Error::Unsupported`].
///
/// Every built-in implementation is checked against central finite
/// differences in the parameters, the input and the context by
/// `normflow::testing::check_conditional_gradients`.
pub trait ConditionalDifferentiable<T: Real>: ConditionalBijector<T> {
    /// Total number of trainable parameters.
    fn num_params(&self) -> usize;

    /// Calls `f` on each contiguous parameter slice, in the fixed order that
    /// defines the flat parameter vector.
    fn visit_params(&self, f: &mut dyn FnMut(&[T]));

    /// Mutable version of [`visit_params`](ConditionalDifferentiable::visit_params);
    /// call [`params_changed`](ConditionalDifferentiable::params_changed) after writing.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T]));

    /// Reverse mode of `inverse_and_log_det` at `(y, c)` (see the trait docs).
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error>;

    /// Reverse mode of `forward_and_log_det` at `(x, c)` (see the trait docs).
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error>;

    /// Fused evaluation and reverse mode of `inverse_and_log_det`: computes
    /// `(x, l)`, asks `rest(x, l)` for the cotangents, adds the parameter and
    /// context gradients and returns `∂L/∂y` (as
    /// [`Differentiable::inverse_and_log_det_through`](crate::bijector::Differentiable::inverse_and_log_det_through)).
    /// Layers with a conditioner override it to evaluate the network once.
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        let (x, l) = self.inverse_and_log_det(y, c);
        let (gx, gl) = rest(&x, &l)?;
        self.inverse_and_log_det_backward(y, c, &gx, &gl, grad_params, grad_context)
    }

    /// Fused evaluation and reverse mode of `forward_and_log_det`; see
    /// [`inverse_and_log_det_through`](ConditionalDifferentiable::inverse_and_log_det_through).
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        let (y, l) = self.forward_and_log_det(x, c);
        let (gy, gl) = rest(&y, &l)?;
        self.forward_and_log_det_backward(x, c, &gy, &gl, grad_params, grad_context)
    }

    /// Restores invariants after the parameters were written (MADE masks).
    fn params_changed(&mut self) {}

    /// Training or evaluation behaviour (batch normalisation).
    fn set_training(&mut self, _training: bool) {}

    /// Visits non-parameter state (batch-normalisation statistics). Default: none.
    fn visit_state(&self, _f: &mut dyn FnMut(&[T])) {}

    /// Mutable version of [`visit_state`](ConditionalDifferentiable::visit_state).
    fn visit_state_mut(&mut self, _f: &mut dyn FnMut(&mut [T])) {}

    /// Data-dependent set-up (ActNorm, batch norm; see [`DataStage`]): `y` is
    /// data at the layer's output side with its contexts; returns
    /// `inverse(y, c)`. Default: no adaptation.
    fn prepare_with_data(
        &mut self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        _stage: DataStage,
    ) -> DMatrix<T> {
        self.inverse(y, c)
    }

    /// The flat parameter vector (a copy).
    fn params_to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.num_params());
        self.visit_params(&mut |s| out.extend_from_slice(s));
        out
    }

    /// Overwrites the flat parameter vector. Errors if `values` has the wrong length.
    fn set_params(&mut self, values: &[T]) -> Result<(), Error> {
        let n = self.num_params();
        if values.len() != n {
            return Err(Error::DimensionMismatch {
                context: "ConditionalDifferentiable::set_params".into(),
                argument: "values".into(),
                expected: n,
                got: values.len(),
            });
        }
        let mut off = 0;
        self.visit_params_mut(&mut |s| {
            s.copy_from_slice(&values[off..off + s.len()]);
            off += s.len();
        });
        self.params_changed();
        Ok(())
    }
}

/// A probability density `p(x | c)` on `R^D` for every context `c ∈ R^C`.
///
/// `log_prob` never returns NaN (points outside the support get `-inf`);
/// `sample(c, rng)` draws **one sample per column of `c`**, so a `C × n`
/// context gives a `D × n` batch. Wrong shapes panic with a message.
pub trait ConditionalDistribution<T: Real>: Debug + Send + Sync {
    /// The event dimension `D`.
    fn dim(&self) -> usize;

    /// The context dimension `C`.
    fn context_dim(&self) -> usize;

    /// `log p(x_j | c_j)` for every column `j` (`D × n`, `C × n` → `n`).
    fn log_prob(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T>;

    /// One sample per context column: `C × n` → `D × n`.
    fn sample(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T>;

    /// Samples with their log-densities (one forward pass for a flow).
    fn sample_and_log_prob(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        let x = self.sample(c, rng);
        let lp = self.log_prob(&x, c);
        (x, lp)
    }

    /// `n` samples at one context `c ∈ R^C` given as a slice: TFP's
    /// `sample(n, bijector_kwargs=…)` at a fixed condition. The context is
    /// repeated in `n` columns and passed to [`sample`](ConditionalDistribution::sample),
    /// so the result is `D × n`.
    ///
    /// # Panics
    /// If `context.len()` is not `C`.
    ///
    /// ```
    /// use normflow::conditional::*;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let cfg = ConditionerConfig { hidden: 8, ..Default::default() };
    /// let maf = ConditionalMaf::<f64>::new(2, 1, &cfg, &mut rng)?; // D = 2, C = 1
    /// let base = IgnoreContext::new(StandardNormal::new(2)?, 1);
    /// let flow = ConditionalTransformedDistribution::new(base, maf)?;
    /// let x = flow.sample_at(100, &[0.5], &mut rng);
    /// assert_eq!(x.shape(), (2, 100));
    /// // Their log-densities at the same context, and one point's.
    /// let lp = flow.log_prob_at(&x, &[0.5]);
    /// assert!((flow.log_prob_one(x.column(0).as_slice(), &[0.5]) - lp[0]).abs() < 1e-12);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    fn sample_at(&self, n: usize, context: &[T], rng: &mut dyn Rng) -> DMatrix<T> {
        let c = repeat_context(
            "ConditionalDistribution::sample_at",
            self.context_dim(),
            context,
            n,
        );
        self.sample(&c, rng)
    }

    /// `log p(x_j | c)` for every column of `x` (`D × n` → `n`) at one
    /// context `c ∈ R^C` given as a slice.
    ///
    /// # Panics
    /// If `context.len()` is not `C` or `x` does not have `D` rows.
    fn log_prob_at(&self, x: &DMatrix<T>, context: &[T]) -> DVector<T> {
        let c = repeat_context(
            "ConditionalDistribution::log_prob_at",
            self.context_dim(),
            context,
            x.ncols(),
        );
        self.log_prob(x, &c)
    }

    /// `log p(x | c)` of one point `x ∈ R^D` at one context `c ∈ R^C`, both
    /// slices (the conditional [`Distribution::log_prob_one`](crate::Distribution::log_prob_one)).
    ///
    /// # Panics
    /// If `x.len()` is not `D` or `context.len()` is not `C`.
    fn log_prob_one(&self, x: &[T], context: &[T]) -> T {
        let d = self.dim();
        assert!(
            x.len() == d,
            "ConditionalDistribution::log_prob_one: the point has {} coordinates, expected dimension {d}",
            x.len()
        );
        let c = repeat_context(
            "ConditionalDistribution::log_prob_one",
            self.context_dim(),
            context,
            1,
        );
        self.log_prob(&DMatrix::from_column_slice(d, 1, x), &c)[0]
    }
}

/// A `C × n` matrix whose columns are all `context`.
#[track_caller]
fn repeat_context<T: Real>(
    caller: &str,
    context_dim: usize,
    context: &[T],
    n: usize,
) -> DMatrix<T> {
    assert!(
        context.len() == context_dim,
        "{caller}: the context has {} coordinates, expected context dimension {context_dim}",
        context.len()
    );
    DMatrix::from_fn(context_dim, n, |i, _| context[i])
}

/// A conditional distribution with trainable parameters (possibly none) and
/// the reverse mode of its `log_prob`, usable as the base of a trainable
/// conditional flow.
pub trait ConditionalTrainableBase<T: Real>: ConditionalDistribution<T> {
    /// Number of trainable parameters (0 for a fixed base).
    fn num_params(&self) -> usize;
    /// Visits the flat parameter vector slice by slice.
    fn visit_params(&self, f: &mut dyn FnMut(&[T]));
    /// Mutable version of [`visit_params`](ConditionalTrainableBase::visit_params).
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T]));
    /// Given `∂L/∂log p` per column, adds `∂L/∂θ` into `grad_params` and
    /// `∂L/∂c` into `grad_context`, and returns `∂L/∂x`. Errors if the base
    /// cannot differentiate its log-density.
    fn log_prob_backward(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error>;
}

macro_rules! forward_conditional_impls {
    ($ptr:ty) => {
        impl<T: Real, B: ConditionalBijector<T> + ?Sized> ConditionalBijector<T> for $ptr {
            fn dim(&self) -> Option<usize> {
                (**self).dim()
            }
            fn context_dim(&self) -> usize {
                (**self).context_dim()
            }
            fn forward_and_log_det(
                &self,
                x: &DMatrix<T>,
                c: &DMatrix<T>,
            ) -> (DMatrix<T>, DVector<T>) {
                (**self).forward_and_log_det(x, c)
            }
            fn inverse_and_log_det(
                &self,
                y: &DMatrix<T>,
                c: &DMatrix<T>,
            ) -> (DMatrix<T>, DVector<T>) {
                (**self).inverse_and_log_det(y, c)
            }
            fn forward(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
                (**self).forward(x, c)
            }
            fn inverse(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
                (**self).inverse(y, c)
            }
        }
    };
}
forward_conditional_impls!(Box<B>);
forward_conditional_impls!(&B);

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

/// Panics with a clear message unless `x` has `dim` rows, `c` has
/// `context_dim` rows and both have the same number of columns.
#[track_caller]
pub(crate) fn assert_pair<T: Real>(
    caller: &str,
    dim: Option<usize>,
    context_dim: usize,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) {
    if let Some(d) = dim {
        crate::bijector::assert_rows(caller, d, x);
    }
    assert!(
        c.nrows() == context_dim,
        "{caller}: context has dimension {} (rows), expected dimension {context_dim}",
        c.nrows()
    );
    assert!(
        x.ncols() == c.ncols(),
        "{caller}: {} samples but {} contexts (one context column per sample)",
        x.ncols(),
        c.ncols()
    );
}

/// The conditioner input `[rows idx of x; c]` of a coupling.
pub(crate) fn gather_with_context<T: Real>(
    idx: &[usize],
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> DMatrix<T> {
    let a = idx.len();
    DMatrix::from_fn(a + c.nrows(), x.ncols(), |r, j| {
        if r < a { x[(idx[r], j)] } else { c[(r - a, j)] }
    })
}

/// The fused pass of a sequence of conditional parts in the order they are
/// applied (each with its own gradient slice), all under the same context:
/// the conditional twin of the unconditional sequence used by `Chain`.
/// Returns `(∂L/∂input, ∂L/∂l)` and adds every part's context gradient into
/// `grad_context`.
pub(crate) fn through_sequence<T: Real>(
    steps: &mut [(&dyn ConditionalDifferentiable<T>, &mut [T])],
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    acc: &DVector<T>,
    inverse: bool,
    grad_context: &mut DMatrix<T>,
    rest: &mut Continuation<'_, T>,
) -> Result<(DMatrix<T>, DVector<T>), Error> {
    let Some(((part, grads), later)) = steps.split_first_mut() else {
        return rest(input, acc);
    };
    let mut mine = DMatrix::zeros(c.nrows(), c.ncols());
    let mut grad_log_det = None;
    let g = {
        let mut next = |z: &DMatrix<T>, l: &DVector<T>| {
            let total = acc + l;
            let (gz, gl) = crate::resources::grow_stack(|| {
                through_sequence(later, z, c, &total, inverse, grad_context, rest)
            })?;
            grad_log_det = Some(gl.clone());
            Ok((gz, gl))
        };
        if inverse {
            part.inverse_and_log_det_through(input, c, grads, &mut mine, &mut next)?
        } else {
            part.forward_and_log_det_through(input, c, grads, &mut mine, &mut next)?
        }
    };
    *grad_context += mine;
    let gl = grad_log_det.expect("a fused call runs its continuation");
    Ok((g, gl))
}
