//! The circular rational-quadratic spline transformer of flows on tori
//! (Rezende, Papamakarios, Racanière, Albergo, Kanwar, Shanahan & Cranmer
//! 2020, *Normalizing Flows on Tori and Spheres*).

use serde::{Deserialize, Serialize};

use super::{Layout, Transformer};
use crate::Real;
use crate::bijector::rq_spline::{
    check_spline_shape, rqs_forward, rqs_forward_backward, rqs_inverse, rqs_inverse_backward,
};
use crate::nn::{positive_scale, positive_scale_derivative};

/// A rational-quadratic spline of `bins` bins that maps the circle
/// `[−π, π)` onto itself: the knots start at `(−π, −π)` and end at `(π, π)`,
/// and **one** learned derivative `δ` is shared by both ends, so that the map
/// and its derivative agree at `−π` and `π` and the spline is a smooth
/// orientation-preserving diffeomorphism of the circle (Rezende et al. 2020,
/// section 3). There are no tails: a point outside `[−π, π)` is outside the
/// support, with log-derivative `−∞` in the density direction (`+∞` in the
/// sample direction) and the value passed through unchanged, so that a flow
/// of these layers gives it log-density `−∞`, never NaN.
///
/// **Raw parameters of one coordinate: `3K`**, `[w̃₀ … w̃_{K−1} | h̃₀ … h̃_{K−1}
/// | d̃₀ d̃₁ … d̃_{K−1}]`: the `K` unnormalised widths and heights as in
/// [`RationalQuadraticSpline`](crate::bijector::RationalQuadraticSpline)
/// (with `B = π`), then the shared end derivative `δ₀ = δ_K =
/// positive_scale(d̃₀)` and the `K − 1` interior ones `δ_k =
/// positive_scale(d̃_k)`. All zero is the identity.
///
/// The sample direction is the spline, the density direction its inverse
/// (analytic: the root of a quadratic); both have hand-written backward
/// passes, shared with the other spline layers' kernels. In a
/// [`Coupling`](crate::bijector::Coupling) its conditioner reads the
/// conditioning angles as `(cos θ, sin θ)` ([`Transformer::PERIODIC`]).
///
/// ```
/// use normflow::bijector::transformer::{CircularSpline, Transformer};
///
/// let t = CircularSpline { bins: 4 };
/// let theta: Vec<f64> = (0..12).map(|i| (i as f64 * 0.7).sin()).collect();
/// let pi = std::f64::consts::PI;
/// // The ends stay put, and the slope at −π is the slope at π.
/// let (x, ld_lo) = t.sample_one(-pi, &theta);
/// assert_eq!(x, -pi);
/// let (x_hi, ld_hi) = t.sample_one(pi - 1e-9, &theta);
/// assert!((x_hi - pi).abs() < 1e-8 && (ld_lo - ld_hi).abs() < 1e-6);
/// // Round trip, and outside the circle: −∞, not NaN.
/// let (u, ld) = t.density_one(1.0, &theta);
/// let (back, ld_back) = t.sample_one(u, &theta);
/// assert!((back - 1.0).abs() < 1e-12 && (ld + ld_back).abs() < 1e-12);
/// assert_eq!(t.density_one(4.0, &theta).1, f64::NEG_INFINITY);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircularSpline {
    /// Number of bins `K`.
    pub bins: usize,
}

impl CircularSpline {
    /// Whether `v` is a point of the circle `[−π, π)` (π rounded to `T`);
    /// NaN is not.
    #[inline]
    pub fn contains<T: Real>(v: T) -> bool {
        v >= -T::pi() && v < T::pi()
    }

    /// The index of the shared end derivative's raw value among a
    /// coordinate's `3K` raw parameters: `2K`.
    #[inline]
    fn shared(&self) -> usize {
        2 * self.bins
    }

