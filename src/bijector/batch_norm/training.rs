//! Training support of [`BatchNormalization`]: its [`Differentiable`] impl
//! (backward passes of both modes, data-dependent finalisation), and the shape
//! check shared by the backward passes of the normalisation and linear layers.

use nalgebra::{DMatrix, DVector};

use super::BatchNormalization;
use crate::bijector::pass::Backward;
use crate::bijector::{Bijector, DataStage, Differentiable, assert_rows};
use crate::{Error, Real};

impl<T: Real> crate::Parameters<T> for BatchNormalization<T> {
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        f(self.running_mean.as_slice());
        f(self.running_var.as_slice());
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        f(self.running_mean.as_mut_slice());
        f(self.running_var.as_mut_slice());
    }
    crate::bijector::single_buffer!(params);
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Training: the parameters `[γ (D), β (D)]` are the flat parameter vector
/// (the statistics are state, never differentiated as parameters).
///
/// Backward passes, per coordinate (`σ = √(v + ε)`, `x̂ = (x − m)/σ`, output
/// cotangent `g`, log-det cotangent `gₗ`, sums over the samples `j` of the batch):
///
/// ```text
/// inverse u = eᵞ x̂ + β, ld = Σ (γ − ½ log(v + ε)):
///     ∂γ = Σⱼ g eᵞ x̂ + Σⱼ gₗ,   ∂β = Σⱼ g
///     evaluation mode (m, v stored):  ∂x = g eᵞ / σ
///     training mode (m, v of the batch), with ĝ = g eᵞ and n samples:
///         ∂xⱼ = (ĝⱼ − mean(ĝ) − x̂ⱼ (mean(ĝ x̂) + Σₖ gₗₖ / n)) / σ
/// forward x = (u − β) e⁻ᵞ σ + m (stored m, v in both modes), ld = −Σ (γ − ½ log(v + ε)):
///     ∂u = g e⁻ᵞ σ,   ∂β = −Σⱼ g e⁻ᵞ σ,   ∂γ = −Σⱼ g (x − m) − Σⱼ gₗ
/// ```
///
/// The training-mode input gradient is the standard batch-norm backward (the
/// paths through `m` and `v`; `∂v/∂xⱼ = 2 (xⱼ − m)/n`, `∂m` contributes nothing
/// to `v` because `Σ (x − m) = 0`) plus the log-det's path through `v`:
/// `Σₖ gₗₖ · (−½/(v + ε)) · 2 (xⱼ − m)/n`.
///
/// [`set_training`](crate::Parameters::set_training) sets the mode flag.
/// [`prepare_with_data`](Differentiable::prepare_with_data) with
/// [`DataStage::Finalize`] stores the statistics of the data it is given
/// ([`BatchNormalization::compute_statistics`]; data with no columns or a
/// non-finite entry leaves them unchanged); [`DataStage::Initialize`] changes
/// nothing. Both return `inverse(y)` in the current mode.
impl<T: Real> Differentiable<T> for BatchNormalization<T> {
    fn boxed_clone(&self) -> Box<dyn crate::bijector::Bijector<T>> {
        Box::new(self.clone())
    }
    fn prepare_with_data(&mut self, y: &DMatrix<T>, stage: DataStage) -> DMatrix<T> {
        if stage == DataStage::Finalize {
            // An error (no columns, non-finite data) leaves the statistics
            // unchanged; see the impl's docs.
            let _ = self.compute_statistics(y);
        }
        self.inverse(y)
    }
    crate::bijector::fused::backward_from!(inverse: inverse_backward, forward: forward_backward);
}

impl<T: Real> BatchNormalization<T> {
    fn inverse_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (x, grad_u, grad_log_det, grad_params, _) = pass.parts();
        const CTX: &str = "BatchNormalization::inverse_and_log_det_backward";
        let d = self.dim_();
        assert_rows(CTX, d, x);
        assert_backward_shapes(CTX, x, grad_u, grad_log_det, grad_params, 2 * d);
        let n = x.ncols();
        let gamma = self.log_scale();
        let (mean, var) = self.inverse_statistics(x);
        let gl_sum = grad_log_det.iter().fold(T::zero(), |a, &v| a + v);
        let inv_n = T::one() / T::lit(n as f64);
        let mut grad_x = DMatrix::zeros(d, n);
        for i in 0..d {
            let sd = (var[i] + self.epsilon).sqrt();
            let scale = gamma[i].exp();
            let xhat = |j: usize| (x[(i, j)] - mean[i]) / sd;
            let (mut sum_g, mut sum_g_xhat) = (T::zero(), T::zero());
            for j in 0..n {
                sum_g += grad_u[(i, j)];
                sum_g_xhat += grad_u[(i, j)] * xhat(j);
            }
            grad_params[i] += scale * sum_g_xhat + gl_sum;
            grad_params[d + i] += sum_g;
            if self.training {
                let mean_g = scale * sum_g * inv_n;
                let mean_g_xhat = (scale * sum_g_xhat + gl_sum) * inv_n;
                for j in 0..n {
                    grad_x[(i, j)] = (grad_u[(i, j)] * scale - mean_g - xhat(j) * mean_g_xhat) / sd;
                }
            } else {
                let a = scale / sd;
                for j in 0..n {
                    grad_x[(i, j)] = grad_u[(i, j)] * a;
                }
            }
        }
        Ok(grad_x)
    }
    fn forward_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (u, grad_x, grad_log_det, grad_params, _) = pass.parts();
        const CTX: &str = "BatchNormalization::forward_and_log_det_backward";
        let d = self.dim_();
        assert_rows(CTX, d, u);
        assert_backward_shapes(CTX, u, grad_x, grad_log_det, grad_params, 2 * d);
        let (gamma, beta) = (self.log_scale(), self.shift());
        let gl_sum = grad_log_det.iter().fold(T::zero(), |a, &v| a + v);
        let mut grad_u = DMatrix::zeros(d, u.ncols());
        for i in 0..d {
            let c = (-gamma[i]).exp() * (self.running_var[i] + self.epsilon).sqrt();
            let (mut sum_g, mut sum_g_dx) = (T::zero(), T::zero());
            for j in 0..u.ncols() {
                let g = grad_x[(i, j)];
                grad_u[(i, j)] = g * c;
                sum_g += g;
                // x − m = (u − β) c
                sum_g_dx += g * (u[(i, j)] - beta[i]) * c;
            }
            grad_params[i] -= sum_g_dx + gl_sum;
            grad_params[d + i] -= sum_g * c;
        }
        Ok(grad_u)
    }
}

/// Panics with a clear message unless the cotangents of a backward pass match
/// its input (`grad_out` the same shape, `grad_log_det` one entry per column)
/// and `grad_params` has the layer's `num_params` entries.
pub(crate) fn assert_backward_shapes<T: Real>(
    context: &str,
    input: &DMatrix<T>,
    grad_out: &DMatrix<T>,
    grad_log_det: &DVector<T>,
    grad_params: &[T],
    num_params: usize,
) {
    assert!(
        grad_out.shape() == input.shape(),
        "{context}: the output cotangent has shape {:?}, expected {:?} (the input's)",
        grad_out.shape(),
        input.shape()
    );
    assert!(
        grad_log_det.len() == input.ncols(),
        "{context}: the log-det cotangent has {} entries, expected {} (one per sample)",
        grad_log_det.len(),
        input.ncols()
    );
    assert!(
        grad_params.len() == num_params,
        "{context}: grad_params has {} entries, expected {num_params}",
        grad_params.len()
    );
}
