//! Maximum-likelihood fitting.

use nalgebra::DMatrix;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Checkpoint};
use super::divergence::{describe, divergence_warning, fmt_nll, keep_good_parameters};
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
    /// With [`overwrite_checkpoint`](FitOptions::overwrite_checkpoint)
    /// unset, the first write of a run does not replace an existing file (a
    /// file that appeared meanwhile is kept, and fitting stops with an
    /// error); later writes replace the run's own checkpoint. Needs a model
    /// that can save itself (such as `FlowModel`).
    pub checkpoint: Option<std::path::PathBuf>,
    /// Whether the first checkpoint of a run may replace an existing file
    /// (default `true`, like any save; the command-line tool sets it only
    /// with `--force`).
    pub overwrite_checkpoint: bool,
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
            overwrite_checkpoint: true,
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
/// Batches: the training data is reshuffled every epoch and cut into batches
/// of `batch_size`. A model whose layers estimate statistics from each batch
/// (batch normalisation; see [`TrainableDensity::min_batch_size`]) needs a
/// `batch_size` and a training set of at least that size, and a final batch
/// smaller than that is merged into the one before it.
///
/// The observer is called after every step and every epoch; returning `false`
/// stops fitting after the current step (the best parameters so far are kept).
///
/// # Divergence
///
/// A non-finite loss or gradient stops fitting with [`Error::Training`]
/// naming the epoch and batch. The model is then left usable, as at a normal
/// end (finalised with the training data and in evaluation mode), so that the
/// caller can still save it, and it holds: the parameters of the best
/// validation epoch if there is validation data and an epoch was completed,
/// else its last parameters whose loss was finite. The error's reason says
/// which ("the model holds the parameters of epoch 3, the best validation NLL
/// 1.234"). A run whose training NLL rises by orders of magnitude but stays
/// finite ends normally with a sentence in [`FitReport::warnings`].
///
/// Buffers (batch, gradient, parameter copies) are allocated once.
pub fn fit_with_observer<T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    data: &DMatrix<T>,
    options: &FitOptions<T>,
    observer: &mut dyn FnMut(&FitEvent) -> bool,
) -> Result<FitReport, Error> {
    let d = model.dim();
    check_data("training data", data, d)?;
    check_options(options)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let (train, valid) = split_validation(data, options, d, &mut rng)?;
    if options.patience.is_some() && valid.is_none() {
        return Err(crate::error::check::invalid(
            "fit",
            "patience",
            "validation data (early stopping compares validation NLL)",
            "no validation data",
        ));
    }

    let n = train.ncols();
    let min_batch = model.min_batch_size().max(1);
    if options.batch_size < min_batch {
        return Err(crate::error::check::invalid(
            "fit",
            "batch_size",
            &format!(
                "at least {min_batch} for this model: it couples the samples of a batch (a batch-normalisation layer, `batchnorm`, estimates a variance from each batch, which one sample cannot give)"
            ),
            options.batch_size,
        ));
    }
    if n < min_batch {
        return Err(Error::Training {
            epoch: 0,
            batch: 0,
            reason: format!(
                "the training data has {n} sample(s); this model needs at least {min_batch} (a batch-normalisation layer, `batchnorm`, estimates a variance from each batch)"
            ),
        });
    }
    let plan = BatchPlan::new(n, options.batch_size, min_batch);
    let p = model.num_params();
    let mut grad = vec![T::zero(); p];
    let mut params = Vec::with_capacity(p);
    let mut last_good = Vec::with_capacity(p);
    let mut have_last_good = false;
    let mut best = Vec::with_capacity(p);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut batch = DMatrix::<T>::zeros(d, plan.len(0));
    let mut adam = Adam::new(options.learning_rate);
    adam.weight_decay = options.weight_decay;

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
        warnings: Vec::new(),
    };
    let mut best_valid = f64::INFINITY;
    let mut since_best = 0usize;
    let mut first_epoch = 1;
    if let Some(path) = &options.resume {
        let ck = checkpoint::read::<T>(path, p)?;
        model.restore_checkpoint_state(&ck.model, &path.display().to_string())?;
        model.set_training(true);
        adam = ck.adam;
        best = ck.best_params;
        best_valid = ck.best_valid;
        since_best = ck.since_best;
        report = ck.report;
        report.interrupted = false;
        report.stopped_early = false;
        first_epoch = report.epochs_run + 1;
    }
    let mut warned = !report.warnings.is_empty();
    // The history length after this run's first epoch: its first checkpoint.
    let first_written = report.history.len() + 1;
    'epochs: for epoch in first_epoch..=options.epochs {
        if options.max_steps.is_some_and(|m| report.steps >= m) {
            break;
        }
        // Each epoch's order depends only on the seed and the epoch, so a
        // resumed run shuffles exactly like an uninterrupted one.
        let mut epoch_rng = StdRng::seed_from_u64(
            options.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        idx.iter_mut().enumerate().for_each(|(i, v)| *v = i);
        shuffle(&mut idx, &mut epoch_rng);
        report.epochs_run = epoch;
        // The running mean of the batches' losses, weighted by their sizes
        // (kept finite: each loss is).
        let mut mean_loss = 0.0_f64;
        let mut seen = 0usize;
        for b in 0..plan.batches {
            let (start, len) = (plan.start(b), plan.len(b));
            if batch.ncols() != len {
                batch = DMatrix::zeros(d, len);
            }
            for (j, &c) in idx[start..start + len].iter().enumerate() {
                batch.set_column(j, &train.column(c));
            }
            grad.iter_mut().for_each(|g| *g = T::zero());
            let result = model.mean_log_prob_and_grad(&batch, &mut grad);
            let failure = match &result {
                Err(e) => Some(e.to_string()),
                Ok(v) if !v.is_finite() => Some(format!("the loss is {}", describe(-v.to_f64()))),
                Ok(v) if grad.iter().any(|g| !g.is_finite()) => Some(format!(
                    "a gradient is not finite (the loss was {})",
                    fmt_nll(-v.to_f64())
                )),
                Ok(_) => None,
            };
            if let Some(what) = failure {
                let last = have_last_good.then_some(last_good.as_slice());
                let holds = keep_good_parameters(
                    model,
                    &train,
                    valid.is_some(),
                    &report,
                    best_valid,
                    &best,
                    last,
                );
                return Err(Error::Training {
                    epoch,
                    batch: b + 1,
                    reason: format!("{what}; {holds}"),
                });
            }
            let loss = -result.map_or(0.0, |v| v.to_f64());
            seen += len;
            mean_loss += (loss - mean_loss) * (len as f64 / seen as f64);
            mean_loss = mean_loss.clamp(-f64::MAX, f64::MAX);
            // Ascend the log-likelihood: descend on −grad.
            grad.iter_mut().for_each(|g| *g = -*g);
            if let Some(c) = options.clip_norm {
                clip_grad_norm(&mut grad, c);
            }
            model.copy_params_into(&mut params);
            last_good.clear();
            last_good.extend_from_slice(&params);
            have_last_good = true;
            let lr = options.learning_rate * options.schedule.factor(report.steps);
            adam.step(&mut params, &grad, lr);
            model.load_params(&params);
            report.steps = report.steps.saturating_add(1);
            let go_on = observer(&FitEvent::Step {
                epoch,
                batch: b + 1,
                batches: plan.batches,
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
            train_nll: mean_loss,
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
        if !warned && let Some(w) = divergence_warning(&report.history, &record) {
            report.warnings.push(w);
            warned = true;
        }
        report.history.push(record);
        if let Some(path) = &options.checkpoint {
            let saved = model.save_state().ok_or_else(|| Error::Unsupported {
                context: "fit".into(),
                reason: "checkpoints need a model that can save itself (a FlowModel)".into(),
            })?;
            // Checkpoints store the model in evaluation form; training resumes
            // in training mode.
            // The first write of this run only replaces a file if asked.
            let replace = options.overwrite_checkpoint || report.history.len() > first_written;
            Checkpoint::new(saved, &adam, &best, best_valid, since_best, &report)
                .write(path, replace)?;
        }
        if !observer(&FitEvent::Epoch(record)) {
            report.interrupted = true;
            break;
        }
        if options.patience.is_some_and(|pat| since_best >= pat) {
            report.stopped_early = true;
            break;
        }
    }
    if valid.is_some() && report.best_epoch > 0 && best_valid.is_finite() {
        model.load_params(&best);
        report.best_valid_nll = Some(best_valid);
    }
    model.prepare_with_data(&train, DataStage::Finalize);
    model.set_training(false);
    Ok(report)
}

/// The options' numbers: a positive batch size, a finite positive learning
/// rate, a finite non-negative weight decay, a finite positive clipping norm.
fn check_options<T: Real>(options: &FitOptions<T>) -> Result<(), Error> {
    use crate::error::check::invalid;
    if options.batch_size == 0 {
        return Err(invalid("fit", "batch_size", "at least 1", 0));
    }
    if !(options.learning_rate.is_finite() && options.learning_rate > 0.0) {
        return Err(invalid(
            "fit",
            "learning_rate",
            "finite and positive",
            options.learning_rate,
        ));
    }
    if !(options.weight_decay.is_finite() && options.weight_decay >= 0.0) {
        return Err(invalid(
            "fit",
            "weight_decay",
            "finite and non-negative",
            options.weight_decay,
        ));
    }
    if let Some(c) = options.clip_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(invalid("fit", "clip_norm", "finite and positive", c));
    }
    Ok(())
}

/// The training data and the validation data of a run.
type Split<T> = (DMatrix<T>, Option<DMatrix<T>>);

/// Splits off the validation data of `options.validation`.
fn split_validation<T: Real>(
    data: &DMatrix<T>,
    options: &FitOptions<T>,
    d: usize,
    rng: &mut StdRng,
) -> Result<Split<T>, Error> {
    Ok(match &options.validation {
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
            shuffle(&mut idx, rng);
            let pick = |ids: &[usize]| DMatrix::from_fn(d, ids.len(), |i, j| data[(i, ids[j])]);
            (pick(&idx[m..]), Some(pick(&idx[..m])))
        }
    })
}

/// How an epoch's `n` samples are cut into batches of `size`: a final batch
/// smaller than `min` is merged into the one before it.
struct BatchPlan {
    n: usize,
    size: usize,
    batches: usize,
}

impl BatchPlan {
    fn new(n: usize, size: usize, min: usize) -> Self {
        let (full, rem) = (n / size, n % size);
        let batches = if rem == 0 || (rem < min && full >= 1) {
            full
        } else {
            full + 1
        };
        Self { n, size, batches }
    }
    fn start(&self, b: usize) -> usize {
        b * self.size
    }
    fn len(&self, b: usize) -> usize {
        if b + 1 >= self.batches {
            self.n - self.start(b.min(self.batches.saturating_sub(1)))
        } else {
            self.size
        }
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
