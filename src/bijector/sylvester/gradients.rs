//! Reverse mode of the Sylvester layer: [`Differentiable`] for [`Sylvester`].
//!
//! Notation (per sample): `aₖ = Hₖ ⋯ H₁ z` (`a₀ = z`, `q = a_m = Qᵀz`),
//! `x = R̃ q + b`, `t = tanh x`, `s₂ = sech² x`, `u = R t`,
//! `cⱼ = H_{m−j+1} ⋯ H_m u` (`c_m = Q u`), `y = z + c_m`, and
//! `ldj = Σᵢ log δᵢ`, `δᵢ = 1 + dᵢ s₂ᵢ`, `dᵢ = rᵢᵢ r̃ᵢᵢ`, so that
//!
//! ```text
//! ∂ldj/∂xᵢ = −2 dᵢ s₂ᵢ tᵢ / δᵢ,     ∂ldj/∂dᵢ = s₂ᵢ / δᵢ.
//! ```
//!
//! A reflection `o = a − β v (vᵀa)`, `β = 2/‖v‖²`, has the cotangents
//! `∂L/∂a = H ∂L/∂o` and
//! `∂L/∂v = −β ((vᵀa) g + (gᵀv) a) + β² (gᵀv)(vᵀa) v` for `g = ∂L/∂o`.
//!
//! Both passes accumulate the parameter cotangents over the batch with the
//! diagonals of `R` and `R̃` taken as the values `rᵢᵢ`, `r̃ᵢᵢ` (plus the
//! cotangents of the products `dᵢ`), then push them through
//! `rᵢᵢ = tanh ρᵢ`, `r̃ᵢᵢ = tanh ρ̃ᵢ` once ([`Sylvester::finish`]).

use nalgebra::{DMatrix, DVector};

use super::{Derived, Sylvester, dot, reflect, tanh_sech2, tri};
use crate::Real;
use crate::bijector::Differentiable;
use crate::bijector::planar::assert_backward_shapes;
use crate::error::Error;

/// Cotangents accumulated over a batch.
struct Acc<T: Real> {
    /// Same layout as the parameters, with the diagonals of `R`, `R̃` taken
    /// as `rᵢᵢ`, `r̃ᵢᵢ` (not the raw `ρᵢ`, `ρ̃ᵢ`).
    g: Vec<T>,
    /// `∂L/∂dᵢ` through the log-determinant.
    gd: Vec<T>,
}

/// Per-sample buffers of a backward pass.
struct Work<T: Real> {
    /// `a₀, …, a_m`, each `D`.
    a: Vec<T>,
    /// `c₀, …, c_m`, each `D`.
    c: Vec<T>,
    /// The bias `b + W c`.
    b: Vec<T>,
    x: Vec<T>,
    t: Vec<T>,
    s2: Vec<T>,
    g: Vec<T>,
    h: Vec<T>,
}

impl<T: Real> Work<T> {
    fn new(dim: usize, m: usize) -> Self {
        let z = || vec![T::zero(); dim];
        Work {
            a: vec![T::zero(); (m + 1) * dim],
            c: vec![T::zero(); (m + 1) * dim],
            b: z(),
            x: z(),
            t: z(),
            s2: z(),
            g: z(),
            h: z(),
        }
    }
}

/// Reverse mode of `o = (I − β v vᵀ) a` at the input `a`: on entry `g` is
/// `∂L/∂o`, on exit `∂L/∂a`; `∂L/∂v` is added into `gv`.
fn reflect_backward<T: Real>(v: &[T], beta: T, a: &[T], g: &mut [T], gv: &mut [T]) {
    if beta == T::zero() {
        return;
    }
    let s = dot(v, a);
    let gtv = dot(g, v);
    let bb = beta * beta * gtv * s;
    for i in 0..v.len() {
        gv[i] += -beta * (s * g[i] + gtv * a[i]) + bb * v[i];
    }
    let c = beta * gtv;
    for (gi, &vi) in g.iter_mut().zip(v) {
        *gi -= c * vi;
    }
}

