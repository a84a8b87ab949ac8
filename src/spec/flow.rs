//! A flow built from a [`FlowSpec`]: its layers in forward order, one
//! implementation of the passes (shared with [`Chain`](crate::Chain)).

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{FlowLayer, FlowSpec, LayerSpec, MAX_LAYERS, Value};
use crate::bijector::pass::Pass;
use crate::bijector::*;
use crate::bijector::{Differentiable, sequence_through};
use crate::nn::{Activation, ConditionerConfig};
use crate::{Error, Real};

/// A flow built from a [`FlowSpec`] for a given dimension: its layers in
/// forward (base → data) order, counts expanded. Built by
/// [`FlowSpec::build_conditional`] it is conditioned on a context of
/// dimension `C` ([`Bijector::context_dim`]): the layers with a conditioner
/// (`maf`, `iaf`, `spline_ar`, `naf`, `bnaf`, `realnvp`, `spline_coupling`,
/// `circular_spline`) and `sylvester` (through its bias) read it, the
/// others ignore it; call it through the `_given` methods.
///
/// A `Flow<T>` is a [`Bijector<T>`], so it can be handed to
/// [`TransformedDistribution`](crate::TransformedDistribution) (or use
/// [`FlowSpec::build_distribution`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow<T: Real> {
    spec: FlowSpec,
    dim: usize,
    context_dim: usize,
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
/// Default number of sigmoid units of `naf` (see `docs/dsl.md`).
pub(crate) const DEFAULT_UNITS: usize = transformer::DeepSigmoidal::DEFAULT_UNITS;
/// Default number of hidden block layers of `bnaf` (see `docs/dsl.md`).
pub(crate) const DEFAULT_BLOCKS: usize = BlockNeuralAutoregressive::<f64>::DEFAULT_BLOCKS;

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

/// The DSL layers that read the context in a conditional flow.
pub(crate) const CONDITIONED_LAYERS: &[&str] = &[
    "maf",
    "iaf",
    "spline_ar",
    "naf",
    "bnaf",
    "sylvester",
    "realnvp",
    "spline_coupling",
    "circular_spline",
];

