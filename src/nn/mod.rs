//! Conditioner networks: dense layers, MLPs and MADE (masked autoencoders for
//! distribution estimation), operating on `D × n` batches with one gemm per layer.
//!
//! Every network keeps all of its parameters in **one contiguous buffer**
//! (`params()`), layer after layer, each layer's weight matrix (column-major,
//! `out × in`) followed by its bias. Views into the buffer are taken at
//! evaluation time, so a training loop can update the flat slice in place.

mod activation;
mod config;
mod fastmath;
mod gemm;
mod made;
mod made_blocks;
mod made_sequential;
mod mlp;
mod pool;
mod view;

pub use activation::Activation;
pub use config::ConditionerConfig;
pub use made::Made;
pub use made_sequential::MadeSequential;
pub use mlp::{Mlp, MlpCache};

#[cfg(feature = "portable-gemm")]
pub(crate) use gemm::fast::ParallelBlock;
#[cfg(all(feature = "portable-gemm", feature = "threads"))]
pub(crate) use gemm::fast::{in_parallel_block, threads};
pub(crate) use pool::{ScratchVec, take_scratch_vec, take_zeros};

/// Without the `gemm` crate (`fast-gemm` or `portable-gemm`), no batch is
/// split over threads (see `crate::parallel`).
#[cfg(not(feature = "portable-gemm"))]
pub(crate) struct ParallelBlock;

#[cfg(not(feature = "portable-gemm"))]
impl ParallelBlock {
    pub(crate) fn enter() -> Self {
        ParallelBlock
    }
}

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

/// `(σ(a), log σ(a), dσ/da)` for [`positive_scale`], with one exponential
/// shared by the softplus and the sigmoid (the same values as the two
/// separate functions, bit for bit).
///
/// ```
/// use normflow::nn::{positive_scale, positive_scale_derivative, positive_scale_with_derivative};
/// for a in [-30.0_f64, -1.5, 0.0, 0.7, 40.0] {
///     let (s, log_s) = positive_scale(a);
///     assert_eq!(positive_scale_with_derivative(a), (s, log_s, positive_scale_derivative(a)));
/// }
/// ```
#[inline]
pub fn positive_scale_with_derivative<T: Real>(a: T) -> (T, T, T) {
    let z = a + scale_offset::<T>();
    // softplus(z) = max(z, 0) + log1p(e) and sigmoid(z) = 1/(1 + e) for
    // z ≥ 0, e/(1 + e) otherwise, with e = exp(−|z|) (as `Real` computes them).
    let e = (-z.abs()).exp();
    let s = z.max(T::zero()) + e.ln_1p() + T::lit(MIN_SCALE);
    let sig = if z >= T::zero() {
        T::one() / (T::one() + e)
    } else {
        e / (T::one() + e)
    };
    (s, s.ln(), sig)
}

/// [`positive_scale_with_derivative`] over a batch: for every `a[i]`,
/// `s[i] = σ(a[i])`, `ds[i] = dσ/da` and, when `log_s` is given,
/// `log_s[i] = log σ(a[i])` (all slices the same length). In f32 through
/// branch-free polynomial forms that vectorise (a few units in the last place
/// from the exact values); in f64 the same values as the scalar function,
/// bit for bit.
pub(crate) fn positive_scales<T: Real>(
    a: &[T],
    s: &mut [T],
    log_s: Option<&mut [T]>,
    ds: &mut [T],
) {
    assert!(
        s.len() == a.len()
            && ds.len() == a.len()
            && log_s.as_ref().is_none_or(|l| l.len() == a.len()),
        "positive_scales: slices of different lengths"
    );
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: `T` is `f32` (checked above), so these are the same slices
        // with the same layout; the mutable ones are distinct borrows.
        unsafe {
            let r = |x: &[T]| std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len());
            let w =
                |x: &mut [T]| std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f32>(), x.len());
            fastmath::positive_scales(r(a), w(s), log_s.map(w), w(ds));
        }
        return;
    }
    match log_s {
        Some(log_s) => {
            for (((a, s), l), d) in a.iter().zip(s).zip(log_s).zip(ds) {
                (*s, *l, *d) = positive_scale_with_derivative(*a);
            }
        }
        None => {
            for ((a, s), d) in a.iter().zip(s).zip(ds) {
                (*s, _, *d) = positive_scale_with_derivative(*a);
            }
        }
    }
}

/// `log(e^{1 − MIN_SCALE} − 1)`, so that `softplus(offset) + MIN_SCALE = 1`
/// (a literal, so it is never evaluated at run time).
const SCALE_OFFSET: f64 = 0.539_742_417_236_952_2;

#[inline(always)]
fn scale_offset<T: Real>() -> T {
    T::lit(SCALE_OFFSET)
}

/// The kernels behind every dense product, as this build chose them for this
/// CPU: `"gemm crate, AVX-512"` (feature `fast-gemm` on a CPU with
/// AVX-512F), `"gemm crate, AVX2 and FMA"` (`portable-gemm`, or `fast-gemm`
/// on a CPU without AVX-512), `"gemm crate, baseline SIMD"` (neither
/// instruction set) or `"matrixmultiply"` (the default kernel). Benchmarks
/// print it next to their timings.
///
/// ```
/// let k = normflow::nn::dense_kernels();
/// assert!(k.starts_with("gemm crate") || k == "matrixmultiply");
/// ```
pub fn dense_kernels() -> &'static str {
    gemm::kernels()
}

/// `c ← a·b` with the kernel every dense layer of the library uses
/// (`matrixmultiply`, or the `gemm` crate with the feature `fast-gemm` or `portable-gemm`; large
/// products on several threads with the feature `threads`). Exposed so that
/// benchmarks can time the bare products of a network next to the network.
///
/// ```
/// use nalgebra::DMatrix;
/// let a = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// let b = DMatrix::from_row_slice(3, 1, &[1.0, 0.0, -1.0]);
/// let mut c = DMatrix::from_element(2, 1, f64::NAN);
/// normflow::nn::matmul(&a, &b, &mut c);
/// assert_eq!(c, &a * &b);
/// ```
///
/// # Panics
/// If `a` is `m × k`, and `b` is not `k × n` or `c` not `m × n`.
pub fn matmul<T: Real>(
    a: &nalgebra::DMatrix<T>,
    b: &nalgebra::DMatrix<T>,
    c: &mut nalgebra::DMatrix<T>,
) {
    gemm::gemm(T::one(), a.into(), b.into(), T::zero(), c.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_offset_literal_is_the_formula() {
        let c = ((1.0 - MIN_SCALE).exp() - 1.0).ln();
        assert!(
            (SCALE_OFFSET - c).abs() <= f64::EPSILON * c,
            "{SCALE_OFFSET} vs {c}"
        );
        // The identity initialisation: σ(0) = 1.
        assert!((positive_scale(0.0_f64).0 - 1.0).abs() < 1e-15);
        assert!((positive_scale(0.0_f32).0 - 1.0).abs() < 1e-7);
    }
}
