//! Probability distributions over `R^D`: base distributions and
//! [`TransformedDistribution`].

use std::fmt::Debug;
use std::sync::Arc;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution as _, Open01};

use crate::Real;

mod beta;
mod blockwise;
mod estimate;
mod gaussian_mixture;
mod laplace;
mod loc_scale;
mod log_normal;
mod logistic;
mod mixture;
mod multivariate_normal;
mod normal;
mod special;
mod standard_normal;
mod student_t;
mod summary;
mod transformed;
mod uniform;
mod uniform_torus;

pub use beta::Beta;
pub use blockwise::BlockwiseDistribution;
pub use estimate::{Estimate, estimate_entropy, estimate_kl, estimate_mean, estimate_variance};
pub use gaussian_mixture::GaussianMixture;
pub use laplace::Laplace;
pub use log_normal::LogNormal;
pub use logistic::Logistic;
pub use mixture::Mixture;
pub use multivariate_normal::MultivariateNormal;
pub use normal::Normal;
pub use standard_normal::StandardNormal;
pub use student_t::StudentT;
pub(crate) use summary::normal_quantile;
pub use summary::{KlDivergence, Marginals, Summary};
pub use transformed::TransformedDistribution;
pub(crate) use transformed::log_prob_from;
pub use uniform::Uniform;
pub use uniform_torus::UniformTorus;

/// A probability distribution on `R^D` with a density.
///
/// Batches are `D × n` matrices, one column per sample. `log_prob` never
/// returns NaN: points outside the support get `-inf`. The trait is object
/// safe (`Box<dyn Distribution<T>>` is a distribution), which is why `sample`
/// takes `&mut dyn Rng`.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let d = StandardNormal::new(2)?;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let x: DMatrix<f64> = d.sample(5, &mut rng);
/// assert_eq!(x.shape(), (2, 5));
/// let lp = d.log_prob(&DMatrix::<f64>::zeros(2, 1));
/// assert!((lp[0] + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait Distribution<T: Real>: Debug + Send + Sync {
    /// The event dimension `D`.
    fn dim(&self) -> usize;

    /// Log-density of every column of `x` (`D × n` → `n`). `-inf` outside the support.
    ///
    /// # Panics
    /// If `x` does not have `D` rows.
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T>;

    /// Log-density of one point `x ∈ R^D`, given as a slice: TFP's
    /// `log_prob` on an event of shape `[D]`. `-inf` outside the support.
    ///
    /// The batch method [`Distribution::log_prob`] on a one-column matrix,
    /// so the two always agree.
    ///
    /// # Panics
    /// If `x.len()` is not `D`.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Normal::<f64>::scalar(0.3, 0.8)?;
    /// // −½ log 2π − log σ at the mean.
    /// let want = -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.8_f64.ln();
    /// assert!((d.log_prob_one(&[0.3]) - want).abs() < 1e-12);
    /// let u = Uniform::<f64>::scalar(0.0, 1.0)?;
    /// assert_eq!(u.log_prob_one(&[2.0]), f64::NEG_INFINITY);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    fn log_prob_one(&self, x: &[T]) -> T {
        let d = self.dim();
        assert!(
            x.len() == d,
            "Distribution::log_prob_one: the point has {} coordinates, expected dimension {d}",
            x.len()
        );
        self.log_prob(&DMatrix::from_column_slice(d, 1, x))[0]
    }

    /// `n` independent samples as a `D × n` matrix.
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T>;

    /// Samples together with their log-densities. Implementations override
    /// this where it saves work (a transformed distribution needs only one
    /// forward pass).
    fn sample_and_log_prob(&self, n: usize, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        let x = self.sample(n, rng);
        let lp = self.log_prob(&x);
        (x, lp)
    }

    /// The dimension `C` of the context this distribution is conditioned on:
    /// `0` (the default) for an unconditional density, which ignores any
    /// context. A conditional density `p(x | c)` returns `C ≥ 1` and
    /// implements the `_given` methods; its context-free methods then panic
    /// with a message naming them.
    fn context_dim(&self) -> usize {
        0
    }

    /// `log p(x_j | c_j)` for every column `j` (`D × n`, `C × n` → `n`).
    /// Default (an unconditional density): [`log_prob`](Distribution::log_prob),
    /// ignoring `c`.
    fn log_prob_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        let _ = c;
        self.log_prob(x)
    }

    /// One sample per context column: `C × n` → `D × n`. Default:
    /// [`sample`](Distribution::sample) of `n` points, ignoring `c`.
    fn sample_given(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        self.sample(c.ncols(), rng)
    }

    /// Samples with their log-densities, one per context column. Default:
    /// [`sample_and_log_prob`](Distribution::sample_and_log_prob) for an
    /// unconditional density, else `sample_given` then `log_prob_given`.
    fn sample_and_log_prob_given(
        &self,
        c: &DMatrix<T>,
        rng: &mut dyn Rng,
    ) -> (DMatrix<T>, DVector<T>) {
        if self.context_dim() == 0 {
            return self.sample_and_log_prob(c.ncols(), rng);
        }
        let x = self.sample_given(c, rng);
        let lp = self.log_prob_given(&x, c);
        (x, lp)
    }

    /// `n` samples at one context `c ∈ R^C` given as a slice: TFP's
    /// `sample(n, bijector_kwargs=…)` at a fixed condition. The context is
    /// repeated in `n` columns and passed to
    /// [`sample_given`](Distribution::sample_given), so the result is `D × n`.
    ///
    /// # Panics
    /// If `context.len()` is not `C`.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// // p(x | c) on R² given c ∈ R¹: a conditional MAF over a standard normal.
    /// let flow = flow!(maf(1, hidden = 8)).build_conditional_distribution::<f64>(2, 1, &mut rng)?;
    /// let x = flow.sample_at(100, &[0.5], &mut rng);
    /// assert_eq!(x.shape(), (2, 100));
    /// // Their log-densities at the same context, and one point's.
    /// let lp = flow.log_prob_at(&x, &[0.5]);
    /// assert!((flow.log_prob_one_at(x.column(0).as_slice(), &[0.5]) - lp[0]).abs() < 1e-12);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    fn sample_at(&self, n: usize, context: &[T], rng: &mut dyn Rng) -> DMatrix<T> {
        let c = repeat_context("Distribution::sample_at", self.context_dim(), context, n);
        self.sample_given(&c, rng)
    }

    /// `log p(x_j | c)` for every column of `x` (`D × n` → `n`) at one
    /// context `c ∈ R^C` given as a slice.
    ///
    /// # Panics
    /// If `context.len()` is not `C` or `x` does not have `D` rows.
    fn log_prob_at(&self, x: &DMatrix<T>, context: &[T]) -> DVector<T> {
        let c = repeat_context(
            "Distribution::log_prob_at",
            self.context_dim(),
            context,
            x.ncols(),
        );
        self.log_prob_given(x, &c)
    }

    /// `log p(x | c)` of one point `x ∈ R^D` at one context `c ∈ R^C`, both
    /// slices (the conditional [`log_prob_one`](Distribution::log_prob_one)).
    ///
    /// # Panics
    /// If `x.len()` is not `D` or `context.len()` is not `C`.
    fn log_prob_one_at(&self, x: &[T], context: &[T]) -> T {
        let d = self.dim();
        assert!(
            x.len() == d,
            "Distribution::log_prob_one_at: the point has {} coordinates, expected dimension {d}",
            x.len()
        );
        let c = repeat_context(
            "Distribution::log_prob_one_at",
            self.context_dim(),
            context,
            1,
        );
        self.log_prob_given(&DMatrix::from_column_slice(d, 1, x), &c)[0]
    }

    /// `∇ₓ log p(x)` for every column (`D × n`), or `None` if this
    /// distribution does not provide it. Every built-in does (zero where the
    /// density is flat or zero); a transformed distribution does when its
    /// bijector is [`Differentiable`](crate::bijector::Differentiable).
    fn log_prob_grad(&self, _x: &DMatrix<T>) -> Option<DMatrix<T>> {
        None
    }

    /// This distribution as a trainable base, if its parameters can be
    /// learned with a flow on top (a [`GaussianMixture`] can: MAF-MoG).
    fn as_trainable_base(&self) -> Option<&dyn TrainableBase<T>> {
        None
    }

    /// Mutable version of [`Distribution::as_trainable_base`].
    fn as_trainable_base_mut(&mut self) -> Option<&mut dyn TrainableBase<T>> {
        None
    }
}

