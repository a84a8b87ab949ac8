//! A trainable conditional flow model that saves to and loads from JSON.

use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::conditional::{TrainableConditionalDensity, check_pairs};
use super::{Standardization, write_atomically};
use crate::bijector::DataStage;
use crate::conditional::{
    ConditionalBijector, ConditionalDiagonalGaussian, ConditionalDifferentiable,
    ConditionalDistribution, ConditionalTrainableBase, IgnoreContext,
    conditional_mean_log_prob_and_grad,
};
use crate::distribution::StandardNormal;
use crate::nn::ConditionerConfig;
use crate::spec::{ConditionalFlow, FlowSpec};
use crate::{Error, Real};

/// The version of the conditional model file format this build writes and reads.
pub const CONDITIONAL_MODEL_FORMAT_VERSION: u32 = 1;

const FORMAT_NAME: &str = "normflow-conditional-model";

/// The base distribution of a [`ConditionalFlowModel`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionalBaseSpec {
    /// `N(0, I)` for every context.
    #[default]
    StandardNormal,
    /// A [`ConditionalDiagonalGaussian`] whose mean and scale come from an
    /// MLP of the context with this shape.
    DiagonalGaussian(ConditionerConfig),
}

/// The built base of a [`ConditionalFlowModel`].
#[derive(Debug, Clone, PartialEq)]
enum Base<T: Real> {
    StandardNormal(IgnoreContext<StandardNormal>),
    Gaussian(ConditionalDiagonalGaussian<T>),
}

impl<T: Real> Base<T> {
    fn get(&self) -> &dyn ConditionalTrainableBase<T> {
        match self {
            Base::StandardNormal(b) => b,
            Base::Gaussian(b) => b,
        }
    }
    fn get_mut(&mut self) -> &mut dyn ConditionalTrainableBase<T> {
        match self {
            Base::StandardNormal(b) => b,
            Base::Gaussian(b) => b,
        }
    }
}

/// A conditional density `p(x | c)`: a base (standard normal, or a diagonal
/// Gaussian of the context) pushed through a conditional flow built from a
/// [`FlowSpec`] ([`FlowSpec::build_conditional`]), with optional
/// standardisations of the samples and of the contexts. The model that
/// [`fit_conditional`](super::fit_conditional) trains and the command-line
/// tool saves.
///
/// `log p(x | c) = log p_flow((x − m)/s | (c − m_c)/s_c) − Σᵢ log sᵢ`.
///
/// Saved as JSON (format `normflow-conditional-model`): the spec text, both
/// dimensions, the build seed, the base, both standardisations, the flat
/// parameters (the flow's, then the base's) and the layers' state. Loading
/// rebuilds the flow from the spec and the seed and restores the numbers, so
/// `log_prob` is bit-identical.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::ConditionalDistribution;
/// use normflow::prelude::*;
/// use normflow::train::ConditionalFlowModel;
/// use rand::SeedableRng;
///
/// let spec = flow!(maf(2, hidden = 8, identity_init = false) >> realnvp(hidden = 8, identity_init = false));
/// let model = ConditionalFlowModel::<f64>::new(&spec, 2, 1, 7)?;
/// let x = DMatrix::from_row_slice(2, 3, &[0.1, -1.0, 2.0, 0.5, 0.0, -0.3]);
/// let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, -1.0]);
/// let loaded = ConditionalFlowModel::<f64>::from_json(&model.to_json())?;
/// assert_eq!(loaded.log_prob(&x, &c), model.log_prob(&x, &c));
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// assert_eq!(model.sample(&c, &mut rng).shape(), (2, 3)); // one sample per context
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalFlowModel<T: Real> {
    flow: ConditionalFlow<T>,
    base: Base<T>,
    base_spec: ConditionalBaseSpec,
    seed: u64,
    standardization: Option<Standardization>,
    context_standardization: Option<Standardization>,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    version: u32,
    spec: String,
    dim: usize,
    context_dim: usize,
    seed: u64,
    base: ConditionalBaseSpec,
    standardization: Option<Standardization>,
    context_standardization: Option<Standardization>,
    params: Vec<f64>,
    state: Vec<f64>,
}

