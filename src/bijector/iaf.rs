use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Bijector, Invert, MaskedAutoregressiveFlow};
use crate::nn::{ConditionerConfig, Made};
use crate::{Error, Real};

/// Inverse autoregressive flow layer (Kingma et al. 2016): exactly
/// `Invert(MaskedAutoregressiveFlow)`, under its own name.
///
/// Forward (base → data, sampling): `xᵢ = uᵢ · sᵢ(u_{<i}) + tᵢ(u_{<i})` with
/// `(t, s)` from a MADE of the **base** sample `u`, so sampling (and the
/// log-density of the samples it draws, via `sample_and_log_prob`) is **one**
/// MADE pass. The inverse (the density of an outside point `x`) needs **`D`
/// sequential passes**. This is why IAFs suit variational inference (sample,
/// then score your own samples) and MAFs suit density estimation.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::nn::ConditionerConfig;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(2);
/// let iaf = InverseAutoregressiveFlow::<f64>::new(2, &ConditionerConfig::default(), &mut rng)?;
/// // A fresh layer (zero-initialised last layer) is the identity.
/// let u = DMatrix::from_fn(2, 3, |i, j| (i * 3 + j) as f64);
/// assert!((iaf.forward(&u) - &u).amax() < 1e-15);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InverseAutoregressiveFlow<T: Real> {
    inner: Invert<MaskedAutoregressiveFlow<T>>,
}

impl<T: Real> InverseAutoregressiveFlow<T> {
    /// An IAF layer over `dim` coordinates in natural order.
    pub fn new(dim: usize, config: &ConditionerConfig, rng: &mut dyn Rng) -> Result<Self, Error> {
        Self::with_order(dim, (0..dim).collect(), config, rng)
    }

    /// An IAF layer with the given autoregressive order.
    pub fn with_order(
        dim: usize,
        order: Vec<usize>,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        let maf = MaskedAutoregressiveFlow::with_order(dim, order, config, rng).map_err(|e| {
            crate::error::check::rename_context(e, "InverseAutoregressiveFlow::new")
        })?;
        Ok(Self {
            inner: Invert::new(maf),
        })
    }

    /// A conditional IAF layer `x ↦ f(x; c)`: the inverse of
    /// [`MaskedAutoregressiveFlow::conditional`], sampling in one MADE pass
    /// under a context of `context_dim ≥ 1` dimensions.
    pub fn conditional(
        dim: usize,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        let maf =
            MaskedAutoregressiveFlow::conditional(dim, context_dim, config, rng).map_err(|e| {
                crate::error::check::rename_context(e, "InverseAutoregressiveFlow::conditional")
            })?;
        Ok(Self::from_maf(maf))
    }

    /// The IAF whose forward map is the inverse of `maf`.
    pub fn from_maf(maf: MaskedAutoregressiveFlow<T>) -> Self {
        Self {
            inner: Invert::new(maf),
        }
    }

    /// The MAF this layer inverts.
    pub fn maf(&self) -> &MaskedAutoregressiveFlow<T> {
        self.inner.inner()
    }

    /// The conditioner.
    pub fn made(&self) -> &Made<T> {
        self.maf().made()
    }

    /// All parameters in one buffer.
    pub fn params(&self) -> &[T] {
        self.maf().params()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.maf().num_params()
    }
}

impl<T: Real> Bijector<T> for InverseAutoregressiveFlow<T> {
    super::fused::maps_by_delegate!(s => s.inner);
    super::differentiable_hooks!();
}

impl<T: Real> crate::Parameters<T> for InverseAutoregressiveFlow<T> {
    crate::params::parameters_by_delegate!(s => &s.inner, &mut s.inner);
}

/// Sampling (the forward direction, one MADE pass) is differentiable; the
/// density of an outside point (`D` sequential passes) is not.
impl<T: Real> super::Differentiable<T> for InverseAutoregressiveFlow<T> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    super::fused::training_by_delegate!(s => Ok::<_, Error>(&s.inner);
        inverse errors |_| density_unsupported());
}

fn density_unsupported() -> Error {
    Error::Unsupported {
        context: "InverseAutoregressiveFlow::inverse_and_log_det_backward".into(),
        reason: "the density direction of an IAF is D sequential passes and has no backward \
                 pass; train an IAF through its samples (variational inference), or use a \
                 MaskedAutoregressiveFlow for maximum likelihood"
            .into(),
    }
}
