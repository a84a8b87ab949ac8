//! Maximum-likelihood fitting.

use nalgebra::DMatrix;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Adam, Optimizer, Schedule, TrainableDensity, clip_grad_norm};
use crate::bijector::DataStage;
use crate::{Error, Real};

/// Where the validation data for early stopping comes from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Validation<T: Real> {
    /// No validation: train for the full budget.
    #[default]
    None,
    /// Hold out this fraction of the (shuffled) training data.
    Fraction(f64),
    /// A separate validation set (`D × m`).
    Data(DMatrix<T>),
}

/// Options of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions<T: Real> {
    /// Samples per gradient step (default 256).
    pub batch_size: usize,
    /// Passes over the training data (default 100).
    pub epochs: usize,
    /// Stop after this many steps in total, if set.
    pub max_steps: Option<u64>,
    /// Adam's learning rate (default 1e-3).
    pub learning_rate: f64,
    /// Decoupled weight decay (default 0).
    pub weight_decay: f64,
    /// Global gradient-norm clipping, if set.
    pub clip_norm: Option<f64>,
    /// Learning-rate schedule (default constant).
    pub schedule: Schedule,
    /// Seed of the shuffling (and of the validation split): the same seed
    /// gives the same run.
    pub seed: u64,
    /// Validation data for the history and for early stopping.
    pub validation: Validation<T>,
    /// Fold a standardisation of the training data (per-dimension mean and
    /// standard deviation) into the model before fitting, so that the flow
    /// trains on standardised data while the model stays in data units
    /// (default `false`; needs a model that supports it, such as `FlowModel`).
    pub standardize: bool,
    /// Write a checkpoint (model, optimiser state, history, best parameters)
    /// to this path after every epoch, atomically (temporary file + rename).
    /// Needs a model that can save itself (such as `FlowModel`).
    pub checkpoint: Option<std::path::PathBuf>,
    /// Continue the run saved in this checkpoint: the model, optimiser and
    /// history are restored and fitting resumes after its last epoch, giving
    /// the same result as an uninterrupted run with the same options.
    pub resume: Option<std::path::PathBuf>,
    /// Stop when the validation NLL has not improved for this many epochs,
    /// and restore the best parameters (needs validation data).
    pub patience: Option<usize>,
}

impl<T: Real> Default for FitOptions<T> {
    fn default() -> Self {
        Self {
            batch_size: 256,
            epochs: 100,
            max_steps: None,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            clip_norm: None,
            schedule: Schedule::Constant,
            seed: 0,
            validation: Validation::None,
            standardize: false,
            checkpoint: None,
            resume: None,
            patience: None,
        }
    }
}

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

/// What [`fit`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Epochs completed (or started, if interrupted).
    pub epochs_run: usize,
    /// The epoch whose parameters the model holds at the end (the best by
    /// validation NLL when there is validation data, else the last).
    pub best_epoch: usize,
    /// Validation NLL of the returned parameters, if there is validation data.
    pub best_valid_nll: Option<f64>,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// Gradient steps taken.
    pub steps: u64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether the observer asked to stop.
    pub interrupted: bool,
}

/// What the observer of [`fit_with_observer`] is told.
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

/// [`fit_with_observer`] without an observer.
pub fn fit<T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    data: &DMatrix<T>,
    options: &FitOptions<T>,
) -> Result<FitReport, Error> {
    fit_with_observer(model, data, options, &mut |_| true)
}

