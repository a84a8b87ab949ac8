//! One built layer of a flow: the enum of every layer the DSL can name, and
//! its dispatch to the layer's own passes.

use nalgebra::{DMatrix, DVector};

use crate::bijector::Differentiable;
use crate::bijector::*;
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
    CircularSpline(CircularSplineCoupling<T>),
    SplineAr(SplineAutoregressive<T>),
    Naf(NeuralAutoregressive<T>),
    Bnaf(BlockNeuralAutoregressive<T>),
    Planar(Planar<T>),
    Radial(Radial<T>),
    Sylvester(Sylvester<T>),
    BatchNorm(BatchNormalization<T>),
    ActNorm(ActNorm<T>),
    Lu(LuLinear<T>),
    Permute(Permute),
    Exp,
    Sigmoid,
    Tanh,
    Softplus,
    SoftClip(SoftClip<T>),
    Power(Power<T>),
    Reciprocal,
    Ordered,
    /// A user's layer, registered under a name
    /// ([`register_layer`](super::register_layer)).
    User(Box<dyn super::UserLayer<T>>),
}

/// Runs `$e` with `$b` bound to the layer inside: `dispatch!(self, b => …)`
/// by shared reference, `dispatch!(mut self, b => …)` by mutable one (the
/// parameter-free unit layers are bound to a value of their type).
macro_rules! dispatch {
    ($self:expr, $b:ident => $e:expr) => {
        dispatch!(@arms $self, $b => $e, (&))
    };
    (mut $self:expr, $b:ident => $e:expr) => {
        dispatch!(@arms $self, $b => $e, (&mut))
    };
    (@arms $self:expr, $b:ident => $e:expr, ($($r:tt)+)) => {
        match $self {
            FlowLayer::Maf($b) => $e,
            FlowLayer::Iaf($b) => $e,
            FlowLayer::Nice($b) => $e,
            FlowLayer::RealNvp($b) => $e,
            FlowLayer::SplineCoupling($b) => $e,
            FlowLayer::CircularSpline($b) => $e,
            FlowLayer::SplineAr($b) => $e,
            FlowLayer::Naf($b) => $e,
            FlowLayer::Bnaf($b) => $e,
            FlowLayer::Planar($b) => $e,
            FlowLayer::Radial($b) => $e,
            FlowLayer::Sylvester($b) => $e,
            FlowLayer::BatchNorm($b) => $e,
            FlowLayer::ActNorm($b) => $e,
            FlowLayer::Lu($b) => $e,
            FlowLayer::Permute($b) => $e,
            FlowLayer::SoftClip($b) => $e,
            FlowLayer::Power($b) => $e,
            FlowLayer::Exp => {
                let $b = $($r)+ Exp;
                $e
            }
            FlowLayer::Sigmoid => {
                let $b = $($r)+ Sigmoid;
                $e
            }
            FlowLayer::Tanh => {
                let $b = $($r)+ Tanh;
                $e
            }
            FlowLayer::Softplus => {
                let $b = $($r)+ Softplus;
                $e
            }
            FlowLayer::Reciprocal => {
                let $b = $($r)+ Reciprocal;
                $e
            }
            FlowLayer::Ordered => {
                let $b = $($r)+ Ordered;
                $e
            }
            FlowLayer::User(boxed) => {
                let $b = $($r)+ **boxed;
                $e
            }
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

impl<T: Real> crate::Parameters<T> for FlowLayer<T> {
    fn num_params(&self) -> usize {
        self.as_trainable().num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.as_trainable().visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        dispatch!(mut self, b => b.visit_params_mut(f))
    }
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        self.as_trainable().visit_state(f)
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        dispatch!(mut self, b => b.visit_state_mut(f))
    }
    fn params_changed(&mut self) {
        dispatch!(mut self, b => crate::Parameters::<T>::params_changed(b))
    }
    fn set_training(&mut self, training: bool) {
        dispatch!(mut self, b => crate::Parameters::<T>::set_training(b, training))
    }
}

impl<T: Real> Differentiable<T> for FlowLayer<T> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::prepare_from_given!(|s, y, c, stage| {
        dispatch!(mut s, b => b.prepare_with_data_given(y, c, stage))
    });
    crate::bijector::fused::training_by_delegate!(s => Ok::<_, Error>(s.as_trainable()));
}

impl<T: Real> Bijector<T> for FlowLayer<T> {
    crate::bijector::fused::maps_by_delegate!(s => s.as_bijector());
    crate::bijector::differentiable_hooks!();
}
