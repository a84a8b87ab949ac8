//! Reverse mode of the density direction of [`BlockNeuralAutoregressive`].
//!
//! Per sample and coordinate, with `λᵢ = log ∂uᵢ/∂xᵢ = logaddexp(log(1 − gᵢ),
//! log gᵢ + Jᵢ)`, `Jᵢ = log ∂fᵢ/∂xᵢ` and `πᵢ = exp(log gᵢ + Jᵢ − λᵢ)` (the
//! network's share of the slope):
//!
//! ```text
//! ∂λᵢ/∂Jᵢ = πᵢ,   ∂λᵢ/∂αᵢ = πᵢ − gᵢ,   ∂uᵢ/∂αᵢ = gᵢ(1 − gᵢ)(fᵢ − xᵢ),
//! ∂uᵢ/∂fᵢ = gᵢ,   ∂uᵢ/∂xᵢ (direct) = 1 − gᵢ.
//! ```
//!
//! `Jᵢ` goes back through its log-matrix products ([`Chain::backward`]) to
//! the hidden pre-activations (`d log sech² x/dx = −2 tanh x`) and to the
//! logs of the diagonal-block weights; the network goes back as any
//! feed-forward network. A weight-normalised row `W = e^s w̃/n`, `n = ‖w̃‖`,
//! with the linear cotangent `γ` (all entries) and the log cotangent `δ`
//! (diagonal-block entries, `log W = s + V − log n` there) gives, with
//! `σ = Σ γⱼ Wⱼ + Σ δⱼ`,
//!
//! ```text
//! ∂L/∂s = σ,
//! ∂L/∂Vⱼ = γⱼ Wⱼ − σ (w̃ⱼ/n)² + δⱼ        (diagonal block, w̃ⱼ = e^{Vⱼ}),
//! ∂L/∂Vⱼ = γⱼ e^s/n − σ w̃ⱼ/n²            (below it, w̃ⱼ = Vⱼ).
//! ```

use nalgebra::DMatrix;

use super::BlockNeuralAutoregressive;
use super::network::{Chain, Net, row_start};
use crate::bijector::pass::Pass;
use crate::{Error, Real};

