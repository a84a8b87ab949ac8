use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

/// A fixed permutation of coordinates: `y[i] = x[permutation[i]]` (as TFP's
/// `Permute`). Volume preserving: the log-determinant is 0.
///
/// Used between autoregressive or coupling layers so that every coordinate
/// gets transformed and conditioned on.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// let p = Permute::new(vec![2, 0, 1])?;
/// let x = DMatrix::from_column_slice(3, 1, &[10.0_f64, 20.0, 30.0]);
/// assert_eq!(p.forward(&x).as_slice(), &[30.0, 10.0, 20.0]);
/// assert!(Permute::new(vec![0, 0, 1]).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<usize>", into = "Vec<usize>")]
pub struct Permute {
    permutation: Vec<usize>,
    inverse: Vec<usize>,
}

impl Permute {
    /// The permutation `y[i] = x[permutation[i]]`; errors unless `permutation`
    /// holds each of `0..D` exactly once (and `D ≥ 1`).
    pub fn new(permutation: Vec<usize>) -> Result<Self, Error> {
        check::dim_at_least_one("Permute::new", "permutation", permutation.len())?;
        let d = permutation.len();
        let mut inverse = vec![usize::MAX; d];
        for (i, &p) in permutation.iter().enumerate() {
            if p >= d {
                return Err(Error::InvalidPermutation {
                    context: "Permute::new".into(),
                    reason: format!("entry {i} is {p}, which is not below {d}"),
                    got: permutation,
                });
            }
            if inverse[p] != usize::MAX {
                return Err(Error::InvalidPermutation {
                    context: "Permute::new".into(),
                    reason: format!("{p} appears twice (at {} and {i})", inverse[p]),
                    got: permutation,
                });
            }
            inverse[p] = i;
        }
        Ok(Self {
            permutation,
            inverse,
        })
    }

    /// The reversal `y[i] = x[D − 1 − i]` (errors if `dim == 0`).
    pub fn reverse(dim: usize) -> Result<Self, Error> {
        check::dim_at_least_one("Permute::reverse", "dim", dim)?;
        Self::new((0..dim).rev().collect())
    }

    /// A uniformly random permutation of `0..dim` drawn from `rng` (Fisher–Yates).
    pub fn random(dim: usize, rng: &mut dyn Rng) -> Result<Self, Error> {
        check::dim_at_least_one("Permute::random", "dim", dim)?;
        let mut p: Vec<usize> = (0..dim).collect();
        for i in (1..dim).rev() {
            let j = rng.random_range(0..=i);
            p.swap(i, j);
        }
        Self::new(p)
    }

    /// The permutation as given: `y[i] = x[permutation[i]]`.
    pub fn permutation(&self) -> &[usize] {
        &self.permutation
    }

    fn apply<T: Real>(idx: &[usize], x: &DMatrix<T>) -> DMatrix<T> {
        DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| x[(idx[i], j)])
    }
}

impl TryFrom<Vec<usize>> for Permute {
    type Error = Error;
    fn try_from(p: Vec<usize>) -> Result<Self, Error> {
        Permute::new(p)
    }
}

impl From<Permute> for Vec<usize> {
    fn from(p: Permute) -> Vec<usize> {
        p.permutation
    }
}

impl<T: Real> Bijector<T> for Permute {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Permute::forward", self.permutation.len(), x);
        Self::apply(&self.permutation, x)
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("Permute::inverse", self.permutation.len(), y);
        Self::apply(&self.inverse, y)
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "Permute::forward_log_det_jacobian",
            self.permutation.len(),
            x,
        );
        DVector::zeros(x.ncols())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "Permute::inverse_log_det_jacobian",
            self.permutation.len(),
            y,
        );
        DVector::zeros(y.ncols())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.permutation.len())
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(Permute,
    // y[i] = x[p[i]], so ∂L/∂x[p[i]] = ∂L/∂y[i]: gather with the inverse.
    forward: |this, _x, gy, _gl| Permute::apply(&this.inverse, gy),
    inverse: |this, _y, gx, _gl| Permute::apply(&this.permutation, gx)
);
