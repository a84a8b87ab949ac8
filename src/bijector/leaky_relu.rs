use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, elementwise_log_det};
use crate::error::check;
use crate::{Error, Real};

/// Elementwise leaky ReLU: `y = x` for `x ≥ 0`, `y = slope · x` for `x < 0`.
///
/// The slope must be finite and positive (a negative slope would fold the
/// negative half-line onto the positive one). `log|dy/dx|` is `log slope` on
/// the negative side and 0 elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeakyRelu<T: Real> {
    slope: T,
}

impl<T: Real> LeakyRelu<T> {
    /// A leaky ReLU with the given negative-side slope (finite, positive).
    pub fn new(slope: T) -> Result<Self, Error> {
        if !slope.is_finite() || slope <= T::zero() {
            return Err(check::invalid(
                "LeakyRelu::new",
                "slope",
                "finite and positive",
                slope,
            ));
        }
        Ok(Self { slope })
    }

    /// The negative-side slope.
    pub fn slope(&self) -> T {
        self.slope
    }
}

impl<T: Real> Bijector<T> for LeakyRelu<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        x.map(|v| if v < T::zero() { v * self.slope } else { v })
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        y.map(|v| if v < T::zero() { v / self.slope } else { v })
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        let ls = self.slope.ln();
        elementwise_log_det(x, |v| if v < T::zero() { ls } else { T::zero() })
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        let ls = self.slope.ln();
        elementwise_log_det(y, |v| if v < T::zero() { -ls } else { T::zero() })
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(LeakyRelu<T>,
    forward: |this, x, gy, gl| super::zip_elementwise(x, gy, gl, |v, g, _| if v < T::zero() { g * this.slope } else { g }),
    inverse: |this, y, gx, gl| super::zip_elementwise(y, gx, gl, |v, g, _| if v < T::zero() { g / this.slope } else { g })
);
