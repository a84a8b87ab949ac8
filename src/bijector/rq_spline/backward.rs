//! Reverse mode of the one-coordinate rational-quadratic spline: the
//! derivatives of `(y, log dy/dx)` (forward) and of `(x, log dx/dy)` (inverse)
//! with respect to the input and to the `3K − 1` raw parameters, and
//! [`Differentiable`] for [`RationalQuadraticSpline`].
//!
//! ## The derivation, one bin
//!
//! Inside bin `k` the forward kernel is a function of the input `x` and of six
//! numbers: the left knots `x_k`, `y_k`, the width `w`, the height `h` and the
//! end derivatives `δ_k`, `δ_{k+1}`. With `ξ = (x − x_k)/w`, `s = h/w`,
//! `t = ξ(1 − ξ)`, `Δ = δ_{k+1} + δ_k − 2s`:
//!
//! ```text
//! y = y_k + h R,   R = N / D,   N = s ξ² + δ_k t,   D = s + Δ t,
//! ℓ = log dy/dx = 2 log s + log M − 2 log D,   M = δ_{k+1} ξ² + 2 s t + δ_k (1 − ξ)².
//! ```
//!
//! The partial derivatives (at fixed `ξ`, `s`, `h`, … as independent variables):
//!
//! ```text
//! ∂R/∂ξ = [2sξ + δ_k (1 − 2ξ) − R Δ (1 − 2ξ)] / D      ∂ℓ/∂ξ = M_ξ/M − 2Δ(1 − 2ξ)/D
//! ∂R/∂s = [ξ² − R (1 − 2t)] / D                        ∂ℓ/∂s = 2/s + 2t/M − 2(1 − 2t)/D
//! ∂R/∂δ_k = t (1 − R) / D                              ∂ℓ/∂δ_k = (1 − ξ)²/M − 2t/D
//! ∂R/∂δ_{k+1} = −R t / D                               ∂ℓ/∂δ_{k+1} = ξ²/M − 2t/D
//! M_ξ = 2 δ_{k+1} ξ + 2s (1 − 2ξ) − 2 δ_k (1 − ξ)
//! ```
//!
//! and then `s = h/w`, `ξ = (x − x_k)/w` by the chain rule (`∂ξ/∂x = 1/w`,
//! `∂ξ/∂x_k = −1/w`, `∂ξ/∂w = −ξ/w`, `∂s/∂h = 1/w`, `∂s/∂w = −s/w`).
//!
//! ## From the bin to the raw parameters
//!
//! Widths: `w_i = 2B f_i` with `f = m + (1 − Km) softmax(w̃)`, and the left
//! knot `x_k = −B + 2B Σ_{i<k} f_i`. (The code computes `w` as the difference
//! of two cumulative knots and sets `x_K = B` exactly; analytically the two
//! agree, because `Σ_i f_i = 1` for every `w̃`, and the softmax's reverse mode
//! is blind to the constant shift by which their cotangents differ.) So
//! `∂L/∂f_i = 2B ∂L/∂x_k` for `i < k`, `2B ∂L/∂w` for `i = k`, 0 after;
//! then `∂L/∂w̃_i = (1 − Km) p_i (∂L/∂f_i − Σ_j p_j ∂L/∂f_j)` with
//! `p = softmax(w̃)`. Heights likewise. Interior derivatives:
//! `δ_j = positive_scale(d̃_j)`, `dδ/dd̃ = σ(d̃ + c)` (the logistic sigmoid);
//! the boundary ones `δ_0 = δ_K = 1` are constants (a circular spline's
//! shared boundary derivative is a raw value like the interior ones).
//!
//! ## The inverse, by implicit differentiation
//!
//! `x = g(y; θ)` is defined by `f(g(y; θ); θ) = y`, so with `f' = ∂f/∂x > 0`:
//! `∂x/∂y = 1/f'` and `∂x/∂θ = −(∂f/∂θ)/f'`. The inverse log-derivative is
//! `l = −ℓ(g(y; θ); θ)`, which depends on `θ` both directly and through `x`.
//! For cotangents `ḡ_x`, `ḡ_l` of the outputs, the total cotangent reaching
//! `x` is `c = ḡ_x − ḡ_l ∂ℓ/∂x`, and
//!
//! ```text
//! ∂L/∂y = c / f',      ∂L/∂θ = −(c/f') ∂f/∂θ − ḡ_l ∂ℓ/∂θ,
//! ```
//!
//! which is the forward kernel's reverse mode at `x` with the cotangents
//! `(−c/f', −ḡ_l)` (its input gradient is discarded).
//!
//! Outside `(−B, B)` both kernels are the identity with log-derivative 0:
//! every parameter gradient is 0 and the input cotangent passes through.

use nalgebra::{DMatrix, DVector};

