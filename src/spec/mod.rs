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
mod conditional_flow;
mod flow;

use std::fmt;
use std::str::FromStr;

use nalgebra::DMatrix;
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use builder::FlowBuilder;
pub use conditional_flow::{ConditionalFlow, ConditionalFlowLayer};
pub use flow::{Flow, FlowLayer};
pub use normflow_dsl::{LayerSpec, ParseError, Value};

use crate::distribution::{StandardNormal, TransformedDistribution};
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
    /// Used by the `flow!` macro on text it has already validated.
    pub fn __from_macro(text: &str) -> FlowSpec {
        match Self::parse(text) {
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
    /// [`Error::Build`] that names the layer and says why.
    pub fn build<T: Real>(&self, dim: usize, rng: &mut dyn Rng) -> Result<Flow<T>, Error> {
        Flow::build(self.clone(), dim, rng)
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
    /// The layers with a conditioner network take the context: `maf`, `iaf`
    /// and `spline_ar` (a MADE whose context inputs have degree 0), `realnvp`
    /// and `spline_coupling` (the context concatenated to the conditioner's
    /// input). Every other layer (`nice`, `planar`, `radial`, `batchnorm`,
    /// `actnorm`, `lu`, `permute`, `reverse`, `exp`, `sigmoid`, `tanh`,
    /// `softplus`) is built as in [`FlowSpec::build`] and passes the context
    /// through untouched. Repetition rules are those of `build`.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::conditional::ConditionalBijector;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let flow = flow!(maf(2, hidden = 16) >> actnorm >> realnvp(2, hidden = 16))
    ///     .build_conditional::<f64>(2, 3, &mut rng)?;
    /// assert_eq!(flow.context_dim(), 3);
    /// let (x, c) = (DMatrix::from_element(2, 5, 0.5), DMatrix::from_element(3, 5, 1.0));
    /// let (u, ildj) = flow.inverse_and_log_det(&x, &c);
    /// let (x_back, fldj) = flow.forward_and_log_det(&u, &c);
    /// assert!((x_back - x).amax() < 1e-10 && (ildj + fldj).amax() < 1e-10);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn build_conditional<T: Real>(
        &self,
        dim: usize,
        context_dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<ConditionalFlow<T>, Error> {
        ConditionalFlow::build(self.clone(), dim, context_dim, rng)
    }

    /// A standard normal (ignoring the context) pushed through the
    /// conditional flow built by [`FlowSpec::build_conditional`].
    #[allow(clippy::type_complexity)]
    pub fn build_conditional_distribution<T: Real>(
        &self,
        dim: usize,
        context_dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<
        crate::conditional::ConditionalTransformedDistribution<
            crate::conditional::IgnoreContext<StandardNormal>,
            ConditionalFlow<T>,
        >,
        Error,
    > {
        let flow = self.build_conditional::<T>(dim, context_dim, rng)?;
        crate::conditional::ConditionalTransformedDistribution::new(
            crate::conditional::IgnoreContext::new(StandardNormal::new(dim)?, context_dim),
            flow,
        )
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
        conditional_flow::CONDITIONED_LAYERS.contains(&name)
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

/// Checks a batch's row count against a flow's dimension.
pub(crate) fn check_rows<T: Real>(context: &str, dim: usize, m: &DMatrix<T>) {
    crate::bijector::assert_rows(context, dim, m);
}
