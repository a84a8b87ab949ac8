//! The masked autoregressive flow: the autoregressive structure with the
//! affine transformer.

use rand::Rng;

use super::Autoregressive;
use super::transformer::Affine;
use crate::nn::{ConditionerConfig, Made};
use crate::{Error, Real};

/// Masked autoregressive flow layer (Papamakarios, Pavlakou & Murray 2017).
///
/// Inverse (data → base, the density direction): `uᵢ = xᵢ · sᵢ(x_{<i}) + tᵢ(x_{<i})`,
/// where `(t, a)` come from a [`Made`] of the data `x` in the layer's order and
/// `s = `[`positive_scale`]`(a)` (softplus with a floor of `1e-3`, equal to 1
/// at `a = 0`); forward (base → data): `xᵢ = (uᵢ − tᵢ) / sᵢ`.
/// `log|det ∂u/∂x| = Σᵢ log sᵢ`.
///
/// This is the parametrisation of nflows' `MaskedAffineAutoregressiveTransform`:
/// the scale multiplies in the density direction, so the expansion that
/// maximum likelihood needs on concentrated data grows linearly in the MADE's
/// output. Dividing by the scale instead (`uᵢ = (xᵢ − μᵢ)/σᵢ`) makes the
/// expansion grow exponentially as the output falls; training on two moons
/// then showed loss spikes (an epoch-mean negative log-likelihood of 6 000
/// nats) and runs that never recovered.
///
/// **Costs.** The inverse (data → base, the density direction used for
/// maximum likelihood) is **one** MADE pass: all `(μ, σ)` come from `x` at once.
/// The forward (sampling) is **`D` sequential steps**, one per coordinate in
/// the order, because `xᵢ` must be known before `x_{i+1}` can be conditioned on
/// it; each step evaluates only the MADE units it newly needs
/// ([`Made::sequential`]), so the steps add up to about one pass of arithmetic,
/// but in `D` small dependent products. Its mirror image, [`InverseAutoregressiveFlow`](super::InverseAutoregressiveFlow),
/// samples in one pass and evaluates outside points in `D`.
///
/// All parameters are the MADE's, in one buffer ([`MaskedAutoregressiveFlow::params`]).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::nn::ConditionerConfig;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
/// let maf = MaskedAutoregressiveFlow::<f64>::new(3, &cfg, &mut rng)?;
/// let u = DMatrix::from_fn(3, 4, |i, j| (i + j) as f64 * 0.3 - 1.0);
/// let (x, ldj) = maf.forward_and_log_det(&u);       // 3 sequential steps
/// let (u_back, ildj) = maf.inverse_and_log_det(&x); // 1 MADE pass
/// assert!((u_back - &u).amax() < 1e-10);
/// assert!((ldj + ildj).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
pub type MaskedAutoregressiveFlow<T> = Autoregressive<T, Affine>;

impl<T: Real> Autoregressive<T, Affine> {
    /// A MAF layer over `dim` coordinates in natural order.
    pub fn new(dim: usize, config: &ConditionerConfig, rng: &mut dyn Rng) -> Result<Self, Error> {
        Self::with_order(dim, (0..dim).collect(), config, rng)
    }

    /// A MAF layer whose autoregressive order is `order` (`order[k]` is the
    /// coordinate transformed `k`-th, conditioned on `order[..k]`).
    pub fn with_order(
        dim: usize,
        order: Vec<usize>,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::build(
            "MaskedAutoregressiveFlow::new",
            dim,
            0,
            order,
            Affine {},
            config,
            rng,
        )
    }

    /// A conditional MAF layer `x ↦ f(x; c)` over `dim` coordinates in
    /// natural order, whose MADE also reads a context of `context_dim ≥ 1`
    /// dimensions as inputs of degree 0 that every hidden unit sees
    /// (Papamakarios et al. 2017, §3.4; the autoregressive property in `x`
    /// is kept). Call it through the `_given` methods.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::nn::ConditionerConfig;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
    /// let maf = MaskedAutoregressiveFlow::<f64>::conditional(2, 1, &cfg, &mut rng)?; // D = 2, C = 1
    /// assert_eq!(maf.context_dim(), 1);
    /// let x = DMatrix::from_row_slice(2, 3, &[0.1, -0.4, 1.0, 0.5, 0.2, -1.0]);
    /// let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, 2.0]);
    /// let (u, ildj) = maf.inverse_and_log_det_given(&x, &c);    // one MADE pass
    /// let (x_back, fldj) = maf.forward_and_log_det_given(&u, &c); // D steps
    /// assert!((x_back - &x).amax() < 1e-10);
    /// assert!((ildj + fldj).amax() < 1e-10);
    /// // Another context, another map.
    /// let other = DMatrix::from_element(1, 3, -2.0);
    /// assert!((maf.inverse_given(&x, &other) - &u).amax() > 1e-3);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn conditional(
        dim: usize,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::conditional_with_order(dim, context_dim, (0..dim).collect(), config, rng)
    }

    /// [`MaskedAutoregressiveFlow::conditional`] with the autoregressive order `order`.
    pub fn conditional_with_order(
        dim: usize,
        context_dim: usize,
        order: Vec<usize>,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "MaskedAutoregressiveFlow::conditional";
        crate::error::check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        Self::build(CTX, dim, context_dim, order, Affine {}, config, rng)
    }

    /// Wraps an existing MADE with 2 outputs per dimension (and any context
    /// dimension: a MADE with a context makes a conditional layer).
    pub fn from_made(made: Made<T>) -> Result<Self, Error> {
        Self::from_parts("MaskedAutoregressiveFlow::from_made", made, Affine {})
    }
}
