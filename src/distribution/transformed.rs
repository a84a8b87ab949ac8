use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Distribution, sanitize};
use crate::bijector::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

/// The distribution of `y = f(x)` for `x ~ base` and a bijector `f`.
///
/// `log p(y) = base.log_prob(f⁻¹(y)) + inverse_log_det_jacobian(y)`; where `y`
/// lies outside the image of `f` (`y ≤ 0` under `Exp`, `y ∉ (0, 1)` under
/// `Sigmoid`, and so on through chains) the result is exactly `-inf`, never NaN.
/// `sample` pushes base samples forward, and `sample_and_log_prob` does it in
/// one `forward_and_log_det` pass (no inverse needed, which matters for flows
/// whose inverse is expensive).
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
///
/// // A log-normal: exp of N(0, 1). Both parts work for any scalar type,
/// // so name it once.
/// let d = TransformedDistribution::new::<f64>(StandardNormal::new(1)?, Exp)?;
/// let y = DMatrix::from_row_slice(1, 2, &[1.0_f64, -1.0]);
/// let lp = d.log_prob(&y);
/// assert!((lp[0] + 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
/// assert_eq!(lp[1], f64::NEG_INFINITY); // outside the support
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformedDistribution<D, B> {
    base: D,
    bijector: B,
}

impl<D, B> TransformedDistribution<D, B> {
    /// Pushes `base` through `bijector` (both taken by value).
    ///
    /// Errors with [`Error::DimensionMismatch`] if the bijector has a fixed
    /// dimension different from the base's.
    pub fn new<T: Real>(base: D, bijector: B) -> Result<Self, Error>
    where
        D: Distribution<T>,
        B: Bijector<T>,
    {
        if let Some(d) = bijector.dim() {
            check::same_dim("TransformedDistribution::new", "bijector", base.dim(), d)?;
        }
        Ok(Self { base, bijector })
    }

    /// The base distribution.
    pub fn base(&self) -> &D {
        &self.base
    }

    /// The bijector.
    pub fn bijector(&self) -> &B {
        &self.bijector
    }

    /// Splits into base and bijector.
    pub fn into_parts(self) -> (D, B) {
        (self.base, self.bijector)
    }
}

impl<T: Real, D: Distribution<T>, B: Bijector<T>> Distribution<T>
    for TransformedDistribution<D, B>
{
    fn dim(&self) -> usize {
        self.base.dim()
    }
    fn log_prob(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows("TransformedDistribution::log_prob", self.base.dim(), y);
        let (x, ildj) = self.bijector.inverse_and_log_det(y);
        let mut lp = self.base.log_prob(&x);
        for (j, (l, d)) in lp.iter_mut().zip(ildj.iter()).enumerate() {
            // A non-finite preimage means y is outside the bijector's image.
            if x.column(j).iter().any(|v| !v.is_finite()) {
                *l = T::neg_infinity();
            } else {
                *l += *d;
            }
        }
        sanitize(lp)
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        self.bijector.forward(&self.base.sample(n, rng))
    }
    fn sample_and_log_prob(&self, n: usize, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        let (x, base_lp) = self.base.sample_and_log_prob(n, rng);
        let (y, fldj) = self.bijector.forward_and_log_det(&x);
        (y, sanitize(base_lp - fldj))
    }
}
