//! The autoregressive rational-quadratic spline (the autoregressive neural
//! spline flow): the autoregressive structure with the spline transformer.

use rand::Rng;

use super::Autoregressive;
use super::transformer::Spline;
use crate::error::check;
use crate::nn::{ConditionerConfig, Made};
use crate::{Error, Real};

/// An autoregressive rational-quadratic spline layer (Durkan, Bekasov, Murray
/// & Papamakarios 2019, *Neural Spline Flows*), conditioned by a [`Made`], with
/// the direction convention of
/// [`MaskedAutoregressiveFlow`](super::MaskedAutoregressiveFlow).
///
/// Forward (base → data): `xᵢ = spline(uᵢ; θᵢ(x_{<i}))`, where "`< i`" is
/// "before `i` in the layer's order" and each coordinate's spline is a `K`-bin
/// rational-quadratic spline on `[−B, B]` (identity outside), as in
/// [`RationalQuadraticSpline`](super::RationalQuadraticSpline), whose
/// documentation gives the formulas and the parametrisation. The Jacobian is
/// triangular in the order and `log|det ∂x/∂u| = Σᵢ log dxᵢ/duᵢ`.
///
/// **Costs.** The inverse (data → base, the density direction used for
/// maximum likelihood) is **one** MADE pass: every `θᵢ` comes from `x` at once.
/// The forward (sampling) is **`D` sequential MADE passes**, one per coordinate
/// in the order, because `xᵢ` must be known before the coordinates after it
/// can be conditioned on it. Wrap the layer in
/// [`Invert`](super::Invert) to swap the costs (fast sampling, slow density,
/// the IAF trade-off).
///
/// **Training.** [`Differentiable`](super::Differentiable) through the
/// inverse (the parallel direction, used for maximum likelihood); the
/// backward pass of the sequential forward returns [`Error::Unsupported`].
/// A loss that differentiates through sampling (variational fitting) needs
/// the one-pass direction to be the sampling one: wrap the layer in
/// [`Invert`](super::Invert) (the IAF arrangement).
///
/// # Conditioner
///
/// A [`Made`] with `3K − 1` outputs per dimension and the MADE layout: output
/// row `p·D + i` is raw parameter `p` of coordinate `i`, where `p` runs over
/// the spline's layout (`p < K`: unnormalised widths, `K ≤ p < 2K`:
/// unnormalised heights, `2K ≤ p < 3K − 1`: unnormalised interior derivatives).
/// With `config.identity_init` (the default) the last layer starts at zero and
/// a fresh layer is the identity map. All parameters are the MADE's, in one
/// buffer ([`SplineAutoregressive::params`]).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::nn::ConditionerConfig;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(5);
/// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
/// let layer = SplineAutoregressive::<f64>::new(3, 8, 3.0, &cfg, &mut rng)?;
/// let u = DMatrix::from_fn(3, 4, |i, j| (i + j) as f64 * 0.7 - 2.0);
/// let (x, ldj) = layer.forward_and_log_det(&u);       // 3 MADE passes
/// let (u_back, ildj) = layer.inverse_and_log_det(&x); // 1 MADE pass
/// assert!((u_back - &u).amax() < 1e-10);
/// assert!((ldj + ildj).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
pub type SplineAutoregressive<T> = Autoregressive<T, Spline<T>>;

impl<T: Real> Autoregressive<T, Spline<T>> {
    /// A layer over `dim` coordinates in natural order, with `bins` bins on
    /// `[−bound, bound]`.
    pub fn new(
        dim: usize,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::with_order(dim, (0..dim).collect(), bins, bound, config, rng)
    }

    /// A layer whose autoregressive order is `order` (`order[k]` is the
    /// coordinate transformed `k`-th, conditioned on `order[..k]`).
    ///
    /// Errors if `dim` is 0, `order` is not a permutation of `0..dim`, `bins`
    /// is 0 or above
    /// [`RationalQuadraticSpline::MAX_BINS`](super::RationalQuadraticSpline::MAX_BINS),
    /// `bound` is not finite and positive, or `config` is invalid.
    pub fn with_order(
        dim: usize,
        order: Vec<usize>,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "SplineAutoregressive::new";
        Self::build(CTX, dim, 0, order, Spline { bins, bound }, config, rng)
    }

    /// A conditional layer `x ↦ f(x; c)`: [`SplineAutoregressive::new`]
    /// whose MADE also reads a context of `context_dim ≥ 1` dimensions (MADE
    /// degree 0). Call it through the `_given` methods.
    pub fn conditional(
        dim: usize,
        context_dim: usize,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::conditional_with_order(
            dim,
            context_dim,
            (0..dim).collect(),
            bins,
            bound,
            config,
            rng,
        )
    }

    /// [`SplineAutoregressive::conditional`] with the autoregressive order `order`.
    pub fn conditional_with_order(
        dim: usize,
        context_dim: usize,
        order: Vec<usize>,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "SplineAutoregressive::conditional";
        check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        Self::build(
            CTX,
            dim,
            context_dim,
            order,
            Spline { bins, bound },
            config,
            rng,
        )
    }

    /// Wraps an existing MADE with `3·bins − 1` outputs per dimension (and
    /// any context dimension: a MADE with a context makes a conditional layer).
    pub fn from_made(made: Made<T>, bins: usize, bound: T) -> Result<Self, Error> {
        Self::from_parts(
            "SplineAutoregressive::from_made",
            made,
            Spline { bins, bound },
        )
    }

    /// Number of bins `K` of every spline.
    pub fn bins(&self) -> usize {
        self.transformer().bins
    }

    /// The half-width `B` of the interval `[−B, B]` the splines act on.
    pub fn bound(&self) -> T {
        self.transformer().bound
    }
}
