//! The mini-batches of an epoch: a shuffled order of the training samples
//! that depends only on the seed and the epoch (so a resumed run sees the
//! batches of an uninterrupted one), cut into batches of the options' size,
//! with a final batch too small for the model merged into the one before it.

use nalgebra::DMatrix;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::Real;

/// How an epoch's `n` samples are cut into batches of `size`: a final batch
/// smaller than `min` is merged into the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchPlan {
    n: usize,
    size: usize,
    batches: usize,
}

impl BatchPlan {
    /// The plan for `n ≥ 1` samples in batches of `size ≥ 1`, none smaller
    /// than `min` unless the whole epoch is.
    pub(crate) fn new(n: usize, size: usize, min: usize) -> Self {
        let (full, rem) = (n / size, n % size);
        let batches = if rem == 0 || (rem < min && full >= 1) {
            full
        } else {
            full + 1
        };
        Self { n, size, batches }
    }

    /// Batches per epoch.
    pub(crate) fn batches(&self) -> usize {
        self.batches
    }

    /// Where batch `b` (0-based) starts in the epoch's order.
    pub(crate) fn start(&self, b: usize) -> usize {
        b * self.size
    }

    /// The size of batch `b`: `size`, but the last batch takes the rest.
    pub(crate) fn len(&self, b: usize) -> usize {
        if b + 1 >= self.batches {
            self.n - self.start(b.min(self.batches.saturating_sub(1)))
        } else {
            self.size
        }
    }
}

/// The batches of a run: the plan, the epoch's order of the samples and one
/// batch buffer, allocated once (again only when a batch's size changes).
#[derive(Debug, Clone)]
pub(crate) struct Batcher<T: Real> {
    plan: BatchPlan,
    order: Vec<usize>,
    batch: DMatrix<T>,
}

impl<T: Real> Batcher<T> {
    /// Batches of `size` out of `n ≥ 1` samples of dimension `dim`, none
    /// smaller than `min` (see [`BatchPlan`]).
    pub(crate) fn new(dim: usize, n: usize, size: usize, min: usize) -> Self {
        let plan = BatchPlan::new(n, size, min);
        Self {
            plan,
            order: (0..n).collect(),
            batch: DMatrix::zeros(dim, plan.len(0)),
        }
    }

    /// Batches per epoch.
    pub(crate) fn batches(&self) -> usize {
        self.plan.batches()
    }

    /// Shuffles the samples for `epoch` (1-based): the order depends only on
    /// `seed` and `epoch`.
    pub(crate) fn shuffle_for_epoch(&mut self, seed: u64, epoch: usize) {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.order.iter_mut().enumerate().for_each(|(i, v)| *v = i);
        shuffle(&mut self.order, &mut rng);
    }

    /// Batch `b` (0-based) of the epoch: the columns of `data` in the
    /// epoch's order.
    pub(crate) fn gather(&mut self, b: usize, data: &DMatrix<T>) -> &DMatrix<T> {
        let (start, len) = (self.plan.start(b), self.plan.len(b));
        if self.batch.ncols() != len {
            self.batch = DMatrix::zeros(data.nrows(), len);
        }
        for (j, &c) in self.order[start..start + len].iter().enumerate() {
            self.batch.set_column(j, &data.column(c));
        }
        &self.batch
    }
}

/// Fisher–Yates shuffle.
pub(crate) fn shuffle(v: &mut [usize], rng: &mut StdRng) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(plan: &BatchPlan) -> Vec<usize> {
        (0..plan.batches()).map(|b| plan.len(b)).collect()
    }

    #[test]
    fn batches_cover_the_epoch_once() {
        for (n, size, min) in [(10, 4, 1), (10, 5, 1), (3, 8, 1), (9, 4, 2), (1000, 256, 2)] {
            let plan = BatchPlan::new(n, size, min);
            assert_eq!(sizes(&plan).iter().sum::<usize>(), n, "{n}, {size}, {min}");
            for b in 1..plan.batches() {
                assert_eq!(plan.start(b), plan.start(b - 1) + plan.len(b - 1));
            }
        }
        assert_eq!(sizes(&BatchPlan::new(10, 4, 1)), [4, 4, 2]);
        assert_eq!(sizes(&BatchPlan::new(10, 5, 1)), [5, 5]);
        // One batch of the whole (small) epoch.
        assert_eq!(sizes(&BatchPlan::new(3, 8, 1)), [3]);
    }

    #[test]
    fn a_final_batch_below_the_minimum_is_merged() {
        // 9 = 4 + 4 + 1: one sample cannot make a batch-norm batch.
        assert_eq!(sizes(&BatchPlan::new(9, 4, 2)), [4, 5]);
        assert_eq!(sizes(&BatchPlan::new(10, 4, 2)), [4, 4, 2]);
        assert_eq!(sizes(&BatchPlan::new(9, 4, 1)), [4, 4, 1]);
        // Nothing to merge into: the epoch is one batch.
        assert_eq!(sizes(&BatchPlan::new(3, 4, 2)), [3]);
    }

    #[test]
    fn the_order_depends_only_on_seed_and_epoch() {
        let data = DMatrix::from_fn(2, 10, |i, j| (10 * i + j) as f64);
        // The first coordinate of every sample, batch after batch.
        let visited = |b: &mut Batcher<f64>| -> Vec<f64> {
            (0..b.batches())
                .flat_map(|k| {
                    b.gather(k, &data)
                        .row(0)
                        .iter()
                        .copied()
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let order = |seed, epoch| {
            let mut b = Batcher::<f64>::new(2, 10, 4, 1);
            b.shuffle_for_epoch(seed, epoch);
            visited(&mut b)
        };
        let first = order(7, 1);
        // A permutation of the samples.
        let mut sorted = first.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(sorted, (0..10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(order(7, 1), first);
        assert_ne!(order(7, 2), first);
        assert_ne!(order(8, 1), first);
        // Reshuffling starts from the natural order: the state of earlier
        // epochs does not leak into a later one.
        let mut b = Batcher::<f64>::new(2, 10, 4, 1);
        b.shuffle_for_epoch(7, 5);
        b.shuffle_for_epoch(7, 1);
        assert_eq!(visited(&mut b), first);
    }

    #[test]
    fn gathered_columns_keep_their_dimensions_together() {
        let data = DMatrix::from_fn(3, 9, |i, j| (10 * j + i) as f32);
        let mut b = Batcher::<f32>::new(3, 9, 4, 2);
        b.shuffle_for_epoch(1, 1);
        assert_eq!(b.batches(), 2);
        assert_eq!(b.gather(0, &data).ncols(), 4);
        let last = b.gather(1, &data);
        assert_eq!(last.shape(), (3, 5));
        for col in last.column_iter() {
            assert_eq!(col[1], col[0] + 1.0);
            assert_eq!(col[2], col[0] + 2.0);
        }
    }
}
