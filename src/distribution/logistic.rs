use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{Distribution, open01, sanitize};
use crate::Real;
use crate::bijector::assert_rows;

super::loc_scale::loc_scale_family! {
    /// Independent logistic coordinates: with `z = (x − μ)/s`,
    /// `log p(x) = Σᵢ [−zᵢ − log sᵢ − 2 softplus(−zᵢ)]` (stable for large `|z|`).
    ///
    /// Sampling inverts the CDF: `x = μ + s log(u / (1 − u))`, `u ~ U(0, 1)`.
    Logistic / LogisticRepr = "LogisticRepr<T>";
    scalar:
    /// A one-dimensional logistic distribution with location `loc` and scale `s = scale` (TFP's `tfd.Logistic(1.0, 0.5)`): [`Logistic::new`] on
    /// one-element vectors, with the same checks (`scale` finite and
    /// positive, `loc` finite).
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Logistic::<f64>::scalar(1.0, 0.5)?;
    /// assert_eq!(d.dim(), 1);
    /// // −log(4 s) at the mean.
    /// assert!((d.log_prob_one(&[1.0]) + 2.0_f64.ln()).abs() < 1e-12);
    /// assert!(Logistic::<f64>::scalar(0.0, -1.0).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    from_slices:
    /// A `D`-dimensional Logistic with independent coordinates from slices of
    /// locations and scales: [`Logistic::new`] without building the vectors, with
    /// the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Logistic::<f64>::from_slices(&[0.0, 1.0], &[1.0, 2.0])?;
    /// assert_eq!(d.dim(), 2);
    /// assert!(Logistic::<f64>::from_slices(&[0.0, 1.0], &[1.0]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    loc:
    /// The location (mean) vector.
    ;
    scale:
    /// The scale vector `s` (variance `s² π² / 3`).
    ;
}

impl<T: Real> Distribution<T> for Logistic<T> {
    fn dim(&self) -> usize {
        self.loc.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Logistic::log_prob", self.loc.len(), x);
        let two = T::lit(2.0);
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                (0..col.len()).fold(T::zero(), |a, i| {
                    let z = (col[i] - self.loc[i]) / self.scale[i];
                    a - z - self.scale[i].ln() - two * (-z).softplus()
                })
            }),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        DMatrix::from_fn(self.loc.len(), n, |i, _| {
            let u = open01(rng);
            self.loc[i] + self.scale[i] * T::lit((u / (1.0 - u)).ln())
        })
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("Logistic::log_prob_grad", self.loc.len(), x);
        // d/dz [−z − 2 softplus(−z)] = 1 − 2σ(z), divided by s.
        Some(DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let z = (x[(i, j)] - self.loc[i]) / self.scale[i];
            (T::one() - T::lit(2.0) * z.sigmoid()) / self.scale[i]
        }))
    }
}