impl<T: Real> BlockNeuralAutoregressive<T> {
    /// The fused density pass: evaluates `(u, log|det|)` at `x` under the
    /// contexts `c` (already the layer's own), asks `rest` for their
    /// cotangents, adds `∂L/∂θ` into `grad_params` and `∂L/∂c` into
    /// `grad_context`, and returns `∂L/∂x`.
    pub(super) fn density_through(&self, pass: Pass<'_, '_, T>) -> Result<DMatrix<T>, Error> {
        let (x, c, grad_params, grad_context, rest, _) = pass.parts();
        let (dim, n, a) = (self.dim, x.ncols(), self.units);
        let net = self.net();
        let pass = self.pass(&net, x, c);
        let f = pass.pre.last().expect("an output layer");
        let u = self.gated(&net, x, f);
        // One chain per sample and coordinate, kept for the reverse pass.
        let mut chains = vec![Chain::new(&net); n * dim];
        // log ∂fᵢ/∂xᵢ and log ∂uᵢ/∂xᵢ.
        let mut lf = DMatrix::zeros(dim, n);
        let mut lam = DMatrix::zeros(dim, n);
        for s in 0..n {
            for i in 0..dim {
                let (l, j) = self.log_slope(&net, &mut chains[s * dim + i], &pass, i, s);
                lam[(i, s)] = l;
                lf[(i, s)] = j;
            }
        }
        let ldj = lam.row_sum().transpose();
        let (gu, gl) = rest(&u, &ldj)?;

        let mut g_pre: Vec<DMatrix<T>> = pass
            .pre
            .iter()
            .map(|p| DMatrix::zeros(p.nrows(), n))
            .collect();
        let mut g_log_w: Vec<Vec<T>> = net
            .layers
            .iter()
            .map(|l| vec![T::zero(); l.log_wd.len()])
            .collect();
        let mut g_alpha = vec![T::zero(); dim];
        let mut grad_x = DMatrix::zeros(dim, n);
        let last = g_pre.len() - 1;
        for s in 0..n {
            for i in 0..dim {
                let g = net.g[i];
                let pi = (net.log_g[i] + lf[(i, s)] - lam[(i, s)]).exp();
                let gui = gu[(i, s)];
                g_alpha[i] += gui * g * (T::one() - g) * (f[(i, s)] - x[(i, s)]) + gl[s] * (pi - g);
                g_pre[last][(i, s)] += gui * g;
                grad_x[(i, s)] += gui * (T::one() - g);
                let gj = gl[s] * pi;
                if gj != T::zero() {
                    let th = |l: usize, k: usize| pass.h[l][(i * a + k, s)];
                    chains[s * dim + i].backward(&net, i, gj, th, &mut g_log_w, |l, k, v| {
                        g_pre[l][(i * a + k, s)] += v;
                    });
                }
            }
        }

        // The network, from the output layer down.
        let lay = self.layout();
        let mut g_out = g_pre.pop().expect("an output layer");
        for l in (0..net.layers.len()).rev() {
            let layer = &net.layers[l];
            let input = if l == 0 { x } else { &pass.h[l - 1] };
            let g_w = &g_out * input.transpose();
            let off = lay.layers[l];
            for (k, row) in g_out.row_iter().enumerate() {
                grad_params[off.b + k] += row.iter().fold(T::zero(), |acc, &v| acc + v);
            }
            self.row_gradients(&net, l, &g_w, &g_log_w[l], grad_params);
            let g_in = layer.w.transpose() * &g_out;
            if l == 0 {
                if self.context_dim > 0 {
                    let cd = self.context_dim;
                    let g_ctx = &g_out * c.transpose();
                    for k in 0..g_ctx.nrows() {
                        for j in 0..cd {
                            grad_params[lay.ctx + k * cd + j] += g_ctx[(k, j)];
                        }
                    }
                    *grad_context += net.ctx.tr_mul(&g_out);
                }
                grad_x += g_in;
                break;
            }
            // Through tanh into layer l − 1's pre-activation.
            let mut below = g_pre.pop().expect("one gradient per hidden layer");
            // sech² = 1 − tanh²: an absolute error of ε, harmless here.
            for (v, (&gi, &t)) in below.iter_mut().zip(g_in.iter().zip(pass.h[l - 1].iter())) {
                *v += gi * (T::one() - t * t);
            }
            g_out = below;
        }
        for (i, &ga) in g_alpha.iter().enumerate() {
            grad_params[lay.gate + i] += ga;
        }
        Ok(grad_x)
    }

    /// Adds the cotangents of layer `l`'s raw row entries and log-scales
    /// into `grad_params`, from the dense cotangent `g_w` of its weights and
    /// the cotangent `g_log_w` of the logs of its diagonal-block entries
    /// (module docs).
    fn row_gradients(
        &self,
        net: &Net<T>,
        l: usize,
        g_w: &DMatrix<T>,
        g_log_w: &[T],
        grad_params: &mut [T],
    ) {
        let layer = &net.layers[l];
        let (a_in, a_out) = (layer.a_in, layer.a_out);
        let off = self.layout().layers[l];
        for k in 0..self.dim * a_out {
            let i = k / a_out;
            let diag = i * a_in;
            let v_at = off.v + row_start(a_in, a_out, k);
            let row = &self.params[v_at..v_at + (i + 1) * a_in];
            let ln = layer.log_norm[k];
            let s = self.params[off.s + k];
            let delta = &g_log_w[k * a_in..(k + 1) * a_in];
            let mut sigma = delta.iter().fold(T::zero(), |acc, &d| acc + d);
            for j in 0..row.len() {
                sigma += g_w[(k, j)] * layer.w[(k, j)];
            }
            grad_params[off.s + k] += sigma;
            let inv_n = (-ln).exp();
            let scale = (s - ln).exp();
            for (j, &r) in row.iter().enumerate() {
                let g = if j >= diag {
                    let share = (r - ln).exp();
                    g_w[(k, j)] * layer.w[(k, j)] - sigma * share * share + delta[j - diag]
                } else {
                    g_w[(k, j)] * scale - sigma * (r * inv_n) * inv_n
                };
                grad_params[v_at + j] += g;
            }
        }
    }
}
