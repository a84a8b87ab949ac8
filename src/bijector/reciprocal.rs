use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, elementwise_log_det};
use crate::Real;

/// Elementwise `y = 1/x`, a bijection of `R∖{0}` onto itself that is its own
/// inverse (TensorFlow Probability's `Reciprocal`).
///
/// `log|dy/dx| = −2 log|x|`, finite for every finite `x ≠ 0`; being its own
/// inverse, its inverse log-det at `y` is the same expression, `−2 log|y|`. It maps `(0, ∞)` onto `(0, ∞)` and
/// `(−∞, 0)` onto `(−∞, 0)`, reversing the order on each half, so it can
/// follow any map into either half-line (`Exp`, `Softplus`).
///
/// **Support.** Domain and image `R∖{0}` in every coordinate. The point 0 is
/// outside both: there `forward` and `inverse` give `±∞` (the sign of the
/// zero) and the log-dets are `+∞`, so a transformed log-density at a point
/// with a zero coordinate is `−∞`. Magnitudes below `1/T::MAX` (about
/// `5.6e-309` in `f64`, subnormal numbers only) map to `±∞` as well.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
///
/// let x = DMatrix::from_row_slice(1, 3, &[-4.0_f64, 0.5, 2.0]);
/// let y = Reciprocal.forward(&x);
/// assert_eq!(y.as_slice(), &[-0.25, 2.0, 0.5]);
/// assert_eq!(Reciprocal.forward(&y), x); // its own inverse
/// assert!((Reciprocal.forward_log_det_jacobian(&x)[0] + 2.0 * 4.0_f64.ln()).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reciprocal;

impl<T: Real> Bijector<T> for Reciprocal {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        x.map(|v| T::one() / v)
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        y.map(|v| T::one() / v)
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        let two = T::lit(2.0);
        elementwise_log_det(x, |v| -two * v.abs().ln())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        self.forward_log_det_jacobian(y)
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Reciprocal,
    // y = 1/x, log-det −2 log|x|, whose derivative is −2/x.
    forward: |this, x, gy, gl| super::zip_elementwise(x, gy, gl, |v, g, l| {
        let r = T::one() / v;
        -(g * r + l * T::lit(2.0)) * r
    }),
    // The same map: x = 1/y, log-det −2 log|y|.
    inverse: |this, y, gx, gl| super::zip_elementwise(y, gx, gl, |v, g, l| {
        let r = T::one() / v;
        -(g * r + l * T::lit(2.0)) * r
    })
);
