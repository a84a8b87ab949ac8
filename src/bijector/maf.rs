use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Bijector, assert_rows};
use crate::nn::{ConditionerConfig, Made, positive_scale};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
pub struct MaskedAutoregressiveFlow<T: Real> {
    made: Made<T>,
}

impl<T: Real> MaskedAutoregressiveFlow<T> {
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
        let made = Made::with_order(dim, 0, 2, order, config, rng)
            .map_err(|e| rename_context(e, "MaskedAutoregressiveFlow::new"))?;
        Ok(Self { made })
    }

    /// Wraps an existing MADE with 2 outputs per dimension and no context.
    pub fn from_made(made: Made<T>) -> Result<Self, Error> {
        if made.params_per_dim() != 2 || made.context_dim() != 0 {
            return Err(crate::error::check::invalid(
                "MaskedAutoregressiveFlow::from_made",
                "made",
                "a MADE with 2 outputs per dimension and no context",
                format!(
                    "{} outputs per dimension, context {}",
                    made.params_per_dim(),
                    made.context_dim()
                ),
            ));
        }
        Ok(Self { made })
    }

    /// Wraps a MADE with 2 outputs per dimension and any context dimension
    /// (the conditional layers drive such a MADE themselves; its unconditional
    /// `Bijector` methods are never called).
    pub(crate) fn from_made_with_context(made: Made<T>) -> Self {
        debug_assert_eq!(made.params_per_dim(), 2);
        Self { made }
    }

    /// The conditioner.
    pub fn made(&self) -> &Made<T> {
        &self.made
    }

    /// The autoregressive order.
    pub fn order(&self) -> &[usize] {
        self.made.order()
    }

    /// All parameters in one buffer.
    pub fn params(&self) -> &[T] {
        self.made.params()
    }

    /// Mutable parameter buffer; call [`MaskedAutoregressiveFlow::enforce_masks`]
    /// after writing to it from outside a training loop.
    pub fn params_mut(&mut self) -> &mut [T] {
        self.made.params_mut()
    }

    /// Re-zeroes masked weights.
    pub fn enforce_masks(&mut self) {
        self.made.enforce_masks()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.made.num_params()
    }

    fn dim_(&self) -> usize {
        self.made.dim()
    }

    /// `(u, Σ log s)` from `x` in one MADE pass.
    fn invert(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.invert_with(x, &self.made.forward(x))
    }

    /// `(u, Σ log s)` from `x` and the MADE's output at `x`.
    pub(crate) fn invert_with(&self, x: &DMatrix<T>, out: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let d = self.dim_();
        let mut u = DMatrix::zeros(d, x.ncols());
        let mut ldj = DVector::zeros(x.ncols());
        let sc = Scales::of(d, out, true);
        // Column slices (no index checks), so the inner loop vectorises.
        for (((((uc, xc), oc), scc), lsc), l) in u
            .as_mut_slice()
            .chunks_exact_mut(d)
            .zip(x.as_slice().chunks_exact(d))
            .zip(out.as_slice().chunks_exact(2 * d))
            .zip(sc.s.chunks_exact(d))
            .zip(sc.log_s.chunks_exact(d))
            .zip(ldj.iter_mut())
        {
            let mut acc = T::zero();
            for (((ui, xi), ti), (si, li)) in
                uc.iter_mut().zip(xc).zip(&oc[..d]).zip(scc.iter().zip(lsc))
            {
                // u = x·s + t: the density direction multiplies.
                *ui = *xi * *si + *ti;
                acc += *li;
            }
            *l = acc;
        }
        drop(sc);
        (u, ldj)
    }

    /// The backward pass of the density direction at `x`, given the MADE's
    /// output and cache at `x`: adds `∂L/∂θ`, returns `∂L/∂x`.
    fn backward_from(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        cache: &crate::nn::MlpCache<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> DMatrix<T> {
        let (mut grad_x, grad_net) = self.density_cotangents(x, out, grad_u, grad_log_det);
        grad_x += self.made.backward(cache, &grad_net, grad_params);
        grad_x
    }

    /// The cotangents of the density direction at `x` given the MADE's output
    /// `out` there: `(∂L/∂x` along the direct path `u = x·s + t`, `∂L/∂out)`.
    /// The MADE's own backward pass turns the second into parameter (and
    /// context) gradients.
    pub(crate) fn density_cotangents(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let d = self.dim_();
        let n = x.ncols();
        let mut grad_x = DMatrix::zeros(d, n);
        let mut grad_net = DMatrix::zeros(2 * d, n);
        let sc = Scales::of(d, out, false);
        // Column slices (no index checks), so the inner loop vectorises.
        for ((((((gxc, gnc), xc), scc), dsc), guc), gl) in grad_x
            .as_mut_slice()
            .chunks_exact_mut(d)
            .zip(grad_net.as_mut_slice().chunks_exact_mut(2 * d))
            .zip(x.as_slice().chunks_exact(d))
            .zip(sc.s.chunks_exact(d))
            .zip(sc.ds.chunks_exact(d))
            .zip(grad_u.as_slice().chunks_exact(d))
            .zip(grad_log_det.iter())
        {
            let (g_t, g_a) = gnc.split_at_mut(d);
            for (((((gx, gt), ga), xi), (si, dsi)), gu) in gxc
                .iter_mut()
                .zip(g_t)
                .zip(g_a)
                .zip(xc)
                .zip(scc.iter().zip(dsc))
                .zip(guc)
            {
                // u = x·s(a) + t, log-det log s(a).
                *gx = *gu * *si;
                *gt = *gu;
                let g_scale = *gu * *xi + *gl / *si;
                *ga = g_scale * *dsi;
            }
        }
        drop(sc);
        (grad_x, grad_net)
    }

    /// `(x, −Σ log s)` from `u` in `D` sequential steps. Each step evaluates
    /// only the MADE units that the step's coordinate needs and that are not
    /// known yet ([`Made::sequential`]), so the `D` steps cost about one pass.
    fn generate(&self, u: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let d = self.dim_();
        let mut x = DMatrix::zeros(d, u.ncols());
        let mut ldj = DVector::zeros(u.ncols());
        let mut seq = self.made.sequential(u.ncols());
        while let Some(i) = seq.next_coordinate() {
            // Coordinates not yet generated are 0; output i does not depend on them.
            let out = seq.step(&x);
            for s in 0..u.ncols() {
                let (scale, log_scale) = positive_scale(out[(1, s)]);
                x[(i, s)] = (u[(i, s)] - out[(0, s)]) / scale;
                ldj[s] -= log_scale;
            }
        }
        (x, ldj)
    }
}