impl<T: Real> Flow<T> {
    /// Builds the flow of `spec` on `dim` coordinates, conditioned on a
    /// context of `context_dim` dimensions (0: unconditional).
    pub(crate) fn build(
        spec: FlowSpec,
        dim: usize,
        context_dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        let caller = if context_dim == 0 {
            "FlowSpec::build"
        } else {
            "FlowSpec::build_conditional"
        };
        crate::error::check::dim_at_least_one(caller, "dim", dim)?;
        spec.check_size(dim, context_dim, std::mem::size_of::<T>())?;
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
            let units = usize_opt(l, "units", DEFAULT_UNITS);
            for copy in 0..l.count {
                let flip = copy % 2 == 1;
                if copy > 0 && l.def().repeat == normflow_dsl::Repeat::Reverse {
                    layers.push(FlowLayer::Permute(Permute::reverse(dim).map_err(wrap)?));
                }
                let (c, conditioned) = (context_dim, context_dim > 0);
                let layer = match l.name {
                    "maf" if conditioned => {
                        MaskedAutoregressiveFlow::conditional(dim, c, &cfg, rng).map(FlowLayer::Maf)
                    }
                    "maf" => MaskedAutoregressiveFlow::new(dim, &cfg, rng).map(FlowLayer::Maf),
                    "iaf" if conditioned => {
                        InverseAutoregressiveFlow::conditional(dim, c, &cfg, rng)
                            .map(FlowLayer::Iaf)
                    }
                    "iaf" => InverseAutoregressiveFlow::new(dim, &cfg, rng).map(FlowLayer::Iaf),
                    "nice" => CouplingMask::half(dim, flip)
                        .and_then(|m| AdditiveCoupling::new(m, &cfg, rng))
                        .map(FlowLayer::Nice),
                    "realnvp" if conditioned => CouplingMask::half(dim, flip)
                        .and_then(|m| AffineCoupling::conditional(m, c, &cfg, rng))
                        .map(FlowLayer::RealNvp),
                    "realnvp" => CouplingMask::half(dim, flip)
                        .and_then(|m| AffineCoupling::new(m, &cfg, rng))
                        .map(FlowLayer::RealNvp),
                    "spline_coupling" if conditioned => CouplingMask::half(dim, flip)
                        .and_then(|m| SplineCoupling::conditional(m, c, bins, bound, &cfg, rng))
                        .map(FlowLayer::SplineCoupling),
                    "spline_coupling" => CouplingMask::half(dim, flip)
                        .and_then(|m| SplineCoupling::new(m, bins, bound, &cfg, rng))
                        .map(FlowLayer::SplineCoupling),
                    "circular_spline" if conditioned => CouplingMask::half(dim, flip)
                        .and_then(|m| CircularSplineCoupling::conditional(m, c, bins, &cfg, rng))
                        .map(FlowLayer::CircularSpline),
                    "circular_spline" => CouplingMask::half(dim, flip)
                        .and_then(|m| CircularSplineCoupling::new(m, bins, &cfg, rng))
                        .map(FlowLayer::CircularSpline),
                    "spline_ar" if conditioned => {
                        SplineAutoregressive::conditional(dim, c, bins, bound, &cfg, rng)
                            .map(FlowLayer::SplineAr)
                    }
                    "spline_ar" => SplineAutoregressive::new(dim, bins, bound, &cfg, rng)
                        .map(FlowLayer::SplineAr),
                    "naf" if conditioned => {
                        NeuralAutoregressive::conditional(dim, c, units, &cfg, rng)
                            .map(FlowLayer::Naf)
                    }
                    "naf" => NeuralAutoregressive::new(dim, units, &cfg, rng).map(FlowLayer::Naf),
                    "bnaf" => {
                        let blocks = usize_opt(l, "blocks", DEFAULT_BLOCKS);
                        let (h, init) = (cfg.hidden, identity_init);
                        if conditioned {
                            BlockNeuralAutoregressive::conditional(dim, c, h, blocks, init, rng)
                        } else {
                            BlockNeuralAutoregressive::new(dim, h, blocks, init, rng)
                        }
                        .map(FlowLayer::Bnaf)
                    }
                    "planar" => Planar::new(dim, identity_init, rng).map(FlowLayer::Planar),
                    "radial" => Radial::new(dim, identity_init, rng).map(FlowLayer::Radial),
                    "sylvester" if conditioned => {
                        Sylvester::conditional(dim, usize_opt(l, "m", dim), c, rng)
                            .map(FlowLayer::Sylvester)
                    }
                    "sylvester" => {
                        Sylvester::new(dim, usize_opt(l, "m", dim), rng).map(FlowLayer::Sylvester)
                    }
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
                    "soft_clip" => SoftClip::new(
                        T::lit(f64_opt(l, "low", -1.0)),
                        T::lit(f64_opt(l, "high", 1.0)),
                        T::lit(f64_opt(l, "hinge", 0.1)),
                    )
                    .map(FlowLayer::SoftClip),
                    "power" => Power::new(T::lit(f64_opt(l, "p", 2.0))).map(FlowLayer::Power),
                    "reciprocal" => Ok(FlowLayer::Reciprocal),
                    "ordered" => Ok(FlowLayer::Ordered),
                    other => super::registry::build::<T>(other, dim)
                        .map(FlowLayer::User)
                        .ok_or_else(|| Error::Unsupported {
                            context: "FlowSpec::build".into(),
                            reason: format!(
                                "layer `{other}` is known to the DSL but no type is registered \
                                 under it; register one with normflow::spec::register_layer"
                            ),
                        }),
                }
                .map_err(wrap)?;
                layers.push(layer);
            }
        }
        Ok(Self {
            spec,
            dim,
            context_dim,
            layers,
        })
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

impl<T: Real> Flow<T> {
    /// Whether a layer keeps statistics of the training data that
    /// [`DataStage::Finalize`] sets (batch normalisation), or may (a user's
    /// layer); the other layers ignore that stage.
    pub(crate) fn finalizes_with_data(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l, FlowLayer::BatchNorm(_) | FlowLayer::User(_)))
    }

    fn check(&self, caller: &str, x: &DMatrix<T>, c: &DMatrix<T>) {
        crate::bijector::assert_pair(caller, Some(self.dim), self.context_dim, x, c);
    }

    fn parts(&self) -> impl DoubleEndedIterator<Item = &dyn Bijector<T>> {
        self.layers.iter().map(|l| l as &dyn Bijector<T>)
    }

    /// The fused pass of all layers, first to last (forward) or last to
    /// first (inverse), under the contexts `c`; the backward passes are this
    /// pass with a continuation that returns the given cotangents.
    fn through(&self, pass: Pass<'_, '_, T>) -> Result<DMatrix<T>, Error> {
        let caller = crate::bijector::pass::method_name!("Flow", pass.inverse, "through");
        self.check(caller, pass.input, pass.c);
        let parts: Vec<&dyn Differentiable<T>> = self
            .layers
            .iter()
            .map(|l| l as &dyn Differentiable<T>)
            .collect();
        sequence_through(&parts, pass)
    }
}

impl<T: Real> Bijector<T> for Flow<T> {
    crate::bijector::fused::maps_of_sequence!("Flow", s => s.parts());
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    crate::bijector::differentiable_hooks!();
}

impl<T: Real> crate::Parameters<T> for Flow<T> {
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
}

impl<T: Real> Differentiable<T> for Flow<T> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::prepare_from_given!(|s, y, c, stage| {
        let mut cur = y.clone();
        for l in s.layers.iter_mut().rev() {
            cur = l.prepare_with_data_given(&cur, c, stage);
        }
        cur
    });
    crate::bijector::fused::training_from_through!(Flow::through);
}
