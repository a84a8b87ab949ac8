//! Monte Carlo estimates, with their standard errors, of what has no closed
//! form: the moments, entropy and KL divergence of any distribution
//! (transformed ones included), from its samples and log-densities.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Distribution;
use crate::{Error, Real};

/// A Monte Carlo estimate: the value and its standard error (the standard
/// deviation of the estimator, from the same draws).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// Its standard error.
    pub standard_error: f64,
}

/// Mean and standard error of the mean of `v`.
fn mean_se(v: impl Iterator<Item = f64> + Clone) -> Estimate {
    let n = v.clone().count() as f64;
    let mean = v.clone().sum::<f64>() / n;
    let var = v.map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    Estimate {
        value: mean,
        standard_error: (var / n).sqrt(),
    }
}

fn at_least_two(n: usize, caller: &str) -> Result<(), Error> {
    if n < 2 {
        return Err(crate::error::check::invalid(
            caller,
            "n",
            "at least 2 draws",
            n,
        ));
    }
    Ok(())
}

/// The mean of each coordinate, from `n` draws.
///
/// ```
/// use normflow::distribution::{Normal, estimate_mean};
/// use rand::SeedableRng;
/// let d = Normal::<f64>::from_slices(&[1.0, -2.0], &[0.5, 3.0])?;
/// let m = estimate_mean(&d, 10_000, &mut rand::rngs::StdRng::seed_from_u64(0))?;
/// assert!((m[1].value + 2.0).abs() < 4.0 * m[1].standard_error);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn estimate_mean<T: Real>(
    d: &dyn Distribution<T>,
    n: usize,
    rng: &mut dyn Rng,
) -> Result<Vec<Estimate>, Error> {
    at_least_two(n, "estimate_mean")?;
    let x = d.sample(n, rng);
    Ok(x.row_iter()
        .map(|r| mean_se(r.iter().map(|v| v.to_f64()).collect::<Vec<_>>().into_iter()))
        .collect())
}

/// The variance of each coordinate, from `n` draws (the unbiased sample
/// variance; its standard error from the fourth central moment).
pub fn estimate_variance<T: Real>(
    d: &dyn Distribution<T>,
    n: usize,
    rng: &mut dyn Rng,
) -> Result<Vec<Estimate>, Error> {
    at_least_two(n, "estimate_variance")?;
    let x = d.sample(n, rng);
    let nf = n as f64;
    Ok(x.row_iter()
        .map(|r| {
            let v: Vec<f64> = r.iter().map(|v| v.to_f64()).collect();
            let mean = v.iter().sum::<f64>() / nf;
            let m2 = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / nf;
            let m4 = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / nf;
            Estimate {
                value: m2 * nf / (nf - 1.0),
                // Var(s²) ≈ (μ₄ − σ⁴)/n for large n.
                standard_error: ((m4 - m2 * m2) / nf).max(0.0).sqrt(),
            }
        })
        .collect())
}

/// The differential entropy `−E[log p(x)]`, from `n` draws.
///
/// ```
/// use normflow::distribution::{Normal, Summary, estimate_entropy};
/// use rand::SeedableRng;
/// let d = Normal::<f64>::scalar(0.3, 0.8)?;
/// let h = estimate_entropy(&d, 20_000, &mut rand::rngs::StdRng::seed_from_u64(1))?;
/// assert!((h.value - d.entropy()).abs() < 4.0 * h.standard_error);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn estimate_entropy<T: Real>(
    d: &dyn Distribution<T>,
    n: usize,
    rng: &mut dyn Rng,
) -> Result<Estimate, Error> {
    at_least_two(n, "estimate_entropy")?;
    let (_, lp) = d.sample_and_log_prob(n, rng);
    Ok(mean_se(lp.iter().map(|v| -v.to_f64())))
}

/// `KL(p ‖ q) = E_p[log p(x) − log q(x)]`, from `n` draws of `p`. Errors
/// if the dimensions differ. Infinite when `q` has no mass at a draw of `p`.
pub fn estimate_kl<T: Real>(
    p: &dyn Distribution<T>,
    q: &dyn Distribution<T>,
    n: usize,
    rng: &mut dyn Rng,
) -> Result<Estimate, Error> {
    at_least_two(n, "estimate_kl")?;
    crate::error::check::same_dim("estimate_kl", "q", p.dim(), q.dim())?;
    let (x, lp) = p.sample_and_log_prob(n, rng);
    let lq = q.log_prob(&x);
    Ok(mean_se(
        lp.iter()
            .zip(lq.iter())
            .map(|(a, b)| a.to_f64() - b.to_f64()),
    ))
}
