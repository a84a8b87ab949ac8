//! The additive transformer of NICE.

use serde::{Deserialize, Serialize};

use super::Transformer;
use crate::Real;

/// `u = x − t` in the density direction (data → base), `x = u + t` in the
/// sample direction: volume preserving (log-derivative 0). One raw
/// parameter per coordinate, the shift `t`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Additive {}

impl<T: Real> Transformer<T> for Additive {
    const NAME: &'static str = "additive";
    const COUPLING_NAME: &'static str = "AdditiveCoupling";

    fn params_per_coord(&self) -> usize {
        1
    }

    #[inline]
    fn density_one(&self, x: T, theta: &[T]) -> (T, T) {
        (x - theta[0], T::zero())
    }

    #[inline]
    fn sample_one(&self, u: T, theta: &[T]) -> (T, T) {
        (u + theta[0], T::zero())
    }

    #[inline]
    fn density_one_backward(&self, _x: T, _theta: &[T], g_u: T, _g_ld: T, g_theta: &mut [T]) -> T {
        g_theta[0] -= g_u;
        g_u
    }

    #[inline]
    fn sample_one_backward(&self, _u: T, _theta: &[T], g_x: T, _g_ld: T, g_theta: &mut [T]) -> T {
        g_theta[0] += g_x;
        g_x
    }
}
