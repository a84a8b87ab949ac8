use nalgebra::{DMatrix, DMatrixView, DVectorView};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::gemm::{self, MatMut, MatRef};
use super::pool::{self, Scratch};
use super::{Activation, ConditionerConfig};
use crate::error::check;
use crate::{Error, Real};

mod backward;
mod elementwise;

pub use backward::MlpCache;
pub(crate) use elementwise::activate_in_place;
use elementwise::{add_bias, apply_activation, bias_activate_in_place};

/// A fully connected network evaluated as one gemm per layer on an `in × n`
/// batch. Two architectures:
///
/// - **plain** (`in → hidden … → out`): one activation after every hidden
///   layer, a linear output layer;
/// - **residual** (the `ResidualNet` of nflows, He et al. 2016's pre-activation
///   blocks): a linear input layer `h₀ = W₀x + b₀`, then `B` blocks
///   `h ← h + W₂ act(W₁ act(h) + b₁) + b₂`, then a linear output layer on the
///   last `h`. Each block's second layer starts near zero (`U(±10⁻³)`), so a
///   fresh block is close to the identity.
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
///
/// // Two residual blocks of width 16: 3 → 16, (16 → 16 → 16) × 2, 16 → 2.
/// let res = Mlp::<f64>::residual(3, 16, 2, 2, Activation::Relu, false, &mut rng)?;
/// assert_eq!(res.num_layers(), 6);
/// assert!(res.is_residual());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp<T: Real> {
    sizes: Vec<usize>,
    activation: Activation,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    residual: bool,
    params: Vec<T>,
    /// Per layer, when set: row blocks of the weight matrix, each with the
    /// column range outside of which its weights are zero (a MADE's masks
    /// give them). The products then skip the zero blocks. Derived data, not
    /// saved.
    #[serde(skip)]
    blocks: Vec<Option<Vec<RowBlock>>>,
    /// The same, in finer blocks, for the forward products (which are
    /// cheap to split; the backward ones are not). Derived data, not saved.
    #[serde(skip)]
    forward_blocks: Vec<Option<Vec<RowBlock>>>,
}

/// Rows `rows.0..rows.1` of a weight matrix, whose weights outside columns
/// `cols.0..cols.1` are zero, and whose mask is all ones on columns
/// `cols.0..full` (`cols.0 ≤ full ≤ cols.1`): the gradient of those needs no
/// masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowBlock {
    pub(crate) rows: (usize, usize),
    pub(crate) cols: (usize, usize),
    pub(crate) full: usize,
}

/// How layer `l` of a network is initialised.
#[derive(Clone, Copy)]
enum Init {
    /// `U(−1/√fan_in, 1/√fan_in)` (the PyTorch default).
    Standard,
    /// `U(±10⁻³)`: the last layer of a residual block.
    Small,
    /// All zero: the output layer of an identity-initialised conditioner.
    Zero,
}

