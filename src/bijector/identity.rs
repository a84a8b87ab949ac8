use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::Real;

/// The identity map `y = x`, with log-determinant 0. Works in any dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity;

impl<T: Real> Bijector<T> for Identity {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        x.clone()
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        y.clone()
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        DVector::zeros(x.ncols())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        DVector::zeros(y.ncols())
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Identity,
    forward: |this, _x, gy, _gl| gy.clone(),
    inverse: |this, _y, gx, _gl| gx.clone()
);
