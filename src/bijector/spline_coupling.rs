//! The rational-quadratic spline coupling layer of Neural Spline Flows.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::rq_spline::{
    BackwardKernel, check_spline_shape, params_per_coord, rqs_forward, rqs_forward_backward,
    rqs_inverse, rqs_inverse_backward,
};
use super::{CouplingMask, assert_rows};
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
        const CTX: &str = "SplineCoupling";
        check_spline_shape(CTX, r.bins, r.bound)?;
        super::affine_coupling::check_net(CTX, &r.mask, &r.net, params_per_coord(r.bins))?;
        Ok(Self {
            mask: r.mask,
            bins: r.bins,
            bound: r.bound,
            net: r.net,
        })
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

    /// A conditional spline coupling `x ↦ f(x; c)`: [`SplineCoupling::new`]
    /// whose conditioner reads `[x_A; c]` (the identity half, then a context
    /// of `context_dim ≥ 1` dimensions). Call it through the `_given` methods.
    pub fn conditional(
        mask: CouplingMask,
        context_dim: usize,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "SplineCoupling::conditional";
        check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        check_spline_shape(CTX, bins, bound)?;
        config.validate(CTX)?;
        let net = Mlp::from_config(
            mask.identity_indices().len() + context_dim,
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

    /// Number of bins `K` of every spline.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The half-width `B` of the interval `[−B, B]` the splines act on.
    pub fn bound(&self) -> T {
        self.bound
    }

    /// The raw spline parameters of every sample: `|B|·(3K − 1) × n`, one
    /// column per sample, in the layout of the type's docs.
    pub fn spline_params(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("SplineCoupling::spline_params", self.mask.dim(), x);
        self.net
            .forward(&x.select_rows(self.mask.identity_indices()))
    }

    /// `kernel` on every transformed entry given the conditioner's output at
    /// `x`; returns the output and the per-sample log-dets.
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

impl<T: Real> SplineCoupling<T> {
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
}

/// Rational-quadratic splines on the transformed half, their raw
/// parameters from the conditioner's output column by column.
impl<T: Real> super::coupling::CouplingKernel<T> for SplineCoupling<T> {
    const NAME: &'static str = "SplineCoupling";
    fn parts(&self) -> (&CouplingMask, &Mlp<T>) {
        (&self.mask, &self.net)
    }
    fn apply_with(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        let kernel: ForwardKernel<T> = if inverse { rqs_inverse } else { rqs_forward };
        SplineCoupling::apply_with(self, input, out, kernel)
    }
    fn cotangents(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let kernel: BackwardKernel<T> = if inverse {
            rqs_inverse_backward
        } else {
            rqs_forward_backward
        };
        self.cotangents_with(input, out, grad_out, grad_log_det, kernel)
    }
}

super::coupling::coupling_layer!(SplineCoupling);
