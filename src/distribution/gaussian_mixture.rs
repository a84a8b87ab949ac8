use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Distribution, neg_half_ln_2pi, open01, sanitize, standard_normal_matrix};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// A mixture of `K` Gaussians with diagonal covariances:
/// `p(x) = Σₖ wₖ N(x; μₖ, diag(σₖ²))`, evaluated by log-sum-exp.
///
/// `weights` (length `K`) must be finite and positive; they are normalised to
/// sum to one. `locs` and `scales` are `D × K`: column `k` is component `k`.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// let m = GaussianMixture::new(
///     DVector::from_vec(vec![1.0_f64, 3.0]),          // normalised to 0.25, 0.75
///     DMatrix::from_row_slice(1, 2, &[-2.0, 2.0]),     // means
///     DMatrix::from_row_slice(1, 2, &[0.5, 1.0]),      // standard deviations
/// )?;
/// assert_eq!(m.weights()[1], 0.75);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GaussianMixtureRepr<T>")]
pub struct GaussianMixture<T: Real> {
    weights: DVector<T>,
    locs: DMatrix<T>,
    scales: DMatrix<T>,
}

/// The serialised form: deserialising goes through the same validation as
/// the constructor, so that a saved model cannot bypass it.
#[derive(Deserialize)]
struct GaussianMixtureRepr<T: Real> {
    weights: DVector<T>,
    locs: DMatrix<T>,
    scales: DMatrix<T>,
}

impl<T: Real> TryFrom<GaussianMixtureRepr<T>> for GaussianMixture<T> {
    type Error = Error;
    fn try_from(r: GaussianMixtureRepr<T>) -> Result<Self, Error> {
        let stored = r.weights.clone();
        let mut m = GaussianMixture::new(r.weights, r.locs, r.scales)?;
        // `new` divides the weights by their sum. Serialised weights are already
        // normalised, and dividing them again by their rounded sum can move them
        // by an ulp: keep them as stored when they sum to one up to rounding, so
        // that a save/load round trip is exact.
        let tol = T::lit(4.0 * stored.len() as f64) * T::machine_epsilon();
        if (stored.sum() - T::one()).abs() <= tol {
            m.weights = stored;
        }
        Ok(m)
    }
}

impl<T: Real> GaussianMixture<T> {
    /// Errors if there are no components or no dimensions, the shapes disagree,
    /// a weight is not finite and positive, a location is not finite, or a
    /// scale is not finite and positive.
    pub fn new(weights: DVector<T>, locs: DMatrix<T>, scales: DMatrix<T>) -> Result<Self, Error> {
        const CTX: &str = "GaussianMixture::new";
        check::dim_at_least_one(CTX, "weights", weights.len())?;
        check::dim_at_least_one(CTX, "locs (rows)", locs.nrows())?;
        check::same_dim(
            CTX,
            "locs (columns = components)",
            weights.len(),
            locs.ncols(),
        )?;
        check::same_dim(CTX, "scales (rows)", locs.nrows(), scales.nrows())?;
        check::same_dim(
            CTX,
            "scales (columns = components)",
            weights.len(),
            scales.ncols(),
        )?;
        check::positive_vec(CTX, "weights", &weights)?;
        check::finite_mat(CTX, "locs", &locs)?;
        for k in 0..scales.ncols() {
            for i in 0..scales.nrows() {
                let s = scales[(i, k)];
                if !s.is_finite() || s <= T::zero() {
                    return Err(check::invalid(
                        CTX,
                        &format!("scales[({i}, {k})]"),
                        "finite and positive",
                        s,
                    ));
                }
            }
        }
        let total = weights.sum();
        Ok(Self {
            weights: weights / total,
            locs,
            scales,
        })
    }

    /// The normalised mixture weights.
    pub fn weights(&self) -> &DVector<T> {
        &self.weights
    }

    /// Component means, `D × K`.
    pub fn locs(&self) -> &DMatrix<T> {
        &self.locs
    }

    /// Component standard deviations, `D × K`.
    pub fn scales(&self) -> &DMatrix<T> {
        &self.scales
    }

    /// Number of components `K`.
    pub fn num_components(&self) -> usize {
        self.weights.len()
    }
}

impl<T: Real> Distribution<T> for GaussianMixture<T> {
    fn dim(&self) -> usize {
        self.locs.nrows()
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        let d = self.locs.nrows();
        assert_rows("GaussianMixture::log_prob", d, x);
        let k = self.weights.len();
        let half = T::lit(0.5);
        // log wₖ − Σᵢ log σᵢₖ − (D/2) log 2π, once per component.
        let consts: Vec<T> = (0..k)
            .map(|c| {
                self.weights[c].ln() + neg_half_ln_2pi::<T>() * T::lit(d as f64)
                    - (0..d).fold(T::zero(), |a, i| a + self.scales[(i, c)].ln())
            })
            .collect();
        let mut terms = vec![T::zero(); k];
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                for c in 0..k {
                    let mut q = T::zero();
                    for i in 0..d {
                        let z = (col[i] - self.locs[(i, c)]) / self.scales[(i, c)];
                        q += z * z;
                    }
                    terms[c] = consts[c] - half * q;
                }
                log_sum_exp(&terms)
            }),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let d = self.locs.nrows();
        let mut x = standard_normal_matrix::<T>(d, n, rng);
        for mut col in x.column_iter_mut() {
            let u = T::lit(open01(rng));
            let mut acc = T::zero();
            let mut comp = self.weights.len() - 1;
            for (c, w) in self.weights.iter().enumerate() {
                acc += *w;
                if u < acc {
                    comp = c;
                    break;
                }
            }
            for i in 0..d {
                col[i] = self.locs[(i, comp)] + self.scales[(i, comp)] * col[i];
            }
        }
        x
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        let d = self.locs.nrows();
        assert_rows("GaussianMixture::log_prob_grad", d, x);
        let k = self.weights.len();
        let half = T::lit(0.5);
        let mut terms = vec![T::zero(); k];
        let mut g = DMatrix::zeros(d, x.ncols());
        for s in 0..x.ncols() {
            // Responsibilities r_c = softmax of the per-component log terms;
            // ∇ log p = Σ_c r_c · (−(x − μ_c)/σ_c²).
            for (c, t) in terms.iter_mut().enumerate() {
                let mut q = T::zero();
                let mut lsum = T::zero();
                for i in 0..d {
                    let z = (x[(i, s)] - self.locs[(i, c)]) / self.scales[(i, c)];
                    q += z * z;
                    lsum += self.scales[(i, c)].ln();
                }
                *t = self.weights[c].ln() - lsum - half * q;
            }
            let lse = log_sum_exp(&terms);
            for (c, t) in terms.iter().enumerate() {
                let r = (*t - lse).exp();
                for i in 0..d {
                    let sc = self.scales[(i, c)];
                    g[(i, s)] -= r * (x[(i, s)] - self.locs[(i, c)]) / (sc * sc);
                }
            }
        }
        Some(g)
    }
}

/// `log Σ exp(aᵢ)` without overflow; `-inf` if every term is `-inf`.
pub(crate) fn log_sum_exp<T: Real>(a: &[T]) -> T {
    let m = a.iter().fold(T::neg_infinity(), |m, v| m.max(*v));
    if !m.is_finite() {
        return m;
    }
    m + a.iter().fold(T::zero(), |s, v| s + (*v - m).exp()).ln()
}
