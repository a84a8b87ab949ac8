use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::Real;

/// The inverse of a bijector: swaps `forward` with `inverse` and the two log-dets.
///
/// `Invert(Invert(b))` behaves exactly like `b`. An inverse autoregressive flow
/// is `Invert` of a masked autoregressive flow.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// let log = Invert::new(Exp); // y = log x
/// let y = log.forward(&DMatrix::from_element(1, 1, 1.0_f64));
/// assert_eq!(y[(0, 0)], 0.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invert<B> {
    inner: B,
}

impl<B> Invert<B> {
    /// The inverse of `bijector` (taken by value).
    pub fn new(bijector: B) -> Self {
        Self { inner: bijector }
    }

    /// The wrapped bijector.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Unwraps the bijector.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<T: Real, B: Bijector<T>> Bijector<T> for Invert<B> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        self.inner.inverse(x)
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        self.inner.forward(y)
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        self.inner.inverse_log_det_jacobian(x)
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        self.inner.forward_log_det_jacobian(y)
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.inner.inverse_and_log_det(x)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.inner.forward_and_log_det(y)
    }
    fn dim(&self) -> Option<usize> {
        self.inner.dim()
    }
}
