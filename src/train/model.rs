//! A trainable flow model that saves to and loads from JSON.

use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::TrainableDensity;
use super::density::mean_log_prob_and_grad;
use super::model_file;
use super::validate::{self, Loc};
use crate::bijector::{Bijector, DataStage, Differentiable};
use crate::distribution::{Distribution, StandardNormal};
use crate::error::clip;
use crate::spec::{Flow, FlowSpec};
use crate::{Error, Real};

/// The version of the model file format this build writes and reads.
///
/// Version 2: affine layers (MAF, IAF, RealNVP) apply their scale in the
/// density direction (`u = x·s + t`). Version 1 files applied it in the
/// sampling direction, so their parameters mean something else; they are
/// refused with an error that says to refit.
pub const MODEL_FORMAT_VERSION: u32 = 2;

/// A per-dimension affine standardisation folded into a model:
/// `x = mean + std ⊙ y`, so the flow sees `y = (x − mean)/std` and the model's
/// densities are in data units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    /// Per-dimension mean of the training data.
    pub mean: Vec<f64>,
    /// Per-dimension standard deviation of the training data (positive).
    pub std: Vec<f64>,
}

/// A standard normal pushed through a flow built from a [`FlowSpec`], with an
/// optional data standardisation: the model that `fit` trains and the
/// command-line tool saves.
///
/// `log p(x) = log p_flow((x − m)/s) − Σᵢ log sᵢ`.
///
/// A model is saved as JSON holding the format version, the spec text, the
/// dimension, the build seed (which fixes the random permutations), the
/// standardisation, the flat parameters and the layers' state (batch-norm
/// statistics); loading rebuilds the flow from the spec and seed and restores
/// parameters and state, so `log_prob` is bit-identical.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use normflow::train::FlowModel;
///
/// let model = FlowModel::<f64>::new(&flow!(realnvp(2, hidden = 8, identity_init = false)), 2, 7)?;
/// let x = DMatrix::from_row_slice(2, 3, &[0.1, -1.0, 2.0, 0.5, 0.0, -0.3]);
/// let loaded = FlowModel::<f64>::from_json(&model.to_json())?;
/// assert_eq!(loaded.log_prob(&x), model.log_prob(&x));
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FlowModel<T: Real> {
    flow: Flow<T>,
    base: StandardNormal,
    seed: u64,
    standardization: Option<Standardization>,
}

/// The saved form (written by [`FlowModel::to_json`]; read field by field,
/// with checks, by [`FlowModel::from_json`]).
#[derive(Serialize)]
struct ModelFile {
    format: String,
    version: u32,
    spec: String,
    dim: usize,
    seed: u64,
    standardization: Option<Standardization>,
    params: Vec<f64>,
    state: Vec<f64>,
}

const FORMAT_NAME: &str = "normflow-model";

impl<T: Real> FlowModel<T> {
    /// Builds `spec` for `dim`-dimensional data, drawing initial parameters
    /// and permutations from a generator seeded with `seed`.
    pub fn new(spec: &FlowSpec, dim: usize, seed: u64) -> Result<Self, Error> {
        let mut rng = StdRng::seed_from_u64(seed);
        let flow = spec.build::<T>(dim, &mut rng)?;
        Ok(Self {
            flow,
            base: StandardNormal::new(dim)?,
            seed,
            standardization: None,
        })
    }

    /// Sets the standardisation to the per-dimension mean and standard
    /// deviation of `data` (`D × n`); a dimension with zero spread gets 1.
    ///
    /// The statistics are computed on each dimension scaled by its largest
    /// magnitude, so they cannot overflow for any finite data; a dimension
    /// whose standard deviation is still not a finite positive number in the
    /// model's precision is an error naming it.
    pub fn standardize_from(&mut self, data: &DMatrix<T>) -> Result<(), Error> {
        super::fit::check_data("data", data, self.dim())?;
        self.standardization = Some(standardization_of(
            data,
            "FlowModel::standardize_from",
            "data",
        )?);
        Ok(())
    }

    /// The standardisation, if any.
    pub fn standardization(&self) -> Option<&Standardization> {
        self.standardization.as_ref()
    }

    /// The flow.
    pub fn flow(&self) -> &Flow<T> {
        &self.flow
    }

    /// The spec the flow was built from.
    pub fn spec(&self) -> &FlowSpec {
        self.flow.spec()
    }

