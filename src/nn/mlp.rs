use nalgebra::{DMatrix, DMatrixView, DVectorView};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::Activation;
use crate::error::check;
use crate::{Error, Real};

/// A fully connected network `in → hidden … → out` with one activation between
/// layers and a linear output layer, evaluated as one gemm per layer on a
/// `in × n` batch.
///
/// Parameters live in one buffer: for each layer, the `out × in` weight matrix
/// (column-major), then the bias.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::nn::{Activation, Mlp};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let net = Mlp::<f64>::new(&[3, 16, 16, 2], Activation::Relu, false, &mut rng)?;
/// assert_eq!(net.num_params(), (3 * 16 + 16) + (16 * 16 + 16) + (16 * 2 + 2));
/// assert_eq!(net.forward(&DMatrix::zeros(3, 5)).shape(), (2, 5));
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp<T: Real> {
    sizes: Vec<usize>,
    activation: Activation,
    params: Vec<T>,
}

impl<T: Real> Mlp<T> {
    /// A network with layer sizes `sizes = [in, h₁, …, out]` (at least two
    /// entries, all ≥ 1). Weights and biases are drawn from
    /// `U(−1/√fan_in, 1/√fan_in)` (the PyTorch default); with `zero_last`, the
    /// output layer starts at zero.
    pub fn new(
        sizes: &[usize],
        activation: Activation,
        zero_last: bool,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "Mlp::new";
        if sizes.len() < 2 {
            return Err(check::invalid(
                CTX,
                "sizes",
                "at least an input and an output size",
                format!("{sizes:?}"),
            ));
        }
        for (i, s) in sizes.iter().enumerate() {
            check::dim_at_least_one(CTX, &format!("sizes[{i}]"), *s)?;
        }
        let n: usize = sizes.windows(2).map(|w| w[1] * w[0] + w[1]).sum();
        let mut params = Vec::with_capacity(n);
        let last = sizes.len() - 2;
        for (l, w) in sizes.windows(2).enumerate() {
            let bound = 1.0 / (w[0] as f64).sqrt();
            for _ in 0..(w[1] * w[0] + w[1]) {
                let v = if zero_last && l == last {
                    0.0
                } else {
                    rng.random_range(-bound..bound)
                };
                params.push(T::lit(v));
            }
        }
        Ok(Self {
            sizes: sizes.to_vec(),
            activation,
            params,
        })
    }

    /// Layer sizes `[in, h₁, …, out]`.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Input width.
    pub fn input_dim(&self) -> usize {
        self.sizes[0]
    }

    /// Output width.
    pub fn output_dim(&self) -> usize {
        *self.sizes.last().expect("at least two sizes")
    }

    /// The activation between layers.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of layers (weight matrices).
    pub fn num_layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// All parameters, layer by layer (weights column-major, then bias).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable access to the flat parameter buffer.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Offset of layer `l`'s weights in the buffer, and its `(out, in)` shape.
    pub fn layer_offset(&self, l: usize) -> (usize, usize, usize) {
        let off: usize = self.sizes[..=l]
            .windows(2)
            .map(|w| w[1] * w[0] + w[1])
            .sum();
        (off, self.sizes[l + 1], self.sizes[l])
    }

    /// Views of layer `l`'s weight matrix (`out × in`) and bias.
    pub fn layer(&self, l: usize) -> (DMatrixView<'_, T>, DVectorView<'_, T>) {
        let (off, out, inp) = self.layer_offset(l);
        let w = DMatrixView::from_slice(&self.params[off..off + out * inp], out, inp);
        let b = DVectorView::from_slice(&self.params[off + out * inp..off + out * inp + out], out);
        (w, b)
    }

    /// Evaluates the network on an `in × n` batch, returning `out × n`.
    ///
    /// # Panics
    /// If `x` does not have `in` rows.
    pub fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        crate::bijector::assert_rows("Mlp::forward", self.sizes[0], x);
        let mut h = x.clone();
        for l in 0..self.num_layers() {
            let (w, b) = self.layer(l);
            let mut z = DMatrix::zeros(w.nrows(), h.ncols());
            z.gemm(T::one(), &w, &h, T::zero());
            let last = l + 1 == self.num_layers();
            let act = self.activation;
            for mut col in z.column_iter_mut() {
                for (v, bi) in col.iter_mut().zip(b.iter()) {
                    *v += *bi;
                    if !last {
                        *v = act.apply(*v);
                    }
                }
            }
            h = z;
        }
        h
    }
}

impl<T: Real> Mlp<T> {
    /// Evaluates the network and keeps what the backward pass needs: the
    /// input to every layer (`inputs[l]`, post-activation) and every hidden
    /// pre-activation. Returns `(output, cache)`.
    pub fn forward_cached(&self, x: &DMatrix<T>) -> (DMatrix<T>, MlpCache<T>) {
        crate::bijector::assert_rows("Mlp::forward_cached", self.sizes[0], x);
        let mut inputs = Vec::with_capacity(self.num_layers());
        let mut pre = Vec::with_capacity(self.num_layers());
        let mut h = x.clone();
        for l in 0..self.num_layers() {
            let (w, b) = self.layer(l);
            let mut z = DMatrix::zeros(w.nrows(), h.ncols());
            z.gemm(T::one(), &w, &h, T::zero());
            for mut col in z.column_iter_mut() {
                col += &b;
            }
            let last = l + 1 == self.num_layers();
            inputs.push(h);
            if last {
                h = z;
            } else {
                let act = self.activation;
                h = z.map(|v| act.apply(v));
                pre.push(z);
            }
        }
        (h, MlpCache { inputs, pre })
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
        let mut delta = grad_out.clone();
        for l in (0..self.num_layers()).rev() {
            let (off, out, inp) = self.layer_offset(l);
            let h = &cache.inputs[l];
            {
                let mut gw = nalgebra::DMatrixViewMut::from_slice(
                    &mut grad_params[off..off + out * inp],
                    out,
                    inp,
                );
                if let Some(m) = masks {
                    // Mask the increment, not the buffer: what the buffer
                    // already holds must survive (backward passes add).
                    let mut inc = DMatrix::zeros(out, inp);
                    inc.gemm(T::one(), &delta, &h.transpose(), T::zero());
                    inc.component_mul_assign(&m[l]);
                    gw += inc;
                } else {
                    gw.gemm(T::one(), &delta, &h.transpose(), T::one());
                }
            }
            for (j, gb) in grad_params[off + out * inp..off + out * inp + out]
                .iter_mut()
                .enumerate()
            {
                *gb += delta.row(j).sum();
            }
            let (w, _) = self.layer(l);
            let mut below = DMatrix::zeros(inp, delta.ncols());
            below.gemm(T::one(), &w.transpose(), &delta, T::zero());
            if l > 0 {
                let act = self.activation;
                let z = &cache.pre[l - 1];
                below.zip_apply(z, |g, zv| *g *= act.derivative(zv));
            }
            delta = below;
        }
        delta
    }
}

/// What [`Mlp::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct MlpCache<T: Real> {
    inputs: Vec<DMatrix<T>>,
    pre: Vec<DMatrix<T>>,
}