impl<T: Real> ConditionalFlowModel<T> {
    /// Builds `spec` for `dim`-dimensional data given `context_dim`-dimensional
    /// contexts, with a standard normal base, drawing initial parameters and
    /// permutations from a generator seeded with `seed`.
    pub fn new(spec: &FlowSpec, dim: usize, context_dim: usize, seed: u64) -> Result<Self, Error> {
        Self::with_base(
            spec,
            dim,
            context_dim,
            ConditionalBaseSpec::StandardNormal,
            seed,
        )
    }

    /// [`ConditionalFlowModel::new`] with the given base.
    pub fn with_base(
        spec: &FlowSpec,
        dim: usize,
        context_dim: usize,
        base_spec: ConditionalBaseSpec,
        seed: u64,
    ) -> Result<Self, Error> {
        let mut rng = StdRng::seed_from_u64(seed);
        let flow = spec.build_conditional::<T>(dim, context_dim, &mut rng)?;
        let base = match base_spec {
            ConditionalBaseSpec::StandardNormal => {
                Base::StandardNormal(IgnoreContext::new(StandardNormal::new(dim)?, context_dim))
            }
            ConditionalBaseSpec::DiagonalGaussian(cfg) => Base::Gaussian(
                ConditionalDiagonalGaussian::new(dim, context_dim, &cfg, &mut rng)?,
            ),
        };
        Ok(Self {
            flow,
            base,
            base_spec,
            seed,
            standardization: None,
            context_standardization: None,
        })
    }

    /// The flow.
    pub fn flow(&self) -> &ConditionalFlow<T> {
        &self.flow
    }

    /// The spec the flow was built from.
    pub fn spec(&self) -> &FlowSpec {
        self.flow.spec()
    }

    /// The base.
    pub fn base_spec(&self) -> ConditionalBaseSpec {
        self.base_spec
    }

    /// The build seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The standardisation of the samples, if any.
    pub fn standardization(&self) -> Option<&Standardization> {
        self.standardization.as_ref()
    }

    /// The standardisation of the contexts, if any.
    pub fn context_standardization(&self) -> Option<&Standardization> {
        self.context_standardization.as_ref()
    }

    /// Sets the standardisations to the per-dimension mean and standard
    /// deviation of `x` and of `c` (a dimension with zero spread gets 1).
    pub fn standardize_from(&mut self, x: &DMatrix<T>, c: &DMatrix<T>) -> Result<(), Error> {
        check_pairs(
            "ConditionalFlowModel::standardize_from",
            "data",
            x,
            c,
            self.dim(),
            self.context_dim(),
        )?;
        self.standardization = Some(standardization_of(x));
        self.context_standardization = Some(standardization_of(c));
        Ok(())
    }

    fn to_flow_space(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DMatrix<T>) {
        (
            apply_standardization(&self.standardization, x),
            apply_standardization(&self.context_standardization, c),
        )
    }

    fn log_scale_sum(&self) -> T {
        T::lit(
            self.standardization
                .as_ref()
                .map_or(0.0, |s| s.std.iter().map(|v| v.ln()).sum()),
        )
    }

