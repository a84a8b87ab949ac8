//! A conditional base pushed through a conditional bijector.

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{
    ConditionalBijector, ConditionalDifferentiable, ConditionalDistribution,
    ConditionalTrainableBase,
};
use crate::distribution::sanitize;
use crate::error::check;
use crate::{Error, Real};

/// The distribution of `x = f(u; c)` for `u ~ base(· | c)`: the conditional
/// twin of [`TransformedDistribution`](crate::TransformedDistribution).
///
/// `log p(x | c) = log p_base(f⁻¹(x; c) | c) + log|det ∂f⁻¹/∂x|`, exactly
/// `-inf` (never NaN) where `x` lies outside the image of `f(·; c)`.
/// `sample(c, rng)` draws one base sample per context column and pushes it
/// forward; `sample_and_log_prob` does it in one `forward_and_log_det` pass.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::*;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let flow = ConditionalIaf::new(ConditionalMaf::<f64>::new(2, 1, &cfg, &mut rng)?);
/// let base = IgnoreContext::new(StandardNormal::new(2)?, 1);
/// let dist = ConditionalTransformedDistribution::new(base, flow)?;
/// let c = DMatrix::from_row_slice(1, 3, &[-1.0, 0.0, 1.0]);
/// let (x, lp) = dist.sample_and_log_prob(&c, &mut rng); // one IAF pass
/// assert!((dist.log_prob(&x, &c) - lp).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalTransformedDistribution<D, B> {
    base: D,
    bijector: B,
}

impl<D, B> ConditionalTransformedDistribution<D, B> {
    /// Pushes `base` through `bijector`. Errors if their dimensions or
    /// context dimensions differ.
    pub fn new<T: Real>(base: D, bijector: B) -> Result<Self, Error>
    where
        D: ConditionalDistribution<T>,
        B: ConditionalBijector<T>,
    {
        const CTX: &str = "ConditionalTransformedDistribution::new";
        if let Some(d) = bijector.dim() {
            check::same_dim(CTX, "bijector (dimension)", base.dim(), d)?;
        }
        check::same_dim(
            CTX,
            "bijector (context dimension)",
            base.context_dim(),
            bijector.context_dim(),
        )?;
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

    /// Mutable access to the base (for training).
    pub fn base_mut(&mut self) -> &mut D {
        &mut self.base
    }

    /// Mutable access to the bijector (for training).
    pub fn bijector_mut(&mut self) -> &mut B {
        &mut self.bijector
    }
}

impl<T: Real, D: ConditionalDistribution<T>, B: ConditionalBijector<T>> ConditionalDistribution<T>
    for ConditionalTransformedDistribution<D, B>
{
    fn dim(&self) -> usize {
        self.base.dim()
    }
    fn context_dim(&self) -> usize {
        self.base.context_dim()
    }
    fn log_prob(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        super::assert_pair(
            "ConditionalTransformedDistribution::log_prob",
            Some(self.base.dim()),
            self.base.context_dim(),
            x,
            c,
        );
        let (u, ildj) = self.bijector.inverse_and_log_det(x, c);
        log_prob_from(&self.base, &u, c, ildj)
    }
    fn sample(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        let u = self.base.sample(c, rng);
        self.bijector.forward(&u, c)
    }
    fn sample_and_log_prob(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        let (u, lp) = self.base.sample_and_log_prob(c, rng);
        let (x, fldj) = self.bijector.forward_and_log_det(&u, c);
        (x, sanitize(lp - fldj))
    }
}

/// `log p_base(u | c) + ildj`, `-inf` where `u` is not finite (outside the
/// image of the bijector), never NaN.
pub(crate) fn log_prob_from<T: Real>(
    base: &dyn ConditionalDistribution<T>,
    u: &DMatrix<T>,
    c: &DMatrix<T>,
    ildj: DVector<T>,
) -> DVector<T> {
    let finite: Vec<bool> = u
        .column_iter()
        .map(|col| col.iter().all(|v| v.is_finite()))
        .collect();
    let safe = DMatrix::from_fn(u.nrows(), u.ncols(), |i, j| {
        if finite[j] { u[(i, j)] } else { T::zero() }
    });
    let mut lp = base.log_prob(&safe, c) + ildj;
    for (j, l) in lp.iter_mut().enumerate() {
        if !finite[j] {
            *l = T::neg_infinity();
        }
    }
    sanitize(lp)
}

/// The mean of `log p(x | c)` over the batch, with its gradient **added**
/// into `grad` (the bijector's parameters, then the base's) and, if given,
/// into `grad_context` (`C × n`): one fused pass through the bijector.
pub(crate) fn conditional_mean_log_prob_and_grad<T: Real>(
    base: &dyn ConditionalTrainableBase<T>,
    bijector: &dyn ConditionalDifferentiable<T>,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    grad: &mut [T],
    grad_context: Option<&mut DMatrix<T>>,
) -> Result<T, Error> {
    let n = x.ncols();
    let inv_n = T::one() / T::lit(n as f64);
    let (grad_bij, grad_base) = grad.split_at_mut(bijector.num_params());
    let mut gc_flow = DMatrix::zeros(c.nrows(), c.ncols());
    let mut gc_base = DMatrix::zeros(c.nrows(), c.ncols());
    let mut mean = T::zero();
    let weights = DVector::from_element(n, inv_n);
    bijector.inverse_and_log_det_through(x, c, grad_bij, &mut gc_flow, &mut |u, ildj| {
        let lp = base.log_prob(u, c);
        mean = (lp + ildj).sum() * inv_n;
        let g_u = base.log_prob_backward(u, c, &weights, grad_base, &mut gc_base)?;
        Ok((g_u, weights.clone()))
    })?;
    if let Some(g) = grad_context {
        *g += gc_flow + gc_base;
    }
    Ok(mean)
}

impl<D, B> ConditionalTransformedDistribution<D, B> {
    /// The mean log-density of the batch; **adds** its gradient with respect
    /// to the parameters (the bijector's, then the base's) into `grad` and
    /// with respect to the contexts into `grad_context` (`C × n`).
    pub fn mean_log_prob_and_grad<T: Real>(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<T, Error>
    where
        D: ConditionalTrainableBase<T>,
        B: ConditionalDifferentiable<T>,
    {
        conditional_mean_log_prob_and_grad(
            &self.base,
            &self.bijector,
            x,
            c,
            grad,
            Some(grad_context),
        )
    }
}
