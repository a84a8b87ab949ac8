use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

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

    /// A conditional MAF layer `x ↦ f(x; c)` over `dim` coordinates in
    /// natural order, whose MADE also reads a context of `context_dim ≥ 1`
    /// dimensions as inputs of degree 0 that every hidden unit sees
    /// (Papamakarios et al. 2017, §3.4; the autoregressive property in `x`
    /// is kept). Call it through the `_given` methods.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::nn::ConditionerConfig;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
    /// let maf = MaskedAutoregressiveFlow::<f64>::conditional(2, 1, &cfg, &mut rng)?; // D = 2, C = 1
    /// assert_eq!(maf.context_dim(), 1);
    /// let x = DMatrix::from_row_slice(2, 3, &[0.1, -0.4, 1.0, 0.5, 0.2, -1.0]);
    /// let c = DMatrix::from_row_slice(1, 3, &[0.0, 1.0, 2.0]);
    /// let (u, ildj) = maf.inverse_and_log_det_given(&x, &c);    // one MADE pass
    /// let (x_back, fldj) = maf.forward_and_log_det_given(&u, &c); // D steps
    /// assert!((x_back - &x).amax() < 1e-10);
    /// assert!((ildj + fldj).amax() < 1e-10);
    /// // Another context, another map.
    /// let other = DMatrix::from_element(1, 3, -2.0);
    /// assert!((maf.inverse_given(&x, &other) - &u).amax() > 1e-3);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn conditional(
        dim: usize,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::conditional_with_order(dim, context_dim, (0..dim).collect(), config, rng)
    }

    /// [`MaskedAutoregressiveFlow::conditional`] with the autoregressive order `order`.
    pub fn conditional_with_order(
        dim: usize,
        context_dim: usize,
        order: Vec<usize>,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "MaskedAutoregressiveFlow::conditional";
        crate::error::check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        let made = Made::with_order(dim, context_dim, 2, order, config, rng)
            .map_err(|e| rename_context(e, CTX))?;
        Ok(Self { made })
    }

    /// Wraps an existing MADE with 2 outputs per dimension (and any context
    /// dimension: a MADE with a context makes a conditional layer).
    pub fn from_made(made: Made<T>) -> Result<Self, Error> {
        if made.params_per_dim() != 2 {
            return Err(crate::error::check::invalid(
                "MaskedAutoregressiveFlow::from_made",
                "made",
                "a MADE with 2 outputs per dimension",
                format!("{} outputs per dimension", made.params_per_dim()),
            ));
        }
        Ok(Self { made })
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

impl<T: Real> super::autoregressive::AutoregressiveKernel<T> for MaskedAutoregressiveFlow<T> {
    const NAME: &'static str = "MaskedAutoregressiveFlow";
    const SEQUENTIAL: &'static str = "the sampling direction of a MAF is D sequential passes and has no backward pass; \
         train a MAF by maximum likelihood (the inverse direction), or use an \
         InverseAutoregressiveFlow when gradients must flow through samples";
    fn made(&self) -> &Made<T> {
        &self.made
    }
    fn invert_with(&self, x: &DMatrix<T>, out: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
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
    fn density_cotangents(
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
    fn scratch(&self) -> usize {
        0
    }
    fn generate_step(&self, step: &DMatrix<T>, u: T, s: usize, _: &mut [T]) -> (T, T) {
        // The inverse is u = x·s + t; a step's rows are (t, a) of the coordinate.
        let (scale, log_scale) = positive_scale(step[(1, s)]);
        ((u - step[(0, s)]) / scale, -log_scale)
    }
}

super::autoregressive::autoregressive_layer!(MaskedAutoregressiveFlow);