    /// The build seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn to_flow_space(&self, x: &DMatrix<T>) -> DMatrix<T> {
        apply_standardization(&self.standardization, x)
    }

    /// Whether a layer couples the samples of a batch (batch normalisation).
    fn has_batch_norm(&self) -> bool {
        self.flow
            .layers()
            .iter()
            .any(|l| matches!(l, crate::spec::FlowLayer::BatchNorm(_)))
    }

    /// Column blocks to split a batch of `n` into for evaluation on several
    /// threads: 1 unless the features `threads` and `fast-gemm` are on, the
    /// batch is large enough to gain, and no layer couples the samples of a
    /// batch (batch normalisation in training mode uses the batch's
    /// statistics, so it sees the whole batch).
    fn parallel_blocks(&self, n: usize) -> usize {
        let couples = self.flow.layers().iter().any(|l| match l {
            crate::spec::FlowLayer::BatchNorm(b) => b.is_training(),
            _ => false,
        });
        if couples {
            1
        } else {
            crate::parallel::blocks_for(n, self.flow.num_params())
        }
    }

    fn log_scale_sum(&self) -> T {
        T::lit(
            self.standardization
                .as_ref()
                .map_or(0.0, |s| s.std.iter().map(|v| v.ln()).sum()),
        )
    }

    /// The model as JSON (see the type docs for the contents).
    pub fn to_json(&self) -> String {
        let file = ModelFile {
            format: FORMAT_NAME.into(),
            version: MODEL_FORMAT_VERSION,
            spec: self.flow.spec().to_string(),
            dim: self.dim(),
            seed: self.seed,
            standardization: self.standardization.clone(),
            params: self
                .flow
                .params_to_vec()
                .iter()
                .map(|v| v.to_f64())
                .collect(),
            state: {
                let mut s = Vec::new();
                self.flow
                    .visit_state(&mut |x| s.extend(x.iter().map(|v| v.to_f64())));
                s
            },
        };
        serde_json::to_string_pretty(&file).expect("a model serialises")
    }

    /// Reads a model from JSON text, checking every field: malformed or
    /// truncated text, another format, a newer version, an invalid spec, a
    /// dimension of 0 or one the spec cannot be built for, a standardisation
    /// of the wrong length or with a non-finite mean or a non-positive
    /// standard deviation, parameters or state whose count does not match the
    /// spec, a non-finite parameter or state value, or a batch-normalisation
    /// layer with a negative running variance are [`Error::Format`] naming the
    /// field.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        Self::from_json_in(text, &Loc::new("model"))
    }

    fn from_json_in(text: &str, loc: &Loc) -> Result<Self, Error> {
        let mut obj = validate::parse_object(text, loc, "file")?;
        validate::check_format(
            &obj,
            loc,
            FORMAT_NAME,
            &[(
                "normflow-conditional-model",
                "this is a conditional model (it needs a context); load it as a ConditionalFlowModel",
            )],
            "normflow model file",
        )?;
        let version = validate::version(&obj, loc, MODEL_FORMAT_VERSION)?;
        if version < MODEL_FORMAT_VERSION as u64 {
            return Err(loc.err(
                "version",
                format!(
                    "the file has format version {version}, whose affine layers applied their scales in the sampling direction; this build ({MODEL_FORMAT_VERSION}) applies them in the density direction, so the saved parameters would give a different model: refit it"
                ),
            ));
        }
        let c = model_file::read_common::<T>(&mut obj, loc)?;
        model_file::check_flow_size::<T>(&c, 0, true, loc)?;
        let dims = model_file::describe_dims(c.dim, 0);
        let mut model = Self::new(&c.spec, c.dim, c.seed)
            .map_err(|e| model_file::build_error(loc, &c.spec_text, &dims, e))?;
        model.standardization = c.standardization;
        let params =
            validate::params::<T>(&c.params, model.flow.num_params(), loc, "params", || {
                format!("the spec `{}` in {dims}", clip(&c.spec_text))
            })?;
        model
            .flow
            .set_params(&params)
            .map_err(|e| loc.err("params", e.to_string()))?;
        let state = validate::state::<T>(&validate::flow_state_layout(&model.flow), &c.state, loc)?;
        validate::install_state(&state, |f| model.flow.visit_state_mut(f));
        Ok(model)
    }

    /// Writes the model to `path` atomically: to a temporary file in the same
    /// folder, then renamed over `path`, so an interrupted write never leaves a
    /// half-written file in place of a good one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        write_atomically(path.as_ref(), self.to_json().as_bytes())
    }

    /// Reads a model written by [`FlowModel::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json_in(&text, &Loc::new(path.display().to_string()))
    }
}

