use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::special::{
    LnGammaVariate, digamma, inc_beta, inv_inc_beta, ln_beta, ln_gamma_half_ratio,
};
use super::summary::in_unit;
use super::{Distribution, Marginals, Summary, sanitize, standard_normal_matrix};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// Independent Student t coordinates with degrees of freedom `νᵢ > 0`,
/// locations `μᵢ` and scales `σᵢ` (scipy's `t(df, loc, scale)`, TFP's
/// `tfd.StudentT(df, loc, scale)`). With `zᵢ = (xᵢ − μᵢ)/σᵢ`,
///
/// `log p(x) = Σᵢ [ln Γ((νᵢ + 1)/2) − ln Γ(νᵢ/2) − ½ log(νᵢπ) − log σᵢ
///             − (νᵢ + 1)/2 · log(1 + zᵢ²/νᵢ)]`.
///
/// `ν = 1` is the Cauchy distribution; as `ν → ∞` it tends to the normal.
/// Sampling draws `μ + σ Z / √(χ²_ν / ν)` with the chi-square as twice a
/// gamma variate (taken in logs, so that small `ν` does not overflow).
///
/// Closed forms: [`Summary`] (mean `μ` for `ν > 1`; variance
/// `σ² ν/(ν − 2)` for `ν > 2`; entropy) and [`Marginals`] (CDF through the
/// regularised incomplete beta function, quantile by its inversion, in
/// closed form for `ν = 1` and `ν = 2`). Where a moment does not exist:
/// the variance is `+∞` for `1 < ν ≤ 2` (as scipy and TFP report it), and
/// both the mean and the variance are NaN, "undefined", for `ν ≤ 1` (TFP's
/// choice; scipy reports that mean as `+∞`, though the tails are symmetric).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// let d = StudentT::<f64>::scalar(3.0, 0.5, 2.0)?;
/// // scipy.stats.t.logpdf(1.7, 3.0, 0.5, 2.0) = -1.9206934007974614
/// assert!((d.log_prob_one(&[1.7]) + 1.9206934007974614).abs() < 1e-14);
/// // t.cdf(1.7, 3.0, 0.5, 2.0) = 0.7045993959730055
/// let p = d.cdf(&DMatrix::from_element(1, 1, 1.7));
/// assert!((p[(0, 0)] - 0.7045993959730055).abs() < 1e-14);
/// assert!((d.quantile(&p)[(0, 0)] - 1.7).abs() < 1e-12);
/// assert!((d.variance()[0] - 12.0).abs() < 1e-14); // σ² ν/(ν − 2)
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StudentTRepr<T>")]
pub struct StudentT<T: Real> {
    df: DVector<T>,
    loc: DVector<T>,
    scale: DVector<T>,
}

crate::checked_serde::checked_serde!(load_only StudentT, StudentTRepr {
    df: DVector<T>,
    loc: DVector<T>,
    scale: DVector<T>,
}, |r| StudentT::new(r.df, r.loc, r.scale));

impl<T: Real> StudentT<T> {
    /// Errors if `df`, `loc` and `scale` differ in length or are empty,
    /// `loc` has a non-finite entry, or `df` or `scale` an entry that is not
    /// finite and positive.
    pub fn new(df: DVector<T>, loc: DVector<T>, scale: DVector<T>) -> Result<Self, Error> {
        Self::checked("StudentT::new", df, loc, scale)
    }

    /// A one-dimensional Student t with `df` degrees of freedom, location
    /// `loc` and scale `scale` (TFP's `tfd.StudentT(3.0, 0.5, 2.0)`):
    /// [`StudentT::new`] on one-element vectors, with the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// // ν = 1: the Cauchy distribution, density 1/(πσ) at its centre.
    /// let d = StudentT::<f64>::scalar(1.0, 0.0, 2.0)?;
    /// assert!((d.log_prob_one(&[0.0]) + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-15);
    /// let err = StudentT::<f64>::scalar(0.0, 0.0, 1.0).unwrap_err();
    /// assert!(err.to_string().contains("`df[0]`"));
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn scalar(df: T, loc: T, scale: T) -> Result<Self, Error> {
        let one = |v| DVector::from_element(1, v);
        Self::checked("StudentT::scalar", one(df), one(loc), one(scale))
    }

