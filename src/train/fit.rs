//! Maximum-likelihood fitting: the options and the entry points. The loop
//! itself is the [`Trainer`](super::trainer::Trainer), generic over the
//! optimiser that [`FitOptions::optimizer`] chooses.

use nalgebra::DMatrix;
use rand::rngs::StdRng;

use super::batching::shuffle;
use super::optimizer_state::check_momentum;
use super::report::{FitEvent, FitReport};
use super::trainer::Trainer;
use super::{Adam, OptimizerKind, Schedule, Sgd, TrainableDensity};
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
    /// The optimiser's learning rate (default 1e-3).
    pub learning_rate: f64,
    /// Decoupled weight decay (default 0): every step also takes
    /// `lr · weight_decay · θ` off the parameters, with either optimiser
    /// (Adam with it is AdamW).
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
    /// The optimiser (default [`OptimizerKind::Adam`]). A run resumed from
    /// a checkpoint continues with the checkpoint's optimiser state, which
    /// must be of this kind.
    pub optimizer: OptimizerKind,
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
            optimizer: OptimizerKind::Adam,
        }
    }
}

/// The data [`fit`] takes: a `D × n` matrix of samples for a density
/// `p(x)`, and for a conditional density `p(x | c)` either the pair
/// `(&x, &c)` (`D × n` samples, `C × n` contexts, column `j` with column `j`)
/// or the stacked `(D + C) × n` matrix `[x; c]`.
pub trait FitData<'a, T: Real> {
    /// The data as one matrix of `dim + context_dim` rows (a pair is checked
    /// and stacked; a matrix is passed on as it is, its rows checked by `fit`).
    fn stacked(
        self,
        dim: usize,
        context_dim: usize,
    ) -> Result<std::borrow::Cow<'a, DMatrix<T>>, Error>;
}

impl<'a, T: Real> FitData<'a, T> for &'a DMatrix<T> {
    fn stacked(self, _: usize, _: usize) -> Result<std::borrow::Cow<'a, DMatrix<T>>, Error> {
        Ok(std::borrow::Cow::Borrowed(self))
    }
}

impl<'a, T: Real> FitData<'a, T> for (&'a DMatrix<T>, &'a DMatrix<T>) {
    fn stacked(
        self,
        dim: usize,
        context_dim: usize,
    ) -> Result<std::borrow::Cow<'a, DMatrix<T>>, Error> {
        let (x, c) = self;
        super::conditional::check_pairs("fit", "training data", x, c, dim, context_dim)?;
        Ok(std::borrow::Cow::Owned(crate::conditional::stack_context(
            x, c,
        )))
    }
}

/// [`fit_with_observer`] without an observer.
pub fn fit<'a, T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    data: impl FitData<'a, T>,
    options: &FitOptions<T>,
) -> Result<FitReport, Error> {
    fit_with_observer(model, data, options, &mut |_| true)
}

/// Fits `model` to the columns of `data` by maximum likelihood with the
/// optimiser of [`FitOptions::optimizer`] (Adam unless asked otherwise).
///
/// A conditional model (`context_dim() > 0`) is fitted to the pairs
/// `(x_j, c_j)`, given as `(&x, &c)` (see [`FitData`]): pairs stay together
/// in mini-batches and in the validation split, and
/// [`Validation::Data`] then holds the validation samples **with their
/// contexts stacked below** (`(D + C) × m`, see
/// [`stack_context`](crate::conditional::stack_context)). With
/// `options.standardize` both the samples and the contexts are standardised
/// per dimension.
///
/// Before training, layers with data-dependent initialisation (ActNorm) see
/// the training data ([`DataStage::Initialize`](crate::bijector::DataStage::Initialize)); during training the model
/// is in training mode (batch normalisation uses batch statistics); after it,
/// batch-normalisation layers store the statistics of the full training set
/// ([`DataStage::Finalize`](crate::bijector::DataStage::Finalize), as the MAF
/// paper does) and the model returns to
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
pub fn fit_with_observer<'a, T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    data: impl FitData<'a, T>,
    options: &FitOptions<T>,
    observer: &mut dyn FnMut(&FitEvent) -> bool,
) -> Result<FitReport, Error> {
    let data = data.stacked(model.dim(), model.context_dim())?;
    let data = data.as_ref();
    match options.optimizer {
        OptimizerKind::Adam => {
            let mut adam = Adam::new(options.learning_rate);
            adam.weight_decay = options.weight_decay;
            Trainer::new(model, data, options, adam)?.run(observer)
        }
        OptimizerKind::Sgd { momentum } => {
            let mut sgd = Sgd::new(options.learning_rate, momentum);
            sgd.weight_decay = options.weight_decay;
            Trainer::new(model, data, options, sgd)?.run(observer)
        }
    }
}

/// The options' numbers: a positive batch size, a finite positive learning
/// rate, a finite non-negative weight decay, a finite positive clipping norm,
/// an SGD momentum in `[0, 1)`.
pub(crate) fn check_options<T: Real>(options: &FitOptions<T>) -> Result<(), Error> {
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
    if let OptimizerKind::Sgd { momentum } = options.optimizer
        && check_momentum(momentum).is_err()
    {
        return Err(invalid("fit", "momentum", "finite and in [0, 1)", momentum));
    }
    Ok(())
}

/// The training data and the validation data of a run.
type Split<T> = (DMatrix<T>, Option<DMatrix<T>>);

/// Splits off the validation data of `options.validation`.
pub(crate) fn split_validation<T: Real>(
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

/// The data of a fit: samples, of dimension `dim`, all finite.
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
