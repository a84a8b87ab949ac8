//! Conditional models on the command line: `fit --context-columns K` or
//! `--context FILE`, and `eval` / `sample` with contexts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nalgebra::DMatrix;
use normflow::Real;
use normflow::conditional::stack_context;
use normflow::prelude::*;
use normflow::train::{FitOptions, FlowModel, Validation, fit_with_observer};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::Result;
use crate::data_io::read_data;
use crate::errln;
use crate::fit::Outcome;
use crate::output::Output;
use crate::progress::FitProgress;

/// Where the contexts of a data file come from.
#[derive(Debug, Clone)]
pub enum ContextSource {
    /// The last `K` columns of the data file.
    Columns(usize),
    /// A separate file with one row per data row.
    File(PathBuf),
}

impl ContextSource {
    /// From `--context-columns K` and `--context FILE` (clap keeps them exclusive).
    pub fn from_flags(columns: Option<usize>, file: Option<PathBuf>) -> Result<Option<Self>> {
        match (columns, file) {
            (Some(0), _) => Err("--context-columns must be at least 1".into()),
            (Some(k), _) => Ok(Some(Self::Columns(k))),
            (None, Some(f)) => Ok(Some(Self::File(f))),
            (None, None) => Ok(None),
        }
    }

    /// Splits the data read from `path` (`columns × rows`, one column per
    /// row of the file) into samples and contexts.
    pub fn split(&self, data: DMatrix<f64>, path: &Path) -> Result<(DMatrix<f64>, DMatrix<f64>)> {
        match self {
            Self::Columns(k) => {
                if *k >= data.nrows() {
                    return Err(format!(
                        "{}: --context-columns {k} leaves no data columns (the file has {} columns)",
                        path.display(),
                        data.nrows()
                    ));
                }
                let d = data.nrows() - k;
                Ok((
                    data.rows(0, d).clone_owned(),
                    data.rows(d, *k).clone_owned(),
                ))
            }
            Self::File(f) => {
                let c = read_data(f).map_err(|e| e.to_string())?;
                if c.ncols() != data.ncols() {
                    return Err(format!(
                        "{}: {} rows of context for {} rows of data in {}",
                        f.display(),
                        c.ncols(),
                        data.ncols(),
                        path.display()
                    ));
                }
                Ok((data, c))
            }
        }
    }
}

fn load(path: &Path) -> Result<FlowModel<f64>> {
    FlowModel::<f64>::load(path).map_err(|e| e.to_string())
}

/// Checks a data set and its contexts against a model.
fn check_shapes(
    model: &FlowModel<f64>,
    x: &DMatrix<f64>,
    c: &DMatrix<f64>,
    data: &Path,
) -> Result<()> {
    if x.nrows() != model.dim() {
        return Err(format!(
            "{}: the data has {} columns but the model is {}-dimensional",
            data.display(),
            x.nrows(),
            model.dim()
        ));
    }
    if c.nrows() != model.context_dim() {
        return Err(format!(
            "{}: the context has {} columns but the model takes a {}-dimensional context",
            data.display(),
            c.nrows(),
            model.context_dim()
        ));
    }
    Ok(())
}

/// The model, data and contexts of `eval` of a conditional model, checked
/// against each other.
pub fn eval_inputs(
    model_path: &Path,
    data: &Path,
    source: Option<ContextSource>,
) -> Result<(FlowModel<f64>, DMatrix<f64>, DMatrix<f64>)> {
    let model = load(model_path)?;
    let source = source.ok_or_else(|| {
        format!(
            "{} is a conditional model (context dimension {}): give --context FILE or --context-columns {}",
            model_path.display(),
            model.context_dim(),
            model.context_dim()
        )
    })?;
    let raw = read_data(data).map_err(|e| e.to_string())?;
    let (x, c) = source.split(raw, data)?;
    check_shapes(&model, &x, &c, data)?;
    Ok((model, x, c))
}

