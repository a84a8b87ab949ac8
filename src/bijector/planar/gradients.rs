//! Reverse mode of the planar layer: [`Differentiable`] for [`Planar`].
//!
//! Notation (per sample): `x = wᵀz + b`, `t = tanh x`, `s₂ = sech² x`,
//! `m = wᵀû`, `δ = 1 + m s₂` (the Jacobian determinant, in the layer's stable
//! form), `ldj = log δ`, so that
//!
//! ```text
//! ∂ldj/∂x = −2 m s₂ t / δ,     ∂ldj/∂m = s₂ / δ.
//! ```
//!
//! Both passes first accumulate the cotangents of `û`, `m`, `w` (its direct
//! uses) and `b` over the batch, then push `û` and `m` through the
//! reparametrisation once ([`Planar::reparam_backward`]).

use nalgebra::{DMatrix, DVector};

use super::{Derived, Planar, assert_backward_shapes, solve_alpha, tanh_sech2};
use crate::bijector::Differentiable;
use crate::bijector::pass::Backward;
use crate::{Error, Real};

/// Cotangents accumulated over a batch before the reparametrisation.
struct Acc<T: Real> {
    /// `∂L/∂û`.
    u_hat: DVector<T>,
    /// `∂L/∂m` through the closed-form `m = wᵀû` of the log-determinant.
    m: T,
    /// `∂L/∂w` through `x = wᵀz + b` only (not through `û` or `m`).
    w: DVector<T>,
    /// `∂L/∂b`.
    b: T,
}

impl<T: Real> Acc<T> {
    fn new(dim: usize) -> Self {
        Acc {
            u_hat: DVector::zeros(dim),
            m: T::zero(),
            w: DVector::zeros(dim),
            b: T::zero(),
        }
    }
}

impl<T: Real> Planar<T> {
    /// Adds the cotangent of `y = z + û tanh(wᵀz + b)` with respect to the
    /// parameters (not `z`) at one sample into `acc`, for the output cotangent
    /// `g`; returns the cotangent of `x = wᵀz + b`.
    fn map_param_backward(
        d: &Derived<T>,
        z: &[T],
        g: &[T],
        t: T,
        s2: T,
        extra_gx: T,
        acc: &mut Acc<T>,
    ) -> T {
        let mut gt = T::zero();
        for ((&gi, &uh), au) in g.iter().zip(d.u_hat.iter()).zip(acc.u_hat.iter_mut()) {
            gt += uh * gi;
            *au += gi * t;
        }
        let gx = gt * s2 + extra_gx;
        for (aw, &zi) in acc.w.iter_mut().zip(z) {
            *aw += gx * zi;
        }
        acc.b += gx;
        gx
    }

    /// Pushes the accumulated cotangents of `û` and `m` through
    /// `û = u + k w`, `k = (softplus(−a) − 1)/‖w‖²`, `m = softplus(a) − 1`,
    /// `a = wᵀu` (or, in the `w = 0` branch, `û = u`, `m = wᵀu`: exactly what
    /// [`Planar::derived`] computes), and adds everything into `grad_params`.
    ///
    /// Regular branch, with `G = ∂L/∂û`, `Gₖ = wᵀG`,
    /// `Gₐ = −Gₖ σ(−a)/‖w‖² + (∂L/∂m) σ(a)`:
    ///
    /// ```text
    /// ∂L/∂u = G + Gₐ w
    /// ∂L/∂w = k G + Gₐ u − 2 Gₖ k w/‖w‖²   (+ the direct part through x)
    /// ```
    fn reparam_backward(&self, d: &Derived<T>, acc: &Acc<T>, grad_params: &mut [T]) {
        let dim = self.dim;
        let (u, w) = (self.u(), self.w());
        let (gu, rest) = grad_params.split_at_mut(dim);
        let (gw, gb) = rest.split_at_mut(dim);
        gb[0] += acc.b;
        match d.k {
            Some(k) => {
                let gk = w
                    .iter()
                    .zip(acc.u_hat.iter())
                    .fold(T::zero(), |s, (&wi, &gi)| s + wi * gi);
                let ga = -gk * (-d.wtu).sigmoid() / d.wtw + acc.m * d.wtu.sigmoid();
                let c = -(gk * k + gk * k) / d.wtw;
                for i in 0..dim {
                    gu[i] += acc.u_hat[i] + ga * w[i];
                    gw[i] += acc.w[i] + k * acc.u_hat[i] + ga * u[i] + c * w[i];
                }
            }
            None => {
                for i in 0..dim {
                    gu[i] += acc.u_hat[i] + acc.m * w[i];
                    gw[i] += acc.w[i] + acc.m * u[i];
                }
            }
        }
    }
}

impl<T: Real> crate::Parameters<T> for Planar<T> {
    crate::bijector::single_buffer!(params);
}

impl<T: Real> Differentiable<T> for Planar<T> {
    fn boxed_clone(&self) -> Box<dyn crate::bijector::Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::backward_from!(inverse: inverse_backward, forward: forward_backward);
}

