//! Reverse mode of the radial layer: [`Differentiable`] for [`Radial`].
//!
//! Everything is written in `α = softplus(α̃)` and `σ = α + β = softplus(β̃)`
//! (so `β = σ − α` needs no separate cotangent), with `r = ‖z − z₀‖`,
//! `q = 1 + βh = (σ + r)/(α + r)` and `P = r² + 2αr + σα`:
//!
//! ```text
//! f(z) = z₀ + q (z − z₀)
//! ldj  = (D − 1) [log(σ + r) − log(α + r)] + log P − 2 log(α + r)
//! ```
//!
//! The partial derivatives of `ldj` simplify to forms without cancellation:
//!
//! ```text
//! ∂ldj/∂r = −(D − 1) β/((σ + r)(α + r)) − 2αβ/(P (α + r))
//! ∂ldj/∂α = −(D − 1)/(α + r) + (σ(r − α) − 2αr)/(P (α + r))
//! ∂ldj/∂σ =  (D − 1)/(σ + r) + α/P
//! ```
//!
//! At the end, `∂L/∂α̃ = (∂L/∂α) sigmoid(α̃)` and `∂L/∂β̃ = (∂L/∂σ) sigmoid(β̃)`.

use nalgebra::{DMatrix, DVector};

use super::{Constrained, Radial, norm, radius};
use crate::bijector::Differentiable;
use crate::bijector::pass::Backward;
use crate::bijector::planar::assert_backward_shapes;
use crate::{Error, Real};

/// The partial derivatives of `ldj` at radius `r`, and `p̂ = P/(α + r)²`
/// (`= dρ/dr`, the derivative of the output radius `ρ = r q(r)`).
struct LogDetPartials<T> {
    dr: T,
    dalpha: T,
    dsigma: T,
    p_hat: T,
}

impl<T: Real> Radial<T> {
    fn log_det_partials(&self, c: Constrained<T>, r: T) -> LogDetPartials<T> {
        let two = T::lit(2.0);
        let dm1 = T::lit((self.dim - 1) as f64);
        let ar = c.alpha + r;
        let sr = c.sigma + r;
        let (a_ar, r_ar, s_ar, b_ar) = (c.alpha / ar, r / ar, c.sigma / ar, c.beta / ar);
        // P/(α + r)², as in the log-det (every term ≥ 0).
        let p_hat = r_ar * ((r + c.alpha + c.alpha) / ar) + s_ar * a_ar;
        // P/(α + r).
        let p_ar = p_hat * ar;
        LogDetPartials {
            dr: -dm1 * c.beta / (sr * ar) - two * a_ar * b_ar / p_ar,
            dalpha: -dm1 / ar + (s_ar * ((r - c.alpha) / ar) - two * a_ar * r_ar) / p_ar,
            dsigma: dm1 / sr + a_ar / p_ar,
            p_hat,
        }
    }

    /// Adds `∂L/∂z₀`, `∂L/∂α̃`, `∂L/∂β̃` into `grad_params`.
    fn add_param_grads(&self, gz0: &DVector<T>, galpha: T, gsigma: T, grad_params: &mut [T]) {
        let dim = self.dim;
        for (g, &v) in grad_params[..dim].iter_mut().zip(gz0.iter()) {
            *g += v;
        }
        grad_params[dim] += galpha * self.raw_alpha().sigmoid();
        grad_params[dim + 1] += gsigma * self.raw_beta().sigmoid();
    }
}

impl<T: Real> crate::Parameters<T> for Radial<T> {
    crate::bijector::single_buffer!(params);
}

impl<T: Real> Differentiable<T> for Radial<T> {
    fn boxed_clone(&self) -> Box<dyn crate::bijector::Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::backward_from!(inverse: inverse_backward, forward: forward_backward);
}