    /// `(value, log-derivative)` of the spline (`sample`) or of its inverse
    /// on the circle, in either direction.
    #[inline]
    fn map<T: Real>(&self, v: T, theta: &[T], sample: bool) -> (T, T) {
        let pi = T::pi();
        if !Self::contains(v) {
            // Outside the support; NaN stays NaN.
            let ld = if sample {
                T::infinity()
            } else {
                T::neg_infinity()
            };
            return (v, ld);
        }
        let sign = if sample { T::one() } else { -T::one() };
        if v == -pi {
            // The first knot: the kernels treat ±π as outside their open
            // interval, so the shared end derivative is read here.
            return (v, sign * positive_scale(theta[self.shared()]).1);
        }
        let (out, ld) = if sample {
            rqs_forward(v, theta, self.bins, pi)
        } else {
            rqs_inverse(v, theta, self.bins, pi)
        };
        (keep_on_circle(out), ld)
    }

    /// The backward pass of [`map`](Self::map).
    #[inline]
    fn map_backward<T: Real>(
        &self,
        v: T,
        theta: &[T],
        g_out: T,
        g_ld: T,
        g_theta: &mut [T],
        sample: bool,
    ) -> T {
        let pi = T::pi();
        if !Self::contains(v) {
            return g_out;
        }
        let kernel = if sample {
            rqs_forward_backward
        } else {
            rqs_inverse_backward
        };
        if v == -pi {
            // The value is the constant −π and the log-derivative is ±log δ:
            // the parameter gradient is the shared derivative's alone. The
            // input cotangent is the one-sided one, from the first point
            // inside.
            let (sign, raw) = (
                if sample { T::one() } else { -T::one() },
                theta[self.shared()],
            );
            let delta = positive_scale(raw).0;
            g_theta[self.shared()] += g_ld * sign * positive_scale_derivative(raw) / delta;
            let mut scratch = vec![T::zero(); theta.len()];
            let next = v + pi * T::machine_epsilon();
            return kernel(next, theta, self.bins, pi, g_out, g_ld, &mut scratch);
        }
        kernel(v, theta, self.bins, pi, g_out, g_ld, g_theta)
    }
}

/// `v` moved back into `[−π, π)` if rounding left it at `π` (or below `−π`),
/// by at most an ulp or two: the kernels' value at the last knot is exact
/// analytically, and a point a flow sends to `π` would otherwise be outside
/// the next layer's support.
#[inline]
fn keep_on_circle<T: Real>(v: T) -> T {
    let pi = T::pi();
    if v >= pi {
        pi - pi * T::machine_epsilon()
    } else if v < -pi {
        -pi
    } else {
        v
    }
}

impl<T: Real> Transformer<T> for CircularSpline {
    const NAME: &'static str = "circular spline";
    /// Each coordinate's parameters are contiguous, as in the spline coupling.
    const COUPLING_LAYOUT: Layout = Layout::CoordMajor;
    const COUPLING_NAME: &'static str = "CircularSplineCoupling";
    const AUTOREGRESSIVE_NAME: &'static str = "CircularSplineAutoregressive";
    const PERIODIC: bool = true;

    fn params_per_coord(&self) -> usize {
        3 * self.bins
    }

    fn validate(&self, context: &str) -> Result<(), crate::Error> {
        check_spline_shape(context, self.bins, T::pi())
    }

    #[inline]
    fn density_one(&self, x: T, theta: &[T]) -> (T, T) {
        self.map(x, theta, false)
    }

    #[inline]
    fn sample_one(&self, u: T, theta: &[T]) -> (T, T) {
        self.map(u, theta, true)
    }

    #[inline]
    fn density_one_backward(&self, x: T, theta: &[T], g_u: T, g_ld: T, g_theta: &mut [T]) -> T {
        self.map_backward(x, theta, g_u, g_ld, g_theta, false)
    }

    #[inline]
    fn sample_one_backward(&self, u: T, theta: &[T], g_x: T, g_ld: T, g_theta: &mut [T]) -> T {
        self.map_backward(u, theta, g_x, g_ld, g_theta, true)
    }
}
