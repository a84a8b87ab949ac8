use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::CouplingMask;
use super::affine_coupling::{CouplingRepr, check_net};
use crate::nn::{ConditionerConfig, Mlp};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
#[serde(try_from = "CouplingRepr<T>", into = "CouplingRepr<T>")]
pub struct AdditiveCoupling<T: Real> {
    mask: CouplingMask,
    net: Mlp<T>,
}

impl<T: Real> TryFrom<CouplingRepr<T>> for AdditiveCoupling<T> {
    type Error = Error;
    fn try_from(r: CouplingRepr<T>) -> Result<Self, Error> {
        check_net("AdditiveCoupling", &r.mask, &r.net, 1)?;
        Ok(Self {
            mask: r.mask,
            net: r.net,
        })
    }
}

impl<T: Real> From<AdditiveCoupling<T>> for CouplingRepr<T> {
    fn from(c: AdditiveCoupling<T>) -> Self {
        CouplingRepr {
            mask: c.mask,
            net: c.net,
        }
    }
}

impl<T: Real> AdditiveCoupling<T> {
    /// An additive coupling with the given mask and conditioner shape.
    pub fn new(
        mask: CouplingMask,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        config.validate("AdditiveCoupling::new")?;
        let net = Mlp::from_config(
            mask.identity_indices().len(),
            mask.transformed_indices().len(),
            config,
            rng,
        )?;
        Ok(Self { mask, net })
    }
}

/// `out_B = in_B ± t(in_A)` (`+` forward, `−` inverse), log-det 0; the
/// cotangent passes through, and `±∂L/∂out_B` flows into the conditioner.
impl<T: Real> super::coupling::CouplingKernel<T> for AdditiveCoupling<T> {
    const NAME: &'static str = "AdditiveCoupling";
    fn parts(&self) -> (&CouplingMask, &Mlp<T>) {
        (&self.mask, &self.net)
    }
    fn apply_with(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        let sign = if inverse { -T::one() } else { T::one() };
        let mut y = input.clone();
        for s in 0..input.ncols() {
            for (r, &i) in self.mask.transformed_indices().iter().enumerate() {
                y[(i, s)] += sign * out[(r, s)];
            }
        }
        (y, DVector::zeros(input.ncols()))
    }
    fn cotangents(
        &self,
        _input: &DMatrix<T>,
        _out: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        _grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let sign = if inverse { -T::one() } else { T::one() };
        let grad_t = CouplingMask::gather(self.mask.transformed_indices(), grad_out) * sign;
        (grad_out.clone(), grad_t)
    }
}

super::coupling::coupling_layer!(AdditiveCoupling);
