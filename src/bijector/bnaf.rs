//! The block neural autoregressive flow (BNAF): one masked feed-forward
//! network from `R^D` to `R^D` that is itself the autoregressive map.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::assert_pair;
use super::pass::Pass;
use crate::batch::own_context;
use crate::error::check;
use crate::{Error, Real};

mod gradients;
mod inverse;
mod network;

/// A block neural autoregressive flow layer (De Cao, Titov & Aziz 2019,
/// *Block Neural Autoregressive Flow*, UAI), with the gated residual of the
/// authors' implementation.
///
/// **The map.** Inverse (data → base, the density direction, the one
/// maximum likelihood uses): `u = (1 − g) ⊙ x + g ⊙ f(x)` with per-coordinate
/// gates `gᵢ = σ(αᵢ) ∈ (0, 1)` and the network
///
/// ```text
/// h₀ = x,   hₗ = tanh(Wₗ hₗ₋₁ + bₗ [+ C c for l = 1]),  l = 1..L,
/// f(x) = W_{L+1} h_L + b_{L+1},
/// ```
///
/// `L` hidden layers ("blocks") of `D·a` units each (`a` units per
/// coordinate). Every `Wₗ` is made of `D × D` blocks (of `a × 1` for the
/// first layer, `a × a` between hidden layers, `1 × a` for the last): the
/// blocks above the diagonal are zero, those below are free, and the diagonal
/// blocks are positive. So `uᵢ` depends on `x₁..xᵢ` only and is strictly
/// increasing in `xᵢ`; the Jacobian is triangular and
/// `log|det ∂u/∂x| = Σᵢ log((1 − gᵢ) + gᵢ ∂fᵢ/∂xᵢ)`. The weights are
/// weight-normalised per row as in the paper: row `k` is
/// `e^{sₖ} w̃ₖ / ‖w̃ₖ‖` with `w̃` the raw entries below the diagonal block and
/// `exp` of the raw entries on it.
///
/// The gate is the authors' `gated` residual. It also makes the map onto
/// `R^D`: `f` is bounded (`|fᵢ| ≤ Bᵢ = |b_{L+1,i}| + Σⱼ |W_{L+1}[i, j]|`,
/// as `|tanh| ≤ 1`), so without the `(1 − g) x` term the image would be a
/// bounded box and the density would not integrate to one.
///
/// **Log-determinant in log space.** `∂fᵢ/∂xᵢ` is the product of the
/// diagonal blocks of the layer Jacobians, `W_{L+1}⁽ⁱⁱ⁾ S_L W_L⁽ⁱⁱ⁾ ⋯ S₁ W₁⁽ⁱⁱ⁾`
/// (`Sₗ = diag(sech² preₗ)`), every factor positive. It is evaluated as the
/// paper does, as log-matrix products: `ℓv₀ = 0`,
/// `ℓvₗ[k] = log sech² preₗ[k] + LSEⱼ(log Wₗ⁽ⁱⁱ⁾[k, j] + ℓvₗ₋₁[j])`, with the
/// log-sum-exp factored into row and vector maxima (one exponential per
/// entry, not per product) and recomputed term by term for a row whose
/// shifted sum underflows. The gate enters by `logaddexp(log(1 − gᵢ),
/// log gᵢ + ℓv_{L+1})`. For finite inputs and weights the log-det is finite
/// however saturated the `tanh` units are (where `sech²` itself underflows).
///
/// **Forward (sampling)** has no closed form: coordinate by coordinate
/// (`uᵢ` depends on `x_{≤i}`), the scalar equation
/// `(1 − gᵢ) xᵢ + gᵢ fᵢ(x_{<i}, xᵢ) = uᵢ` is solved on the bracket
/// `[(uᵢ − gᵢBᵢ)/(1 − gᵢ), (uᵢ + gᵢBᵢ)/(1 − gᵢ)]` by Newton's method
/// safeguarded by bisection, until the residual is at the rounding level of
/// its evaluation or the step is below machine precision (at most 200
/// iterations; about 12 on the fitted toy models of `docs/training.md`,
/// plus 2 for the bracket's ends). Round trips are accurate to about
/// `1e-10 (1 + |x|)` in `f64` and `1e-3 (1 + |x|)` in `f32` for layers at
/// moderate parameters. Non-finite input gives non-finite output, never a
/// panic.
///
/// **Costs.** Inverse (density): one pass of the network, `O(D² a² L)` per
/// sample, plus the log-Jacobian chain, `O(D a² L)`. Forward (sampling): `D`
/// root findings per sample, each iteration evaluating the `i`-th diagonal
/// block path (`O(a² L)`) after `O(D a² L)` to fix the contributions of the
/// coordinates before it: in all about `D` network passes for a handful of
/// iterations each.
///
/// **Training.** [`Differentiable`](super::Differentiable) through the
/// inverse (density direction), with hand-written reverse mode of the
/// network, the gates and the log-space log-determinant; the backward pass
/// of the sampling direction returns [`Error::Unsupported`], as for
/// [`NeuralAutoregressive`](super::NeuralAutoregressive).
///
/// **Context.** A conditional layer adds `C c` (a free `D·a × C` matrix) to
/// the first layer's pre-activation.
///
/// **Parameters.** One buffer: for each layer `l = 1..L+1`, the raw entries
/// `V` of the rows, row by row (row `k` of block `i` holds the
/// `(i + 1)·a_in` entries of blocks `0..=i`), then the `D·a_out` log-scales
/// `s` and the `D·a_out` biases `b`; then `C` row-major (`D·a × C`); then the
/// `D` gate logits `α`. Every entry must stay finite.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(5);
/// // 3 coordinates, 8 units per coordinate in each of 2 hidden layers.
/// let layer = BlockNeuralAutoregressive::<f64>::new(3, 24, 2, false, &mut rng)?;
/// assert_eq!((layer.units(), layer.blocks()), (8, 2));
/// let x = DMatrix::from_fn(3, 4, |i, j| (i + j) as f64 * 0.7 - 2.0);
/// let (u, ildj) = layer.inverse_and_log_det(&x);     // one network pass
/// let (x_back, fldj) = layer.forward_and_log_det(&u); // D root findings
/// assert!((x_back - &x).amax() < 1e-10);
/// assert!((ildj + fldj).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BnafRepr<T>", into = "BnafRepr<T>")]
pub struct BlockNeuralAutoregressive<T: Real> {
    dim: usize,
    units: usize,
    blocks: usize,
    context_dim: usize,
    params: Vec<T>,
}

