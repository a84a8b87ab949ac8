use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, elementwise_log_det};
use crate::error::check;
use crate::{Error, Real};

/// Elementwise `y = x^p` for a fixed finite exponent `p ≠ 0`, mapping
/// `(0, ∞)^D` onto `(0, ∞)^D` (TensorFlow Probability's `Power` on positive
/// inputs). Increasing for `p > 0`, decreasing for `p < 0`.
///
/// `log|dy/dx| = log|p| + (p − 1) log x`, finite for every finite `x > 0`;
/// the inverse is `x = y^{1/p}`, with inverse log-det
/// `−log|p| − (1 − 1/p) log y`, evaluated from `y` directly.
///
/// **Support.** Domain and image `(0, ∞)^D`. Points with an entry `≤ 0` (or
/// NaN) are outside both: `forward` and `inverse` give NaN in those entries
/// and the log-dets of their columns are NaN (a transformed log-density
/// there is `−∞`). `x^p` overflows to `+∞` or underflows to 0 where the true
/// value is beyond the range of `T`, as `powf` does.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
///
/// let square = Power::new(2.0_f64)?;
/// let x = DMatrix::from_element(1, 1, 3.0);
/// assert_eq!(square.forward(&x)[(0, 0)], 9.0);
/// assert!((square.forward_log_det_jacobian(&x)[0] - 6.0_f64.ln()).abs() < 1e-15);
/// assert!(square.inverse(&DMatrix::from_element(1, 1, -1.0))[(0, 0)].is_nan());
/// assert!(Power::new(0.0_f64).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PowerRepr<T>", into = "PowerRepr<T>")]
pub struct Power<T: Real> {
    p: T,
}

crate::checked_serde::checked_serde!(Power, PowerRepr { p: T }, |r| Power::new(r.p));

impl<T: Real> Power<T> {
    /// `y = x^p` on `(0, ∞)`; errors unless `p` is finite and nonzero.
    pub fn new(p: T) -> Result<Self, Error> {
        if !p.is_finite() || p == T::zero() {
            return Err(check::invalid("Power::new", "p", "finite and nonzero", p));
        }
        Ok(Self { p })
    }

    /// The exponent `p`.
    pub fn p(&self) -> T {
        self.p
    }
}

/// `f(v)` for `v > 0`, NaN elsewhere (outside the domain).
#[inline]
fn positive<T: Real>(v: T, f: impl Fn(T) -> T) -> T {
    if v > T::zero() { f(v) } else { T::nan() }
}

impl<T: Real> Bijector<T> for Power<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        x.map(|v| positive(v, |v| v.powf(self.p)))
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        let q = T::one() / self.p;
        y.map(|v| positive(v, |v| v.powf(q)))
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        let (lp, pm1) = (self.p.abs().ln(), self.p - T::one());
        elementwise_log_det(x, |v| positive(v, |v| lp + pm1 * v.ln()))
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        // x = y^{1/p}: log|dx/dy| = −log|p| + (1/p − 1) log y.
        let (lp, k) = (self.p.abs().ln(), T::one() / self.p - T::one());
        elementwise_log_det(y, |v| positive(v, |v| k * v.ln() - lp))
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Power<T>,
    // y = x^p, log-det log|p| + (p − 1) log x, whose derivative is (p − 1)/x.
    forward: |this, x, gy, gl| super::zip_elementwise(x, gy, gl, |v, g, l| {
        let p = this.p;
        g * p * v.powf(p - T::one()) + l * (p - T::one()) / v
    }),
    // x = y^q with q = 1/p, log-det (q − 1) log y − log|p|.
    inverse: |this, y, gx, gl| super::zip_elementwise(y, gx, gl, |v, g, l| {
        let q = T::one() / this.p;
        g * q * v.powf(q - T::one()) + l * (q - T::one()) / v
    })
);
