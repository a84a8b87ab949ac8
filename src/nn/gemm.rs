//! Dense matrix products on strided views, through `matrixmultiply` (or the
//! `gemm` crate with the feature `fast-gemm` or `portable-gemm`).
//!
//! nalgebra's own `gemm` falls back to naive loops when a dimension is ≤ 5
//! (a MADE over 2 inputs has a 2-column input layer and a 4-row output layer)
//! and its transposed products (`tr_mul`, `gemm_tr`) bypass the fast kernel.
//! `matrixmultiply` takes arbitrary row and column strides, so a transposed
//! operand is a view with its strides swapped: no copy, one kernel for every
//! shape.

use std::any::TypeId;

pub(crate) use super::view::{MatMut, MatRef};
use crate::Real;

/// `c ← α·a·b + β·c`. With `β = 0`, `c` is only written (it may hold
/// anything, NaN included).
///
/// # Panics
/// If the shapes do not agree.
pub(crate) fn gemm<T: Real>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) {
    assert!(
        a.l.cols == b.l.rows && a.l.rows == c.l.rows && b.l.cols == c.l.cols,
        "gemm: ({}×{})·({}×{}) into {}×{}",
        a.l.rows,
        a.l.cols,
        b.l.rows,
        b.l.cols,
        c.l.rows,
        c.l.cols
    );
    let (m, k, n) = (a.l.rows, a.l.cols, b.l.cols);
    if m == 0 || n == 0 {
        return;
    }
    // An empty sum (k = 0) is handled here too: c ← β·c.
    if k == 0 || (m * k * n <= SMALL && !cfg!(feature = "portable-gemm")) {
        small_gemm(alpha, a, b, beta, c);
        return;
    }
    #[cfg(feature = "portable-gemm")]
    {
        fast::gemm(alpha, a, b, beta, c);
    }
    #[cfg(not(feature = "portable-gemm"))]
    {
        portable_gemm(alpha, a, b, beta, c);
    }
}

/// `c ← α·a·b + β·c` through `matrixmultiply` (AVX2/FMA, SSE2 or scalar
/// kernels, chosen at run time).
#[cfg_attr(feature = "portable-gemm", allow(dead_code))]
fn portable_gemm<T: Real>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
    let (m, k, n) = (a.l.rows, a.l.cols, b.l.cols);
    let s = |x: usize| x as isize;
    // SAFETY: the views were checked to lie inside their slices (`new`), `c`
    // is borrowed mutably so it aliases neither `a` nor `b`, and its strides
    // were checked not to alias its own elements. The pointer casts are
    // between identical types (checked by `TypeId`).
    unsafe {
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha.to_f64() as f32,
                a.data.as_ptr().cast(),
                s(a.l.rs),
                s(a.l.cs),
                b.data.as_ptr().cast(),
                s(b.l.rs),
                s(b.l.cs),
                beta.to_f64() as f32,
                c.data.as_mut_ptr().cast(),
                s(c.l.rs),
                s(c.l.cs),
            );
        } else if TypeId::of::<T>() == TypeId::of::<f64>() {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                alpha.to_f64(),
                a.data.as_ptr().cast(),
                s(a.l.rs),
                s(a.l.cs),
                b.data.as_ptr().cast(),
                s(b.l.rs),
                s(b.l.cs),
                beta.to_f64(),
                c.data.as_mut_ptr().cast(),
                s(c.l.rs),
                s(c.l.cs),
            );
        } else {
            unreachable!("Real is implemented for f32 and f64 only");
        }
    }
}

/// The `gemm` crate's kernels (AVX-512 where the CPU has it, chosen at run
/// time, else AVX2/FMA, SSE or scalar), with large products split over
/// threads when the feature `threads` is on as well.
#[cfg(feature = "portable-gemm")]
pub(crate) mod fast {
    use std::any::TypeId;

    use super::{MatMut, MatRef};
    use crate::Real;

    /// Products of at least this many multiply-adds run on several threads:
    /// below it (e.g. `64 × 64 × 256`) splitting costs more than it gains on
    /// two cores, above it (`256 × 8 × 4096`, `16 × 256 × 4096`) it nearly
    /// halves the time (measured with `normflow bench --op gemm`).
    #[cfg(feature = "threads")]
    const PARALLEL: usize = 1 << 22;

