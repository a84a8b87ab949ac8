//! Checkpoints of a fitting run: written after every epoch by
//! [`fit`](super::fit) (option `checkpoint`), read back and checked field by
//! field to resume (option `resume`).

use std::path::Path;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::FitReport;
use super::optimizer_state::{FitOptimizer, KNOWN};
use super::validate::{self, Loc, num};
use crate::{Error, Real};

const CHECKPOINT_FORMAT: &str = "normflow-checkpoint";
const CHECKPOINT_VERSION: u32 = 1;

/// A fitting run saved after an epoch (the written form). The optimiser's
/// state is the field [`FitOptimizer::FIELD`] (`adam` for Adam, as in every
/// earlier version; `sgd` for SGD), so that a file written with Adam is the
/// same as before SGD existed.
pub(crate) struct Checkpoint<'a, O> {
    /// The model's own saved form (for a `FlowModel`, its JSON).
    model: String,
    optimizer: &'a O,
    best_params: Vec<f64>,
    best_valid: Option<f64>,
    since_best: usize,
    report: &'a FitReport,
}

impl<O: FitOptimizer> Serialize for Checkpoint<'_, O> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut c = s.serialize_struct("Checkpoint", 9)?;
        c.serialize_field("format", CHECKPOINT_FORMAT)?;
        c.serialize_field("version", &CHECKPOINT_VERSION)?;
        c.serialize_field("num_params", &self.best_params.len())?;
        c.serialize_field("model", &self.model)?;
        c.serialize_field(O::FIELD, self.optimizer)?;
        c.serialize_field("best_params", &self.best_params)?;
        c.serialize_field("best_valid", &self.best_valid)?;
        c.serialize_field("since_best", &self.since_best)?;
        c.serialize_field("report", self.report)?;
        c.end()
    }
}

impl<'a, O: FitOptimizer> Checkpoint<'a, O> {
    /// The checkpoint of a run (`best_valid` is kept only when finite).
    pub(crate) fn new<T: Real>(
        model: String,
        optimizer: &'a O,
        best_params: &[T],
        best_valid: f64,
        since_best: usize,
        report: &'a FitReport,
    ) -> Self {
        Self {
            model,
            optimizer,
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
            super::atomic::write_new(path, text.as_bytes())
        }
    }
}

/// A checkpoint read back and checked, its vectors in the model's precision.
pub(crate) struct Resumed<T, O> {
    /// The model's saved form, checked when the model restores it.
    pub(crate) model: String,
    pub(crate) optimizer: O,
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
/// [`FitOptimizer::check_state`]; a checkpoint of another optimiser is an
/// error that names both), the best parameters (count, finite), the best
/// validation NLL (finite, that of the best epoch) and the epochs since it.
pub(crate) fn read<T: Real, O: FitOptimizer>(
    path: &Path,
    num_params: usize,
) -> Result<Resumed<T, O>, Error> {
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
    if !obj.contains_key(O::FIELD)
        && let Some((field, name)) = KNOWN.iter().find(|(f, _)| obj.contains_key(*f))
    {
        return Err(loc.err(
            O::FIELD,
            format!(
                "missing: the checkpoint holds the state of {name} (field `{field}`), but this run uses {}; resume with the optimiser that wrote it",
                O::NAME
            ),
        ));
    }
    let optimizer: O = validate::take(&mut obj, &loc, O::FIELD, O::EXPECTED)?;
    optimizer
        .check_state(num_params, report.steps)
        .map_err(|(field, reason)| loc.err(&format!("{}.{field}", O::FIELD), reason))?;
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
        optimizer,
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

#[cfg(test)]
mod tests {
    use super::super::report::EpochRecord;
    use super::super::{Adam, Optimizer, Sgd};
    use super::*;

    fn report(steps: u64) -> FitReport {
        FitReport {
            epochs_run: 1,
            best_epoch: 1,
            best_valid_nll: None,
            history: vec![EpochRecord {
                epoch: 1,
                train_nll: 0.5,
                valid_nll: None,
            }],
            steps,
            stopped_early: false,
            interrupted: false,
            warnings: Vec::new(),
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("normflow-checkpoint-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("run.ckpt")
    }

    /// The form written before the optimiser became a parameter: a derived
    /// serialisation with the field `adam`.
    #[derive(serde::Serialize)]
    struct Version1<'a> {
        format: &'static str,
        version: u32,
        num_params: usize,
        model: String,
        adam: &'a Adam,
        best_params: Vec<f64>,
        best_valid: Option<f64>,
        since_best: usize,
        report: &'a FitReport,
    }

    #[test]
    fn an_adam_checkpoint_is_written_as_before() {
        let mut adam = Adam::new(1e-3);
        adam.step(&mut [1.0_f64, 2.0], &[0.5, -0.25], 1e-3);
        let r = report(1);
        let new = Checkpoint::new("{}".into(), &adam, &[1.5_f64, 2.5], 0.75, 0, &r);
        let old = Version1 {
            format: CHECKPOINT_FORMAT,
            version: 1,
            num_params: 2,
            model: "{}".into(),
            adam: &adam,
            best_params: vec![1.5, 2.5],
            best_valid: Some(0.75),
            since_best: 0,
            report: &r,
        };
        assert_eq!(
            serde_json::to_string(&new).unwrap(),
            serde_json::to_string(&old).unwrap()
        );
    }

    #[test]
    fn sgd_state_survives_a_checkpoint() {
        let path = temp("sgd");
        let mut sgd = Sgd::new(0.1, 0.9);
        sgd.weight_decay = 1e-4;
        sgd.step(&mut [1.0_f64, 2.0], &[0.5, -0.25], 0.1);
        let r = report(1);
        Checkpoint::new("saved".into(), &sgd, &[1.0_f32, 2.0], f64::INFINITY, 1, &r)
            .write(&path, true)
            .unwrap();
        let back = read::<f32, Sgd>(&path, 2).unwrap();
        assert_eq!(back.optimizer, sgd);
        assert_eq!(back.model, "saved");
        assert_eq!(back.best_params, [1.0, 2.0]);
        assert_eq!((back.best_valid, back.since_best), (f64::INFINITY, 1));
        assert_eq!(back.report, r);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn another_optimizers_checkpoint_names_both() {
        let path = temp("mismatch");
        let adam = Adam::new(1e-3);
        let r = report(0);
        Checkpoint::new("m".into(), &adam, &[1.0_f64], f64::INFINITY, 0, &r)
            .write(&path, true)
            .unwrap();
        let e = read::<f64, Sgd>(&path, 1).err().unwrap().to_string();
        assert!(
            e.contains("field `sgd`")
                && e.contains("the checkpoint holds the state of Adam (field `adam`)")
                && e.contains("this run uses SGD"),
            "{e}"
        );
        read::<f64, Adam>(&path, 1).unwrap();
        // A bad SGD state names its field.
        let mut sgd = Sgd::new(0.1, 0.5);
        sgd.momentum = 2.0;
        Checkpoint::new("m".into(), &sgd, &[1.0_f64], f64::INFINITY, 0, &r)
            .write(&path, true)
            .unwrap();
        let e = read::<f64, Sgd>(&path, 1).err().unwrap().to_string();
        assert!(e.contains("field `sgd.momentum`"), "{e}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
