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
