use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, elementwise_log_det};
use crate::Real;

/// Elementwise `y = tanh(x)`, mapping `R^D` onto `(−1, 1)^D`.
///
/// `log|dy/dx| = 2 (log 2 − x − softplus(−2x))`, finite for every finite `x`.
/// The inverse is `atanh y = ½ (log1p(y) − log1p(−y))`; points outside
/// `(−1, 1)` are outside the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tanh;

impl<T: Real> Bijector<T> for Tanh {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        x.map(|v| v.tanh())
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        let half = T::lit(0.5);
        y.map(|v| half * (v.ln_1p() - (-v).ln_1p()))
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        let two = T::lit(2.0);
        let ln2 = T::ln_2();
        elementwise_log_det(x, |v| two * (ln2 - v - (-two * v).softplus()))
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        // dx/dy = 1 / (1 − y²) = 1 / ((1 − y)(1 + y)).
        elementwise_log_det(y, |v| -(v.ln_1p() + (-v).ln_1p()))
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Tanh,
    // y = tanh x, log-det log(1 − tanh² x), whose derivative is −2 tanh x.
    forward: |this, x, gy, gl| super::zip_elementwise(x, gy, gl, |v, g, l| {
        let t = v.tanh();
        g * (T::one() - t * t) - l * (t + t)
    }),
    // x = atanh y, log-det −log(1 − y²), whose derivative is 2y / (1 − y²).
    inverse: |this, y, gx, gl| super::zip_elementwise(y, gx, gl, |v, g, l| {
        let d = (T::one() - v) * (T::one() + v);
        (g + l * (v + v)) / d
    })
);
