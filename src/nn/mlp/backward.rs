//! The reverse mode of [`Mlp`]: the forward pass that keeps what the
//! backward pass needs ([`MlpCache`]), and the backward pass through plain
//! layers and residual blocks.

use nalgebra::DMatrix;

use super::elementwise::{add_bias, bias_activate_into, mul_derivative};
use super::{Mlp, RowBlock};
use crate::Real;
use crate::nn::gemm::{self, MatMut, MatRef};
use crate::nn::pool::{self, Scratch};

impl<T: Real> Mlp<T> {
    /// Evaluates the network and keeps what the backward pass needs: the
    /// input to every layer (`inputs[l]`) and, where that input is an
    /// activation, its pre-activation. Returns `(output, cache)`.
    pub fn forward_cached(&self, x: &DMatrix<T>) -> (DMatrix<T>, MlpCache<T>) {
        crate::batch::assert_rows("Mlp::forward_cached", self.sizes[0], x);
        let layers = self.num_layers();
        let last = layers - 1;
        let mut inputs = Vec::with_capacity(layers);
        let mut pre = Vec::with_capacity(layers);
        let mut x_copy = pool::take_scratch(x.nrows(), x.ncols());
        x_copy.copy_from(x);
        inputs.push(x_copy);
        pre.push(None);
        if self.residual {
            let mut h = self.affine(0, x);
            for l in (1..last).step_by(2) {
                let a = self.activate(&h);
                let t = self.affine(l, &a);
                let a2 = self.activate(&t);
                let mut h_prev = pool::take_scratch(h.nrows(), h.ncols());
                h_prev.copy_from(&*h);
                self.add_affine(l + 1, &a2, &mut h);
                inputs.push(a);
                pre.push(Some(h_prev));
                inputs.push(a2);
                pre.push(Some(t));
            }
            let out = self.affine(last, &h);
            inputs.push(h);
            pre.push(None);
            return (out.into_inner(), MlpCache { inputs, pre });
        }
        let h = self.linear(0, x);
        // Each bias is added in the pass that also applies the activation.
        let mut h = h;
        for l in 1..=last {
            let mut a = pool::take_scratch(h.nrows(), h.ncols());
            bias_activate_into(
                self.activation,
                self.bias(l - 1),
                h.as_mut_slice(),
                a.as_mut_slice(),
            );
            let z = self.linear(l, &a);
            inputs.push(a);
            pre.push(Some(h));
            h = z;
        }
        add_bias(self.bias(last), h.as_mut_slice());
        (h.into_inner(), MlpCache { inputs, pre })
    }

