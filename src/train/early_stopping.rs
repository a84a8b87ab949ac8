//! Early stopping: the best validation NLL so far, the parameters that gave
//! it, and the epochs since, compared with the patience.

use crate::Real;

/// The best epoch of a run with validation data: its number, validation NLL
/// and parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Best<'a, T> {
    /// 1-based epoch.
    pub(crate) epoch: usize,
    /// Its validation NLL (finite).
    pub(crate) nll: f64,
    /// The parameters after it.
    pub(crate) params: &'a [T],
}

/// The bookkeeping of early stopping. Without validation data it only
/// carries the parameters it started with (they are part of a checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EarlyStopping<T> {
    patience: Option<usize>,
    best_params: Vec<T>,
    /// `+∞` until an epoch had a finite validation NLL.
    best_valid: f64,
    since_best: usize,
}

impl<T: Real> EarlyStopping<T> {
    /// Stops after `patience` epochs without improvement (never if `None`),
    /// starting from `params`.
    pub(crate) fn new(patience: Option<usize>, params: Vec<T>) -> Self {
        Self {
            patience,
            best_params: params,
            best_valid: f64::INFINITY,
            since_best: 0,
        }
    }

    /// Continues the bookkeeping of a checkpoint (`best_valid` `+∞` when it
    /// had none).
    pub(crate) fn resume(&mut self, best_params: Vec<T>, best_valid: f64, since_best: usize) {
        self.best_params = best_params;
        self.best_valid = best_valid;
        self.since_best = since_best;
    }

    /// Records an epoch's validation NLL. An improvement (strictly below the
    /// best so far) resets the count and lets `save` copy the current
    /// parameters into the best ones; it returns whether it improved.
    pub(crate) fn observe(&mut self, nll: f64, save: impl FnOnce(&mut Vec<T>)) -> bool {
        if nll < self.best_valid {
            self.best_valid = nll;
            self.since_best = 0;
            save(&mut self.best_params);
            true
        } else {
            self.since_best += 1;
            false
        }
    }

    /// Whether the patience ran out.
    pub(crate) fn should_stop(&self) -> bool {
        self.patience.is_some_and(|p| self.since_best >= p)
    }

    /// The best epoch, given its number (kept in the report): `None` before
    /// an epoch with a finite validation NLL.
    pub(crate) fn best(&self, epoch: usize) -> Option<Best<'_, T>> {
        (epoch > 0 && self.best_valid.is_finite()).then_some(Best {
            epoch,
            nll: self.best_valid,
            params: &self.best_params,
        })
    }

    /// The best parameters (the initial ones before any improvement).
    pub(crate) fn best_params(&self) -> &[T] {
        &self.best_params
    }

    /// The best validation NLL, `+∞` if none.
    pub(crate) fn best_valid(&self) -> f64 {
        self.best_valid
    }

    /// Epochs since the best one.
    pub(crate) fn since_best(&self) -> usize {
        self.since_best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: f64) -> impl FnOnce(&mut Vec<f64>) {
        move |b: &mut Vec<f64>| {
            b.clear();
            b.push(v);
        }
    }

    #[test]
    fn patience_counts_epochs_without_improvement() {
        let mut s = EarlyStopping::new(Some(2), vec![0.0]);
        assert!(s.observe(3.0, set(1.0)));
        assert!(!s.should_stop());
        assert!(!s.observe(3.5, set(2.0)));
        assert!(!s.should_stop());
        // An improvement resets the count.
        assert!(s.observe(2.5, set(3.0)));
        assert_eq!(s.since_best(), 0);
        // Equal is not better.
        assert!(!s.observe(2.5, set(4.0)));
        assert!(!s.observe(9.0, set(5.0)));
        assert!(s.should_stop());
        assert_eq!(s.best_params(), [3.0]);
        assert_eq!(s.best_valid(), 2.5);
    }

    #[test]
    fn without_patience_it_never_stops() {
        let mut s = EarlyStopping::new(None, vec![0.0]);
        s.observe(1.0, set(1.0));
        for _ in 0..100 {
            s.observe(2.0, set(2.0));
        }
        assert!(!s.should_stop());
        assert_eq!(s.since_best(), 100);
        assert_eq!(s.best_params(), [1.0]);
    }

    #[test]
    fn the_best_needs_a_finite_nll_and_an_epoch() {
        let mut s = EarlyStopping::new(Some(1), vec![7.0]);
        assert_eq!(s.best(3), None);
        assert_eq!(s.best_params(), [7.0]);
        // An infinite NLL (a validation sample outside the support) is no
        // improvement.
        assert!(!s.observe(f64::INFINITY, set(1.0)));
        assert_eq!(s.best(1), None);
        assert!(s.should_stop());
        s.observe(-4.0, set(2.0));
        assert_eq!(
            s.best(2),
            Some(Best {
                epoch: 2,
                nll: -4.0,
                params: &[2.0][..]
            })
        );
        assert_eq!(s.best(0), None);
    }

    #[test]
    fn a_resumed_count_continues() {
        let mut s = EarlyStopping::new(Some(3), vec![0.0]);
        s.resume(vec![5.0], 1.5, 2);
        assert!(!s.should_stop());
        assert!(!s.observe(1.5, set(6.0)));
        assert!(s.should_stop());
        assert_eq!(s.best_params(), [5.0]);
    }
}