/// Fits `model` to the columns of `data` by maximum likelihood with Adam.
///
/// Before training, layers with data-dependent initialisation (ActNorm) see
/// the training data ([`DataStage::Initialize`]); during training the model
/// is in training mode (batch normalisation uses batch statistics); after it,
/// batch-normalisation layers store the statistics of the full training set
/// ([`DataStage::Finalize`], as the MAF paper does) and the model returns to
/// evaluation mode. With validation data, the history records the validation
/// NLL after every epoch (evaluated in evaluation mode with full-training-set
/// statistics), early stopping waits `patience` epochs for an improvement, and
/// the best parameters are restored at the end.
///
/// The observer is called after every step and every epoch; returning `false`
/// stops fitting after the current step (the best parameters so far are kept).
///
/// A non-finite loss or gradient stops fitting with [`Error::Training`] naming
/// the epoch and batch; the model is left at its last parameters whose loss
/// was finite. Buffers (batch, gradient, parameter copies) are allocated once.
pub fn fit_with_observer<T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    data: &DMatrix<T>,
    options: &FitOptions<T>,
    observer: &mut dyn FnMut(&FitEvent) -> bool,
) -> Result<FitReport, Error> {
    let d = model.dim();
    check_data("training data", data, d)?;
    if options.batch_size == 0 {
        return Err(crate::error::check::invalid(
            "fit",
            "batch_size",
            "at least 1",
            0,
        ));
    }
    if !(options.learning_rate.is_finite() && options.learning_rate > 0.0) {
        return Err(crate::error::check::invalid(
            "fit",
            "learning_rate",
            "finite and positive",
            options.learning_rate,
        ));
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    // Split off validation data.
    let (train, valid) = match &options.validation {
        Validation::None => (data.clone(), None),
        Validation::Data(v) => {
            check_data("validation data", v, d)?;
            (data.clone(), Some(v.clone()))
        }
        Validation::Fraction(f) => {
            if !(*f > 0.0 && *f < 1.0) {
                return Err(crate::error::check::invalid(
                    "fit",
                    "validation fraction",
                    "in (0, 1)",
                    f,
                ));
            }
            let n = data.ncols();
            let m = ((n as f64) * f).ceil() as usize;
            if m == 0 || m >= n {
                return Err(crate::error::check::invalid(
                    "fit",
                    "validation fraction",
                    "a fraction leaving at least one sample on each side",
                    f,
                ));
            }
            let mut idx: Vec<usize> = (0..n).collect();
            shuffle(&mut idx, &mut rng);
            let pick = |ids: &[usize]| DMatrix::from_fn(d, ids.len(), |i, j| data[(i, ids[j])]);
            (pick(&idx[m..]), Some(pick(&idx[..m])))
        }
    };
    if options.patience.is_some() && valid.is_none() {
        return Err(crate::error::check::invalid(
            "fit",
            "patience",
            "validation data (early stopping compares validation NLL)",
            "no validation data",
        ));
    }

    let n = train.ncols();
    let p = model.num_params();
    let mut grad = vec![T::zero(); p];
    let mut params = Vec::with_capacity(p);
    let mut last_good = Vec::with_capacity(p);
    let mut best = Vec::with_capacity(p);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut batch = DMatrix::<T>::zeros(d, options.batch_size.min(n));
    let mut adam = Adam::new(options.learning_rate);
    adam.weight_decay = options.weight_decay;
    let batches = n.div_ceil(options.batch_size);

    if options.standardize {
        model.standardize_from(&train)?;
    }
    model.prepare_with_data(&train, DataStage::Initialize);
    model.set_training(true);
    model.copy_params_into(&mut best);
    let mut report = FitReport {
        epochs_run: 0,
        best_epoch: 0,
        best_valid_nll: None,
        history: Vec::new(),
        steps: 0,
        stopped_early: false,
        interrupted: false,
    };
    let mut best_valid = f64::INFINITY;
    let mut since_best = 0usize;
    let mut first_epoch = 1;
    if let Some(path) = &options.resume {
        let ck = Checkpoint::read(path)?;
        if ck.num_params != p {
            return Err(Error::Format {
                location: path.display().to_string(),
                reason: format!(
                    "the checkpoint's model has {} parameters, this model has {p}",
                    ck.num_params
                ),
            });
        }
        model.restore_state(&ck.model).map_err(|e| Error::Format {
            location: format!("{}, field `model`", path.display()),
            reason: e.to_string(),
        })?;
        model.set_training(true);
        adam = ck.adam;
        best = ck.best_params.iter().map(|v| T::lit(*v)).collect();
        best_valid = ck.best_valid.unwrap_or(f64::INFINITY);
        since_best = ck.since_best;
        report = ck.report;
        first_epoch = report.epochs_run + 1;
    }
    'epochs: for epoch in first_epoch..=options.epochs {
        // Each epoch's order depends only on the seed and the epoch, so a
        // resumed run shuffles exactly like an uninterrupted one.
        let mut epoch_rng = StdRng::seed_from_u64(
            options.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        idx.iter_mut().enumerate().for_each(|(i, v)| *v = i);
        shuffle(&mut idx, &mut epoch_rng);
        report.epochs_run = epoch;
        let mut total = 0.0;
        for b in 0..batches {
            let start = b * options.batch_size;
            let len = options.batch_size.min(n - start);
            if batch.ncols() != len {
                batch = DMatrix::zeros(d, len);
            }
            for (j, &c) in idx[start..start + len].iter().enumerate() {
                batch.set_column(j, &train.column(c));
            }
            grad.iter_mut().for_each(|g| *g = T::zero());
            let result = model.mean_log_prob_and_grad(&batch, &mut grad);
            let bad = |reason: String| Error::Training {
                epoch,
                batch: b + 1,
                reason,
            };
            let mean_lp = match result {
                Ok(v) => v,
                Err(e) => {
                    restore(model, &last_good);
                    return Err(bad(e.to_string()));
                }
            };
            if !mean_lp.is_finite() || grad.iter().any(|g| !g.is_finite()) {
                restore(model, &last_good);
                let what = if mean_lp.is_finite() {
                    "a gradient"
                } else {
                    "the loss"
                };
                return Err(bad(format!(
                    "{what} is not finite (loss {}); the model holds its last parameters with a finite loss",
                    -mean_lp.to_f64()
                )));
            }
            let loss = -mean_lp.to_f64();
            total += loss * len as f64;
            // Ascend the log-likelihood: descend on −grad.
            grad.iter_mut().for_each(|g| *g = -*g);
            if let Some(c) = options.clip_norm {
                clip_grad_norm(&mut grad, c);
            }
            model.copy_params_into(&mut params);
            last_good.clear();
            last_good.extend_from_slice(&params);
            let lr = options.learning_rate * options.schedule.factor(report.steps);
            adam.step(&mut params, &grad, lr);
            model.load_params(&params);
            report.steps += 1;
            let go_on = observer(&FitEvent::Step {
                epoch,
                batch: b + 1,
                batches,
                loss,
            });
            if !go_on {
                report.interrupted = true;
                break 'epochs;
            }
            if options.max_steps.is_some_and(|m| report.steps >= m) {
                break;
            }
        }
        let mut record = EpochRecord {
            epoch,
            train_nll: total / n as f64,
            valid_nll: None,
        };
        if let Some(v) = &valid {
            let nll = evaluate_nll(model, &train, v);
            record.valid_nll = Some(nll);
            if nll < best_valid {
                best_valid = nll;
                since_best = 0;
                report.best_epoch = epoch;
                model.copy_params_into(&mut best);
            } else {
                since_best += 1;
            }
        } else {
            report.best_epoch = epoch;
        }
        report.history.push(record);
        if let Some(path) = &options.checkpoint {
            let ck = Checkpoint {
                format: CHECKPOINT_FORMAT.into(),
                version: CHECKPOINT_VERSION,
                num_params: p,
                model: model.save_state().ok_or_else(|| Error::Unsupported {
                    context: "fit".into(),
                    reason: "checkpoints need a model that can save itself (a FlowModel)".into(),
                })?,
                adam: adam.clone(),
                best_params: best.iter().map(|v| v.to_f64()).collect(),
                best_valid: best_valid.is_finite().then_some(best_valid),
                since_best,
                report: report.clone(),
            };
            // Checkpoints store the model in evaluation form; training resumes
            // in training mode.
            super::write_atomically(
                path,
                serde_json::to_string(&ck)
                    .expect("a checkpoint serialises")
                    .as_bytes(),
            )?;
        }
        if !observer(&FitEvent::Epoch(record)) {
            report.interrupted = true;
            break;
        }
        if options.patience.is_some_and(|pat| since_best >= pat) {
            report.stopped_early = true;
            break;
        }
        if options.max_steps.is_some_and(|m| report.steps >= m) {
            break;
        }
    }
    if valid.is_some() && report.best_epoch > 0 {
        model.load_params(&best);
        report.best_valid_nll = Some(best_valid);
    }
    model.prepare_with_data(&train, DataStage::Finalize);
    model.set_training(false);
    Ok(report)
}

const CHECKPOINT_FORMAT: &str = "normflow-checkpoint";
const CHECKPOINT_VERSION: u32 = 1;

/// A fitting run saved after an epoch.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    format: String,
    version: u32,
    num_params: usize,
    /// The model's own saved form (for a `FlowModel`, its JSON).
    model: String,
    adam: Adam,
    best_params: Vec<f64>,
    best_valid: Option<f64>,
    since_best: usize,
    report: FitReport,
}