    /// The mean of `log p(x | c)` over the batch; **adds** its gradient with
    /// respect to the parameters into `grad` and with respect to the contexts
    /// (in data units) into `grad_context` (`C × n`): what an encoder that
    /// produces the contexts needs.
    pub fn mean_log_prob_and_grads(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<T, Error> {
        let (y, cs) = self.to_flow_space(x, c);
        let mut g = DMatrix::zeros(c.nrows(), c.ncols());
        let mean = conditional_mean_log_prob_and_grad(
            self.base.get(),
            &self.flow,
            &y,
            &cs,
            grad,
            Some(&mut g),
        )?;
        if let Some(s) = &self.context_standardization {
            for (i, mut row) in g.row_iter_mut().enumerate() {
                row /= T::lit(s.std[i]);
            }
        }
        *grad_context += g;
        Ok(mean - self.log_scale_sum())
    }

    /// The model as JSON (see the type docs for the contents).
    pub fn to_json(&self) -> String {
        let mut params = Vec::with_capacity(TrainableConditionalDensity::num_params(self));
        TrainableConditionalDensity::visit_params(self, &mut |s| {
            params.extend(s.iter().map(|v| v.to_f64()))
        });
        let mut state = Vec::new();
        self.flow
            .visit_state(&mut |s| state.extend(s.iter().map(|v| v.to_f64())));
        let file = ModelFile {
            format: FORMAT_NAME.into(),
            version: CONDITIONAL_MODEL_FORMAT_VERSION,
            spec: self.flow.spec().to_string(),
            dim: self.dim(),
            context_dim: self.context_dim(),
            seed: self.seed,
            base: self.base_spec,
            standardization: self.standardization.clone(),
            context_standardization: self.context_standardization.clone(),
            params,
            state,
        };
        serde_json::to_string_pretty(&file).expect("a model serialises")
    }

    /// Reads a model from JSON text. Malformed or truncated text, another
    /// format, a newer version, an invalid spec, or parameters or state whose
    /// count does not match are [`Error::Format`].
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
        match value.get("format").and_then(|v| v.as_str()) {
            Some(FORMAT_NAME) => {}
            Some("normflow-model") => {
                return Err(fmt(
                    "format",
                    "this is an unconditional model (it takes no context); load it as a FlowModel"
                        .into(),
                ));
            }
            _ => {
                return Err(fmt(
                    "format",
                    format!(
                        "expected \"{FORMAT_NAME}\"; this is not a normflow conditional model file"
                    ),
                ));
            }
        }
        let version = value
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| fmt("version", "missing or not an integer".into()))?;
        if version > CONDITIONAL_MODEL_FORMAT_VERSION as u64 {
            return Err(fmt(
                "version",
                format!(
                    "the file has format version {version}, newer than this build's {CONDITIONAL_MODEL_FORMAT_VERSION}; upgrade normflow to read it"
                ),
            ));
        }
        let file: ModelFile = serde_json::from_value(value)
            .map_err(|e| fmt("", format!("malformed model file: {e}")))?;
        let spec = FlowSpec::parse(&file.spec)
            .map_err(|e| fmt("spec", format!("invalid flow spec:\n{e}")))?;
        let mut model = Self::with_base(&spec, file.dim, file.context_dim, file.base, file.seed)
            .map_err(|e| fmt("spec", e.to_string()))?;
        for (field, s, n) in [
            ("standardization", &file.standardization, file.dim),
            (
                "context_standardization",
                &file.context_standardization,
                file.context_dim,
            ),
        ] {
            if let Some(s) = s {
                validate_standardization(s, n).map_err(|r| fmt(field, r))?;
            }
        }
        model.standardization = file.standardization;
        model.context_standardization = file.context_standardization;
        let n = TrainableConditionalDensity::num_params(&model);
        if file.params.len() != n {
            return Err(fmt(
                "params",
                format!(
                    "the spec `{spec}` in {} dimensions with a {}-dimensional context has {n} parameters, the file has {}",
                    file.dim,
                    file.context_dim,
                    file.params.len()
                ),
            ));
        }
        if file.params.iter().any(|v| !v.is_finite()) {
            return Err(fmt("params", "every parameter must be finite".into()));
        }
        let mut off = 0;
        TrainableConditionalDensity::visit_params_mut(&mut model, &mut |s| {
            for (dst, src) in s.iter_mut().zip(&file.params[off..]) {
                *dst = T::lit(*src);
            }
            off += s.len();
        });
        model.flow.params_changed();
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

    /// Writes the model to `path` atomically (temporary file, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        write_atomically(path.as_ref(), self.to_json().as_bytes())
    }

    /// Reads a model written by [`ConditionalFlowModel::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json_at(&text, &path.display().to_string())
    }
}

fn standardization_of<T: Real>(m: &DMatrix<T>) -> Standardization {
    let n = m.ncols() as f64;
    let mut mean = Vec::with_capacity(m.nrows());
    let mut std = Vec::with_capacity(m.nrows());
    for row in m.row_iter() {
        let mu = row.iter().map(|v| v.to_f64()).sum::<f64>() / n;
        let var = row.iter().map(|x| (x.to_f64() - mu).powi(2)).sum::<f64>() / n;
        mean.push(mu);
        std.push(if var > 0.0 { var.sqrt() } else { 1.0 });
    }
    Standardization { mean, std }
}

