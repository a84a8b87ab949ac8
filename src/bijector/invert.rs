use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::{Error, Real};

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
    super::fused::maps_by_delegate!(swapped s => s.inner);
    super::differentiable_hooks!();
}

impl<T: Real, B: Bijector<T>> crate::Parameters<T> for Invert<B> {
    fn num_params(&self) -> usize {
        self.inner.as_differentiable().map_or(0, |d| d.num_params())
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        if let Some(d) = self.inner.as_differentiable() {
            d.visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        if let Some(d) = self.inner.as_differentiable_mut() {
            d.visit_params_mut(f);
        }
    }
    fn params_changed(&mut self) {
        if let Some(d) = self.inner.as_differentiable_mut() {
            d.params_changed();
        }
    }
    fn set_training(&mut self, training: bool) {
        if let Some(d) = self.inner.as_differentiable_mut() {
            d.set_training(training);
        }
    }
}

/// An `Invert` is trainable exactly when the bijector it wraps is: the two
/// backward passes swap, like the directions.
impl<T: Real, B: Bijector<T>> super::Differentiable<T> for Invert<B> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        let inner = self
            .inner
            .as_differentiable()
            .expect("Invert::boxed_clone: the wrapped bijector is not trainable")
            .boxed_clone();
        Box::new(Invert::new(inner))
    }
    fn prepare_with_data(&mut self, y: &DMatrix<T>, _stage: super::DataStage) -> DMatrix<T> {
        // The data side of an inverted layer is the wrapped layer's base side:
        // there is no data-dependent statistic to take there.
        self.inverse(y)
    }
    fn prepare_with_data_given(
        &mut self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        _stage: super::DataStage,
    ) -> DMatrix<T> {
        self.inverse_given(y, c)
    }
    super::fused::training_by_delegate!(swapped s => s.wrapped("Invert"));
}

impl<B> Invert<B> {
    /// The wrapped bijector as a trainable one, or the error naming it.
    fn wrapped<T: Real>(&self, caller: &str) -> Result<&dyn super::Differentiable<T>, Error>
    where
        B: Bijector<T>,
    {
        self.inner
            .as_differentiable()
            .ok_or_else(|| super::not_differentiable(caller, "the wrapped bijector"))
    }
}
