use nalgebra::{Cholesky, DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Distribution, neg_half_ln_2pi, sanitize, standard_normal_matrix};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// A multivariate normal `N(loc, Σ)` with full covariance, stored through a
/// lower-triangular scale `L` with `Σ = L Lᵀ`.
///
/// `log p(x) = −½ ‖L⁻¹(x − μ)‖² − Σᵢ log|Lᵢᵢ| − (D/2) log 2π`.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// let cov = DMatrix::from_row_slice(2, 2, &[2.0_f64, 0.5, 0.5, 1.0]);
/// let d = MultivariateNormal::new(DVector::zeros(2), cov)?;
/// assert_eq!(Distribution::<f64>::dim(&d), 2);
/// // Not positive definite:
/// let bad = DMatrix::from_row_slice(2, 2, &[1.0_f64, 2.0, 2.0, 1.0]);
/// assert!(MultivariateNormal::new(DVector::zeros(2), bad).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MultivariateNormalRepr<T>")]
pub struct MultivariateNormal<T: Real> {
    loc: DVector<T>,
    scale_tril: DMatrix<T>,
}

crate::checked_serde::checked_serde!(load_only MultivariateNormal, MultivariateNormalRepr {
    loc: DVector<T>,
    scale_tril: DMatrix<T>,
}, |r| MultivariateNormal::from_scale_tril(r.loc, r.scale_tril));

impl<T: Real> MultivariateNormal<T> {
    /// From a mean and a covariance matrix (Cholesky-factorised here).
    ///
    /// Errors with [`Error::NotPositiveDefinite`] if the covariance is not
    /// symmetric (to a relative `√ε`) or its Cholesky factorisation fails.
    pub fn new(loc: DVector<T>, covariance: DMatrix<T>) -> Result<Self, Error> {
        const CTX: &str = "MultivariateNormal::new";
        check::dim_at_least_one(CTX, "loc", loc.len())?;
        check::finite_vec(CTX, "loc", &loc)?;
        check::square(CTX, "covariance", &covariance)?;
        check::same_dim(CTX, "covariance", loc.len(), covariance.nrows())?;
        check::finite_mat(CTX, "covariance", &covariance)?;
        let tol = covariance.amax() * T::machine_epsilon().sqrt();
        let d = loc.len();
        for j in 0..d {
            for i in 0..j {
                if (covariance[(i, j)] - covariance[(j, i)]).abs() > tol {
                    return Err(Error::NotPositiveDefinite {
                        context: CTX.into(),
                        argument: "covariance".into(),
                        reason: format!(
                            "it is not symmetric: entry ({i}, {j}) is {} and entry ({j}, {i}) is {}",
                            covariance[(i, j)],
                            covariance[(j, i)]
                        ),
                    });
                }
            }
        }
        let chol = Cholesky::new(covariance).ok_or_else(|| Error::NotPositiveDefinite {
            context: CTX.into(),
            argument: "covariance".into(),
            reason: "its Cholesky factorisation failed (a non-positive pivot)".into(),
        })?;
        Ok(Self {
            loc,
            scale_tril: chol.unpack(),
        })
    }

    /// From a mean and a lower-triangular scale `L` (covariance `L Lᵀ`).
    ///
    /// Errors if `L` is not square and lower triangular with a nonzero,
    /// finite diagonal.
    pub fn from_scale_tril(loc: DVector<T>, scale_tril: DMatrix<T>) -> Result<Self, Error> {
        const CTX: &str = "MultivariateNormal::from_scale_tril";
        check::dim_at_least_one(CTX, "loc", loc.len())?;
        check::finite_vec(CTX, "loc", &loc)?;
        check::square(CTX, "scale_tril", &scale_tril)?;
        check::same_dim(CTX, "scale_tril", loc.len(), scale_tril.nrows())?;
        check::lower_triangular(CTX, "scale_tril", &scale_tril)?;
        Ok(Self { loc, scale_tril })
    }

    /// The mean vector.
    pub fn loc(&self) -> &DVector<T> {
        &self.loc
    }

    /// The lower-triangular scale `L`.
    pub fn scale_tril(&self) -> &DMatrix<T> {
        &self.scale_tril
    }

    /// The covariance `L Lᵀ`.
    pub fn covariance(&self) -> DMatrix<T> {
        &self.scale_tril * self.scale_tril.transpose()
    }
}

impl<T: Real> Distribution<T> for MultivariateNormal<T> {
    fn dim(&self) -> usize {
        self.loc.len()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        let d = self.loc.len();
        assert_rows("MultivariateNormal::log_prob", d, x);
        let mut z = x.clone();
        for mut col in z.column_iter_mut() {
            col -= &self.loc;
        }
        self.scale_tril.solve_lower_triangular_mut(&mut z);
        let c = neg_half_ln_2pi::<T>() * T::lit(d as f64)
            - self
                .scale_tril
                .diagonal()
                .iter()
                .fold(T::zero(), |a, l| a + l.abs().ln());
        let half = T::lit(0.5);
        sanitize(DVector::from_iterator(
            x.ncols(),
            z.column_iter().map(|col| c - half * col.norm_squared()),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let z = standard_normal_matrix::<T>(self.loc.len(), n, rng);
        let mut x = &self.scale_tril * z;
        for mut col in x.column_iter_mut() {
            col += &self.loc;
        }
        x
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("MultivariateNormal::log_prob_grad", self.loc.len(), x);
        // −Σ⁻¹(x − μ) = −L⁻ᵀ L⁻¹ (x − μ): two triangular solves.
        let mut z = x.clone();
        for mut col in z.column_iter_mut() {
            col -= &self.loc;
        }
        self.scale_tril.solve_lower_triangular_mut(&mut z);
        self.scale_tril.tr_solve_lower_triangular_mut(&mut z);
        Some(-z)
    }
}
