use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

/// The affine map `y = L x + b` with `L` lower triangular and a nonzero diagonal.
///
/// `log|det J| = Σᵢ log|Lᵢᵢ|`; the inverse is one triangular solve. Pushing a
/// standard normal through it gives `MultivariateNormal(b, L Lᵀ)`.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// let l = DMatrix::from_row_slice(2, 2, &[2.0_f64, 0.0, 1.0, 3.0]);
/// let b = ScaleTriL::new(l, DVector::zeros(2))?;
/// let ldj = b.forward_log_det_jacobian(&DMatrix::zeros(2, 1));
/// assert!((ldj[0] - 6.0_f64.ln()).abs() < 1e-12);
/// // An entry above the diagonal is rejected.
/// let upper = DMatrix::from_row_slice(2, 2, &[1.0_f64, 1.0, 0.0, 1.0]);
/// assert!(ScaleTriL::new(upper, DVector::zeros(2)).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleTriL<T: Real> {
    scale_tril: DMatrix<T>,
    shift: DVector<T>,
}

impl<T: Real> ScaleTriL<T> {
    /// `y = L x + b`. Errors if `L` is not square, has a nonzero entry above the
    /// diagonal, a zero on the diagonal or a non-finite entry, or if `b` does not
    /// match its size.
    pub fn new(scale_tril: DMatrix<T>, shift: DVector<T>) -> Result<Self, Error> {
        const CTX: &str = "ScaleTriL::new";
        check::square(CTX, "scale_tril", &scale_tril)?;
        let d = scale_tril.nrows();
        check::dim_at_least_one(CTX, "scale_tril", d)?;
        check::same_dim(CTX, "shift", d, shift.len())?;
        check::lower_triangular(CTX, "scale_tril", &scale_tril)?;
        check::finite_vec(CTX, "shift", &shift)?;
        Ok(Self { scale_tril, shift })
    }

    /// The lower-triangular matrix `L`.
    pub fn scale_tril(&self) -> &DMatrix<T> {
        &self.scale_tril
    }

    /// The shift `b`.
    pub fn shift(&self) -> &DVector<T> {
        &self.shift
    }

    fn log_det(&self) -> T {
        self.scale_tril
            .diagonal()
            .iter()
            .fold(T::zero(), |a, l| a + l.abs().ln())
    }
}

impl<T: Real> Bijector<T> for ScaleTriL<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("ScaleTriL::forward", self.shift.len(), x);
        let mut y = &self.scale_tril * x;
        for mut c in y.column_iter_mut() {
            c += &self.shift;
        }
        y
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("ScaleTriL::inverse", self.shift.len(), y);
        let mut x = y.clone();
        for mut c in x.column_iter_mut() {
            c -= &self.shift;
        }
        // The diagonal is nonzero by construction, so the solve cannot fail.
        self.scale_tril.solve_lower_triangular_mut(&mut x);
        x
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("ScaleTriL::forward_log_det_jacobian", self.shift.len(), x);
        DVector::from_element(x.ncols(), self.log_det())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows("ScaleTriL::inverse_log_det_jacobian", self.shift.len(), y);
        DVector::from_element(y.ncols(), -self.log_det())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.shift.len())
    }
    super::differentiable_hooks!();
}

super::parameter_free_differentiable!(ScaleTriL<T>,
    // y = L x + b: ∂L/∂x = Lᵀ ∂L/∂y.
    forward: |this, _x, gy, _gl| this.scale_tril.tr_mul(gy),
    // x = L⁻¹ (y − b): ∂L/∂y = L⁻ᵀ ∂L/∂x, one triangular solve with Lᵀ.
    inverse: |this, _y, gx, _gl| {
        let mut g = gx.clone();
        this.scale_tril.tr_solve_lower_triangular_mut(&mut g);
        g
    }
);
