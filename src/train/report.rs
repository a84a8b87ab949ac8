//! What fitting reports: the history of epochs, the report of a run, and
//! the events its observer sees.

use serde::{Deserialize, Serialize};

/// One epoch of the history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean negative log-likelihood over the epoch's batches (nats per sample).
    pub train_nll: f64,
    /// Negative log-likelihood of the validation data after the epoch.
    pub valid_nll: Option<f64>,
}

/// What [`fit`](super::fit) did.
///
/// Nothing in it is NaN: a run of zero epochs (or one interrupted before its
/// first epoch ended) has an empty history, `best_epoch` 0 and no validation
/// NLL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Epochs completed (or started, if interrupted).
    pub epochs_run: usize,
    /// The epoch whose parameters the model holds at the end: the best by
    /// validation NLL when there is validation data, else the last completed
    /// one (a run interrupted mid-epoch without validation data holds the
    /// parameters of its last step); 0 when no epoch was completed.
    pub best_epoch: usize,
    /// Validation NLL of the returned parameters, if there is validation data
    /// and an epoch was completed.
    pub best_valid_nll: Option<f64>,
    /// Per-epoch history (completed epochs only).
    pub history: Vec<EpochRecord>,
    /// Gradient steps taken.
    pub steps: u64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether the observer asked to stop.
    pub interrupted: bool,
    /// Sentences about a run that finished but should not be trusted as it
    /// is, e.g. a training NLL that rose by orders of magnitude (the fit
    /// diverged). Empty for a healthy run; absent from old checkpoints.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl FitReport {
    /// The training NLL of the last completed epoch, if any.
    pub fn last_train_nll(&self) -> Option<f64> {
        self.history.last().map(|r| r.train_nll)
    }
}

/// What the observer of [`fit_with_observer`](super::fit_with_observer) is told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FitEvent {
    /// After a gradient step.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// The batch's NLL before the step.
        loss: f64,
    },
    /// After an epoch.
    Epoch(EpochRecord),
}