impl<T: Real> Mlp<T> {
    /// A plain network with layer sizes `sizes = [in, h₁, …, out]` (at least
    /// two entries, all ≥ 1). Weights and biases are drawn from
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
        let last = sizes.len() - 2;
        let inits = (0..=last).map(|l| {
            if zero_last && l == last {
                Init::Zero
            } else {
                Init::Standard
            }
        });
        Ok(Self::initialised(
            sizes.to_vec(),
            activation,
            false,
            inits,
            rng,
        ))
    }

    /// A residual network `in → hidden`, `blocks` residual blocks of width
    /// `hidden`, `hidden → out` (see the type's documentation). With
    /// `zero_last`, the output layer starts at zero.
    pub fn residual(
        inputs: usize,
        hidden: usize,
        blocks: usize,
        outputs: usize,
        activation: Activation,
        zero_last: bool,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "Mlp::residual";
        check::dim_at_least_one(CTX, "inputs", inputs)?;
        check::dim_at_least_one(CTX, "hidden", hidden)?;
        check::dim_at_least_one(CTX, "blocks", blocks)?;
        check::dim_at_least_one(CTX, "outputs", outputs)?;
        let mut sizes = vec![inputs];
        sizes.extend(std::iter::repeat_n(hidden, 2 * blocks + 1));
        sizes.push(outputs);
        let last = sizes.len() - 2;
        let inits = (0..=last).map(|l| {
            if l == last {
                if zero_last {
                    Init::Zero
                } else {
                    Init::Standard
                }
            } else if l > 0 && l % 2 == 0 {
                Init::Small
            } else {
                Init::Standard
            }
        });
        Ok(Self::initialised(sizes, activation, true, inits, rng))
    }

    /// The conditioner network of `config` from `inputs` to `outputs`: plain
    /// with `config.depth` hidden layers, or residual with `config.depth`
    /// blocks; the output layer starts at zero when `config.identity_init`.
    pub fn from_config(
        inputs: usize,
        outputs: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        if config.residual {
            Self::residual(
                inputs,
                config.hidden,
                config.depth,
                outputs,
                config.activation,
                config.identity_init,
                rng,
            )
        } else {
            let mut sizes = vec![inputs];
            sizes.extend(std::iter::repeat_n(config.hidden, config.depth));
            sizes.push(outputs);
            Self::new(&sizes, config.activation, config.identity_init, rng)
        }
    }

    fn initialised(
        sizes: Vec<usize>,
        activation: Activation,
        residual: bool,
        inits: impl Iterator<Item = Init>,
        rng: &mut dyn Rng,
    ) -> Self {
        let n: usize = sizes.windows(2).map(|w| w[1] * w[0] + w[1]).sum();
        let mut params = Vec::with_capacity(n);
        for (w, init) in sizes.windows(2).zip(inits) {
            let bound = match init {
                Init::Standard => 1.0 / (w[0] as f64).sqrt(),
                Init::Small => 1e-3,
                Init::Zero => 0.0,
            };
            for _ in 0..(w[1] * w[0] + w[1]) {
                let v = if bound == 0.0 {
                    0.0
                } else {
                    rng.random_range(-bound..bound)
                };
                params.push(T::lit(v));
            }
        }
        Self {
            sizes,
            activation,
            residual,
            params,
            blocks: Vec::new(),
            forward_blocks: Vec::new(),
        }
    }

    /// Declares the zero structure of layer `l`'s weights (see
    /// [`RowBlock`]), in the blocks the forward products use and in those
    /// the backward ones use (each covering every weight that may be
    /// nonzero); `None` makes those products dense again. The caller keeps
    /// the weights outside the blocks at zero.
    pub(crate) fn set_row_blocks(
        &mut self,
        l: usize,
        forward: Option<Vec<RowBlock>>,
        backward: Option<Vec<RowBlock>>,
    ) {
        let n = self.num_layers();
        for b in [&mut self.blocks, &mut self.forward_blocks] {
            if b.len() < n {
                b.resize(n, None);
            }
        }
        self.forward_blocks[l] = forward;
        self.blocks[l] = backward;
    }

    /// Layer `l`'s blocks for the backward products.
    fn row_blocks(&self, l: usize) -> Option<&[RowBlock]> {
        self.blocks.get(l).and_then(|b| b.as_deref())
    }

    /// Layer `l`'s blocks for the forward product.
    fn forward_row_blocks(&self, l: usize) -> Option<&[RowBlock]> {
        self.forward_blocks.get(l).and_then(|b| b.as_deref())
    }

    /// Layer sizes `[in, h₁, …, out]` (for a residual network, every hidden
    /// size is the same width).
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Whether this is a residual network.
    pub fn is_residual(&self) -> bool {
        self.residual
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

    /// Checks the structure after deserialisation: sizes, parameter count,
    /// and for a residual network equal hidden widths and whole blocks.
    pub(crate) fn validate(&self, context: &str) -> Result<(), Error> {
        if self.sizes.len() < 2 || self.sizes.contains(&0) {
            return Err(check::invalid(
                context,
                "sizes",
                "at least two layer sizes, all ≥ 1",
                format!("{:?}", self.sizes),
            ));
        }
        if self.residual {
            let hidden = &self.sizes[1..self.sizes.len() - 1];
            if hidden.len() < 3
                || hidden.len().is_multiple_of(2)
                || hidden.iter().any(|&h| h != hidden[0])
            {
                return Err(check::invalid(
                    context,
                    "sizes",
                    "[in, h, (h, h) × blocks, out] for a residual network",
                    format!("{:?}", self.sizes),
                ));
            }
        }
        let n: usize = self.sizes.windows(2).map(|w| w[1] * w[0] + w[1]).sum();
        if self.params.len() != n {
            return Err(check::invalid(
                context,
                "params",
                &format!("{n} values for sizes {:?}", self.sizes),
                format!("{} values", self.params.len()),
            ));
        }
        Ok(())
    }

    /// Layer `l`'s weight matrix (`out × in`, column-major) as a strided view.
    pub(crate) fn weight_ref(&self, l: usize) -> MatRef<'_, T> {
        let (off, out, inp) = self.layer_offset(l);
        MatRef::col_major(&self.params[off..off + out * inp], out, inp)
    }

    /// Layer `l`'s bias.
    pub(crate) fn bias(&self, l: usize) -> &[T] {
        let (off, out, inp) = self.layer_offset(l);
        &self.params[off + out * inp..off + out * inp + out]
    }

    /// `W_l h + b_l` into a fresh (pooled) matrix.
    fn affine(&self, l: usize, h: &DMatrix<T>) -> Scratch<T> {
        let mut z = pool::take_matrix_with_columns(self.bias(l), h.ncols());
        gemm::gemm(
            T::one(),
            self.weight_ref(l),
            h.into(),
            T::one(),
            (&mut *z).into(),
        );
        z
    }

    /// `W_l h` (no bias) into a pooled matrix, for a caller that adds the
    /// bias in its next elementwise pass.
    fn linear(&self, l: usize, h: &DMatrix<T>) -> Scratch<T> {
        let (_, out, _) = self.layer_offset(l);
        let n = h.ncols();
        let mut z = pool::take_scratch(out, n);
        match self.forward_row_blocks(l) {
            None => gemm::gemm(
                T::one(),
                self.weight_ref(l),
                h.into(),
                T::zero(),
                (&mut *z).into(),
            ),
            Some(blocks) => {
                // z[rows] = W[rows, cols] h[cols]: the rest of the row is zero.
                let w = self.weight_ref(l);
                let hr = MatRef::from(h);
                for b in blocks {
                    gemm::gemm(
                        T::one(),
                        w.block(b.rows, b.cols),
                        hr.block(b.cols, (0, n)),
                        T::zero(),
                        MatMut::from(&mut *z).block(b.rows, (0, n)),
                    );
                }
            }
        }
        z
    }

    /// `h ← h + W_l a + b_l` (a residual block's output added to the stream).
    fn add_affine(&self, l: usize, a: &DMatrix<T>, h: &mut DMatrix<T>) {
        let b = self.bias(l);
        for col in h.as_mut_slice().chunks_exact_mut(b.len()) {
            for (v, bi) in col.iter_mut().zip(b) {
                *v += *bi;
            }
        }
        gemm::gemm(T::one(), self.weight_ref(l), a.into(), T::one(), h.into());
    }

    /// `act(z)` into a fresh (pooled) matrix.
    fn activate(&self, z: &DMatrix<T>) -> Scratch<T> {
        let mut a = pool::take_scratch(z.nrows(), z.ncols());
        apply_activation(self.activation, z.as_slice(), a.as_mut_slice());
        a
    }

    /// Evaluates the network on an `in × n` batch, returning `out × n`.
    ///
    /// # Panics
    /// If `x` does not have `in` rows.
    pub fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        crate::batch::assert_rows("Mlp::forward", self.sizes[0], x);
        let last = self.num_layers() - 1;
        let act = self.activation;
        if self.residual {
            let mut h = self.affine(0, x);
            for l in (1..last).step_by(2) {
                let a = self.activate(&h);
                let mut t = self.affine(l, &a);
                drop(a);
                activate_in_place(act, t.as_mut_slice());
                self.add_affine(l + 1, &t, &mut h);
            }
            let out = self.affine(last, &h);
            drop(h);
            return out.into_inner();
        }
        // Each layer's bias is added in the same pass as the activation.
        let mut h = self.linear(0, x);
        for l in 1..=last {
            bias_activate_in_place(act, self.bias(l - 1), h.as_mut_slice());
            // The previous layer's buffer goes back to the pool here.
            h = self.linear(l, &h);
        }
        add_bias(self.bias(last), h.as_mut_slice());
        h.into_inner()
    }
}
