//! The trainable flow model: a base pushed through a flow built from a
//! [`FlowSpec`], conditional or not, that saves to and loads from JSON.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::TrainableDensity;
use super::conditional::check_pairs;
use super::density::mean_log_prob_and_grad_given;
use super::standardization::{
    Standardization, apply_standardization, log_scale_sum, standardization_of, undo_standardization,
};
use crate::bijector::{Bijector, DataStage, Differentiable, assert_pair, no_context};
use crate::conditional::{ConditionalDiagonalGaussian, split_context, stack_context};
use crate::distribution::{Distribution, StandardNormal, UniformTorus, log_prob_from};
use crate::error::clip;
use crate::nn::ConditionerConfig;
use crate::spec::{Flow, FlowLayer, FlowSpec};
use crate::{Error, Parameters, Real};

/// The base distribution of a [`FlowModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseSpec {
    /// A standard normal (the default; it ignores the context).
    StandardNormal,
    /// A [`ConditionalDiagonalGaussian`] whose mean and scale come from an
    /// MLP of the context with this shape (conditional models only).
    DiagonalGaussian(ConditionerConfig),
    /// The [`UniformTorus`] on `[−π, π)^D`: the base of a flow on the torus
    /// (`circular_spline` layers), which such a model takes by itself.
    UniformTorus,
}

/// The former name of [`BaseSpec`].
#[deprecated(note = "use BaseSpec")]
pub type ConditionalBaseSpec = BaseSpec;

/// The built base of a [`FlowModel`].
#[derive(Debug, Clone, PartialEq)]
enum Base<T: Real> {
    StandardNormal(StandardNormal),
    Gaussian(ConditionalDiagonalGaussian<T>),
    Torus(UniformTorus),
}

impl<T: Real> Base<T> {
    fn get(&self) -> &dyn Distribution<T> {
        match self {
            Base::StandardNormal(b) => b,
            Base::Gaussian(b) => b,
            Base::Torus(b) => b,
        }
    }
}

/// A density `p(x)`, or `p(x | c)` given a context: a base (a standard
/// normal, for a conditional model possibly a diagonal Gaussian of the
/// context, or for a flow on the torus the uniform distribution there)
/// pushed through a flow built from a [`FlowSpec`], with optional per-dimension
/// standardisations of the samples and of the contexts. The model that `fit`
/// trains and the command-line tool saves.
///
/// `log p(x | c) = log p_flow((x − m)/s | (c − m_c)/s_c) − Σᵢ log sᵢ`.
///
/// A model is saved as JSON holding the format version, the spec text, the
/// dimensions, the build seed (which fixes the random permutations), the
/// base, the standardisations, the flat parameters (the flow's, then the
/// base's) and the layers' state (batch-norm statistics); loading rebuilds
/// the flow from the spec and seed and restores parameters and state, so
/// `log_prob` is bit-identical. An unconditional model is written in format
/// `normflow-model` (version 2), a conditional one in
/// `normflow-conditional-model` (version 1), the formats of earlier releases,
/// and [`FlowModel::from_json`] reads both.
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
///
/// // The same type given a context: p(x | c) with x ∈ R², c ∈ R¹.
/// let spec = flow!(maf(2, hidden = 8, identity_init = false) >> realnvp(hidden = 8, identity_init = false));
/// let model = FlowModel::<f64>::conditional(&spec, 2, 1, 7)?;
/// let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, -1.0]);
/// let loaded = FlowModel::<f64>::from_json(&model.to_json())?;
/// assert_eq!(loaded.log_prob_given(&x, &c), model.log_prob_given(&x, &c));
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// assert_eq!(model.sample_given(&c, &mut rng).shape(), (2, 3)); // one sample per context
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FlowModel<T: Real> {
    pub(super) flow: Flow<T>,
    base: Base<T>,
    pub(super) base_spec: BaseSpec,
    pub(super) seed: u64,
    pub(super) standardization: Option<Standardization>,
    pub(super) context_standardization: Option<Standardization>,
}

