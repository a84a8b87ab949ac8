//! A trainable flow model that saves to and loads from JSON.

use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::TrainableDensity;
use super::density::mean_log_prob_and_grad;
use crate::bijector::{Bijector, DataStage, Differentiable};
use crate::distribution::{Distribution, StandardNormal};
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

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    version: u32,
    spec: FlowSpecText,
    dim: usize,
    seed: u64,
    standardization: Option<Standardization>,
    params: Vec<f64>,
    state: Vec<f64>,
}

/// The spec as text in the file (parsed separately, to report its errors
/// with the file's context).
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct FlowSpecText(String);

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
    pub fn standardize_from(&mut self, data: &DMatrix<T>) -> Result<(), Error> {
        super::fit::check_data("data", data, self.dim())?;
        let n = data.ncols() as f64;
        let mut mean = Vec::with_capacity(self.dim());
        let mut std = Vec::with_capacity(self.dim());
        for row in data.row_iter() {
            let m = row.iter().map(|v| v.to_f64()).sum::<f64>() / n;
            let v = row.iter().map(|x| (x.to_f64() - m).powi(2)).sum::<f64>() / n;
            mean.push(m);
            std.push(if v > 0.0 { v.sqrt() } else { 1.0 });
        }
        self.standardization = Some(Standardization { mean, std });
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
        match &self.standardization {
            None => x.clone(),
            Some(s) => DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
                (x[(i, j)] - T::lit(s.mean[i])) / T::lit(s.std[i])
            }),
        }
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
            spec: FlowSpecText(self.flow.spec().to_string()),
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

    /// Reads a model from JSON text. Malformed or truncated text, another
    /// format, a newer version, an invalid spec, or parameters or state whose
    /// count does not match the spec are [`Error::Format`].
    pub fn from_json(text: &str) -> Result<Self, Error> {
        Self::from_json_at(text, "model")
    }

    fn from_json_at(text: &str, location: &str) -> Result<Self, Error> {
        let fmt = |field: &str, reason: String| Error::Format {
            location: if field.is_empty() {
                location.to_string()
            } else {
                format!("{location}, field `{field}`")
            },
            reason,
        };
        // Check the header first, so that a newer version is reported as such
        // even when its fields differ.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            fmt(
                "",
                if e.is_eof() {
                    format!("the file is truncated ({e})")
                } else {
                    format!("not valid JSON: {e}")
                },
            )
        })?;
        if value.get("format").and_then(|v| v.as_str()) == Some("normflow-conditional-model") {
            return Err(fmt(
                "format",
                "this is a conditional model (it needs a context); load it as a ConditionalFlowModel"
                    .into(),
            ));
        }
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
            return Err(fmt(
                "format",
                format!("expected \"{FORMAT_NAME}\"; this is not a normflow model file"),
            ));
        }
        let version = value
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| fmt("version", "missing or not an integer".into()))?;
        if version > MODEL_FORMAT_VERSION as u64 {
            return Err(fmt(
                "version",
                format!(
                    "the file has format version {version}, newer than this build's {MODEL_FORMAT_VERSION}; upgrade normflow to read it"
                ),
            ));
        }
        if version < MODEL_FORMAT_VERSION as u64 {
            return Err(fmt(
                "version",
                format!(
                    "the file has format version {version}, whose affine layers applied their scales in the sampling direction; this build ({MODEL_FORMAT_VERSION}) applies them in the density direction, so the saved parameters would give a different model: refit it"
                ),
            ));
        }
        let file: ModelFile = serde_json::from_value(value)
            .map_err(|e| fmt("", format!("malformed model file: {e}")))?;
        let spec = FlowSpec::parse(&file.spec.0)
            .map_err(|e| fmt("spec", format!("invalid flow spec:\n{e}")))?;
        let mut model =
            Self::new(&spec, file.dim, file.seed).map_err(|e| fmt("spec", e.to_string()))?;
        if let Some(s) = &file.standardization {
            if s.mean.len() != file.dim || s.std.len() != file.dim {
                return Err(fmt(
                    "standardization",
                    format!("expected {} means and standard deviations", file.dim),
                ));
            }
            if s.std.iter().any(|v| !(v.is_finite() && *v > 0.0))
                || s.mean.iter().any(|v| !v.is_finite())
            {
                return Err(fmt(
                    "standardization",
                    "standard deviations must be finite and positive, means finite".into(),
                ));
            }
        }
        model.standardization = file.standardization;
        let n = model.flow.num_params();
        if file.params.len() != n {
            return Err(fmt(
                "params",
                format!(
                    "the spec `{spec}` in {} dimensions has {n} parameters, the file has {}",
                    file.dim,
                    file.params.len()
                ),
            ));
        }
        if file.params.iter().any(|v| !v.is_finite()) {
            return Err(fmt("params", "every parameter must be finite".into()));
        }
        let params: Vec<T> = file.params.iter().map(|v| T::lit(*v)).collect();
        model.flow.set_params(&params)?;
        let mut expected_state = 0;
        model.flow.visit_state(&mut |s| expected_state += s.len());
        if file.state.len() != expected_state {
            return Err(fmt(
                "state",
                format!(
                    "expected {expected_state} values of layer state, the file has {}",
                    file.state.len()
                ),
            ));
        }
        let mut off = 0;
        model.flow.visit_state_mut(&mut |s| {
            for (dst, src) in s.iter_mut().zip(&file.state[off..]) {
                *dst = T::lit(*src);
            }
            off += s.len();
        });
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
        Self::from_json_at(&text, &path.display().to_string())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
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
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

impl<T: Real> Distribution<T> for FlowModel<T> {
    fn dim(&self) -> usize {
        self.flow.dim()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        crate::bijector::assert_rows("FlowModel::log_prob", self.dim(), x);
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
        let loaded = FlowModel::from_json(saved)?;
        if loaded.spec() != self.spec() || loaded.dim() != self.dim() {
            return Err(Error::Format {
                location: "checkpoint".into(),
                reason: format!(
                    "the checkpoint holds a model of `{}` in {} dimensions, not `{}` in {}",
                    loaded.spec(),
                    loaded.dim(),
                    self.spec(),
                    self.dim()
                ),
            });
        }
        *self = loaded;
        Ok(())
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
            let bufs: Vec<std::sync::Mutex<Vec<T>>> = (0..blocks)
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
                crate::nn::give_vec(g);
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
