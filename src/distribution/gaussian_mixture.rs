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
/// assert!((m.weights()[1] - 0.75).abs() < 1e-15);
/// # Ok::<(), normflow::Error>(())
/// ```
///
/// **Parameters.** The mixture keeps its parameters in one unconstrained
/// buffer `[logits (K) | locs (D·K, column k = component k) | log-scales (D·K)]`
/// with `wₖ = softmax(logits)ₖ` and `σ = exp(log-scales)`, so that it can be
/// trained as the base of a flow (the MAF paper's MAF-MoG):
/// [`GaussianMixture::params`], [`GaussianMixture::log_prob_backward`].
/// It saves in that form; loading also accepts `{weights, locs, scales}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GaussianMixtureRepr<T>", into = "GaussianMixtureParams<T>")]
pub struct GaussianMixture<T: Real> {
    dim: usize,
    components: usize,
    params: Vec<T>,
}

/// The saved form: the unconstrained parameters.
#[derive(Serialize, Deserialize)]
struct GaussianMixtureParams<T: Real> {
    logits: DVector<T>,
    locs: DMatrix<T>,
    log_scales: DMatrix<T>,
}

/// What loading accepts: the saved form, or the constructor's arguments.
/// Both go through validation, so a file cannot bypass it.
#[derive(Deserialize)]
#[serde(untagged, bound(deserialize = "T: Real + Deserialize<'de>"))]
enum GaussianMixtureRepr<T: Real> {
    Params(GaussianMixtureParams<T>),
    Weights {
        weights: DVector<T>,
        locs: DMatrix<T>,
        scales: DMatrix<T>,
    },
}

impl<T: Real> From<GaussianMixture<T>> for GaussianMixtureParams<T> {
    fn from(m: GaussianMixture<T>) -> Self {
        GaussianMixtureParams {
            logits: DVector::from_column_slice(m.logits()),
            locs: DMatrix::from_column_slice(m.dim, m.components, m.locs_slice()),
            log_scales: DMatrix::from_column_slice(m.dim, m.components, m.log_scales_slice()),
        }
    }
}

impl<T: Real> TryFrom<GaussianMixtureRepr<T>> for GaussianMixture<T> {
    type Error = Error;
    fn try_from(r: GaussianMixtureRepr<T>) -> Result<Self, Error> {
        match r {
            GaussianMixtureRepr::Weights {
                weights,
                locs,
                scales,
            } => GaussianMixture::new(weights, locs, scales),
            GaussianMixtureRepr::Params(p) => {
                GaussianMixture::from_params(p.logits, p.locs, p.log_scales)
            }
        }
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
        let logits = weights.map(|w| (w / total).ln());
        Self::from_params(logits, locs, scales.map(|s| s.ln()))
    }

    /// From unconstrained parameters: mixture logits (`K`), locations and
    /// log-scales (`D × K`). Errors on non-finite values or mismatched shapes.
    pub fn from_params(
        logits: DVector<T>,
        locs: DMatrix<T>,
        log_scales: DMatrix<T>,
    ) -> Result<Self, Error> {
        const CTX: &str = "GaussianMixture::from_params";
        check::dim_at_least_one(CTX, "logits", logits.len())?;
        check::dim_at_least_one(CTX, "locs (rows)", locs.nrows())?;
        check::same_dim(
            CTX,
            "locs (columns = components)",
            logits.len(),
            locs.ncols(),
        )?;
        check::same_dim(CTX, "log_scales (rows)", locs.nrows(), log_scales.nrows())?;
        check::same_dim(
            CTX,
            "log_scales (columns = components)",
            logits.len(),
            log_scales.ncols(),
        )?;
        check::finite_vec(CTX, "logits", &logits)?;
        check::finite_mat(CTX, "locs", &locs)?;
        check::finite_mat(CTX, "log_scales", &log_scales)?;
        let (dim, components) = locs.shape();
        let mut params = Vec::with_capacity(components * (1 + 2 * dim));
        params.extend_from_slice(logits.as_slice());
        params.extend_from_slice(locs.as_slice());
        params.extend_from_slice(log_scales.as_slice());
        Ok(Self {
            dim,
            components,
            params,
        })
    }

    fn logits(&self) -> &[T] {
        &self.params[..self.components]
    }

    fn locs_slice(&self) -> &[T] {
        &self.params[self.components..self.components * (1 + self.dim)]
    }

    fn log_scales_slice(&self) -> &[T] {
        &self.params[self.components * (1 + self.dim)..]
    }

    /// `log wₖ` (normalised).
    fn log_weights(&self) -> Vec<T> {
        let lse = log_sum_exp(self.logits());
        self.logits().iter().map(|l| *l - lse).collect()
    }

    /// The normalised mixture weights.
    pub fn weights(&self) -> DVector<T> {
        DVector::from_iterator(
            self.components,
            self.log_weights().into_iter().map(|l| l.exp()),
        )
    }

    /// Component means, `D × K`.
    pub fn locs(&self) -> DMatrix<T> {
        DMatrix::from_column_slice(self.dim, self.components, self.locs_slice())
    }