/// Per-dimension mean and standard deviation of the rows of `m` (`D × n`,
/// finite, `n ≥ 1`), computed on each row scaled by its largest magnitude so
/// that nothing overflows; a row with zero spread gets standard deviation 1.
/// A standard deviation or mean that is not finite (or a deviation not
/// positive) in the precision `T` is an error naming the row (`what` names
/// the data, `context` the caller).
pub(crate) fn standardization_of<T: Real>(
    m: &DMatrix<T>,
    context: &str,
    what: &str,
) -> Result<Standardization, Error> {
    let n = m.ncols() as f64;
    let mut mean = Vec::with_capacity(m.nrows());
    let mut std = Vec::with_capacity(m.nrows());
    for (i, row) in m.row_iter().enumerate() {
        let scale = row.iter().fold(0.0_f64, |a, v| a.max(v.to_f64().abs()));
        let (mu, sd) = if scale == 0.0 {
            (0.0, 1.0)
        } else {
            let y_mean = row.iter().map(|v| v.to_f64() / scale).sum::<f64>() / n;
            let y_var = row
                .iter()
                .map(|v| (v.to_f64() / scale - y_mean).powi(2))
                .sum::<f64>()
                / n;
            let sd = if y_var > 0.0 {
                y_var.sqrt() * scale
            } else {
                1.0
            };
            (y_mean * scale, sd)
        };
        let ok_mean = validate::finite_in::<T>(mu).is_some();
        let ok_std = validate::finite_in::<T>(sd).is_some_and(|s| s > T::zero());
        if !(ok_mean && ok_std) {
            return Err(crate::error::check::invalid(
                context,
                &format!("{what}, dimension {i}"),
                "data whose mean and standard deviation are finite, the deviation positive, in the model's precision",
                format!(
                    "mean {}, standard deviation {}",
                    validate::num(mu),
                    validate::num(sd)
                ),
            ));
        }
        mean.push(mu);
        std.push(sd);
    }
    Ok(Standardization { mean, std })
}

/// `(x − mean)/std` per row, or `x` itself without a standardisation. An
/// entry whose difference overflows is computed as `x/std − mean/std`.
pub(crate) fn apply_standardization<T: Real>(
    s: &Option<Standardization>,
    x: &DMatrix<T>,
) -> DMatrix<T> {
    match s {
        None => x.clone(),
        Some(s) => DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let (m, sd) = (T::lit(s.mean[i]), T::lit(s.std[i]));
            let y = (x[(i, j)] - m) / sd;
            if y.is_finite() {
                y
            } else {
                x[(i, j)] / sd - m / sd
            }
        }),
    }
}

/// Writes `bytes` to `path` through a temporary file (synced to disk) and a
/// rename, replacing `path` if it exists. On error the temporary file is
/// removed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_through_temp(path, bytes, |tmp| std::fs::rename(tmp, path))
}

/// Like [`write_atomically`] but never replaces a file: if `path` exists
/// (even if it appeared while the bytes were written) it is kept and the
/// write is an error.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_through_temp(path, bytes, |tmp| {
        // A hard link fails if the name is taken, atomically.
        std::fs::hard_link(tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                std::io::Error::new(e.kind(), "the file already exists and is not replaced")
            } else {
                e
            }
        })?;
        std::fs::remove_file(tmp)
    })
}

fn write_through_temp(
    path: &Path,
    bytes: &[u8],
    commit: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), Error> {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| commit(&tmp));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

