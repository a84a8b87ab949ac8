use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{FlowSpec, LayerSpec, Value, check_rows};
use crate::bijector::*;
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

impl<T: Real> FlowLayer<T> {
    /// The layer as a bijector trait object.
    pub fn as_bijector(&self) -> &dyn Bijector<T> {
        dispatch!(self, b => b as &dyn Bijector<T>)
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

fn usize_opt(l: &LayerSpec, key: &str, default: usize) -> usize {
    match l.get(key) {
        Some(Value::Int(v)) => *v as usize,
        _ => default,
    }
}

fn f64_opt(l: &LayerSpec, key: &str, default: f64) -> f64 {
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

fn conditioner(l: &LayerSpec) -> ConditionerConfig {
    let d = ConditionerConfig::default();
    ConditionerConfig {
        hidden: usize_opt(l, "hidden", d.hidden),
        depth: usize_opt(l, "depth", d.depth),
        activation: match l.get("activation") {
            Some(Value::Word(w)) => Activation::from_name(w).unwrap_or(d.activation),
            _ => d.activation,
        },
        identity_init: bool_opt(l, "identity_init", d.identity_init),
    }
}

impl<T: Real> Flow<T> {
    pub(crate) fn build(spec: FlowSpec, dim: usize, rng: &mut dyn Rng) -> Result<Self, Error> {
        crate::error::check::dim_at_least_one("FlowSpec::build", "dim", dim)?;
        let mut layers = Vec::new();
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
}
