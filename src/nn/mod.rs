//! Conditioner networks: dense layers, MLPs and MADE (masked autoencoders for
//! distribution estimation), operating on `D × n` batches with one gemm per layer.
//!
//! Every network keeps all of its parameters in **one contiguous buffer**
//! (`params()`), layer after layer, each layer's weight matrix (column-major,
//! `out × in`) followed by its bias. Views into the buffer are taken at
//! evaluation time, so a training loop can update the flat slice in place.

mod activation;
mod config;
mod gemm;
mod made;
mod made_sequential;
mod mlp;

pub use activation::Activation;
pub use config::ConditionerConfig;
pub use made::Made;
pub use made_sequential::MadeSequential;
pub use mlp::{Mlp, MlpCache};

use crate::Real;

/// The smallest scale the affine layers can produce.
pub const MIN_SCALE: f64 = 1e-3;

/// The stable positive map used by every affine flow layer for its scales:
/// `σ(a) = softplus(a + c) + 1e-3` with `c = log(e^{1 − 1e-3} − 1)`, so that
/// `σ(0) = 1` exactly (a zero-initialised conditioner gives the identity map),
/// `σ` grows linearly (not exponentially) for large `a`, and never falls below
/// `1e-3` (so `log σ ≥ log 1e-3` is always finite).
///
/// Returns `(σ, log σ)`.
///
/// ```
/// use normflow::nn::positive_scale;
/// let (s, log_s) = positive_scale(0.0_f64);
/// assert!((s - 1.0).abs() < 1e-15 && log_s.abs() < 1e-15);
/// assert!(positive_scale(-1e6_f64).0 >= 1e-3);
/// ```
#[inline]
pub fn positive_scale<T: Real>(a: T) -> (T, T) {
    let s = (a + scale_offset::<T>()).softplus() + T::lit(MIN_SCALE);
    (s, s.ln())
}

/// `dσ/da` for [`positive_scale`]: the logistic sigmoid of `a + c`.
#[inline]
pub fn positive_scale_derivative<T: Real>(a: T) -> T {
    (a + scale_offset::<T>()).sigmoid()
}

#[inline]
fn scale_offset<T: Real>() -> T {
    // log(e^{1 − MIN_SCALE} − 1), so that softplus(offset) + MIN_SCALE = 1.
    T::lit(((1.0 - MIN_SCALE).exp() - 1.0).ln())
}
