//! Batch-parallel evaluation: a computation that treats the columns (samples)
//! of a batch independently runs on column blocks on several threads, so the
//! elementwise work between the dense products (activations, scales,
//! log-determinants) is split as well as the products themselves. Inside a
//! block, the products run on one thread.
//!
//! Only with the features `threads` and `fast-gemm` or `portable-gemm` (whose kernel can be told
//! per call to stay on one thread); otherwise every function here declines and
//! the caller evaluates the whole batch as before.

use nalgebra::DMatrix;

use crate::Real;

/// Work (multiply-adds of the dense layers, estimated as parameters × batch
/// size) below which a batch is evaluated on one thread: splitting a smaller
/// one costs more in hand-off and duplicated per-parameter work than it
/// saves.
#[cfg(all(feature = "threads", feature = "portable-gemm"))]
const MIN_WORK: usize = 1 << 23;

/// Fewest columns a block gets.
#[cfg(all(feature = "threads", feature = "portable-gemm"))]
const MIN_COLUMNS: usize = 64;

/// How many column blocks a batch of `n` columns, through a model with
/// `params` parameters, is split into (1 = don't split).
pub(crate) fn blocks_for(n: usize, params: usize) -> usize {
    #[cfg(all(feature = "threads", feature = "portable-gemm"))]
    {
        if crate::nn::in_parallel_block() || params.saturating_mul(n) < MIN_WORK {
            return 1;
        }
        crate::nn::threads().min(n / MIN_COLUMNS).max(1)
    }
    #[cfg(not(all(feature = "threads", feature = "portable-gemm")))]
    {
        let _ = (n, params);
        1
    }
}

/// Runs `f` on `blocks` contiguous column blocks of `x` (sizes differing by
/// at most one), block 0 on the calling thread and the others on rayon's
/// pool, and returns the results in block order with each block's first
/// column. `f` gets the block's index and columns. Inside `f`, dense
/// products stay on one thread.
pub(crate) fn map_column_blocks<T: Real, R: Send>(
    x: &DMatrix<T>,
    blocks: usize,
    f: impl Fn(usize, &DMatrix<T>) -> R + Sync,
) -> Vec<(usize, R)> {
    let n = x.ncols();
    let blocks = blocks.clamp(1, n.max(1));
    let ranges: Vec<(usize, usize)> = (0..blocks)
        .map(|b| (b * n / blocks, (b + 1) * n / blocks))
        .collect();
    let run = |b: usize| {
        let (start, end) = ranges[b];
        let _serial = crate::nn::ParallelBlock::enter();
        let xb = x.columns(start, end - start).clone_owned();
        (start, f(b, &xb))
    };
    if blocks == 1 {
        return vec![(0, f(0, x))];
    }
    run_blocks(blocks, &run)
}

/// Block 0 on the calling thread, the others on rayon's pool: its threads
/// persist, so their buffer pools stay warm from one call to the next.
#[cfg(all(feature = "threads", feature = "portable-gemm"))]
fn run_blocks<R: Send>(
    blocks: usize,
    run: &(impl Fn(usize) -> (usize, R) + Sync),
) -> Vec<(usize, R)> {
    let mut rest: Vec<Option<(usize, R)>> = (1..blocks).map(|_| None).collect();
    let mut first = None;
    rayon::in_place_scope(|s| {
        for (i, slot) in rest.iter_mut().enumerate() {
            s.spawn(move |_| *slot = Some(run(i + 1)));
        }
        first = Some(run(0));
    });
    std::iter::once(first)
        .chain(rest)
        .map(|v| v.expect("every block ran"))
        .collect()
}

#[cfg(not(all(feature = "threads", feature = "portable-gemm")))]
fn run_blocks<R: Send>(
    blocks: usize,
    run: &(impl Fn(usize) -> (usize, R) + Sync),
) -> Vec<(usize, R)> {
    (0..blocks).map(run).collect()
}

/// Parts an elementwise pass over `len` values is split into: the thread
/// count when the pass is long enough to gain (`threads` and a `gemm` feature),
/// else 1.
pub(crate) fn parts_for_len(len: usize) -> usize {
    #[cfg(all(feature = "threads", feature = "portable-gemm"))]
    {
        const MIN_LEN: usize = 1 << 16;
        if len < 2 * MIN_LEN || crate::nn::in_parallel_block() {
            return 1;
        }
        crate::nn::threads().min(len / MIN_LEN).max(1)
    }
    #[cfg(not(all(feature = "threads", feature = "portable-gemm")))]
    {
        let _ = len;
        1
    }
}

/// Runs `f` on every item, the first on the calling thread and the others on
/// rayon's pool (in order on the calling thread without the features).
pub(crate) fn for_each_part<I: Send>(items: Vec<I>, f: impl Fn(I) + Sync) {
    #[cfg(all(feature = "threads", feature = "portable-gemm"))]
    {
        let mut items = items.into_iter();
        let Some(first) = items.next() else { return };
        let f = &f;
        rayon::in_place_scope(|s| {
            for item in items {
                s.spawn(move |_| f(item));
            }
            f(first);
        });
    }
    #[cfg(not(all(feature = "threads", feature = "portable-gemm")))]
    {
        items.into_iter().for_each(f);
    }
}
