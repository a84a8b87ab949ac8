//! The one-coordinate rational-quadratic spline: its knots from the raw
//! parameters ([`Side`]), one bin's map and inverse ([`Bin`]), and the kernels
//! every spline layer evaluates ([`rqs_forward`], [`rqs_inverse`],
//! [`rqs_knots`]). The map, the parametrisation and the safeguards are stated
//! in [`RationalQuadraticSpline`](super::RationalQuadraticSpline)'s
//! documentation.

use crate::error::check;
use crate::nn::positive_scale;
use crate::{Error, Real};

/// The number of raw parameters of one coordinate's spline with `bins` bins: `3K − 1`.
#[inline]
pub(crate) fn params_per_coord(bins: usize) -> usize {
    3 * bins - 1
}

/// Validates the spline shape shared by every spline layer: `1 ≤ bins ≤ MAX_BINS`
/// and a finite, positive `bound`.
pub(crate) fn check_spline_shape<T: Real>(
    context: &str,
    bins: usize,
    bound: T,
) -> Result<(), Error> {
    if bins == 0 || bins > MAX_BINS {
        return Err(Error::InvalidDimension {
            context: context.into(),
            argument: "bins".into(),
            expected: format!(
                "between 1 and {MAX_BINS} (the minimum bin width {MIN_BIN:e} of the interval, times the number of bins, must stay below 1)"
            ),
            got: bins,
        });
    }
    if !bound.is_finite() || bound <= T::zero() {
        return Err(check::invalid(
            context,
            "bound",
            "finite and positive",
            bound,
        ));
    }
    Ok(())
}

/// The smallest bin width and height, as a fraction of the interval `2B`.
pub(super) const MIN_BIN: f64 = 1e-3;
/// The most bins a spline can have: `K · MIN_BIN` must stay below 1.
pub(super) const MAX_BINS: usize = 999;

/// One side (x or y) of a spline's knots, from its `K` raw values: the knots
/// `−B = k₀ < … < k_K = B` computed lazily, without allocating.
pub(super) struct Side<'a, T: Real> {
    pub(super) raw: &'a [T],
    pub(super) max: T,
    pub(super) sum: T,
    pub(super) bound: T,
}

impl<'a, T: Real> Side<'a, T> {
    pub(super) fn new(raw: &'a [T], bound: T) -> Self {
        let max = raw.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        let sum = raw.iter().fold(T::zero(), |acc, &v| acc + (v - max).exp());
        Self {
            raw,
            max,
            sum,
            bound,
        }
    }

    /// The knots `k₀, …, k_K`. Every caller goes through this iterator, so the
    /// knots used to evaluate the spline and the ones reported by
    /// [`RationalQuadraticSpline::knots`] are bit-identical.
    pub(super) fn knots(&self) -> impl Iterator<Item = T> + '_ {
        let bins = self.raw.len();
        let min = T::lit(MIN_BIN);
        let spread = T::one() - T::lit(bins as f64) * min;
        let two_b = self.bound + self.bound;
        let mut cum = T::zero();
        (0..=bins).map(move |j| {
            if j == 0 {
                -self.bound
            } else if j == bins {
                self.bound
            } else {
                cum += min + spread * ((self.raw[j - 1] - self.max).exp() / self.sum);
                -self.bound + two_b * cum
            }
        })
    }

    /// The bin `k` holding `v ∈ [−B, B]` and its edges `(k_k, k_{k+1})`: the
    /// last bin whose left edge is `≤ v`.
    pub(super) fn locate(&self, v: T) -> (usize, T, T) {
        let bins = self.raw.len();
        let mut it = self.knots();
        let mut left = it.next().expect("at least two knots");
        for (k, right) in it.enumerate() {
            if v < right || k + 1 == bins {
                return (k, left, right);
            }
            left = right;
        }
        unreachable!("the loop returns at the last bin")
    }

    /// The edges `(k_k, k_{k+1})` of bin `k`.
    pub(super) fn edges(&self, k: usize) -> (T, T) {
        let mut it = self.knots().skip(k);
        let left = it.next().expect("bin index in range");
        let right = it.next().expect("bin index in range");
        (left, right)
    }
}

/// Which raw derivative sets the derivative at knot `j` (`0 ≤ j ≤ K`), if
/// any. Two layouts: `K − 1` raw values are the interior knots' and both
/// ends have derivative 1 (`None`); `K` raw values are a circular spline's,
/// where value 0 is the one derivative shared by both ends and value `j` the
/// interior knot `j`'s.
#[inline]
pub(super) fn derivative_index(raw_len: usize, bins: usize, j: usize) -> Option<usize> {
    if raw_len == bins {
        Some(j % bins)
    } else if j == 0 || j == bins {
        None
    } else {
        Some(j - 1)
    }
}

/// The derivative at knot `j` (`0 ≤ j ≤ K`) from the raw ones (either
/// layout of [`derivative_index`]).
#[inline]
fn knot_derivative<T: Real>(raw_d: &[T], bins: usize, j: usize) -> T {
    match derivative_index(raw_d.len(), bins, j) {
        Some(i) => positive_scale(raw_d[i]).0,
        None => T::one(),
    }
}