use super::kernel::derivative_index;
use super::{Bin, RationalQuadraticSpline, Side, split};
use crate::bijector::pass::Backward;
use crate::bijector::{Differentiable, assert_rows};
use crate::nn::positive_scale_derivative;
use crate::{Error, Real};

/// Cotangents of the input and of the six numbers that define a bin.
struct BinGrad<T> {
    x: T,
    x0: T,
    w: T,
    y0: T,
    h: T,
    d0: T,
    d1: T,
}

impl<T: Real> Bin<T> {
    /// Reverse mode of [`Bin::eval`] composed with `ξ = (x − x_k)/w`: the
    /// cotangents of `x` and of the bin's numbers, given the cotangents `gy`
    /// of `y` and `gl` of `log dy/dx` (formulas in the module docs).
    fn backward(&self, xi: T, gy: T, gl: T) -> BinGrad<T> {
        let one = T::one();
        let two = one + one;
        let (w, h, d0, d1) = (self.w, self.h, self.d0, self.d1);
        let s = h / w;
        let om = one - xi;
        let t = xi * om;
        let dt = one - two * xi; // dt/dξ
        let delta = d1 + d0 - two * s;
        let den = s + delta * t;
        let r = (s * xi * xi + d0 * t) / den;
        let m = d1 * xi * xi + two * s * t + d0 * om * om;

        let r_xi = (two * s * xi + d0 * dt - r * delta * dt) / den;
        let r_s = (xi * xi - r * (one - two * t)) / den;
        let r_d0 = t * (one - r) / den;
        let r_d1 = -r * t / den;

        let l_xi = two * (d1 * xi + s * dt - d0 * om) / m - two * delta * dt / den;
        let l_s = two / s + two * t / m - two * (one - two * t) / den;
        let l_d0 = om * om / m - two * t / den;
        let l_d1 = xi * xi / m - two * t / den;

        let gyh = gy * h;
        let g_xi = gyh * r_xi + gl * l_xi;
        let g_s = gyh * r_s + gl * l_s;
        BinGrad {
            x: g_xi / w,
            x0: -g_xi / w,
            w: -(g_s * s + g_xi * xi) / w,
            y0: gy,
            h: gy * r + g_s / w,
            d0: gyh * r_d0 + gl * l_d0,
            d1: gyh * r_d1 + gl * l_d1,
        }
    }
}

impl<T: Real> Side<'_, T> {
    /// Adds into `grad_raw` (this side's `K` raw values) the cotangent of the
    /// raw values given the cotangents of bin `k`'s left knot and of its
    /// width (or height): the reverse mode of the softmax, the minimum and
    /// the cumulative sum (module docs).
    fn backward(&self, k: usize, g_left: T, g_size: T, grad_raw: &mut [T]) {
        let bins = self.raw.len();
        let scale =
            (T::one() - T::lit(bins as f64) * T::lit(super::MIN_BIN)) * (self.bound + self.bound);
        let p = |i: usize| (self.raw[i] - self.max).exp() / self.sum;
        // ∂L/∂p_i = scale · (g_left [i < k] + g_size [i = k]).
        let mut dot = T::zero();
        for i in 0..k {
            dot += p(i);
        }
        let pk = p(k);
        dot = scale * (g_left * dot + g_size * pk);
        for (i, g) in grad_raw.iter_mut().enumerate().take(k) {
            *g += p(i) * (scale * g_left - dot);
        }
        grad_raw[k] += pk * (scale * g_size - dot);
        for (i, g) in grad_raw.iter_mut().enumerate().skip(k + 1) {
            *g -= p(i) * dot;
        }
    }
}

/// Adds the cotangents of bin `k`'s numbers into the raw-parameter gradient.
fn scatter<T: Real>(
    raw: &[T],
    bins: usize,
    bound: T,
    k: usize,
    g: &BinGrad<T>,
    grad_raw: &mut [T],
) {
    let (rw, rh, rd) = split(raw, bins);
    let (gw, rest) = grad_raw.split_at_mut(bins);
    let (gh, gd) = rest.split_at_mut(bins);
    Side::new(rw, bound).backward(k, g.x0, g.w, gw);
    Side::new(rh, bound).backward(k, g.y0, g.h, gh);
    // The raw value behind δ_k, if any (a circular spline's ends share one).
    if let Some(i) = derivative_index(rd.len(), bins, k) {
        gd[i] += g.d0 * positive_scale_derivative(rd[i]);
    }
    if let Some(i) = derivative_index(rd.len(), bins, k + 1) {
        gd[i] += g.d1 * positive_scale_derivative(rd[i]);
    }
}

/// The signature of [`rqs_forward_backward`] and [`rqs_inverse_backward`]:
/// `(input, raw, bins, bound, cotangent of the value, cotangent of the
/// log-derivative, raw-parameter gradient to add into) → input cotangent`.
pub(crate) type BackwardKernel<T> = fn(T, &[T], usize, T, T, T, &mut [T]) -> T;

