//! NUTS on a target, plain or preconditioned by a fitted flow (NeuTra).
//!
//! The sampler itself is PyMC's `nuts-rs` (the one behind nutpie), with its
//! Stan-style warm-up: dual-averaging step size and a diagonal mass matrix.
//! NeuTra (Hoffman et al. 2019, "NeuTra-lizing bad geometry in Hamiltonian
//! Monte Carlo using neural transport") runs it on the flow's base space,
//! on `z ↦ log p(f(z)) + log|det J_f(z)|`, where a good variational fit
//! makes the posterior close to its base, and maps each draw back to
//! `x = f(z)`.

use std::collections::HashMap;
use std::fmt;

use nalgebra::{DMatrix, DVector};
use nuts_rs::{Chain, CpuLogpFunc, CpuMath, CpuMathError, DiagNutsSettings, LogpError, Settings};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::convergence::{ConvergenceSummary, summarize_draws};
use crate::Error;
use crate::bijector::Differentiable;
use crate::train::{LogDensity, VariationalFamily};

/// Settings of [`sample_nuts`] and [`sample_neutra`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NutsOptions {
    /// Independent chains, run on their own threads (default 4).
    pub chains: usize,
    /// Warm-up iterations per chain, discarded (default 1000).
    pub tune: u64,
    /// Draws kept per chain (default 1000).
    pub draws: u64,
    /// Seed; chain `k` uses a stream derived from `(seed, k)` (default 0).
    pub seed: u64,
    /// Largest tree depth: at most `2^max_depth − 1` leapfrog steps per
    /// draw (default 10).
    pub max_depth: u64,
    /// The acceptance rate the step size is tuned to (default 0.8).
    pub target_accept: f64,
}

impl Default for NutsOptions {
    fn default() -> Self {
        Self {
            chains: 4,
            tune: 1000,
            draws: 1000,
            seed: 0,
            max_depth: 10,
            target_accept: 0.8,
        }
    }
}

/// What one chain did after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Draws after warm-up whose trajectory diverged (energy error over
    /// 1000, or a non-finite density on the way).
    pub divergences: u64,
    /// Gradient evaluations spent on the kept draws.
    pub grad_evals: u64,
    /// Gradient evaluations spent on warm-up.
    pub tune_grad_evals: u64,
    /// The adapted step size.
    pub step_size: f64,
    /// The smallest bulk effective sample size over the coordinates of this
    /// chain's draws (in `x`).
    pub ess_bulk_min: f64,
    /// The largest rank-normalised split-R̂ over the coordinates of this
    /// chain alone (its two halves compared).
    pub rhat_max: f64,
}

/// Draws and diagnostics of [`sample_nuts`] or [`sample_neutra`].
#[derive(Debug, Clone, PartialEq)]
pub struct NutsResult {
    /// Per chain, the kept draws in the target's coordinates, `D × draws`.
    pub draws: Vec<DMatrix<f64>>,
    /// Per chain, what it did.
    pub chains: Vec<ChainReport>,
    /// R̂ and bulk ESS per coordinate over all chains together.
    pub summary: ConvergenceSummary,
}

impl NutsResult {
    /// Divergent draws over all chains.
    pub fn divergences(&self) -> u64 {
        self.chains.iter().map(|c| c.divergences).sum()
    }

    /// Gradient evaluations spent on the kept draws, over all chains.
    pub fn grad_evals(&self) -> u64 {
        self.chains.iter().map(|c| c.grad_evals).sum()
    }

    /// The smallest bulk ESS over coordinates (all chains) per gradient
    /// evaluation of the kept draws: the efficiency NeuTra is meant to raise.
    pub fn ess_per_grad_eval(&self) -> f64 {
        self.summary.ess_bulk_min() / self.grad_evals().max(1) as f64
    }
}

