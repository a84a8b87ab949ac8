use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{FlowSpec, LayerSpec, MAX_LAYERS, Value, check_rows};
use crate::bijector::*;
use crate::bijector::{DataStage, Differentiable};
use crate::nn::{Activation, ConditionerConfig};
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
    crate::bijector::differentiable_hooks!();
}

/// A flow built from a [`FlowSpec`] for a given dimension: its layers in
/// forward (base → data) order, counts expanded.
///
/// A `Flow<T>` is a [`Bijector<T>`], so it can be handed to
/// [`TransformedDistribution`](crate::TransformedDistribution) (or use
/// [`FlowSpec::build_distribution`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow<T: Real> {
    spec: FlowSpec,
    dim: usize,
    layers: Vec<FlowLayer<T>>,
}

pub(super) fn usize_opt(l: &LayerSpec, key: &str, default: usize) -> usize {
    match l.get(key) {
        Some(Value::Int(v)) => *v as usize,
        _ => default,
    }
}

pub(super) fn f64_opt(l: &LayerSpec, key: &str, default: f64) -> f64 {
    match l.get(key) {
        Some(Value::Float(v)) => *v,
        Some(Value::Int(v)) => *v as f64,
        _ => default,
    }
}

fn bool_opt(l: &LayerSpec, key: &str, default: bool) -> bool {
    match l.get(key) {
        Some(Value::Bool(v)) => *v,
        _ => default,
    }
}

/// Default spline bins and bound of the DSL (see `docs/dsl.md`).
pub(crate) const DEFAULT_BINS: usize = 8;
pub(crate) const DEFAULT_BOUND: f64 = 3.0;

pub(super) fn conditioner(l: &LayerSpec) -> ConditionerConfig {
    let d = ConditionerConfig::default();
    ConditionerConfig {
        hidden: usize_opt(l, "hidden", d.hidden),
        depth: usize_opt(l, "depth", d.depth),
        activation: match l.get("activation") {
            Some(Value::Word(w)) => Activation::from_name(w).unwrap_or(d.activation),
            _ => d.activation,
        },
        identity_init: bool_opt(l, "identity_init", d.identity_init),
        residual: bool_opt(l, "residual", d.residual),
    }
}

impl<T: Real> Flow<T> {
    pub(crate) fn build(spec: FlowSpec, dim: usize, rng: &mut dyn Rng) -> Result<Self, Error> {
        crate::error::check::dim_at_least_one("FlowSpec::build", "dim", dim)?;
        spec.check_size(dim, 0, std::mem::size_of::<T>())?;
        Self::build_unchecked(spec, dim, rng)
    }

    /// [`Flow::build`] without the size checks (the caller made them).
    pub(super) fn build_unchecked(
        spec: FlowSpec,
        dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        crate::error::check::dim_at_least_one("FlowSpec::build", "dim", dim)?;
        let mut layers = Vec::with_capacity(spec.inner.expanded_len().min(MAX_LAYERS));
        for (pos, l) in spec.layers().iter().enumerate() {
            let wrap = |e: Error| Error::Build {
                position: pos,
                layer: l.to_string(),
                dim,
                reason: e.to_string(),
            };
            let cfg = conditioner(l);
            // The layer's own default (planar and radial start random).
            let init_default = l
                .def()
                .keys
                .iter()
                .find(|k| k.name == "identity_init")
                .is_none_or(|k| k.default == "true");
            let identity_init = bool_opt(l, "identity_init", init_default);
            let bins = usize_opt(l, "bins", DEFAULT_BINS);
            let bound = T::lit(f64_opt(l, "bound", DEFAULT_BOUND));
            for copy in 0..l.count {
                let flip = copy % 2 == 1;
                if copy > 0 && l.def().repeat == normflow_dsl::Repeat::Reverse {
                    layers.push(FlowLayer::Permute(Permute::reverse(dim).map_err(wrap)?));
                }
                let layer = match l.name {
                    "maf" => MaskedAutoregressiveFlow::new(dim, &cfg, rng).map(FlowLayer::Maf),
                    "iaf" => InverseAutoregressiveFlow::new(dim, &cfg, rng).map(FlowLayer::Iaf),
                    "nice" => CouplingMask::half(dim, flip)
                        .and_then(|m| AdditiveCoupling::new(m, &cfg, rng))
                        .map(FlowLayer::Nice),
                    "realnvp" => CouplingMask::half(dim, flip)
                        .and_then(|m| AffineCoupling::new(m, &cfg, rng))
                        .map(FlowLayer::RealNvp),
                    "spline_coupling" => CouplingMask::half(dim, flip)
                        .and_then(|m| SplineCoupling::new(m, bins, bound, &cfg, rng))
                        .map(FlowLayer::SplineCoupling),
                    "spline_ar" => SplineAutoregressive::new(dim, bins, bound, &cfg, rng)
                        .map(FlowLayer::SplineAr),
                    "planar" => Planar::new(dim, identity_init, rng).map(FlowLayer::Planar),
                    "radial" => Radial::new(dim, identity_init, rng).map(FlowLayer::Radial),
                    "batchnorm" => {
                        BatchNormalization::new(dim, identity_init, rng).map(FlowLayer::BatchNorm)
                    }
                    "actnorm" => ActNorm::new(dim, identity_init, rng).map(FlowLayer::ActNorm),
                    "lu" => LuLinear::new(dim, identity_init, rng).map(FlowLayer::Lu),
                    "permute" => Permute::random(dim, rng).map(FlowLayer::Permute),
                    "reverse" => Permute::reverse(dim).map(FlowLayer::Permute),
                    "exp" => Ok(FlowLayer::Exp),
                    "sigmoid" => Ok(FlowLayer::Sigmoid),
                    "tanh" => Ok(FlowLayer::Tanh),
                    "softplus" => Ok(FlowLayer::Softplus),
                    other => unreachable!("layer `{other}` is in the DSL table but has no builder"),
                }
                .map_err(wrap)?;
                layers.push(layer);
            }
        }
        Ok(Self { spec, dim, layers })
    }

