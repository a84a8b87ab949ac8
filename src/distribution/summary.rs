//! Closed forms where they exist: moments, entropy, marginal CDFs and
//! quantiles, and KL divergences.
//!
//! Formulas per coordinate (`z = (x − μ)/s`), as scipy.stats states them:
//!
//! | | mean | variance | entropy | CDF |
//! |---|---|---|---|---|
//! | `Normal(μ, σ)` | `μ` | `σ²` | `½ log(2πeσ²)` | `½ erfc(−z/√2)` |
//! | `Laplace(μ, b)` | `μ` | `2b²` | `1 + log 2b` | `½ e^{z}` or `1 − ½ e^{−z}` |
//! | `Logistic(μ, s)` | `μ` | `s²π²/3` | `log s + 2` | `1/(1 + e^{−z})` |
//! | `Uniform(a, b)` | `(a + b)/2` | `(b − a)²/12` | `log(b − a)` | `(x − a)/(b − a)` |
//!
//! The entropy of a product is the sum over coordinates.

use nalgebra::{DMatrix, DVector};

use super::{Distribution, Laplace, Logistic, MultivariateNormal, Normal, Uniform};
use crate::{Error, Real};

/// The mean, variance and (differential) entropy of a distribution in
/// closed form.
///
/// ```
/// use normflow::distribution::{Normal, Summary};
/// let d = Normal::<f64>::scalar(0.3, 0.8)?;
/// assert_eq!(d.mean()[0], 0.3);
/// assert!((d.variance()[0] - 0.64).abs() < 1e-15);
/// // scipy.stats.norm.entropy(0.3, 0.8) = 1.195794981890463
/// assert!((d.entropy() - 1.195794981890463).abs() < 1e-14);
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait Summary<T: Real>: Distribution<T> {
    /// The mean of each coordinate.
    fn mean(&self) -> DVector<T>;
    /// The variance of each coordinate.
    fn variance(&self) -> DVector<T>;
    /// The differential entropy `−E[log p(x)]`, in nats.
    fn entropy(&self) -> T;
}

/// The marginal CDF and quantile function of each coordinate of a
/// distribution with independent coordinates.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::distribution::{Marginals, Normal};
/// let d = Normal::<f64>::scalar(0.3, 0.8)?;
/// let p = d.cdf(&DMatrix::from_element(1, 1, 0.7));
/// // scipy.stats.norm.cdf(0.7, 0.3, 0.8) = 0.691462461274013
/// assert!((p[(0, 0)] - 0.691462461274013).abs() < 1e-15);
/// assert!((d.quantile(&p)[(0, 0)] - 0.7).abs() < 1e-14);
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait Marginals<T: Real>: Distribution<T> {
    /// `P(Xᵢ ≤ xᵢ)` for every entry of `x` (`D × n`).
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T>;
    /// The inverse of [`cdf`](Marginals::cdf) for every entry of `p`
    /// (`D × n`, entries in `[0, 1]`; outside, NaN).
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T>;
}

/// `KL(self ‖ other) = E_self[log self(x) − log other(x)]` in closed form.
///
/// ```
/// use normflow::distribution::{KlDivergence, Normal};
/// let p = Normal::<f64>::scalar(0.3, 0.8)?;
/// let q = Normal::<f64>::scalar(-0.5, 1.7)?;
/// // log(σ₂/σ₁) + (σ₁² + (μ₁ − μ₂)²)/(2σ₂²) − ½ = 0.4752250895736121
/// assert!((p.kl_divergence(&q)? - 0.4752250895736121).abs() < 1e-15);
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait KlDivergence<T: Real, Rhs = Self> {
    /// The divergence in nats; an error if the dimensions differ.
    fn kl_divergence(&self, other: &Rhs) -> Result<T, Error>;
}

/// `f(value, parameter₁, parameter₂)` on every entry, the parameters of its row.
pub(super) fn per_entry<T: Real>(
    x: &DMatrix<T>,
    a: &DVector<T>,
    b: &DVector<T>,
    f: impl Fn(T, T, T) -> T,
) -> DMatrix<T> {
    crate::batch::assert_rows("Marginals", a.len(), x);
    DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| f(x[(i, j)], a[i], b[i]))
}

