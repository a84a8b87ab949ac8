//! Held-out evaluation: the ELBO and the importance-sampled log-likelihood.
//!
//! For a test image `x` and `K` posterior samples `z_k ~ q(z | x)`, the log
//! importance weights are `log w_k = log p(x | z_k) + log p(z_k) − log q(z_k | x)`.
//! Then
//!
//! ```text
//! ELBO(x)   ≈ (1/K) Σ_k log w_k                       (Monte Carlo mean)
//! log p(x)  ≈ log (1/K) Σ_k w_k = logsumexp_k(log w_k) − log K
//! ```
//!
//! The second is the bound `L_K` of Burda, Grosse & Salakhutdinov 2016
//! (*Importance Weighted Autoencoders*, Theorem 1): `E[L_K] ≤ log p(x)`,
//! non-decreasing in `K`, `E[L_1]` is the ELBO, and `L_K → log p(x)` as
//! `K → ∞`. The log-sum-exp subtracts the largest weight first, so it never
//! overflows. Both numbers are reported as the mean over test images with
//! the standard error of that mean.

use nalgebra::DMatrix;
use normflow::Real;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::model::{Vae, normal_noise};

/// Per-image estimates on a test set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Importance samples per image.
    pub samples: usize,
    /// The ELBO estimate of each image (mean of its `K` log weights).
    pub elbo: Vec<f64>,
    /// The importance-sampled log-likelihood estimate of each image.
    pub log_likelihood: Vec<f64>,
}

/// A mean with the standard error of the mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSe {
    /// The mean.
    pub mean: f64,
    /// Its standard error, `s / √n` with the sample standard deviation `s`.
    pub se: f64,
}

impl MeanSe {
    /// Mean and standard error of `v` (not empty).
    pub fn of(v: &[f64]) -> Self {
        let (mean, se) = crate::demo::mean_and_se(v.iter().copied());
        Self { mean, se }
    }
}

impl std::fmt::Display for MeanSe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} ± {:.3}", self.mean, self.se)
    }
}

impl Evaluation {
    /// Mean and standard error of the per-image ELBO.
    pub fn elbo_summary(&self) -> MeanSe {
        MeanSe::of(&self.elbo)
    }

    /// Mean and standard error of the per-image log-likelihood estimate.
    pub fn log_likelihood_summary(&self) -> MeanSe {
        MeanSe::of(&self.log_likelihood)
    }

    /// The per-image gap `log p(x) estimate − ELBO`, paired over images
    /// (so the spread between images cancels): how far the posterior is
    /// from the true one, as seen by the importance-sampled estimate.
    pub fn gap_summary(&self) -> MeanSe {
        let gap: Vec<f64> = self
            .log_likelihood
            .iter()
            .zip(&self.elbo)
            .map(|(l, e)| l - e)
            .collect();
        MeanSe::of(&gap)
    }
}

/// `log Σ exp(v)`, stable: the largest value is factored out. `−∞` for an
/// empty slice or one of only `−∞`.
pub fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    if m == f64::INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Evaluates every column of `x` with `k` posterior samples drawn with the
/// noise of `seed`. Fails if a log weight is not finite (which the stable
/// forms rule out for finite parameters).
pub fn evaluate<T: Real>(
    vae: &Vae<T>,
    x: &DMatrix<f64>,
    k: usize,
    seed: u64,
) -> crate::Result<Evaluation> {
    if k == 0 {
        return Err("the importance-sampled estimate needs at least one sample".into());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut elbo = Vec::with_capacity(x.ncols());
    let mut log_likelihood = Vec::with_capacity(x.ncols());
    for j in 0..x.ncols() {
        let col = x.columns(j, 1).map(T::lit);
        let eps = normal_noise::<T>(vae.latent(), k, &mut rng);
        let w: Vec<f64> = vae.log_weights(&col, &eps).iter().copied().collect();
        if w.iter().any(|v| !v.is_finite()) {
            return Err(format!(
                "test image {j}: a log importance weight is not finite"
            ));
        }
        elbo.push(w.iter().sum::<f64>() / k as f64);
        log_likelihood.push(log_sum_exp(&w) - (k as f64).ln());
    }
    Ok(Evaluation {
        samples: k,
        elbo,
        log_likelihood,
    })
}
