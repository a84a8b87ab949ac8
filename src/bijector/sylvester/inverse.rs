//! The inverse of the Sylvester layer: back substitution with one
//! safeguarded scalar root finding per coordinate (see [`Sylvester`]'s docs).

use nalgebra::{DMatrix, DVector};

use super::{Derived, Sylvester};
use crate::Real;
use crate::bijector::root::{tanh_root, tanh_sech2};

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
            let zi = tanh_root(e, ri, rti, c);
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