crate::checked_serde::checked_serde!(BlockNeuralAutoregressive, BnafRepr {
    dim: usize,
    units: usize,
    blocks: usize,
    context_dim: usize,
    params: Vec<T>,
}, |r| Self::from_params(r.dim, r.context_dim, r.units, r.blocks, r.params));

/// Offsets of one layer's parts in the parameter buffer.
#[derive(Clone, Copy)]
struct LayerOffsets {
    /// Packed raw row entries.
    v: usize,
    /// Log-scales of the rows.
    s: usize,
    /// Biases.
    b: usize,
}

/// Where everything lives in the parameter buffer.
struct Layout {
    layers: Vec<LayerOffsets>,
    ctx: usize,
    gate: usize,
}

/// The gate `g = 0.05` of `identity_init`: `α = log(0.05 / 0.95)`.
const NEAR_IDENTITY_GATE_LOGIT: f64 = -2.944_438_979_166_440_3;

impl<T: Real> BlockNeuralAutoregressive<T> {
    /// Number of hidden layers when none is given (the DSL's `blocks`).
    pub const DEFAULT_BLOCKS: usize = 2;

    /// The number of parameters of a layer with `dim` coordinates, `units`
    /// units per coordinate in each of `blocks` hidden layers and a context
    /// of `context_dim` (`None` on overflow):
    /// `Σₗ a_in a_out D(D+1)/2 + 2 D a_out` over the `L + 1` layers
    /// (`a = 1` at the input and the output), `+ D a C + D`.
    pub fn param_count(
        dim: usize,
        units: usize,
        blocks: usize,
        context_dim: usize,
    ) -> Option<usize> {
        let tri = dim.checked_mul(dim.checked_add(1)?)? / 2;
        let mut total = 0usize;
        for l in 0..=blocks {
            let a_in = if l == 0 { 1 } else { units };
            let a_out = if l == blocks { 1 } else { units };
            let v = a_in.checked_mul(a_out)?.checked_mul(tri)?;
            let sb = dim.checked_mul(a_out)?.checked_mul(2)?;
            total = total.checked_add(v)?.checked_add(sb)?;
        }
        let ctx = dim.checked_mul(units)?.checked_mul(context_dim)?;
        total.checked_add(ctx)?.checked_add(dim)
    }

