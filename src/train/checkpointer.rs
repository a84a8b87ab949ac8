//! When fitting writes its checkpoint: after every completed epoch, to the
//! options' path. The first write of a run replaces an existing file only if
//! the options allow it (a file that appeared meanwhile is kept, and fitting
//! stops with an error); later writes replace the run's own checkpoint.

use std::path::{Path, PathBuf};

use super::TrainableDensity;
use super::checkpoint::Checkpoint;
use super::early_stopping::EarlyStopping;
use super::optimizer_state::FitOptimizer;
use super::report::FitReport;
use crate::{Error, Real};

/// The checkpoint policy of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpointer {
    path: PathBuf,
    overwrite: bool,
    /// The history length after the run's first epoch: its first write.
    first_write: usize,
}

impl Checkpointer {
    /// Checkpoints to `path` for a run whose history holds `history_len`
    /// epochs before it starts (those of the checkpoint it resumes);
    /// `overwrite` lets the first write replace an existing file.
    pub(crate) fn new(path: &Path, overwrite: bool, history_len: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            overwrite,
            first_write: history_len + 1,
        }
    }

    /// Whether the write after the epoch that made the history `history_len`
    /// long may replace an existing file.
    pub(crate) fn may_replace(&self, history_len: usize) -> bool {
        self.overwrite || history_len > self.first_write
    }

    /// Writes the checkpoint after an epoch: the model (in its saved form,
    /// which is its evaluation form; training resumes in training mode),
    /// the optimiser, the early-stopping bookkeeping and the report.
    pub(crate) fn save<T: Real, M: TrainableDensity<T>, O: FitOptimizer>(
        &self,
        model: &M,
        optimizer: &O,
        stopping: &EarlyStopping<T>,
        report: &FitReport,
    ) -> Result<(), Error> {
        let saved = model.save_state().ok_or_else(|| Error::Unsupported {
            context: "fit".into(),
            reason: "checkpoints need a model that can save itself (a FlowModel)".into(),
        })?;
        Checkpoint::new(
            saved,
            optimizer,
            stopping.best_params(),
            stopping.best_valid(),
            stopping.since_best(),
            report,
        )
        .write(&self.path, self.may_replace(report.history.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Adam;
    use super::super::report::EpochRecord;
    use super::super::toy::Toy;
    use super::*;

    fn report(epochs: usize) -> FitReport {
        FitReport {
            epochs_run: epochs,
            best_epoch: epochs,
            best_valid_nll: None,
            history: (1..=epochs)
                .map(|epoch| EpochRecord {
                    epoch,
                    train_nll: 1.0,
                    valid_nll: None,
                })
                .collect(),
            steps: 0,
            stopped_early: false,
            interrupted: false,
            warnings: Vec::new(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "normflow-checkpointer-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("run.ckpt")
    }

    #[test]
    fn only_the_first_write_of_a_run_is_protected() {
        let c = Checkpointer::new(Path::new("x"), false, 0);
        assert!(!c.may_replace(1));
        assert!(c.may_replace(2));
        // A resumed run's first write is after its own first epoch.
        let c = Checkpointer::new(Path::new("x"), false, 5);
        assert!(!c.may_replace(6));
        assert!(c.may_replace(7));
        let c = Checkpointer::new(Path::new("x"), true, 5);
        assert!(c.may_replace(6));
    }

    #[test]
    fn an_existing_file_is_kept_unless_asked() {
        let path = temp("keep");
        std::fs::write(&path, "mine").unwrap();
        let mut toy = Toy::new(&[1.0]);
        toy.saves = true;
        let stopping = EarlyStopping::new(None, vec![1.0]);
        let adam = Adam::new(1e-3);
        let c = Checkpointer::new(&path, false, 0);
        let e = c.save(&toy, &adam, &stopping, &report(1)).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
        // The second epoch's write replaces the run's own checkpoint.
        c.save(&toy, &adam, &stopping, &report(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(r#"{"format":"normflow-checkpoint""#),
            "{text}"
        );
        // With overwrite, the first write replaces too.
        std::fs::write(&path, "mine").unwrap();
        Checkpointer::new(&path, true, 0)
            .save(&toy, &adam, &stopping, &report(1))
            .unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), "mine");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_model_that_cannot_save_itself_is_an_error() {
        let path = temp("unsupported");
        let toy = Toy::new(&[1.0]);
        let e = Checkpointer::new(&path, true, 0)
            .save(
                &toy,
                &Adam::new(1e-3),
                &EarlyStopping::new(None, vec![1.0]),
                &report(1),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        assert!(!path.exists());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
