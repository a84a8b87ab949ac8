use nalgebra::{DMatrix, DMatrixView};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Activation, ConditionerConfig, Mlp};
use crate::error::check;
use crate::{Error, Real};

/// MADE (Germain et al. 2015): an MLP whose weight matrices are masked so that
/// output `i` depends only on the inputs that come **before** `i` in a given
/// order — the autoregressive conditioner of MAF, IAF and spline-autoregressive
/// layers.
///
/// Degrees: data input `i` gets degree `1 + position of i in the order`; the
/// hidden units of a layer get the degrees `1 + (k mod max(D − 1, 1))`,
/// `k = 0, 1, …` (so no degree is left out when the layer is at least `D − 1`
/// wide), laid out in increasing order; a connection into a hidden unit is kept when its degree is at least
/// the source's, and into an output of dimension `i` when `i`'s degree is
/// strictly greater. Context inputs (for conditional flows) get degree 0, so
/// every hidden unit sees all of them while the autoregressive property holds;
/// with a context, hidden degrees cycle through `0..D` instead, and the units of
/// degree 0 (which see only the context) let the first coordinate's parameters
/// depend on the context too.
///
/// The network outputs `params_per_dim` values per dimension, laid out as
/// `params_per_dim` blocks of `D` rows: row `k·D + i` is parameter `k` of
/// dimension `i` (2 per dimension for affine layers, `3K − 1` for `K`-bin splines).
///
/// The masked weights are kept at zero in the parameter buffer (call
/// [`Made::enforce_masks`] after changing the buffer from outside). With the
/// hidden units in increasing degree, every masked weight matrix is
/// block-triangular: a group of rows only reaches the columns up to some
/// point. Each layer's product is a few gemms over row blocks that skip the
/// columns their block does not reach (blocks of 64 rows skip about 30 % of
/// the multiply-adds of a hidden-256 MADE at `D = 8` or `D = 64`; the
/// forward products of narrower layers use blocks of a quarter of their
/// rows, down to 16).
///
/// Models saved before this layout (their hidden degrees cycle,
/// `1, 2, …, D − 1, 1, 2, …`) load with it and evaluate densely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MadeRepr<T>", into = "MadeRepr<T>")]
pub struct Made<T: Real> {
    dim: usize,
    context_dim: usize,
    params_per_dim: usize,
    order: Vec<usize>,
    hidden_order: HiddenOrder,
    net: Mlp<T>,
    masks: Vec<DMatrix<T>>,
}

/// How the hidden units of a MADE are laid out by degree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HiddenOrder {
    /// Unit `k` has degree `offset + k mod period` (models saved before the
    /// sorted layout; no field in the file means this).
    #[default]
    Cyclic,
    /// The same degrees, in increasing order: each masked weight matrix is
    /// then block-triangular, and the products skip its zero blocks.
    Sorted,
}

#[derive(Serialize, Deserialize)]
struct MadeRepr<T: Real> {
    dim: usize,
    context_dim: usize,
    params_per_dim: usize,
    order: Vec<usize>,
    #[serde(default)]
    hidden_order: HiddenOrder,
    net: Mlp<T>,
}

impl<T: Real> From<Made<T>> for MadeRepr<T> {
    fn from(m: Made<T>) -> Self {
        MadeRepr {
            dim: m.dim,
            context_dim: m.context_dim,
            params_per_dim: m.params_per_dim,
            order: m.order,
            hidden_order: m.hidden_order,
            net: m.net,
        }
    }
}

impl<T: Real> TryFrom<MadeRepr<T>> for Made<T> {
    type Error = Error;
    fn try_from(r: MadeRepr<T>) -> Result<Self, Error> {
        r.net.validate("Made")?;
        let masks = build_masks::<T>(
            r.dim,
            r.context_dim,
            r.params_per_dim,
            &r.order,
            r.hidden_order,
            r.net.sizes(),
        )?;
        let mut m = Made {
            dim: r.dim,
            context_dim: r.context_dim,
            params_per_dim: r.params_per_dim,
            order: r.order,
            hidden_order: r.hidden_order,
            net: r.net,
            masks,
        };
        m.enforce_masks();
        m.install_row_blocks();
        Ok(m)
    }
}

impl<T: Real> Made<T> {
    /// A MADE over `dim` inputs in natural order (`0, 1, …, D − 1`).
    pub fn new(
        dim: usize,
        context_dim: usize,
        params_per_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::with_order(
            dim,
            context_dim,
            params_per_dim,
            (0..dim).collect(),
            config,
            rng,
        )
    }

