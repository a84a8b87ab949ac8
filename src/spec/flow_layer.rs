//! One built layer of a flow: the enum of every layer the DSL can name, and
//! its dispatch to the layer's own passes.

use nalgebra::{DMatrix, DVector};

use crate::bijector::*;
use crate::bijector::{DataStage, Differentiable};
use crate::{Error, Real};

/// One built layer of a [`Flow`]: every layer the DSL can name.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // each variant is the layer of the same name
pub enum FlowLayer<T: Real> {
    Maf(MaskedAutoregressiveFlow<T>),
    Iaf(InverseAutoregressiveFlow<T>),
    Nice(AdditiveCoupling<T>),
    RealNvp(AffineCoupling<T>),
    SplineCoupling(SplineCoupling<T>),
    SplineAr(SplineAutoregressive<T>),
    Planar(Planar<T>),
    Radial(Radial<T>),
    BatchNorm(BatchNormalization<T>),
    ActNorm(ActNorm<T>),
    Lu(LuLinear<T>),
    Permute(Permute),
    Exp,
    Sigmoid,
    Tanh,
    Softplus,
}

macro_rules! dispatch {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            FlowLayer::Maf($b) => $e,
            FlowLayer::Iaf($b) => $e,
            FlowLayer::Nice($b) => $e,
            FlowLayer::RealNvp($b) => $e,
            FlowLayer::SplineCoupling($b) => $e,
            FlowLayer::SplineAr($b) => $e,
            FlowLayer::Planar($b) => $e,
            FlowLayer::Radial($b) => $e,
            FlowLayer::BatchNorm($b) => $e,
            FlowLayer::ActNorm($b) => $e,
            FlowLayer::Lu($b) => $e,
            FlowLayer::Permute($b) => $e,
            FlowLayer::Exp => {
                let $b = &Exp;
                $e
            }
            FlowLayer::Sigmoid => {
                let $b = &Sigmoid;
                $e
            }
            FlowLayer::Tanh => {
                let $b = &Tanh;
                $e
            }
            FlowLayer::Softplus => {
                let $b = &Softplus;
                $e
            }
        }
    };
}

macro_rules! dispatch_mut {
    ($self:expr, $b:ident => $e:expr, $unit:expr) => {
        match $self {
            FlowLayer::Maf($b) => $e,
            FlowLayer::Iaf($b) => $e,
            FlowLayer::Nice($b) => $e,
            FlowLayer::RealNvp($b) => $e,
            FlowLayer::SplineCoupling($b) => $e,
            FlowLayer::SplineAr($b) => $e,
            FlowLayer::Planar($b) => $e,
            FlowLayer::Radial($b) => $e,
            FlowLayer::BatchNorm($b) => $e,
            FlowLayer::ActNorm($b) => $e,
            FlowLayer::Lu($b) => $e,
            FlowLayer::Permute(_)
            | FlowLayer::Exp
            | FlowLayer::Sigmoid
            | FlowLayer::Tanh
            | FlowLayer::Softplus => $unit,
        }
    };
}

impl<T: Real> FlowLayer<T> {
    /// The layer as a bijector trait object.
    pub fn as_bijector(&self) -> &dyn Bijector<T> {
        dispatch!(self, b => b as &dyn Bijector<T>)
    }

    /// The layer as a trainable trait object.
    pub fn as_trainable(&self) -> &dyn Differentiable<T> {
        dispatch!(self, b => b as &dyn Differentiable<T>)
    }
}

impl<T: Real> Differentiable<T> for FlowLayer<T> {
    fn num_params(&self) -> usize {
        self.as_trainable().num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.as_trainable().visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        dispatch_mut!(self, b => b.visit_params_mut(f), ())
    }
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        self.as_trainable().visit_state(f)
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        dispatch_mut!(self, b => b.visit_state_mut(f), ())
    }
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    fn params_changed(&mut self) {
        dispatch_mut!(self, b => b.params_changed(), ())
    }
    fn set_training(&mut self, training: bool) {
        dispatch_mut!(self, b => b.set_training(training), ())
    }
    fn prepare_with_data(&mut self, y: &DMatrix<T>, stage: DataStage) -> DMatrix<T> {
        let inv = self.inverse(y);
        dispatch_mut!(self, b => b.prepare_with_data(y, stage), inv)
    }
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable()
            .inverse_and_log_det_backward(y, grad_x, grad_log_det, grad_params)
    }
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable()
            .inverse_and_log_det_through(y, grad_params, rest)
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable()
            .forward_and_log_det_through(x, grad_params, rest)
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable()
            .forward_and_log_det_backward(x, grad_y, grad_log_det, grad_params)
    }
    fn prepare_with_data_given(
        &mut self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        stage: DataStage,
    ) -> DMatrix<T> {
        let inv = self.inverse_given(y, c);
        dispatch_mut!(self, b => b.prepare_with_data_given(y, c, stage), inv)
    }
    fn inverse_and_log_det_backward_given(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable().inverse_and_log_det_backward_given(
            y,
            c,
            grad_x,
            grad_log_det,
            grad_params,
            grad_context,
        )
    }
    fn forward_and_log_det_backward_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable().forward_and_log_det_backward_given(
            x,
            c,
            grad_y,
            grad_log_det,
            grad_params,
            grad_context,
        )
    }
    fn inverse_and_log_det_through_given(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable()
            .inverse_and_log_det_through_given(y, c, grad_params, grad_context, rest)
    }
    fn forward_and_log_det_through_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.as_trainable()
            .forward_and_log_det_through_given(x, c, grad_params, grad_context, rest)
    }
}

impl<T: Real> Bijector<T> for FlowLayer<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        dispatch!(self, b => b.forward(x))
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        dispatch!(self, b => b.inverse(y))
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        dispatch!(self, b => b.forward_log_det_jacobian(x))
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        dispatch!(self, b => b.inverse_log_det_jacobian(y))
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        dispatch!(self, b => b.forward_and_log_det(x))
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        dispatch!(self, b => b.inverse_and_log_det(y))
    }
    fn dim(&self) -> Option<usize> {
        dispatch!(self, b => Bijector::<T>::dim(b))
    }
    fn context_dim(&self) -> usize {
        dispatch!(self, b => Bijector::<T>::context_dim(b))
    }
    fn forward_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        dispatch!(self, b => b.forward_given(x, c))
    }
    fn inverse_given(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        dispatch!(self, b => b.inverse_given(y, c))
    }
    fn forward_and_log_det_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
    ) -> (DMatrix<T>, DVector<T>) {
        dispatch!(self, b => b.forward_and_log_det_given(x, c))
    }
    fn inverse_and_log_det_given(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
    ) -> (DMatrix<T>, DVector<T>) {
        dispatch!(self, b => b.inverse_and_log_det_given(y, c))
    }
    crate::bijector::differentiable_hooks!();
}
