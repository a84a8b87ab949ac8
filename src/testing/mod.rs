//! The verification kit: property checks for bijectors and distributions.
//!
//! Enabled by the `testing` cargo feature. The crate checks every one of its
//! own bijectors with these functions, and users check theirs the same way:
//!
//! ```
//! use nalgebra::DMatrix;
//! use normflow::prelude::*;
//! use normflow::testing::check_bijector;
//!
//! let x = DMatrix::from_row_slice(2, 3, &[-2.0, 0.0, 1.5, 0.3, -0.7, 4.0]);
//! let report = check_bijector(&Tanh, &x).expect("tanh passes");
//! assert!(report.max_log_det_error < 1e-6);
//! ```
//!
//! What [`check_bijector`] verifies, per sample (column) of the input:
//! 1. every output of every method is finite;
//! 2. `inverse(forward(x)) ≈ x` and `forward(inverse(y)) ≈ y` with `y = forward(x)`;
//! 3. `forward_log_det_jacobian(x) ≈ log|det J(x)|`, with `J` by central
//!    differences ([`numerical_jacobian`]) and the log-determinant by LU
//!    ([`log_abs_det`]);
//! 4. `inverse_log_det_jacobian(y) ≈ −forward_log_det_jacobian(x)`;
//! 5. the fused `forward_and_log_det` / `inverse_and_log_det` agree with the
//!    separate calls.
//!
//! Errors are *relative*: a round trip error is `|x̂ − x|∞ / (1 + |x|∞)`, a
//! log-det error is `|l̂ − l| / (1 + |l|)`, so that correct bijectors with large
//! values or large log-determinants pass. Default tolerances are in
//! [`Tolerances`].

mod checks;
mod conditional;
mod density;
mod gradients;
mod jacobian;
mod report;
pub mod strategies;

pub use checks::{check_bijector, check_bijector_with, check_equivalent, probe_contexts};
#[allow(deprecated)]
pub use conditional::{
    check_bijector_given, check_bijector_given_with, check_conditional_bijector,
    check_conditional_bijector_with, check_conditional_gradients, check_conditional_gradients_with,
    check_gradients_given, check_gradients_given_with,
};
pub use density::check_density_normalizes;
pub use gradients::{GRADIENT_TOLERANCE, GradientReport, check_gradients, check_gradients_with};
pub use jacobian::{bijector_jacobians, log_abs_det, numerical_jacobian};
pub use report::{CheckFailure, CheckReport, Property, Tolerances};
pub(crate) use report::{broken_gradient, fail, refuse};

/// The proptest crate the strategies are built on, re-exported so that users
/// of the kit need no separate dependency to write `proptest!` tests.
pub use proptest;