    /// A MADE whose autoregressive order is `order` (`order[k]` is the input
    /// at position `k`: output `order[k]` depends on inputs `order[..k]`).
    pub fn with_order(
        dim: usize,
        context_dim: usize,
        params_per_dim: usize,
        order: Vec<usize>,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "Made::new";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check::dim_at_least_one(CTX, "params_per_dim", params_per_dim)?;
        config.validate(CTX)?;
        let net = Mlp::from_config(dim + context_dim, params_per_dim * dim, config, rng)?;
        let hidden_order = HiddenOrder::Sorted;
        let masks = build_masks::<T>(
            dim,
            context_dim,
            params_per_dim,
            &order,
            hidden_order,
            net.sizes(),
        )?;
        let mut m = Self {
            dim,
            context_dim,
            params_per_dim,
            order,
            hidden_order,
            net,
            masks,
        };
        m.enforce_masks();
        m.install_row_blocks();
        Ok(m)
    }

    /// Number of data inputs `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of context inputs (0 for an unconditional MADE).
    pub fn context_dim(&self) -> usize {
        self.context_dim
    }

    /// Outputs per dimension.
    pub fn params_per_dim(&self) -> usize {
        self.params_per_dim
    }

    /// The autoregressive order: `order()[k]` is the input at position `k`.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The activation between layers.
    pub fn activation(&self) -> Activation {
        self.net.activation()
    }

    /// The underlying (masked) network.
    pub fn net(&self) -> &Mlp<T> {
        &self.net
    }

    /// The 0/1 mask of each layer (`out × in`, same shape as its weights).
    pub fn masks(&self) -> &[DMatrix<T>] {
        &self.masks
    }

    /// All parameters in one buffer (masked weights are zero).
    pub fn params(&self) -> &[T] {
        self.net.params()
    }

    /// Mutable parameter buffer. Writing to a masked weight breaks the
    /// autoregressive property until [`Made::enforce_masks`] is called.
    pub fn params_mut(&mut self) -> &mut [T] {
        self.net.params_mut()
    }

    /// Number of parameters (including the masked zeros, which keeps every
    /// layer a dense gemm).
    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    /// How the hidden units are laid out by degree.
    pub(crate) fn hidden_order(&self) -> HiddenOrder {
        self.hidden_order
    }

    /// Tells the network which blocks of each weight matrix the masks keep
    /// at zero, so that its products skip them (see
    /// [`row_blocks_of`](super::made_blocks::row_blocks_of)).
    fn install_row_blocks(&mut self) {
        for l in 0..self.masks.len() {
            let (forward, backward) = super::made_blocks::row_blocks_of(&self.masks[l]);
            self.net.set_row_blocks(l, forward, backward);
        }
    }

    /// Sets every masked weight to zero.
    pub fn enforce_masks(&mut self) {
        for l in 0..self.net.num_layers() {
            let (off, out, inp) = self.net.layer_offset(l);
            let mask = &self.masks[l];
            let w = &mut self.net.params_mut()[off..off + out * inp];
            // A branch-free select, so the loop vectorises.
            for (v, m) in w.iter_mut().zip(mask.as_slice()) {
                *v = if *m == T::zero() { T::zero() } else { *v };
            }
        }
    }

