use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Distribution, open01};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// The uniform distribution on the box `[low₁, high₁] × … × [low_D, high_D]`.
///
/// `log p(x) = −Σᵢ log(highᵢ − lowᵢ)` inside the box and `-inf` outside it.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// let u = Uniform::new(DVector::from_vec(vec![0.0_f64]), DVector::from_vec(vec![4.0]))?;
/// assert!((u.log_prob(&DMatrix::from_element(1, 1, 1.0))[0] + 4.0_f64.ln()).abs() < 1e-15);
/// assert_eq!(u.log_prob(&DMatrix::from_element(1, 1, 5.0))[0], f64::NEG_INFINITY);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UniformRepr<T>")]
pub struct Uniform<T: Real> {
    low: DVector<T>,
    high: DVector<T>,
}

crate::checked_serde::checked_serde!(load_only Uniform, UniformRepr {
    low: DVector<T>,
    high: DVector<T>,
}, |r| Uniform::new(r.low, r.high));

impl<T: Real> Uniform<T> {
    /// Errors if the bounds differ in length, are empty or non-finite, or
    /// `lowᵢ >= highᵢ` for some `i`.
    pub fn new(low: DVector<T>, high: DVector<T>) -> Result<Self, Error> {
        Self::checked("Uniform::new", low, high)
    }

    /// The uniform distribution on the interval `[low, high]` (TFP's
    /// `tfd.Uniform(0.0, 4.0)`): [`Uniform::new`] on one-element vectors,
    /// with the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let u = Uniform::<f64>::scalar(0.0, 4.0)?;
    /// assert!((u.log_prob_one(&[1.0]) + 4.0_f64.ln()).abs() < 1e-15);
    /// assert!(Uniform::<f64>::scalar(1.0, 1.0).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn scalar(low: T, high: T) -> Result<Self, Error> {
        Self::checked(
            "Uniform::scalar",
            DVector::from_element(1, low),
            DVector::from_element(1, high),
        )
    }

    /// The uniform distribution on a `D`-dimensional box given by slices of
    /// lower and upper bounds: [`Uniform::new`] without building the
    /// vectors, with the same checks.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let u = Uniform::<f64>::from_slices(&[0.0, -1.0], &[2.0, 1.0])?;
    /// assert!((u.log_prob_one(&[1.0, 0.0]) + 4.0_f64.ln()).abs() < 1e-15);
    /// assert!(Uniform::<f64>::from_slices(&[0.0], &[2.0, 1.0]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn from_slices(low: &[T], high: &[T]) -> Result<Self, Error> {
        Self::checked(
            "Uniform::from_slices",
            DVector::from_column_slice(low),
            DVector::from_column_slice(high),
        )
    }

    fn checked(context: &str, low: DVector<T>, high: DVector<T>) -> Result<Self, Error> {
        check::dim_at_least_one(context, "low", low.len())?;
        check::same_dim(context, "high", low.len(), high.len())?;
        check::finite_vec(context, "low", &low)?;
        check::finite_vec(context, "high", &high)?;
        for i in 0..low.len() {
            if low[i] >= high[i] {
                return Err(check::invalid(
                    context,
                    &format!("high[{i}]"),
                    &format!("greater than low[{i}] = {}", low[i]),
                    high[i],
                ));
            }
        }
        Ok(Self { low, high })
    }

    /// Lower corner of the box.
    pub fn low(&self) -> &DVector<T> {
        &self.low
    }

    /// Upper corner of the box.
    pub fn high(&self) -> &DVector<T> {
        &self.high
    }
}

impl<T: Real> Distribution<T> for Uniform<T> {
    fn dim(&self) -> usize {
        self.low.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Uniform::log_prob", self.low.len(), x);
        let inside =
            -(0..self.low.len()).fold(T::zero(), |a, i| a + (self.high[i] - self.low[i]).ln());
        DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                // NaN fails both comparisons and so lands outside.
                let ok = (0..col.len()).all(|i| col[i] >= self.low[i] && col[i] <= self.high[i]);
                if ok { inside } else { T::neg_infinity() }
            }),
        )
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let d = self.low.len();
        DMatrix::from_fn(d, n, |i, _| {
            let u = T::lit(open01(rng));
            self.low[i] + u * (self.high[i] - self.low[i])
        })
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("Uniform::log_prob_grad", self.low.len(), x);
        // Flat inside the box, −∞ (constant) outside.
        Some(DMatrix::zeros(x.nrows(), x.ncols()))
    }
}
