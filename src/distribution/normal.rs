use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Distribution, neg_half_ln_2pi, sanitize, standard_normal_matrix};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NormalRepr<T>")]
pub struct Normal<T: Real> {
    loc: DVector<T>,
    scale: DVector<T>,
}

/// The serialised form: deserialising goes through the same validation as
/// the constructor, so that a saved model cannot bypass it.
#[derive(Deserialize)]
struct NormalRepr<T: Real> {
    loc: DVector<T>,
    scale: DVector<T>,
}

impl<T: Real> TryFrom<NormalRepr<T>> for Normal<T> {
    type Error = Error;
    fn try_from(r: NormalRepr<T>) -> Result<Self, Error> {
        Normal::new(r.loc, r.scale)
    }
}

impl<T: Real> Normal<T> {
    /// Errors if `loc` and `scale` differ in length or are empty, `loc` has a
    /// non-finite entry, or `scale` has an entry that is not finite and positive.
    pub fn new(loc: DVector<T>, scale: DVector<T>) -> Result<Self, Error> {
        const CTX: &str = "Normal::new";
        check::loc_scale(CTX, &loc, &scale)?;
        Ok(Self { loc, scale })
    }

    /// The mean vector.
    pub fn loc(&self) -> &DVector<T> {
        &self.loc
    }

    /// The standard deviations.
    pub fn scale(&self) -> &DVector<T> {
        &self.scale
    }
}

impl<T: Real> Distribution<T> for Normal<T> {
    fn dim(&self) -> usize {
        self.loc.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Normal::log_prob", self.loc.len(), x);
        let c = self
            .scale
            .iter()
            .fold(T::zero(), |a, s| a + neg_half_ln_2pi::<T>() - s.ln());
        let half = T::lit(0.5);
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                let mut q = T::zero();
                for i in 0..col.len() {
                    let z = (col[i] - self.loc[i]) / self.scale[i];
                    q += z * z;
                }
                c - half * q
            }),
        ))
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
