use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

/// Elementwise `y = s ⊙ x` for a fixed vector `s` with nonzero entries
/// (negative entries allowed); `log|det J| = Σᵢ log|sᵢ|`.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// let s = Scale::new(DVector::from_vec(vec![2.0_f64, -0.5]))?;
/// let ldj = s.forward_log_det_jacobian(&DMatrix::zeros(2, 1));
/// assert!((ldj[0] - 0.0).abs() < 1e-15); // log 2 + log 0.5
/// assert!(Scale::new(DVector::from_vec(vec![0.0_f64])).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scale<T: Real> {
    scale: DVector<T>,
}

impl<T: Real> Scale<T> {
    /// A scaling by `scale`; errors if it is empty or has a zero or non-finite entry.
    pub fn new(scale: DVector<T>) -> Result<Self, Error> {
        check::dim_at_least_one("Scale::new", "scale", scale.len())?;
        for (i, s) in scale.iter().enumerate() {
            if !s.is_finite() || *s == T::zero() {
                return Err(check::invalid(
                    "Scale::new",
                    &format!("scale[{i}]"),
                    "finite and nonzero",
                    s,
                ));
            }
        }
        Ok(Self { scale })
    }

    /// The scale vector `s`.
    pub fn scale(&self) -> &DVector<T> {
        &self.scale
    }

    fn log_det(&self) -> T {
        self.scale.iter().fold(T::zero(), |a, s| a + s.abs().ln())
    }
}

impl<T: Real> Bijector<T> for Scale<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Scale::forward", self.scale.len(), x);
        let mut y = x.clone();
        for mut c in y.column_iter_mut() {
            c.component_mul_assign(&self.scale);
        }
        y
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Scale::inverse", self.scale.len(), y);
        let mut x = y.clone();
        for mut c in x.column_iter_mut() {
            c.component_div_assign(&self.scale);
        }
        x
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Scale::forward_log_det_jacobian", self.scale.len(), x);
        DVector::from_element(x.ncols(), self.log_det())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows("Scale::inverse_log_det_jacobian", self.scale.len(), y);
        DVector::from_element(y.ncols(), -self.log_det())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.scale.len())
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Scale<T>,
    forward: |this, _x, gy, _gl| {
        let mut g = gy.clone();
        for mut c in g.column_iter_mut() {
            c.component_mul_assign(&this.scale);
        }
        g
    },
    inverse: |this, _y, gx, _gl| {
        let mut g = gx.clone();
        for mut c in g.column_iter_mut() {
            c.component_div_assign(&this.scale);
        }
        g
    }
);
