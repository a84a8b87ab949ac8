//! Training: optimisers, maximum-likelihood fitting and variational fitting.
//!
//! Gradients come from the hand-written backward passes of
//! [`Differentiable`](crate::bijector::Differentiable) layers; no autodiff.
//!
//! ```
//! use nalgebra::DMatrix;
//! use normflow::prelude::*;
//! use normflow::train::{FitOptions, fit};
//! use rand::SeedableRng;
//!
//! // Data from N(3, 0.5²); fit a one-layer affine flow to it.
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let truth = Normal::new(nalgebra::DVector::from_vec(vec![3.0]), nalgebra::DVector::from_vec(vec![0.5]))?;
//! let data: DMatrix<f64> = truth.sample(2000, &mut rng);
//! let mut model = flow!(actnorm >> maf(hidden = 8)).build_distribution::<f64>(1, &mut rng)?;
//! let report = fit(&mut model, &data, &FitOptions { epochs: 5, batch_size: 100, learning_rate: 1e-2, ..Default::default() })?;
//! // The true density's NLL is ½ log(2π e σ²) ≈ 0.726 nats.
//! let nll = -model.log_prob(&data).mean();
//! assert!(nll < 0.76, "nll {nll}, history {:?}", report.history);
//! # Ok::<(), normflow::Error>(())
//! ```

mod atomic;
mod batching;
mod checkpoint;
mod checkpointer;
mod conditional;
mod density;
mod diagnostics;
mod divergence;
mod early_stopping;
mod fit;
mod model;
mod model_file;
mod optimizer;
mod optimizer_state;
mod point_target;
mod report;
mod rollback;
mod standardization;
pub mod targets;
mod torus;
#[cfg(test)]
mod toy;
mod trainer;
mod validate;
mod variational;

pub use atomic::write_atomically;
#[allow(deprecated)]
pub use conditional::{fit_conditional, fit_conditional_with_observer};
pub use density::TrainableDensity;
pub use diagnostics::{VariationalDiagnostics, diagnose_variational, pareto_k};
pub use fit::{FitData, FitOptions, Validation, fit, fit_with_observer};
#[allow(deprecated)]
pub use model::{BaseSpec, ConditionalBaseSpec, ConditionalFlowModel, FlowModel};
pub use model_file::{CONDITIONAL_MODEL_FORMAT_VERSION, MODEL_FORMAT_VERSION};
pub use optimizer::{Adam, Optimizer, OptimizerKind, Schedule, Sgd, clip_grad_norm};
pub use point_target::{PointFnTarget, PointTarget};
pub use report::{EpochRecord, FitEvent, FitReport};
pub use standardization::Standardization;
pub use variational::{
    DistributionTarget, FnTarget, LogDensity, VariationalFamily, VariationalOptions,
    VariationalReport, elbo_and_grad, fit_variational,
};
