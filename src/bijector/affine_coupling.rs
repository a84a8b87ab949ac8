//! RealNVP: the coupling structure with the affine transformer.

use rand::Rng;

use super::transformer::Affine;
use super::{Coupling, CouplingMask};
use crate::nn::ConditionerConfig;
use crate::{Error, Real};

/// Affine coupling layer (RealNVP; Dinh, Sohl-Dickstein & Bengio 2016).
///
/// With `A` the coordinates the [`CouplingMask`] leaves unchanged and `B` the
/// transformed ones: `y_A = x_A` and, in the density direction (data → base),
/// `x_B = y_B ⊙ s(a(y_A)) + t(y_A)`, so the forward (sampling) map is
/// `y_B = (x_B − t(x_A)) ⊘ s(a(x_A))`. An [`Mlp`] maps the unchanged half to
/// `2|B|` outputs — rows `0..|B|` are the shifts `t`, rows `|B|..2|B|` the raw
/// scales `a` — and `s = `[`positive_scale`] (softplus with a floor of `1e-3`,
/// equal to 1 at `a = 0`). `log|det ∂y/∂x| = −Σ_B log s`.
///
/// The scale multiplies in the density direction (as in nflows): fitting by
/// maximum likelihood usually has to *expand* thin data, and an expansion that
/// grows linearly in the network output trains stably, where one that grows
/// like `1/softplus` (exponentially as the output falls) produced loss spikes.
///
/// **Costs.** Both directions are one conditioner pass (the inverse
/// conditions on `y_A = x_A`), which is why couplings sample and evaluate
/// densities equally fast. Alternate the mask between consecutive layers
/// ([`CouplingMask::complement`]) so every coordinate gets transformed.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let layer = AffineCoupling::<f64>::new(CouplingMask::half(4, false)?, &cfg, &mut rng)?;
/// let x = DMatrix::from_fn(4, 5, |i, j| (i as f64) - (j as f64) * 0.5);
/// let y = layer.forward(&x);
/// assert_eq!(y.rows(0, 2), x.rows(0, 2)); // the first half passes through
/// assert!((layer.inverse(&y) - &x).amax() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
pub type AffineCoupling<T> = Coupling<T, Affine>;

impl<T: Real> Coupling<T, Affine> {
    /// An affine coupling with the given mask and conditioner shape.
    pub fn new(
        mask: CouplingMask,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::build("AffineCoupling::new", mask, 0, Affine {}, config, rng)
    }

    /// A conditional affine coupling `x ↦ f(x; c)`: [`AffineCoupling::new`]
    /// whose conditioner reads `[x_A; c]` (the identity half, then a context
    /// of `context_dim ≥ 1` dimensions). Call it through the `_given` methods.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    /// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
    /// let mask = CouplingMask::half(2, false)?;
    /// let layer = AffineCoupling::<f64>::conditional(mask, 1, &cfg, &mut rng)?;
    /// let x = DMatrix::from_row_slice(2, 2, &[0.5, -1.0, 2.0, 0.0]);
    /// let c = DMatrix::from_row_slice(1, 2, &[3.0, -3.0]);
    /// let y = layer.forward_given(&x, &c);
    /// assert_eq!(y.row(0), x.row(0)); // the identity half passes through
    /// assert!((layer.inverse_given(&y, &c) - &x).amax() < 1e-12);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn conditional(
        mask: CouplingMask,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "AffineCoupling::conditional";
        crate::error::check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        Self::build(CTX, mask, context_dim, Affine {}, config, rng)
    }
}