/// The bin holding `x ∈ [−B, B]`: its index `k`, its numbers and `ξ` there (as in [`super::rqs_forward`]).
fn bin_at_x<T: Real>(xc: T, raw: &[T], bins: usize, bound: T) -> (usize, Bin<T>, T) {
    let (rw, rh, rd) = split(raw, bins);
    let (k, x0, x1) = Side::new(rw, bound).locate(xc);
    let (y0, y1) = Side::new(rh, bound).edges(k);
    let bin = Bin::new(k, bins, (x0, x1), (y0, y1), rd);
    let xi = ((xc - x0) / bin.w).max(T::zero()).min(T::one());
    (k, bin, xi)
}

/// Reverse mode of [`super::rqs_forward`] at `x`: given the cotangents `gy` of
/// `y` and `gl` of `log dy/dx`, **adds** the cotangent of the `3K − 1` raw
/// parameters into `grad_raw` and returns the cotangent of `x`.
pub(crate) fn rqs_forward_backward<T: Real>(
    x: T,
    raw: &[T],
    bins: usize,
    bound: T,
    gy: T,
    gl: T,
    grad_raw: &mut [T],
) -> T {
    debug_assert_eq!(grad_raw.len(), raw.len());
    // The same test as the forward kernel's (NaN goes to the identity branch).
    let inside = x.abs() < bound;
    if !inside {
        return gy;
    }
    let (k, bin, xi) = bin_at_x(x, raw, bins, bound);
    let g = bin.backward(xi, gy, gl);
    scatter(raw, bins, bound, k, &g, grad_raw);
    g.x
}

/// Reverse mode of [`super::rqs_inverse`] at `y`: given the cotangents `gx` of
/// `x` and `gl` of `log dx/dy`, **adds** the cotangent of the raw parameters
/// into `grad_raw` and returns the cotangent of `y` (implicit differentiation,
/// module docs).
pub(crate) fn rqs_inverse_backward<T: Real>(
    y: T,
    raw: &[T],
    bins: usize,
    bound: T,
    gx: T,
    gl: T,
    grad_raw: &mut [T],
) -> T {
    debug_assert_eq!(grad_raw.len(), raw.len());
    let inside = y.abs() < bound;
    if !inside {
        return gx;
    }
    let (rw, rh, rd) = split(raw, bins);
    let (k, y0, y1) = Side::new(rh, bound).locate(y);
    let (x0, x1) = Side::new(rw, bound).edges(k);
    let bin = Bin::new(k, bins, (x0, x1), (y0, y1), rd);
    let (xi, _) = bin.solve(y);
    let (_, log_d) = bin.eval(xi);
    // ∂ℓ/∂x at fixed θ: the forward reverse mode with cotangents (0, 1).
    let dl_dx = bin.backward(xi, T::zero(), T::one()).x;
    let c = gx - gl * dl_dx;
    let inv_slope = (-log_d).exp(); // 1/f'
    let g = bin.backward(xi, -c * inv_slope, -gl);
    scatter(raw, bins, bound, k, &g, grad_raw);
    c * inv_slope
}

impl<T: Real> RationalQuadraticSpline<T> {
    /// Shared reverse mode of both directions: `kernel` is the scalar backward
    /// pass of the direction.
    fn backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        assert_rows(
            crate::bijector::pass::method_name!(
                "RationalQuadraticSpline",
                pass.inverse,
                "backward"
            ),
            self.dim,
            pass.input,
        );
        let (input, grad_out, grad_log_det, grad_params, inverse) = pass.parts();
        let kernel: BackwardKernel<T> = if inverse {
            rqs_inverse_backward
        } else {
            rqs_forward_backward
        };
        assert_eq!(
            grad_params.len(),
            self.params.len(),
            "RationalQuadraticSpline: gradient buffer has the wrong length"
        );
        let p = self.params_per_coord();
        let mut grad_in = DMatrix::zeros(self.dim, input.ncols());
        for s in 0..input.ncols() {
            for (i, (raw, g)) in self
                .params
                .chunks_exact(p)
                .zip(grad_params.chunks_exact_mut(p))
                .enumerate()
            {
                grad_in[(i, s)] = kernel(
                    input[(i, s)],
                    raw,
                    self.bins,
                    self.bound,
                    grad_out[(i, s)],
                    grad_log_det[s],
                    g,
                );
            }
        }
        Ok(grad_in)
    }
}

impl<T: Real> crate::Parameters<T> for RationalQuadraticSpline<T> {
    crate::bijector::single_buffer!(params);
}

impl<T: Real> Differentiable<T> for RationalQuadraticSpline<T> {
    fn boxed_clone(&self) -> Box<dyn crate::bijector::Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::backward_from!(backward);
}
