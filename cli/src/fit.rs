//! `fit` of an unconditional model, and the summary every fit prints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nalgebra::DMatrix;
use normflow::Real;
use normflow::prelude::*;
use normflow::train::{FitOptions, FitReport, FlowModel, Validation, fit_with_observer};

use crate::Result;
use crate::output::Output;
use crate::progress::FitProgress;
use crate::{errln, outln};

/// `fit` of an unconditional model.
pub struct FitJob {
    pub spec: FlowSpec,
    pub train: DMatrix<f64>,
    pub validation: Validation<f64>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: Optimizer,
    pub seed: u64,
    pub patience: Option<usize>,
    pub standardize: bool,
    pub checkpoint: Option<PathBuf>,
    /// `--force`: the first checkpoint may replace an existing file.
    pub overwrite_checkpoint: bool,
    pub resume: Option<PathBuf>,
    pub out: Output,
    pub json: bool,
}

impl FitJob {
    pub fn run<T: Real>(self) -> Result<Outcome> {
        let dim = self.train.nrows();
        check_range::<T>("the training data", &self.train)?;
        if let Validation::Data(v) = &self.validation {
            check_range::<T>("the validation data", v)?;
        }
        let cast = |m: &DMatrix<f64>| m.map(T::lit);
        let train = cast(&self.train);
        let validation = match &self.validation {
            Validation::None => Validation::None,
            Validation::Fraction(f) => Validation::Fraction(*f),
            Validation::Data(v) => {
                if v.nrows() != dim {
                    return Err(format!(
                        "the validation data has {} columns but the training data has {dim}",
                        v.nrows()
                    ));
                }
                Validation::Data(cast(v))
            }
        };
        crate::models::check_training_memory(
            &self.spec,
            dim,
            0,
            self.batch_size.min(self.train.ncols()),
            std::mem::size_of::<T>(),
        )?;
        let mut model =
            FlowModel::<T>::new(&self.spec, dim, self.seed).map_err(|e| e.to_string())?;
        let options = FitOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            optimizer: self.optimizer.kind,
            weight_decay: self.optimizer.weight_decay,
            seed: self.seed,
            validation,
            patience: self.patience,
            standardize: self.standardize,
            checkpoint: self.checkpoint.clone(),
            overwrite_checkpoint: self.overwrite_checkpoint,
            resume: self.resume.clone(),
            ..Default::default()
        };
        let mut progress = FitProgress::new(self.epochs);
        let start = Instant::now();
        let result = fit_with_observer(&mut model, &train, &options, &mut |e| progress.observe(e));
        let steps = progress.finish();
        // Saved in f64 whatever the training precision.
        let to_json = || -> Result<String> {
            Ok(FlowModel::<f64>::from_json(&model.to_json())
                .map_err(|e| e.to_string())?
                .to_json())
        };
        conclude(result, steps, to_json, &self.out, start, self.json)
    }
}

/// Refuses a value that is finite in the file but beyond the range of the
/// training precision `T` (above about 3.4·10³⁸ with f32), naming the first
/// one, where it is, and the way out; a fit would otherwise stop on an
/// infinity the file does not hold. `m` is `columns × rows`.
pub fn check_range<T: Real>(what: &str, m: &DMatrix<f64>) -> Result<()> {
    for (row, sample) in m.column_iter().enumerate() {
        let beyond = |v: &f64| v.is_finite() && T::lit(*v).to_f64().is_infinite();
        if let Some(col) = sample.iter().position(beyond) {
            return Err(format!(
                "{what}: row {}, column {}: {:e} is beyond the range of {}; train with --dtype f64",
                row + 1,
                col + 1,
                sample[col],
                std::any::type_name::<T>()
            ));
        }
    }
    Ok(())
}

/// The share of the rows a fit holds out for validation when neither
/// `--valid` nor `--valid-fraction` is given (as FlowJAX's `fit_to_data`
/// does): the model keeps the parameters of its best validation epoch.
pub const DEFAULT_VALID_FRACTION: f64 = 0.1;

/// The fewest rows from which a fit holds out [`DEFAULT_VALID_FRACTION`] by
/// default (two rows to validate, eighteen to train); with fewer, every row
/// trains.
pub const DEFAULT_VALID_MIN_ROWS: usize = 20;