    fn parallelism(_m: usize, _k: usize, _n: usize) -> gemm::Parallelism {
        #[cfg(feature = "threads")]
        if _m * _k * _n >= PARALLEL && !in_parallel_block() {
            return gemm::Parallelism::Rayon(threads());
        }
        gemm::Parallelism::None
    }

    thread_local! {
        static IN_BLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Whether this thread is evaluating one block of a batch split over
    /// threads (see `crate::parallel`): its products then stay on it.
    #[cfg(feature = "threads")]
    pub(crate) fn in_parallel_block() -> bool {
        IN_BLOCK.with(|b| b.get())
    }

    /// Marks the current thread as inside a parallel block until dropped.
    pub(crate) struct ParallelBlock {
        was: bool,
    }

    impl ParallelBlock {
        pub(crate) fn enter() -> Self {
            ParallelBlock {
                was: IN_BLOCK.with(|b| b.replace(true)),
            }
        }
    }

    impl Drop for ParallelBlock {
        fn drop(&mut self) {
            let was = self.was;
            IN_BLOCK.with(|b| b.set(was));
        }
    }

    /// Threads for large products: `MATMUL_NUM_THREADS` when set (the same
    /// variable as the portable kernel's), else all available cores.
    #[cfg(feature = "threads")]
    pub(crate) fn threads() -> usize {
        static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *N.get_or_init(|| {
            std::env::var("MATMUL_NUM_THREADS")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        })
    }

    pub(super) fn gemm<T: Real>(
        alpha: T,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        beta: T,
        c: MatMut<'_, T>,
    ) {
        let (m, k, n) = (a.l.rows, a.l.cols, b.l.cols);
        let s = |x: usize| x as isize;
        let par = parallelism(m, k, n);
        // The crate computes `dst ← α_dst·dst + β_prod·lhs·rhs`, reading
        // `dst` only when asked to: our `β = 0` must not read `c` (it may
        // hold NaN).
        let read_dst = beta != T::zero();
        // The one call, in the precision `$u` that `T` is.
        macro_rules! call {
            ($u:ty) => {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.data.as_mut_ptr().cast::<$u>(),
                    s(c.l.cs),
                    s(c.l.rs),
                    read_dst,
                    a.data.as_ptr().cast::<$u>(),
                    s(a.l.cs),
                    s(a.l.rs),
                    b.data.as_ptr().cast::<$u>(),
                    s(b.l.cs),
                    s(b.l.rs),
                    <$u as Real>::lit(beta.to_f64()),
                    <$u as Real>::lit(alpha.to_f64()),
                    false,
                    false,
                    false,
                    par,
                )
            };
        }
        // SAFETY: as for the portable kernel: the views lie inside their
        // slices, `c` aliases neither operand nor itself, and the casts are
        // between identical types (checked by `TypeId`).
        unsafe {
            if TypeId::of::<T>() == TypeId::of::<f32>() {
                call!(f32);
            } else if TypeId::of::<T>() == TypeId::of::<f64>() {
                call!(f64);
            } else {
                unreachable!("Real is implemented for f32 and f64 only");
            }
        }
    }
}

/// Products of at most this many multiply-adds skip `matrixmultiply`, whose
/// packing costs about a microsecond per call (a batch of one sample). The
/// `gemm` crate has its own small-product paths, faster than these loops
/// (a batch of one: 9 µs against 21 µs for `maf(5, hidden = 64)`), so
/// with `fast-gemm` or `portable-gemm` it is used at every size.
const SMALL: usize = 4096;

/// `c ← α·a·b + β·c` by plain loops, for tiny products.
fn small_gemm<T: Real>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
    let (m, k, n) = (a.l.rows, a.l.cols, b.l.cols);
    for j in 0..n {
        for i in 0..m {
            let ci = &mut c.data[i * c.l.rs + j * c.l.cs];
            // β = 0 overwrites (c may hold NaN), as matrixmultiply does.
            *ci = if beta == T::zero() {
                T::zero()
            } else {
                beta * *ci
            };
        }
        for p in 0..k {
            let bpj = alpha * b.data[p * b.l.rs + j * b.l.cs];
            for i in 0..m {
                c.data[i * c.l.rs + j * c.l.cs] += a.data[i * a.l.rs + p * a.l.cs] * bpj;
            }
        }
    }
}

