//! The neural autoregressive flow: the autoregressive structure with the
//! deep sigmoidal transformer.

use rand::Rng;

use super::Autoregressive;
use super::transformer::DeepSigmoidal;
use crate::error::check;
use crate::nn::{ConditionerConfig, Made};
use crate::{Error, Real};

/// A neural autoregressive flow layer with the deep sigmoidal transformer
/// (Huang, Krueger, Lacoste & Courville 2018, *Neural Autoregressive Flows*,
/// ICML), conditioned by a [`Made`], with the direction convention of
/// [`MaskedAutoregressiveFlow`](super::MaskedAutoregressiveFlow).
///
/// Inverse (data → base, the density direction):
/// `uᵢ = σ⁻¹(Σₖ wₖ σ(aₖ xᵢ + bₖ))` with `(a, b, w)` of coordinate `i` from
/// the MADE of `x_{<i}` (in the layer's order), `K` sigmoid units per
/// coordinate; forward (base → data): the root of that equation in `xᵢ`.
/// [`DeepSigmoidal`] gives the formulas, the parametrisation, the tails
/// (asymptotically affine, onto `R`, no bound), the root finding and the
/// derivations of the backward passes. The Jacobian is triangular in the
/// order and `log|det ∂u/∂x| = Σᵢ log duᵢ/dxᵢ`.
///
/// **Costs.** The inverse (data → base, the density direction used for
/// maximum likelihood) is **one** MADE pass and `O(K)` per coordinate. The
/// forward (sampling) is **`D` sequential MADE passes** (about one pass of
/// arithmetic in all, as for a MAF), each followed by a 1-D root finding per
/// sample (usually under 10 evaluations of the `K` units). Wrap the layer in
/// [`Invert`](super::Invert) to swap the costs.
///
/// **Training.** [`Differentiable`](super::Differentiable) through the
/// inverse; the backward pass of the sequential forward returns
/// [`Error::Unsupported`].
///
/// # Conditioner
///
/// A [`Made`] with `3K` outputs per dimension and the MADE layout: output row
/// `p·D + i` is raw parameter `p` of coordinate `i`, where `p < K` are the
/// raw slopes, `K ≤ p < 2K` the raw offsets and `2K ≤ p < 3K` the
/// unnormalised log-weights. With `config.identity_init` (the default) the
/// last layer starts at zero and a fresh layer is **not** the identity but
/// the odd monotone map `uᵢ = σ⁻¹(mean σ(xᵢ + βₖ))` within 0.13 of it (see
/// [`DeepSigmoidal`]: the fixed offsets `βₖ` keep the units distinct). All
/// parameters are the MADE's, in one buffer ([`NeuralAutoregressive::params`]).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::nn::ConditionerConfig;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(5);
/// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
/// let layer = NeuralAutoregressive::<f64>::new(3, 4, &cfg, &mut rng)?;
/// let u = DMatrix::from_fn(3, 4, |i, j| (i + j) as f64 * 0.7 - 2.0);
/// let (x, ldj) = layer.forward_and_log_det(&u);       // 3 MADE passes, root finding
/// let (u_back, ildj) = layer.inverse_and_log_det(&x); // 1 MADE pass
/// assert!((u_back - &u).amax() < 1e-10);
/// assert!((ldj + ildj).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
pub type NeuralAutoregressive<T> = Autoregressive<T, DeepSigmoidal>;

impl<T: Real> Autoregressive<T, DeepSigmoidal> {
    /// A layer over `dim` coordinates in natural order, with `units` sigmoid
    /// units per coordinate.
    pub fn new(
        dim: usize,
        units: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::with_order(dim, (0..dim).collect(), units, config, rng)
    }

    /// A layer whose autoregressive order is `order` (`order[k]` is the
    /// coordinate transformed `k`-th, conditioned on `order[..k]`).
    ///
    /// Errors if `dim` or `units` is 0, `order` is not a permutation of
    /// `0..dim`, or `config` is invalid.
    pub fn with_order(
        dim: usize,
        order: Vec<usize>,
        units: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "NeuralAutoregressive::new";
        Self::build(CTX, dim, 0, order, DeepSigmoidal { units }, config, rng)
    }

    /// A conditional layer `x ↦ f(x; c)`: [`NeuralAutoregressive::new`]
    /// whose MADE also reads a context of `context_dim ≥ 1` dimensions (MADE
    /// degree 0). Call it through the `_given` methods.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::nn::ConditionerConfig;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
    /// let naf = NeuralAutoregressive::<f64>::conditional(2, 1, 4, &cfg, &mut rng)?;
    /// let x = DMatrix::from_row_slice(2, 3, &[0.1, -0.4, 1.0, 0.5, 0.2, -1.0]);
    /// let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, 2.0]);
    /// let (u, ildj) = naf.inverse_and_log_det_given(&x, &c);      // one MADE pass
    /// let (x_back, fldj) = naf.forward_and_log_det_given(&u, &c); // D steps
    /// assert!((x_back - &x).amax() < 1e-10);
    /// assert!((ildj + fldj).amax() < 1e-10);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn conditional(
        dim: usize,
        context_dim: usize,
        units: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::conditional_with_order(dim, context_dim, (0..dim).collect(), units, config, rng)
    }

    /// [`NeuralAutoregressive::conditional`] with the autoregressive order `order`.
    pub fn conditional_with_order(
        dim: usize,
        context_dim: usize,
        order: Vec<usize>,
        units: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "NeuralAutoregressive::conditional";
        check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        Self::build(
            CTX,
            dim,
            context_dim,
            order,
            DeepSigmoidal { units },
            config,
            rng,
        )
    }

    /// Wraps an existing MADE with `3·units` outputs per dimension (and any
    /// context dimension: a MADE with a context makes a conditional layer).
    pub fn from_made(made: Made<T>, units: usize) -> Result<Self, Error> {
        Self::from_parts(
            "NeuralAutoregressive::from_made",
            made,
            DeepSigmoidal { units },
        )
    }

    /// Number of sigmoid units `K` per coordinate.
    pub fn units(&self) -> usize {
        self.transformer().units
    }
}
