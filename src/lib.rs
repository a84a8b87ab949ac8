//! # normflow
//!
//! Normalizing flows in Rust: probability distributions built by pushing a
//! simple density (a Gaussian) through a chain of invertible maps
//! (bijectors), so that one can both **sample** and evaluate the exact
//! **log-density**.
//!
//! The vocabulary follows TensorFlow Probability: [`Distribution`] and
//! [`Bijector`] traits, [`Chain`], [`Invert`], [`Permute`], [`Blockwise`] and
//! [`TransformedDistribution`].
//!
//! Conventions, used everywhere (see `docs/concepts.md`):
//! - **forward** = base → data (sampling); **inverse** = data → base (density).
//! - A batch is a `D × n` [`nalgebra::DMatrix`], **one column per sample**.
//! - [`Chain`] and [`BijectorExt::then`] apply their parts **first to last**
//!   (the opposite of TFP's `Chain`).
//! - `log_prob` is `-inf` outside the support, never NaN.
//!
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use normflow::prelude::*;
//! use rand::SeedableRng;
//!
//! // y = exp(2 x + 1) with x ~ N(0, 1): a log-normal with μ = 1, σ = 2.
//! let flow = Scale::new(DVector::from_vec(vec![2.0]))?
//!     .then(Shift::new(DVector::from_vec(vec![1.0]))?)
//!     .then(Exp);
//! let dist = TransformedDistribution::new(StandardNormal::new(1)?, flow)?;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! let (y, lp): (DMatrix<f64>, _) = dist.sample_and_log_prob(4, &mut rng);
//! assert!((dist.log_prob(&y) - lp).amax() < 1e-12);
//! # Ok::<(), normflow::Error>(())
//! ```
#![warn(missing_docs)]

pub mod autodiff;
mod batch;
pub mod bayes;
pub mod bijector;
mod checked_serde;
pub mod conditional;
pub mod data;
pub mod distribution;
pub mod error;
pub mod nn;
mod parallel;
mod params;
mod real;
pub mod resources;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;
pub mod train;

/// The linear-algebra crate batches are made of (`DMatrix`, `DVector`),
/// re-exported so that users need not match its version by hand.
pub use nalgebra;
/// The dual numbers users' layers and targets are written over
/// ([`autodiff::Scalar`]), re-exported so that users need not match its
/// version by hand.
pub use num_dual;
/// The random-number crate `sample` takes (`&mut dyn rand::Rng`),
/// re-exported so that users need not match its version by hand.
pub use rand;

// Every bijector and distribution at the crate root: `normflow::Exp`, …
pub use bijector::*;
pub use distribution::*;
pub use error::{Error, Result};
pub use params::Parameters;
pub use real::Real;
pub use spec::{Flow, FlowSpec};

/// Declares a flow in the DSL, checked at compile time: `flow!(maf(3) >> permute >> iaf(2))`.
///
/// Returns a [`FlowSpec`] equal to `FlowSpec::parse` of the same text, or a
/// [`spec::FlowBuilder`] when the stack contains a `{ expr }` layer. See
/// `docs/dsl.md` for the grammar and every layer.
pub use normflow_macros::flow;

/// Everything most programs need: `use normflow::prelude::*;`.
pub mod prelude {
    pub use crate::bijector::*;
    pub use crate::distribution::*;
    pub use crate::error::Error;
    pub use crate::nn::{Activation, ConditionerConfig};
    pub use crate::params::Parameters;
    pub use crate::real::Real;
    pub use crate::spec::{Flow, FlowSpec};
    pub use normflow_macros::flow;
}

// The guide's code blocks are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/concepts.md")]
pub struct ConceptsDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/verification.md")]
pub struct VerificationDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/dsl.md")]
pub struct DslDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/training.md")]
pub struct TrainingDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/conditional.md")]
pub struct ConditionalDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/extending.md")]
pub struct ExtendingDoctests;
#[cfg(all(doctest, feature = "nuts"))]
#[doc = include_str!("../docs/bayes.md")]
pub struct BayesDoctests;