impl Checkpoint {
    fn read(path: &std::path::Path) -> Result<Checkpoint, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let fmt = |reason: String| Error::Format {
            location: path.display().to_string(),
            reason,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            fmt(if e.is_eof() {
                format!("the checkpoint is truncated ({e})")
            } else {
                format!("not valid JSON: {e}")
            })
        })?;
        if value.get("format").and_then(|v| v.as_str()) != Some(CHECKPOINT_FORMAT) {
            return Err(fmt(format!(
                "expected \"{CHECKPOINT_FORMAT}\"; this is not a normflow checkpoint"
            )));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v <= CHECKPOINT_VERSION as u64 => {}
            Some(v) => {
                return Err(fmt(format!(
                    "checkpoint format version {v} is newer than this build's {CHECKPOINT_VERSION}"
                )));
            }
            None => return Err(fmt("the checkpoint has no version".into())),
        }
        serde_json::from_value(value).map_err(|e| fmt(format!("malformed checkpoint: {e}")))
    }
}

/// Validation NLL in evaluation mode, with batch-norm statistics of the
/// training set; the model is returned to training mode.
fn evaluate_nll<T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    train: &DMatrix<T>,
    valid: &DMatrix<T>,
) -> f64 {
    model.prepare_with_data(train, DataStage::Finalize);
    model.set_training(false);
    let lp = model.log_prob(valid);
    model.set_training(true);
    let mean = lp.iter().map(|v| v.to_f64()).sum::<f64>() / lp.len() as f64;
    if mean.is_finite() {
        -mean
    } else {
        f64::INFINITY
    }
}

fn restore<T: Real, M: TrainableDensity<T>>(model: &mut M, last_good: &[T]) {
    if last_good.len() == model.num_params() {
        model.load_params(last_good);
    }
    model.set_training(false);
}

/// Fisher–Yates shuffle.
pub(crate) fn shuffle(v: &mut [usize], rng: &mut StdRng) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

pub(crate) fn check_data<T: Real>(what: &str, data: &DMatrix<T>, dim: usize) -> Result<(), Error> {
    if data.ncols() == 0 {
        return Err(Error::Training {
            epoch: 0,
            batch: 0,
            reason: format!("the {what} has no samples"),
        });
    }
    crate::error::check::same_dim("fit", what, dim, data.nrows())?;
    for j in 0..data.ncols() {
        for i in 0..data.nrows() {
            if !data[(i, j)].is_finite() {
                return Err(crate::error::check::invalid(
                    "fit",
                    &format!("{what}[({i}, {j})]"),
                    "finite",
                    data[(i, j)],
                ));
            }
        }
    }
    Ok(())
}
