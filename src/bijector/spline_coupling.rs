//! The rational-quadratic spline coupling layer of Neural Spline Flows.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::rq_spline::{
    BackwardKernel, check_spline_shape, params_per_coord, rqs_forward, rqs_forward_backward,
    rqs_inverse, rqs_inverse_backward,
};
use super::{Bijector, CouplingMask, assert_rows};
use crate::error::check;
use crate::nn::{ConditionerConfig, Mlp};
use crate::{Error, Real};

/// A spline kernel of one direction: `(input, θ, bins, bound) → (output, log-det)`.
type ForwardKernel<T> = fn(T, &[T], usize, T) -> (T, T);

/// A coupling layer whose transform is a rational-quadratic spline
/// (Durkan, Bekasov, Murray & Papamakarios 2019, *Neural Spline Flows*).
///
/// With the [`CouplingMask`] splitting the coordinates into an identity half
/// `A` and a transformed half `B` (forward = base → data):
///
/// ```text
/// y_A = x_A,    y_B[j] = spline(x_B[j]; θ_j(x_A))
/// ```
///
/// where each transformed coordinate goes through its own `K`-bin spline on
/// `[−B, B]` (identity outside), exactly as in
/// [`RationalQuadraticSpline`](super::RationalQuadraticSpline), whose
/// documentation gives the formulas and the parametrisation. The `3K − 1` raw
/// parameters `θ_j` of every transformed coordinate come from one [`Mlp`] of
/// `x_A`, per sample. Since `y_A = x_A`, the inverse sees the same conditioner
/// input, so **both directions cost one conditioner pass**; the Jacobian is
/// block triangular with unit rows for `A` and a diagonal `B` block, and
/// `log|det| = Σ_j log dy_B[j]/dx_B[j]`.
///
/// # Conditioner
///
/// An MLP `|A| → hidden (× depth) → |B|·(3K − 1)`; its input is `x_A` in
/// the order of [`CouplingMask::identity_indices`]. **Output layout:** output
/// row `j·(3K − 1) + p` is raw parameter `p` of the `j`-th transformed
/// coordinate (`mask.transformed_indices()[j]`), where `p` runs over the
/// spline's layout: `p < K` are the unnormalised widths, `K ≤ p < 2K` the
/// unnormalised heights, `2K ≤ p < 3K − 1` the unnormalised interior
/// derivatives. Each coordinate's parameters are contiguous, as in
/// `RationalQuadraticSpline`'s buffer.
///
/// With `config.identity_init` (the default) the MLP's last layer starts at
/// zero: every raw parameter is 0 and a fresh layer is the identity map.
///
/// All parameters are the MLP's, in one buffer ([`SplineCoupling::params`]).
///
/// **Training.** [`Differentiable`](super::Differentiable) in both
/// directions: the cotangents of the raw spline parameters (from the spline
/// kernels' reverse mode) go back through the MLP, whose input gradient adds
/// to the identity half's.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::nn::ConditionerConfig;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(4);
/// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
/// let mask = CouplingMask::alternating(4, false)?; // 0, 2 condition; 1, 3 transformed
/// let layer = SplineCoupling::<f64>::new(mask, 8, 3.0, &cfg, &mut rng)?;
///
/// let x = DMatrix::from_fn(4, 5, |i, j| (i as f64 - 1.5) + 0.4 * j as f64);
/// let (y, ldj) = layer.forward_and_log_det(&x);   // 1 MLP pass
/// assert_eq!(y.row(0), x.row(0));                 // the identity half passes through
/// assert_eq!(y.row(2), x.row(2));
/// let (x_back, ildj) = layer.inverse_and_log_det(&y); // 1 MLP pass
/// assert!((x_back - &x).amax() < 1e-10);
/// assert!((ldj + ildj).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CouplingRepr<T>", into = "CouplingRepr<T>")]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
pub struct SplineCoupling<T: Real> {
    mask: CouplingMask,
    bins: usize,
    bound: T,
    net: Mlp<T>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
struct CouplingRepr<T: Real> {
    mask: CouplingMask,
    bins: usize,
    bound: T,
    net: Mlp<T>,
}

impl<T: Real> From<SplineCoupling<T>> for CouplingRepr<T> {
    fn from(c: SplineCoupling<T>) -> Self {
        CouplingRepr {
            mask: c.mask,
            bins: c.bins,
            bound: c.bound,
            net: c.net,
        }
    }
}

impl<T: Real> TryFrom<CouplingRepr<T>> for SplineCoupling<T> {
    type Error = Error;
    fn try_from(r: CouplingRepr<T>) -> Result<Self, Error> {
        Self::from_parts(r.mask, r.bins, r.bound, r.net)
    }
}

impl<T: Real> SplineCoupling<T> {
    /// A spline coupling with the given mask, `bins` bins on `[−bound, bound]`
    /// and an MLP conditioner shaped by `config`.
    ///
    /// Errors if `bins` is 0 or above
    /// [`RationalQuadraticSpline::MAX_BINS`](super::RationalQuadraticSpline::MAX_BINS),
    /// `bound` is not finite and positive, or `config` is invalid.
    pub fn new(
        mask: CouplingMask,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "SplineCoupling::new";
        check_spline_shape(CTX, bins, bound)?;
        config.validate(CTX)?;
        let net = Mlp::from_config(
            mask.identity_indices().len(),
            mask.transformed_indices().len() * params_per_coord(bins),
            config,
            rng,
        )
        .map_err(|e| super::maf::rename_context(e, CTX))?;
        Ok(Self {
            mask,
            bins,
            bound,
            net,
        })
    }

