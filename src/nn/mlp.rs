use nalgebra::{DMatrix, DMatrixView, DVectorView};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::gemm::{self, MatMut, MatRef, give_matrix};
use super::{Activation, ConditionerConfig};
use crate::error::check;
use crate::{Error, Real};

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
        }
    }

    /// Declares the zero structure of layer `l`'s weights (see
    /// [`RowBlock`]); `None` makes the layer's products dense again. The
    /// caller keeps the weights outside the blocks at zero.
    pub(crate) fn set_row_blocks(&mut self, l: usize, blocks: Option<Vec<RowBlock>>) {
        if self.blocks.len() < self.num_layers() {
            self.blocks.resize(self.num_layers(), None);
        }
        self.blocks[l] = blocks;
    }

    fn row_blocks(&self, l: usize) -> Option<&[RowBlock]> {
        self.blocks.get(l).and_then(|b| b.as_deref())
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
    fn affine(&self, l: usize, h: &DMatrix<T>) -> DMatrix<T> {
        let mut z = gemm::take_matrix_with_columns(self.bias(l), h.ncols());
        gemm::gemm(
            T::one(),
            self.weight_ref(l),
            h.into(),
            T::one(),
            (&mut z).into(),
        );
        z
    }

    /// `W_l h` (no bias) into a pooled matrix, for a caller that adds the
    /// bias in its next elementwise pass.
    fn linear(&self, l: usize, h: &DMatrix<T>) -> DMatrix<T> {
        let (_, out, _) = self.layer_offset(l);
        let n = h.ncols();
        let mut z = gemm::take_scratch(out, n);
        match self.row_blocks(l) {
            None => gemm::gemm(
                T::one(),
                self.weight_ref(l),
                h.into(),
                T::zero(),
                (&mut z).into(),
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
                        MatMut::from(&mut z).block(b.rows, (0, n)),
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
    fn activate(&self, z: &DMatrix<T>) -> DMatrix<T> {
        let mut a = gemm::take_scratch(z.nrows(), z.ncols());
        apply_activation(self.activation, z.as_slice(), a.as_mut_slice());
        a
    }

    /// Evaluates the network on an `in × n` batch, returning `out × n`.
    ///
    /// # Panics
    /// If `x` does not have `in` rows.
    pub fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        crate::bijector::assert_rows("Mlp::forward", self.sizes[0], x);
        let last = self.num_layers() - 1;
        let act = self.activation;
        if self.residual {
            let mut h = self.affine(0, x);
            for l in (1..last).step_by(2) {
                let a = self.activate(&h);
                let mut t = self.affine(l, &a);
                give_matrix(a);
                activate_in_place(act, t.as_mut_slice());
                self.add_affine(l + 1, &t, &mut h);
                give_matrix(t);
            }
            let out = self.affine(last, &h);
            give_matrix(h);
            return out;
        }
        // Each layer's bias is added in the same pass as the activation.
        let mut h = self.linear(0, x);
        for l in 1..=last {
            bias_activate_in_place(act, self.bias(l - 1), h.as_mut_slice());
            let z = self.linear(l, &h);
            give_matrix(std::mem::replace(&mut h, z));
        }
        add_bias(self.bias(last), h.as_mut_slice());
        h
    }
}

/// `z ← z + b` for every column `z` of the column-major `data`.
fn add_bias<T: Real>(b: &[T], data: &mut [T]) {
    if b.is_empty() {
        return;
    }
    for col in data.chunks_exact_mut(b.len()) {
        for (v, bi) in col.iter_mut().zip(b) {
            *v += *bi;
        }
    }
}

/// `z ← act(z + b)` for every column `z` of the column-major `data`: the
/// bias and the activation in one pass over memory.
fn bias_activate_in_place<T: Real>(act: Activation, b: &[T], data: &mut [T]) {
    if b.is_empty() {
        return;
    }
    match act {
        Activation::Relu => {
            for col in data.chunks_exact_mut(b.len()) {
                for (v, bi) in col.iter_mut().zip(b) {
                    let z = *v + *bi;
                    // An unconditional select (no branch to mispredict), vectorised.
                    *v = if z > T::zero() { z } else { T::zero() };
                }
            }
        }
        _ => {
            for col in data.chunks_exact_mut(b.len()) {
                for (v, bi) in col.iter_mut().zip(b) {
                    *v = act.apply(*v + *bi);
                }
            }
        }
    }
}

/// `z ← z + b` and `a ← act(z)` for every column (`z` the pre-activation the
/// backward pass keeps, `a` the next layer's input), in one pass.
fn bias_activate_into<T: Real>(act: Activation, b: &[T], z: &mut [T], a: &mut [T]) {
    let rows = b.len();
    if rows == 0 {
        return;
    }
    match act {
        Activation::Relu => {
            for (zc, ac) in z.chunks_exact_mut(rows).zip(a.chunks_exact_mut(rows)) {
                for ((zv, av), bi) in zc.iter_mut().zip(ac.iter_mut()).zip(b) {
                    let v = *zv + *bi;
                    *zv = v;
                    *av = if v > T::zero() { v } else { T::zero() };
                }
            }
        }
        _ => {
            for (zc, ac) in z.chunks_exact_mut(rows).zip(a.chunks_exact_mut(rows)) {
                for ((zv, av), bi) in zc.iter_mut().zip(ac.iter_mut()).zip(b) {
                    let v = *zv + *bi;
                    *zv = v;
                    *av = act.apply(v);
                }
            }
        }
    }
}

/// `dst ← act(src)`, elementwise (the activation chosen once, outside the loop).
fn apply_activation<T: Real>(act: Activation, src: &[T], dst: &mut [T]) {
    match act {
        Activation::Relu => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = if *s > T::zero() { *s } else { T::zero() };
            }
        }
        _ => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = act.apply(*s);
            }
        }
    }
}

