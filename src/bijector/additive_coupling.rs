//! NICE: the coupling structure with the additive transformer.

use rand::Rng;

use super::transformer::Additive;
use super::{Coupling, CouplingMask};
use crate::nn::ConditionerConfig;
use crate::{Error, Real};

/// Additive coupling layer (NICE; Dinh, Krueger & Bengio 2014).
///
/// `y_A = x_A`, `y_B = x_B + t(x_A)` with an [`Mlp`] from `x_A` to `|B|`
/// shifts. Volume preserving: the log-determinant is 0, so a NICE model ends
/// with a diagonal scaling (e.g. [`Scale`](super::Scale) or an ActNorm) to
/// change volume. Both directions are one conditioner pass.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(4);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let layer = AdditiveCoupling::<f64>::new(CouplingMask::alternating(3, false)?, &cfg, &mut rng)?;
/// let x = DMatrix::from_fn(3, 2, |i, j| (i + 2 * j) as f64);
/// assert!((layer.inverse(&layer.forward(&x)) - &x).amax() < 1e-12);
/// assert_eq!(layer.forward_log_det_jacobian(&x)[0], 0.0);
/// # Ok::<(), normflow::Error>(())
/// ```
pub type AdditiveCoupling<T> = Coupling<T, Additive>;

impl<T: Real> Coupling<T, Additive> {
    /// An additive coupling with the given mask and conditioner shape.
    pub fn new(
        mask: CouplingMask,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::build("AdditiveCoupling::new", mask, 0, Additive {}, config, rng)
    }
}