/// The former name of a conditional [`FlowModel`].
#[deprecated(note = "use FlowModel: FlowModel::conditional builds a conditional model")]
pub type ConditionalFlowModel<T> = FlowModel<T>;

impl<T: Real> FlowModel<T> {
    /// Builds `spec` for `dim`-dimensional data, drawing initial parameters
    /// and permutations from a generator seeded with `seed`. The base is a
    /// standard normal, or for a flow on the torus (`circular_spline` layers,
    /// with `permute` or `reverse` between them) the uniform distribution on
    /// `[−π, π)^D`; a spec that mixes circular layers with layers that leave
    /// the torus is an error.
    pub fn new(spec: &FlowSpec, dim: usize, seed: u64) -> Result<Self, Error> {
        let base_spec = super::torus::default_base(spec, "FlowModel::new")?;
        let mut rng = StdRng::seed_from_u64(seed);
        let flow = spec.build::<T>(dim, &mut rng)?;
        let base = match base_spec {
            BaseSpec::UniformTorus => Base::Torus(UniformTorus::new(dim)?),
            _ => Base::StandardNormal(StandardNormal::new(dim)?),
        };
        Ok(Self::assemble(flow, base, base_spec, seed))
    }

    /// Builds `spec` as a conditional model of `dim`-dimensional data given
    /// `context_dim`-dimensional contexts (`≥ 1`), with a standard normal
    /// base, or the uniform one on the torus for a flow on the torus (as
    /// [`FlowModel::new`]; [`FlowSpec::build_conditional`] says which layers
    /// read the context).
    pub fn conditional(
        spec: &FlowSpec,
        dim: usize,
        context_dim: usize,
        seed: u64,
    ) -> Result<Self, Error> {
        let base = super::torus::default_base(spec, "FlowModel::conditional")?;
        Self::conditional_with_base(spec, dim, context_dim, base, seed)
    }

    /// [`FlowModel::conditional`] with the given base (`UniformTorus` for a
    /// flow on the torus and only for one).
    pub fn conditional_with_base(
        spec: &FlowSpec,
        dim: usize,
        context_dim: usize,
        base_spec: BaseSpec,
        seed: u64,
    ) -> Result<Self, Error> {
        super::torus::check_base(spec, base_spec, "FlowModel::conditional_with_base")?;
        let mut rng = StdRng::seed_from_u64(seed);
        let flow = spec.build_conditional::<T>(dim, context_dim, &mut rng)?;
        let base =
            match base_spec {
                BaseSpec::StandardNormal => Base::StandardNormal(StandardNormal::new(dim)?),
                BaseSpec::DiagonalGaussian(cfg) => Base::Gaussian(
                    ConditionalDiagonalGaussian::new(dim, context_dim, &cfg, &mut rng)?,
                ),
                BaseSpec::UniformTorus => Base::Torus(UniformTorus::new(dim)?),
            };
        Ok(Self::assemble(flow, base, base_spec, seed))
    }