    /// A `D`-dimensional Student t with independent coordinates from slices:
    /// [`StudentT::new`] without building the vectors, with the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = StudentT::<f64>::from_slices(&[2.5, 10.0], &[0.0, 1.0], &[1.0, 0.5])?;
    /// assert_eq!(d.dim(), 2);
    /// assert!(StudentT::<f64>::from_slices(&[2.5], &[0.0, 1.0], &[1.0, 0.5]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn from_slices(df: &[T], loc: &[T], scale: &[T]) -> Result<Self, Error> {
        Self::checked(
            "StudentT::from_slices",
            DVector::from_column_slice(df),
            DVector::from_column_slice(loc),
            DVector::from_column_slice(scale),
        )
    }

    fn checked(
        context: &str,
        df: DVector<T>,
        loc: DVector<T>,
        scale: DVector<T>,
    ) -> Result<Self, Error> {
        check::loc_scale(context, &loc, &scale)?;
        check::same_dim(context, "df", loc.len(), df.len())?;
        check::positive_vec(context, "df", &df)?;
        Ok(Self { df, loc, scale })
    }

    /// The degrees of freedom `ν`.
    pub fn df(&self) -> &DVector<T> {
        &self.df
    }

    /// The location vector `μ` (the median, and the mean when `ν > 1`).
    pub fn loc(&self) -> &DVector<T> {
        &self.loc
    }

    /// The scale vector `σ`.
    pub fn scale(&self) -> &DVector<T> {
        &self.scale
    }

    /// `ln Γ((ν + 1)/2) − ln Γ(ν/2) − ½ log(νπ) − log σ` of coordinate `i`.
    fn log_norm(&self, i: usize) -> T {
        let nu = self.df[i].to_f64();
        T::lit(ln_gamma_half_ratio(0.5 * nu) - 0.5 * (nu * std::f64::consts::PI).ln())
            - self.scale[i].ln()
    }
}

impl<T: Real> Distribution<T> for StudentT<T> {
    fn dim(&self) -> usize {
        self.loc.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("StudentT::log_prob", self.loc.len(), x);
        let c = (0..self.loc.len()).fold(T::zero(), |a, i| a + self.log_norm(i));
        let half = T::lit(0.5);
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                (0..col.len()).fold(c, |a, i| {
                    let nu = self.df[i];
                    let z = (col[i] - self.loc[i]) / self.scale[i];
                    a - half * (nu + T::one()) * log1p_square(z, nu)
                })
            }),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let gammas: Vec<LnGammaVariate> = self
            .df
            .iter()
            .map(|nu| LnGammaVariate::new(0.5 * nu.to_f64()))
            .collect();
        let ln_df: Vec<f64> = self.df.iter().map(|nu| nu.to_f64().ln()).collect();
        let mut z = standard_normal_matrix::<T>(self.loc.len(), n, rng);
        for mut col in z.column_iter_mut() {
            for i in 0..col.len() {
                // 1/√(χ²/ν) with χ² = 2G, G ~ Gamma(ν/2, 1).
                let ln_g = gammas[i].sample(rng);
                let inv = (-0.5 * (std::f64::consts::LN_2 + ln_g - ln_df[i])).exp();
                col[i] = self.loc[i] + self.scale[i] * col[i] * T::lit(inv);
            }
        }
        z
    }
    /// `−(νᵢ + 1) zᵢ / (σᵢ (νᵢ + zᵢ²))`.
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("StudentT::log_prob_grad", self.loc.len(), x);
        Some(DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let (nu, s) = (self.df[i], self.scale[i]);
            let z = (x[(i, j)] - self.loc[i]) / s;
            // z/(ν + z²), as 1/(z + ν/z) where z² could overflow.
            let r = if z.abs() > T::one() {
                T::one() / (z + nu / z)
            } else {
                z / (nu + z * z)
            };
            -(nu + T::one()) * r / s
        }))
    }
}

/// `log(1 + z²/ν)`, without overflow where `z²` would.
fn log1p_square<T: Real>(z: T, nu: T) -> T {
    let a = z.abs() / nu.sqrt();
    if a > T::one() {
        T::lit(2.0) * a.ln() + (T::one() / (a * a)).ln_1p()
    } else {
        (a * a).ln_1p()
    }
}

