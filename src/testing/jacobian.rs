//! Numerical Jacobians by central differences (Richardson-extrapolated, in
//! `f64`) and `log|det|` by LU: the reference every log-determinant is
//! checked against.

use nalgebra::{DMatrix, DVector};

use crate::Real;
use crate::bijector::Bijector;

/// The Jacobian of `f` at `x` by central differences in `f64`.
///
/// See [`bijector_jacobians`] for the step rule (a step of `ε^{1/3}(1 + |xⱼ|)`,
/// Richardson-extrapolated, shrunk towards `ε^{1/3}|xⱼ|` where the wider step
/// leaves the domain of `f`).
///
/// ```
/// use nalgebra::DVector;
/// use normflow::testing::numerical_jacobian;
/// let j = numerical_jacobian(|v: &DVector<f64>| v.map(|a| a * a), &DVector::from_vec(vec![3.0]));
/// assert!((j[(0, 0)] - 6.0).abs() < 1e-8);
/// // A step scaled to |x| near a boundary of the domain: d log(x)/dx at x = 1e-300.
/// let j = numerical_jacobian(|v: &DVector<f64>| v.map(f64::ln), &DVector::from_vec(vec![1e-300]));
/// assert!((j[(0, 0)] * 1e-300 - 1.0).abs() < 1e-8);
/// ```
pub fn numerical_jacobian(
    f: impl Fn(&DVector<f64>) -> DVector<f64>,
    x: &DVector<f64>,
) -> DMatrix<f64> {
    let xm = DMatrix::from_column_slice(x.len(), 1, x.as_slice());
    let batched = |m: &DMatrix<f64>| -> DMatrix<f64> {
        let cols: Vec<DVector<f64>> = m.column_iter().map(|c| f(&c.clone_owned())).collect();
        DMatrix::from_columns(&cols)
    };
    central_differences(&batched, &xm, 1.0)
        .pop()
        .unwrap_or_else(|| DMatrix::zeros(0, 0))
}

/// `log|det m|` of a square matrix by LU decomposition (nalgebra), computed as
/// a sum of logs so that it neither overflows nor underflows. `-inf` for a
/// singular matrix.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::testing::log_abs_det;
/// let m = DMatrix::from_row_slice(2, 2, &[0.0, 2.0, -3.0, 1.0]); // det = 6
/// assert!((log_abs_det(&m) - 6.0_f64.ln()).abs() < 1e-14);
/// ```
pub fn log_abs_det(m: &DMatrix<f64>) -> f64 {
    assert!(
        m.is_square(),
        "log_abs_det: matrix is {}×{}, expected square",
        m.nrows(),
        m.ncols()
    );
    let lu = m.clone().lu();
    lu.u().diagonal().iter().map(|u| u.abs().ln()).sum()
}

/// Numerical Jacobians of a bijector's forward map at every column of `x`,
/// evaluated in the bijector's own scalar type `T`. Returns one `D × D` matrix
/// (in `f64`) per column.
///
/// Each Jacobian column comes from central differences `D(h)` combined by one
/// Richardson step `(4 D(h/2) − D(h)) / 3`, which cancels the `O(h²)` error.
/// Two steps are tried: `h = ε_T^{1/3} (1 + |xⱼ|)` (the step that balances
/// truncation against rounding for inputs of order one or more) and, for
/// `0 < |xⱼ| < 1`, the step scaled to `|xⱼ|`, `h = ε_T^{1/3} |xⱼ|` (for maps such
/// as `log x` whose curvature grows near zero). The one with the smaller
/// estimated error is kept: the truncation estimate `|D(h) − D(h/2)|` plus the
/// rounding estimate `3 ε |f| / h`.
/// Where `x ± h` leaves the domain of the map (a non-finite output) the step is
/// halved until the outputs are finite. Divisors are the steps actually
/// represented in floating point.
pub fn bijector_jacobians<T: Real, B: Bijector<T> + ?Sized>(
    b: &B,
    x: &DMatrix<T>,
) -> Vec<DMatrix<f64>> {
    central_differences(&|m: &DMatrix<T>| b.forward(m), x, 1.0)
}

/// [`bijector_jacobians`] with every step multiplied by `scale` (the kit
/// tries other steps before it reports a log-det as wrong: where the map
/// curves sharply the default step's truncation error, and where it is
/// nearly linear with large values its rounding error, can exceed the
/// tolerance, while a wrong log-det disagrees at every step).
pub(crate) fn bijector_jacobians_scaled<T: Real, B: Bijector<T> + ?Sized>(
    b: &B,
    x: &DMatrix<T>,
    scale: f64,
) -> Vec<DMatrix<f64>> {
    central_differences(&|m: &DMatrix<T>| b.forward(m), x, scale)
}

