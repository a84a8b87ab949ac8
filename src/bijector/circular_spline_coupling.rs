//! The circular rational-quadratic spline coupling layer of flows on tori:
//! the coupling structure with the circular spline transformer.

use rand::Rng;

use super::transformer::CircularSpline;
use super::{Coupling, CouplingMask};
use crate::error::check;
use crate::nn::ConditionerConfig;
use crate::{Error, Real};

/// A coupling layer on the torus `[−π, π)^D` whose transform is a circular
/// rational-quadratic spline (Rezende, Papamakarios, Racanière, Albergo,
/// Kanwar, Shanahan & Cranmer 2020, *Normalizing Flows on Tori and
/// Spheres*).
///
/// With the [`CouplingMask`] splitting the angles into an identity half `A`
/// and a transformed half `B` (forward = base → data):
///
/// ```text
/// y_A = x_A,    y_B[j] = spline(x_B[j]; θ_j(cos x_A, sin x_A))
/// ```
///
/// where each transformed angle goes through its own `K`-bin spline from
/// `[−π, π)` onto itself with knots `(−π, −π)` … `(π, π)` and one derivative
/// shared by both ends, a smooth diffeomorphism of the circle
/// ([`CircularSpline`] gives the parametrisation). Its conditioner reads the
/// identity angles as `(cos, sin)` pairs, so the layer is smooth on the
/// torus in every angle. Both directions cost **one conditioner pass** (the
/// inverse spline is analytic) and both are
/// [`Differentiable`](super::Differentiable); `log|det| = Σ_j log
/// dy_B[j]/dx_B[j]`. A point with an angle outside `[−π, π)` is outside the
/// support: the density direction gives it log-derivative `−∞`.
///
/// # Conditioner
///
/// An MLP `2|A| (+ C) → hidden (× depth) → |B|·3K`; its input is
/// `[cos x_A; sin x_A; c]`, `x_A` in the order of
/// [`CouplingMask::identity_indices`]. **Output layout:** row `j·3K + p` is
/// raw parameter `p` of the `j`-th transformed angle, `p < K` the widths,
/// `K ≤ p < 2K` the heights, `p = 2K` the shared end derivative and
/// `2K < p < 3K` the interior derivatives. With `config.identity_init` (the
/// default) the last layer starts at zero and a fresh layer is the identity.
///
/// A model of these layers (and permutations) has a uniform base on the
/// torus: [`FlowModel`](crate::train::FlowModel) picks it by itself.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::nn::ConditionerConfig;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(4);
/// let cfg = ConditionerConfig { hidden: 16, identity_init: false, ..Default::default() };
/// let mask = CouplingMask::half(2, false)?; // angle 0 conditions, angle 1 is transformed
/// let layer = CircularSplineCoupling::<f64>::new(mask, 8, &cfg, &mut rng)?;
///
/// let x = DMatrix::from_row_slice(2, 3, &[-3.0, 0.5, 2.0, 1.0, -2.5, 3.1]);
/// let (y, ldj) = layer.forward_and_log_det(&x);
/// assert_eq!(y.row(0), x.row(0));
/// assert!(y.iter().all(|v| (-std::f64::consts::PI..std::f64::consts::PI).contains(v)));
/// let (x_back, ildj) = layer.inverse_and_log_det(&y);
/// assert!((x_back - &x).amax() < 1e-10 && (ldj + ildj).amax() < 1e-10);
///
/// // The conditioner sees (cos, sin): the conditioning angle one turn
/// // further gives the same map of the other angle.
/// let mut turned = x.clone();
/// turned.row_mut(0).add_scalar_mut(2.0 * std::f64::consts::PI);
/// assert!((layer.forward(&turned).row(1) - y.row(1)).amax() < 1e-10);
/// # Ok::<(), normflow::Error>(())
/// ```
pub type CircularSplineCoupling<T> = Coupling<T, CircularSpline>;

impl<T: Real> Coupling<T, CircularSpline> {
    /// A circular spline coupling with the given mask, `bins` bins and an
    /// MLP conditioner shaped by `config`.
    ///
    /// Errors if `bins` is 0 or above
    /// [`RationalQuadraticSpline::MAX_BINS`](super::RationalQuadraticSpline::MAX_BINS),
    /// or `config` is invalid.
    pub fn new(
        mask: CouplingMask,
        bins: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "CircularSplineCoupling::new";
        Self::build(CTX, mask, 0, CircularSpline { bins }, config, rng)
    }

    /// A conditional circular spline coupling `x ↦ f(x; c)`: its conditioner
    /// reads `[cos x_A; sin x_A; c]` (a context of `context_dim ≥ 1`
    /// dimensions, as it is). Call it through the `_given` methods.
    pub fn conditional(
        mask: CouplingMask,
        context_dim: usize,
        bins: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "CircularSplineCoupling::conditional";
        check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        Self::build(CTX, mask, context_dim, CircularSpline { bins }, config, rng)
    }

    /// Number of bins `K` of every spline.
    pub fn bins(&self) -> usize {
        self.transformer().bins
    }
}
