//! Variational fitting: reverse KL to an unnormalised target density.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::optimizer_state::check_momentum;
use super::{Adam, Optimizer, OptimizerKind, Schedule, Sgd, clip_grad_norm};
use crate::bijector::Differentiable;
use crate::distribution::{Distribution, TransformedDistribution};
use crate::{Error, Real};

/// An unnormalised log-density `log p̃(x)` with its gradient: the target of
/// variational inference.
///
/// Implemented for every [`Distribution`] that provides `∇ log p` (through
/// [`DistributionTarget`]), for closures (through [`FnTarget`]), for targets
/// written one point at a time with exact automatic gradients (every
/// [`PointTarget`](super::PointTarget)) and for the built-in energies in
/// [`targets`](super::targets).
pub trait LogDensity<T: Real> {
    /// The dimension `D`.
    fn dim(&self) -> usize;
    /// `log p̃(x)` per column.
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T>;
    /// `(log p̃(x), ∇ₓ log p̃(x))` per column.
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>);
    /// `log p̃(x)` at one point `x`, with `∇ₓ log p̃(x)` written into `grad`
    /// (both `D` long): what a sampler such as NUTS asks for. The default
    /// evaluates a batch of one column; targets written per point override
    /// it to skip the matrices.
    fn log_density_and_grad_at(&self, x: &[T], grad: &mut [T]) -> T {
        let (lp, g) = self.log_density_and_grad(&DMatrix::from_column_slice(x.len(), 1, x));
        grad.copy_from_slice(g.as_slice());
        lp[0]
    }
}

/// A [`Distribution`] used as a target (its normalised log-density).
#[derive(Debug, Clone)]
pub struct DistributionTarget<D>(pub D);

impl<T: Real, D: Distribution<T>> LogDensity<T> for DistributionTarget<D> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.0.log_prob(x)
    }
    /// # Panics
    /// If the distribution does not provide `∇ log p`.
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        let g = self
            .0
            .log_prob_grad(x)
            .expect("DistributionTarget: the distribution does not provide ∇ log p");
        (self.0.log_prob(x), g)
    }
}

/// A target from a closure returning `(log p̃(x), ∇ log p̃(x))` for a batch.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::train::{FnTarget, LogDensity};
/// // log p̃(x) = −½‖x‖² (an unnormalised standard normal).
/// let t = FnTarget::new(2, |x: &DMatrix<f64>| {
///     (DVector::from_iterator(x.ncols(), x.column_iter().map(|c| -0.5 * c.norm_squared())), -x)
/// });
/// assert_eq!(t.log_density(&DMatrix::zeros(2, 1))[0], 0.0);
/// ```
pub struct FnTarget<F> {
    dim: usize,
    f: F,
}

impl<F> FnTarget<F> {
    /// Wraps `f` for a `dim`-dimensional target.
    pub fn new(dim: usize, f: F) -> Self {
        Self { dim, f }
    }
}

impl<T: Real, F: Fn(&DMatrix<T>) -> (DVector<T>, DMatrix<T>)> LogDensity<T> for FnTarget<F> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        (self.f)(x).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        (self.f)(x)
    }
}

/// Options of [`fit_variational`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariationalOptions {
    /// Samples per step (default 256).
    pub batch_size: usize,
    /// Gradient steps (default 2000).
    pub steps: u64,
    /// The optimiser's learning rate (default 1e-3).
    pub learning_rate: f64,
    /// The optimiser (default Adam), as for [`fit`](super::fit).
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Decoupled weight decay (default 0; AdamW with Adam).
    #[serde(default)]
    pub weight_decay: f64,
    /// Global gradient-norm clipping, if set.
    pub clip_norm: Option<f64>,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed of the base samples.
    pub seed: u64,
    /// Draws of the fitted `q` for the importance-sampling diagnostics at
    /// the end ([`VariationalReport::diagnostics`]; default 1000, 0 for
    /// none).
    #[serde(default = "default_diagnostic_draws")]
    pub diagnostic_draws: usize,
}

fn default_diagnostic_draws() -> usize {
    1000
}

impl Default for VariationalOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            steps: 2000,
            learning_rate: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            clip_norm: None,
            schedule: Schedule::Constant,
            seed: 0,
            diagnostic_draws: default_diagnostic_draws(),
        }
    }
}

/// What [`fit_variational`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariationalReport {
    /// The ELBO estimate `mean(log p̃(x) − log q(x))` of every step's batch.
    pub elbo_history: Vec<f64>,
    /// Steps taken.
    pub steps: u64,
    /// Whether the observer asked to stop.
    pub interrupted: bool,
    /// How far to trust the fit: `log Ẑ` with its standard error, the
    /// effective sample size and the Pareto `k̂` of the importance weights
    /// of [`VariationalOptions::diagnostic_draws`] fresh draws of `q`
    /// (`None` with fewer than 2 draws, or when a draw's weight is NaN or
    /// infinite: the target is NaN there, or `q` vanishes where it does not).
    #[serde(default)]
    pub diagnostics: Option<super::VariationalDiagnostics>,
}

