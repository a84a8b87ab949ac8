//! The MADE-conditioned autoregressive rational-quadratic spline layer of
//! Neural Spline Flows.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::rq_spline::{
    check_spline_shape, params_per_coord, rqs_forward, rqs_inverse, rqs_inverse_backward,
};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AutoregressiveRepr<T>", into = "AutoregressiveRepr<T>")]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
pub struct SplineAutoregressive<T: Real> {
    made: Made<T>,
    bins: usize,
    bound: T,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
struct AutoregressiveRepr<T: Real> {
    made: Made<T>,
    bins: usize,
    bound: T,
}

impl<T: Real> From<SplineAutoregressive<T>> for AutoregressiveRepr<T> {
    fn from(l: SplineAutoregressive<T>) -> Self {
        AutoregressiveRepr {
            made: l.made,
            bins: l.bins,
            bound: l.bound,
        }
    }
}

impl<T: Real> TryFrom<AutoregressiveRepr<T>> for SplineAutoregressive<T> {
    type Error = Error;
    fn try_from(r: AutoregressiveRepr<T>) -> Result<Self, Error> {
        Self::from_made(r.made, r.bins, r.bound)
    }
}

impl<T: Real> SplineAutoregressive<T> {
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
        check_spline_shape(CTX, bins, bound)?;
        let made = Made::with_order(dim, 0, params_per_coord(bins), order, config, rng)
            .map_err(|e| super::maf::rename_context(e, CTX))?;
        Ok(Self { made, bins, bound })
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
        check_spline_shape(CTX, bins, bound)?;
        let made = Made::with_order(dim, context_dim, params_per_coord(bins), order, config, rng)
            .map_err(|e| super::maf::rename_context(e, CTX))?;
        Ok(Self { made, bins, bound })
    }

    /// Wraps an existing MADE with `3·bins − 1` outputs per dimension (and
    /// any context dimension: a MADE with a context makes a conditional layer).
    pub fn from_made(made: Made<T>, bins: usize, bound: T) -> Result<Self, Error> {
        const CTX: &str = "SplineAutoregressive::from_made";
        check_spline_shape(CTX, bins, bound)?;
        if made.params_per_dim() != params_per_coord(bins) {
            return Err(check::invalid(
                CTX,
                "made",
                &format!(
                    "a MADE with {} outputs per dimension",
                    params_per_coord(bins)
                ),
                format!("{} outputs per dimension", made.params_per_dim()),
            ));
        }
        Ok(Self { made, bins, bound })
    }

    /// The conditioner.
    pub fn made(&self) -> &Made<T> {
        &self.made
    }

    /// The autoregressive order.
    pub fn order(&self) -> &[usize] {
        self.made.order()
    }

    /// Number of bins `K` of every spline.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The half-width `B` of the interval `[−B, B]` the splines act on.
    pub fn bound(&self) -> T {
        self.bound
    }

    /// All parameters in one buffer.
    pub fn params(&self) -> &[T] {
        self.made.params()
    }

    /// Mutable parameter buffer; call [`SplineAutoregressive::enforce_masks`]
    /// after writing to it from outside a training loop.
    pub fn params_mut(&mut self) -> &mut [T] {
        self.made.params_mut()
    }

    /// Re-zeroes masked weights.
    pub fn enforce_masks(&mut self) {
        self.made.enforce_masks()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.made.num_params()
    }

    fn dim_(&self) -> usize {
        self.made.dim()
    }

    /// Gathers coordinate `i`'s raw parameters (rows `p·D + i`) of sample `s`.
    #[inline]
    fn gather(&self, out: &DMatrix<T>, i: usize, s: usize, theta: &mut [T]) {
        let d = self.dim_();
        for (p, t) in theta.iter_mut().enumerate() {
            *t = out[(p * d + i, s)];
        }
    }
}

impl<T: Real> super::autoregressive::AutoregressiveKernel<T> for SplineAutoregressive<T> {
    const NAME: &'static str = "SplineAutoregressive";
    const SEQUENTIAL: &'static str = "the forward (sampling) direction takes D sequential MADE passes and has \
         no backward pass; train through the inverse direction (data → base, one \
         MADE pass, as maximum likelihood does), or, if the loss differentiates \
         through sampling, wrap the layer in `Invert` so that sampling is the \
         one-pass direction";
    fn made(&self) -> &Made<T> {
        &self.made
    }
    fn invert_with(&self, x: &DMatrix<T>, out: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let d = self.dim_();
        let mut theta = vec![T::zero(); params_per_coord(self.bins)];
        let mut u = DMatrix::zeros(d, x.ncols());
        let mut ldj = DVector::zeros(x.ncols());
        for s in 0..x.ncols() {
            let mut acc = T::zero();
            for i in 0..d {
                self.gather(out, i, s, &mut theta);
                let (v, l) = rqs_inverse(x[(i, s)], &theta, self.bins, self.bound);
                u[(i, s)] = v;
                acc += l;
            }
            ldj[s] = acc;
        }
        (u, ldj)
    }
    fn density_cotangents(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let d = self.dim_();
        let p = params_per_coord(self.bins);
        let mut grad_out = DMatrix::zeros(out.nrows(), x.ncols());
        let mut grad_x = DMatrix::zeros(d, x.ncols());
        let mut theta = vec![T::zero(); p];
        let mut g_theta = vec![T::zero(); p];
        for s in 0..x.ncols() {
            for i in 0..d {
                self.gather(out, i, s, &mut theta);
                g_theta.iter_mut().for_each(|g| *g = T::zero());
                grad_x[(i, s)] = rqs_inverse_backward(
                    x[(i, s)],
                    &theta,
                    self.bins,
                    self.bound,
                    grad_u[(i, s)],
                    grad_log_det[s],
                    &mut g_theta,
                );
                for (q, g) in g_theta.iter().enumerate() {
                    grad_out[(q * d + i, s)] = *g;
                }
            }
        }
        (grad_x, grad_out)
    }
    fn scratch(&self) -> usize {
        params_per_coord(self.bins)
    }
    fn generate_step(&self, step: &DMatrix<T>, u: T, s: usize, theta: &mut [T]) -> (T, T) {
        // Row p of a step's output is parameter p of the coordinate.
        for (p, t) in theta.iter_mut().enumerate() {
            *t = step[(p, s)];
        }
        rqs_forward(u, theta, self.bins, self.bound)
    }
}

super::autoregressive::autoregressive_layer!(SplineAutoregressive);
