use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::special::{LnGammaVariate, digamma, inc_beta, inv_inc_beta, ln_beta};
use super::summary::{in_unit, per_entry};
use super::{Distribution, Marginals, Summary, sanitize};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// Independent beta coordinates on the unit interval, with shapes `αᵢ > 0`
/// and `βᵢ > 0` (scipy's `beta(a, b)`, TFP's `tfd.Beta(concentration1 = α,
/// concentration0 = β)`):
///
/// `log p(x) = Σᵢ [(αᵢ − 1) log xᵢ + (βᵢ − 1) log(1 − xᵢ) − log B(αᵢ, βᵢ)]`
///
/// for `x ∈ (0, 1)^D`, `-inf` outside. At an endpoint the density's limit
/// is used where it is finite (`α = 1` at 0, `β = 1` at 1); where it is zero
/// or unbounded (`α < 1` at 0), `log_prob` is `-inf` there too.
///
/// Sampling draws `X/(X + Y)` with `X ~ Gamma(α)`, `Y ~ Gamma(β)`, as the
/// logistic of `log X − log Y` (so that small shapes neither underflow nor
/// give `0/0`). Closed forms: [`Summary`] (mean `α/(α + β)`, variance
/// `αβ/((α + β)²(α + β + 1))`, entropy
/// `log B(α, β) − (α − 1)ψ(α) − (β − 1)ψ(β) + (α + β − 2)ψ(α + β)`) and
/// [`Marginals`] (CDF `I_x(α, β)`, the regularised incomplete beta
/// function; quantile by its safeguarded Newton inversion).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// let d = Beta::<f64>::scalar(2.0, 5.0)?;
/// // scipy.stats.beta.logpdf(0.3, 2, 5) = 0.7705248015812898
/// assert!((d.log_prob_one(&[0.3]) - 0.7705248015812898).abs() < 1e-14);
/// assert_eq!(d.log_prob_one(&[1.5]), f64::NEG_INFINITY);
/// // beta.cdf(0.3, 2, 5) = 0.5798250000000003
/// let p = d.cdf(&DMatrix::from_element(1, 1, 0.3));
/// assert!((p[(0, 0)] - 0.5798250000000003).abs() < 1e-14);
/// assert!((d.quantile(&p)[(0, 0)] - 0.3).abs() < 1e-13);
/// assert!((d.mean()[0] - 2.0 / 7.0).abs() < 1e-15);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BetaRepr<T>")]
pub struct Beta<T: Real> {
    alpha: DVector<T>,
    beta: DVector<T>,
}

crate::checked_serde::checked_serde!(load_only Beta, BetaRepr {
    alpha: DVector<T>,
    beta: DVector<T>,
}, |r| Beta::new(r.alpha, r.beta));

impl<T: Real> Beta<T> {
    /// Errors if `alpha` and `beta` differ in length or are empty, or have
    /// an entry that is not finite and positive.
    pub fn new(alpha: DVector<T>, beta: DVector<T>) -> Result<Self, Error> {
        Self::checked("Beta::new", alpha, beta)
    }

    /// A one-dimensional beta distribution with shapes `alpha` and `beta`
    /// (TFP's `tfd.Beta(2.0, 5.0)`): [`Beta::new`] on one-element vectors,
    /// with the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// // Beta(1, 1) is the uniform distribution on [0, 1].
    /// let d = Beta::<f64>::scalar(1.0, 1.0)?;
    /// assert!(d.log_prob_one(&[0.7]).abs() < 1e-15);
    /// let err = Beta::<f64>::scalar(1.0, -2.0).unwrap_err();
    /// assert!(err.to_string().contains("`beta[0]`"));
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn scalar(alpha: T, beta: T) -> Result<Self, Error> {
        Self::checked(
            "Beta::scalar",
            DVector::from_element(1, alpha),
            DVector::from_element(1, beta),
        )
    }

    /// A `D`-dimensional beta distribution with independent coordinates
    /// from slices of shapes: [`Beta::new`] without building the vectors,
    /// with the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Beta::<f64>::from_slices(&[0.5, 2.0], &[0.5, 3.0])?;
    /// assert_eq!(d.dim(), 2);
    /// assert!(Beta::<f64>::from_slices(&[0.5, 2.0], &[0.5]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn from_slices(alpha: &[T], beta: &[T]) -> Result<Self, Error> {
        Self::checked(
            "Beta::from_slices",
            DVector::from_column_slice(alpha),
            DVector::from_column_slice(beta),
        )
    }

    fn checked(context: &str, alpha: DVector<T>, beta: DVector<T>) -> Result<Self, Error> {
        check::dim_at_least_one(context, "alpha", alpha.len())?;
        check::same_dim(context, "beta", alpha.len(), beta.len())?;
        check::positive_vec(context, "alpha", &alpha)?;
        check::positive_vec(context, "beta", &beta)?;
        Ok(Self { alpha, beta })
    }

    /// The shapes `α` (TFP's `concentration1`), the exponent of `x`.
    pub fn alpha(&self) -> &DVector<T> {
        &self.alpha
    }

    /// The shapes `β` (TFP's `concentration0`), the exponent of `1 − x`.
    pub fn beta(&self) -> &DVector<T> {
        &self.beta
    }
}

