use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

/// `y = x + b` for a fixed vector `b`; log-determinant 0.
///
/// ```
/// use nalgebra::DVector;
/// use normflow::prelude::*;
/// assert!(Shift::new(DVector::from_vec(vec![f64::NAN])).is_err());
/// let s = Shift::new(DVector::from_vec(vec![1.0_f64, -2.0]))?;
/// assert_eq!(Bijector::<f64>::dim(&s), Some(2));
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shift<T: Real> {
    shift: DVector<T>,
}

impl<T: Real> Shift<T> {
    /// A shift by `shift`; errors if it is empty or has a non-finite entry.
    pub fn new(shift: DVector<T>) -> Result<Self, Error> {
        check::dim_at_least_one("Shift::new", "shift", shift.len())?;
        check::finite_vec("Shift::new", "shift", &shift)?;
        Ok(Self { shift })
    }

    /// The shift vector `b`.
    pub fn shift(&self) -> &DVector<T> {
        &self.shift
    }
}

impl<T: Real> Bijector<T> for Shift<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Shift::forward", self.shift.len(), x);
        let mut y = x.clone();
        for mut c in y.column_iter_mut() {
            c += &self.shift;
        }
        y
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Shift::inverse", self.shift.len(), y);
        let mut x = y.clone();
        for mut c in x.column_iter_mut() {
            c -= &self.shift;
        }
        x
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Shift::forward_log_det_jacobian", self.shift.len(), x);
        DVector::zeros(x.ncols())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows("Shift::inverse_log_det_jacobian", self.shift.len(), y);
        DVector::zeros(y.ncols())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.shift.len())
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Shift<T>,
    forward: |this, _x, gy, _gl| gy.clone(),
    inverse: |this, _y, gx, _gl| gx.clone()
);
