use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, elementwise_log_det};
use crate::error::check;
use crate::{Error, Real};

/// A smooth, increasing bijection of `R` onto the interval `(low, high)`,
/// elementwise, that is nearly the identity well inside it (TensorFlow
/// Probability's `SoftClip`, with both bounds).
///
/// With `h` the hinge softness, `sp_h(z) = h · log(1 + e^{z/h})` (a softplus
/// whose kink is `h` wide) and `w = high − low`:
///
/// ```text
/// y = high − c · sp_h(w − sp_h(x − low)),    c = w / sp_h(w).
/// ```
///
/// `sp_h(x − low)` is a soft `max(x, low) − low`, `w − sp_h(w − ·)` a soft
/// `min(·, w)`, and the factor `c < 1` shrinks the result so that the image
/// is exactly `(low, high)`. For `low + h ≪ x ≪ high − h` it is `x` up to
/// about `h·(e^{−(x−low)/h} + e^{−(high−x)/h}) + (1 − c)·(high − x)` (and
/// `1 − c ≈ (h/w)·e^{−w/h}`); a larger `h` gives a smoother map with a
/// larger distortion inside the interval.
///
/// `log dy/dx = log c + log σ((x − low)/h) + log σ((w − sp_h(x − low))/h)`,
/// finite wherever `(x − low)/h` is (about `−|x − bound|/h` far outside the
/// interval). The inverse solves the two softplus steps in closed form.
/// Values and inverses are computed from the distance to the nearer bound,
/// so they stay accurate near both ends (down to `low = 0` with tiny `y`).
///
/// **Support.** Domain `R`; image `(low, high)` in every coordinate. Far
/// outside the interval the output rounds to the bound itself (as a
/// sigmoid's does to 0 or 1), which is outside the image. Points with an
/// entry `≤ low` or `≥ high` (or NaN) are outside the image: `inverse` gives
/// NaN in those entries and the inverse log-det of their columns is NaN (a
/// transformed log-density there is `−∞`).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
///
/// let clip = SoftClip::new(-10.0_f64, 10.0, 1.0)?;
/// let x = DMatrix::from_row_slice(1, 3, &[-15.0, 1.0, 20.0]);
/// let y = clip.forward(&x);
/// assert!(y.iter().all(|v| -10.0 < *v && *v < 10.0));
/// assert!((y[(0, 1)] - 1.0).abs() < 2e-4); // nearly the identity inside
/// assert!((clip.inverse(&y) - &x).amax() < 1e-9);
/// assert!(clip.inverse(&DMatrix::from_element(1, 1, 10.0))[(0, 0)].is_nan());
/// assert!(SoftClip::new(1.0_f64, 1.0, 1.0).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SoftClipRepr<T>", into = "SoftClipRepr<T>")]
pub struct SoftClip<T: Real> {
    low: T,
    high: T,
    hinge_softness: T,
}

crate::checked_serde::checked_serde!(
    SoftClip,
    SoftClipRepr {
        low: T,
        high: T,
        hinge_softness: T,
    },
    |r| SoftClip::new(r.low, r.high, r.hinge_softness)
);

impl<T: Real> SoftClip<T> {
    /// The soft clip onto `(low, high)` with hinge softness `hinge_softness`
    /// (TFP's default is 1). Errors unless `low` and `high` are finite with
    /// `low < high` and a finite width `high − low`, and `hinge_softness` is
    /// finite and positive.
    pub fn new(low: T, high: T, hinge_softness: T) -> Result<Self, Error> {
        const CONTEXT: &str = "SoftClip::new";
        if !low.is_finite() {
            return Err(check::invalid(CONTEXT, "low", "finite", low));
        }
        if !high.is_finite() || high <= low || !(high - low).is_finite() {
            return Err(check::invalid(
                CONTEXT,
                "high",
                &format!("finite and above low = {low} (by a finite width)"),
                high,
            ));
        }
        if !hinge_softness.is_finite() || hinge_softness <= T::zero() {
            return Err(check::invalid(
                CONTEXT,
                "hinge_softness",
                "finite and positive",
                hinge_softness,
            ));
        }
        Ok(Self {
            low,
            high,
            hinge_softness,
        })
    }

    /// The lower bound of the image.
    pub fn low(&self) -> T {
        self.low
    }

    /// The upper bound of the image.
    pub fn high(&self) -> T {
        self.high
    }

    /// The hinge softness `h`.
    pub fn hinge_softness(&self) -> T {
        self.hinge_softness
    }

    /// The constants of one evaluation.
    fn consts(&self) -> Consts<T> {
        let h = self.hinge_softness;
        let width = (self.high - self.low) / h;
        let sp_width = width.softplus();
        let c = width / sp_width;
        Consts {
            h,
            width,
            sp_width,
            ch: c * h,
            log_c: width.ln() - sp_width.ln(),
        }
    }
}

/// Everything in units of `h`: `width = W = w/h`, `sp_width = softplus(W)`,
/// `ch = c·h` and `log_c = log c`.
#[derive(Clone, Copy)]
struct Consts<T> {
    h: T,
    width: T,
    sp_width: T,
    ch: T,
    log_c: T,
}

