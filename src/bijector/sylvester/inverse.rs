//! The inverse of the Sylvester layer: back substitution with one
//! safeguarded scalar root finding per coordinate (see [`Sylvester`]'s docs).

use nalgebra::{DMatrix, DVector};

use super::{Derived, Sylvester};
use crate::Real;
use crate::bijector::root::{Eval, safeguarded_newton, tanh_sech2};

impl<T: Real> Sylvester<T> {
    /// Solves `f(z) = y` for one sample with the bias `b` (`b + W c`):
    /// writes `z` and the pre-activation `x = R̃ Qᵀ z + b` at the solution.
    pub(super) fn inverse_sample(
        &self,
        d: &Derived<T>,
        y: &[T],
        b: &[T],
        z: &mut [T],
        x: &mut [T],
    ) {
        let dim = self.dim;
        // z holds η = Qᵀy, overwritten by ζ from the last row up.
        z.copy_from_slice(y);
        self.apply_qt(d, z);
        let mut t = vec![T::zero(); dim];
        for i in (0..dim).rev() {
            let mut c = b[i];
            let mut e = z[i];
            for j in i + 1..dim {
                c += d.rt[(i, j)] * z[j];
                e -= d.r[(i, j)] * t[j];
            }
            let (ri, rti) = (d.r[(i, i)], d.rt[(i, i)]);
            let zi = solve_coord(e, ri, rti, c);
            z[i] = zi;
            x[i] = rti * zi + c;
            t[i] = x[i].tanh();
        }
        self.apply_q(d, z);
    }

    pub(super) fn inverse_impl(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let d = self.derived();
        let (dim, n) = (self.dim, y.ncols());
        let mut z = DMatrix::zeros(dim, n);
        let mut ildj = DVector::zeros(n);
        let mut x = vec![T::zero(); dim];
        let mut b = vec![T::zero(); dim];
        for s in 0..n {
            let ycol = &y.as_slice()[s * dim..(s + 1) * dim];
            self.bias_into(c.column(s).as_slice(), &mut b);
            self.inverse_sample(
                &d,
                ycol,
                &b,
                &mut z.as_mut_slice()[s * dim..(s + 1) * dim],
                &mut x,
            );
            let mut l = T::zero();
            for (i, &xi) in x.iter().enumerate() {
                let (ti, s2) = tanh_sech2(xi);
                l += Self::log_det_at(&d, i, ti, s2);
            }
            ildj[s] = -l;
        }
        (z, ildj)
    }
}

/// The root `ζ` of `g(ζ) = ζ + r tanh(r̃ ζ + c) − e` for `r r̃ ≥ −1`: `g` is
/// non-decreasing and `g(e − |r|) ≤ 0 ≤ g(e + |r|)`. Newton safeguarded by
/// bisection (Numerical Recipes' `rtsafe`), with the stopping rules of the
/// type's docs; after 200 iterations, the last iterate (a point of the bracket).
fn solve_coord<T: Real>(e: T, r: T, rt: T, c: T) -> T {
    if r == T::zero() || !e.is_finite() || !c.is_finite() {
        return e;
    }
    let ar = r.abs();
    let lo = e - ar;
    let hi = e + ar;
    if lo >= hi || !(hi - lo).is_finite() {
        return e;
    }
    let g = |z: T| z + r * (rt * z + c).tanh() - e;
    if g(lo) >= T::zero() {
        return lo;
    }
    if g(hi) <= T::zero() {
        return hi;
    }
    let eps = T::machine_epsilon();
    let start = e - r * (rt * e + c).tanh();
    safeguarded_newton(
        lo,
        hi,
        start,
        200,
        |next| eps * next.abs(),
        |z| {
            let (t, s2) = tanh_sech2(rt * z + c);
            Eval {
                value: z + r * t - e,
                slope: T::one() + r * rt * s2,
                noise: eps * (z.abs() + (r * t).abs() + e.abs()),
            }
        },
    )
}
