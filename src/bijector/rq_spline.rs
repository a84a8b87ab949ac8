//! Monotonic rational-quadratic splines (Durkan, Bekasov, Murray & Papamakarios
//! 2019, *Neural Spline Flows*): the elementwise [`RationalQuadraticSpline`],
//! whose documentation states the map, its parametrisation and the numerical
//! safeguards, and the one-coordinate kernels ([`rqs_forward`], [`rqs_inverse`],
//! [`rqs_knots`]) that the conditioned spline layers
//! ([`SplineCoupling`](super::SplineCoupling),
//! [`SplineAutoregressive`](super::SplineAutoregressive)) share.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

mod backward;
mod kernel;
pub(crate) use backward::{rqs_forward_backward, rqs_inverse_backward};
use kernel::{Bin, MAX_BINS, MIN_BIN, Side, split};
pub(crate) use kernel::{
    check_spline_shape, params_per_coord, rqs_forward, rqs_inverse, rqs_knots,
};

/// An elementwise monotonic rational-quadratic spline (Durkan, Bekasov,
/// Murray & Papamakarios 2019) with explicit parameters: coordinate `i` goes
/// through its own `K`-bin spline on `[−B, B]`, and through the identity
/// outside. The Jacobian is diagonal; `log|det| = Σᵢ log dyᵢ/dxᵢ`, with 0
/// from every coordinate in the tails.
///
/// ## The map, one coordinate
///
/// On `[−B, B]` the spline has `K` bins with knots `−B = x₀ < x₁ < … < x_K = B`
/// and `−B = y₀ < … < y_K = B`, and positive derivatives `δ₀, …, δ_K` at the
/// knots. In bin `k`, with `w = x_{k+1} − x_k`, `h = y_{k+1} − y_k`, `s = h/w`
/// and `ξ = (x − x_k)/w ∈ [0, 1]` (Durkan et al. eq. 4):
///
/// ```text
/// y = y_k + h [s ξ² + δ_k ξ(1−ξ)] / [s + (δ_{k+1} + δ_k − 2s) ξ(1−ξ)]
/// ```
///
/// and (eq. 5)
///
/// ```text
/// dy/dx = s² [δ_{k+1} ξ² + 2s ξ(1−ξ) + δ_k (1−ξ)²] / [s + (δ_{k+1} + δ_k − 2s) ξ(1−ξ)]².
/// ```
///
/// Outside `[−B, B]` the map is the identity (linear tails of slope 1). Since
/// `δ₀ = δ_K = 1`, value and slope match at `±B`: the map is C¹ on all of `R`.
///
/// The inverse solves `a ξ² + b ξ + c = 0` in bin `k` (found among the
/// y-knots), with `η = y − y_k`, `Δ = δ_{k+1} + δ_k − 2s` (Durkan et al.,
/// appendix A):
///
/// ```text
/// a = h (s − δ_k) + η Δ,   b = h δ_k − η Δ,   c = −s η,
/// ξ = 2c / (−b − √(b² − 4ac)),
/// ```
///
/// the form without cancellation (the textbook `(−b + √…)/(2a)` loses all
/// precision when `4ac ≪ b²`, i.e. near a knot, and divides by zero when
/// `a = 0`).
///
/// ## Parameters of one coordinate: `3K − 1` raw numbers
///
/// `raw = [w̃₀ … w̃_{K−1} | h̃₀ … h̃_{K−1} | d̃₁ … d̃_{K−1}]`: `K` unnormalised
/// widths, then `K` unnormalised heights, then the `K − 1` unnormalised
/// interior derivatives. They map to the spline by
///
/// - bin width `x_{k+1} − x_k = 2B · (m + (1 − K m) · softmax(w̃)_k)` with
///   `m = `[`RationalQuadraticSpline::MIN_BIN_WIDTH`]` = 1e-3`: every bin covers
///   at least the fraction `1e-3` of the interval, i.e. is at least `2B · 1e-3`
///   wide (this needs `K m < 1`, so `K ≤ `[`RationalQuadraticSpline::MAX_BINS`]);
///   the knots are the cumulative sums, with `x₀ = −B` and `x_K = B` set exactly;
/// - bin heights likewise from `h̃`, with the same minimum fraction
///   [`RationalQuadraticSpline::MIN_BIN_HEIGHT`]` = 1e-3`;
/// - interior derivatives `δ_k = `[`positive_scale`](crate::nn::positive_scale)`(d̃_k) =
///   softplus(d̃_k + c) + 1e-3` with `c = log(e^{1 − 1e-3} − 1)`, so that
///   `δ ≥ `[`RationalQuadraticSpline::MIN_DERIVATIVE`]` = 1e-3` and `d̃ = 0`
///   gives `δ = 1` (exactly in `f64`, to one ulp in `f32`); the boundary
///   derivatives `δ₀ = δ_K = 1` are fixed.
///
/// All-zero raw parameters give equal bins, `s = 1` and every `δ = 1`, for
/// which eq. 4 reduces to `y = x`: **zero parameters are the identity** (to
/// rounding: a few ulps).
///
/// ## Numerical care
///
/// The input is clamped into `[−B, B]` *before* the spline branch is evaluated,
/// and the result is selected by `|x| < B`; so an input in the tails (even
/// `±∞`) never reaches a division or a logarithm with a bad argument. The bin
/// search puts an interior knot `x_j` into bin `j` (`ξ = 0`, so `y = y_j`
/// exactly), and `x = ±B` falls in the tails (`y = x`, log-det 0, which is
/// also the spline's value and slope there). Every knot therefore maps
/// exactly onto its y-knot.
///
/// ## The parameter buffer
///
/// One contiguous `Vec` of `dim · (3K − 1)` values, coordinate after
/// coordinate: coordinate `i` owns `params[i·(3K−1) .. (i+1)·(3K−1)]`, laid
/// out as above ([`RationalQuadraticSpline::coord_params`]).
///
/// ## Training
///
/// The layer is [`Differentiable`](super::Differentiable) in both directions,
/// with the raw buffer as its parameters; the inverse's gradients come from
/// implicit differentiation of `f(x; θ) = y` (derivation in the source of
/// `rq_spline/backward.rs`).
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
///
/// let mut s = RationalQuadraticSpline::<f64>::identity(1, 4, 2.0)?;
/// let y = DMatrix::from_row_slice(1, 3, &[-0.7, 0.3, 5.0]); // 5 is in the tail
/// // L = Σ log|dx/dy| (the Jacobian term of a log-likelihood): ∂L/∂θ, ∂L/∂y.
/// let loss = |s: &RationalQuadraticSpline<f64>| s.inverse_and_log_det(&y).1.sum();
/// let mut grad = vec![0.0; s.num_params()];
/// let grad_y = s.inverse_and_log_det_backward(
///     &y, &DMatrix::zeros(1, 3), &DVector::from_element(3, 1.0), &mut grad)?;
/// assert_eq!(grad_y[(0, 2)], 0.0); // the tail is the identity
/// // Parameter 9 is the raw derivative at the middle knot: compare with a difference.
/// let h = 1e-6;
/// let l0 = loss(&s);
/// s.params_mut()[9] += h;
/// assert!(((loss(&s) - l0) / h - grad[9]).abs() < 1e-5);
/// # Ok::<(), normflow::Error>(())
/// ```
///
/// ## Example
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// // Two coordinates, 8 bins on [−3, 3], random raw parameters.
/// let spline = RationalQuadraticSpline::<f64>::random(2, 8, 3.0, &mut rng)?;
/// assert_eq!(spline.params().len(), 2 * (3 * 8 - 1));
///
/// let x = DMatrix::from_row_slice(2, 3, &[-1.0, 0.5, 7.0, 2.0, -2.9, -1e3]);
/// let (y, ldj) = spline.forward_and_log_det(&x);
/// // Outside [−3, 3] the spline is the identity: 7 and −1000 pass unchanged.
/// assert_eq!(y[(0, 2)], 7.0);
/// assert_eq!(y[(1, 2)], -1e3);
/// let (x_back, ildj) = spline.inverse_and_log_det(&y);
/// assert!((x_back - &x).amax() < 1e-12);
/// assert!((ldj + ildj).amax() < 1e-12);
///
/// // Each spline maps its knots onto each other; knots are at ±B at the ends.
/// let (xs, ys, ds) = spline.knots(0);
/// assert_eq!((xs[0], xs[8], ys[0], ys[8], ds[0], ds[8]), (-3.0, 3.0, -3.0, 3.0, 1.0, 1.0));
/// let at_knot = DMatrix::from_row_slice(2, 1, &[xs[3], 0.0]);
/// assert_eq!(spline.forward(&at_knot)[(0, 0)], ys[3]);
///
/// // All-zero raw parameters: the identity.
/// let id = RationalQuadraticSpline::<f64>::identity(2, 8, 3.0)?;
/// assert!((id.forward(&x) - &x).amax() < 1e-14);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SplineRepr<T>", into = "SplineRepr<T>")]
pub struct RationalQuadraticSpline<T: Real> {
    dim: usize,
    bins: usize,
    bound: T,
    params: Vec<T>,
}

