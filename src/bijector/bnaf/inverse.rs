//! The sampling direction of [`BlockNeuralAutoregressive`]: the network's
//! map inverted coordinate by coordinate, each a safeguarded Newton solve
//! on a bracket that the bounded network output gives.

use nalgebra::{DMatrix, DVector};

use super::BlockNeuralAutoregressive;
use super::network::{Chain, Net, log_sech2};
use crate::Real;
use crate::bijector::root::{Eval, newton_to_precision, tanh_sech2};

/// The per-sample state of a solve: every layer's pre-activations and
/// inputs, filled block by block as the coordinates are found.
struct Sample<T: Real> {
    /// Pre-activations of layer `l` (`D·a_out`), the output layer's last.
    pre: Vec<Vec<T>>,
    /// Inputs of layer `l` (`D·a_in`): `x` for the first, `tanh` of the
    /// previous pre-activations after.
    input: Vec<Vec<T>>,
    /// Per layer, the rows of the current block: bias, context and the
    /// blocks before the diagonal (fixed while coordinate `i` is solved).
    fixed: Vec<Vec<T>>,
    /// Per layer, scratch for a trial evaluation: values and slopes.
    z: Vec<T>,
    v: Vec<T>,
    z_next: Vec<T>,
    v_next: Vec<T>,
}

impl<T: Real> BlockNeuralAutoregressive<T> {
    /// `(x, log|det ∂x/∂u|)` for the batch `u` under the contexts `c`.
    pub(super) fn sample(&self, u: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let (dim, n) = (self.dim, u.ncols());
        let net = self.net();
        let mut chain = Chain::new(&net);
        let widest = self.units.max(1);
        let mut st = Sample {
            pre: net
                .layers
                .iter()
                .map(|l| vec![T::zero(); dim * l.a_out])
                .collect(),
            input: net
                .layers
                .iter()
                .map(|l| vec![T::zero(); dim * l.a_in])
                .collect(),
            fixed: net
                .layers
                .iter()
                .map(|l| vec![T::zero(); l.a_out])
                .collect(),
            z: vec![T::zero(); widest],
            v: vec![T::zero(); widest],
            z_next: vec![T::zero(); widest],
            v_next: vec![T::zero(); widest],
        };
        let mut x = DMatrix::zeros(dim, n);
        let mut ldj = DVector::zeros(n);
        let lay = self.layout();
        for s in 0..n {
            let mut total = T::zero();
            for i in 0..dim {
                self.fix_block(&net, &lay, &mut st, c, s, i);
                let xi = self.solve(&net, &mut st, i, u[(i, s)]);
                x[(i, s)] = xi;
                self.finish_block(&net, &mut st, i, xi);
                let a = self.units;
                let pre = &st.pre;
                total +=
                    Self::log_slope_with(&net, &mut chain, i, |l, k| log_sech2(pre[l][i * a + k]))
                        .0;
            }
            ldj[s] = -total;
        }
        (x, ldj)
    }

    /// The parts of block `i`'s pre-activations that do not depend on `xᵢ`.
    fn fix_block(
        &self,
        net: &Net<T>,
        lay: &super::Layout,
        st: &mut Sample<T>,
        c: &DMatrix<T>,
        s: usize,
        i: usize,
    ) {
        for (l, layer) in net.layers.iter().enumerate() {
            let b = &self.params[lay.layers[l].b..];
            for k in 0..layer.a_out {
                let row = i * layer.a_out + k;
                let mut v = b[row];
                for j in 0..i * layer.a_in {
                    v += layer.w[(row, j)] * st.input[l][j];
                }
                if l == 0 {
                    for j in 0..self.context_dim {
                        v += net.ctx[(row, j)] * c[(j, s)];
                    }
                }
                st.fixed[l][k] = v;
            }
        }
    }

    /// Evaluates `fᵢ` and `∂fᵢ/∂xᵢ` at `xᵢ = t` (the diagonal-block path);
    /// with `keep`, stores the pre-activations and the layers' inputs of
    /// block `i`.
    fn eval_block(&self, net: &Net<T>, st: &mut Sample<T>, i: usize, t: T, keep: bool) -> (T, T) {
        st.z[0] = t;
        st.v[0] = T::one();
        let last = net.layers.len() - 1;
        let mut out = (T::zero(), T::zero());
        for (l, layer) in net.layers.iter().enumerate() {
            if keep {
                let at = i * layer.a_in;
                st.input[l][at..at + layer.a_in].copy_from_slice(&st.z[..layer.a_in]);
            }
            for k in 0..layer.a_out {
                let row = i * layer.a_out + k;
                let (mut p, mut d) = (st.fixed[l][k], T::zero());
                for j in 0..layer.a_in {
                    let w = layer.w[(row, i * layer.a_in + j)];
                    p += w * st.z[j];
                    d += w * st.v[j];
                }
                if keep {
                    st.pre[l][row] = p;
                }
                if l == last {
                    out = (p, d);
                } else {
                    let (th, s2) = tanh_sech2(p);
                    st.z_next[k] = th;
                    st.v_next[k] = s2 * d;
                }
            }
            std::mem::swap(&mut st.z, &mut st.z_next);
            std::mem::swap(&mut st.v, &mut st.v_next);
        }
        out
    }

    /// Stores block `i`'s values at the solution `xᵢ`.
    fn finish_block(&self, net: &Net<T>, st: &mut Sample<T>, i: usize, xi: T) {
        self.eval_block(net, st, i, xi, true);
        // The next layers' inputs of block i: tanh of these pre-activations.
        for l in 1..net.layers.len() {
            let a = net.layers[l].a_in;
            for k in 0..a {
                st.input[l][i * a + k] = st.pre[l - 1][i * a + k].tanh();
            }
        }
    }

    /// The root `xᵢ` of `(1 − g) xᵢ + g fᵢ(xᵢ) = uᵢ` (type docs); non-finite
    /// input gives a non-finite root.
    fn solve(&self, net: &Net<T>, st: &mut Sample<T>, i: usize, ui: T) -> T {
        // g and h = 1 − g, the latter as exp(log(1 − g)), without cancellation.
        let (g, h) = (net.g[i], net.log_1mg[i].exp());
        let fixed_ok = st.fixed.iter().all(|f| f.iter().all(|v| v.is_finite()));
        if !ui.is_finite() || !fixed_ok {
            return if fixed_ok { ui } else { T::nan() };
        }
        // |fᵢ| ≤ Bᵢ brackets the root.
        let bound = net.bound[i];
        let lo = (ui - g * bound) / h;
        let hi = (ui + g * bound) / h;
        let residual = |t: T, st: &mut Sample<T>| {
            let (f, d) = self.eval_block(net, st, i, t, false);
            (h * t + g * f - ui, h + g * d, f)
        };
        // A gate of 0 (no bracket), or of 1 in floating point (no root
        // outside f's bounded image).
        if lo >= hi || !(hi - lo).is_finite() {
            return ui / h;
        }
        if residual(lo, st).0 >= T::zero() {
            return lo;
        }
        if residual(hi, st).0 <= T::zero() {
            return hi;
        }
        let eps = T::machine_epsilon();
        let start = ui / h;
        newton_to_precision(lo, hi, start, |t| {
            let (value, slope, f) = residual(t, st);
            Eval {
                value,
                slope,
                noise: T::lit(4.0) * eps * ((h * t).abs() + g * (f.abs() + bound) + ui.abs()),
            }
        })
    }
}