    /// Adds layer `l`'s weight and bias gradients for output cotangent
    /// `delta` into `grad_params` and returns `Wᵀ δ` (the cotangent of the
    /// layer's input), multiplied by the activation's derivative when the
    /// input was an activation (so the result is the cotangent of the
    /// pre-activation).
    fn layer_backward(
        &self,
        l: usize,
        cache: &MlpCache<T>,
        delta: &DMatrix<T>,
        grad_params: &mut [T],
        masks: Option<&[DMatrix<T>]>,
    ) -> Scratch<T> {
        let (off, out, inp) = self.layer_offset(l);
        let h: &DMatrix<T> = &cache.inputs[l];
        let n = delta.ncols();
        let (gw, rest) = grad_params[off..off + out * inp + out].split_at_mut(out * inp);
        // ∂L/∂W = δ hᵀ: the transpose is a view with swapped strides.
        let h_t = MatRef::from(h).t();
        if let Some(m) = masks {
            // Mask the increment, not the buffer: what the buffer already
            // holds must survive (backward passes add). Only the row blocks
            // can hold unmasked weights (without blocks: one block, all
            // masked); the rest of the gradient is zero.
            let whole = [RowBlock {
                rows: (0, out),
                cols: (0, inp),
                full: 0,
            }];
            let blocks = self.row_blocks(l).unwrap_or(&whole);
            let mut inc = pool::take_scratch(out, inp);
            let mask = m[l].as_slice();
            for b in blocks {
                // Columns the mask keeps whole: accumulate in place.
                gemm::gemm(
                    T::one(),
                    MatRef::from(delta).block(b.rows, (0, n)),
                    h_t.block((0, n), (b.cols.0, b.full)),
                    T::one(),
                    MatMut::col_major(gw, out, inp).block(b.rows, (b.cols.0, b.full)),
                );
                // The rest: the increment, masked.
                gemm::gemm(
                    T::one(),
                    MatRef::from(delta).block(b.rows, (0, n)),
                    h_t.block((0, n), (b.full, b.cols.1)),
                    T::zero(),
                    MatMut::from(&mut *inc).block(b.rows, (b.full, b.cols.1)),
                );
                for c in b.full..b.cols.1 {
                    let range = c * out + b.rows.0..c * out + b.rows.1;
                    for ((g, i), mk) in gw[range.clone()]
                        .iter_mut()
                        .zip(&inc.as_slice()[range.clone()])
                        .zip(&mask[range])
                    {
                        *g += *i * *mk;
                    }
                }
            }
        } else {
            gemm::gemm(
                T::one(),
                delta.into(),
                h_t,
                T::one(),
                MatMut::col_major(gw, out, inp),
            );
        }
        gemm::add_row_sums(delta.as_slice(), out, rest);
        let mut below = pool::take_scratch(inp, n);
        match self.row_blocks(l) {
            None => gemm::gemm(
                T::one(),
                self.weight_ref(l).t(),
                delta.into(),
                T::zero(),
                (&mut *below).into(),
            ),
            Some(blocks) => {
                // Wᵀδ = Σ over blocks of W[rows, cols]ᵀ δ[rows] into below[cols].
                below.fill(T::zero());
                let w = self.weight_ref(l);
                for b in blocks {
                    gemm::gemm(
                        T::one(),
                        w.block(b.rows, b.cols).t(),
                        MatRef::from(delta).block(b.rows, (0, n)),
                        T::one(),
                        MatMut::from(&mut *below).block(b.cols, (0, n)),
                    );
                }
            }
        }
        if let Some(z) = &cache.pre[l] {
            mul_derivative(self.activation, below.as_mut_slice(), z.as_slice());
        }
        below
    }

    /// Reverse mode: given the cache of [`Mlp::forward_cached`] and `∂L/∂out`,
    /// **adds** `∂L/∂θ` into `grad_params` (same layout as [`Mlp::params`]) and
    /// returns `∂L/∂x`. `mask`, if given, multiplies each layer's weight
    /// gradient (a MADE keeps masked weights at zero this way).
    pub fn backward(
        &self,
        cache: &MlpCache<T>,
        grad_out: &DMatrix<T>,
        grad_params: &mut [T],
        masks: Option<&[DMatrix<T>]>,
    ) -> DMatrix<T> {
        assert_eq!(
            grad_params.len(),
            self.num_params(),
            "Mlp::backward: gradient buffer has the wrong length"
        );
        let last = self.num_layers() - 1;
        if self.residual {
            // Cotangent of the residual stream h.
            let mut g_h = self.layer_backward(last, cache, grad_out, grad_params, masks);
            for l in (1..last).step_by(2).rev() {
                let g_t = self.layer_backward(l + 1, cache, &g_h, grad_params, masks);
                let g_a = self.layer_backward(l, cache, &g_t, grad_params, masks);
                drop(g_t);
                *g_h += &*g_a;
            }
            let g_x = self.layer_backward(0, cache, &g_h, grad_params, masks);
            drop(g_h);
            return g_x.into_inner();
        }
        let mut delta = self.layer_backward(last, cache, grad_out, grad_params, masks);
        for l in (0..last).rev() {
            // The cotangent above goes back to the pool here.
            delta = self.layer_backward(l, cache, &delta, grad_params, masks);
        }
        delta.into_inner()
    }
}

/// What [`Mlp::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct MlpCache<T: Real> {
    /// Pooled: the buffers go back to the thread's pool when the cache drops.
    inputs: Vec<Scratch<T>>,
    pre: Vec<Option<Scratch<T>>>,
}
