//! A diagonal Gaussian whose mean and scale are an MLP of the context.

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use crate::bijector::pass::Pass;
use crate::bijector::{Bijector, Differentiable, assert_pair, no_context};
use crate::distribution::{
    Distribution, StandardNormal, TrainableBase, sanitize, standard_normal_matrix,
};
use crate::error::check;
use crate::nn::{ConditionerConfig, Mlp, positive_scale, positive_scale_derivative};
use crate::{Error, Real};

/// An elementwise affine map whose shift and scale are a network of the
/// context only: `x = μ(c) + σ(c) ⊙ u`, with `(μ, a) = MLP(c)` (rows `0..D`
/// the shifts, rows `D..2D` the raw scales) and `σ = `[`positive_scale`]`(a)`
/// (softplus with a floor of `1e-3`, equal to 1 at `a = 0`: the scale map of
/// every affine layer of the crate). `log|det ∂x/∂u| = Σ log σᵢ(c)`.
///
/// It is the transform behind [`ConditionalDiagonalGaussian`]; as a layer it
/// shifts and rescales the whole flow per context. Both directions are one
/// network pass and differentiable, in the parameters, the input and the
/// context. With `config.identity_init` it starts as the identity.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextAffine<T: Real> {
    dim: usize,
    context_dim: usize,
    net: Mlp<T>,
}

impl<T: Real> ContextAffine<T> {
    /// A map of `dim` coordinates driven by a `context_dim`-dimensional
    /// context (both ≥ 1) through an MLP shaped by `config`.
    pub fn new(
        dim: usize,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "ContextAffine::new";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        config.validate(CTX)?;
        let net = Mlp::from_config(context_dim, 2 * dim, config, rng)
            .map_err(|e| crate::error::check::rename_context(e, CTX))?;
        Ok(Self {
            dim,
            context_dim,
            net,
        })
    }

    /// The network `c ↦ (μ, a)`.
    pub fn net(&self) -> &Mlp<T> {
        &self.net
    }

    /// The shift `μ(c)` and the scale `σ(c)` of every context column (`D × n` each).
    pub fn shift_and_scale(&self, c: &DMatrix<T>) -> (DMatrix<T>, DMatrix<T>) {
        crate::batch::assert_rows(
            "ContextAffine::shift_and_scale (context)",
            self.context_dim,
            c,
        );
        let out = self.net.forward(c);
        let d = self.dim;
        (
            out.rows(0, d).clone_owned(),
            out.rows(d, d).map(|a| positive_scale(a).0),
        )
    }

    fn apply(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        let d = self.dim;
        let mut z = DMatrix::zeros(d, input.ncols());
        let mut ldj = DVector::zeros(input.ncols());
        for s in 0..input.ncols() {
            let mut acc = T::zero();
            for i in 0..d {
                let (sigma, log_sigma) = positive_scale(out[(d + i, s)]);
                let mu = out[(i, s)];
                z[(i, s)] = if inverse {
                    (input[(i, s)] - mu) / sigma
                } else {
                    input[(i, s)] * sigma + mu
                };
                acc += log_sigma;
            }
            ldj[s] = if inverse { -acc } else { acc };
        }
        (z, ldj)
    }

    fn through(&self, pass: Pass<'_, '_, T>) -> Result<DMatrix<T>, Error> {
        let (input, c, grad_params, grad_context, rest, inverse) = pass.parts();
        assert_pair("ContextAffine", Some(self.dim), self.context_dim, input, c);
        let d = self.dim;
        let (out, cache) = self.net.forward_cached(c);
        let (z, ldj) = self.apply(input, &out, inverse);
        let (grad_z, grad_log_det) = rest(&z, &ldj)?;
        let n = input.ncols();
        let mut grad_in = DMatrix::zeros(d, n);
        let mut grad_net = DMatrix::zeros(2 * d, n);
        for s in 0..n {
            for i in 0..d {
                let a = out[(d + i, s)];
                let (sigma, _) = positive_scale(a);
                let g = grad_z[(i, s)];
                let (g_in, g_mu, g_sigma) = if inverse {
                    // u = (x − μ)/σ, log-det −log σ.
                    let u = z[(i, s)];
                    (g / sigma, -g / sigma, -(g * u + grad_log_det[s]) / sigma)
                } else {
                    // x = u σ + μ, log-det log σ.
                    (g * sigma, g, g * input[(i, s)] + grad_log_det[s] / sigma)
                };
                grad_in[(i, s)] = g_in;
                grad_net[(i, s)] = g_mu;
                grad_net[(d + i, s)] = g_sigma * positive_scale_derivative(a);
            }
        }
        *grad_context += self.net.backward(&cache, &grad_net, grad_params, None);
        Ok(grad_in)
    }
}

impl<T: Real> ContextAffine<T> {
    /// Either direction, one network pass of the context.
    fn apply_given(
        &self,
        input: &DMatrix<T>,
        c: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        assert_pair("ContextAffine", Some(self.dim), self.context_dim, input, c);
        self.apply(input, &self.net.forward(c), inverse)
    }
}

impl<T: Real> Bijector<T> for ContextAffine<T> {
    crate::bijector::fused::maps_from_apply!(ContextAffine::apply_given);
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    crate::bijector::differentiable_hooks!();
}

impl<T: Real> crate::Parameters<T> for ContextAffine<T> {
    crate::params::parameters_of_buffer!(s => s.net.params(), s.net.params_mut());
}

impl<T: Real> Differentiable<T> for ContextAffine<T> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::training_from_through!(ContextAffine::through);
}