impl<T: Real> Distribution<T> for FlowModel<T> {
    fn dim(&self) -> usize {
        self.flow.dim()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        crate::batch::assert_rows("FlowModel::log_prob", self.dim(), x);
        let blocks = self.parallel_blocks(x.ncols());
        if blocks > 1 {
            let parts = crate::parallel::map_column_blocks(x, blocks, |_, xb| self.log_prob(xb));
            let mut lp = DVector::zeros(x.ncols());
            for (start, part) in parts {
                lp.rows_mut(start, part.len()).copy_from(&part);
            }
            return lp;
        }
        let y = self.to_flow_space(x);
        let (u, ildj) = self.flow.inverse_and_log_det(&y);
        let c = self.log_scale_sum();
        let mut lp = Distribution::<T>::log_prob(&self.base, &u) + ildj;
        for (j, l) in lp.iter_mut().enumerate() {
            *l = if u.column(j).iter().all(|v| v.is_finite()) {
                *l - c
            } else {
                T::neg_infinity()
            };
            if l.is_nan_() {
                *l = T::neg_infinity();
            }
        }
        lp
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let y = self
            .flow
            .forward(&Distribution::<T>::sample(&self.base, n, rng));
        match &self.standardization {
            None => y,
            Some(s) => DMatrix::from_fn(y.nrows(), n, |i, j| {
                T::lit(s.mean[i]) + T::lit(s.std[i]) * y[(i, j)]
            }),
        }
    }
}

impl<T: Real> TrainableDensity<T> for FlowModel<T> {
    fn save_state(&self) -> Option<String> {
        Some(self.to_json())
    }
    fn restore_state(&mut self, saved: &str) -> Result<(), Error> {
        self.restore_checkpoint_state(saved, "checkpoint")
    }
    fn restore_checkpoint_state(&mut self, saved: &str, checkpoint: &str) -> Result<(), Error> {
        let loc = Loc::nested(checkpoint, "model");
        let loaded = FlowModel::from_json_in(saved, &loc)?;
        if loaded.spec() != self.spec() || loaded.dim() != self.dim() {
            return Err(loc.err(
                "",
                format!(
                    "the checkpoint holds a model of `{}` in {} dimensions, not `{}` in {}",
                    clip(&loaded.spec().to_string()),
                    loaded.dim(),
                    clip(&self.spec().to_string()),
                    self.dim()
                ),
            ));
        }
        *self = loaded;
        Ok(())
    }
    fn min_batch_size(&self) -> usize {
        if self.has_batch_norm() { 2 } else { 1 }
    }
    fn standardize_from(&mut self, data: &DMatrix<T>) -> Result<(), Error> {
        FlowModel::standardize_from(self, data)
    }
    fn num_params(&self) -> usize {
        self.flow.num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.flow.visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.flow.visit_params_mut(f)
    }
    fn params_changed(&mut self) {
        self.flow.params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.flow.set_training(training)
    }
    fn prepare_with_data(&mut self, data: &DMatrix<T>, stage: DataStage) {
        let y = self.to_flow_space(data);
        let _ = self.flow.prepare_with_data(&y, stage);
    }
    fn mean_log_prob_and_grad(&self, x: &DMatrix<T>, grad: &mut [T]) -> Result<T, Error> {
        let blocks = self.parallel_blocks(x.ncols());
        if blocks > 1 {
            // The mean over the batch is the column-weighted mean of the
            // blocks' means, and so is its gradient.
            // Each block's gradient goes into its own buffer, taken from this
            // thread's pool and given back to it (so the next call finds it).
            let n = x.ncols();
            let bufs: Vec<std::sync::Mutex<crate::nn::ScratchVec<T>>> = (0..blocks)
                .map(|_| std::sync::Mutex::new(crate::nn::take_zeros(grad.len())))
                .collect();
            let parts = crate::parallel::map_column_blocks(x, blocks, |b, xb| {
                let mut g = bufs[b].lock().unwrap_or_else(|e| e.into_inner());
                (self.mean_log_prob_and_grad(xb, &mut g), xb.ncols())
            });
            let mut mean = T::zero();
            let mut first_error = None;
            for ((_, (m, cols)), g) in parts.into_iter().zip(bufs) {
                let g = g.into_inner().unwrap_or_else(|e| e.into_inner());
                match m {
                    Ok(m) => {
                        let w = T::lit(cols as f64 / n as f64);
                        mean += w * m;
                        for (a, b) in grad.iter_mut().zip(&g) {
                            *a += w * *b;
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            return match first_error {
                Some(e) => Err(e),
                None => Ok(mean),
            };
        }
        let y = self.to_flow_space(x);
        Ok(mean_log_prob_and_grad(&self.base, &self.flow, &y, grad)? - self.log_scale_sum())
    }
}
