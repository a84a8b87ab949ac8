//! How far to trust a variational fit: importance sampling of the target
//! by the fitted `q`.
//!
//! With draws `xᵢ ~ q` and log-weights `log wᵢ = log p̃(xᵢ) − log q(xᵢ)`:
//! `Ẑ = mean(w)` estimates the target's normaliser (exactly unbiased for
//! `Z`, by the definition of importance sampling), the effective sample
//! size `(Σw)²/Σw²` says how many of the draws carry the estimate, and the
//! shape `k̂` of a generalised Pareto distribution fitted to the largest
//! weights says whether the weights' variance is finite at all (Vehtari,
//! Simpson, Gelman, Yao & Gabry 2024, *Pareto smoothed importance
//! sampling*, JMLR 25(72)): `k̂ < 0.5` a good fit, `0.5 ≤ k̂ < 0.7` usable
//! with care, `k̂ ≥ 0.7` unreliable (`q` misses mass of `p`).

use serde::{Deserialize, Serialize};

use super::{LogDensity, VariationalFamily};
use crate::{Error, Real};

/// Importance-sampling diagnostics of a variational fit
/// ([`diagnose_variational`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VariationalDiagnostics {
    /// The draws used.
    pub draws: usize,
    /// `log Ẑ = log mean(w)`: the estimated log-normaliser of the target
    /// (its log-evidence, for a posterior).
    pub log_z: f64,
    /// Its standard error, by the delta method: `sd(w) / (√n · mean(w))`.
    pub log_z_se: f64,
    /// The ELBO estimate `mean(log w) ≤ log Ẑ` at the same draws.
    pub elbo: f64,
    /// The effective sample size of the weights, `(Σw)²/Σw²`, in `[1, n]`.
    pub ess: f64,
    /// The Pareto shape `k̂` of the largest weights (`< 0.5` good,
    /// `≥ 0.7` unreliable; infinite when too few draws reach the tail).
    pub pareto_k: f64,
}

impl VariationalDiagnostics {
    /// The diagnostics of the log-weights `log wᵢ = log p̃(xᵢ) − log q(xᵢ)`
    /// of draws `xᵢ ~ q`. Errors if there are fewer than two, or one is NaN
    /// or `+∞` (a draw where `q` vanishes but `p̃` does not); `−∞` (a draw
    /// outside the target's support) is a weight of 0.
    ///
    /// ```
    /// use normflow::train::VariationalDiagnostics;
    /// // Equal weights: q is the normalised target times e^{1.5}.
    /// let d = VariationalDiagnostics::from_log_weights(&[1.5; 100])?;
    /// assert!((d.log_z - 1.5).abs() < 1e-12 && d.log_z_se == 0.0);
    /// assert!((d.ess - 100.0).abs() < 1e-9);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn from_log_weights(log_w: &[f64]) -> Result<Self, Error> {
        const CTX: &str = "VariationalDiagnostics::from_log_weights";
        let n = log_w.len();
        if n < 2 {
            return Err(crate::error::check::invalid(
                CTX,
                "log_w",
                "at least 2 log-weights",
                n,
            ));
        }
        if let Some(i) = log_w.iter().position(|v| v.is_nan() || *v == f64::INFINITY) {
            return Err(crate::error::check::invalid(
                CTX,
                &format!("log_w[{i}]"),
                "a number or −∞ (q vanishes where the target does not?)",
                log_w[i],
            ));
        }
        let max = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return Err(crate::error::check::invalid(
                CTX,
                "log_w",
                "at least one draw inside the target's support",
                "every weight 0",
            ));
        }
        // Weights scaled by e^{−max}, so the largest is 1 and none overflows.
        let w: Vec<f64> = log_w.iter().map(|v| (v - max).exp()).collect();
        let nf = n as f64;
        let sum: f64 = w.iter().sum();
        let sum_sq: f64 = w.iter().map(|v| v * v).sum();
        let mean = sum / nf;
        let var = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nf - 1.0);
        let finite = log_w.iter().filter(|v| v.is_finite());
        let elbo = if finite.clone().count() == n {
            finite.sum::<f64>() / nf
        } else {
            f64::NEG_INFINITY
        };
        Ok(Self {
            draws: n,
            log_z: max + mean.ln(),
            log_z_se: var.sqrt() / (nf.sqrt() * mean),
            elbo,
            ess: sum * sum / sum_sq,
            pareto_k: pareto_k(log_w),
        })
    }

    /// The reading of [`pareto_k`](Self::pareto_k) by the PSIS paper's
    /// thresholds: `"good"`, `"ok"` or `"unreliable"`.
    pub fn verdict(&self) -> &'static str {
        if self.pareto_k < 0.5 {
            "good"
        } else if self.pareto_k < 0.7 {
            "ok"
        } else {
            "unreliable"
        }
    }
}