crate::checked_serde::checked_serde!(RationalQuadraticSpline, SplineRepr {
    dim: usize,
    bins: usize,
    bound: T,
    params: Vec<T>,
}, |r| Self::new(r.dim, r.bins, r.bound, r.params));

impl<T: Real> RationalQuadraticSpline<T> {
    /// The smallest bin width, as a fraction of the interval `2B`.
    pub const MIN_BIN_WIDTH: f64 = MIN_BIN;
    /// The smallest bin height, as a fraction of the interval `2B`.
    pub const MIN_BIN_HEIGHT: f64 = MIN_BIN;
    /// The smallest interior derivative (the floor of
    /// [`positive_scale`](crate::nn::positive_scale)).
    pub const MIN_DERIVATIVE: f64 = crate::nn::MIN_SCALE;
    /// The most bins a spline can have: `K · MIN_BIN_WIDTH` must stay below 1.
    pub const MAX_BINS: usize = MAX_BINS;

    /// A spline over `dim` coordinates with `bins` bins on `[−bound, bound]`
    /// and the raw parameters `params` (`dim · (3·bins − 1)` finite values,
    /// laid out as in the type's documentation).
    ///
    /// Errors if `dim` is 0, `bins` is 0 or above [`Self::MAX_BINS`], `bound`
    /// is not finite and positive, `params` has the wrong length, or a
    /// parameter is not finite.
    pub fn new(dim: usize, bins: usize, bound: T, params: Vec<T>) -> Result<Self, Error> {
        const CTX: &str = "RationalQuadraticSpline::new";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check_spline_shape(CTX, bins, bound)?;
        check::same_dim(CTX, "params", dim * params_per_coord(bins), params.len())?;
        if let Some((i, v)) = params.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(check::invalid(CTX, &format!("params[{i}]"), "finite", v));
        }
        Ok(Self {
            dim,
            bins,
            bound,
            params,
        })
    }

    /// The identity map written as a spline: all raw parameters zero (equal
    /// bins, every derivative 1).
    pub fn identity(dim: usize, bins: usize, bound: T) -> Result<Self, Error> {
        const CTX: &str = "RationalQuadraticSpline::identity";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check_spline_shape(CTX, bins, bound)?;
        Self::new(
            dim,
            bins,
            bound,
            vec![T::zero(); dim * params_per_coord(bins)],
        )
    }

    /// A spline with raw parameters drawn from `N(0, 1)`: bins of visibly
    /// different widths and heights, interior derivatives mostly between 0.2
    /// and 2.6 (raw values within ±2): a non-trivial map, for tests and for
    /// initialisation.
    pub fn random(dim: usize, bins: usize, bound: T, rng: &mut dyn Rng) -> Result<Self, Error> {
        const CTX: &str = "RationalQuadraticSpline::random";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check_spline_shape(CTX, bins, bound)?;
        let n = dim * params_per_coord(bins);
        let params = crate::batch::standard_normal_matrix::<T>(n, 1, rng)
            .as_slice()
            .to_vec();
        Self::new(dim, bins, bound, params)
    }

    /// Number of bins `K`.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The half-width `B` of the interval `[−B, B]` the spline acts on.
    pub fn bound(&self) -> T {
        self.bound
    }

    /// Raw parameters per coordinate, `3K − 1`.
    pub fn params_per_coord(&self) -> usize {
        params_per_coord(self.bins)
    }

    /// All raw parameters, coordinate after coordinate (see the type's docs).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable access to the raw parameter buffer. Any finite values give a
    /// valid (monotonic) spline.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `dim · (3K − 1)`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The raw parameters of coordinate `coord`.
    ///
    /// # Panics
    /// If `coord ≥ dim`.
    pub fn coord_params(&self, coord: usize) -> &[T] {
        assert!(
            coord < self.dim,
            "RationalQuadraticSpline::coord_params: coordinate {coord} out of range for dimension {}",
            self.dim
        );
        let p = self.params_per_coord();
        &self.params[coord * p..(coord + 1) * p]
    }

    /// The knots of coordinate `coord`'s spline: `(x-knots, y-knots,
    /// derivatives)`, `K + 1` values each, the first and last being `−B`, `B`
    /// and 1. These are bit-for-bit the values the map is evaluated with, so
    /// `forward` maps `xs[j]` to exactly `ys[j]`.
    ///
    /// # Panics
    /// If `coord ≥ dim`.
    pub fn knots(&self, coord: usize) -> (Vec<T>, Vec<T>, Vec<T>) {
        rqs_knots(self.coord_params(coord), self.bins, self.bound)
    }

    /// Applies `kernel` to every entry, with the entry's coordinate's raw
    /// parameters; returns the outputs and the per-column sums of the log-derivatives.
    fn map(
        &self,
        x: &DMatrix<T>,
        kernel: fn(T, &[T], usize, T) -> (T, T),
    ) -> (DMatrix<T>, DVector<T>) {
        let mut y = DMatrix::zeros(self.dim, x.ncols());
        let mut ldj = DVector::zeros(x.ncols());
        let p = self.params_per_coord();
        for s in 0..x.ncols() {
            let mut acc = T::zero();
            for (i, raw) in self.params.chunks_exact(p).enumerate() {
                let (v, l) = kernel(x[(i, s)], raw, self.bins, self.bound);
                y[(i, s)] = v;
                acc += l;
            }
            ldj[s] = acc;
        }
        (y, ldj)
    }
}

impl<T: Real> Bijector<T> for RationalQuadraticSpline<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("RationalQuadraticSpline::forward", self.dim, x);
        self.map(x, rqs_forward).0
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("RationalQuadraticSpline::inverse", self.dim, y);
        self.map(y, rqs_inverse).0
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "RationalQuadraticSpline::forward_log_det_jacobian",
            self.dim,
            x,
        );
        self.map(x, rqs_forward).1
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "RationalQuadraticSpline::inverse_log_det_jacobian",
            self.dim,
            y,
        );
        self.map(y, rqs_inverse).1
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("RationalQuadraticSpline::forward_and_log_det", self.dim, x);
        self.map(x, rqs_forward)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("RationalQuadraticSpline::inverse_and_log_det", self.dim, y);
        self.map(y, rqs_inverse)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    super::differentiable_hooks!();
}