/// Runs NUTS on `target` (plain: no preconditioning). Each chain starts at
/// a point drawn uniformly from `[−2, 2]^D` (Stan's default).
///
/// ```
/// use normflow::bayes::{NutsOptions, sample_nuts};
/// use normflow::train::PointFnTarget;
///
/// // A standard normal in 3-D.
/// let target = PointFnTarget::new(3, |x: &[f64], g: &mut [f64]| {
///     g.iter_mut().zip(x).for_each(|(g, x)| *g = -x);
///     -0.5 * x.iter().map(|v| v * v).sum::<f64>()
/// });
/// let opts = NutsOptions { chains: 2, tune: 200, draws: 200, ..Default::default() };
/// let result = sample_nuts(&target, &opts)?;
/// assert_eq!(result.draws[0].shape(), (3, 200));
/// assert!(result.summary.rhat_max() < 1.1);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn sample_nuts(
    target: &(dyn LogDensity<f64> + Sync),
    options: &NutsOptions,
) -> Result<NutsResult, Error> {
    run(target, None, options)
}

/// Runs NUTS preconditioned by the flow of `q` (NeuTra): on the base space,
/// on `z ↦ log p(f(z)) + log|det J_f(z)|` with the gradient from the flow's
/// backward pass, each chain starting at a draw of `q`'s base; returns the
/// draws mapped back to `x = f(z)`.
///
/// `q` is typically a [`FlowModel`](crate::train::FlowModel) fitted to the
/// same target by [`fit_variational`](crate::train::fit_variational); its
/// flow must be differentiable in the forward direction (couplings, IAF).
pub fn sample_neutra<Q: VariationalFamily<f64> + Sync + ?Sized>(
    q: &Q,
    target: &(dyn LogDensity<f64> + Sync),
    options: &NutsOptions,
) -> Result<NutsResult, Error> {
    q.check_variational()?;
    crate::error::check::same_dim("sample_neutra", "target", q.dim(), target.dim())?;
    let init = |rng: &mut StdRng| -> Vec<f64> {
        let (u, _) = q.base_sample_and_log_prob(1, rng);
        u.as_slice().to_vec()
    };
    // One evaluation first, so that a flow without a forward backward pass
    // (MAF samples sequentially) is refused before any chain starts.
    let mut probe = Posterior::new(target, Some(q.transform()));
    let start = init(&mut StdRng::seed_from_u64(options.seed));
    let mut grad = vec![0.0; start.len()];
    if let Err(PointError::Flow(reason)) = probe.logp(&start, &mut grad) {
        return Err(Error::Unsupported {
            context: "sample_neutra".into(),
            reason: format!(
                "the flow's forward direction must be differentiable (couplings, IAF): {reason}"
            ),
        });
    }
    run(target, Some((q.transform(), &init)), options)
}

/// The base-space start of a NeuTra chain.
type Init<'a> = &'a (dyn Fn(&mut StdRng) -> Vec<f64> + Sync);

fn check_options(options: &NutsOptions) -> Result<(), Error> {
    use crate::error::check::invalid;
    if options.chains == 0 {
        return Err(invalid("sample_nuts", "chains", "at least 1", 0));
    }
    if options.draws < 4 {
        return Err(invalid("sample_nuts", "draws", "at least 4", options.draws));
    }
    if !(1..=30).contains(&options.max_depth) {
        return Err(invalid(
            "sample_nuts",
            "max_depth",
            "in 1..=30",
            options.max_depth,
        ));
    }
    if !(options.target_accept > 0.0 && options.target_accept < 1.0) {
        return Err(invalid(
            "sample_nuts",
            "target_accept",
            "in (0, 1)",
            options.target_accept,
        ));
    }
    Ok(())
}

