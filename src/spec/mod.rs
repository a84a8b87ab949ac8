//! The flow DSL at run time: [`FlowSpec`] (parsed from text or produced by the
//! [`flow!`](crate::flow) macro), and the [`Flow`] it builds.
//!
//! ```
//! use normflow::prelude::*;
//! use rand::SeedableRng;
//!
//! let spec = FlowSpec::parse("maf(3, hidden = 32) >> permute >> iaf(2)")?;
//! assert_eq!(spec, flow!(maf(3, hidden = 32) >> permute >> iaf(2)));
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let dist = spec.build_distribution::<f64>(2, &mut rng)?;
//! let (x, lp) = dist.sample_and_log_prob(5, &mut rng);
//! assert!((dist.log_prob(&x) - lp).amax() < 1e-10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The grammar, every layer with its keys and defaults, and the repetition
//! rules are documented in `docs/dsl.md`.

mod builder;
mod flow;
mod flow_layer;
mod footprint;
mod registry;

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use builder::FlowBuilder;
pub use flow::Flow;
pub use flow_layer::FlowLayer;
pub use registry::{UserLayer, register_layer, registered_layers};

/// A conditional flow is a [`Flow`] built by [`FlowSpec::build_conditional`].
#[deprecated(note = "use Flow: FlowSpec::build_conditional returns one")]
pub type ConditionalFlow<T> = Flow<T>;

/// The layers of a conditional flow are [`FlowLayer`]s.
#[deprecated(note = "use FlowLayer")]
pub type ConditionalFlowLayer<T> = FlowLayer<T>;
pub use normflow_dsl::{LayerSpec, MAX_LAYERS, ParseError, Value};

use crate::distribution::{StandardNormal, TransformedDistribution};
use crate::resources::Footprint;
use crate::{Error, Real};

/// A flow declared in the DSL: layers in forward (base → data) order, each
/// with its repeat count and the options that were given.
///
/// `FlowSpec::parse(text)` and `flow!(tokens)` produce equal specs for the same
/// text. `Display` prints the canonical text, which parses back to an equal
/// spec; serde stores that text.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpec {
    inner: normflow_dsl::Spec,
}

impl FlowSpec {
    /// Parses and validates flow-spec text (see `docs/dsl.md`).
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let e = FlowSpec::parse("maf(3) >> permte").unwrap_err();
    /// assert_eq!(e.suggestion(), Some("permute"));
    /// ```
    pub fn parse(text: &str) -> Result<FlowSpec, ParseError> {
        normflow_dsl::parse(text).map(|inner| FlowSpec { inner })
    }

    #[doc(hidden)]
    /// Used by the `flow!` macro on text it has already validated. The
    /// total layer count is not checked here (the macro checks each layer):
    /// a flow over [`MAX_LAYERS`] is refused when it is built.
    pub fn __from_macro(text: &str) -> FlowSpec {
        match normflow_dsl::parse_with_limit(text, usize::MAX).map(|inner| FlowSpec { inner }) {
            Ok(s) => s,
            Err(e) => {
                panic!("normflow: the flow! macro produced text the parser rejects (a bug):\n{e}")
            }
        }
    }

    /// The layers as written (counts not expanded).
    pub fn layers(&self) -> &[LayerSpec] {
        &self.inner.layers
    }

    /// Instantiates the flow for `dim`-dimensional data, drawing random
    /// initial parameters and permutations from `rng`.
    ///
    /// Repeated autoregressive layers (`maf(3)`) get a reversal of the
    /// coordinates between consecutive copies, and repeated couplings use the
    /// complementary mask, as in the MAF and RealNVP papers. A layer that
    /// cannot act on `dim` (a coupling needs `dim ≥ 2`) is an
    /// [`Error::Build`] that names the layer and says why; a flow of more
    /// than [`MAX_LAYERS`] layers is an [`Error::Build`] too, and one that
    /// would not fit in memory (see [`FlowSpec::footprint`]) is an
    /// [`Error::TooLarge`], both before anything is allocated.
    pub fn build<T: Real>(&self, dim: usize, rng: &mut dyn Rng) -> Result<Flow<T>, Error> {
        Flow::build(self.clone(), dim, 0, rng)
    }