impl<T: Real> Sylvester<T> {
    /// Reverse mode of `(y, ldj) = (f(z), log|det ∂f/∂z|)` at one sample `z`
    /// with context `ctx` for the cotangents `gy` and `gl`: adds the
    /// parameter cotangents into `acc` and the context's into `gctx`, and
    /// writes `∂L/∂z` into `gz`.
    #[allow(clippy::too_many_arguments)]
    fn sample_backward(
        &self,
        d: &Derived<T>,
        z: &[T],
        ctx: &[T],
        gy: &[T],
        gl: T,
        w: &mut Work<T>,
        acc: &mut Acc<T>,
        gz: &mut [T],
        gctx: &mut [T],
    ) {
        let (dim, m, cd) = (self.dim, self.reflections, self.context_dim);
        let (r_off, rt_off, b_off) = (self.r_offset(), self.rt_offset(), self.b_offset());
        let w_off = b_off + dim;
        // Forward, keeping the inputs of every reflection.
        w.a[..dim].copy_from_slice(z);
        for k in 0..m {
            let (prev, next) = w.a.split_at_mut((k + 1) * dim);
            next[..dim].copy_from_slice(&prev[k * dim..]);
            reflect(self.v(k), d.beta[k], &mut next[..dim]);
        }
        self.bias_into(ctx, &mut w.b);
        self.pre_activation(d, &w.a[m * dim..], &w.b, &mut w.x);
        for i in 0..dim {
            let (t, s2) = tanh_sech2(w.x[i]);
            w.t[i] = t;
            w.s2[i] = s2;
        }
        for i in 0..dim {
            w.c[i] = (i..dim).fold(T::zero(), |s, j| s + d.r[(i, j)] * w.t[j]);
        }
        for j in 1..=m {
            let k = m - j;
            let (prev, next) = w.c.split_at_mut(j * dim);
            next[..dim].copy_from_slice(&prev[(j - 1) * dim..]);
            reflect(self.v(k), d.beta[k], &mut next[..dim]);
        }
        // Through y = z + Q u: g becomes ∂L/∂u.
        w.g.copy_from_slice(gy);
        for j in (1..=m).rev() {
            let k = m - j;
            let input = &w.c[(j - 1) * dim..j * dim];
            reflect_backward(
                self.v(k),
                d.beta[k],
                input,
                &mut w.g,
                &mut acc.g[k * dim..(k + 1) * dim],
            );
        }
        // Through u = R t: h becomes ∂L/∂t.
        w.h.iter_mut().for_each(|v| *v = T::zero());
        for i in 0..dim {
            for j in i..dim {
                acc.g[r_off + tri(dim, i, j)] += w.g[i] * w.t[j];
                w.h[j] += d.r[(i, j)] * w.g[i];
            }
        }
        // Through t = tanh x and the log-determinant: g becomes ∂L/∂x.
        let two = T::lit(2.0);
        for i in 0..dim {
            let (t, s2) = (w.t[i], w.s2[i]);
            let delta = Self::det_at(d, i, t, s2);
            acc.gd[i] += gl * s2 / delta;
            w.g[i] = w.h[i] * s2 - gl * two * d.d[i] * s2 * t / delta;
        }
        // Through x = R̃ q + b: h becomes ∂L/∂q.
        w.h.iter_mut().for_each(|v| *v = T::zero());
        let q = &w.a[m * dim..];
        for i in 0..dim {
            acc.g[b_off + i] += w.g[i];
            // Through b + W c.
            let weights = &self.params[w_off + i * cd..w_off + (i + 1) * cd];
            let gw = &mut acc.g[w_off + i * cd..w_off + (i + 1) * cd];
            for k in 0..cd {
                gw[k] += w.g[i] * ctx[k];
                gctx[k] += weights[k] * w.g[i];
            }
            for (j, &qj) in q.iter().enumerate().skip(i) {
                acc.g[rt_off + tri(dim, i, j)] += w.g[i] * qj;
                w.h[j] += d.rt[(i, j)] * w.g[i];
            }
        }
        // Through q = Qᵀ z.
        for k in (0..m).rev() {
            let input = &w.a[k * dim..(k + 1) * dim];
            reflect_backward(
                self.v(k),
                d.beta[k],
                input,
                &mut w.h,
                &mut acc.g[k * dim..(k + 1) * dim],
            );
        }
        for i in 0..dim {
            gz[i] = gy[i] + w.h[i];
        }
    }

