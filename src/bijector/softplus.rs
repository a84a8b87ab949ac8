use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::Real;

/// Elementwise `y = softplus(x) = log(1 + exp(x))`, mapping `R^D` onto `(0, ∞)^D`.
///
/// `log|dy/dx| = log σ(x) = −softplus(−x)`. The inverse is
/// `x = y + log(−expm1(−y))`, accurate for tiny and for large `y`; points with
/// any `yᵢ ≤ 0` are outside the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Softplus;

impl<T: Real> Bijector<T> for Softplus {
    super::elementwise_maps!(
        forward: |v| v.softplus(),
        inverse: |v| v + (-(-v).exp_m1()).ln(),
        forward_log_det: |v| -(-v).softplus(),
        // dx/dy = 1 / σ(x) = 1 / (1 − exp(−y)).
        inverse_log_det: |v| -(-(-v).exp_m1()).ln(),
    );
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Softplus,
    // y = softplus x, log-det log σ(x), whose derivative is 1 − σ(x).
    forward: |this, x, gy, gl| super::zip_elementwise(x, gy, gl, |v, g, l| {
        let s = v.sigmoid();
        g * s + l * (T::one() - s)
    }),
    // x = y + log(−expm1(−y)): dx/dy = 1 / (1 − e^{−y}); log-det −log(1 − e^{−y}),
    // whose derivative is −1 / expm1(y).
    inverse: |this, y, gx, gl| super::zip_elementwise(y, gx, gl, |v, g, l| {
        g / -(-v).exp_m1() - l / v.exp_m1()
    })
);
