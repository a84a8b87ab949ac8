use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Distribution, neg_half_ln_2pi, sanitize, standard_normal_matrix};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// The standard normal `N(0, I_D)`: the usual base of a flow.
///
/// Not generic: it is a `Distribution<T>` for every `T: Real`.
/// `log p(x) = −½ ‖x‖² − (D/2) log(2π)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StandardNormalRepr", into = "StandardNormalRepr")]
pub struct StandardNormal {
    dim: usize,
}

#[derive(Serialize, Deserialize)]
struct StandardNormalRepr {
    dim: usize,
}

impl TryFrom<StandardNormalRepr> for StandardNormal {
    type Error = Error;
    fn try_from(r: StandardNormalRepr) -> Result<Self, Error> {
        StandardNormal::new(r.dim)
    }
}

impl From<StandardNormal> for StandardNormalRepr {
    fn from(s: StandardNormal) -> Self {
        StandardNormalRepr { dim: s.dim }
    }
}

impl StandardNormal {
    /// `N(0, I)` in `dim` dimensions; errors if `dim == 0`.
    pub fn new(dim: usize) -> Result<Self, Error> {
        check::dim_at_least_one("StandardNormal::new", "dim", dim)?;
        Ok(Self { dim })
    }
}

impl<T: Real> Distribution<T> for StandardNormal {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("StandardNormal::log_prob", self.dim, x);
        let c = neg_half_ln_2pi::<T>() * T::lit(self.dim as f64);
        let half = T::lit(0.5);
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| c - half * col.norm_squared()),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        standard_normal_matrix(self.dim, n, rng)
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("StandardNormal::log_prob_grad", self.dim, x);
        Some(-x)
    }
}