    /// Adds the accumulated cotangents into `grad_params`, through
    /// `rᵢᵢ = tanh ρᵢ`, `r̃ᵢᵢ = tanh ρ̃ᵢ` and `dᵢ = rᵢᵢ r̃ᵢᵢ` on the diagonals.
    fn finish(&self, d: &Derived<T>, acc: &Acc<T>, grad_params: &mut [T]) {
        let dim = self.dim;
        let (r_off, rt_off) = (self.r_offset(), self.rt_offset());
        let mut g = acc.g.clone();
        for i in 0..dim {
            let (ir, irt) = (r_off + tri(dim, i, i), rt_off + tri(dim, i, i));
            let (ri, rti) = (d.r[(i, i)], d.rt[(i, i)]);
            g[ir] = (acc.g[ir] + acc.gd[i] * rti) * tanh_sech2(self.params[ir]).1;
            g[irt] = (acc.g[irt] + acc.gd[i] * ri) * tanh_sech2(self.params[irt]).1;
        }
        for (gp, &a) in grad_params.iter_mut().zip(&g) {
            *gp += a;
        }
    }

    fn acc(&self) -> Acc<T> {
        Acc {
            g: vec![T::zero(); self.params.len()],
            gd: vec![T::zero(); self.dim],
        }
    }
}

impl<T: Real> crate::Parameters<T> for Sylvester<T> {
    crate::bijector::single_buffer!(params);
}

impl<T: Real> Differentiable<T> for Sylvester<T> {
    fn boxed_clone(&self) -> Box<dyn crate::bijector::Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::backward_through_given!();