/// `(a − 1) log v`, with `0` when `a = 1` (also at `v = 0`).
fn power_term<T: Real>(a: T, log_v: T) -> T {
    if a == T::one() {
        T::zero()
    } else {
        (a - T::one()) * log_v
    }
}

impl<T: Real> Distribution<T> for Beta<T> {
    fn dim(&self) -> usize {
        self.alpha.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Beta::log_prob", self.alpha.len(), x);
        let c = self
            .alpha
            .iter()
            .zip(self.beta.iter())
            .fold(T::zero(), |acc, (a, b)| {
                acc - T::lit(ln_beta(a.to_f64(), b.to_f64()))
            });
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                let mut acc = c;
                for i in 0..col.len() {
                    let v = col[i];
                    if !(v >= T::zero() && v <= T::one()) {
                        return T::neg_infinity();
                    }
                    acc +=
                        power_term(self.alpha[i], v.ln()) + power_term(self.beta[i], (-v).ln_1p());
                }
                acc
            }),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let d = self.alpha.len();
        let gammas: Vec<(LnGammaVariate, LnGammaVariate)> = (0..d)
            .map(|i| {
                (
                    LnGammaVariate::new(self.alpha[i].to_f64()),
                    LnGammaVariate::new(self.beta[i].to_f64()),
                )
            })
            .collect();
        DMatrix::from_fn(d, n, |i, _| {
            let (gx, gy) = &gammas[i];
            // X/(X + Y) = σ(log X − log Y).
            let lx = gx.sample(rng);
            let ly = gy.sample(rng);
            T::lit(lx - ly).sigmoid()
        })
    }
    /// `(αᵢ − 1)/xᵢ − (βᵢ − 1)/(1 − xᵢ)` inside `(0, 1)`; `0` outside and
    /// at the endpoints.
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("Beta::log_prob_grad", self.alpha.len(), x);
        Some(DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let v = x[(i, j)];
            if !(v > T::zero() && v < T::one()) {
                return T::zero();
            }
            (self.alpha[i] - T::one()) / v - (self.beta[i] - T::one()) / (T::one() - v)
        }))
    }
}

impl<T: Real> Summary<T> for Beta<T> {
    /// `α/(α + β)`.
    fn mean(&self) -> DVector<T> {
        self.alpha.zip_map(&self.beta, |a, b| a / (a + b))
    }
    /// `αβ/((α + β)²(α + β + 1))`.
    fn variance(&self) -> DVector<T> {
        self.alpha.zip_map(&self.beta, |a, b| {
            let s = a + b;
            a * b / (s * s * (s + T::one()))
        })
    }
    /// `Σᵢ log B(αᵢ, βᵢ) − (αᵢ − 1)ψ(αᵢ) − (βᵢ − 1)ψ(βᵢ) + (αᵢ + βᵢ − 2)ψ(αᵢ + βᵢ)`.
    fn entropy(&self) -> T {
        self.alpha
            .iter()
            .zip(self.beta.iter())
            .fold(T::zero(), |acc, (a, b)| {
                let (a, b) = (a.to_f64(), b.to_f64());
                acc + T::lit(
                    ln_beta(a, b) - (a - 1.0) * digamma(a) - (b - 1.0) * digamma(b)
                        + (a + b - 2.0) * digamma(a + b),
                )
            })
    }
}

impl<T: Real> Marginals<T> for Beta<T> {
    /// `I_x(α, β)`: `0` for `x ≤ 0`, `1` for `x ≥ 1`.
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T> {
        per_entry(x, &self.alpha, &self.beta, |v, a, b| {
            let v = v.to_f64();
            T::lit(inc_beta(a.to_f64(), b.to_f64(), v, 1.0 - v).0)
        })
    }
    /// The `x` with `I_x(α, β) = p`.
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T> {
        per_entry(p, &self.alpha, &self.beta, |v, a, b| {
            in_unit(v, |p| inv_inc_beta(a.to_f64(), b.to_f64(), p, 1.0 - p).0)
        })
    }
}