/// `f(p)` for `p ∈ [0, 1]`, NaN outside.
pub(super) fn in_unit<T: Real>(p: T, f: impl FnOnce(f64) -> f64) -> T {
    let v = p.to_f64();
    if (0.0..=1.0).contains(&v) {
        T::lit(f(v))
    } else {
        T::nan()
    }
}

/// `Φ⁻¹(p)`: Acklam's rational approximation (relative error 1.15e-9),
/// refined by one Halley step on `erfc`, to about machine precision.
pub(crate) fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // Halley's step on Φ(x) − p (Acklam's refinement).
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

impl<T: Real> Summary<T> for Normal<T> {
    fn mean(&self) -> DVector<T> {
        self.loc().clone()
    }
    fn variance(&self) -> DVector<T> {
        self.scale().map(|s| s * s)
    }
    fn entropy(&self) -> T {
        let c = T::lit(0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln());
        self.scale()
            .iter()
            .fold(T::zero(), |acc, s| acc + c + s.ln())
    }
}

impl<T: Real> Marginals<T> for Normal<T> {
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T> {
        per_entry(x, self.loc(), self.scale(), |v, m, s| {
            let z = ((v - m) / s).to_f64();
            T::lit(0.5 * libm::erfc(-z / std::f64::consts::SQRT_2))
        })
    }
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T> {
        per_entry(p, self.loc(), self.scale(), |v, m, s| {
            m + s * in_unit(v, normal_quantile)
        })
    }
}

impl<T: Real> Summary<T> for Laplace<T> {
    fn mean(&self) -> DVector<T> {
        self.loc().clone()
    }
    fn variance(&self) -> DVector<T> {
        self.scale().map(|b| T::lit(2.0) * b * b)
    }
    fn entropy(&self) -> T {
        self.scale()
            .iter()
            .fold(T::zero(), |acc, b| acc + T::one() + (T::lit(2.0) * *b).ln())
    }
}

impl<T: Real> Marginals<T> for Laplace<T> {
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T> {
        per_entry(x, self.loc(), self.scale(), |v, m, b| {
            let z = (v - m) / b;
            if z < T::zero() {
                T::lit(0.5) * z.exp()
            } else {
                T::one() - T::lit(0.5) * (-z).exp()
            }
        })
    }
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T> {
        per_entry(p, self.loc(), self.scale(), |v, m, b| {
            let z = in_unit(v, |p| {
                if p < 0.5 {
                    (2.0 * p).ln()
                } else {
                    -(2.0 * (1.0 - p)).ln()
                }
            });
            m + b * z
        })
    }
}

impl<T: Real> Summary<T> for Logistic<T> {
    fn mean(&self) -> DVector<T> {
        self.loc().clone()
    }
    fn variance(&self) -> DVector<T> {
        let c = T::lit(std::f64::consts::PI * std::f64::consts::PI / 3.0);
        self.scale().map(|s| c * s * s)
    }
    fn entropy(&self) -> T {
        self.scale()
            .iter()
            .fold(T::zero(), |acc, s| acc + s.ln() + T::lit(2.0))
    }
}

impl<T: Real> Marginals<T> for Logistic<T> {
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T> {
        per_entry(x, self.loc(), self.scale(), |v, m, s| {
            ((v - m) / s).sigmoid()
        })
    }
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T> {
        per_entry(p, self.loc(), self.scale(), |v, m, s| {
            m + s * in_unit(v, |p| (p / (1.0 - p)).ln())
        })
    }
}

impl<T: Real> Summary<T> for Uniform<T> {
    fn mean(&self) -> DVector<T> {
        (self.low() + self.high()) * T::lit(0.5)
    }
    fn variance(&self) -> DVector<T> {
        (self.high() - self.low()).map(|w| w * w / T::lit(12.0))
    }
    fn entropy(&self) -> T {
        (self.high() - self.low())
            .iter()
            .fold(T::zero(), |acc, w| acc + w.ln())
    }
}

