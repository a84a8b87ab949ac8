//! The masked block network of [`BlockNeuralAutoregressive`]: its weights
//! unpacked from the parameter buffer (weight normalisation, positive
//! diagonal blocks), the batch pass of the density direction, and the
//! diagonal-block log-Jacobian chain in log space with its reverse mode.

use nalgebra::DMatrix;

use super::BlockNeuralAutoregressive;
use crate::Real;

/// `log sech² x = 2 (log 2 − |x| − log(1 + e^{−2|x|}))`, finite for finite `x`.
#[inline]
pub(super) fn log_sech2<T: Real>(x: T) -> T {
    let a = x.abs();
    T::lit(2.0) * (T::lit(std::f64::consts::LN_2) - a - (-(a + a)).exp().ln_1p())
}

/// One layer of the network, unpacked: weights `W` of shape
/// `D·a_out × D·a_in` in `D × D` blocks of `a_out × a_in`, lower blocks free,
/// diagonal blocks positive, upper blocks zero.
pub(super) struct Layer<T: Real> {
    pub a_in: usize,
    pub a_out: usize,
    /// Dense `W` (upper blocks exactly zero).
    pub w: DMatrix<T>,
    /// `log W` on the diagonal blocks: block `i` row-major at `i·a_out·a_in`.
    pub log_wd: Vec<T>,
    /// Per row `k` of the layer: `max_j log W[k, j]` over its diagonal block.
    pub row_max: Vec<T>,
    /// `exp(log W − row_max)` on the diagonal blocks (same layout as `log_wd`).
    pub w_hat: Vec<T>,
    /// Per row: `log ‖w̃_k‖`, the log-norm of the row before normalisation.
    pub log_norm: Vec<T>,
}

/// The network's weights and gates, derived from the parameters at every
/// call (so writing to the parameter buffer needs no cache invalidation).
pub(super) struct Net<T: Real> {
    pub layers: Vec<Layer<T>>,
    /// Context weights `D·a₁ × C` (free).
    pub ctx: DMatrix<T>,
    /// Gates `gᵢ = σ(αᵢ)`.
    pub g: Vec<T>,
    /// `log gᵢ` and `log(1 − gᵢ)`.
    pub log_g: Vec<T>,
    pub log_1mg: Vec<T>,
    /// `Bᵢ = |b_out,ᵢ| + Σⱼ |W_out[i, j]|`, a bound of `|fᵢ|` (`|tanh| ≤ 1`).
    pub bound: Vec<T>,
}

impl<T: Real> Layer<T> {
    /// Entry `(k, j)` of diagonal block `i`, `k < a_out`, `j < a_in`.
    #[inline]
    pub fn diag_index(&self, i: usize, k: usize, j: usize) -> usize {
        (i * self.a_out + k) * self.a_in + j
    }
}

/// Log-sum-exp of `v` (`−∞` for an empty or all-`−∞` slice).
pub(super) fn log_sum_exp<T: Real>(v: impl Iterator<Item = T> + Clone) -> T {
    let m = v.clone().fold(T::neg_infinity(), |m, x| m.max(x));
    if m == T::neg_infinity() || !m.is_finite() {
        return m;
    }
    m + v.fold(T::zero(), |s, x| s + (x - m).exp()).ln()
}