impl<T: Real> Planar<T> {
    /// Implicit differentiation of the root-finding inverse.
    ///
    /// `z = g(y; θ)` is defined by `f(z; θ) = y`, so `∂z/∂y = J⁻¹` and
    /// `∂z/∂θ = −J⁻¹ ∂f/∂θ` with `J = I + û ψᵀ`, `ψ = s₂ w`. The inverse
    /// log-det `l = −log δ(wᵀz + b, m)` depends on `z` and on `θ` directly.
    /// With `v = ∂L/∂z − (∂L/∂l)(∂ldj/∂x) w` (the total cotangent of `z`)
    /// and, by Sherman–Morrison,
    ///
    /// ```text
    /// λ = J⁻ᵀ v = v − ψ (ûᵀv) / (1 + ψᵀû) = v − w s₂ (ûᵀv) / δ,
    /// ```
    ///
    /// the input cotangent is `∂L/∂y = λ`, and the parameters receive
    /// `−(∂f/∂θ)ᵀ λ` (the forward map's parameter cotangent for the output
    /// cotangent `−λ`) plus the direct terms of `l`:
    /// `−(∂L/∂l)(∂ldj/∂m)` on `m`, `−(∂L/∂l)(∂ldj/∂x)` on `b` and
    /// `−(∂L/∂l)(∂ldj/∂x) z` on `w`.
    fn inverse_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (y, grad_x, grad_log_det, grad_params, _) = pass.parts();
        const CTX: &str = "Planar::inverse_and_log_det_backward";
        assert_rows_and_shapes(CTX, self, y, grad_x, grad_log_det, grad_params);
        let d = self.derived();
        let (w, b) = (self.w(), self.b());
        let dim = self.dim;
        let n = y.ncols();
        let mut acc = Acc::new(dim);
        let mut grad_y = DMatrix::zeros(dim, n);
        let mut z = vec![T::zero(); dim];
        let mut v = vec![T::zero(); dim];
        let mut mu = vec![T::zero(); dim];
        let two = T::lit(2.0);
        for s in 0..n {
            let ycol = &y.as_slice()[s * dim..(s + 1) * dim];
            let c = dot(w, ycol);
            let alpha = solve_alpha(c, d.m_dot, b);
            let (t, s2) = tanh_sech2(alpha + b);
            for i in 0..dim {
                z[i] = ycol[i] - d.u_hat[i] * t;
            }
            let delta = Self::det_at(&d, t, s2);
            let gl = grad_log_det[s];
            // l = −ldj: its partials, times ∂L/∂l.
            let gl_x = gl * two * d.m * s2 * t / delta; // −gl · ∂ldj/∂x
            acc.m -= gl * s2 / delta;
            for i in 0..dim {
                v[i] = grad_x[(i, s)] + gl_x * w[i];
            }
            let coef = s2 * dot(d.u_hat.as_slice(), &v) / delta;
            for i in 0..dim {
                let lambda = v[i] - coef * w[i];
                grad_y[(i, s)] = lambda;
                mu[i] = -lambda;
            }
            // −(∂f/∂θ)ᵀλ, with the direct dependence of l on b and w (through
            // x = wᵀz + b, z fixed) folded into the cotangent of x.
            Self::map_param_backward(&d, &z, &mu, t, s2, gl_x, &mut acc);
        }
        self.reparam_backward(&d, &acc, grad_params);
        Ok(grad_y)
    }
    /// Reverse mode of `y = z + û t`, `ldj = log δ`: with `gₓ = (ûᵀ∂L/∂y) s₂
    /// + (∂L/∂ldj)(∂ldj/∂x)`, `∂L/∂z = ∂L/∂y + gₓ w`; the parameters receive
    /// `t ∂L/∂y` on `û`, `(∂L/∂ldj) s₂/δ` on `m`, `gₓ z` on `w` and `gₓ` on
    /// `b`, then the reparametrisation.
    fn forward_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (x, grad_y, grad_log_det, grad_params, _) = pass.parts();
        const CTX: &str = "Planar::forward_and_log_det_backward";
        assert_rows_and_shapes(CTX, self, x, grad_y, grad_log_det, grad_params);
        let d = self.derived();
        let (w, b) = (self.w(), self.b());
        let dim = self.dim;
        let n = x.ncols();
        let mut acc = Acc::new(dim);
        let mut grad_z = grad_y.clone();
        let two = T::lit(2.0);
        for s in 0..n {
            let zcol = &x.as_slice()[s * dim..(s + 1) * dim];
            let (t, s2) = tanh_sech2(dot(w, zcol) + b);
            let delta = Self::det_at(&d, t, s2);
            let gl = grad_log_det[s];
            acc.m += gl * s2 / delta;
            let gl_x = -gl * two * d.m * s2 * t / delta; // gl · ∂ldj/∂x
            let gx = Self::map_param_backward(
                &d,
                zcol,
                &grad_y.as_slice()[s * dim..(s + 1) * dim],
                t,
                s2,
                gl_x,
                &mut acc,
            );
            for i in 0..dim {
                grad_z[(i, s)] += gx * w[i];
            }
        }
        self.reparam_backward(&d, &acc, grad_params);
        Ok(grad_z)
    }
}

fn assert_rows_and_shapes<T: Real>(
    context: &str,
    p: &Planar<T>,
    input: &DMatrix<T>,
    grad_out: &DMatrix<T>,
    grad_log_det: &DVector<T>,
    grad_params: &[T],
) {
    assert_backward_shapes(
        context,
        p.dim,
        p.params.len(),
        input,
        grad_out,
        grad_log_det,
        grad_params,
    );
}

fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y)
}