impl<T: Real> Radial<T> {
    /// Differentiates the closed form. With `e = y − z₀`, `ρ = ‖e‖`, the
    /// radius `r(ρ, α, σ)` solves `ρ = r(σ + r)/(α + r)`, whose derivative in
    /// `r` is `p̂ = P/(α + r)² > 0`, so (implicit function theorem)
    ///
    /// ```text
    /// ∂r/∂ρ = 1/p̂,   ∂r/∂α = (ρ/(α + r))/p̂,   ∂r/∂σ = −(r/(α + r))/p̂;
    /// ```
    ///
    /// then `z = z₀ + e s` with `s = (α + r)/(σ + r)`
    /// (`∂s/∂r = β/(σ + r)²`, `∂s/∂α = 1/(σ + r)`, `∂s/∂σ = −s/(σ + r)`) and
    /// `l = −ldj(r, α, σ)`. At `ρ = 0` the radius is identically 0 (the map
    /// is not differentiable in `y` there; the `r` path is dropped).
    fn inverse_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (y, grad_x, grad_log_det, grad_params, _) = pass.parts();
        assert_backward_shapes(
            "Radial::inverse_and_log_det_backward",
            self.dim,
            self.params.len(),
            y,
            grad_x,
            grad_log_det,
            grad_params,
        );
        let c = self.constrained();
        let dim = self.dim;
        let z0 = self.center();
        let n = y.ncols();
        let mut grad_y = DMatrix::zeros(dim, n);
        let mut gz0 = DVector::zeros(dim);
        let (mut galpha, mut gsigma) = (T::zero(), T::zero());
        let mut e = DVector::zeros(dim);
        for s in 0..n {
            for i in 0..dim {
                e[i] = y[(i, s)] - z0[i];
            }
            let rho = norm(&e);
            let r = radius(c, rho);
            let ar = c.alpha + r;
            let sr = c.sigma + r;
            let sc = ar / sr;
            let gl = grad_log_det[s];
            let pd = self.log_det_partials(c, r);
            let gsc = (0..dim).fold(T::zero(), |acc, i| acc + grad_x[(i, s)] * e[i]);
            // Through s and the direct dependence of l = −ldj on (r, α, σ).
            let gr = gsc * (c.beta / sr) / sr - gl * pd.dr;
            galpha += gsc / sr - gl * pd.dalpha;
            gsigma += -gsc * sc / sr - gl * pd.dsigma;
            // Through r(ρ, α, σ).
            let g_rho_over_rho = if rho > T::zero() {
                let gr_p = gr / pd.p_hat;
                galpha += gr_p * (rho / ar);
                gsigma -= gr_p * (r / ar);
                gr_p / rho
            } else {
                T::zero()
            };
            for i in 0..dim {
                let gz = grad_x[(i, s)];
                let ge = sc * gz + g_rho_over_rho * e[i];
                grad_y[(i, s)] = ge;
                gz0[i] += gz - ge;
            }
        }
        self.add_param_grads(&gz0, galpha, gsigma, grad_params);
        Ok(grad_y)
    }
    /// Reverse mode of `y = z₀ + q d`, `d = z − z₀`, `r = ‖d‖`,
    /// `q = (σ + r)/(α + r)` (`∂q/∂r = −β/(α + r)²`, `∂q/∂α = −q/(α + r)`,
    /// `∂q/∂σ = 1/(α + r)`) and `ldj(r, α, σ)`. At `r = 0` the `r` path is
    /// dropped (the map is not differentiable there).
    fn forward_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (x, grad_y, grad_log_det, grad_params, _) = pass.parts();
        assert_backward_shapes(
            "Radial::forward_and_log_det_backward",
            self.dim,
            self.params.len(),
            x,
            grad_y,
            grad_log_det,
            grad_params,
        );
        let c = self.constrained();
        let dim = self.dim;
        let z0 = self.center();
        let n = x.ncols();
        let mut grad_z = DMatrix::zeros(dim, n);
        let mut gz0 = DVector::zeros(dim);
        let (mut galpha, mut gsigma) = (T::zero(), T::zero());
        let mut d = DVector::zeros(dim);
        for s in 0..n {
            for i in 0..dim {
                d[i] = x[(i, s)] - z0[i];
            }
            let r = norm(&d);
            let ar = c.alpha + r;
            let q = (c.sigma + r) / ar;
            let gl = grad_log_det[s];
            let pd = self.log_det_partials(c, r);
            let gq = (0..dim).fold(T::zero(), |acc, i| acc + grad_y[(i, s)] * d[i]);
            let gr = -gq * (c.beta / ar) / ar + gl * pd.dr;
            galpha += -gq * q / ar + gl * pd.dalpha;
            gsigma += gq / ar + gl * pd.dsigma;
            let gr_over_r = if r > T::zero() { gr / r } else { T::zero() };
            for i in 0..dim {
                let gy = grad_y[(i, s)];
                let gd = q * gy + gr_over_r * d[i];
                grad_z[(i, s)] = gd;
                gz0[i] += gy - gd;
            }
        }
        self.add_param_grads(&gz0, galpha, gsigma, grad_params);
        Ok(grad_z)
    }
}