    /// The common case: a standard normal in `dim` dimensions pushed through
    /// the flow built by [`FlowSpec::build`].
    pub fn build_distribution<T: Real>(
        &self,
        dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<TransformedDistribution<T, StandardNormal, Flow<T>>, Error> {
        let flow = self.build::<T>(dim, rng)?;
        TransformedDistribution::new(StandardNormal::new(dim)?, flow)
    }

    /// Instantiates the flow as a **conditional** flow of `dim`-dimensional
    /// data given a `context_dim`-dimensional context (`context_dim ≥ 1`).
    ///
    /// The layers with a conditioner network take the context: `maf`, `iaf`,
    /// `spline_ar` and `naf` (a MADE whose context inputs have degree 0), `bnaf`
    /// (a weight matrix into its first layer), `realnvp`, `spline_coupling`
    /// and `circular_spline` (the context concatenated to the conditioner's
    /// input). Every other layer (`nice`, `planar`, `radial`, `sylvester`, `batchnorm`,
    /// `actnorm`, `lu`, `permute`, `reverse`, `exp`, `sigmoid`, `tanh`,
    /// `softplus`) is built as in [`FlowSpec::build`] and passes the context
    /// through untouched. Repetition rules are those of `build`. The result
    /// is a [`Flow`] whose [`context_dim`](crate::Bijector::context_dim) is
    /// `context_dim`; call it through the `_given` methods.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let flow = flow!(maf(2, hidden = 16) >> actnorm >> realnvp(2, hidden = 16))
    ///     .build_conditional::<f64>(2, 3, &mut rng)?;
    /// assert_eq!(flow.context_dim(), 3);
    /// let (x, c) = (DMatrix::from_element(2, 5, 0.5), DMatrix::from_element(3, 5, 1.0));
    /// let (u, ildj) = flow.inverse_and_log_det_given(&x, &c);
    /// let (x_back, fldj) = flow.forward_and_log_det_given(&u, &c);
    /// assert!((x_back - x).amax() < 1e-10 && (ildj + fldj).amax() < 1e-10);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn build_conditional<T: Real>(
        &self,
        dim: usize,
        context_dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<Flow<T>, Error> {
        crate::error::check::dim_at_least_one(
            "FlowSpec::build_conditional",
            "context_dim",
            context_dim,
        )?;
        Flow::build(self.clone(), dim, context_dim, rng)
    }

    /// A standard normal pushed through the conditional flow built by
    /// [`FlowSpec::build_conditional`]: a density `p(x | c)` (the base
    /// ignores the context; the flow reads it).
    pub fn build_conditional_distribution<T: Real>(
        &self,
        dim: usize,
        context_dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<TransformedDistribution<T, StandardNormal, Flow<T>>, Error> {
        let flow = self.build_conditional::<T>(dim, context_dim, rng)?;
        TransformedDistribution::new(StandardNormal::new(dim)?, flow)
    }

    /// Whether the layer called `name` takes a context in a conditional flow
    /// built by [`FlowSpec::build_conditional`] (the others pass it through).
    ///
    /// ```
    /// use normflow::FlowSpec;
    /// assert!(FlowSpec::layer_takes_context("maf"));
    /// assert!(!FlowSpec::layer_takes_context("permute"));
    /// ```
    pub fn layer_takes_context(name: &str) -> bool {
        flow::CONDITIONED_LAYERS.contains(&name)
    }

    /// What the flow costs when built for `dim`-dimensional data, with a
    /// `context_dim`-dimensional context for the layers that take one (0 for
    /// an unconditional flow): its layer count, exact parameter count, and
    /// memory estimates, computed from the spec without allocating anything
    /// proportional to the sizes. Errors only if `dim` is 0.
    ///
    /// [`FlowSpec::build`] and [`FlowSpec::build_conditional`] refuse, with
    /// [`Error::TooLarge`], a flow whose
    /// [`model_bytes`](Footprint::model_bytes) is over
    /// [`memory_limit`](crate::resources::memory_limit).
    ///
    /// ```
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let spec = FlowSpec::parse("maf(3, hidden = 32) >> actnorm")?;
    /// let fp = spec.footprint(4, 0)?;
    /// assert_eq!(fp.layers(), Some(6)); // 3 MAFs, 2 reversals, actnorm
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let flow = spec.build::<f32>(4, &mut rng)?;
    /// assert_eq!(fp.params(), Some(flow.num_params() as u64));
    ///
    /// // Sizes that overflow 64 bits are `None`, never a panic.
    /// let fp = FlowSpec::parse("lu")?.footprint(usize::MAX, 0)?;
    /// assert_eq!((fp.params(), fp.model_bytes(8)), (None, None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn footprint(&self, dim: usize, context_dim: usize) -> Result<Footprint, Error> {
        crate::error::check::dim_at_least_one("FlowSpec::footprint", "dim", dim)?;
        Ok(footprint::footprint(self.layers(), dim, context_dim))
    }

    /// Checks, before anything is built, that the flow has at most
    /// [`MAX_LAYERS`] layers and that it fits in memory with
    /// `scalar_bytes`-byte scalars.
    pub(crate) fn check_size(
        &self,
        dim: usize,
        context_dim: usize,
        scalar_bytes: usize,
    ) -> Result<Footprint, Error> {
        let mut total = 0usize;
        for (pos, l) in self.layers().iter().enumerate() {
            total = normflow_dsl::add_to_total(total, l, MAX_LAYERS).map_err(|p| Error::Build {
                position: pos,
                layer: normflow_dsl::quote(&l.to_string()),
                dim,
                reason: format!("{}, the most a flow may have", p.message),
            })?;
        }
        let fp = self.footprint(dim, context_dim)?;
        crate::resources::check_memory(
            || self.describe_size(dim, context_dim, &fp),
            fp.model_bytes(scalar_bytes),
        )?;
        Ok(fp)
    }

    /// The flow, dimension and parameter count, for a size error.
    fn describe_size(&self, dim: usize, context_dim: usize, fp: &Footprint) -> String {
        const SPEC_CHARS: usize = 80;
        let text = self.to_string();
        let shown = if text.chars().count() > SPEC_CHARS {
            let head: String = text.chars().take(SPEC_CHARS - 1).collect();
            format!("{head}…")
        } else {
            text
        };
        let context = if context_dim > 0 {
            format!(" with a {context_dim}-dimensional context")
        } else {
            String::new()
        };
        let params = match fp.params() {
            Some(p) => format!("{p} parameters"),
            None => "more than 2^64 parameters".into(),
        };
        format!("the flow `{shown}` in {dim} dimensions{context} ({params})")
    }

    /// Appends another spec's layers (`self >> other`).
    pub fn then(mut self, other: FlowSpec) -> FlowSpec {
        self.inner.layers.extend(other.inner.layers);
        self
    }
}

impl fmt::Display for FlowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl FromStr for FlowSpec {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        FlowSpec::parse(s)
    }
}

impl Serialize for FlowSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FlowSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        FlowSpec::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid flow spec:\n{e}")))
    }
}
