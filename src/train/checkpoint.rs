//! Checkpoints of a fitting run: written after every epoch by
//! [`fit`](super::fit) (option `checkpoint`), read back and checked field by
//! field to resume (option `resume`).

use std::path::Path;

use serde::Serialize;

use super::validate::{self, Loc, num};
use super::{Adam, FitReport};
use crate::{Error, Real};

const CHECKPOINT_FORMAT: &str = "normflow-checkpoint";
const CHECKPOINT_VERSION: u32 = 1;

/// A fitting run saved after an epoch (the written form).
#[derive(Serialize)]
pub(crate) struct Checkpoint<'a> {
    format: &'static str,
    version: u32,
    num_params: usize,
    /// The model's own saved form (for a `FlowModel`, its JSON).
    model: String,
    adam: &'a Adam,
    best_params: Vec<f64>,
    best_valid: Option<f64>,
    since_best: usize,
    report: &'a FitReport,
}

impl<'a> Checkpoint<'a> {
    /// The checkpoint of a run (`best_valid` is kept only when finite).
    pub(crate) fn new<T: Real>(
        model: String,
        adam: &'a Adam,
        best_params: &[T],
        best_valid: f64,
        since_best: usize,
        report: &'a FitReport,
    ) -> Self {
        Self {
            format: CHECKPOINT_FORMAT,
            version: CHECKPOINT_VERSION,
            num_params: best_params.len(),
            model,
            adam,
            best_params: best_params.iter().map(|v| v.to_f64()).collect(),
            best_valid: best_valid.is_finite().then_some(best_valid),
            since_best,
            report,
        }
    }

    /// Writes the checkpoint to `path` atomically; without `replace`, an
    /// existing file is kept and the write is an error.
    pub(crate) fn write(&self, path: &Path, replace: bool) -> Result<(), Error> {
        let text = serde_json::to_string(self).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: format!("cannot serialise the checkpoint: {e}"),
        })?;
        if replace {
            super::write_atomically(path, text.as_bytes())
        } else {
            super::model::write_new(path, text.as_bytes())
        }
    }
}

/// A checkpoint read back and checked, its vectors in the model's precision.
pub(crate) struct Resumed<T> {
    /// The model's saved form, checked when the model restores it.
    pub(crate) model: String,
    pub(crate) adam: Adam,
    pub(crate) best_params: Vec<T>,
    /// The best validation NLL, `+∞` when there is none yet.
    pub(crate) best_valid: f64,
    pub(crate) since_best: usize,
    pub(crate) report: FitReport,
}

/// Reads the checkpoint at `path` for a model with `num_params` parameters,
/// checking every field but the model (which the model checks as it restores
/// it): format and version, the parameter count, the report (epoch counters
/// consistent with the history, finite NLLs), the optimiser (see
/// [`Adam::check`]), the best parameters (count, finite), the best
/// validation NLL (finite, that of the best epoch) and the epochs since it.
pub(crate) fn read<T: Real>(path: &Path, num_params: usize) -> Result<Resumed<T>, Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: file.clone(),
        reason: e.to_string(),
    })?;
    let loc = Loc::new(file);
    let mut obj = validate::parse_object(&text, &loc, "checkpoint")?;
    validate::check_format(
        &obj,
        &loc,
        CHECKPOINT_FORMAT,
        &[
            (
                "normflow-model",
                "this is a model file, not a checkpoint (a checkpoint is written by fitting with a checkpoint path)",
            ),
            (
                "normflow-conditional-model",
                "this is a conditional model file, not a checkpoint (a checkpoint is written by fitting with a checkpoint path)",
            ),
        ],
        "normflow checkpoint",
    )?;
    validate::version(&obj, &loc, CHECKPOINT_VERSION)?;
    let n: usize = validate::take(&mut obj, &loc, "num_params", "a whole number")?;
    if n != num_params {
        return Err(loc.err(
            "num_params",
            format!("the checkpoint's model has {n} parameters, this model has {num_params}"),
        ));
    }
    let report: FitReport = validate::take(&mut obj, &loc, "report", "a fit report")?;
    check_report(&report, &loc)?;
    let adam: Adam = validate::take(&mut obj, &loc, "adam", "an Adam optimiser state")?;
    adam.check(num_params, report.steps)
        .map_err(|(field, reason)| loc.err(&format!("adam.{field}"), reason))?;
    let best = validate::take_numbers(&mut obj, &loc, "best_params")?;
    let best_params = validate::params::<T>(&best, num_params, &loc, "best_params", || {
        "the model".into()
    })?;
    let best_valid: Option<f64> =
        validate::take_opt(&mut obj, &loc, "best_valid", "null or a number")?;
    if let Some(b) = best_valid {
        let at_best = report
            .best_epoch
            .checked_sub(1)
            .and_then(|i| report.history.get(i))
            .and_then(|r| r.valid_nll);
        if !b.is_finite() || at_best != Some(b) {
            return Err(loc.err(
                "best_valid",
                format!(
                    "is {}, but the validation NLL of the best epoch ({}) is {}",
                    num(b),
                    report.best_epoch,
                    at_best.map_or("missing".to_string(), num)
                ),
            ));
        }
    }
    let since_best: usize = validate::take(&mut obj, &loc, "since_best", "a whole number")?;
    if since_best > report.epochs_run {
        return Err(loc.err(
            "since_best",
            format!(
                "is {since_best}, more than the {} epochs run",
                report.epochs_run
            ),
        ));
    }
    let model: String = validate::take(&mut obj, &loc, "model", "the model as a string")?;
    Ok(Resumed {
        model,
        adam,
        best_params,
        best_valid: best_valid.unwrap_or(f64::INFINITY),
        since_best,
        report,
    })
}

/// The report of a checkpoint: written after an epoch, so its history holds
/// every epoch run, numbered from 1, with finite NLLs.
fn check_report(r: &FitReport, loc: &Loc) -> Result<(), Error> {
    if r.epochs_run != r.history.len() {
        return Err(loc.err(
            "report.epochs_run",
            format!(
                "is {}, but the history has {} epochs",
                r.epochs_run,
                r.history.len()
            ),
        ));
    }
    if r.best_epoch > r.epochs_run {
        return Err(loc.err(
            "report.best_epoch",
            format!(
                "is {}, more than the {} epochs run",
                r.best_epoch, r.epochs_run
            ),
        ));
    }
    for (i, h) in r.history.iter().enumerate() {
        let field = format!("report.history[{i}]");
        if h.epoch != i + 1 {
            return Err(loc.err(&field, format!("is epoch {}, expected {}", h.epoch, i + 1)));
        }
        if !h.train_nll.is_finite() {
            return Err(loc.err(
                &field,
                format!(
                    "the training NLL is {}, expected a finite number",
                    num(h.train_nll)
                ),
            ));
        }
        if let Some(v) = h.valid_nll.filter(|v| v.is_nan()) {
            return Err(loc.err(
                &field,
                format!("the validation NLL is {}, expected a number", num(v)),
            ));
        }
    }
    if let Some(v) = r.best_valid_nll.filter(|v| !v.is_finite()) {
        return Err(loc.err(
            "report.best_valid_nll",
            format!("is {}, expected a finite number", num(v)),
        ));
    }
    Ok(())
}
