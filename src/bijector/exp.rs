use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::Real;

/// Elementwise `y = exp(x)`, mapping `R^D` onto `(0, ∞)^D`.
///
/// `log|det J| = Σᵢ xᵢ`; the inverse is `log y`, and points with any `yᵢ ≤ 0`
/// are outside the image (a transformed density there is `-inf`).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// let x = DMatrix::from_column_slice(2, 1, &[0.0_f64, 1.0]);
/// assert_eq!(Exp.forward_log_det_jacobian(&x)[0], 1.0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exp;

impl<T: Real> Bijector<T> for Exp {
    super::elementwise_maps!(
        forward: |v| v.exp(),
        inverse: |v| v.ln(),
        forward_log_det: |v| v,
        inverse_log_det: |v| -v.ln(),
    );
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Exp,
    // y = eˣ, log-det x.
    forward: |this, x, gy, gl| super::zip_elementwise(x, gy, gl, |v, g, l| g * v.exp() + l),
    // x = ln y, log-det −ln y.
    inverse: |this, y, gx, gl| super::zip_elementwise(y, gx, gl, |v, g, l| (g - l) / v)
);