    /// Component standard deviations, `D × K`.
    pub fn scales(&self) -> DMatrix<T> {
        DMatrix::from_iterator(
            self.dim,
            self.components,
            self.log_scales_slice().iter().map(|l| l.exp()),
        )
    }

    /// Number of components `K`.
    pub fn num_components(&self) -> usize {
        self.components
    }

    /// The unconstrained parameters `[logits | locs | log-scales]`.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameters (any finite values are valid).
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `K (1 + 2D)`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Reverse mode of `log_prob`: given `∂L/∂log p` per column, **adds**
    /// `∂L/∂θ` into `grad_params` (layout of [`GaussianMixture::params`]) and
    /// returns `∂L/∂x`.
    ///
    /// With responsibilities `r_c` and `z = (x − μ_c)/σ_c`:
    /// `∂log p/∂logit_c = r_c − w_c`, `∂/∂μ = r_c z/σ`, `∂/∂log σ = r_c (z² − 1)`,
    /// `∂/∂x = −Σ_c r_c z/σ`.
    pub fn log_prob_backward(
        &self,
        x: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
    ) -> DMatrix<T> {
        let (d, k) = (self.dim, self.components);
        assert_rows("GaussianMixture::log_prob_backward", d, x);
        assert_eq!(
            grad_params.len(),
            self.params.len(),
            "GaussianMixture::log_prob_backward: gradient buffer length"
        );
        let lw = self.log_weights();
        let locs = self.locs_slice();
        let ls = self.log_scales_slice();
        let half = T::lit(0.5);
        let mut terms = vec![T::zero(); k];
        let mut gx = DMatrix::zeros(d, x.ncols());
        for s in 0..x.ncols() {
            for (c, t) in terms.iter_mut().enumerate() {
                let mut acc = lw[c];
                for i in 0..d {
                    let z = (x[(i, s)] - locs[c * d + i]) * (-ls[c * d + i]).exp();
                    acc -= ls[c * d + i] + half * z * z;
                }
                *t = acc;
            }
            let lse = log_sum_exp(&terms);
            let g = grad_log_prob[s];
            for c in 0..k {
                let r = (terms[c] - lse).exp();
                grad_params[c] += g * (r - lw[c].exp());
                for i in 0..d {
                    let inv_sigma = (-ls[c * d + i]).exp();
                    let z = (x[(i, s)] - locs[c * d + i]) * inv_sigma;
                    grad_params[k + c * d + i] += g * r * z * inv_sigma;
                    grad_params[k + k * d + c * d + i] += g * r * (z * z - T::one());
                    gx[(i, s)] -= g * r * z * inv_sigma;
                }
            }
        }
        gx
    }
}

impl<T: Real> Distribution<T> for GaussianMixture<T> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        let (d, k) = (self.dim, self.components);
        assert_rows("GaussianMixture::log_prob", d, x);
        let half = T::lit(0.5);
        let lw = self.log_weights();
        let locs = self.locs_slice();
        let ls = self.log_scales_slice();
        // log wₖ − Σᵢ log σᵢₖ − (D/2) log 2π, once per component.
        let consts: Vec<T> = (0..k)
            .map(|c| {
                lw[c] + neg_half_ln_2pi::<T>() * T::lit(d as f64)
                    - (0..d).fold(T::zero(), |a, i| a + ls[c * d + i])
            })
            .collect();
        let inv: Vec<T> = ls.iter().map(|l| (-*l).exp()).collect();
        let mut terms = vec![T::zero(); k];
        sanitize(DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                for c in 0..k {
                    let mut q = T::zero();
                    for i in 0..d {
                        let z = (col[i] - locs[c * d + i]) * inv[c * d + i];
                        q += z * z;
                    }
                    terms[c] = consts[c] - half * q;
                }
                log_sum_exp(&terms)
            }),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let d = self.dim;
        let weights = self.weights();
        let locs = self.locs_slice();
        let ls = self.log_scales_slice();
        let mut x = standard_normal_matrix::<T>(d, n, rng);
        for mut col in x.column_iter_mut() {
            let u = T::lit(open01(rng));
            let mut acc = T::zero();
            let mut comp = self.components - 1;
            for (c, w) in weights.iter().enumerate() {
                acc += *w;
                if u < acc {
                    comp = c;
                    break;
                }
            }
            for i in 0..d {
                col[i] = locs[comp * d + i] + ls[comp * d + i].exp() * col[i];
            }
        }
        x
    }
    fn as_trainable_base(&self) -> Option<&dyn super::TrainableBase<T>> {
        Some(self)
    }
    fn as_trainable_base_mut(&mut self) -> Option<&mut dyn super::TrainableBase<T>> {
        Some(self)
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        let mut scratch = vec![T::zero(); self.params.len()];
        Some(self.log_prob_backward(x, &DVector::from_element(x.ncols(), T::one()), &mut scratch))
    }
}

impl<T: Real> crate::Parameters<T> for GaussianMixture<T> {
    crate::bijector::single_buffer!(params);
}

impl<T: Real> super::TrainableBase<T> for GaussianMixture<T> {
    fn log_prob_backward(
        &self,
        x: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
    ) -> DMatrix<T> {
        GaussianMixture::log_prob_backward(self, x, grad_log_prob, grad_params)
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