fn run(
    target: &(dyn LogDensity<f64> + Sync),
    flow: Option<(&dyn Differentiable<f64>, Init<'_>)>,
    options: &NutsOptions,
) -> Result<NutsResult, Error> {
    check_options(options)?;
    crate::error::check::dim_at_least_one("sample_nuts", "target dimension", target.dim())?;
    let mut settings = DiagNutsSettings {
        num_tune: options.tune,
        num_draws: options.draws,
        maxdepth: options.max_depth,
        num_chains: options.chains,
        seed: options.seed,
        ..DiagNutsSettings::default()
    };
    settings.adapt_options.step_size_settings.target_accept = options.target_accept;
    let outcomes: Vec<Result<(DMatrix<f64>, ChainReport), Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..options.chains)
            .map(|k| s.spawn(move || run_chain(target, flow, &settings, options, k)))
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(k, h)| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Sampling {
                        chain: k,
                        reason: "the chain's thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut draws = Vec::with_capacity(options.chains);
    let mut chains = Vec::with_capacity(options.chains);
    for outcome in outcomes {
        let (d, c) = outcome?;
        draws.push(d);
        chains.push(c);
    }
    let summary = summarize_draws(&draws)?;
    Ok(NutsResult {
        draws,
        chains,
        summary,
    })
}

/// The chain's own random stream: SplitMix64 of `(seed, chain)`, so chains
/// are independent and a run is reproducible.
fn chain_seed(seed: u64, chain: usize) -> u64 {
    let mut z = seed ^ (chain as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn run_chain(
    target: &(dyn LogDensity<f64> + Sync),
    flow: Option<(&dyn Differentiable<f64>, Init<'_>)>,
    settings: &DiagNutsSettings,
    options: &NutsOptions,
    k: usize,
) -> Result<(DMatrix<f64>, ChainReport), Error> {
    let fail = |reason: String| Error::Sampling { chain: k, reason };
    let d = target.dim();
    let mut rng = StdRng::seed_from_u64(chain_seed(options.seed, k));
    let start: Vec<f64> = match flow {
        Some((_, init)) => init(&mut rng),
        None => (0..d).map(|_| rng.random_range(-2.0..2.0)).collect(),
    };
    let density = Posterior::new(target, flow.map(|(f, _)| f));
    let mut chain = settings
        .new_chain(k as u64, CpuMath::new(density), &mut rng)
        .map_err(|e| fail(e.to_string()))?;
    chain.set_position(&start).map_err(|e| {
        fail(format!(
            "the start {start:?} is not usable: {e} (is the target finite there?)"
        ))
    })?;
    let mut report = ChainReport {
        divergences: 0,
        grad_evals: 0,
        tune_grad_evals: 0,
        step_size: f64::NAN,
        ess_bulk_min: 0.0,
        rhat_max: 0.0,
    };
    let mut kept = DMatrix::zeros(d, options.draws as usize);
    let mut j = 0;
    for _ in 0..options.tune + options.draws {
        let (position, progress) = chain.draw().map_err(|e| fail(e.to_string()))?;
        if progress.tuning {
            report.tune_grad_evals += progress.num_gradients;
            continue;
        }
        report.grad_evals += progress.num_gradients;
        report.divergences += u64::from(progress.diverging);
        report.step_size = progress.step_size;
        let x = match flow {
            Some((f, _)) => f.forward(&DMatrix::from_column_slice(d, 1, &position)),
            None => DMatrix::from_column_slice(d, 1, &position),
        };
        if j < kept.ncols() {
            kept.set_column(j, &x.column(0));
            j += 1;
        }
    }
    if j < kept.ncols() {
        return Err(fail(format!(
            "the sampler stopped after {j} of {} draws",
            options.draws
        )));
    }
    let own = summarize_draws(std::slice::from_ref(&kept))?;
    report.ess_bulk_min = own.ess_bulk_min();
    report.rhat_max = own.rhat_max();
    Ok((kept, report))
}

/// `log p` at a point of the sampler's space: the target itself, or the
/// target pulled back to the flow's base (`log p(f(z)) + log|det J_f(z)|`).
struct Posterior<'a> {
    target: &'a (dyn LogDensity<f64> + Sync),
    flow: Option<&'a dyn Differentiable<f64>>,
    /// The flow's parameter gradients, computed by its backward pass and
    /// not needed here.
    scratch: Vec<f64>,
}

impl<'a> Posterior<'a> {
    fn new(
        target: &'a (dyn LogDensity<f64> + Sync),
        flow: Option<&'a dyn Differentiable<f64>>,
    ) -> Self {
        Posterior {
            target,
            flow,
            scratch: vec![0.0; flow.map_or(0, |f| f.num_params())],
        }
    }
}

/// Why `log p` could not be evaluated at a point.
#[derive(Debug)]
enum PointError {
    /// The density or its gradient is not finite there: the sampler counts
    /// it as a divergence and moves on.
    NotFinite,
    /// The flow refused the point (cannot happen with a well-formed model):
    /// sampling stops.
    Flow(String),
}

impl fmt::Display for PointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointError::NotFinite => write!(f, "log p or its gradient is not finite"),
            PointError::Flow(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PointError {}

impl LogpError for PointError {
    fn is_recoverable(&self) -> bool {
        matches!(self, PointError::NotFinite)
    }
}

impl nuts_rs::HasDims for Posterior<'_> {
    fn dim_sizes(&self) -> HashMap<String, u64> {
        let d = self.target.dim() as u64;
        HashMap::from([
            ("unconstrained_parameter".to_string(), d),
            ("dim".to_string(), d),
        ])
    }
}

impl CpuLogpFunc for Posterior<'_> {
    type LogpError = PointError;
    type FlowParameters = ();
    type ExpandedVector = Vec<f64>;

    fn dim(&self) -> usize {
        self.target.dim()
    }

    fn logp(&mut self, position: &[f64], gradient: &mut [f64]) -> Result<f64, PointError> {
        let value = match self.flow {
            None => self.target.log_density_and_grad_at(position, gradient),
            Some(flow) => {
                let d = position.len();
                let z = DMatrix::from_column_slice(d, 1, position);
                self.scratch.iter_mut().for_each(|g| *g = 0.0);
                let mut value = f64::NAN;
                let target = self.target;
                let gz = flow
                    .forward_and_log_det_through(&z, &mut self.scratch, &mut |x, fldj| {
                        let mut g = DMatrix::zeros(d, 1);
                        value = target.log_density_and_grad_at(x.as_slice(), g.as_mut_slice())
                            + fldj[0];
                        Ok((g, DVector::from_element(1, 1.0)))
                    })
                    .map_err(|e| PointError::Flow(e.to_string()))?;
                gradient.copy_from_slice(gz.as_slice());
                value
            }
        };
        if value.is_finite() && gradient.iter().all(|g| g.is_finite()) {
            Ok(value)
        } else {
            Err(PointError::NotFinite)
        }
    }

    fn expand_vector<R: rand::Rng + ?Sized>(
        &mut self,
        _rng: &mut R,
        array: &[f64],
    ) -> Result<Vec<f64>, CpuMathError> {
        Ok(array.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlowSpec;
    use crate::bayes::NealFunnel;
    use crate::train::FlowModel;

    /// The pulled-back log-density `log p(f(z)) + log|det J_f(z)|` and its
    /// gradient from the flow's backward pass agree with f64 central
    /// differences of the same function, computed from `forward_and_log_det`.
    #[test]
    fn neutra_gradient_matches_central_differences() {
        let target = NealFunnel::new(3).unwrap();
        let spec = FlowSpec::parse("realnvp(2, hidden = 8, identity_init = false)").unwrap();
        let q = FlowModel::<f64>::new(&spec, 3, 5).unwrap();
        let flow = q.transform();
        let mut p = Posterior::new(&target, Some(flow));
        let value = |z: &[f64]| {
            let (x, l) = flow.forward_and_log_det(&DMatrix::from_column_slice(3, 1, z));
            LogDensity::<f64>::log_density(&target, &x)[0] + l[0]
        };
        for z in [[0.3, -0.7, 1.1], [-1.2, 0.4, 0.05], [0.9, 1.5, -0.6]] {
            let mut g = [0.0; 3];
            let v = p.logp(&z, &mut g).unwrap();
            assert!((v - value(&z)).abs() < 1e-12, "{v} vs {}", value(&z));
            for i in 0..3 {
                let h = 1e-5;
                let (mut a, mut b) = (z, z);
                a[i] += h;
                b[i] -= h;
                let fd = (value(&a) - value(&b)) / (2.0 * h);
                assert!(
                    (g[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "∂/∂z{i} at {z:?}: backward {} vs central difference {fd}",
                    g[i]
                );
            }
        }
        // Where the target is not finite, the point is a recoverable error
        // (a divergence), not a crash.
        let nan_target = crate::train::PointFnTarget::new(3, |_: &[f64], g: &mut [f64]| {
            g.fill(0.0);
            f64::NAN
        });
        let mut p = Posterior::new(&nan_target, Some(flow));
        let e = p.logp(&[0.0; 3], &mut [0.0; 3]).unwrap_err();
        assert!(e.is_recoverable());
    }
}