/// Draws `n` samples of `q` and returns the importance-sampling
/// diagnostics of `q` against the unnormalised `target`, with the draws
/// from a generator seeded with `seed`.
///
/// ```
/// use normflow::FlowSpec;
/// use normflow::distribution::Normal;
/// use normflow::train::{DistributionTarget, FlowModel, diagnose_variational};
///
/// // An identity flow over a standard normal, against a normalised N(0, 1.2²):
/// // log Z = 0; q is narrower than p, so the weights have a Pareto tail of
/// // shape 1 − 1/1.2² ≈ 0.31 (finite variance, a usable estimate).
/// let q = FlowModel::<f64>::new(&FlowSpec::parse("actnorm")?, 1, 0)?;
/// let p = DistributionTarget(Normal::scalar(0.0, 1.2)?);
/// let d = diagnose_variational(&q, &p, 4000, 1)?;
/// assert!(d.log_z.abs() < 4.0 * d.log_z_se + 1e-3);
/// assert!(d.pareto_k < 0.5, "{}", d.pareto_k);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn diagnose_variational<T: Real, Q: VariationalFamily<T> + ?Sized>(
    q: &Q,
    target: &dyn LogDensity<T>,
    n: usize,
    seed: u64,
) -> Result<VariationalDiagnostics, Error> {
    use rand::SeedableRng;
    crate::error::check::same_dim("diagnose_variational", "target", q.dim(), target.dim())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (u, lp_base) = q.base_sample_and_log_prob(n, &mut rng);
    let (x, fldj) = q.transform().forward_and_log_det(&u);
    let lp = target.log_density(&x);
    let log_w: Vec<f64> = (0..n)
        .map(|j| (lp[j] - (lp_base[j] - fldj[j])).to_f64())
        .collect();
    VariationalDiagnostics::from_log_weights(&log_w)
}

/// The PSIS shape `k̂` of the log-weights: a generalised Pareto
/// distribution fitted to the `M = min(n/5, 3√n)` largest weights' excesses
/// over the next largest, by the empirical-Bayes estimator of Zhang &
/// Stephens (2009) with the weakly informative prior of the PSIS paper
/// (Vehtari et al. 2024, appendix; as `loo` and ArviZ compute it).
/// Infinite when 4 or fewer weights exceed the cut-off.
///
/// ```
/// // Weights e^{z} with z ~ Exp(1) have a Pareto tail of shape 1:
/// // P(w > t) = t^{−1}. Quantiles stand in for draws.
/// let n = 4000;
/// let log_w: Vec<f64> = (0..n).map(|i| -(1.0 - (i as f64 + 0.5) / n as f64).ln()).collect();
/// let k = normflow::train::pareto_k(&log_w);
/// assert!((k - 1.0).abs() < 0.15, "{k}");
/// ```
pub fn pareto_k(log_w: &[f64]) -> f64 {
    let n = log_w.len();
    let tail = ((0.2 * n as f64).min(3.0 * (n as f64).sqrt())).ceil() as usize;
    if tail < 5 || n <= tail {
        return f64::INFINITY;
    }
    let max = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut x: Vec<f64> = log_w.iter().map(|v| v - max).collect();
    x.sort_by(f64::total_cmp);
    // The cut-off is the largest weight below the tail.
    let cutoff = x[n - tail - 1].max(f64::MIN_POSITIVE.ln());
    let exp_cut = cutoff.exp();
    let excess: Vec<f64> = x
        .iter()
        .filter(|v| **v > cutoff)
        .map(|v| v.exp() - exp_cut)
        .collect();
    if excess.len() <= 4 {
        return f64::INFINITY;
    }
    gpd_shape(&excess)
}

/// Zhang & Stephens' (2009) estimate of a generalised Pareto shape from
/// sorted positive excesses, with the PSIS prior (`k` shrunk towards 0.5 by
/// 10 pseudo-observations).
fn gpd_shape(x: &[f64]) -> f64 {
    let n = x.len();
    let nf = n as f64;
    let (prior_bs, prior_k) = (3.0, 10.0);
    let m = 30 + (nf.sqrt() as usize);
    let quartile = x[((nf / 4.0 + 0.5) as usize).max(1) - 1];
    let last = x[n - 1];
    // Candidate θ values (b in the paper), spread by the quantiles of a prior.
    let b: Vec<f64> = (1..=m)
        .map(|j| (1.0 - (m as f64 / (j as f64 - 0.5)).sqrt()) / (prior_bs * quartile) + 1.0 / last)
        .collect();
    let k_of = |bj: f64| x.iter().map(|v| (-bj * v).ln_1p()).sum::<f64>() / nf;
    let ks: Vec<f64> = b.iter().map(|&bj| k_of(bj)).collect();
    // The profile log-likelihood of each candidate, then its posterior weight.
    let ll: Vec<f64> = b
        .iter()
        .zip(&ks)
        .map(|(bj, kj)| nf * ((-bj / kj).ln() - kj - 1.0))
        .collect();
    let weights: Vec<f64> = ll
        .iter()
        .map(|li| 1.0 / ll.iter().map(|lj| (lj - li).exp()).sum::<f64>())
        .collect();
    let total: f64 = weights.iter().filter(|w| **w >= 10.0 * f64::EPSILON).sum();
    let b_post: f64 = b
        .iter()
        .zip(&weights)
        .filter(|(_, w)| **w >= 10.0 * f64::EPSILON)
        .map(|(bj, w)| bj * w / total)
        .sum();
    let k = k_of(b_post);
    (nf * k + prior_k * 0.5) / (nf + prior_k)
}
