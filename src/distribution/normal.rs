use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{Distribution, neg_half_ln_2pi, sanitize, standard_normal_matrix};
use crate::Real;
use crate::bijector::assert_rows;

super::loc_scale::loc_scale_family! {
    /// A normal distribution with independent coordinates (diagonal covariance):
    /// `xᵢ ~ N(locᵢ, scaleᵢ²)`.
    ///
    /// `log p(x) = Σᵢ [−½ ((xᵢ − μᵢ)/σᵢ)² − log σᵢ − ½ log 2π]`.
    ///
    /// ```
    /// use nalgebra::{DMatrix, DVector};
    /// use normflow::prelude::*;
    /// let d = Normal::new(DVector::from_vec(vec![3.0_f64]), DVector::from_vec(vec![2.0]))?;
    /// // At the mean: −log σ − ½ log 2π.
    /// let lp = d.log_prob(&DMatrix::from_element(1, 1, 3.0));
    /// assert!((lp[0] - (-(2.0_f64).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln())).abs() < 1e-12);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    Normal / NormalRepr = "NormalRepr<T>";
    scalar:
    /// A one-dimensional normal `N(loc, scale²)` (TFP's `tfd.Normal(0.3, 0.8)`): [`Normal::new`] on
    /// one-element vectors, with the same checks (`scale` finite and
    /// positive, `loc` finite).
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Normal::<f64>::scalar(0.3, 0.8)?;
    /// assert_eq!(d.dim(), 1);
    /// // −½ log 2π − log σ at the mean.
    /// let want = -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.8_f64.ln();
    /// assert!((d.log_prob_one(&[0.3]) - want).abs() < 1e-12);
    /// assert!(Normal::<f64>::scalar(0.0, -1.0).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    from_slices:
    /// A `D`-dimensional Normal with independent coordinates from slices of
    /// locations and standard deviations: [`Normal::new`] without building the vectors, with
    /// the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Normal::<f64>::from_slices(&[0.0, 1.0], &[1.0, 2.0])?;
    /// assert_eq!(d.dim(), 2);
    /// assert!(Normal::<f64>::from_slices(&[0.0, 1.0], &[1.0]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    loc:
    /// The mean vector.
    ;
    scale:
    /// The standard deviations.
    ;
}

impl<T: Real> Distribution<T> for Normal<T> {
    fn dim(&self) -> usize {
        self.loc.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Normal::log_prob", self.loc.len(), x);
        log_prob_through(&self.loc, &self.scale, x, |v| Some((v, T::zero())))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let mut z = standard_normal_matrix::<T>(self.loc.len(), n, rng);
        for mut col in z.column_iter_mut() {
            col.component_mul_assign(&self.scale);
            col += &self.loc;
        }
        z
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("Normal::log_prob_grad", self.loc.len(), x);
        // −(x − μ)/σ².
        Some(DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            -(x[(i, j)] - self.loc[i]) / (self.scale[i] * self.scale[i])
        }))
    }
}

/// The log-density of independent normals `N(μᵢ, σᵢ²)` at `u = g(x)`, plus
/// `Σᵢ log|g′(xᵢ)|`, per column of `x`: `g` maps each coordinate to
/// `Some((u, log|g′|))`, or `None` outside its domain (the column's density
/// is then zero, `−∞`). With `g` the identity this is the normal's own
/// log-density; with `log` the log-normal's.
pub(super) fn log_prob_through<T: Real>(
    loc: &DVector<T>,
    scale: &DVector<T>,
    x: &DMatrix<T>,
    g: impl Fn(T) -> Option<(T, T)>,
) -> DVector<T> {
    let c = scale
        .iter()
        .fold(T::zero(), |a, s| a + neg_half_ln_2pi::<T>() - s.ln());
    let half = T::lit(0.5);
    sanitize(DVector::from_iterator(
        x.ncols(),
        x.column_iter().map(|col| {
            let (mut q, mut log_jac) = (T::zero(), T::zero());
            for i in 0..col.len() {
                let Some((u, l)) = g(col[i]) else {
                    return T::neg_infinity();
                };
                let z = (u - loc[i]) / scale[i];
                q += z * z;
                log_jac += l;
            }
            c - half * q + log_jac
        }),
    ))
}