/// Adds the row sums of the column-major `rows × cols` matrix `m` into `acc`.
pub(crate) fn add_row_sums<T: Real>(m: &[T], rows: usize, acc: &mut [T]) {
    assert_eq!(acc.len(), rows, "add_row_sums: wrong accumulator length");
    if rows == 0 {
        return;
    }
    for col in m.chunks_exact(rows) {
        for (a, v) in acc.iter_mut().zip(col) {
            *a += *v;
        }
    }
}

/// The kernels the dense products run, in this build on this CPU.
pub(crate) fn kernels() -> &'static str {
    #[cfg(all(feature = "fast-gemm", target_arch = "x86_64"))]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return "gemm crate, AVX-512";
    }
    #[cfg(all(feature = "portable-gemm", target_arch = "x86_64"))]
    if std::arch::is_x86_feature_detected!("fma") {
        return "gemm crate, AVX2 and FMA";
    }
    if cfg!(feature = "portable-gemm") {
        "gemm crate, baseline SIMD"
    } else {
        "matrixmultiply"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    /// `c ← α·a·b + β·c` by the definition, in f64.
    fn reference(
        alpha: f64,
        a: &DMatrix<f64>,
        b: &DMatrix<f64>,
        beta: f64,
        c: &DMatrix<f64>,
    ) -> DMatrix<f64> {
        DMatrix::from_fn(a.nrows(), b.ncols(), |i, j| {
            let dot: f64 = (0..a.ncols()).map(|p| a[(i, p)] * b[(p, j)]).sum();
            let keep = if beta == 0.0 { 0.0 } else { beta * c[(i, j)] };
            alpha * dot + keep
        })
    }

    fn pseudo(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
        // A small deterministic generator: values in [−1, 1).
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        DMatrix::from_fn(rows, cols, |_, _| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
    }

    /// Every product shape the layers use: below `SMALL` (plain loops), above
    /// it, and (with `threads`) above the multi-thread threshold `1 << 22`;
    /// operands plain or transposed views (the backward passes' `δ hᵀ` and
    /// `Wᵀ δ`); `β = 0` over a NaN-filled `c` (must not be read) and `β ≠ 0`.
    fn check<T: Real>(tol: f64) {
        let shapes = [
            (1, 1, 1),
            (4, 2, 3),
            (16, 16, 16),
            (7, 33, 65),
            (64, 8, 256),
            (256, 128, 130),
        ];
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)] {
                    let a64 = pseudo(m, k, 3 * case as u64 + 1);
                    let b64 = pseudo(k, n, 3 * case as u64 + 2);
                    let c64 = pseudo(m, n, 3 * case as u64 + 3);
                    let want = reference(alpha, &a64, &b64, beta, &c64);
                    // Stored transposed when `ta`/`tb`, then viewed back.
                    let a_store: DMatrix<T> =
                        if ta { a64.transpose() } else { a64.clone() }.map(|v| T::lit(v));
                    let b_store: DMatrix<T> =
                        if tb { b64.transpose() } else { b64.clone() }.map(|v| T::lit(v));
                    let a_view = if ta {
                        MatRef::from(&a_store).t()
                    } else {
                        MatRef::from(&a_store)
                    };
                    let b_view = if tb {
                        MatRef::from(&b_store).t()
                    } else {
                        MatRef::from(&b_store)
                    };
                    let mut c: DMatrix<T> = if beta == 0.0 {
                        DMatrix::from_element(m, n, T::nan())
                    } else {
                        c64.map(|v| T::lit(v))
                    };
                    gemm(T::lit(alpha), a_view, b_view, T::lit(beta), (&mut c).into());
                    for i in 0..m {
                        for j in 0..n {
                            let got = c[(i, j)].to_f64();
                            // Each entry sums k products of values below 1.
                            assert!(
                                (got - want[(i, j)]).abs() <= tol * (k as f64 + 1.0),
                                "{m}×{k}×{n} (transposed {ta}, {tb}), α {alpha}, β {beta}: \
                                 ({i}, {j}) is {got}, expected {}",
                                want[(i, j)]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_matches_the_definition_f64() {
        check::<f64>(1e-14);
    }

    #[test]
    fn gemm_matches_the_definition_f32() {
        check::<f32>(1e-6);
    }
}