impl<T: Real> Marginals<T> for Uniform<T> {
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T> {
        per_entry(x, self.low(), self.high(), |v, a, b| {
            ((v - a) / (b - a)).max(T::zero()).min(T::one())
        })
    }
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T> {
        per_entry(p, self.low(), self.high(), |v, a, b| {
            a + (b - a) * in_unit(v, |p| p)
        })
    }
}

impl<T: Real> Summary<T> for MultivariateNormal<T> {
    fn mean(&self) -> DVector<T> {
        self.loc().clone()
    }
    fn variance(&self) -> DVector<T> {
        self.covariance().diagonal()
    }
    /// `½ log det(2πe Σ) = D/2 · log(2πe) + Σᵢ log Lᵢᵢ`.
    fn entropy(&self) -> T {
        let d = self.loc().len() as f64;
        let log_det_l = self
            .covariance()
            .cholesky()
            .map_or(T::nan(), |c| c.l().diagonal().map(|v| v.ln()).sum());
        T::lit(0.5 * d * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln()) + log_det_l
    }
}

fn same_dim(p: usize, q: usize) -> Result<(), Error> {
    crate::error::check::same_dim("kl_divergence", "other", p, q)
}

impl<T: Real> KlDivergence<T> for Normal<T> {
    /// `Σᵢ log(σ₂/σ₁) + (σ₁² + (μ₁ − μ₂)²)/(2σ₂²) − ½`.
    fn kl_divergence(&self, q: &Normal<T>) -> Result<T, Error> {
        same_dim(self.loc().len(), q.loc().len())?;
        let half = T::lit(0.5);
        Ok((0..self.loc().len()).fold(T::zero(), |acc, i| {
            let (m1, s1, m2, s2) = (self.loc()[i], self.scale()[i], q.loc()[i], q.scale()[i]);
            let dm = m1 - m2;
            acc + (s2 / s1).ln() + (s1 * s1 + dm * dm) / (T::lit(2.0) * s2 * s2) - half
        }))
    }
}

impl<T: Real> KlDivergence<T> for MultivariateNormal<T> {
    /// `½ [tr(Σ₂⁻¹Σ₁) + (μ₂ − μ₁)ᵀ Σ₂⁻¹ (μ₂ − μ₁) − D + log det Σ₂ − log det Σ₁]`.
    fn kl_divergence(&self, q: &MultivariateNormal<T>) -> Result<T, Error> {
        same_dim(self.loc().len(), q.loc().len())?;
        let (s1, s2) = (self.covariance(), q.covariance());
        let (c1, c2) = match (s1.clone().cholesky(), s2.cholesky()) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(Error::NotPositiveDefinite {
                    context: "kl_divergence".into(),
                    argument: "covariance".into(),
                    reason: "the Cholesky factorisation of a covariance failed".into(),
                });
            }
        };
        let d = self.loc().len();
        let trace = c2.solve(&s1).trace();
        let dm = q.loc() - self.loc();
        let maha = dm.dot(&c2.solve(&dm));
        let log_det = |c: &nalgebra::Cholesky<T, nalgebra::Dyn>| -> T {
            T::lit(2.0) * c.l().diagonal().map(|v| v.ln()).sum()
        };
        Ok(T::lit(0.5) * (trace + maha - T::lit(d as f64) + log_det(&c2) - log_det(&c1)))
    }
}

impl<T: Real> KlDivergence<T> for Uniform<T> {
    /// `Σᵢ log((b₂ − a₂)/(b₁ − a₁))` when the first box lies inside the
    /// second, else `+∞` (the first puts mass where the second has none).
    fn kl_divergence(&self, q: &Uniform<T>) -> Result<T, Error> {
        same_dim(self.low().len(), q.low().len())?;
        let mut acc = T::zero();
        for i in 0..self.low().len() {
            let (a1, b1, a2, b2) = (self.low()[i], self.high()[i], q.low()[i], q.high()[i]);
            if a1 < a2 || b1 > b2 {
                return Ok(T::infinity());
            }
            acc += ((b2 - a2) / (b1 - a1)).ln();
        }
        Ok(acc)
    }
}
