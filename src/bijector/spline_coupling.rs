//! The rational-quadratic spline coupling layer of Neural Spline Flows: the
//! coupling structure with the spline transformer.

use nalgebra::DMatrix;
use rand::Rng;

use super::rq_spline::{check_spline_shape, params_per_coord};
use super::transformer::Spline;
use super::{Coupling, CouplingMask, assert_rows};
use crate::error::check;
use crate::nn::{ConditionerConfig, Mlp};
use crate::{Error, Real};

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
pub type SplineCoupling<T> = Coupling<T, Spline<T>>;

impl<T: Real> Coupling<T, Spline<T>> {
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
        // `build` checks the spline's shape, then the config, naming CTX.
        const CTX: &str = "SplineCoupling::new";
        Self::build(CTX, mask, 0, Spline { bins, bound }, config, rng)
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
        Self::build(CTX, mask, context_dim, Spline { bins, bound }, config, rng)
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
        Self::from_net(mask, Spline { bins, bound }, net)
    }

    /// Number of bins `K` of every spline.
    pub fn bins(&self) -> usize {
        self.transformer().bins
    }

    /// The half-width `B` of the interval `[−B, B]` the splines act on.
    pub fn bound(&self) -> T {
        self.transformer().bound
    }

    /// The raw spline parameters of every sample: `|B|·(3K − 1) × n`, one
    /// column per sample, in the layout of the type's docs.
    pub fn spline_params(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("SplineCoupling::spline_params", self.mask().dim(), x);
        self.net()
            .forward(&x.select_rows(self.mask().identity_indices()))
    }
}