/// Richardson-extrapolated central differences of `f` along coordinate `j`
/// with per-sample initial steps `h`; returns, per sample, the derivative
/// column and its error estimate (`inf` if no finite step was found).
fn directional<T: Real>(
    f: &dyn Fn(&DMatrix<T>) -> DMatrix<T>,
    x: &DMatrix<T>,
    j: usize,
    mut h: Vec<f64>,
) -> Vec<(Vec<f64>, f64)> {
    let n = x.ncols();
    let eps = T::machine_epsilon().to_f64();
    let mut out: Vec<Option<(Vec<f64>, f64)>> = vec![None; n];
    for _ in 0..60 {
        let diff = |scale: f64| -> (DMatrix<T>, DMatrix<T>, Vec<f64>) {
            let mut xp = x.clone();
            let mut xm = x.clone();
            let mut width = vec![0.0; n];
            for s in 0..n {
                let v = x[(j, s)];
                let hs = T::lit(h[s] * scale);
                xp[(j, s)] = v + hs;
                xm[(j, s)] = v - hs;
                width[s] = (xp[(j, s)] - xm[(j, s)]).to_f64();
            }
            (f(&xp), f(&xm), width)
        };
        let (fp1, fm1, w1) = diff(1.0);
        let (fp2, fm2, w2) = diff(0.5);
        let rows = fp1.nrows();
        let mut all_done = true;
        for s in 0..n {
            if out[s].is_some() {
                continue;
            }
            let finite = w1[s] > 0.0
                && w2[s] > 0.0
                && (0..rows).all(|i| {
                    fp1[(i, s)].is_finite()
                        && fm1[(i, s)].is_finite()
                        && fp2[(i, s)].is_finite()
                        && fm2[(i, s)].is_finite()
                });
            if finite {
                let mut col = vec![0.0; rows];
                let mut err = 0.0_f64;
                for i in 0..rows {
                    let (a, b) = (fp1[(i, s)].to_f64(), fm1[(i, s)].to_f64());
                    let d1 = (a - b) / w1[s];
                    let d2 = (fp2[(i, s)].to_f64() - fm2[(i, s)].to_f64()) / w2[s];
                    col[i] = (4.0 * d2 - d1) / 3.0;
                    // Truncation (the two quotients disagree) plus rounding
                    // (ε |f| / h, which the extrapolation roughly triples).
                    let rounding = 3.0 * eps * a.abs().max(b.abs()) / w1[s];
                    err = err.max((d2 - d1).abs() + rounding);
                }
                out[s] = Some((col, err));
            } else {
                all_done = false;
                h[s] /= 2.0;
            }
        }
        if all_done {
            break;
        }
    }
    let rows = f(x).nrows();
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| (vec![f64::NAN; rows], f64::INFINITY)))
        .collect()
}

fn central_differences<T: Real>(
    f: &dyn Fn(&DMatrix<T>) -> DMatrix<T>,
    x: &DMatrix<T>,
    scale: f64,
) -> Vec<DMatrix<f64>> {
    let (d, n) = x.shape();
    let c = T::machine_epsilon().to_f64().cbrt() * scale;
    let rows = f(x).nrows();
    let mut jacs = vec![DMatrix::zeros(rows, d); n];
    for j in 0..d {
        let abs_x: Vec<f64> = (0..n).map(|s| x[(j, s)].to_f64().abs()).collect();
        let wide = directional(f, x, j, abs_x.iter().map(|a| c * (1.0 + a)).collect());
        let needs_relative = abs_x.iter().any(|a| *a > 0.0 && *a < 1.0);
        let relative = if needs_relative {
            Some(directional(
                f,
                x,
                j,
                abs_x
                    .iter()
                    .map(|a| {
                        if *a > 0.0 && *a < 1.0 {
                            c * a
                        } else {
                            c * (1.0 + a)
                        }
                    })
                    .collect(),
            ))
        } else {
            None
        };
        for s in 0..n {
            let mut best = &wide[s];
            if let Some(r) = &relative
                && r[s].1 < best.1
            {
                best = &r[s];
            }
            for i in 0..rows {
                jacs[s][(i, j)] = best.0[i];
            }
        }
    }
    jacs
}