/// The scales of every coordinate and sample of a batch, from the MADE's
/// output (`2D × n`, rows `D..2D` the raw scales): `s`, `ds/da` and (with
/// `with_log`; else left empty) `log s`, each `D × n` column-major, in
/// buffers from the thread's pool.
struct Scales<T: Real> {
    s: crate::nn::ScratchVec<T>,
    log_s: crate::nn::ScratchVec<T>,
    ds: crate::nn::ScratchVec<T>,
}

impl<T: Real> Scales<T> {
    fn of(d: usize, out: &DMatrix<T>, with_log: bool) -> Self {
        let len = d * out.ncols();
        let mut a = crate::nn::take_scratch_vec::<T>(len);
        for (ac, oc) in a
            .chunks_exact_mut(d)
            .zip(out.as_slice().chunks_exact(2 * d))
        {
            ac.copy_from_slice(&oc[d..]);
        }
        let mut sc = Scales {
            s: crate::nn::take_scratch_vec(len),
            log_s: if with_log {
                crate::nn::take_scratch_vec(len)
            } else {
                crate::nn::ScratchVec::empty()
            },
            ds: crate::nn::take_scratch_vec(len),
        };
        let log_s = with_log.then_some(sc.log_s.as_mut_slice());
        crate::nn::positive_scales(&a, &mut sc.s, log_s, &mut sc.ds);
        drop(a);
        sc
    }
}

pub(crate) fn rename_context(e: Error, context: &str) -> Error {
    match e {
        Error::InvalidDimension {
            argument,
            expected,
            got,
            ..
        } => Error::InvalidDimension {
            context: context.into(),
            argument,
            expected,
            got,
        },
        Error::InvalidParameter {
            argument,
            expected,
            got,
            ..
        } => Error::InvalidParameter {
            context: context.into(),
            argument,
            expected,
            got,
        },
        other => other,
    }
}

impl<T: Real> Bijector<T> for MaskedAutoregressiveFlow<T> {
    fn forward(&self, u: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("MaskedAutoregressiveFlow::forward", self.dim_(), u);
        self.generate(u).0
    }
    fn inverse(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("MaskedAutoregressiveFlow::inverse", self.dim_(), x);
        self.invert(x).0
    }
    fn forward_log_det_jacobian(&self, u: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "MaskedAutoregressiveFlow::forward_log_det_jacobian",
            self.dim_(),
            u,
        );
        self.generate(u).1
    }
    fn inverse_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "MaskedAutoregressiveFlow::inverse_log_det_jacobian",
            self.dim_(),
            x,
        );
        self.invert(x).1
    }
    fn forward_and_log_det(&self, u: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows(
            "MaskedAutoregressiveFlow::forward_and_log_det",
            self.dim_(),
            u,
        );
        self.generate(u)
    }
    fn inverse_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows(
            "MaskedAutoregressiveFlow::inverse_and_log_det",
            self.dim_(),
            x,
        );
        self.invert(x)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim_())
    }
    super::differentiable_hooks!();
}

impl<T: Real> super::Differentiable<T> for MaskedAutoregressiveFlow<T> {
    fn num_params(&self) -> usize {
        self.made.num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        f(self.made.params())
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        f(self.made.params_mut())
    }
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    fn params_changed(&mut self) {
        self.made.enforce_masks();
    }
    /// The density direction: one MADE pass, differentiated exactly.
    fn inverse_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        let d = self.dim_();
        assert_rows(
            "MaskedAutoregressiveFlow::inverse_and_log_det_backward",
            d,
            x,
        );
        let (out, cache) = self.made.forward_cached(x);
        Ok(self.backward_from(x, &out, &cache, grad_u, grad_log_det, grad_params))
    }
    /// One MADE pass serves both the value and the backward pass.
    fn inverse_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        assert_rows(
            "MaskedAutoregressiveFlow::inverse_and_log_det_through",
            self.dim_(),
            x,
        );
        let (out, cache) = self.made.forward_cached(x);
        let (u, ldj) = self.invert_with(x, &out);
        let (grad_u, grad_log_det) = rest(&u, &ldj)?;
        Ok(self.backward_from(x, &out, &cache, &grad_u, &grad_log_det, grad_params))
    }

    /// The sampling direction is `D` sequential passes; its gradient is not
    /// implemented.
    fn forward_and_log_det_backward(
        &self,
        _u: &DMatrix<T>,
        _grad_x: &DMatrix<T>,
        _grad_log_det: &DVector<T>,
        _grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        Err(Error::Unsupported {
            context: "MaskedAutoregressiveFlow::forward_and_log_det_backward".into(),
            reason:
                "the sampling direction of a MAF is D sequential passes and has no backward pass; \
                     train a MAF by maximum likelihood (the inverse direction), or use an \
                     InverseAutoregressiveFlow when gradients must flow through samples"
                    .into(),
        })
    }
}