/// `(t, s, v)` at `x`: `t = (x − low)/h`, `s = softplus(t)` and `v = W − s`,
/// so that `y = high − c·h·softplus(v)`.
#[inline]
fn forward_parts<T: Real>(b: &SoftClip<T>, k: &Consts<T>, x: T) -> (T, T, T) {
    let t = (x - b.low) / k.h;
    let s = t.softplus();
    (t, s, k.width - s)
}

/// `softplus(W) − softplus(v)` with `v = W − s`, `s ≥ 0`: for `s < 1` as
/// `log1p((1 − e^{−s}) / (e^{−W} + e^{−s}))`, accurate relative to its
/// (then small) value; beyond, the plain difference, which is at least
/// `σ(W − 1)` and cannot overflow.
#[inline]
fn lower_gap<T: Real>(k: &Consts<T>, s: T, v: T) -> T {
    if s < T::one() {
        (-(-s).exp_m1() / ((-k.width).exp() + (-s).exp())).ln_1p()
    } else {
        k.sp_width - v.softplus()
    }
}

/// The inverse at one entry: `(x, s, u)` with `s = softplus(t)` and
/// `u = softplus(v)` (see [`forward_parts`]), or `None` outside `(low, high)`.
#[inline]
fn inverse_parts<T: Real>(b: &SoftClip<T>, k: &Consts<T>, y: T) -> Option<(T, T, T)> {
    let (above, below) = (y - b.low, b.high - y);
    if !(above > T::zero() && below > T::zero()) {
        return None;
    }
    let u = below / k.ch;
    let s = if above <= below {
        // Solve softplus(W) − softplus(W − s) = D for s:
        // s = D − log1p(e^{D−W}·expm1(−D)).
        let d = above / k.ch;
        d - ((d - k.width).exp() * (-d).exp_m1()).ln_1p()
    } else {
        // v = softplus⁻¹(u), s = W − v.
        k.width - (u + (-(-u).exp_m1()).ln())
    };
    let t = s + (-(-s).exp_m1()).ln();
    Some((b.low + k.h * t, s, u))
}

/// `log dy/dx` from `log σ(t) = log(1 − e^{−s})` and `log σ(v) = log(1 − e^{−u})`.
#[inline]
fn log_derivative_from<T: Real>(k: &Consts<T>, s: T, u: T) -> T {
    k.log_c + (-(-s).exp_m1()).ln() + (-(-u).exp_m1()).ln()
}

/// `(dy/dx, d log(dy/dx)/dx)` from `σ(±t)` and `σ(±v)`.
#[inline]
fn slopes<T: Real>(k: &Consts<T>, sig_t: T, sig_neg_t: T, sig_v: T, sig_neg_v: T) -> (T, T) {
    let c = k.ch / k.h;
    (c * sig_v * sig_t, (sig_neg_t - sig_neg_v * sig_t) / k.h)
}

impl<T: Real> Bijector<T> for SoftClip<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        let k = self.consts();
        x.map(|v| {
            let (_, s, vv) = forward_parts(self, &k, v);
            let below = k.ch * vv.softplus();
            let above = k.ch * lower_gap(&k, s, vv);
            if above <= below {
                self.low + above
            } else {
                self.high - below
            }
        })
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        let k = self.consts();
        y.map(|v| inverse_parts(self, &k, v).map_or(T::nan(), |p| p.0))
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        let k = self.consts();
        elementwise_log_det(x, |v| {
            let (t, _, vv) = forward_parts(self, &k, v);
            k.log_c + t.log_sigmoid() + vv.log_sigmoid()
        })
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        let k = self.consts();
        elementwise_log_det(y, |v| {
            inverse_parts(self, &k, v).map_or(T::nan(), |(_, s, u)| -log_derivative_from(&k, s, u))
        })
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let k = self.consts();
        let mut ildj = DVector::zeros(y.ncols());
        let x = DMatrix::from_fn(y.nrows(), y.ncols(), |i, j| {
            match inverse_parts(self, &k, y[(i, j)]) {
                Some((x, s, u)) => {
                    ildj[j] -= log_derivative_from(&k, s, u);
                    x
                }
                None => {
                    ildj[j] = T::nan();
                    T::nan()
                }
            }
        });
        (x, ildj)
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(SoftClip<T>,
    forward: |this, x, gy, gl| {
        let k = this.consts();
        super::zip_elementwise(x, gy, gl, |v, g, l| {
            let (t, _, vv) = forward_parts(this, &k, v);
            let (d, dlog) = slopes(&k, t.sigmoid(), (-t).sigmoid(), vv.sigmoid(), (-vv).sigmoid());
            g * d + l * dlog
        })
    },
    // x = f⁻¹(y): dx/dy = 1 / f'(x), and the inverse log-det −log f'(x) has
    // derivative −(log f')'(x) / f'(x).
    inverse: |this, y, gx, gl| {
        let k = this.consts();
        super::zip_elementwise(y, gx, gl, |v, g, l| match inverse_parts(this, &k, v) {
            Some((_, s, u)) => {
                let (d, dlog) = slopes(&k, -(-s).exp_m1(), (-s).exp(), -(-u).exp_m1(), (-u).exp());
                (g - l * dlog) / d
            }
            None => T::nan(),
        })
    }
);
