//! The rational-quadratic spline transformer of the neural spline flows.

use serde::{Deserialize, Serialize};

use super::{Layout, Transformer};
use crate::Real;
use crate::bijector::rq_spline::{
    check_spline_shape, params_per_coord, rqs_forward, rqs_forward_backward, rqs_inverse,
    rqs_inverse_backward,
};

/// A monotone rational-quadratic spline of `bins` bins on `[−bound, bound]`,
/// the identity outside (Durkan, Bekasov, Murray & Papamakarios 2019), as
/// [`RationalQuadraticSpline`](crate::bijector::RationalQuadraticSpline)
/// documents it: `3·bins − 1` raw parameters per coordinate (the
/// unnormalised widths, heights and interior derivatives). The sample
/// direction is the spline, the density direction its inverse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spline<T: Real> {
    /// Number of bins `K`.
    pub bins: usize,
    /// The half-width `B` of the interval the spline acts on.
    pub bound: T,
}

impl<T: Real> Transformer<T> for Spline<T> {
    const NAME: &'static str = "spline";
    /// A spline coupling's conditioner gives each coordinate's parameters
    /// contiguously (as `RationalQuadraticSpline`'s buffer holds them).
    const COUPLING_LAYOUT: Layout = Layout::CoordMajor;
    const COUPLING_NAME: &'static str = "SplineCoupling";
    const AUTOREGRESSIVE_NAME: &'static str = "SplineAutoregressive";
    const SEQUENTIAL: &'static str = "the forward (sampling) direction takes D sequential MADE passes and has \
         no backward pass; train through the inverse direction (data → base, one \
         MADE pass, as maximum likelihood does), or, if the loss differentiates \
         through sampling, wrap the layer in `Invert` so that sampling is the \
         one-pass direction";

    fn params_per_coord(&self) -> usize {
        params_per_coord(self.bins)
    }

    fn validate(&self, context: &str) -> Result<(), crate::Error> {
        check_spline_shape(context, self.bins, self.bound)
    }

    #[inline]
    fn density_one(&self, x: T, theta: &[T]) -> (T, T) {
        rqs_inverse(x, theta, self.bins, self.bound)
    }

    #[inline]
    fn sample_one(&self, u: T, theta: &[T]) -> (T, T) {
        rqs_forward(u, theta, self.bins, self.bound)
    }

    #[inline]
    fn density_one_backward(&self, x: T, theta: &[T], g_u: T, g_ld: T, g_theta: &mut [T]) -> T {
        rqs_inverse_backward(x, theta, self.bins, self.bound, g_u, g_ld, g_theta)
    }

    #[inline]
    fn sample_one_backward(&self, u: T, theta: &[T], g_x: T, g_ld: T, g_theta: &mut [T]) -> T {
        rqs_forward_backward(u, theta, self.bins, self.bound, g_x, g_ld, g_theta)
    }
}