    /// Evaluates on a `D × n` batch (no context), returning `params_per_dim·D × n`.
    pub fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert!(
            self.context_dim == 0,
            "Made::forward: this MADE takes a context of dimension {}; use forward_with_context",
            self.context_dim
        );
        crate::batch::assert_rows("Made::forward", self.dim, x);
        self.net.forward(x)
    }

    /// Evaluates on a `D × n` batch with a `C × n` context.
    pub fn forward_with_context(&self, x: &DMatrix<T>, context: &DMatrix<T>) -> DMatrix<T> {
        crate::batch::assert_rows("Made::forward_with_context", self.dim, x);
        crate::batch::assert_rows(
            "Made::forward_with_context (context)",
            self.context_dim,
            context,
        );
        assert_eq!(
            x.ncols(),
            context.ncols(),
            "Made::forward_with_context: {} samples but {} contexts",
            x.ncols(),
            context.ncols()
        );
        if self.context_dim == 0 {
            return self.net.forward(x);
        }
        let mut input = DMatrix::zeros(self.dim + self.context_dim, x.ncols());
        input.rows_mut(0, self.dim).copy_from(x);
        input
            .rows_mut(self.dim, self.context_dim)
            .copy_from(context);
        self.net.forward(&input)
    }

    /// [`Made::forward`] that also returns the cache for [`Made::backward`].
    pub fn forward_cached(&self, x: &DMatrix<T>) -> (DMatrix<T>, super::MlpCache<T>) {
        crate::batch::assert_rows("Made::forward_cached", self.dim, x);
        assert!(
            self.context_dim == 0,
            "Made::forward_cached: this MADE takes a context"
        );
        self.net.forward_cached(x)
    }

    /// Reverse mode of [`Made::forward_cached`]: adds `∂L/∂θ` (zero on masked
    /// weights) into `grad_params` and returns `∂L/∂x`.
    pub fn backward(
        &self,
        cache: &super::MlpCache<T>,
        grad_out: &DMatrix<T>,
        grad_params: &mut [T],
    ) -> DMatrix<T> {
        self.net
            .backward(cache, grad_out, grad_params, Some(&self.masks))
    }

    /// The product of the masks, `M_L ⋯ M_1` restricted to the data inputs:
    /// entry `(k·D + i, j)` counts the paths from input `j` to output `(k, i)`,
    /// so it is zero unless `j` comes before `i` in the order.
    pub fn connectivity(&self) -> DMatrix<T> {
        let mut acc: Option<DMatrix<T>> = None;
        for m in &self.masks {
            acc = Some(match acc {
                None => m.clone(),
                Some(a) => m * a,
            });
        }
        let full = acc.expect("at least one layer");
        full.columns(0, self.dim).clone_owned()
    }

    /// The view of layer `l`'s (masked) weights.
    pub fn layer_weights(&self, l: usize) -> DMatrixView<'_, T> {
        self.net.layer(l).0
    }
}

/// The context-aware passes used by conditional flows.
impl<T: Real> Made<T> {
    /// The network's input `[x; context]` (`(D + C) × n`), after checking
    /// the shapes (panics with a message naming `caller` otherwise).
    /// (`None` when there is no context: the input is `x` itself).
    fn stacked_input(
        &self,
        caller: &str,
        x: &DMatrix<T>,
        context: &DMatrix<T>,
    ) -> Option<DMatrix<T>> {
        crate::batch::assert_rows(caller, self.dim, x);
        crate::batch::assert_rows(&format!("{caller} (context)"), self.context_dim, context);
        assert_eq!(
            x.ncols(),
            context.ncols(),
            "{caller}: {} samples but {} contexts",
            x.ncols(),
            context.ncols()
        );
        if self.context_dim == 0 {
            return None;
        }
        let mut input = DMatrix::zeros(self.dim + self.context_dim, x.ncols());
        input.rows_mut(0, self.dim).copy_from(x);
        input
            .rows_mut(self.dim, self.context_dim)
            .copy_from(context);
        Some(input)
    }

    /// [`Made::forward_with_context`] that also returns the cache for
    /// [`Made::backward_with_context`].
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::nn::{ConditionerConfig, Made};
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
    /// let made = Made::<f64>::new(3, 2, 2, &cfg, &mut rng)?;
    /// let (x, c) = (DMatrix::from_element(3, 4, 0.5), DMatrix::from_element(2, 4, -1.0));
    /// let (out, cache) = made.forward_cached_with_context(&x, &c);
    /// assert_eq!(out, made.forward_with_context(&x, &c));
    /// let mut grad = vec![0.0; made.num_params()];
    /// let (gx, gc) = made.backward_with_context(&cache, &DMatrix::from_element(6, 4, 1.0), &mut grad);
    /// assert_eq!((gx.shape(), gc.shape()), ((3, 4), (2, 4)));
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn forward_cached_with_context(
        &self,
        x: &DMatrix<T>,
        context: &DMatrix<T>,
    ) -> (DMatrix<T>, super::MlpCache<T>) {
        let input = self.stacked_input("Made::forward_cached_with_context", x, context);
        self.net.forward_cached(input.as_ref().unwrap_or(x))
    }

    /// Reverse mode of [`Made::forward_cached_with_context`]: adds `∂L/∂θ`
    /// (zero on masked weights) into `grad_params` and returns
    /// `(∂L/∂x, ∂L/∂context)`.
    pub fn backward_with_context(
        &self,
        cache: &super::MlpCache<T>,
        grad_out: &DMatrix<T>,
        grad_params: &mut [T],
    ) -> (DMatrix<T>, DMatrix<T>) {
        let g = self
            .net
            .backward(cache, grad_out, grad_params, Some(&self.masks));
        if self.context_dim == 0 {
            let n = g.ncols();
            return (g, DMatrix::zeros(0, n));
        }
        (
            g.rows(0, self.dim).clone_owned(),
            g.rows(self.dim, self.context_dim).clone_owned(),
        )
    }
}