/// The validation fraction of a fit without `--valid`, given
/// `--valid-fraction` and the number of training rows: the flag as given
/// (`0` means none), else [`DEFAULT_VALID_FRACTION`] from
/// [`DEFAULT_VALID_MIN_ROWS`] rows on, which it announces on standard error.
/// `None`: no validation, every row trains and the last epoch is kept.
pub fn valid_fraction(flag: Option<f64>, rows: usize) -> Option<f64> {
    match flag {
        Some(0.0) => None,
        Some(f) => Some(f),
        None if rows >= DEFAULT_VALID_MIN_ROWS => {
            errln!(
                "holding out {:.0} % of the rows for validation and keeping the best epoch \
                 (--valid-fraction 0 trains on every row and keeps the last epoch)",
                DEFAULT_VALID_FRACTION * 100.0
            );
            Some(DEFAULT_VALID_FRACTION)
        }
        None => None,
    }
}

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerFlag {
    /// Adam (AdamW with `--weight-decay`).
    Adam,
    /// Stochastic gradient descent with momentum (`--momentum`).
    Sgd,
}

/// The optimiser of a fit, from the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimizer {
    /// Which one, with its momentum.
    pub kind: normflow::train::OptimizerKind,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Optimizer {
    /// From `--optimizer`, `--momentum` and `--weight-decay`.
    pub fn from_flags(flag: OptimizerFlag, momentum: f64, weight_decay: f64) -> Result<Self> {
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(format!(
                "--weight-decay must be a finite number ≥ 0, got {weight_decay}"
            ));
        }
        let kind = match flag {
            OptimizerFlag::Adam => normflow::train::OptimizerKind::Adam,
            OptimizerFlag::Sgd => {
                if !(0.0..1.0).contains(&momentum) {
                    return Err(format!("--momentum must be in [0, 1), got {momentum}"));
                }
                normflow::train::OptimizerKind::Sgd { momentum }
            }
        };
        Ok(Self { kind, weight_decay })
    }
}

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did all it was asked.
    Done,
    /// A signal stopped it early; what it had was written (exit status 130).
    Interrupted,
}

/// The end of every fit (unconditional or conditional): writes the model
/// through the output guard and prints the summary.
///
/// - A finished or interrupted fit writes its model; an interrupted one
///   reports [`Outcome::Interrupted`].
/// - A fit that diverged after at least one step (the library then leaves
///   the model at its best-validation or last finite parameters) writes that
///   model too and fails with a message that says so.
/// - Any other error writes nothing.
pub fn conclude(
    result: normflow::Result<FitReport>,
    steps: u64,
    to_json: impl FnOnce() -> Result<String>,
    out: &Output,
    start: Instant,
    json: bool,
) -> Result<Outcome> {
    let report = match result {
        Ok(report) => report,
        Err(e @ normflow::Error::Training { .. }) if steps > 0 => {
            out.write_bytes(to_json()?.as_bytes())?;
            return Err(format!(
                "{e}; that model was written to {}",
                out.path().display()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    out.write_bytes(to_json()?.as_bytes())?;
    let wall = start.elapsed().as_secs_f64();
    print_fit_summary(&report, wall, out.path(), json);
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
}

/// The summary line (or JSON object) of a finished fit, and its warnings
/// (on standard error). Nothing here is NaN: a fit stopped before its first
/// epoch ended has no training NLL, and says so.
pub fn print_fit_summary(report: &FitReport, wall: f64, out: &Path, json: bool) {
    let last = report.history.last();
    let train_nll = last.map(|r| r.train_nll).filter(|v| v.is_finite());
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    if json {
        let mut j = serde_json::json!({
            "epochs_run": report.history.len(),
            "best_epoch": report.best_epoch,
            "steps": report.steps,
            "wall_s": wall,
            "interrupted": report.interrupted,
            "stopped_early": report.stopped_early,
            "warnings": report.warnings,
            "model": out.display().to_string(),
        });
        if let Some(v) = train_nll {
            j["train_nll"] = serde_json::json!(v);
        }
        if let Some(v) = report.best_valid_nll.filter(|v| v.is_finite()) {
            j["valid_nll"] = serde_json::json!(v);
        }
        outln!("{j}");
        return;
    }
    let how = if report.interrupted {
        "interrupted"
    } else {
        "done"
    };
    let nll = match train_nll {
        Some(v) => format!("train NLL {v:.4}"),
        None => format!(
            "no epoch completed ({} training steps), so no training NLL",
            report.steps
        ),
    };
    errln!(
        "{how} after {} epochs ({wall:.1} s){}: {nll}{}; model written to {}",
        report.history.len(),
        if report.stopped_early {
            ", early stopping"
        } else {
            ""
        },
        report
            .best_valid_nll
            .filter(|v| v.is_finite())
            .map(|v| format!(", best validation NLL {v:.4} (epoch {})", report.best_epoch))
            .unwrap_or_default(),
        out.display()
    );
}
