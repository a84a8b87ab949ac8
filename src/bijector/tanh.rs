use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::Real;

/// Elementwise `y = tanh(x)`, mapping `R^D` onto `(−1, 1)^D`.
///
/// `log|dy/dx| = 2 (log 2 − x − softplus(−2x))`, finite for every finite `x`.
/// The inverse is `atanh y = ½ (log1p(y) − log1p(−y))`; points outside
/// `(−1, 1)` are outside the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tanh;

impl<T: Real> Bijector<T> for Tanh {
    super::elementwise_maps!(
        forward: |v| v.tanh(),
        inverse: |v| T::lit(0.5) * (v.ln_1p() - (-v).ln_1p()),
        forward_log_det: |v| T::lit(2.0) * (T::ln_2() - v - (-T::lit(2.0) * v).softplus()),
        // dx/dy = 1 / ((1 − y)(1 + y)).
        inverse_log_det: |v| -(v.ln_1p() + (-v).ln_1p()),
    );
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