    /// Units per coordinate for a total hidden width: `⌈hidden / D⌉`, at
    /// least 1 (the width rounded up to a multiple of `D`).
    pub fn units_for(dim: usize, hidden: usize) -> usize {
        hidden.div_ceil(dim.max(1)).max(1)
    }

    /// A layer over `dim` coordinates with `blocks ≥ 1` hidden layers of
    /// total width `hidden`, rounded up to a multiple of `dim`
    /// (`⌈hidden / D⌉` units per coordinate), at a random point (below);
    /// `identity_init` starts the gates at `g = 0.05` instead of `0.5`, a
    /// layer close to the identity (`|u − x| ≤ 0.05 (|x| + Bᵢ)`, `log|det|`
    /// near 0); exactly the identity is out of reach, as the diagonal
    /// blocks are positive and `tanh` is not linear.
    ///
    /// Random point: row `k` of each layer is drawn with its entries below
    /// the diagonal block uniform in `±1/√fan_in` and those on it uniform in
    /// `[0.1, 1]/√fan_in` (`fan_in` the row's number of entries), its
    /// log-scale set so that the weight-normalised row is the drawn one,
    /// and its bias uniform in `±1/√fan_in`; the context weights start at
    /// zero and the gate logits at 0 (`g = 0.5`).
    ///
    /// Errors if `dim`, `hidden` or `blocks` is 0.
    pub fn new(
        dim: usize,
        hidden: usize,
        blocks: usize,
        identity_init: bool,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::build(
            "BlockNeuralAutoregressive::new",
            dim,
            0,
            hidden,
            blocks,
            identity_init,
            rng,
        )
    }

    /// A conditional layer `x ↦ f(x; c)`: [`BlockNeuralAutoregressive::new`]
    /// whose first layer also reads a context of `context_dim ≥ 1`
    /// dimensions through a free weight matrix (started at zero). Call it
    /// through the `_given` methods.
    pub fn conditional(
        dim: usize,
        context_dim: usize,
        hidden: usize,
        blocks: usize,
        identity_init: bool,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "BlockNeuralAutoregressive::conditional";
        check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        Self::build(CTX, dim, context_dim, hidden, blocks, identity_init, rng)
    }

    fn build(
        caller: &str,
        dim: usize,
        context_dim: usize,
        hidden: usize,
        blocks: usize,
        identity_init: bool,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        check::dim_at_least_one(caller, "dim", dim)?;
        check::dim_at_least_one(caller, "hidden", hidden)?;
        check::dim_at_least_one(caller, "blocks", blocks)?;
        let units = Self::units_for(dim, hidden);
        let total = Self::param_count(dim, units, blocks, context_dim).ok_or_else(|| {
            check::invalid(
                caller,
                "hidden",
                "a network whose size fits in memory",
                hidden,
            )
        })?;
        let mut params = Vec::with_capacity(total);
        for l in 0..=blocks {
            let a_in = if l == 0 { 1 } else { units };
            let a_out = if l == blocks { 1 } else { units };
            let mut scales = Vec::with_capacity(dim * a_out);
            for k in 0..dim * a_out {
                let i = k / a_out;
                let r = 1.0 / (((i + 1) * a_in) as f64).sqrt();
                let mut norm2 = 0.0;
                for j in 0..(i + 1) * a_in {
                    let diagonal = j >= i * a_in;
                    let w: f64 = if diagonal {
                        r * rng.random_range(0.1..1.0)
                    } else {
                        r * rng.random_range(-1.0..1.0)
                    };
                    norm2 += w * w;
                    params.push(T::lit(if diagonal { w.ln() } else { w }));
                }
                // The scale that makes the row exactly as drawn.
                scales.push(T::lit(0.5 * norm2.ln()));
            }
            params.extend(scales);
            for k in 0..dim * a_out {
                let fan_in = ((k / a_out + 1) * a_in) as f64;
                params.push(T::lit(rng.random_range(-1.0..1.0) / fan_in.sqrt()));
            }
        }
        params.extend(std::iter::repeat_n(T::zero(), dim * units * context_dim));
        let alpha = if identity_init {
            T::lit(NEAR_IDENTITY_GATE_LOGIT)
        } else {
            T::zero()
        };
        params.extend(std::iter::repeat_n(alpha, dim));
        Self::from_params(dim, context_dim, units, blocks, params)
            .map_err(|e| check::rename_context(e, caller))
    }