fn apply_standardization<T: Real>(s: &Option<Standardization>, m: &DMatrix<T>) -> DMatrix<T> {
    match s {
        None => m.clone(),
        Some(s) => DMatrix::from_fn(m.nrows(), m.ncols(), |i, j| {
            (m[(i, j)] - T::lit(s.mean[i])) / T::lit(s.std[i])
        }),
    }
}

fn validate_standardization(s: &Standardization, n: usize) -> Result<(), String> {
    if s.mean.len() != n || s.std.len() != n {
        return Err(format!("expected {n} means and standard deviations"));
    }
    if s.std.iter().any(|v| !(v.is_finite() && *v > 0.0)) || s.mean.iter().any(|v| !v.is_finite()) {
        return Err("standard deviations must be finite and positive, means finite".into());
    }
    Ok(())
}

impl<T: Real> ConditionalDistribution<T> for ConditionalFlowModel<T> {
    fn dim(&self) -> usize {
        self.flow.dim().expect("a built flow has a dimension")
    }
    fn context_dim(&self) -> usize {
        ConditionalBijector::context_dim(&self.flow)
    }
    fn log_prob(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        crate::conditional::assert_pair(
            "ConditionalFlowModel::log_prob",
            Some(self.dim()),
            self.context_dim(),
            x,
            c,
        );
        let (y, cs) = self.to_flow_space(x, c);
        let (u, ildj) = self.flow.inverse_and_log_det(&y, &cs);
        let lp = crate::conditional::log_prob_from(self.base.get(), &u, &cs, ildj);
        lp.map(|v| v - self.log_scale_sum())
    }
    fn sample(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        self.sample_and_log_prob(c, rng).0
    }
    fn sample_and_log_prob(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        let cs = apply_standardization(&self.context_standardization, c);
        let (u, lp) = self.base.get().sample_and_log_prob(&cs, rng);
        let (y, fldj) = self.flow.forward_and_log_det(&u, &cs);
        let x = match &self.standardization {
            None => y,
            Some(s) => DMatrix::from_fn(y.nrows(), y.ncols(), |i, j| {
                T::lit(s.mean[i]) + T::lit(s.std[i]) * y[(i, j)]
            }),
        };
        let c0 = self.log_scale_sum();
        let lp = crate::distribution::sanitize((lp - fldj).map(|v| v - c0));
        (x, lp)
    }
}

impl<T: Real> TrainableConditionalDensity<T> for ConditionalFlowModel<T> {
    fn num_params(&self) -> usize {
        self.flow.num_params() + self.base.get().num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.flow.visit_params(f);
        self.base.get().visit_params(f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.flow.visit_params_mut(f);
        self.base.get_mut().visit_params_mut(f);
    }
    fn params_changed(&mut self) {
        self.flow.params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.flow.set_training(training)
    }
    fn prepare_with_data(&mut self, x: &DMatrix<T>, c: &DMatrix<T>, stage: DataStage) {
        let (y, cs) = self.to_flow_space(x, c);
        let _ = self.flow.prepare_with_data(&y, &cs, stage);
    }
    fn mean_log_prob_and_grad(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad: &mut [T],
    ) -> Result<T, Error> {
        let (y, cs) = self.to_flow_space(x, c);
        Ok(
            conditional_mean_log_prob_and_grad(self.base.get(), &self.flow, &y, &cs, grad, None)?
                - self.log_scale_sum(),
        )
    }
    fn standardize_from(&mut self, x: &DMatrix<T>, c: &DMatrix<T>) -> Result<(), Error> {
        ConditionalFlowModel::standardize_from(self, x, c)
    }
    fn save_state(&self) -> Option<String> {
        Some(self.to_json())
    }
    fn restore_state(&mut self, saved: &str) -> Result<(), Error> {
        let loaded = ConditionalFlowModel::from_json(saved)?;
        if loaded.spec() != self.spec()
            || loaded.dim() != self.dim()
            || loaded.context_dim() != self.context_dim()
            || loaded.base_spec != self.base_spec
        {
            return Err(Error::Format {
                location: "checkpoint".into(),
                reason: format!(
                    "the checkpoint holds a model of `{}` in {} dimensions given {}, not `{}` in {} given {}",
                    loaded.spec(),
                    loaded.dim(),
                    loaded.context_dim(),
                    self.spec(),
                    self.dim(),
                    self.context_dim()
                ),
            });
        }
        *self = loaded;
        Ok(())
    }
}
