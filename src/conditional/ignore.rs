//! Any bijector or distribution as a conditional one that ignores the context.

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{
    ConditionalBijector, ConditionalDifferentiable, ConditionalDistribution,
    ConditionalTrainableBase, assert_pair,
};
use crate::bijector::{Bijector, Continuation, DataStage, Differentiable};
use crate::distribution::Distribution;
use crate::{Error, Real};

/// An unconditional bijector or distribution seen as a conditional one that
/// ignores its context: `f(x; c) = f(x)`, `p(x | c) = p(x)`.
///
/// This is how layers without a conditioner (permutations, LU, ActNorm,
/// batch norm, planar and radial maps, elementwise maps) take part in a
/// conditional flow, and how the standard normal becomes a conditional
/// base. The context gradient of its backward passes is zero (nothing is
/// added to `grad_context`). The context must still have `context_dim` rows
/// and one column per sample.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::*;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let exp = IgnoreContext::new(Exp, 3);
/// let x = DMatrix::from_element(2, 4, 0.0_f64);
/// let c = DMatrix::from_element(3, 4, 7.0);
/// assert_eq!(exp.forward(&x, &c), DMatrix::from_element(2, 4, 1.0));
///
/// let base = IgnoreContext::new(StandardNormal::new(2)?, 3);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let z: DMatrix<f64> = base.sample(&c, &mut rng); // one sample per context
/// assert_eq!(z.shape(), (2, 4));
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoreContext<X> {
    inner: X,
    context_dim: usize,
}

impl<X> IgnoreContext<X> {
    /// Wraps `inner` for contexts of dimension `context_dim`.
    pub fn new(inner: X, context_dim: usize) -> Self {
        Self { inner, context_dim }
    }

    /// The wrapped bijector or distribution.
    pub fn inner(&self) -> &X {
        &self.inner
    }

    /// Mutable access to the wrapped value.
    pub fn inner_mut(&mut self) -> &mut X {
        &mut self.inner
    }

    /// The context dimension it accepts.
    pub fn context_dim(&self) -> usize {
        self.context_dim
    }
}

impl<T: Real, B: Bijector<T>> ConditionalBijector<T> for IgnoreContext<B> {
    fn dim(&self) -> Option<usize> {
        self.inner.dim()
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_pair(
            "IgnoreContext::forward_and_log_det",
            None,
            self.context_dim,
            x,
            c,
        );
        self.inner.forward_and_log_det(x)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_pair(
            "IgnoreContext::inverse_and_log_det",
            None,
            self.context_dim,
            y,
            c,
        );
        self.inner.inverse_and_log_det(y)
    }
    fn forward(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        assert_pair("IgnoreContext::forward", None, self.context_dim, x, c);
        self.inner.forward(x)
    }
    fn inverse(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        assert_pair("IgnoreContext::inverse", None, self.context_dim, y, c);
        self.inner.inverse(y)
    }
}

impl<T: Real, B: Differentiable<T>> ConditionalDifferentiable<T> for IgnoreContext<B> {
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
        _grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        assert_pair(
            "IgnoreContext::inverse_and_log_det_backward",
            None,
            self.context_dim,
            y,
            c,
        );
        self.inner
            .inverse_and_log_det_backward(y, grad_x, grad_log_det, grad_params)
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        _grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        assert_pair(
            "IgnoreContext::forward_and_log_det_backward",
            None,
            self.context_dim,
            x,
            c,
        );
        self.inner
            .forward_and_log_det_backward(x, grad_y, grad_log_det, grad_params)
    }
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        _grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        assert_pair(
            "IgnoreContext::inverse_and_log_det_through",
            None,
            self.context_dim,
            y,
            c,
        );
        self.inner.inverse_and_log_det_through(y, grad_params, rest)
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        _grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        assert_pair(
            "IgnoreContext::forward_and_log_det_through",
            None,
            self.context_dim,
            x,
            c,
        );
        self.inner.forward_and_log_det_through(x, grad_params, rest)
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
    fn prepare_with_data(
        &mut self,
        y: &DMatrix<T>,
        _c: &DMatrix<T>,
        stage: DataStage,
    ) -> DMatrix<T> {
        self.inner.prepare_with_data(y, stage)
    }
}

impl<T: Real, D: Distribution<T>> ConditionalDistribution<T> for IgnoreContext<D> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    fn log_prob(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        assert_pair(
            "IgnoreContext::log_prob",
            Some(self.inner.dim()),
            self.context_dim,
            x,
            c,
        );
        self.inner.log_prob(x)
    }
    fn sample(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        assert_context("IgnoreContext::sample", self.context_dim, c);
        self.inner.sample(c.ncols(), rng)
    }
    fn sample_and_log_prob(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        assert_context("IgnoreContext::sample_and_log_prob", self.context_dim, c);
        self.inner.sample_and_log_prob(c.ncols(), rng)
    }
}

/// A fixed base has no parameters; a trainable one (a `GaussianMixture`)
/// keeps its own.
impl<T: Real, D: Distribution<T>> ConditionalTrainableBase<T> for IgnoreContext<D> {
    fn num_params(&self) -> usize {
        self.inner
            .as_trainable_base()
            .map_or(0, |b| b.params().len())
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        if let Some(b) = self.inner.as_trainable_base() {
            f(b.params());
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        if let Some(b) = self.inner.as_trainable_base_mut() {
            f(b.params_mut());
        }
    }
    fn log_prob_backward(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
        _grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        assert_pair(
            "IgnoreContext::log_prob_backward",
            Some(self.inner.dim()),
            self.context_dim,
            x,
            c,
        );
        if let Some(b) = self.inner.as_trainable_base() {
            return Ok(b.log_prob_backward(x, grad_log_prob, grad_params));
        }
        let mut g = self
            .inner
            .log_prob_grad(x)
            .ok_or_else(|| Error::Unsupported {
                context: "IgnoreContext::log_prob_backward".into(),
                reason: "the base distribution does not provide ∇ log p".into(),
            })?;
        for (j, mut col) in g.column_iter_mut().enumerate() {
            col *= grad_log_prob[j];
        }
        Ok(g)
    }
}

/// Panics unless `c` has `context_dim` rows.
#[track_caller]
pub(crate) fn assert_context<T: Real>(caller: &str, context_dim: usize, c: &DMatrix<T>) {
    assert!(
        c.nrows() == context_dim,
        "{caller}: context has dimension {} (rows), expected dimension {context_dim}",
        c.nrows()
    );
}