    /// A layer from its parameter buffer (layout in the type's docs). Errors
    /// if `dim`, `units` or `blocks` is 0, if the buffer's length is not
    /// [`param_count`](Self::param_count), or if it holds a non-finite value.
    pub fn from_params(
        dim: usize,
        context_dim: usize,
        units: usize,
        blocks: usize,
        params: Vec<T>,
    ) -> Result<Self, Error> {
        const CTX: &str = "BlockNeuralAutoregressive::from_params";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check::dim_at_least_one(CTX, "units", units)?;
        check::dim_at_least_one(CTX, "blocks", blocks)?;
        let want = Self::param_count(dim, units, blocks, context_dim);
        if want != Some(params.len()) {
            let shown = want.map_or("an impossible size".to_string(), |w| format!("length {w}"));
            return Err(check::invalid(
                CTX,
                "params",
                &format!(
                    "a buffer of {shown} for D = {dim}, {units} units, {blocks} blocks, C = {context_dim}"
                ),
                format!("length {}", params.len()),
            ));
        }
        if let Some(bad) = params.iter().find(|v| !v.is_finite()) {
            return Err(check::invalid(CTX, "params", "finite values", *bad));
        }
        Ok(Self {
            dim,
            units,
            blocks,
            context_dim,
            params,
        })
    }

    /// Units per coordinate `a` in each hidden layer.
    pub fn units(&self) -> usize {
        self.units
    }

    /// Number of hidden layers `L`.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Width of each hidden layer, `D·a`.
    pub fn hidden_width(&self) -> usize {
        self.dim * self.units
    }

    /// All parameters in one buffer (layout in the type's docs).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameter buffer. Any finite values give an invertible layer
    /// (the sampling direction needs `1 − gᵢ = σ(−αᵢ)` representable: gate
    /// logits `αᵢ` below about 700 in `f64`, 85 in `f32`).
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters ([`param_count`](Self::param_count)).
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The gates `gᵢ = σ(αᵢ)`.
    pub fn gates(&self) -> Vec<T> {
        let at = self.layout().gate;
        self.params[at..at + self.dim]
            .iter()
            .map(|a| a.sigmoid())
            .collect()
    }

    /// `(a_in, a_out)` per coordinate of layer `l` (`0..=L`).
    fn widths(&self, l: usize) -> (usize, usize) {
        let a_in = if l == 0 { 1 } else { self.units };
        let a_out = if l == self.blocks { 1 } else { self.units };
        (a_in, a_out)
    }

    fn layout(&self) -> Layout {
        let tri = self.dim * (self.dim + 1) / 2;
        let mut at = 0;
        let mut layers = Vec::with_capacity(self.blocks + 1);
        for l in 0..=self.blocks {
            let (a_in, a_out) = self.widths(l);
            let v = at;
            let s = v + a_in * a_out * tri;
            let b = s + self.dim * a_out;
            at = b + self.dim * a_out;
            layers.push(LayerOffsets { v, s, b });
        }
        let ctx = at;
        let gate = ctx + self.dim * self.units * self.context_dim;
        Layout { layers, ctx, gate }
    }

