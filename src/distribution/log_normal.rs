use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::summary::{in_unit, per_entry};
use super::{Distribution, Marginals, Summary, normal_quantile, standard_normal_matrix};
use crate::Real;
use crate::bijector::assert_rows;

super::loc_scale::loc_scale_family! {
    /// Independent log-normal coordinates: `log xᵢ ~ N(μᵢ, σᵢ²)`, with
    /// `loc = μ` and `scale = σ` the parameters of the underlying normal
    /// (scipy's `lognorm(s = σ, scale = e^μ)`, TFP's `tfd.LogNormal(μ, σ)`).
    ///
    /// For `x > 0`, with `zᵢ = (log xᵢ − μᵢ)/σᵢ`,
    /// `log p(x) = Σᵢ [−½ zᵢ² − log σᵢ − ½ log 2π − log xᵢ]`; `-inf` when
    /// some `xᵢ ≤ 0`. Closed forms: [`Summary`] (mean `e^{μ + σ²/2}`,
    /// variance `(e^{σ²} − 1) e^{2μ + σ²}`, entropy
    /// `Σᵢ μᵢ + ½ log(2πe σᵢ²)`) and [`Marginals`] (the normal's CDF and
    /// quantile through `log x`).
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::prelude::*;
    /// let d = LogNormal::<f64>::scalar(0.3, 0.8)?;
    /// // scipy.stats.lognorm.logpdf(2.0, 0.8, scale=exp(0.3)) = -1.509695838686529
    /// assert!((d.log_prob_one(&[2.0]) + 1.509695838686529).abs() < 1e-14);
    /// assert_eq!(d.log_prob_one(&[-1.0]), f64::NEG_INFINITY);
    /// // The median is e^μ.
    /// let m = d.quantile(&DMatrix::from_element(1, 1, 0.5));
    /// assert!((m[(0, 0)] - 0.3_f64.exp()).abs() < 1e-15);
    /// assert!((d.mean()[0] - (0.3_f64 + 0.32).exp()).abs() < 1e-15);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    LogNormal / LogNormalRepr = "LogNormalRepr<T>";
    scalar:
    /// A one-dimensional log-normal, `log x ~ N(loc, scale²)` (TFP's
    /// `tfd.LogNormal(0.3, 0.8)`): [`LogNormal::new`] on one-element
    /// vectors, with the same checks (`scale` finite and positive, `loc`
    /// finite).
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = LogNormal::<f64>::scalar(0.0, 1.0)?;
    /// // At x = 1: −½ log 2π.
    /// assert!((d.log_prob_one(&[1.0]) + 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-15);
    /// assert!(LogNormal::<f64>::scalar(0.0, 0.0).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    from_slices:
    /// A `D`-dimensional log-normal with independent coordinates from
    /// slices of the underlying normal's locations and scales:
    /// [`LogNormal::new`] without building the vectors, with the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = LogNormal::<f64>::from_slices(&[0.0, 1.0], &[1.0, 0.5])?;
    /// assert_eq!(d.dim(), 2);
    /// assert!(LogNormal::<f64>::from_slices(&[0.0, 1.0], &[1.0]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    loc:
    /// The underlying normal's means `μ` (`log` of the medians).
    ;
    scale:
    /// The underlying normal's standard deviations `σ`.
    ;
}

impl<T: Real> Distribution<T> for LogNormal<T> {
    fn dim(&self) -> usize {
        self.loc.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("LogNormal::log_prob", self.loc.len(), x);
        // The normal's density at log x, times the Jacobian 1/x.
        super::normal::log_prob_through(&self.loc, &self.scale, x, |v| {
            (!v.is_nan_() && v > T::zero()).then(|| (v.ln(), -v.ln()))
        })
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let mut z = standard_normal_matrix::<T>(self.loc.len(), n, rng);
        for mut col in z.column_iter_mut() {
            for i in 0..col.len() {
                col[i] = (self.loc[i] + self.scale[i] * col[i]).exp();
            }
        }
        z
    }
    /// `−(1 + zᵢ/σᵢ)/xᵢ` with `zᵢ = (log xᵢ − μᵢ)/σᵢ`; `0` where `xᵢ ≤ 0`
    /// (zero density).
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("LogNormal::log_prob_grad", self.loc.len(), x);
        Some(DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let v = x[(i, j)];
            if v.is_nan_() || v <= T::zero() {
                return T::zero();
            }
            let z = (v.ln() - self.loc[i]) / self.scale[i];
            -(T::one() + z / self.scale[i]) / v
        }))
    }
}

impl<T: Real> Summary<T> for LogNormal<T> {
    /// `e^{μ + σ²/2}`.
    fn mean(&self) -> DVector<T> {
        self.loc
            .zip_map(&self.scale, |m, s| (m + T::lit(0.5) * s * s).exp())
    }
    /// `(e^{σ²} − 1) e^{2μ + σ²}`.
    fn variance(&self) -> DVector<T> {
        self.loc.zip_map(&self.scale, |m, s| {
            let s2 = s * s;
            s2.exp_m1() * (T::lit(2.0) * m + s2).exp()
        })
    }
    /// `Σᵢ μᵢ + ½ log(2πe σᵢ²)`.
    fn entropy(&self) -> T {
        let c = T::lit(0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln());
        self.loc
            .iter()
            .zip(self.scale.iter())
            .fold(T::zero(), |acc, (m, s)| acc + *m + c + s.ln())
    }
}

impl<T: Real> Marginals<T> for LogNormal<T> {
    /// `Φ((log x − μ)/σ)`, `0` for `x ≤ 0`.
    fn cdf(&self, x: &DMatrix<T>) -> DMatrix<T> {
        per_entry(x, &self.loc, &self.scale, |v, m, s| {
            if v.is_nan_() {
                return v;
            }
            if v <= T::zero() {
                return T::zero();
            }
            let z = ((v.ln() - m) / s).to_f64();
            T::lit(0.5 * libm::erfc(-z / std::f64::consts::SQRT_2))
        })
    }
    /// `exp(μ + σ Φ⁻¹(p))`: `0` at `p = 0`, `+∞` at `p = 1`.
    fn quantile(&self, p: &DMatrix<T>) -> DMatrix<T> {
        per_entry(p, &self.loc, &self.scale, |v, m, s| {
            (m + s * in_unit(v, normal_quantile)).exp()
        })
    }
}
