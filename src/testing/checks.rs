//! The bijector contract, checked at every column of a batch
//! ([`check_bijector`]), and the equivalence of two bijectors
//! ([`check_equivalent`]), with the relative error measures they share.

use nalgebra::{DMatrix, DVector};

use super::jacobian::{bijector_jacobians_scaled, log_abs_det};
use super::report::{CheckFailure, CheckReport, Property, Tolerances, fail};
use crate::Real;
use crate::bijector::Bijector;

/// `e > tol`, with NaN counting as exceeding.
pub(super) fn exceeds(e: f64, tol: f64) -> bool {
    e.is_nan() || e > tol
}

/// `err / (1 + |scale|)`, with every NaN (a NaN error, or an infinite error
/// against an infinite scale) counted as an infinite error.
fn rel(err: f64, scale: f64) -> f64 {
    let r = err / (1.0 + scale.abs());
    if r.is_nan() { f64::INFINITY } else { r }
}

fn check_finite_matrix<T: Real>(what: &str, m: &DMatrix<T>) -> Result<(), CheckFailure> {
    for s in 0..m.ncols() {
        for i in 0..m.nrows() {
            let v = m[(i, s)].to_f64();
            if !v.is_finite() {
                return Err(fail(
                    Property::Finite,
                    Some(s),
                    Some(i),
                    f64::NAN,
                    v,
                    f64::INFINITY,
                    0.0,
                    format!("{what} is not finite"),
                ));
            }
        }
    }
    Ok(())
}

fn check_finite_vector<T: Real>(what: &str, v: &DVector<T>) -> Result<(), CheckFailure> {
    for s in 0..v.len() {
        let a = v[s].to_f64();
        if !a.is_finite() {
            return Err(fail(
                Property::Finite,
                Some(s),
                None,
                f64::NAN,
                a,
                f64::INFINITY,
                0.0,
                format!("{what} is not finite"),
            ));
        }
    }
    Ok(())
}

/// The worst entry of a comparison: its relative error, where it is, and
/// the two values.
#[derive(Clone, Copy, Default)]
struct Worst {
    error: f64,
    sample: usize,
    coordinate: Option<usize>,
    expected: f64,
    got: f64,
}

/// Worst per-column relative error `|a − b|∞ / (1 + |b|∞)` between two batches.
fn worst_matrix<T: Real>(a: &DMatrix<T>, b: &DMatrix<T>) -> Worst {
    let mut worst = Worst::default();
    for s in 0..b.ncols() {
        let scale = b
            .column(s)
            .iter()
            .fold(0.0_f64, |m, v| m.max(v.to_f64().abs()));
        for i in 0..b.nrows() {
            let (got, expected) = (a[(i, s)].to_f64(), b[(i, s)].to_f64());
            // Identical values agree, infinities included.
            let error = if got == expected {
                0.0
            } else {
                rel((got - expected).abs(), scale)
            };
            if error > worst.error {
                let coordinate = Some(i);
                worst = Worst {
                    error,
                    sample: s,
                    coordinate,
                    expected,
                    got,
                };
            }
        }
    }
    worst
}

/// Worst relative error `|a − b| / (1 + |b|)` between per-sample values.
fn worst_vector<T: Real>(a: &DVector<T>, b: &DVector<T>) -> Worst {
    let mut worst = Worst::default();
    for s in 0..b.len() {
        let (got, expected) = (a[s].to_f64(), b[s].to_f64());
        let error = if got == expected {
            0.0
        } else {
            rel((got - expected).abs(), expected)
        };
        if error > worst.error {
            worst = Worst {
                error,
                sample: s,
                coordinate: None,
                expected,
                got,
            };
        }
    }
    worst
}

/// The worst relative error `w` ([`worst_matrix`], [`worst_vector`]), or a
/// failure of `property` (with `detail`) if it exceeds `tol`.
fn compare(property: Property, w: Worst, tol: f64, detail: &str) -> Result<f64, CheckFailure> {
    if exceeds(w.error, tol) {
        let (s, i) = (Some(w.sample), w.coordinate);
        return Err(fail(
            property, s, i, w.expected, w.got, w.error, tol, detail,
        ));
    }
    Ok(w.error)
}