/// What [`fit_variational`] trains: a fixed base to draw from and a
/// trainable flow that pushes the draws forward (`q(x)`, with `x = f(u)`,
/// `u ~ base`).
///
/// Implemented by [`TransformedDistribution`] and by
/// [`FlowModel`](super::FlowModel), so a
/// variational fit is saved like any model fitted to data:
///
/// ```
/// use normflow::FlowSpec;
/// use normflow::train::{DistributionTarget, FlowModel, VariationalOptions, fit_variational};
/// use normflow::distribution::Normal;
///
/// let target = DistributionTarget(Normal::from_slices(&[1.0, -1.0], &[0.5, 2.0])?);
/// let mut q = FlowModel::<f64>::new(&FlowSpec::parse("realnvp(2, hidden = 8)")?, 2, 0)?;
/// let opts = VariationalOptions { steps: 30, ..Default::default() };
/// let report = fit_variational(&mut q, &target, &opts, &mut |_, _| true)?;
/// assert_eq!(report.steps, 30);
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait VariationalFamily<T: Real> {
    /// The dimension of the samples.
    fn dim(&self) -> usize;
    /// `n` draws `u` of the base and their `log p_base(u)`.
    fn base_sample_and_log_prob(
        &self,
        n: usize,
        rng: &mut dyn rand::Rng,
    ) -> (DMatrix<T>, DVector<T>);
    /// The flow `f` (its forward direction is differentiated).
    fn transform(&self) -> &dyn Differentiable<T>;
    /// The flow, to set its parameters.
    fn transform_mut(&mut self) -> &mut dyn Differentiable<T>;
    /// An error if this family cannot be fitted variationally as it is.
    fn check_variational(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl<T: Real, D: Distribution<T>, B: Differentiable<T>> VariationalFamily<T>
    for TransformedDistribution<T, D, B>
{
    fn dim(&self) -> usize {
        Distribution::dim(self)
    }
    fn base_sample_and_log_prob(
        &self,
        n: usize,
        rng: &mut dyn rand::Rng,
    ) -> (DMatrix<T>, DVector<T>) {
        self.base().sample_and_log_prob(n, rng)
    }
    fn transform(&self) -> &dyn Differentiable<T> {
        self.bijector()
    }
    fn transform_mut(&mut self) -> &mut dyn Differentiable<T> {
        self.bijector_mut()
    }
}

/// One step's ELBO estimate and its gradient.
///
/// Draws `n` base samples `u`, pushes them through the flow in one fused
/// `forward_and_log_det_through` pass (`x = f(u)`, `log q(x) = log p_base(u) − fldj`),
/// and returns the ELBO estimate `mean(log p̃(x) − log q(x))`; **adds** into
/// `grad` the gradient of the loss `E_q[log q(x) − log p̃(x)]` (the negative
/// ELBO) by the reparameterisation trick: the backward pass of the forward
/// direction with cotangents `−∇ log p̃(x)/n` for `x` and `−1/n` for the log-det.
pub fn elbo_and_grad<T: Real, Q: VariationalFamily<T> + ?Sized>(
    q: &Q,
    target: &dyn LogDensity<T>,
    n: usize,
    rng: &mut dyn rand::Rng,
    grad: &mut [T],
) -> Result<T, Error> {
    let (u, lp_base) = q.base_sample_and_log_prob(n, rng);
    let inv_n = T::one() / T::lit(n as f64);
    let mut elbo = T::zero();
    // One fused pass: the flow's value, the target at the samples, and the
    // flow's backward pass, evaluating every network once.
    q.transform()
        .forward_and_log_det_through(&u, grad, &mut |x, fldj| {
            let (lp, glp) = target.log_density_and_grad(x);
            elbo = (lp - (&lp_base - fldj)).sum() * inv_n;
            Ok((glp * (-inv_n), DVector::from_element(n, -inv_n)))
        })?;
    Ok(elbo)
}

/// Fits `q` to the unnormalised `target` by maximising the ELBO (minimising
/// the reverse KL divergence) with reparameterised samples and the
/// optimiser of [`VariationalOptions::optimizer`] (Adam by default).
///
/// The flow must be differentiable in its **forward** (sampling) direction:
/// couplings, IAF, planar, radial and Sylvester flows are; MAF is not (its sampling is
/// sequential). The observer sees `(step, elbo)` and may stop the run by
/// returning `false`. A non-finite ELBO or gradient stops with
/// [`Error::Training`] and leaves `q` at its last parameters with a finite ELBO.
pub fn fit_variational<T: Real, Q: VariationalFamily<T> + ?Sized>(
    q: &mut Q,
    target: &dyn LogDensity<T>,
    options: &VariationalOptions,
    observer: &mut dyn FnMut(u64, f64) -> bool,
) -> Result<VariationalReport, Error> {
    q.check_variational()?;
    crate::error::check::same_dim("fit_variational", "target", q.dim(), target.dim())?;
    if options.batch_size == 0 {
        return Err(crate::error::check::invalid(
            "fit_variational",
            "batch_size",
            "at least 1",
            0,
        ));
    }
    if !(options.learning_rate.is_finite() && options.learning_rate > 0.0) {
        return Err(crate::error::check::invalid(
            "fit_variational",
            "learning_rate",
            "finite and positive",
            options.learning_rate,
        ));
    }
    if let Some(c) = options.clip_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(crate::error::check::invalid(
            "fit_variational",
            "clip_norm",
            "finite and positive",
            c,
        ));
    }
    if !(options.weight_decay.is_finite() && options.weight_decay >= 0.0) {
        return Err(crate::error::check::invalid(
            "fit_variational",
            "weight_decay",
            "finite and ≥ 0",
            options.weight_decay,
        ));
    }
    match options.optimizer {
        OptimizerKind::Adam => {
            let mut adam = Adam::new(options.learning_rate);
            adam.weight_decay = options.weight_decay;
            variational_loop(q, target, options, observer, adam)
        }
        OptimizerKind::Sgd { momentum } => {
            if check_momentum(momentum).is_err() {
                return Err(crate::error::check::invalid(
                    "fit_variational",
                    "momentum",
                    "finite and in [0, 1)",
                    momentum,
                ));
            }
            let mut sgd = Sgd::new(options.learning_rate, momentum);
            sgd.weight_decay = options.weight_decay;
            variational_loop(q, target, options, observer, sgd)
        }
    }
}

/// The steps of [`fit_variational`] with a chosen optimiser.
fn variational_loop<T: Real, Q: VariationalFamily<T> + ?Sized, O: Optimizer>(
    q: &mut Q,
    target: &dyn LogDensity<T>,
    options: &VariationalOptions,
    observer: &mut dyn FnMut(u64, f64) -> bool,
    mut optimizer: O,
) -> Result<VariationalReport, Error> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let p = q.transform().num_params();
    let mut grad = vec![T::zero(); p];
    let mut last_good: Vec<T> = Vec::with_capacity(p);
    let mut report = VariationalReport {
        // The history grows with the steps taken; `steps` itself may be huge.
        elbo_history: Vec::with_capacity(options.steps.min(1 << 16) as usize),
        steps: 0,
        interrupted: false,
        diagnostics: None,
    };
    for step in 0..options.steps {
        grad.iter_mut().for_each(|g| *g = T::zero());
        let elbo = elbo_and_grad(q, target, options.batch_size, &mut rng, &mut grad);
        let elbo = match elbo {
            Ok(e) if e.is_finite() && grad.iter().all(|g| g.is_finite()) => e,
            other => {
                if last_good.len() == p {
                    q.transform_mut().set_params(&last_good)?;
                }
                return Err(Error::Training {
                    epoch: step as usize + 1,
                    batch: 0,
                    reason: match other {
                        Err(e) => e.to_string(),
                        Ok(e) if e.is_finite() => format!(
                            "a gradient is not finite (the ELBO was {}); the flow holds its last parameters with a finite ELBO",
                            e.to_f64()
                        ),
                        Ok(_) => "the ELBO is not finite; the flow holds its last parameters with a finite ELBO".to_string(),
                    },
                });
            }
        };
        if let Some(c) = options.clip_norm {
            clip_grad_norm(&mut grad, c);
        }
        q.transform().copy_params_into(&mut last_good);
        // In place: the parameters are not copied out and back.
        let lr = options.learning_rate * options.schedule.factor(step);
        optimizer.step_params(q.transform_mut(), &grad, lr);
        report.steps = step + 1;
        report.elbo_history.push(elbo.to_f64());
        if !observer(step + 1, elbo.to_f64()) {
            report.interrupted = true;
            break;
        }
    }
    if options.diagnostic_draws >= 2 {
        // Fresh draws, independent of the training batches.
        let seed = options.seed ^ 0x9e37_79b9_7f4a_7c15;
        report.diagnostics =
            super::diagnose_variational(q, target, options.diagnostic_draws, seed).ok();
    }
    Ok(report)
}
