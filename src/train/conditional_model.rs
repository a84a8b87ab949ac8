//! A trainable conditional flow model that saves to and loads from JSON.

use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::conditional::{TrainableConditionalDensity, check_pairs};
use super::density::mean_log_prob_and_grad_given;
use super::model::{apply_standardization, standardization_of};
use super::model_file;
use super::validate::{self, Loc};
use super::{Standardization, write_atomically};
use crate::bijector::{Bijector, DataStage, Differentiable, no_context};
use crate::conditional::ConditionalDiagonalGaussian;
use crate::distribution::{Distribution, StandardNormal, TrainableBase};
use crate::error::clip;
use crate::nn::ConditionerConfig;
use crate::spec::{Flow, FlowLayer, FlowSpec};
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
    StandardNormal(StandardNormal),
    Gaussian(ConditionalDiagonalGaussian<T>),
}

impl<T: Real> Base<T> {
    fn get(&self) -> &dyn Distribution<T> {
        match self {
            Base::StandardNormal(b) => b,
            Base::Gaussian(b) => b,
        }
    }
    fn num_params(&self) -> usize {
        self.get()
            .as_trainable_base()
            .map_or(0, |b| b.params().len())
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        if let Base::Gaussian(b) = self {
            f(b.params());
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        if let Base::Gaussian(b) = self {
            f(b.params_mut());
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
/// use normflow::prelude::*;
/// use normflow::train::ConditionalFlowModel;
/// use rand::SeedableRng;
///
/// let spec = flow!(maf(2, hidden = 8, identity_init = false) >> realnvp(hidden = 8, identity_init = false));
/// let model = ConditionalFlowModel::<f64>::new(&spec, 2, 1, 7)?;
/// let x = DMatrix::from_row_slice(2, 3, &[0.1, -1.0, 2.0, 0.5, 0.0, -0.3]);
/// let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, -1.0]);
/// let loaded = ConditionalFlowModel::<f64>::from_json(&model.to_json())?;
/// assert_eq!(loaded.log_prob_given(&x, &c), model.log_prob_given(&x, &c));
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// assert_eq!(model.sample_given(&c, &mut rng).shape(), (2, 3)); // one sample per context
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalFlowModel<T: Real> {
    flow: Flow<T>,
    base: Base<T>,
    base_spec: ConditionalBaseSpec,
    seed: u64,
    standardization: Option<Standardization>,
    context_standardization: Option<Standardization>,
}

/// The saved form (written by [`ConditionalFlowModel::to_json`]; read field
/// by field, with checks, by [`ConditionalFlowModel::from_json`]).
#[derive(Serialize)]
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
            ConditionalBaseSpec::StandardNormal => Base::StandardNormal(StandardNormal::new(dim)?),
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
    pub fn flow(&self) -> &Flow<T> {
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
    /// deviation of `x` and of `c` (a dimension with zero spread gets 1),
    /// computed so that they cannot overflow (see
    /// [`FlowModel::standardize_from`](super::FlowModel::standardize_from)).
    pub fn standardize_from(&mut self, x: &DMatrix<T>, c: &DMatrix<T>) -> Result<(), Error> {
        check_pairs(
            "ConditionalFlowModel::standardize_from",
            "data",
            x,
            c,
            self.dim(),
            self.context_dim(),
        )?;
        const CTX: &str = "ConditionalFlowModel::standardize_from";
        self.standardization = Some(standardization_of(x, CTX, "data")?);
        self.context_standardization = Some(standardization_of(c, CTX, "contexts")?);
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
        let mean =
            mean_log_prob_and_grad_given(self.base.get(), &self.flow, &y, &cs, grad, &mut g)?;
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

    /// Reads a model from JSON text, checking every field as
    /// [`FlowModel::from_json`](super::FlowModel::from_json) does, and also
    /// the context dimension, the base and the context standardisation: a bad
    /// field is an [`Error::Format`] naming it.
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
                "normflow-model",
                "this is an unconditional model (it takes no context); load it as a FlowModel",
            )],
            "normflow conditional model file",
        )?;
        validate::version(&obj, loc, CONDITIONAL_MODEL_FORMAT_VERSION)?;
        let context_dim: usize =
            validate::take(&mut obj, loc, "context_dim", "a whole number ≥ 1")?;
        if context_dim == 0 {
            return Err(loc.err("context_dim", "is 0, expected a whole number ≥ 1"));
        }
        let base: ConditionalBaseSpec = validate::take(
            &mut obj,
            loc,
            "base",
            "\"standard_normal\" or {\"diagonal_gaussian\": {...}}",
        )?;
        let context_standardization: Option<Standardization> = validate::take_opt(
            &mut obj,
            loc,
            "context_standardization",
            "null or an object with the arrays `mean` and `std`",
        )?;
        if let Some(s) = &context_standardization {
            validate::check_standardization::<T>(
                s,
                context_dim,
                loc,
                "context_standardization",
                "context_dim",
            )?;
        }
        let c = model_file::read_common::<T>(&mut obj, loc)?;
        model_file::check_flow_size::<T>(&c, context_dim, false, loc)?;
        check_base_size(base, c.dim, context_dim, c.params.len(), loc)?;
        let dims = model_file::describe_dims(c.dim, context_dim);
        let mut model = Self::with_base(&c.spec, c.dim, context_dim, base, c.seed)
            .map_err(|e| model_file::build_error(loc, &c.spec_text, &dims, e))?;
        model.standardization = c.standardization;
        model.context_standardization = context_standardization;
        let n = TrainableConditionalDensity::num_params(&model);
        let params = validate::params::<T>(&c.params, n, loc, "params", || {
            format!("the spec `{}` in {dims}", clip(&c.spec_text))
        })?;
        let mut off = 0;
        TrainableConditionalDensity::visit_params_mut(&mut model, &mut |s| {
            if let Some(src) = params.get(off..off + s.len()) {
                s.copy_from_slice(src);
            }
            off += s.len();
        });
        model.flow.params_changed();
        let state = validate::state::<T>(&validate::flow_state_layout(&model.flow), &c.state, loc)?;
        validate::install_state(&state, |f| model.flow.visit_state_mut(f));
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
        Self::from_json_in(&text, &Loc::new(path.display().to_string()))
    }
}

/// Refuses a base whose conditioner has more parameters than the file holds
/// in all (a lower bound of its count, by checked arithmetic), before the
/// network is allocated.
fn check_base_size(
    base: ConditionalBaseSpec,
    dim: usize,
    context_dim: usize,
    file_params: usize,
    loc: &Loc,
) -> Result<(), Error> {
    let ConditionalBaseSpec::DiagonalGaussian(cfg) = base else {
        return Ok(());
    };
    let (h, outputs) = (cfg.hidden as u128, 2 * dim as u128);
    let inputs = context_dim as u128;
    // The weights alone (biases left out): input and output layers and the
    // hidden-to-hidden ones (two per residual block).
    let lower = if cfg.depth == 0 && !cfg.residual {
        inputs.saturating_mul(outputs)
    } else {
        let inner = if cfg.residual {
            (cfg.depth as u128).saturating_mul(2)
        } else {
            (cfg.depth as u128).saturating_sub(1)
        };
        inputs
            .saturating_mul(h)
            .saturating_add(h.saturating_mul(outputs))
            .saturating_add(inner.saturating_mul(h.saturating_mul(h)))
    };
    if lower > file_params as u128 {
        return Err(loc.err(
            "base",
            format!(
                "its conditioner (hidden {}, depth {}) for {dim} dimensions given {context_dim} has at least {lower} parameters, more than the {file_params} of the field `params`",
                cfg.hidden, cfg.depth
            ),
        ));
    }
    Ok(())
}

impl<T: Real> Distribution<T> for ConditionalFlowModel<T> {
    fn dim(&self) -> usize {
        self.flow.dim()
    }
    fn context_dim(&self) -> usize {
        Bijector::context_dim(&self.flow)
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_prob_given(x, &no_context(x.ncols()))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        self.sample_given(&no_context(n), rng)
    }
    fn log_prob_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        crate::bijector::assert_pair(
            "ConditionalFlowModel::log_prob",
            Some(self.dim()),
            self.context_dim(),
            x,
            c,
        );
        let (y, cs) = self.to_flow_space(x, c);
        let (u, ildj) = self.flow.inverse_and_log_det_given(&y, &cs);
        let lp = crate::distribution::log_prob_from(self.base.get(), &u, &cs, ildj);
        lp.map(|v| v - self.log_scale_sum())
    }
    fn sample_given(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        self.sample_and_log_prob_given(c, rng).0
    }
    fn sample_and_log_prob_given(
        &self,
        c: &DMatrix<T>,
        rng: &mut dyn Rng,
    ) -> (DMatrix<T>, DVector<T>) {
        let cs = apply_standardization(&self.context_standardization, c);
        let (u, lp) = self.base.get().sample_and_log_prob_given(&cs, rng);
        let (y, fldj) = self.flow.forward_and_log_det_given(&u, &cs);
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
        self.flow.num_params() + self.base.num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.flow.visit_params(f);
        self.base.visit_params(f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.flow.visit_params_mut(f);
        self.base.visit_params_mut(f);
    }
    fn params_changed(&mut self) {
        self.flow.params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.flow.set_training(training)
    }
    fn prepare_with_data(&mut self, x: &DMatrix<T>, c: &DMatrix<T>, stage: DataStage) {
        let (y, cs) = self.to_flow_space(x, c);
        let _ = self.flow.prepare_with_data_given(&y, &cs, stage);
    }
    fn mean_log_prob_and_grad(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad: &mut [T],
    ) -> Result<T, Error> {
        let (y, cs) = self.to_flow_space(x, c);
        let mut gc = DMatrix::zeros(cs.nrows(), cs.ncols());
        let mean =
            mean_log_prob_and_grad_given(self.base.get(), &self.flow, &y, &cs, grad, &mut gc)?;
        Ok(mean - self.log_scale_sum())
    }
    fn standardize_from(&mut self, x: &DMatrix<T>, c: &DMatrix<T>) -> Result<(), Error> {
        ConditionalFlowModel::standardize_from(self, x, c)
    }
    fn save_state(&self) -> Option<String> {
        Some(self.to_json())
    }
    fn restore_state(&mut self, saved: &str) -> Result<(), Error> {
        self.restore_checkpoint_state(saved, "checkpoint")
    }
    fn restore_checkpoint_state(&mut self, saved: &str, checkpoint: &str) -> Result<(), Error> {
        let loc = Loc::nested(checkpoint, "model");
        let loaded = ConditionalFlowModel::from_json_in(saved, &loc)?;
        if loaded.spec() != self.spec()
            || loaded.dim() != self.dim()
            || loaded.context_dim() != self.context_dim()
            || loaded.base_spec != self.base_spec
        {
            return Err(loc.err(
                "",
                format!(
                    "the checkpoint holds a model of `{}` in {} dimensions given {}, not `{}` in {} given {}",
                    clip(&loaded.spec().to_string()),
                    loaded.dim(),
                    loaded.context_dim(),
                    clip(&self.spec().to_string()),
                    self.dim(),
                    self.context_dim()
                ),
            ));
        }
        *self = loaded;
        Ok(())
    }
    fn min_batch_size(&self) -> usize {
        let batch_norm = self
            .flow
            .layers()
            .iter()
            .any(|l| matches!(l, FlowLayer::BatchNorm(_)));
        if batch_norm { 2 } else { 1 }
    }
}
