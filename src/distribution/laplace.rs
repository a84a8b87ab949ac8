use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution as _, Exp1};

use super::{Distribution, sanitize};
use crate::Real;
use crate::bijector::assert_rows;

super::loc_scale::loc_scale_family! {
    /// Independent Laplace coordinates: `log p(x) = Σᵢ [−log(2 bᵢ) − |xᵢ − μᵢ| / bᵢ]`.
    ///
    /// Sampling uses the difference of two standard exponentials (rand_distr's `Exp1`).
    Laplace / LaplaceRepr = "LaplaceRepr<T>";
    scalar:
    /// A one-dimensional Laplace distribution with location `loc` and scale `b = scale` (TFP's `tfd.Laplace(0.0, 2.0)`): [`Laplace::new`] on
    /// one-element vectors, with the same checks (`scale` finite and
    /// positive, `loc` finite).
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Laplace::<f64>::scalar(0.0, 2.0)?;
    /// assert_eq!(d.dim(), 1);
    /// // −log(2b) at the median.
    /// assert!((d.log_prob_one(&[0.0]) + 4.0_f64.ln()).abs() < 1e-12);
    /// assert!(Laplace::<f64>::scalar(0.0, -1.0).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    from_slices:
    /// A `D`-dimensional Laplace with independent coordinates from slices of
    /// locations and scales: [`Laplace::new`] without building the vectors, with
    /// the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let d = Laplace::<f64>::from_slices(&[0.0, 1.0], &[1.0, 2.0])?;
    /// assert_eq!(d.dim(), 2);
    /// assert!(Laplace::<f64>::from_slices(&[0.0, 1.0], &[1.0]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ;
    loc:
    /// The location (median) vector.
    ;
    scale:
    /// The scale vector `b` (variance `2b²`).
    ;
}

impl<T: Real> Distribution<T> for Laplace<T> {
    fn dim(&self) -> usize {
        self.loc.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Laplace::log_prob", self.loc.len(), x);
        let two = T::lit(2.0);
        let c = self
            .scale
            .iter()
            .fold(T::zero(), |a, b| a - (two * *b).ln());
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                (0..col.len()).fold(c, |a, i| a - (col[i] - self.loc[i]).abs() / self.scale[i])
            }),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        DMatrix::from_fn(self.loc.len(), n, |i, _| {
            let e1: f64 = Exp1.sample(rng);
            let e2: f64 = Exp1.sample(rng);
            self.loc[i] + self.scale[i] * T::lit(e1 - e2)
        })
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("Laplace::log_prob_grad", self.loc.len(), x);
        // −sign(x − μ)/b (0 at the kink).
        Some(DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let d = x[(i, j)] - self.loc[i];
            if d > T::zero() {
                -T::one() / self.scale[i]
            } else if d < T::zero() {
                T::one() / self.scale[i]
            } else {
                T::zero()
            }
        }))
    }
}