fn build_masks<T: Real>(
    dim: usize,
    context_dim: usize,
    params_per_dim: usize,
    order: &[usize],
    hidden_order: HiddenOrder,
    sizes: &[usize],
) -> Result<Vec<DMatrix<T>>, Error> {
    const CTX: &str = "Made::new";
    if order.len() != dim {
        return Err(check::invalid(
            CTX,
            "order",
            &format!("a permutation of 0..{dim}"),
            format!("{order:?}"),
        ));
    }
    let mut pos = vec![usize::MAX; dim];
    for (k, &i) in order.iter().enumerate() {
        if i >= dim || pos[i] != usize::MAX {
            return Err(check::invalid(
                CTX,
                "order",
                &format!("a permutation of 0..{dim}"),
                format!("{order:?}"),
            ));
        }
        pos[i] = k;
    }
    if sizes.len() < 2
        || sizes[0] != dim + context_dim
        || *sizes.last().unwrap() != params_per_dim * dim
    {
        return Err(check::invalid(
            CTX,
            "network sizes",
            &format!(
                "[{} inputs, …, {} outputs]",
                dim + context_dim,
                params_per_dim * dim
            ),
            format!("{sizes:?}"),
        ));
    }
    // Degrees of the input layer: data by position (1..=D), context 0.
    let mut prev: Vec<usize> = (0..dim)
        .map(|i| pos[i] + 1)
        .chain(std::iter::repeat_n(0, context_dim))
        .collect();
    // Hidden degrees cycle through 1..=D−1 (a unit of degree d may see data
    // inputs of positions < d… up to d); with a context, degree 0 is included:
    // such units see only the context, which is how the first coordinate's
    // parameters come to depend on it.
    let mut masks = Vec::with_capacity(sizes.len() - 1);
    for &width in &sizes[1..sizes.len() - 1] {
        let deg = hidden_degrees(dim, context_dim, width, hidden_order);
        masks.push(DMatrix::from_fn(width, prev.len(), |b, a| {
            if deg[b] >= prev[a] {
                T::one()
            } else {
                T::zero()
            }
        }));
        prev = deg;
    }
    let out_deg: Vec<usize> = (0..params_per_dim * dim)
        .map(|r| pos[r % dim] + 1)
        .collect();
    masks.push(DMatrix::from_fn(out_deg.len(), prev.len(), |b, a| {
        if out_deg[b] > prev[a] {
            T::one()
        } else {
            T::zero()
        }
    }));
    Ok(masks)
}

/// In the cyclic layout, hidden unit `k` of every hidden layer has degree
/// `offset + k mod period`; returns `(offset, period)`. The sorted layout has
/// the same degrees in increasing order.
fn hidden_degree_cycle(dim: usize, context_dim: usize) -> (usize, usize) {
    if context_dim > 0 {
        (0, dim)
    } else {
        (1, dim.max(2) - 1)
    }
}

/// The degree of every unit of a hidden layer of `width` units.
fn hidden_degrees(dim: usize, context_dim: usize, width: usize, order: HiddenOrder) -> Vec<usize> {
    let (offset, period) = hidden_degree_cycle(dim, context_dim);
    let mut deg: Vec<usize> = (0..width).map(|k| offset + k % period).collect();
    if order == HiddenOrder::Sorted {
        deg.sort_unstable();
    }
    deg
}

/// The units of degree `degree` in a hidden layer of `width` units:
/// `(first, step, count)`, i.e. units `first, first + step, …`.
pub(crate) fn hidden_units_of_degree(
    dim: usize,
    context_dim: usize,
    width: usize,
    order: HiddenOrder,
    degree: usize,
) -> (usize, usize, usize) {
    let (offset, period) = hidden_degree_cycle(dim, context_dim);
    // In the cyclic layout, degree offset + j sits at units j, j + period, …
    let count = |j: usize| {
        if j >= period || j >= width {
            0
        } else {
            (width - j).div_ceil(period)
        }
    };
    if degree < offset || count(degree - offset) == 0 {
        return (0, 1, 0);
    }
    let j = degree - offset;
    match order {
        HiddenOrder::Cyclic => (j, period, count(j)),
        HiddenOrder::Sorted => ((0..j).map(count).sum(), 1, count(j)),
    }
}