    /// A spline coupling from an existing conditioner, which must map `|A|`
    /// inputs to `|B|·(3·bins − 1)` outputs (layout in the type's docs).
    pub fn from_parts(
        mask: CouplingMask,
        bins: usize,
        bound: T,
        net: Mlp<T>,
    ) -> Result<Self, Error> {
        const CTX: &str = "SplineCoupling::from_parts";
        check_spline_shape(CTX, bins, bound)?;
        net.validate(CTX)?;
        check::same_dim(
            CTX,
            "net (inputs)",
            mask.identity_indices().len(),
            net.input_dim(),
        )?;
        check::same_dim(
            CTX,
            "net (outputs)",
            mask.transformed_indices().len() * params_per_coord(bins),
            net.output_dim(),
        )?;
        Ok(Self {
            mask,
            bins,
            bound,
            net,
        })
    }

    /// Which coordinates are transformed.
    pub fn mask(&self) -> &CouplingMask {
        &self.mask
    }

    /// Number of bins `K` of every spline.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The half-width `B` of the interval `[−B, B]` the splines act on.
    pub fn bound(&self) -> T {
        self.bound
    }

    /// The conditioner.
    pub fn net(&self) -> &Mlp<T> {
        &self.net
    }

    /// All parameters (the MLP's) in one buffer.
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

    /// The raw spline parameters of every sample: `|B|·(3K − 1) × n`, one
    /// column per sample, in the layout of the type's docs.
    pub fn spline_params(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("SplineCoupling::spline_params", self.mask.dim(), x);
        self.net
            .forward(&x.select_rows(self.mask.identity_indices()))
    }

    /// One conditioner pass on `x_A` (equal to `y_A`), then `kernel` on every
    /// transformed entry; returns the output and the per-sample log-dets.
    fn apply(&self, x: &DMatrix<T>, kernel: ForwardKernel<T>) -> (DMatrix<T>, DVector<T>) {
        self.apply_with(x, &self.spline_params(x), kernel)
    }

    /// [`SplineCoupling::apply`] given the conditioner's output at `x`.
    fn apply_with(
        &self,
        x: &DMatrix<T>,
        raw: &DMatrix<T>,
        kernel: ForwardKernel<T>,
    ) -> (DMatrix<T>, DVector<T>) {
        let p = params_per_coord(self.bins);
        let mut y = x.clone();
        let mut ldj = DVector::zeros(x.ncols());
        for (s, col) in raw.as_slice().chunks_exact(raw.nrows()).enumerate() {
            let mut acc = T::zero();
            for (&i, theta) in self
                .mask
                .transformed_indices()
                .iter()
                .zip(col.chunks_exact(p))
            {
                let (v, l) = kernel(x[(i, s)], theta, self.bins, self.bound);
                y[(i, s)] = v;
                acc += l;
            }
            ldj[s] = acc;
        }
        (y, ldj)
    }
}

impl<T: Real> Bijector<T> for SplineCoupling<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("SplineCoupling::forward", self.mask.dim(), x);
        self.apply(x, rqs_forward).0
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("SplineCoupling::inverse", self.mask.dim(), y);
        self.apply(y, rqs_inverse).0
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "SplineCoupling::forward_log_det_jacobian",
            self.mask.dim(),
            x,
        );
        self.apply(x, rqs_forward).1
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "SplineCoupling::inverse_log_det_jacobian",
            self.mask.dim(),
            y,
        );
        self.apply(y, rqs_inverse).1
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("SplineCoupling::forward_and_log_det", self.mask.dim(), x);
        self.apply(x, rqs_forward)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("SplineCoupling::inverse_and_log_det", self.mask.dim(), y);
        self.apply(y, rqs_inverse)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.mask.dim())
    }
    super::differentiable_hooks!();
}

impl<T: Real> SplineCoupling<T> {
    /// Shared backward pass of both directions at `input` (`x` forward, `y`
    /// inverse; `input_A` is the conditioner's input either way): returns
    /// `∂L/∂input` and adds `∂L/∂θ` into `grad_params`.
    ///
    /// The transformed coordinates get the spline kernel's input gradient; the
    /// cotangents of the raw spline parameters go back through the MLP, whose
    /// input gradient adds to the identity half's pass-through cotangent.
    fn backward(
        &self,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        kernel: BackwardKernel<T>,
    ) -> DMatrix<T> {
        let ia = self.mask.identity_indices();
        let (raw, cache) = self.net.forward_cached(&input.select_rows(ia));
        self.backward_with(
            input,
            &raw,
            &cache,
            grad_out,
            grad_log_det,
            grad_params,
            kernel,
        )
    }