/// `z ← act(z)`, elementwise.
pub(crate) fn activate_in_place<T: Real>(act: Activation, z: &mut [T]) {
    match act {
        Activation::Relu => {
            // An unconditional select (no branch to mispredict), vectorised.
            for v in z.iter_mut() {
                *v = if *v > T::zero() { *v } else { T::zero() };
            }
        }
        _ => {
            for v in z.iter_mut() {
                *v = act.apply(*v);
            }
        }
    }
}

/// `g ← g ⊙ act'(z)`, elementwise.
fn mul_derivative<T: Real>(act: Activation, g: &mut [T], z: &[T]) {
    match act {
        Activation::Relu => {
            for (gv, zv) in g.iter_mut().zip(z) {
                *gv = if *zv > T::zero() { *gv } else { T::zero() };
            }
        }
        _ => {
            for (gv, zv) in g.iter_mut().zip(z) {
                *gv *= act.derivative(*zv);
            }
        }
    }
}

impl<T: Real> Mlp<T> {
    /// Evaluates the network and keeps what the backward pass needs: the
    /// input to every layer (`inputs[l]`) and, where that input is an
    /// activation, its pre-activation. Returns `(output, cache)`.
    pub fn forward_cached(&self, x: &DMatrix<T>) -> (DMatrix<T>, MlpCache<T>) {
        crate::bijector::assert_rows("Mlp::forward_cached", self.sizes[0], x);
        let layers = self.num_layers();
        let last = layers - 1;
        let mut inputs = Vec::with_capacity(layers);
        let mut pre = Vec::with_capacity(layers);
        let mut x_copy = gemm::take_scratch(x.nrows(), x.ncols());
        x_copy.copy_from(x);
        inputs.push(x_copy);
        pre.push(None);
        if self.residual {
            let mut h = self.affine(0, x);
            for l in (1..last).step_by(2) {
                let a = self.activate(&h);
                let t = self.affine(l, &a);
                let a2 = self.activate(&t);
                let mut h_prev = gemm::take_scratch(h.nrows(), h.ncols());
                h_prev.copy_from(&h);
                self.add_affine(l + 1, &a2, &mut h);
                inputs.push(a);
                pre.push(Some(h_prev));
                inputs.push(a2);
                pre.push(Some(t));
            }
            let out = self.affine(last, &h);
            inputs.push(h);
            pre.push(None);
            return (out, MlpCache { inputs, pre });
        }
        let h = self.linear(0, x);
        // Each bias is added in the pass that also applies the activation.
        let mut h = h;
        for l in 1..=last {
            let mut a = gemm::take_scratch(h.nrows(), h.ncols());
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
        (h, MlpCache { inputs, pre })
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
    ) -> DMatrix<T> {
        let (off, out, inp) = self.layer_offset(l);
        let h = &cache.inputs[l];
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
            let mut inc = gemm::take_scratch(out, inp);
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
                    MatMut::from(&mut inc).block(b.rows, (b.full, b.cols.1)),
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
            give_matrix(inc);
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
        let mut below = gemm::take_scratch(inp, n);
        match self.row_blocks(l) {
            None => gemm::gemm(
                T::one(),
                self.weight_ref(l).t(),
                delta.into(),
                T::zero(),
                (&mut below).into(),
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
                        MatMut::from(&mut below).block(b.cols, (0, n)),
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
                give_matrix(g_t);
                g_h += &g_a;
                give_matrix(g_a);
            }
            let g_x = self.layer_backward(0, cache, &g_h, grad_params, masks);
            give_matrix(g_h);
            return g_x;
        }
        let mut delta = self.layer_backward(last, cache, grad_out, grad_params, masks);
        for l in (0..last).rev() {
            let below = self.layer_backward(l, cache, &delta, grad_params, masks);
            give_matrix(std::mem::replace(&mut delta, below));
        }
        delta
    }
}

/// What [`Mlp::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct MlpCache<T: Real> {
    inputs: Vec<DMatrix<T>>,
    pre: Vec<Option<DMatrix<T>>>,
}

impl<T: Real> Drop for MlpCache<T> {
    /// The buffers go back to the thread's pool for the next pass.
    fn drop(&mut self) {
        for m in self.inputs.drain(..) {
            give_matrix(m);
        }
        for m in self.pre.drain(..).flatten() {
            give_matrix(m);
        }
    }
}