impl<T: Real> BlockNeuralAutoregressive<T> {
    /// Unpacks the weights: per row `k`, `W[k, ·] = e^{s_k} w̃ / ‖w̃‖` with
    /// `w̃` the row's raw entries, `exp` of them on the diagonal block.
    pub(super) fn net(&self) -> Net<T> {
        let dim = self.dim;
        let mut layers = Vec::with_capacity(self.blocks + 1);
        for (l, off) in self.layout().layers.iter().enumerate() {
            let (a_in, a_out) = self.widths(l);
            let mut w = DMatrix::zeros(dim * a_out, dim * a_in);
            let mut log_wd = vec![T::zero(); dim * a_out * a_in];
            let mut row_max = vec![T::neg_infinity(); dim * a_out];
            let mut log_norm = vec![T::zero(); dim * a_out];
            for k in 0..dim * a_out {
                let i = k / a_out;
                let row = &self.params[off.v + row_start(a_in, a_out, k)..][..(i + 1) * a_in];
                let diag = i * a_in;
                let log_abs = |j: usize| {
                    if j >= diag { row[j] } else { row[j].abs().ln() }
                };
                let ln = T::lit(0.5) * log_sum_exp((0..row.len()).map(|j| log_abs(j) + log_abs(j)));
                log_norm[k] = ln;
                let s = self.params[off.s + k];
                for (j, &r) in row.iter().enumerate() {
                    if j >= diag {
                        let lw = s + r - ln;
                        w[(k, j)] = lw.exp();
                        let at = (k * a_in) + (j - diag);
                        log_wd[at] = lw;
                        row_max[k] = row_max[k].max(lw);
                    } else if r != T::zero() {
                        let mag = (s + log_abs(j) - ln).exp();
                        w[(k, j)] = if r > T::zero() { mag } else { -mag };
                    }
                }
            }
            let w_hat = log_wd
                .iter()
                .enumerate()
                .map(|(at, &lw)| (lw - row_max[at / a_in]).exp())
                .collect();
            layers.push(Layer {
                a_in,
                a_out,
                w,
                log_wd,
                row_max,
                w_hat,
                log_norm,
            });
        }
        let lay = self.layout();
        let c = self.context_dim;
        let width1 = dim * self.widths(0).1;
        let ctx = DMatrix::from_fn(width1, c, |k, j| self.params[lay.ctx + k * c + j]);
        let alpha = &self.params[lay.gate..lay.gate + dim];
        let out = layers.last().expect("at least one layer");
        let b_out = &self.params[lay.layers[self.blocks].b..][..dim];
        let bound = (0..dim)
            .map(|i| {
                out.w
                    .row(i)
                    .iter()
                    .fold(b_out[i].abs(), |acc, v| acc + v.abs())
            })
            .collect();
        Net {
            g: alpha.iter().map(|a| a.sigmoid()).collect(),
            log_g: alpha.iter().map(|a| a.log_sigmoid()).collect(),
            log_1mg: alpha.iter().map(|a| (-*a).log_sigmoid()).collect(),
            bound,
            ctx,
            layers,
        }
    }

    /// The network on the batch `x` under the contexts `c`.
    pub(super) fn pass(&self, net: &Net<T>, x: &DMatrix<T>, c: &DMatrix<T>) -> Pass<T> {
        let lay = self.layout();
        let mut pre: Vec<DMatrix<T>> = Vec::with_capacity(net.layers.len());
        let mut h: Vec<DMatrix<T>> = Vec::with_capacity(net.layers.len() - 1);
        for (l, layer) in net.layers.iter().enumerate() {
            let mut p = match h.last() {
                None => &layer.w * x,
                Some(prev) => &layer.w * prev,
            };
            if l == 0 && self.context_dim > 0 {
                p += &net.ctx * c;
            }
            let b = &self.params[lay.layers[l].b..][..p.nrows()];
            for mut col in p.column_iter_mut() {
                for (v, &bk) in col.iter_mut().zip(b) {
                    *v += bk;
                }
            }
            if l + 1 < net.layers.len() {
                h.push(p.map(|v| v.tanh()));
            }
            pre.push(p);
        }
        let log_slope = pre[..h.len()].iter().map(|p| p.map(log_sech2)).collect();
        Pass { pre, h, log_slope }
    }

    /// `u = (1 − g) ⊙ x + g ⊙ f` from `x` and the output pre-activation `f`.
    pub(super) fn gated(&self, net: &Net<T>, x: &DMatrix<T>, f: &DMatrix<T>) -> DMatrix<T> {
        DMatrix::from_fn(x.nrows(), x.ncols(), |i, s| {
            (T::one() - net.g[i]) * x[(i, s)] + net.g[i] * f[(i, s)]
        })
    }
}

