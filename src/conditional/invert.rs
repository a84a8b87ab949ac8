//! The inverse of a conditional bijector, and the conditional IAF.

use nalgebra::{DMatrix, DVector};

use super::{ConditionalBijector, ConditionalDifferentiable, ConditionalMaf};
use crate::bijector::{Continuation, DataStage};
use crate::{Error, Real};

/// `f⁻¹(·; c)` as a conditional bijector: forward and inverse swap, and so do
/// their backward passes (the conditional twin of [`Invert`](crate::Invert)).
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalInvert<B> {
    inner: B,
}

/// The conditional inverse autoregressive flow (Kingma et al. 2016):
/// exactly the inverse of a [`ConditionalMaf`]. Sampling (forward) is **one**
/// MADE pass of the base sample and the context, and differentiable (the
/// direction a VAE posterior trains through); the density of an outside point
/// takes `D` passes.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::*;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let iaf = ConditionalIaf::new(ConditionalMaf::<f64>::new(3, 2, &cfg, &mut rng)?);
/// let (u, c) = (DMatrix::from_element(3, 5, 0.3), DMatrix::from_element(2, 5, 1.0));
/// let (x, ldj) = iaf.forward_and_log_det(&u, &c); // one MADE pass
/// let (u_back, ildj) = iaf.inverse_and_log_det(&x, &c);
/// assert!((u_back - &u).amax() < 1e-10 && (ldj + ildj).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
pub type ConditionalIaf<T> = ConditionalInvert<ConditionalMaf<T>>;

impl<B> ConditionalInvert<B> {
    /// The inverse of `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }

    /// The bijector this one inverts.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<T: Real, B: ConditionalBijector<T>> ConditionalBijector<T> for ConditionalInvert<B> {
    fn dim(&self) -> Option<usize> {
        self.inner.dim()
    }
    fn context_dim(&self) -> usize {
        self.inner.context_dim()
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.inner.inverse_and_log_det(x, c)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.inner.forward_and_log_det(y, c)
    }
    fn forward(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        self.inner.inverse(x, c)
    }
    fn inverse(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        self.inner.forward(y, c)
    }
}

impl<T: Real, B: ConditionalDifferentiable<T>> ConditionalDifferentiable<T>
    for ConditionalInvert<B>
{
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.inner.visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.inner.visit_params_mut(f)
    }
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        self.inner.forward_and_log_det_backward(
            y,
            c,
            grad_x,
            grad_log_det,
            grad_params,
            grad_context,
        )
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        self.inner.inverse_and_log_det_backward(
            x,
            c,
            grad_y,
            grad_log_det,
            grad_params,
            grad_context,
        )
    }
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.inner
            .forward_and_log_det_through(y, c, grad_params, grad_context, rest)
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.inner
            .inverse_and_log_det_through(x, c, grad_params, grad_context, rest)
    }
    fn params_changed(&mut self) {
        self.inner.params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training)
    }
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        self.inner.visit_state(f)
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.inner.visit_state_mut(f)
    }
    /// The data side of the inverse is the inner bijector's base side, so
    /// there is nothing to adapt to: returns `inverse(y, c)`.
    fn prepare_with_data(
        &mut self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        _stage: DataStage,
    ) -> DMatrix<T> {
        self.inverse(y, c)
    }
}
