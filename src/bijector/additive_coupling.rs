use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::affine_coupling::{CouplingRepr, check_net};
use super::{Bijector, CouplingMask, assert_rows};
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

    /// The mask.
    pub fn mask(&self) -> &CouplingMask {
        &self.mask
    }

    /// The conditioner network.
    pub fn net(&self) -> &Mlp<T> {
        &self.net
    }

    /// All parameters (the conditioner's) in one buffer.
    pub fn params(&self) -> &[T] {
        self.net.params()
    }

    /// Mutable parameter buffer.
    pub fn params_mut(&mut self) -> &mut [T] {
        self.net.params_mut()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    fn apply(&self, x: &DMatrix<T>, sign: T) -> DMatrix<T> {
        let t = self
            .net
            .forward(&CouplingMask::gather(self.mask.identity_indices(), x));
        let mut y = x.clone();
        for s in 0..x.ncols() {
            for (r, &i) in self.mask.transformed_indices().iter().enumerate() {
                y[(i, s)] += sign * t[(r, s)];
            }
        }
        y
    }
}

impl<T: Real> Bijector<T> for AdditiveCoupling<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("AdditiveCoupling::forward", self.mask.dim(), x);
        self.apply(x, T::one())
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("AdditiveCoupling::inverse", self.mask.dim(), y);
        self.apply(y, -T::one())
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "AdditiveCoupling::forward_log_det_jacobian",
            self.mask.dim(),
            x,
        );
        DVector::zeros(x.ncols())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "AdditiveCoupling::inverse_log_det_jacobian",
            self.mask.dim(),
            y,
        );
        DVector::zeros(y.ncols())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.mask.dim())
    }
    super::differentiable_hooks!();
}

impl<T: Real> super::Differentiable<T> for AdditiveCoupling<T> {
    fn num_params(&self) -> usize {
        self.net.num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        f(self.net.params())
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        f(self.net.params_mut())
    }
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        _grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        assert_rows(
            "AdditiveCoupling::inverse_and_log_det_backward",
            self.mask.dim(),
            y,
        );
        Ok(self.backward(y, grad_x, -T::one(), grad_params))
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        _grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        assert_rows(
            "AdditiveCoupling::forward_and_log_det_backward",
            self.mask.dim(),
            x,
        );
        Ok(self.backward(x, grad_y, T::one(), grad_params))
    }
}

impl<T: Real> AdditiveCoupling<T> {
    /// `out_B = in_B + sign · t(in_A)`: the cotangent passes through, and
    /// `sign · ∂L/∂out_B` flows into the conditioner.
    fn backward(
        &self,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        sign: T,
        grad_params: &mut [T],
    ) -> DMatrix<T> {
        let ia = self.mask.identity_indices();
        let ib = self.mask.transformed_indices();
        let (_, cache) = self.net.forward_cached(&CouplingMask::gather(ia, input));
        let grad_t = CouplingMask::gather(ib, grad_out) * sign;
        let grad_a = self.net.backward(&cache, &grad_t, grad_params, None);
        let mut grad_in = grad_out.clone();
        for (r, &i) in ia.iter().enumerate() {
            for s in 0..input.ncols() {
                grad_in[(i, s)] += grad_a[(r, s)];
            }
        }
        grad_in
    }
}
