//! Exact first derivatives of users' scalar code by forward-mode dual
//! numbers (the `num-dual` crate).
//!
//! A user writes a function once over a generic [`Scalar`]; evaluated at
//! `f64` it gives the value, evaluated at a dual number whose infinitesimal
//! part seeds one input it gives the value and the exact partial derivative
//! in that input. No finite differences, no hand-written derivative.

use num_dual::{Dual64, DualNum};

/// The scalar a user's function is written over: `f64` itself, or a dual
/// number that carries a derivative along (any `num_dual` number whose real
/// type is `f64`). Arithmetic with `f64` constants and the elementary
/// functions (`exp`, `ln`, `sinh`, `asinh`, `tanh`, `sqrt`, `powi`, …) are
/// available; write `S::from(2.0)` for a constant of the scalar type.
///
/// ```
/// use normflow::autodiff::{Scalar, derivative};
/// fn f<S: Scalar>(x: S) -> S { x.sinh() * 3.0 }
/// let (v, d) = derivative(|x| f(x), 0.5);
/// assert!((v - 3.0 * 0.5_f64.sinh()).abs() < 1e-15);
/// assert!((d - 3.0 * 0.5_f64.cosh()).abs() < 1e-15); // d/dx 3 sinh x = 3 cosh x
/// ```
pub trait Scalar: DualNum<Primitive = f64> + Copy {}

impl<S: DualNum<Primitive = f64> + Copy> Scalar for S {}

/// The dual number used to seed one input at a time.
pub type Dual = Dual64;

/// `(f(x), f'(x))`, exactly, by one evaluation at a dual number.
pub fn derivative(f: impl Fn(Dual) -> Dual, x: f64) -> (f64, f64) {
    let r = f(Dual::from_re(x).derivative());
    (r.re, r.eps)
}

/// `(f(x), ∇f(x))` of a function of a point, by one dual evaluation per
/// coordinate (exact; costs `D` evaluations).
///
/// ```
/// use normflow::autodiff::{Scalar, gradient};
/// fn f<S: Scalar>(x: &[S]) -> S { x[0] * x[1] + x[1].exp() }
/// let (v, g) = gradient(|x| f(x), &[2.0, 0.0]);
/// assert_eq!(v, 1.0);
/// assert_eq!(g, vec![0.0, 3.0]); // (x₁, x₀ + e^{x₁}) at (2, 0)
/// ```
pub fn gradient(f: impl Fn(&[Dual]) -> Dual, x: &[f64]) -> (f64, Vec<f64>) {
    let mut point: Vec<Dual> = x.iter().map(|&v| Dual::from_re(v)).collect();
    let mut grad = Vec::with_capacity(x.len());
    let mut value = f64::NAN;
    for i in 0..x.len() {
        point[i] = point[i].derivative();
        let r = f(&point);
        value = r.re;
        grad.push(r.eps);
        point[i] = Dual::from_re(x[i]);
    }
    if x.is_empty() {
        value = f(&point).re;
    }
    (value, grad)
}