/// A diagonal Gaussian whose mean and scale come from an MLP of the context:
/// `p(x | c) = N(x; μ(c), diag σ(c)²)` — the amortised posterior of a
/// variational auto-encoder, and a conditional base for flows.
///
/// It is the standard normal pushed through a [`ContextAffine`] map, so
/// `log p(x | c) = log N((x − μ)/σ; 0, I) − Σ log σᵢ`, and
/// sampling is reparameterised: `x = μ(c) + σ(c) ⊙ ε`. The scale uses the
/// crate's softplus scale map (see [`ContextAffine`]). With
/// `config.identity_init` (the default) it starts as `N(0, I)` for every context.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::*;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let q = ConditionalDiagonalGaussian::<f64>::new(2, 3, &cfg, &mut rng)?;
/// let c = DMatrix::from_fn(3, 4, |i, j| (i + j) as f64 * 0.1);
/// let (x, lp) = q.sample_and_log_prob_given(&c, &mut rng); // one sample per context
/// assert!((q.log_prob_given(&x, &c) - &lp).amax() < 1e-12);
/// // The density is the Gaussian of the context's mean and scale.
/// let (mu, sigma) = q.mean_and_scale(&c);
/// let z = (x[(0, 1)] - mu[(0, 1)]) / sigma[(0, 1)];
/// let w = (x[(1, 1)] - mu[(1, 1)]) / sigma[(1, 1)];
/// let by_hand = -0.5 * (z * z + w * w) - (2.0 * std::f64::consts::PI).ln()
///     - sigma[(0, 1)].ln() - sigma[(1, 1)].ln();
/// assert!((lp[1] - by_hand).abs() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalDiagonalGaussian<T: Real> {
    affine: ContextAffine<T>,
}

impl<T: Real> ConditionalDiagonalGaussian<T> {
    /// A Gaussian on `R^dim` given a `context_dim`-dimensional context, with
    /// its mean and scale from an MLP shaped by `config`.
    pub fn new(
        dim: usize,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        let affine = ContextAffine::new(dim, context_dim, config, rng).map_err(|e| {
            crate::error::check::rename_context(e, "ConditionalDiagonalGaussian::new")
        })?;
        Ok(Self { affine })
    }

    /// The map `ε ↦ μ(c) + σ(c) ⊙ ε` behind the distribution.
    pub fn affine(&self) -> &ContextAffine<T> {
        &self.affine
    }

    /// The mean `μ(c)` and the standard deviation `σ(c)` of every context
    /// column (`D × n` each).
    pub fn mean_and_scale(&self, c: &DMatrix<T>) -> (DMatrix<T>, DMatrix<T>) {
        self.affine.shift_and_scale(c)
    }
}

impl<T: Real> Distribution<T> for ConditionalDiagonalGaussian<T> {
    fn dim(&self) -> usize {
        self.affine.dim
    }
    fn context_dim(&self) -> usize {
        self.affine.context_dim
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_prob_given(x, &no_context(x.ncols()))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        self.sample_given(&no_context(n), rng)
    }
    fn log_prob_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DVector<T> {
        let (u, ildj) = self.affine.inverse_and_log_det_given(x, c);
        let base = StandardNormal::new(self.affine.dim).expect("dim ≥ 1");
        sanitize(Distribution::<T>::log_prob(&base, &u) + ildj)
    }
    fn sample_given(&self, c: &DMatrix<T>, rng: &mut dyn Rng) -> DMatrix<T> {
        self.sample_and_log_prob_given(c, rng).0
    }
    fn sample_and_log_prob_given(
        &self,
        c: &DMatrix<T>,
        rng: &mut dyn Rng,
    ) -> (DMatrix<T>, DVector<T>) {
        crate::batch::assert_rows(
            "ConditionalDiagonalGaussian::sample (context)",
            self.affine.context_dim,
            c,
        );
        let eps: DMatrix<T> = standard_normal_matrix(self.affine.dim, c.ncols(), rng);
        let base = StandardNormal::new(self.affine.dim).expect("dim ≥ 1");
        let lp = Distribution::<T>::log_prob(&base, &eps);
        let (x, fldj) = self.affine.forward_and_log_det_given(&eps, c);
        (x, sanitize(lp - fldj))
    }
    fn as_trainable_base(&self) -> Option<&dyn TrainableBase<T>> {
        Some(self)
    }
    fn as_trainable_base_mut(&mut self) -> Option<&mut dyn TrainableBase<T>> {
        Some(self)
    }
}

/// Its parameters are the network's.
impl<T: Real> crate::Parameters<T> for ConditionalDiagonalGaussian<T> {
    crate::params::parameters_of_buffer!(s => s.affine.net.params(), s.affine.net.params_mut());
}

/// Trainable as a flow's base.
impl<T: Real> TrainableBase<T> for ConditionalDiagonalGaussian<T> {
    fn log_prob_backward(
        &self,
        x: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
    ) -> DMatrix<T> {
        let (c, mut gc) = (no_context(x.ncols()), no_context(x.ncols()));
        self.log_prob_backward_given(x, &c, grad_log_prob, grad_params, &mut gc)
    }
    fn log_prob_backward_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_log_prob: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> DMatrix<T> {
        // log p = −½‖u‖² + const + ildj: ∂/∂u = −u, ∂/∂ildj = 1.
        let glp = grad_log_prob.clone();
        self.affine
            .inverse_and_log_det_through_given(x, c, grad_params, grad_context, &mut |u, _| {
                let mut gu = -u;
                for (j, mut col) in gu.column_iter_mut().enumerate() {
                    col *= glp[j];
                }
                Ok((gu, glp.clone()))
            })
            .expect("the affine map of a diagonal Gaussian is differentiable")
    }
}
