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

    fn log_density_and_grad_at(&self, x: &[T], grad: &mut [T]) -> T {
        let point: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
        let (v, g) = gradient(|z| PointTarget::log_density(self, z), &point);
        for (o, gi) in grad.iter_mut().zip(g) {
            *o = T::lit(gi);
        }
        T::lit(v)
    }
}

/// A target written one point at a time with a hand-written gradient: a
/// closure `f(x, grad) -> log p̃(x)` that writes `∇ log p̃(x)` into `grad`.
/// The form samplers call (see
/// [`LogDensity::log_density_and_grad_at`]); batches are evaluated point by
/// point, in `f64`.
///
/// ```
/// use normflow::train::{LogDensity, PointFnTarget};
/// // log p̃(x) = −½‖x‖² and its gradient −x.
/// let t = PointFnTarget::new(2, |x: &[f64], g: &mut [f64]| {
///     g.iter_mut().zip(x).for_each(|(g, x)| *g = -x);
///     -0.5 * x.iter().map(|v| v * v).sum::<f64>()
/// });
/// let mut g = [0.0; 2];
/// assert_eq!(t.log_density_and_grad_at(&[1.0, 2.0], &mut g), -2.5);
/// assert_eq!(g, [-1.0, -2.0]);
/// ```
pub struct PointFnTarget<F> {
    dim: usize,
    f: F,
}

impl<F: Fn(&[f64], &mut [f64]) -> f64> PointFnTarget<F> {
    /// Wraps `f` for a `dim`-dimensional target.
    pub fn new(dim: usize, f: F) -> Self {
        Self { dim, f }
    }
}

impl<T: Real, F: Fn(&[f64], &mut [f64]) -> f64> LogDensity<T> for PointFnTarget<F> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_density_and_grad(x).0
    }

    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        let (d, n) = x.shape();
        let mut lp = DVector::zeros(n);
        let mut grad = DMatrix::zeros(d, n);
        let (mut point, mut g) = (vec![0.0; d], vec![0.0; d]);
        for j in 0..n {
            for (p, v) in point.iter_mut().zip(x.column(j).iter()) {
                *p = v.to_f64();
            }
            lp[j] = T::lit((self.f)(&point, &mut g));
            for (o, gi) in grad.column_mut(j).iter_mut().zip(&g) {
                *o = T::lit(*gi);
            }
        }
        (lp, grad)
    }

    fn log_density_and_grad_at(&self, x: &[T], grad: &mut [T]) -> T {
        let point: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
        let mut g = vec![0.0; point.len()];
        let v = (self.f)(&point, &mut g);
        for (o, gi) in grad.iter_mut().zip(g) {
            *o = T::lit(gi);
        }
        T::lit(v)
    }
}
