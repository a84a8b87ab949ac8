use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::Bijector;
use crate::Real;

/// Maps `R^D` onto the strictly increasing vectors: `y₀ = x₀`,
/// `yᵢ = yᵢ₋₁ + exp(xᵢ)` for `i ≥ 1`.
///
/// The inverse is `x₀ = y₀`, `xᵢ = log(yᵢ − yᵢ₋₁)`, and
/// `log|det ∂y/∂x| = Σ_{i≥1} xᵢ` (the Jacobian is lower triangular with
/// diagonal `1, e^{x₁}, …`). This is TensorFlow Probability's `Ascending`
/// (TFP's older `Ordered` is the same map in the other direction: its forward
/// is this inverse). Acts on any dimension `D ≥ 1`; for `D = 1` it is the
/// identity.
///
/// **Support.** Domain `R^D`; image `{y : y₀ < y₁ < … < y_{D−1}}`. A column
/// that is not strictly increasing is outside the image: `inverse` gives `−∞`
/// in each coordinate `i ≥ 1` with `yᵢ ≤ yᵢ₋₁` (never NaN for finite `y`),
/// and `inverse_log_det_jacobian` gives `−∞` for that column (the density
/// there is zero), so a transformed log-density is `−∞`. `forward` overflows
/// to `+∞` once an `xᵢ` exceeds `log(T::MAX)` (about 709 in `f64`, 88 in
/// `f32`); its log-det stays finite for every finite `x`.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
///
/// let x = DMatrix::from_column_slice(3, 1, &[0.0_f64, 0.0, 0.0]);
/// assert_eq!(Ordered.forward(&x).as_slice(), &[0.0, 1.0, 2.0]);
/// // A column with a tie or a decrease is outside the image.
/// let y = DMatrix::from_column_slice(3, 1, &[0.0_f64, 2.0, 2.0]);
/// assert_eq!(Ordered.inverse(&y)[(2, 0)], f64::NEG_INFINITY);
/// assert_eq!(Ordered.inverse_log_det_jacobian(&y)[0], f64::NEG_INFINITY);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordered;

/// `log(yᵢ − yᵢ₋₁)`, or `−∞` where the gap is not positive (NaN stays NaN).
#[inline]
fn log_gap<T: Real>(gap: T) -> T {
    if gap <= T::zero() {
        T::neg_infinity()
    } else {
        gap.ln()
    }
}

impl Ordered {
    /// The inverse of one column and its inverse log-det (`−∞` outside the image).
    fn inverse_column<T: Real>(y: &DMatrix<T>, j: usize, x: &mut DMatrix<T>) -> T {
        let mut ildj = T::zero();
        let mut outside = false;
        if y.nrows() > 0 {
            x[(0, j)] = y[(0, j)];
        }
        for i in 1..y.nrows() {
            let gap = y[(i, j)] - y[(i - 1, j)];
            outside |= gap <= T::zero();
            let xi = log_gap(gap);
            x[(i, j)] = xi;
            ildj -= xi;
        }
        if outside { T::neg_infinity() } else { ildj }
    }
}

impl<T: Real> Bijector<T> for Ordered {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        let mut y = x.clone();
        for mut col in y.column_iter_mut() {
            for i in 1..col.len() {
                col[i] = col[i - 1] + col[i].exp();
            }
        }
        y
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        self.inverse_and_log_det(y).0
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        DVector::from_iterator(
            x.ncols(),
            x.column_iter()
                .map(|c| c.iter().skip(1).fold(T::zero(), |acc, &v| acc + v)),
        )
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        self.inverse_and_log_det(y).1
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let mut x = DMatrix::zeros(y.nrows(), y.ncols());
        let ildj = DVector::from_fn(y.ncols(), |j, _| Self::inverse_column(y, j, &mut x));
        (x, ildj)
    }
    super::differentiable_hooks!();
}

/// Reverse mode of the forward direction. With `e₀ = x₀`, `eᵢ = exp(xᵢ)` and
/// `y = cumsum(e)`, `∂L/∂eⱼ = Σ_{i≥j} ∂L/∂yᵢ` (a reverse cumulative sum), so
/// `∂L/∂x₀ = S₀` and `∂L/∂xⱼ = Sⱼ e^{xⱼ} + ∂L/∂l` for `j ≥ 1`.
fn forward_backward<T: Real>(x: &DMatrix<T>, gy: &DMatrix<T>, gl: &DVector<T>) -> DMatrix<T> {
    let mut gx = DMatrix::zeros(x.nrows(), x.ncols());
    for j in 0..x.ncols() {
        let mut suffix = T::zero();
        for i in (0..x.nrows()).rev() {
            suffix += gy[(i, j)];
            gx[(i, j)] = if i == 0 {
                suffix
            } else {
                suffix * x[(i, j)].exp() + gl[j]
            };
        }
    }
    gx
}

/// Reverse mode of the inverse direction. With gaps `dᵢ = yᵢ − yᵢ₋₁`,
/// `xᵢ = log dᵢ` and `l = −Σ_{i≥1} xᵢ`, the loss sees `xᵢ` with weight
/// `cᵢ = ∂L/∂xᵢ − ∂L/∂l`; each `wᵢ = cᵢ / dᵢ` flows to `yᵢ` with sign `+` and
/// to `yᵢ₋₁` with sign `−`, and `∂L/∂y₀` also gets `∂L/∂x₀`.
fn inverse_backward<T: Real>(y: &DMatrix<T>, gx: &DMatrix<T>, gl: &DVector<T>) -> DMatrix<T> {
    let mut gy = DMatrix::zeros(y.nrows(), y.ncols());
    for j in 0..y.ncols() {
        if y.nrows() == 0 {
            break;
        }
        gy[(0, j)] = gx[(0, j)];
        for i in 1..y.nrows() {
            let w = (gx[(i, j)] - gl[j]) / (y[(i, j)] - y[(i - 1, j)]);
            gy[(i, j)] += w;
            gy[(i - 1, j)] -= w;
        }
    }
    gy
}

super::parameter_free_differentiable!(Ordered,
    forward: |this, x, gy, gl| forward_backward(x, gy, gl),
    inverse: |this, y, gx, gl| inverse_backward(y, gx, gl)
);
