//! The uniform distribution on the torus `[−π, π)^D`.

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{Distribution, open01};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// The uniform distribution on the torus `[−π, π)^D` (`D` angles): the base
/// of flows of circular splines (Rezende et al. 2020).
///
/// `log p(x) = −D log(2π)` when every angle is in `[−π, π)` (π rounded to
/// the scalar type) and `−∞` otherwise (NaN included).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let torus = UniformTorus::new(2)?;
/// let inside = DMatrix::from_row_slice(2, 2, &[-3.14, 0.0, 3.14, 1.0]);
/// let lp: nalgebra::DVector<f64> = torus.log_prob(&inside);
/// assert!((lp[0] + 2.0 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-15);
/// let outside = DMatrix::from_row_slice(2, 1, &[std::f64::consts::PI, 0.0]);
/// assert_eq!(torus.log_prob(&outside)[0], f64::NEG_INFINITY);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let x: DMatrix<f32> = torus.sample(1000, &mut rng);
/// assert!(x.iter().all(|v| (-std::f32::consts::PI..std::f32::consts::PI).contains(v)));
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniformTorus {
    dim: usize,
}

impl UniformTorus {
    /// The uniform distribution on `[−π, π)^dim`; errors if `dim` is 0.
    pub fn new(dim: usize) -> Result<Self, Error> {
        check::dim_at_least_one("UniformTorus::new", "dim", dim)?;
        Ok(Self { dim })
    }

    /// Whether every angle of `x` is in `[−π, π)` (π rounded to `T`).
    pub fn contains<T: Real>(x: &[T]) -> bool {
        let pi = T::pi();
        x.iter().all(|&v| v >= -pi && v < pi)
    }
}

impl<T: Real> Distribution<T> for UniformTorus {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("UniformTorus::log_prob", self.dim, x);
        let inside = -T::lit(self.dim as f64) * (T::pi() + T::pi()).ln();
        DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|col| {
                if Self::contains(col.as_slice()) {
                    inside
                } else {
                    T::neg_infinity()
                }
            }),
        )
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let pi = T::pi();
        DMatrix::from_fn(self.dim, n, |_, _| {
            let v = -pi + (pi + pi) * T::lit(open01(rng));
            // Rounding could reach π itself; stay on the half-open circle.
            if v < pi { v } else { -pi }
        })
    }
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("UniformTorus::log_prob_grad", self.dim, x);
        // Flat inside, −∞ (constant) outside.
        Some(DMatrix::zeros(x.nrows(), x.ncols()))
    }
}
