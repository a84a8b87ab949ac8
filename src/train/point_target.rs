//! Variational targets written one point at a time, differentiated exactly
//! by dual numbers.

use nalgebra::{DMatrix, DVector};

use super::LogDensity;
use crate::Real;
use crate::autodiff::{Scalar, gradient};

/// An unnormalised log-density written for one point, generic over the
/// scalar: `log p̃(x)` and nothing else. Every `PointTarget` is a
/// [`LogDensity`] whose gradient comes exactly from forward-mode automatic
/// differentiation (one dual evaluation per coordinate), so it can be given
/// to [`fit_variational`](super::fit_variational) as it is.
///
/// ```
/// use normflow::autodiff::Scalar;
/// use normflow::train::{LogDensity, PointTarget};
/// use nalgebra::DMatrix;
///
/// /// Neal's funnel in 2-D: v ~ N(0, 3²), x | v ~ N(0, e^v).
/// struct Funnel;
/// impl PointTarget for Funnel {
///     fn dim(&self) -> usize { 2 }
///     fn log_density<S: Scalar>(&self, p: &[S]) -> S {
///         let (v, x) = (p[0], p[1]);
///         -(v * v) / 18.0 - v * 0.5 - x * x * (-v).exp() * 0.5
///     }
/// }
///
/// let x = DMatrix::from_column_slice(2, 1, &[0.0_f64, 1.0]);
/// let (lp, grad) = Funnel.log_density_and_grad(&x);
/// assert_eq!(lp[0], -0.5);
/// // ∂/∂v = −v/9 − ½ + ½x²e^{−v} = 0 and ∂/∂x = −x e^{−v} = −1 at (0, 1).
/// assert_eq!((grad[(0, 0)], grad[(1, 0)]), (0.0, -1.0));
/// ```
pub trait PointTarget: Send + Sync {
    /// The dimension `D`.
    fn dim(&self) -> usize;
    /// `log p̃(x)` at one point `x` (`D` values).
    fn log_density<S: Scalar>(&self, x: &[S]) -> S;
}

impl<T: Real, P: PointTarget> LogDensity<T> for P {
    fn dim(&self) -> usize {
        PointTarget::dim(self)
    }

    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        let mut point = vec![0.0; x.nrows()];
        DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|c| {
                for (p, v) in point.iter_mut().zip(c.iter()) {
                    *p = v.to_f64();
                }
                T::lit(PointTarget::log_density(self, &point[..]))
            }),
        )
    }

    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        let (d, n) = x.shape();
        let mut lp = DVector::zeros(n);
        let mut grad = DMatrix::zeros(d, n);
        let mut point = vec![0.0; d];
        for j in 0..n {
            for (p, v) in point.iter_mut().zip(x.column(j).iter()) {
                *p = v.to_f64();
            }
            let (v, g) = gradient(|z| PointTarget::log_density(self, z), &point);
            lp[j] = T::lit(v);
            for (i, gi) in g.into_iter().enumerate() {
                grad[(i, j)] = T::lit(gi);
            }
        }
        (lp, grad)
    }
}
