use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::Real;

/// Elementwise logistic sigmoid `y = 1 / (1 + exp(−x))`, mapping `R^D` onto `(0, 1)^D`.
///
/// `log|dy/dx| = −softplus(−x) − softplus(x)`, finite for every finite `x`
/// (about `−|x|` for large `|x|`). The inverse is the logit
/// `log y − log1p(−y)`; points outside `(0, 1)` are outside the image.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// // Far in the tail the log-det stays finite: log σ'(-700) ≈ -700.
/// let ldj = Sigmoid.forward_log_det_jacobian(&DMatrix::from_element(1, 1, -700.0_f64));
/// assert!((ldj[0] + 700.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sigmoid;

impl<T: Real> Bijector<T> for Sigmoid {
    super::elementwise_maps!(
        forward: |v| v.sigmoid(),
        inverse: |v| v.ln() - (-v).ln_1p(),
        forward_log_det: |v| -(-v).softplus() - v.softplus(),
        // dx/dy = 1 / (y (1 − y)).
        inverse_log_det: |v| -v.ln() - (-v).ln_1p(),
    );
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Sigmoid,
    // y = σ(x), log-det log σ(x) + log(1 − σ(x)), whose derivative is 1 − 2σ(x).
    forward: |this, x, gy, gl| super::zip_elementwise(x, gy, gl, |v, g, l| {
        let s = v.sigmoid();
        g * s * (T::one() - s) + l * (T::one() - s - s)
    }),
    // x = logit y, log-det −log y − log(1 − y).
    inverse: |this, y, gx, gl| super::zip_elementwise(y, gx, gl, |v, g, l| {
        let one_minus = T::one() - v;
        g / (v * one_minus) + l * (T::one() / one_minus - T::one() / v)
    })
);