/// The network evaluated on a batch.
pub(super) struct Pass<T: Real> {
    /// Pre-activations of every layer (`D·aₗ × n`), the output `f` last.
    pub pre: Vec<DMatrix<T>>,
    /// `tanh` of the hidden layers' pre-activations.
    pub h: Vec<DMatrix<T>>,
    /// `log sech²` of the hidden layers' pre-activations.
    pub log_slope: Vec<DMatrix<T>>,
}

/// `Σ aᵢ bᵢ` with four independent accumulators (a dependency chain of
/// one fused sum would leave the loop latency-bound).
#[inline]
pub(super) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for q in 0..4 {
            acc[q] += x[q] * y[q];
        }
    }
    let tail = ra.iter().zip(rb).fold(T::zero(), |s, (&x, &y)| s + x * y);
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Offset of row `k`'s packed entries in a layer's `V` (row `k` of block
/// `i = k / a_out` holds `(i + 1)·a_in` entries).
#[inline]
pub(super) fn row_start(a_in: usize, a_out: usize, k: usize) -> usize {
    let i = k / a_out;
    a_out * a_in * (i * (i + 1) / 2) + (k - i * a_out) * (i + 1) * a_in
}

/// One layer's part of the log-Jacobian chain of one coordinate, kept for
/// the reverse pass.
#[derive(Clone)]
pub(super) struct Link<T: Real> {
    /// `exp(ℓv − max ℓv)` of the layer's input (`a_in`).
    v_hat: Vec<T>,
    /// `max ℓv` of the input.
    v_max: T,
    /// The input `ℓv` itself (for the rows computed exactly).
    lv_in: Vec<T>,
    /// Per output row: `Σⱼ Ŵ[k, j] v̂ⱼ`, or `NaN` where the row was computed
    /// by the exact log-sum-exp (the shifted sum underflowed).
    sum: Vec<T>,
    /// Per output row: `Mₖ = LSEⱼ(log W[k, j] + ℓvⱼ)`.
    m: Vec<T>,
}

/// The chain of one coordinate: one [`Link`] per layer.
#[derive(Clone)]
pub(super) struct Chain<T: Real> {
    links: Vec<Link<T>>,
    lv: Vec<T>,
    g_in: Vec<T>,
    g_out: Vec<T>,
}

impl<T: Real> Chain<T> {
    pub fn new(net: &Net<T>) -> Self {
        let links = net
            .layers
            .iter()
            .map(|l| Link {
                v_hat: vec![T::zero(); l.a_in],
                v_max: T::zero(),
                lv_in: vec![T::zero(); l.a_in],
                sum: vec![T::zero(); l.a_out],
                m: vec![T::zero(); l.a_out],
            })
            .collect();
        let widest = net.layers.iter().map(|l| l.a_in.max(l.a_out)).max();
        let widest = widest.unwrap_or(1);
        Chain {
            links,
            lv: vec![T::zero(); widest],
            g_in: vec![T::zero(); widest],
            g_out: vec![T::zero(); widest],
        }
    }

    /// `log ∂fᵢ/∂xᵢ` of one sample: `ℓv₀ = 0` (`a₀ = 1`), then for every
    /// layer `ℓvₗ[k] = log sech²(preₗ[k]) + LSEⱼ(log Wₗ⁽ⁱⁱ⁾[k, j] + ℓvₗ₋₁[j])`
    /// (no activation after the output layer), the result `ℓv_{L+1}[0]`.
    ///
    /// The log-sum-exp is evaluated as `max log W[k,·] + max ℓv + log Σⱼ Ŵ v̂`
    /// with `Ŵ`, `v̂` the shifted exponentials (entries in `[0, 1]`, the
    /// largest of each 1): one exponential per input entry instead of one
    /// per product. A row whose shifted sum is below `ε⁴` (some product
    /// underflowed) is recomputed term by term.
    ///
    /// `log_slope(l, k)` gives `log sech²` of the pre-activation of row `k`
    /// of block `i` of hidden layer `l` for this sample.
    pub fn forward(&mut self, net: &Net<T>, i: usize, log_slope: impl Fn(usize, usize) -> T) -> T {
        let tiny = T::machine_epsilon().powi(4);
        self.lv[0] = T::zero();
        let last = net.layers.len() - 1;
        for (l, layer) in net.layers.iter().enumerate() {
            let link = &mut self.links[l];
            let input = &self.lv[..layer.a_in];
            let v_max = input.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
            link.v_max = v_max;
            link.lv_in.copy_from_slice(input);
            for (vh, &v) in link.v_hat.iter_mut().zip(input) {
                *vh = (v - v_max).exp();
            }
            for k in 0..layer.a_out {
                let row = layer.diag_index(i, k, 0);
                let w_hat = &layer.w_hat[row..row + layer.a_in];
                let sum = dot(w_hat, &link.v_hat);
                let rm = layer.row_max[i * layer.a_out + k];
                link.m[k] = if sum >= tiny {
                    link.sum[k] = sum;
                    rm + v_max + sum.ln()
                } else {
                    link.sum[k] = T::nan();
                    let lw = &layer.log_wd[row..row + layer.a_in];
                    log_sum_exp(lw.iter().zip(&link.lv_in).map(|(&a, &b)| a + b))
                };
            }
            for k in 0..layer.a_out {
                self.lv[k] = if l < last {
                    link.m[k] + log_slope(l, k)
                } else {
                    link.m[k]
                };
            }
        }
        self.lv[0]
    }

    /// Reverse mode of [`Chain::forward`] (last run for coordinate `i`) for
    /// the cotangent `g` of its result: adds `∂/∂ log W` of the diagonal
    /// block entries into `g_log_w[l]` (layout of `log_wd`) and calls
    /// `g_pre(l, k, v)` with the cotangent `v` of hidden pre-activation
    /// `(l, k)`; `th(l, k)` is `tanh` of that pre-activation.
    pub fn backward(
        &mut self,
        net: &Net<T>,
        i: usize,
        g: T,
        th: impl Fn(usize, usize) -> T,
        g_log_w: &mut [Vec<T>],
        mut g_pre: impl FnMut(usize, usize, T),
    ) {
        let last = net.layers.len() - 1;
        self.g_out[0] = g;
        for (l, layer) in net.layers.iter().enumerate().rev() {
            let link = &self.links[l];
            if l < last {
                for k in 0..layer.a_out {
                    // d log sech²(x)/dx = −2 tanh x.
                    let v = -T::lit(2.0) * th(l, k) * self.g_out[k];
                    g_pre(l, k, v);
                }
            }
            self.g_in[..layer.a_in]
                .iter_mut()
                .for_each(|v| *v = T::zero());
            let gw = &mut g_log_w[l];
            for k in 0..layer.a_out {
                let gk = self.g_out[k];
                if gk == T::zero() {
                    continue;
                }
                let row = layer.diag_index(i, k, 0);
                let sum = link.sum[k];
                if sum.is_nan_() {
                    let lw = &layer.log_wd[row..row + layer.a_in];
                    for j in 0..layer.a_in {
                        let q = gk * (lw[j] + link.lv_in[j] - link.m[k]).exp();
                        gw[row + j] += q;
                        self.g_in[j] += q;
                    }
                } else {
                    let rho = gk / sum;
                    let w_hat = &layer.w_hat[row..row + layer.a_in];
                    let gw_row = &mut gw[row..row + layer.a_in];
                    let g_in = &mut self.g_in[..layer.a_in];
                    for (((gw, gi), &w), &v) in
                        gw_row.iter_mut().zip(g_in).zip(w_hat).zip(&link.v_hat)
                    {
                        let q = rho * w * v;
                        *gw += q;
                        *gi += q;
                    }
                }
            }
            let (a, b) = (&mut self.g_out, &self.g_in);
            a[..layer.a_in].copy_from_slice(&b[..layer.a_in]);
        }
    }
}