    fn assemble(flow: Flow<T>, base: Base<T>, base_spec: BaseSpec, seed: u64) -> Self {
        Self {
            flow,
            base,
            base_spec,
            seed,
            standardization: None,
            context_standardization: None,
        }
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
    pub fn base_spec(&self) -> BaseSpec {
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

    /// Sets the standardisation to the per-dimension mean and standard
    /// deviation of `data` (a dimension with zero spread gets 1); for a
    /// conditional model `data` is the stacked `[x; c]` (`(D + C) × n`) and
    /// both the samples and the contexts get one (see
    /// [`FlowModel::standardize_from_given`]).
    ///
    /// The statistics are computed on each dimension scaled by its largest
    /// magnitude, so they cannot overflow for any finite data; a dimension
    /// whose standard deviation is still not a finite positive number in the
    /// model's precision is an error naming it.
    pub fn standardize_from(&mut self, data: &DMatrix<T>) -> Result<(), Error> {
        super::fit::check_data("data", data, self.data_dim())?;
        let (x, c) = split_context(data, self.dim());
        self.standardize_pairs("FlowModel::standardize_from", &x, &c)
    }

    /// Sets the standardisations of a conditional model to the per-dimension
    /// mean and standard deviation of the samples `x` (`D × n`) and of their
    /// contexts `c` (`C × n`). Standardising the context is a change of the
    /// conditioners' input; it leaves the density of `x` as it is.
    pub fn standardize_from_given(&mut self, x: &DMatrix<T>, c: &DMatrix<T>) -> Result<(), Error> {
        const CTX: &str = "FlowModel::standardize_from_given";
        check_pairs(CTX, "data", x, c, self.dim(), self.context_dim())?;
        self.standardize_pairs(CTX, x, c)
    }

    fn standardize_pairs(
        &mut self,
        ctx: &str,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
    ) -> Result<(), Error> {
        if self.base_spec == BaseSpec::UniformTorus {
            return Err(super::torus::no_standardization(ctx));
        }
        let sx = standardization_of(x, ctx, "data")?;
        let sc = match c.nrows() {
            0 => None,
            _ => Some(standardization_of(c, ctx, "contexts")?),
        };
        self.standardization = Some(sx);
        self.context_standardization = sc;
        Ok(())
    }

    /// The samples and contexts in the flow's units.
    fn to_flow_space(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DMatrix<T>) {
        let cs = match &self.context_standardization {
            None => c.clone(),
            s => apply_standardization(s, c),
        };
        (apply_standardization(&self.standardization, x), cs)
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
        Ok(mean - log_scale_sum(&self.standardization))
    }

    /// Whether a layer couples the samples of a batch (batch normalisation).
    fn has_batch_norm(&self) -> bool {
        self.flow
            .layers()
            .iter()
            .any(|l| matches!(l, FlowLayer::BatchNorm(_)))
    }

    /// Column blocks to split a batch of `n` into for evaluation on several
    /// threads: 1 unless the features `threads` and `fast-gemm` (or `portable-gemm`) are on, the
    /// batch is large enough to gain, and no layer couples the samples of a
    /// batch (batch normalisation in training mode uses the batch's
    /// statistics, so it sees the whole batch).
    fn parallel_blocks(&self, n: usize) -> usize {
        let couples = self.flow.layers().iter().any(|l| match l {
            FlowLayer::BatchNorm(b) => b.is_training(),
            _ => false,
        });
        if couples {
            1
        } else {
            crate::parallel::blocks_for(n, self.flow.num_params())
        }
    }

    /// [`TrainableDensity::mean_log_prob_and_grad`] on `blocks` column blocks
    /// on several threads: the mean over the batch is the column-weighted
    /// mean of the blocks' means, and so is its gradient. Each block's
    /// gradient goes into its own buffer, taken from this thread's pool and
    /// given back to it (so the next call finds it).
    fn mean_log_prob_and_grad_in_blocks(
        &self,
        data: &DMatrix<T>,
        grad: &mut [T],
        blocks: usize,
    ) -> Result<T, Error> {
        let n = data.ncols();
        let bufs: Vec<std::sync::Mutex<crate::nn::ScratchVec<T>>> = (0..blocks)
            .map(|_| std::sync::Mutex::new(crate::nn::take_zeros(grad.len())))
            .collect();
        let parts = crate::parallel::map_column_blocks(data, blocks, |b, block| {
            let mut g = bufs[b].lock().unwrap_or_else(|e| e.into_inner());
            (self.mean_log_prob_and_grad(block, &mut g), block.ncols())
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
        match first_error {
            Some(e) => Err(e),
            None => Ok(mean),
        }
    }

    /// Checks that `loaded` (from a checkpoint) is a model of the same spec,
    /// dimensions and base.
    fn same_shape(&self, loaded: &Self, loc: &super::validate::Loc) -> Result<(), Error> {
        if loaded.spec() == self.spec()
            && loaded.dim() == self.dim()
            && loaded.context_dim() == self.context_dim()
            && loaded.base_spec == self.base_spec
        {
            return Ok(());
        }
        let given = |m: &Self| match m.context_dim() {
            0 => String::new(),
            c => format!(" given {c}"),
        };
        Err(loc.err(
            "",
            format!(
                "the checkpoint holds a model of `{}` in {} dimensions{}, not `{}` in {}{}",
                clip(&loaded.spec().to_string()),
                loaded.dim(),
                given(loaded),
                clip(&self.spec().to_string()),
                self.dim(),
                given(self)
            ),
        ))
    }
}

impl<T: Real> Distribution<T> for FlowModel<T> {
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
    fn sample_and_log_prob(&self, n: usize, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        self.sample_and_log_prob_given(&no_context(n), rng)
    }
    fn log_prob_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        assert_pair(
            "FlowModel::log_prob",
            Some(self.dim()),
            self.context_dim(),
            x,
            c,
        );
        let blocks = self.parallel_blocks(x.ncols());
        if blocks > 1 {
            // Blocks of the pairs: of x alone when there is no context.
            let stacked;
            let data = if c.nrows() == 0 {
                x
            } else {
                stacked = stack_context(x, c);
                &stacked
            };
            let d = self.dim();
            let parts = crate::parallel::map_column_blocks(data, blocks, |_, block| {
                if block.nrows() == d {
                    self.log_prob_given(block, &no_context(block.ncols()))
                } else {
                    let (xb, cb) = split_context(block, d);
                    self.log_prob_given(&xb, &cb)
                }
            });
            let mut lp = DVector::zeros(x.ncols());
            for (start, part) in parts {
                lp.rows_mut(start, part.len()).copy_from(&part);
            }
            return lp;
        }
        let (y, cs) = self.to_flow_space(x, c);
        let (u, ildj) = self.flow.inverse_and_log_det_given(&y, &cs);
        let shift = log_scale_sum::<T>(&self.standardization);
        log_prob_from(self.base.get(), &u, &cs, ildj).map(|v| v - shift)
    }
    fn sample_given(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        let cs = apply_standardization(&self.context_standardization, c);
        let u = self.base.get().sample_given(&cs, rng);
        undo_standardization(&self.standardization, self.flow.forward_given(&u, &cs))
    }
    fn sample_and_log_prob_given(
        &self,
        c: &DMatrix<T>,
        rng: &mut dyn Rng,
    ) -> (DMatrix<T>, DVector<T>) {
        let cs = apply_standardization(&self.context_standardization, c);
        let (u, lp) = self.base.get().sample_and_log_prob_given(&cs, rng);
        let (y, fldj) = self.flow.forward_and_log_det_given(&u, &cs);
        let shift = log_scale_sum::<T>(&self.standardization);
        let lp = crate::distribution::sanitize((lp - fldj).map(|v| v - shift));
        (undo_standardization(&self.standardization, y), lp)
    }
}

/// The flow's parameters, then the base's (a Gaussian of the context).
impl<T: Real> Parameters<T> for FlowModel<T> {
    fn num_params(&self) -> usize {
        self.flow.num_params()
            + self
                .base
                .get()
                .as_trainable_base()
                .map_or(0, |b| b.num_params())
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.flow.visit_params(f);
        if let Base::Gaussian(b) = &self.base {
            b.visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.flow.visit_params_mut(f);
        if let Base::Gaussian(b) = &mut self.base {
            b.visit_params_mut(f);
        }
    }
    fn params_changed(&mut self) {
        self.flow.params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.flow.set_training(training)
    }
}

/// For a conditional model, every batch `fit` hands over is the stacked
/// `[x; c]` (`(D + C) × n`).
impl<T: Real> TrainableDensity<T> for FlowModel<T> {
    fn finalizes_with_data(&self) -> bool {
        self.flow.finalizes_with_data()
    }
    fn prepare_with_data(&mut self, data: &DMatrix<T>, stage: DataStage) {
        let (x, c) = split_context(data, self.dim());
        let (y, cs) = self.to_flow_space(&x, &c);
        let _ = self.flow.prepare_with_data_given(&y, &cs, stage);
    }
    fn mean_log_prob_and_grad(&self, data: &DMatrix<T>, grad: &mut [T]) -> Result<T, Error> {
        let blocks = self.parallel_blocks(data.ncols());
        if blocks > 1 {
            return self.mean_log_prob_and_grad_in_blocks(data, grad, blocks);
        }
        if self.context_dim() == 0 {
            let y = apply_standardization(&self.standardization, data);
            let c = no_context(data.ncols());
            let mut gc = no_context(data.ncols());
            let mean =
                mean_log_prob_and_grad_given(self.base.get(), &self.flow, &y, &c, grad, &mut gc)?;
            return Ok(mean - log_scale_sum(&self.standardization));
        }
        let (x, c) = split_context(data, self.dim());
        let (y, cs) = self.to_flow_space(&x, &c);
        let mut gc = DMatrix::zeros(cs.nrows(), cs.ncols());
        let mean =
            mean_log_prob_and_grad_given(self.base.get(), &self.flow, &y, &cs, grad, &mut gc)?;
        Ok(mean - log_scale_sum(&self.standardization))
    }
    fn standardize_from(&mut self, data: &DMatrix<T>) -> Result<(), Error> {
        FlowModel::standardize_from(self, data)
    }
    fn save_state(&self) -> Option<String> {
        Some(self.to_json())
    }
    fn restore_state(&mut self, saved: &str) -> Result<(), Error> {
        self.restore_checkpoint_state(saved, "checkpoint")
    }
    fn restore_checkpoint_state(&mut self, saved: &str, checkpoint: &str) -> Result<(), Error> {
        let loc = super::validate::Loc::nested(checkpoint, "model");
        let loaded = FlowModel::from_json_in(saved, &loc)?;
        self.same_shape(&loaded, &loc)?;
        *self = loaded;
        Ok(())
    }
    fn min_batch_size(&self) -> usize {
        if self.has_batch_norm() { 2 } else { 1 }
    }
    /// A flow on the torus refuses samples with an angle outside `[−π, π)`.
    fn check_support(&self, what: &str, data: &DMatrix<T>) -> Result<(), Error> {
        match self.base_spec {
            BaseSpec::UniformTorus => super::torus::check_angles(what, data, self.dim()),
            _ => Ok(()),
        }
    }
}

impl<T: Real> super::VariationalFamily<T> for FlowModel<T> {
    fn dim(&self) -> usize {
        self.flow.dim()
    }
    fn base_sample_and_log_prob(
        &self,
        n: usize,
        rng: &mut dyn rand::Rng,
    ) -> (DMatrix<T>, DVector<T>) {
        self.base.get().sample_and_log_prob(n, rng)
    }
    fn transform(&self) -> &dyn Differentiable<T> {
        &self.flow
    }
    fn transform_mut(&mut self) -> &mut dyn Differentiable<T> {
        &mut self.flow
    }
    /// A conditional or standardised model is refused: variational fitting
    /// draws from the unconditional base in the flow's own units.
    fn check_variational(&self) -> Result<(), Error> {
        let why = if self.context_dim() > 0 {
            "the model is conditional; variational fitting needs an unconditional model"
        } else if self.standardization.is_some() {
            "the model has a data standardisation; variational fitting needs a model without one"
        } else {
            return Ok(());
        };
        Err(Error::Unsupported {
            context: "fit_variational".into(),
            reason: why.into(),
        })
    }
}