/// A base distribution with trainable parameters (its
/// [`Parameters`](crate::Parameters)) and the reverse mode of its `log_prob`.
pub trait TrainableBase<T: Real>: Distribution<T> + crate::Parameters<T> {
    /// Given `∂L/∂log p` per column, adds `∂L/∂θ` into `grad_params` and
    /// returns `∂L/∂x`.
    fn log_prob_backward(
        &self,
        x: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
    ) -> DMatrix<T>;

    /// Reverse mode of [`log_prob_given`](Distribution::log_prob_given): as
    /// [`log_prob_backward`](TrainableBase::log_prob_backward), and also
    /// **adds** `∂L/∂c` into `grad_context` (`C × n`). Default (an
    /// unconditional base): the context gets no gradient.
    fn log_prob_backward_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> DMatrix<T> {
        let _ = (c, grad_context);
        self.log_prob_backward(x, grad_log_prob, grad_params)
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

macro_rules! forward_distribution_impl {
    ($ptr:ty) => {
        impl<T: Real, D: Distribution<T> + ?Sized> Distribution<T> for $ptr {
            fn dim(&self) -> usize {
                (**self).dim()
            }
            fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
                (**self).log_prob(x)
            }
            fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
                (**self).sample(n, rng)
            }
            fn sample_and_log_prob(&self, n: usize, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
                (**self).sample_and_log_prob(n, rng)
            }
            fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
                (**self).log_prob_grad(x)
            }
            fn as_trainable_base(&self) -> Option<&dyn TrainableBase<T>> {
                (**self).as_trainable_base()
            }
            fn context_dim(&self) -> usize {
                (**self).context_dim()
            }
            fn log_prob_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
                (**self).log_prob_given(x, c)
            }
            fn sample_given(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
                (**self).sample_given(c, rng)
            }
            fn sample_and_log_prob_given(
                &self,
                c: &DMatrix<T>,
                rng: &mut dyn Rng,
            ) -> (DMatrix<T>, DVector<T>) {
                (**self).sample_and_log_prob_given(c, rng)
            }
        }
    };
}

forward_distribution_impl!(Box<D>);
forward_distribution_impl!(Arc<D>);
forward_distribution_impl!(&D);

/// `−½ log(2π)`.
pub(crate) fn neg_half_ln_2pi<T: Real>() -> T {
    T::lit(-0.5 * (2.0 * std::f64::consts::PI).ln())
}

/// The random-matrix helper of every distribution, from the bottom layer
/// (`crate::batch`).
pub(crate) use crate::batch::standard_normal_matrix;

/// One uniform draw in the open interval `(0, 1)`.
pub(crate) fn open01(rng: &mut dyn Rng) -> f64 {
    Open01.sample(rng)
}

/// Maps a per-column log-density to `-inf` where it is NaN (out of support).
pub(crate) fn sanitize<T: Real>(mut lp: DVector<T>) -> DVector<T> {
    lp.apply(|v| *v = crate::real::sanitize_log_prob(*v));
    lp
}