/// `sample` of a conditional model: `per_context` samples for every row of
/// the context file, context by context, written in chunks of whole
/// contexts.
pub fn sample(
    model_path: &Path,
    context: &Path,
    per_context: usize,
    seed: u64,
    out: &Output,
) -> Result<()> {
    if per_context == 0 {
        return Err("-n must be at least 1".into());
    }
    let model = load(model_path)?;
    let c = read_data(context).map_err(|e| e.to_string())?;
    if c.nrows() != model.context_dim() {
        return Err(format!(
            "{}: the context has {} columns but the model takes a {}-dimensional context",
            context.display(),
            c.nrows(),
            model.context_dim()
        ));
    }
    let total = c
        .ncols()
        .checked_mul(per_context)
        .filter(|&t| t <= crate::sample::MAX_SAMPLES)
        .ok_or_else(|| {
            format!(
                "{} context rows × {per_context} samples each is over the limit of {} samples per call",
                c.ncols(),
                crate::sample::MAX_SAMPLES
            )
        })?;
    let mut rng = StdRng::seed_from_u64(seed);
    let draw = |start: usize, len: usize| {
        // Sample `start + j` belongs to context row `(start + j) / per_context`.
        let repeated = DMatrix::from_fn(c.nrows(), len, |i, j| c[(i, (start + j) / per_context)]);
        model.sample_given(&repeated, &mut rng)
    };
    let chunk = crate::models::chunk_for(
        model.spec(),
        model.dim(),
        model.context_dim(),
        crate::sample::CHUNK,
    );
    crate::sample::write_samples(out, total, model.dim(), draw, chunk)?;
    errln!(
        "wrote {total} samples ({per_context} per context row) to {}",
        out.path().display()
    );
    Ok(())
}

/// Validation of a conditional fit.
pub enum ValidationPairs {
    None,
    Fraction(f64),
    Data(DMatrix<f64>, DMatrix<f64>),
}

/// `fit` of a conditional model.
pub struct FitJob {
    pub spec: FlowSpec,
    pub train: DMatrix<f64>,
    pub train_c: DMatrix<f64>,
    pub validation: ValidationPairs,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: crate::fit::Optimizer,
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
        let (dim, context_dim) = (self.train.nrows(), self.train_c.nrows());
        crate::fit::check_range::<T>("the training data", &self.train)?;
        crate::fit::check_range::<T>("the training contexts", &self.train_c)?;
        if let ValidationPairs::Data(v, vc) = &self.validation {
            crate::fit::check_range::<T>("the validation data", v)?;
            crate::fit::check_range::<T>("the validation contexts", vc)?;
        }
        let cast = |m: &DMatrix<f64>| m.map(T::lit);
        let validation = match &self.validation {
            ValidationPairs::None => Validation::None,
            ValidationPairs::Fraction(f) => Validation::Fraction(*f),
            ValidationPairs::Data(v, vc) => {
                if v.nrows() != dim || vc.nrows() != context_dim {
                    return Err(format!(
                        "the validation data has {} data and {} context columns but the training data has {dim} and {context_dim}",
                        v.nrows(),
                        vc.nrows()
                    ));
                }
                Validation::Data(cast(&stack_context(v, vc)))
            }
        };
        crate::models::check_training_memory(
            &self.spec,
            dim,
            context_dim,
            self.batch_size.min(self.train.ncols()),
            std::mem::size_of::<T>(),
        )?;
        let mut model = FlowModel::<T>::conditional(&self.spec, dim, context_dim, self.seed)
            .map_err(|e| e.to_string())?;
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
        let (x, c) = (cast(&self.train), cast(&self.train_c));
        let result =
            fit_with_observer(&mut model, (&x, &c), &options, &mut |e| progress.observe(e));
        let steps = progress.finish();
        // Saved in f64 whatever the training precision.
        let to_json = || -> Result<String> {
            Ok(FlowModel::<f64>::from_json(&model.to_json())
                .map_err(|e| e.to_string())?
                .to_json())
        };
        crate::fit::conclude(result, steps, to_json, &self.out, start, self.json)
    }
}
