use std::marker::PhantomData;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Distribution, sanitize};
use crate::bijector::{Bijector, assert_pair, no_context};
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
/// // A log-normal: exp of N(0, 1). Both parts work for any scalar type; the
/// // f64 batch below fixes it.
/// let d = TransformedDistribution::new(StandardNormal::new(1)?, Exp)?;
/// let y = DMatrix::from_row_slice(1, 2, &[1.0_f64, -1.0]);
/// let lp = d.log_prob(&y);
/// assert!((lp[0] + 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
/// assert_eq!(lp[1], f64::NEG_INFINITY); // outside the support
/// # Ok::<(), normflow::Error>(())
/// ```
///
/// The scalar type `T` is a parameter of the type (not only of its trait
/// impl), so that a distribution built from parameter-free parts
/// (`StandardNormal`, `Exp`) has one scalar type, fixed by the first use or
/// named as `TransformedDistribution::<f64, _, _>::new(…)`.
///
/// Deserialisation checks the dimensions again, like [`TransformedDistribution::new`].
#[derive(Serialize, Deserialize)]
#[serde(
    try_from = "TransformedRepr<D, B>",
    into = "TransformedRepr<D, B>",
    bound(
        serialize = "D: Serialize + Clone, B: Serialize + Clone",
        deserialize = "T: Real, D: Deserialize<'de> + Distribution<T>, B: Deserialize<'de> + Bijector<T>"
    )
)]
pub struct TransformedDistribution<T, D, B> {
    base: D,
    bijector: B,
    scalar: PhantomData<fn() -> T>,
}

impl<T, D: Clone, B: Clone> Clone for TransformedDistribution<T, D, B> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            bijector: self.bijector.clone(),
            scalar: PhantomData,
        }
    }
}

impl<T, D: std::fmt::Debug, B: std::fmt::Debug> std::fmt::Debug
    for TransformedDistribution<T, D, B>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformedDistribution")
            .field("base", &self.base)
            .field("bijector", &self.bijector)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct TransformedRepr<D, B> {
    base: D,
    bijector: B,
}

impl<T, D, B> From<TransformedDistribution<T, D, B>> for TransformedRepr<D, B> {
    fn from(t: TransformedDistribution<T, D, B>) -> Self {
        TransformedRepr {
            base: t.base,
            bijector: t.bijector,
        }
    }
}

impl<T: Real, D: Distribution<T>, B: Bijector<T>> TryFrom<TransformedRepr<D, B>>
    for TransformedDistribution<T, D, B>
{
    type Error = Error;
    fn try_from(r: TransformedRepr<D, B>) -> Result<Self, Error> {
        TransformedDistribution::new(r.base, r.bijector)
    }
}

impl<T: Real, D: Distribution<T>, B: Bijector<T>> TransformedDistribution<T, D, B> {
    /// Pushes `base` through `bijector` (both taken by value).
    ///
    /// Errors with [`Error::DimensionMismatch`] if the bijector has a fixed
    /// dimension different from the base's.
    ///
    /// The result is conditional (context dimension `C`) when the base or the
    /// bijector is; errors if both are and their context dimensions differ.
    pub fn new(base: D, bijector: B) -> Result<Self, Error> {
        const CTX: &str = "TransformedDistribution::new";
        if let Some(d) = bijector.dim() {
            check::same_dim(CTX, "bijector", base.dim(), d)?;
        }
        if base.context_dim() > 0 && bijector.context_dim() > 0 {
            check::same_dim(
                CTX,
                "bijector (context dimension)",
                base.context_dim(),
                bijector.context_dim(),
            )?;
        }
        Ok(Self {
            base,
            bijector,
            scalar: PhantomData,
        })
    }
}

impl<T, D, B> TransformedDistribution<T, D, B> {
    /// The base distribution.
    pub fn base(&self) -> &D {
        &self.base
    }

    /// The bijector.
    pub fn bijector(&self) -> &B {
        &self.bijector
    }

    pub(crate) fn bijector_mut_internal(&mut self) -> &mut B {
        &mut self.bijector
    }

    pub(crate) fn base_mut_internal(&mut self) -> &mut D {
        &mut self.base
    }

    /// Splits into base and bijector.
    pub fn into_parts(self) -> (D, B) {
        (self.base, self.bijector)
    }
}

impl<T: Real, D: Distribution<T>, B: Bijector<T>> Distribution<T>
    for TransformedDistribution<T, D, B>
{
    fn dim(&self) -> usize {
        self.base.dim()
    }
    fn log_prob(&self, y: &DMatrix<T>) -> DVector<T> {
        self.log_prob_given(y, &no_context(y.ncols()))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        self.sample_given(&no_context(n), rng)
    }
    fn sample_and_log_prob(&self, n: usize, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        self.sample_and_log_prob_given(&no_context(n), rng)
    }
    fn context_dim(&self) -> usize {
        self.base.context_dim().max(self.bijector.context_dim())
    }
    fn log_prob_given(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        assert_pair(
            "TransformedDistribution::log_prob",
            Some(self.base.dim()),
            self.context_dim(),
            y,
            c,
        );
        let (x, ildj) = self.bijector.inverse_and_log_det_given(y, c);
        log_prob_from(&self.base, &x, c, ildj)
    }
    fn sample_given(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        self.bijector
            .forward_given(&self.base.sample_given(c, rng), c)
    }
    fn sample_and_log_prob_given(
        &self,
        c: &DMatrix<T>,
        rng: &mut dyn Rng,
    ) -> (DMatrix<T>, DVector<T>) {
        let (x, base_lp) = self.base.sample_and_log_prob_given(c, rng);
        let (y, fldj) = self.bijector.forward_and_log_det_given(&x, c);
        (y, sanitize(base_lp - fldj))
    }
    fn log_prob_grad(&self, y: &DMatrix<T>) -> Option<DMatrix<T>> {
        let d = self.bijector.as_differentiable()?;
        let (x, _) = self.bijector.inverse_and_log_det(y);
        let g_base = self.base.log_prob_grad(&x)?;
        let mut scratch = vec![T::zero(); d.num_params()];
        d.inverse_and_log_det_backward(
            y,
            &g_base,
            &DVector::from_element(y.ncols(), T::one()),
            &mut scratch,
        )
        .ok()
    }
}

/// `log p_base(x | c) + ildj`: exactly `-inf` where the preimage `x` is not
/// finite (the point lies outside the bijector's image), never NaN.
pub(crate) fn log_prob_from<T: Real>(
    base: &dyn Distribution<T>,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    ildj: DVector<T>,
) -> DVector<T> {
    let mut lp = base.log_prob_given(x, c);
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