    /// The spec this flow was built from.
    pub fn spec(&self) -> &FlowSpec {
        &self.spec
    }

    /// The data dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The built layers in forward order (counts expanded, with the reversals
    /// inserted between repeated autoregressive layers).
    pub fn layers(&self) -> &[FlowLayer<T>] {
        &self.layers
    }

    /// Mutable access to the layers.
    pub fn layers_mut(&mut self) -> &mut [FlowLayer<T>] {
        &mut self.layers
    }
}

impl<T: Real> Bijector<T> for Flow<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        self.forward_and_log_det(x).0
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        check_rows("Flow::inverse", self.dim, y);
        let mut cur = y.clone();
        for l in self.layers.iter().rev() {
            cur = l.inverse(&cur);
        }
        cur
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        self.forward_and_log_det(x).1
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        self.inverse_and_log_det(y).1
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        check_rows("Flow::forward", self.dim, x);
        let mut cur = x.clone();
        let mut ldj = DVector::zeros(x.ncols());
        for l in &self.layers {
            let (next, d) = l.forward_and_log_det(&cur);
            ldj += d;
            cur = next;
        }
        (cur, ldj)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        check_rows("Flow::inverse", self.dim, y);
        let mut cur = y.clone();
        let mut ldj = DVector::zeros(y.ncols());
        for l in self.layers.iter().rev() {
            let (next, d) = l.inverse_and_log_det(&cur);
            ldj += d;
            cur = next;
        }
        (cur, ldj)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    crate::bijector::differentiable_hooks!();
}

impl<T: Real> Flow<T> {
    fn offsets(&self) -> Vec<usize> {
        let mut off = vec![0];
        for (i, l) in self.layers.iter().enumerate() {
            off.push(off[i] + l.num_params());
        }
        off
    }

    /// The fused pass of all layers, first to last (`forward`) or last to
    /// first (inverse).
    fn through(
        &self,
        input: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut Continuation<'_, T>,
        inverse: bool,
    ) -> Result<DMatrix<T>, Error> {
        let mut steps: Vec<(&dyn Differentiable<T>, &mut [T])> =
            Vec::with_capacity(self.layers.len());
        let mut remaining = grad_params;
        for l in &self.layers {
            let (mine, others) = remaining.split_at_mut(l.num_params());
            steps.push((l, mine));
            remaining = others;
        }
        if inverse {
            steps.reverse();
        }
        let acc = DVector::zeros(input.ncols());
        Ok(crate::bijector::through_sequence(&mut steps, input, &acc, inverse, rest)?.0)
    }
}

impl<T: Real> Differentiable<T> for Flow<T> {
    fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.num_params()).sum()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        for l in &self.layers {
            l.visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        for l in &mut self.layers {
            l.visit_params_mut(f);
        }
    }
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        for l in &self.layers {
            l.visit_state(f);
        }
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        for l in &mut self.layers {
            l.visit_state_mut(f);
        }
    }
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    fn params_changed(&mut self) {
        for l in &mut self.layers {
            l.params_changed();
        }
    }
    fn set_training(&mut self, training: bool) {
        for l in &mut self.layers {
            l.set_training(training);
        }
    }
    fn prepare_with_data(&mut self, y: &DMatrix<T>, stage: DataStage) -> DMatrix<T> {
        let mut cur = y.clone();
        for l in self.layers.iter_mut().rev() {
            cur = l.prepare_with_data(&cur, stage);
        }
        cur
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        check_rows("Flow::forward_and_log_det_through", self.dim, x);
        self.through(x, grad_params, rest, false)
    }
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        check_rows("Flow::inverse_and_log_det_through", self.dim, y);
        self.through(y, grad_params, rest, true)
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        check_rows("Flow::forward_and_log_det_backward", self.dim, x);
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut cur = x.clone();
        for l in &self.layers {
            let next = l.forward(&cur);
            inputs.push(cur);
            cur = next;
        }
        let off = self.offsets();
        let mut g = grad_y.clone();
        for i in (0..self.layers.len()).rev() {
            g = self.layers[i].forward_and_log_det_backward(
                &inputs[i],
                &g,
                grad_log_det,
                &mut grad_params[off[i]..off[i + 1]],
            )?;
        }
        Ok(g)
    }
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        check_rows("Flow::inverse_and_log_det_backward", self.dim, y);
        let mut inputs: Vec<DMatrix<T>> = vec![DMatrix::zeros(0, 0); self.layers.len()];
        let mut cur = y.clone();
        for i in (0..self.layers.len()).rev() {
            let next = self.layers[i].inverse(&cur);
            inputs[i] = cur;
            cur = next;
        }
        let off = self.offsets();
        let mut g = grad_x.clone();
        for i in 0..self.layers.len() {
            g = self.layers[i].inverse_and_log_det_backward(
                &inputs[i],
                &g,
                grad_log_det,
                &mut grad_params[off[i]..off[i + 1]],
            )?;
        }
        Ok(g)
    }
}