/// One bin: left knot, width, height and the derivatives at both ends.
pub(super) struct Bin<T> {
    pub(super) x0: T,
    pub(super) w: T,
    pub(super) y0: T,
    pub(super) h: T,
    pub(super) d0: T,
    pub(super) d1: T,
}

impl<T: Real> Bin<T> {
    /// Bin `k` of `bins` with x-edges `xe`, y-edges `ye` and the raw
    /// derivatives `raw_d` (either layout of [`derivative_index`]).
    #[inline]
    pub(super) fn new(k: usize, bins: usize, xe: (T, T), ye: (T, T), raw_d: &[T]) -> Self {
        Self {
            x0: xe.0,
            w: xe.1 - xe.0,
            y0: ye.0,
            h: ye.1 - ye.0,
            d0: knot_derivative(raw_d, bins, k),
            d1: knot_derivative(raw_d, bins, k + 1),
        }
    }

    /// `(y, log dy/dx)` at `ξ ∈ [0, 1]` (eq. 4 and eq. 5).
    #[inline]
    pub(super) fn eval(&self, xi: T) -> (T, T) {
        let one = T::one();
        let two = one + one;
        let s = self.h / self.w;
        let om = one - xi;
        let t = xi * om;
        let den = s + (self.d1 + self.d0 - two * s) * t;
        let y = self.y0 + self.h * (s * xi * xi + self.d0 * t) / den;
        let num_d = self.d1 * xi * xi + two * s * t + self.d0 * om * om;
        let log_d = two * s.ln() + num_d.ln() - two * den.ln();
        (y, log_d)
    }

    /// `(ξ, x)` of the point of this bin that maps to `y`, by the stable root.
    #[inline]
    pub(super) fn solve(&self, y: T) -> (T, T) {
        let one = T::one();
        let two = one + one;
        let s = self.h / self.w;
        let eta = y - self.y0;
        let delta = self.d1 + self.d0 - two * s;
        let a = self.h * (s - self.d0) + eta * delta;
        let b = self.h * self.d0 - eta * delta;
        let c = -s * eta;
        let disc = (b * b - T::lit(4.0) * a * c).max(T::zero());
        let xi = (two * c / (-b - disc.sqrt())).max(T::zero()).min(one);
        (xi, self.x0 + xi * self.w)
    }
}

/// The three blocks of one coordinate's raw parameters: `3K − 1` of them,
/// or `3K` for a circular spline (`K` derivatives, [`derivative_index`]).
#[inline]
pub(super) fn split<T: Real>(raw: &[T], bins: usize) -> (&[T], &[T], &[T]) {
    debug_assert!(raw.len() == params_per_coord(bins) || raw.len() == 3 * bins);
    let (w, rest) = raw.split_at(bins);
    let (h, d) = rest.split_at(bins);
    (w, h, d)
}

/// `(y, log dy/dx)` of one coordinate's spline at `x`, from its `3K − 1` raw
/// parameters (layout in [`RationalQuadraticSpline`]'s docs). The identity
/// with log-derivative 0 outside `(−B, B)`; NaN in, NaN out.
pub(crate) fn rqs_forward<T: Real>(x: T, raw: &[T], bins: usize, bound: T) -> (T, T) {
    let (rw, rh, rd) = split(raw, bins);
    // Clamp first: the spline branch only ever sees a point of [−B, B].
    let xc = x.max(-bound).min(bound);
    let (k, x0, x1) = Side::new(rw, bound).locate(xc);
    let (y0, y1) = Side::new(rh, bound).edges(k);
    let bin = Bin::new(k, bins, (x0, x1), (y0, y1), rd);
    let xi = ((xc - x0) / bin.w).max(T::zero()).min(T::one());
    let (y, log_d) = bin.eval(xi);
    if x.abs() < bound {
        (y, log_d)
    } else {
        (x, T::zero())
    }
}

/// `(x, log dx/dy)` of the inverse of one coordinate's spline at `y`: the `x`
/// with `rqs_forward(x).0 = y`, and `log dx/dy = −log dy/dx` at that `x`.
pub(crate) fn rqs_inverse<T: Real>(y: T, raw: &[T], bins: usize, bound: T) -> (T, T) {
    let (rw, rh, rd) = split(raw, bins);
    let yc = y.max(-bound).min(bound);
    let (k, y0, y1) = Side::new(rh, bound).locate(yc);
    let (x0, x1) = Side::new(rw, bound).edges(k);
    let bin = Bin::new(k, bins, (x0, x1), (y0, y1), rd);
    let (xi, x) = bin.solve(yc);
    let (_, log_d) = bin.eval(xi);
    if y.abs() < bound {
        (x, -log_d)
    } else {
        (y, T::zero())
    }
}

/// `(x-knots, y-knots, derivatives)` of one coordinate's spline, `K + 1` each.
pub(crate) fn rqs_knots<T: Real>(raw: &[T], bins: usize, bound: T) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (rw, rh, rd) = split(raw, bins);
    (
        Side::new(rw, bound).knots().collect(),
        Side::new(rh, bound).knots().collect(),
        (0..=bins).map(|j| knot_derivative(rd, bins, j)).collect(),
    )
}