impl<T: Real> Summary<T> for StudentT<T> {
    /// `μ` where `ν > 1`, NaN (undefined) where `ν ≤ 1`.
    fn mean(&self) -> DVector<T> {
        self.loc
            .zip_map(&self.df, |m, nu| if nu > T::one() { m } else { T::nan() })
    }
    /// `σ² ν/(ν − 2)` where `ν > 2`, `+∞` where `1 < ν ≤ 2`, NaN
    /// (undefined) where `ν ≤ 1`.
    fn variance(&self) -> DVector<T> {
        let two = T::lit(2.0);
        self.scale.zip_map(&self.df, |s, nu| {
            if nu > two {
                s * s * nu / (nu - two)
            } else if nu > T::one() {
                T::infinity()
            } else {
                T::nan()
            }
        })
    }
    /// `Σᵢ log σᵢ + (νᵢ + 1)/2 [ψ((νᵢ + 1)/2) − ψ(νᵢ/2)] + log(√νᵢ B(νᵢ/2, ½))`;
    /// for `ν ≥ 100`, where that difference cancels, the expansion
    /// `½ log(2πe) + 1/ν + 1/(4ν²) − 1/(6ν³) − 1/(8ν⁴) + 3/(10ν⁵) + 1/(4ν⁶)`
    /// scipy uses.
    fn entropy(&self) -> T {
        let h = |nu: f64| {
            if nu >= 100.0 {
                let r = 1.0 / nu;
                0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln()
                    + r * (1.0
                        + r * (0.25 + r * (-1.0 / 6.0 + r * (-0.125 + r * (0.3 + r * 0.25)))))
            } else {
                let (half, half1) = (0.5 * nu, 0.5 * (nu + 1.0));
                half1 * (digamma(half1) - digamma(half)) + 0.5 * nu.ln() + ln_beta(half, 0.5)
            }
        };
        self.df
            .iter()
            .zip(self.scale.iter())
            .fold(T::zero(), |acc, (nu, s)| {
                acc + T::lit(h(nu.to_f64())) + s.ln()
            })
    }
}

/// `P(T ≤ t)` for the standard Student t with `ν` degrees of freedom:
/// `½ I_{ν/(ν + t²)}(ν/2, ½)` below zero, its complement above.
fn t_cdf(t: f64, nu: f64) -> f64 {
    if t.is_nan() {
        return t;
    }
    // x = ν/(ν + t²) and 1 − x = t²/(ν + t²), each computed directly.
    let t2 = t * t;
    let (x, y) = (1.0 / (1.0 + t2 / nu), 1.0 / (1.0 + nu / t2));
    let tail = 0.5 * inc_beta(0.5 * nu, 0.5, x, y).0;
    if t < 0.0 { tail } else { 1.0 - tail }
}

/// The quantile of the standard Student t, `p ∈ [0, 1]`: closed forms for
/// `ν = 1` (`−cot(πp)`) and `ν = 2` (`(2p − 1)/√(2p(1 − p))`), else the
/// inverse of the incomplete beta function on the smaller tail.
fn t_quantile(p: f64, nu: f64) -> f64 {
    let (q, sign) = if p < 0.5 { (p, -1.0) } else { (1.0 - p, 1.0) };
    if q == 0.5 {
        return 0.0;
    }
    if q == 0.0 {
        return sign * f64::INFINITY;
    }
    let magnitude = if nu == 1.0 {
        1.0 / (std::f64::consts::PI * q).tan()
    } else if nu == 2.0 {
        (1.0 - 2.0 * q) / (2.0 * q * (1.0 - q)).sqrt()
    } else {
        // I_x(ν/2, ½) = 2q with x = ν/(ν + t²), so t² = ν (1 − x)/x.
        let (x, y) = inv_inc_beta(0.5 * nu, 0.5, 2.0 * q, 1.0 - 2.0 * q);
        (nu * y / x).sqrt()
    };
    sign * magnitude
}

impl<T: Real> Marginals<T> for StudentT<T> {
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Marginals", self.loc.len(), x);
        DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let t = (x[(i, j)] - self.loc[i]) / self.scale[i];
            T::lit(t_cdf(t.to_f64(), self.df[i].to_f64()))
        })
    }
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Marginals", self.loc.len(), p);
        DMatrix::from_fn(p.nrows(), p.ncols(), |i, j| {
            let nu = self.df[i].to_f64();
            self.loc[i] + self.scale[i] * in_unit(p[(i, j)], |v| t_quantile(v, nu))
        })
    }
}