    /// The density direction: `(u, log|det ∂u/∂x|)`.
    fn density(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let net = self.net();
        let pass = self.pass(&net, x, c);
        let f = pass.pre.last().expect("an output layer");
        let u = self.gated(&net, x, f);
        let mut chain = network::Chain::new(&net);
        let ldj = DVector::from_fn(x.ncols(), |s, _| {
            (0..self.dim)
                .map(|i| self.log_slope(&net, &mut chain, &pass, i, s).0)
                .fold(T::zero(), |a, b| a + b)
        });
        (u, ldj)
    }

    /// `(log ∂uᵢ/∂xᵢ, log ∂fᵢ/∂xᵢ)` of sample `s`, running `chain` for
    /// coordinate `i` (left ready for its reverse pass).
    fn log_slope(
        &self,
        net: &network::Net<T>,
        chain: &mut network::Chain<T>,
        pass: &network::Pass<T>,
        i: usize,
        s: usize,
    ) -> (T, T) {
        let a = self.units;
        Self::log_slope_with(net, chain, i, |l, k| pass.log_slope[l][(i * a + k, s)])
    }

    /// [`log_slope`](Self::log_slope) with `log sech²` of the hidden
    /// pre-activations of coordinate `i`'s rows given by `log_slope(l, k)`.
    fn log_slope_with(
        net: &network::Net<T>,
        chain: &mut network::Chain<T>,
        i: usize,
        log_slope: impl Fn(usize, usize) -> T,
    ) -> (T, T) {
        let lf = chain.forward(net, i, log_slope);
        // logaddexp(log(1 − g), log g + lf), both terms finite or −∞.
        let (p, q) = (net.log_1mg[i], net.log_g[i] + lf);
        let m = p.max(q);
        let lse = if !m.is_finite() {
            m + p + q
        } else {
            m + ((p - m).exp() + (q - m).exp()).ln()
        };
        (lse, lf)
    }
}

/// Either direction: the density direction (`inverse`) in one network pass,
/// sampling by root finding.
fn apply<T: Real>(
    b: &BlockNeuralAutoregressive<T>,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> (DMatrix<T>, DVector<T>) {
    assert_pair(
        "BlockNeuralAutoregressive",
        Some(b.dim),
        b.context_dim,
        input,
        c,
    );
    let c = own_context(b.context_dim, c);
    if inverse {
        b.density(input, &c)
    } else {
        b.sample(input, &c)
    }
}

/// The fused pass: the density direction's; the sampling direction has none.
fn through<T: Real>(
    b: &BlockNeuralAutoregressive<T>,
    pass: Pass<'_, '_, T>,
) -> Result<DMatrix<T>, Error> {
    if !pass.inverse {
        return Err(Error::Unsupported {
            context: "BlockNeuralAutoregressive::forward_and_log_det_backward".into(),
            reason: "the sampling direction of a block neural autoregressive flow solves D \
                     root findings per sample and has no backward pass; train through the \
                     density direction (data → base, one network pass, as maximum likelihood \
                     does), or wrap the layer in `Invert` so that sampling is the one-pass \
                     direction"
                .into(),
        });
    }
    let name = "BlockNeuralAutoregressive";
    assert_pair(name, Some(b.dim), b.context_dim, pass.input, pass.c);
    assert_eq!(
        pass.grad_params.len(),
        b.params.len(),
        "{name}: parameter gradient has length {}, expected {}",
        pass.grad_params.len(),
        b.params.len()
    );
    let c = own_context(b.context_dim, pass.c);
    b.density_through(Pass { c: &c, ..pass })
}

impl<T: Real> super::Bijector<T> for BlockNeuralAutoregressive<T> {
    super::fused::maps_from_apply!(apply);
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    super::differentiable_hooks!();
}

impl<T: Real> crate::Parameters<T> for BlockNeuralAutoregressive<T> {
    super::single_buffer!(params);
}

/// Trainable through the density direction (data → base, one network pass);
/// the sampling direction's backward pass returns [`Error::Unsupported`].
impl<T: Real> super::Differentiable<T> for BlockNeuralAutoregressive<T> {
    fn boxed_clone(&self) -> Box<dyn super::Bijector<T>> {
        Box::new(self.clone())
    }
    super::fused::training_from_through!(through);
}