    /// The fused pass of either direction: one conditioner evaluation.
    fn through(
        &self,
        input: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
        inverse: bool,
    ) -> Result<DMatrix<T>, Error> {
        assert_rows("SplineCoupling::through", self.mask.dim(), input);
        let (raw, cache) = self
            .net
            .forward_cached(&input.select_rows(self.mask.identity_indices()));
        let (kernel, backward): (ForwardKernel<T>, BackwardKernel<T>) = if inverse {
            (rqs_inverse, rqs_inverse_backward)
        } else {
            (rqs_forward, rqs_forward_backward)
        };
        let (z, ldj) = self.apply_with(input, &raw, kernel);
        let (grad_z, grad_log_det) = rest(&z, &ldj)?;
        Ok(self.backward_with(
            input,
            &raw,
            &cache,
            &grad_z,
            &grad_log_det,
            grad_params,
            backward,
        ))
    }

    /// [`SplineCoupling::backward`] given the conditioner's output and cache.
    #[allow(clippy::too_many_arguments)]
    fn backward_with(
        &self,
        input: &DMatrix<T>,
        raw: &DMatrix<T>,
        cache: &crate::nn::MlpCache<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        kernel: BackwardKernel<T>,
    ) -> DMatrix<T> {
        let (mut grad_in, grad_raw) =
            self.cotangents_with(input, raw, grad_out, grad_log_det, kernel);
        let grad_a = self.net.backward(cache, &grad_raw, grad_params, None);
        for (r, &i) in self.mask.identity_indices().iter().enumerate() {
            for s in 0..input.ncols() {
                grad_in[(i, s)] += grad_a[(r, s)];
            }
        }
        grad_in
    }

    /// The cotangents of one direction at `input` given the raw spline
    /// parameters `raw` there: `(∂L/∂input` along the direct paths, `∂L/∂raw)`.
    fn cotangents_with(
        &self,
        input: &DMatrix<T>,
        raw: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        kernel: BackwardKernel<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let ib = self.mask.transformed_indices();
        let p = params_per_coord(self.bins);
        let rows = raw.nrows();
        let mut grad_raw = DMatrix::zeros(rows, input.ncols());
        let mut grad_in = grad_out.clone();
        for (s, (col, gcol)) in raw
            .as_slice()
            .chunks_exact(rows)
            .zip(grad_raw.as_mut_slice().chunks_exact_mut(rows))
            .enumerate()
        {
            for ((&i, theta), g_theta) in ib
                .iter()
                .zip(col.chunks_exact(p))
                .zip(gcol.chunks_exact_mut(p))
            {
                grad_in[(i, s)] = kernel(
                    input[(i, s)],
                    theta,
                    self.bins,
                    self.bound,
                    grad_out[(i, s)],
                    grad_log_det[s],
                    g_theta,
                );
            }
        }
        (grad_in, grad_raw)
    }

    /// A spline coupling whose conditioner takes `|A| + C` inputs (`x_A`,
    /// then a `C`-dimensional context); the conditional layer drives it, its
    /// unconditional `Bijector` methods are never called.
    pub(crate) fn from_parts_with_context(
        mask: CouplingMask,
        bins: usize,
        bound: T,
        net: Mlp<T>,
    ) -> Self {
        Self {
            mask,
            bins,
            bound,
            net,
        }
    }

    /// Either direction at `input` given the raw spline parameters there:
    /// the output and the per-sample log-dets.
    pub(crate) fn apply_direction(
        &self,
        input: &DMatrix<T>,
        raw: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        let kernel: ForwardKernel<T> = if inverse { rqs_inverse } else { rqs_forward };
        self.apply_with(input, raw, kernel)
    }

    /// The cotangents of either direction (see `cotangents_with`).
    pub(crate) fn cotangents(
        &self,
        input: &DMatrix<T>,
        raw: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let kernel: BackwardKernel<T> = if inverse {
            rqs_inverse_backward
        } else {
            rqs_forward_backward
        };
        self.cotangents_with(input, raw, grad_out, grad_log_det, kernel)
    }
}

/// Both directions are one MLP pass, and both are differentiable.
impl<T: Real> super::Differentiable<T> for SplineCoupling<T> {
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
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        assert_rows(
            "SplineCoupling::inverse_and_log_det_backward",
            self.mask.dim(),
            y,
        );
        Ok(self.backward(y, grad_x, grad_log_det, grad_params, rqs_inverse_backward))
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        assert_rows(
            "SplineCoupling::forward_and_log_det_backward",
            self.mask.dim(),
            x,
        );
        Ok(self.backward(x, grad_y, grad_log_det, grad_params, rqs_forward_backward))
    }
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.through(y, grad_params, rest, true)
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.through(x, grad_params, rest, false)
    }
}