/// Deterministic contexts for checking a conditioned layer: `C × n`
/// entries spread over `[−1, 1]`, different in every column.
pub fn probe_contexts<T: Real>(context_dim: usize, n: usize) -> DMatrix<T> {
    DMatrix::from_fn(context_dim, n, |i, j| {
        T::lit(((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0)
    })
}

/// [`check_bijector_with`] with the default tolerances of `T` ([`Tolerances::for_type`]).
pub fn check_bijector<T: Real, B: Bijector<T> + ?Sized>(
    b: &B,
    x: &DMatrix<T>,
) -> Result<CheckReport, CheckFailure> {
    check_bijector_with(b, x, &Tolerances::for_type::<T>())
}

/// Checks the bijector contract at every column of `x` (see the module docs)
/// and returns the worst errors, or the first property that fails.
///
/// `x` must lie in the bijector's domain (any finite point for most; e.g.
/// positive points for `Invert(Exp)`).
///
/// A layer conditioned on a context (`context_dim() = C > 0`) is checked at
/// fixed probe contexts ([`probe_contexts`]) by
/// [`check_bijector_given_with`](super::check_bijector_given_with), so every
/// bijector goes through the same checks.
pub fn check_bijector_with<T: Real, B: Bijector<T> + ?Sized>(
    b: &B,
    x: &DMatrix<T>,
    tol: &Tolerances,
) -> Result<CheckReport, CheckFailure> {
    if b.context_dim() > 0 {
        let c = probe_contexts::<T>(b.context_dim(), x.ncols());
        return super::check_bijector_given_with(&b, x, &c, tol);
    }
    check_maps(b, x, tol)
}

/// The checks of [`check_bijector_with`] for a map without a context (a
/// conditioned layer is checked as its [`JointBijector`](crate::conditional::JointBijector)).
pub(crate) fn check_maps<T: Real, B: Bijector<T> + ?Sized>(
    b: &B,
    x: &DMatrix<T>,
    tol: &Tolerances,
) -> Result<CheckReport, CheckFailure> {
    if x.ncols() == 0 || x.nrows() == 0 {
        return Err(fail(
            Property::Input,
            None,
            None,
            1.0,
            0.0,
            0.0,
            0.0,
            "the input batch is empty",
        ));
    }
    if let Some(d) = b.dim()
        && d != x.nrows()
    {
        return Err(fail(
            Property::Input,
            None,
            None,
            d as f64,
            x.nrows() as f64,
            0.0,
            0.0,
            format!(
                "the bijector has dimension {d} but the input has {} rows",
                x.nrows()
            ),
        ));
    }
    check_finite_matrix("the input x", x)?;
    let mut report = CheckReport {
        samples: x.ncols(),
        ..CheckReport::default()
    };

    // 1. Finite outputs.
    let y = b.forward(x);
    check_finite_matrix("forward(x)", &y)?;
    let fldj = b.forward_log_det_jacobian(x);
    check_finite_vector("forward_log_det_jacobian(x)", &fldj)?;
    let x_back = b.inverse(&y);
    check_finite_matrix("inverse(forward(x))", &x_back)?;
    let ildj = b.inverse_log_det_jacobian(&y);
    check_finite_vector("inverse_log_det_jacobian(forward(x))", &ildj)?;
    report.max_abs_log_det = fldj.iter().fold(0.0, |m, v| m.max(v.to_f64().abs()));

    // 2. Round trips.
    report.max_round_trip_error = compare(
        Property::RoundTrip,
        worst_matrix(&x_back, x),
        tol.round_trip,
        "",
    )?;
    let y_again = b.forward(&x_back);
    check_finite_matrix("forward(inverse(y))", &y_again)?;
    report.max_reverse_round_trip_error = compare(
        Property::ReverseRoundTrip,
        worst_matrix(&y_again, &y),
        tol.round_trip,
        "",
    )?;

    // 3. Log-det against the numerical Jacobian.
    // The central differences at the default step and at steps 1/256 to 256
    // times it: smaller ones win where the map curves sharply (truncation
    // error), larger ones where it is nearly linear in a coordinate but its
    // values are large (rounding error). Each sample is compared with the
    // closest; a wrong log-det disagrees at every step.
    let jacs: Vec<Vec<DMatrix<f64>>> = [1.0, 1.0 / 16.0, 16.0, 1.0 / 256.0, 256.0]
        .into_iter()
        .map(|scale| bijector_jacobians_scaled(b, x, scale))
        .collect();
    for s in 0..x.ncols() {
        let got = fldj[s].to_f64();
        let (mut num, mut e) = (f64::NAN, f64::INFINITY);
        for jac in &jacs {
            let candidate = log_abs_det(&jac[s]);
            let candidate_e = rel((got - candidate).abs(), candidate);
            if candidate_e < e || num.is_nan() {
                (num, e) = (candidate, candidate_e);
            }
        }
        if e > report.max_log_det_error || e.is_nan() {
            report.max_log_det_error = e;
        }
        if exceeds(e, tol.log_det) {
            return Err(fail(
                Property::LogDetVsNumerical,
                Some(s),
                None,
                num,
                got,
                e,
                tol.log_det,
                "expected is log|det J| of the central-difference Jacobian (the closest of steps 1/256 to 256 times the default)",
            ));
        }
    }

    // 4. Inverse log-det = −forward log-det.
    let neg_fldj = -fldj.clone();
    report.max_inverse_log_det_error = compare(
        Property::InverseLogDet,
        worst_vector(&ildj, &neg_fldj),
        tol.consistency,
        "",
    )?;

    // 5. Fused calls.
    let (y_f, fldj_f) = b.forward_and_log_det(x);
    let (x_f, ildj_f) = b.inverse_and_log_det(&y);
    let (fwd, inv, tol_c) = (
        Property::FusedForward,
        Property::FusedInverse,
        tol.consistency,
    );
    let e1 = compare(
        fwd,
        worst_matrix(&y_f, &y),
        tol_c,
        "forward_and_log_det(x).0 vs forward(x)",
    )?;
    let e2 = compare(
        fwd,
        worst_vector(&fldj_f, &fldj),
        tol_c,
        "forward_and_log_det(x).1 vs forward_log_det_jacobian(x)",
    )?;
    let e3 = compare(
        inv,
        worst_matrix(&x_f, &x_back),
        tol_c,
        "inverse_and_log_det(y).0 vs inverse(y)",
    )?;
    let e4 = compare(
        inv,
        worst_vector(&ildj_f, &ildj),
        tol_c,
        "inverse_and_log_det(y).1 vs inverse_log_det_jacobian(y)",
    )?;
    report.max_fused_error = e1.max(e2).max(e3).max(e4);
    Ok(report)
}

/// Checks that two bijectors are the same map at the columns of `x`: equal
/// `forward(x)`, `forward_log_det_jacobian(x)`, and, at `y = a.forward(x)`,
/// equal `inverse(y)` and `inverse_log_det_jacobian(y)`, all to the relative
/// tolerance `tol`. Used for algebraic laws such as `Invert(Invert(b)) ≡ b`.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use normflow::testing::check_equivalent;
/// let x = DMatrix::from_row_slice(1, 3, &[-1.0, 0.5, 2.0]);
/// check_equivalent(&Invert::new(Invert::new(Sigmoid)), &Sigmoid, &x, 1e-12).unwrap();
/// assert!(check_equivalent(&Sigmoid, &Tanh, &x, 1e-12).is_err());
/// ```
pub fn check_equivalent<T: Real, A: Bijector<T> + ?Sized, B: Bijector<T> + ?Sized>(
    a: &A,
    b: &B,
    x: &DMatrix<T>,
    tol: f64,
) -> Result<(), CheckFailure> {
    let (ya, la) = (a.forward(x), a.forward_log_det_jacobian(x));
    let (yb, lb) = (b.forward(x), b.forward_log_det_jacobian(x));
    let pairs_m = [
        ("forward(x)", ya.clone(), yb),
        ("inverse(y)", a.inverse(&ya), b.inverse(&ya)),
    ];
    for (what, ma, mb) in pairs_m {
        compare(Property::Equivalence, worst_matrix(&ma, &mb), tol, what)?;
    }
    let pairs_v = [
        ("forward_log_det_jacobian(x)", la, lb),
        (
            "inverse_log_det_jacobian(y)",
            a.inverse_log_det_jacobian(&ya),
            b.inverse_log_det_jacobian(&ya),
        ),
    ];
    for (what, va, vb) in pairs_v {
        compare(Property::Equivalence, worst_vector(&va, &vb), tol, what)?;
    }
    Ok(())
}