    /// Implicit differentiation of the back-substitution inverse.
    ///
    /// `z = g(y; θ)` is defined by `f(z; θ) = y`, so `∂z/∂y = J⁻¹` and
    /// `∂z/∂θ = −J⁻¹ ∂f/∂θ`; the inverse log-det `l = −ldj(z; θ)` depends on
    /// `z` and on `θ` directly. With `ṽ = ∂L/∂z − (∂L/∂l) ∇_z ldj`,
    /// `∇_z ldj = Q R̃ᵀ (∂ldj/∂x)`, the input cotangent is
    /// `λ = J⁻ᵀ ṽ = Q A⁻ᵀ Qᵀ ṽ` with `A = I + R S R̃` upper triangular
    /// (`S = diag(s₂)`, diagonal `δ`), solved by forward substitution on
    /// `Aᵀ μ = Qᵀ ṽ` without forming `A`. The parameters receive the forward
    /// map's parameter cotangent at `z` for the cotangents `(−λ, −∂L/∂l)`.
    fn inverse_and_log_det_backward_given(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        const CTX: &str = "Sylvester::inverse_and_log_det_backward";
        let dim = self.dim;
        self.check_backward(CTX, y, c, grad_x, grad_log_det, grad_params, grad_context);
        let d = self.derived();
        let n = y.ncols();
        let mut acc = self.acc();
        let mut work = Work::new(dim, self.reflections);
        let mut grad_y = DMatrix::zeros(dim, n);
        let mut z = vec![T::zero(); dim];
        let mut x = vec![T::zero(); dim];
        let mut t = vec![T::zero(); dim];
        let mut s2 = vec![T::zero(); dim];
        let mut delta = vec![T::zero(); dim];
        let mut v = vec![T::zero(); dim];
        let mut mu = vec![T::zero(); dim];
        let mut p = vec![T::zero(); dim];
        let mut scratch = vec![T::zero(); dim];
        let mut bias = vec![T::zero(); dim];
        let two = T::lit(2.0);
        for s in 0..n {
            let ycol = &y.as_slice()[s * dim..(s + 1) * dim];
            self.bias_into(c.column(s).as_slice(), &mut bias);
            self.inverse_sample(&d, ycol, &bias, &mut z, &mut x);
            let gl = grad_log_det[s];
            // v = R̃ᵀ ∂ldj/∂x, then ∇_z ldj = Q v.
            v.iter_mut().for_each(|e| *e = T::zero());
            for i in 0..dim {
                let (ti, si) = tanh_sech2(x[i]);
                t[i] = ti;
                s2[i] = si;
                delta[i] = Self::det_at(&d, i, ti, si);
                let dx = -two * d.d[i] * si * ti / delta[i];
                for (j, vj) in v.iter_mut().enumerate().skip(i) {
                    *vj += d.rt[(i, j)] * dx;
                }
            }
            self.apply_q(&d, &mut v);
            for i in 0..dim {
                v[i] = grad_x[(i, s)] - gl * v[i];
            }
            // Aᵀ μ = Qᵀ ṽ, with p = Rᵀ μ built along.
            self.apply_qt(&d, &mut v);
            for i in 0..dim {
                let pprime = (0..i).fold(T::zero(), |a, k| a + d.r[(k, i)] * mu[k]);
                let mut rhs = v[i];
                for l in 0..i {
                    rhs -= d.rt[(l, i)] * s2[l] * p[l];
                }
                mu[i] = (rhs - d.rt[(i, i)] * s2[i] * pprime) / delta[i];
                p[i] = pprime + d.r[(i, i)] * mu[i];
            }
            self.apply_q(&d, &mut mu);
            for i in 0..dim {
                grad_y[(i, s)] = mu[i];
                mu[i] = -mu[i];
            }
            self.sample_backward(
                &d,
                &z,
                c.column(s).as_slice(),
                &mu,
                -gl,
                &mut work,
                &mut acc,
                &mut scratch,
                grad_context.column_mut(s).as_mut_slice(),
            );
        }
        self.finish(&d, &acc, grad_params);
        Ok(grad_y)
    }

    /// Reverse mode of `y = z + Q R tanh(R̃ Qᵀ z + b)`, `ldj = Σ log δᵢ`,
    /// through every intermediate (see the module docs).
    fn forward_and_log_det_backward_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        const CTX: &str = "Sylvester::forward_and_log_det_backward";
        let dim = self.dim;
        self.check_backward(CTX, x, c, grad_y, grad_log_det, grad_params, grad_context);
        let d = self.derived();
        let n = x.ncols();
        let mut acc = self.acc();
        let mut work = Work::new(dim, self.reflections);
        let mut grad_z = DMatrix::zeros(dim, n);
        for s in 0..n {
            let range = s * dim..(s + 1) * dim;
            self.sample_backward(
                &d,
                &x.as_slice()[range.clone()],
                c.column(s).as_slice(),
                &grad_y.as_slice()[range.clone()],
                grad_log_det[s],
                &mut work,
                &mut acc,
                &mut grad_z.as_mut_slice()[range],
                grad_context.column_mut(s).as_mut_slice(),
            );
        }
        self.finish(&d, &acc, grad_params);
        Ok(grad_z)
    }
}

impl<T: Real> Sylvester<T> {
    /// The shapes of a backward pass's arguments match this layer and the
    /// batch (panics naming `caller` otherwise).
    #[allow(clippy::too_many_arguments)]
    fn check_backward(
        &self,
        caller: &str,
        input: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &[T],
        grad_context: &DMatrix<T>,
    ) {
        crate::batch::assert_pair(caller, Some(self.dim), self.context_dim, input, c);
        assert_eq!(
            grad_context.shape(),
            c.shape(),
            "{caller}: grad_context must have the shape of the context"
        );
        let n = self.params.len();
        assert_backward_shapes(
            caller,
            self.dim,
            n,
            input,
            grad_out,
            grad_log_det,
            grad_params,
        );
    }
}
