//! The verification kit: property checks for bijectors and distributions.
//!
//! Enabled by the `testing` cargo feature. The crate checks every one of its
//! own bijectors with these functions, and users check theirs the same way:
//!
//! ```
//! use nalgebra::DMatrix;
//! use normflow::prelude::*;
//! use normflow::testing::check_bijector;
//!
//! let x = DMatrix::from_row_slice(2, 3, &[-2.0, 0.0, 1.5, 0.3, -0.7, 4.0]);
//! let report = check_bijector(&Tanh, &x).expect("tanh passes");
//! assert!(report.max_log_det_error < 1e-6);
//! ```
//!
//! What [`check_bijector`] verifies, per sample (column) of the input:
//! 1. every output of every method is finite;
//! 2. `inverse(forward(x)) ≈ x` and `forward(inverse(y)) ≈ y` with `y = forward(x)`;
//! 3. `forward_log_det_jacobian(x) ≈ log|det J(x)|`, with `J` by central
//!    differences ([`numerical_jacobian`]) and the log-determinant by LU
//!    ([`log_abs_det`]);
//! 4. `inverse_log_det_jacobian(y) ≈ −forward_log_det_jacobian(x)`;
//! 5. the fused `forward_and_log_det` / `inverse_and_log_det` agree with the
//!    separate calls.
//!
//! Errors are *relative*: a round trip error is `|x̂ − x|∞ / (1 + |x|∞)`, a
//! log-det error is `|l̂ − l| / (1 + |l|)`, so that correct bijectors with large
//! values or large log-determinants pass. Default tolerances are in
//! [`Tolerances`].

use std::fmt;

use nalgebra::{DMatrix, DVector};

use crate::Real;
use crate::bijector::Bijector;
use crate::distribution::Distribution;

mod conditional;
mod gradients;
pub mod strategies;

pub use conditional::{
    check_conditional_bijector, check_conditional_bijector_with, check_conditional_gradients,
    check_conditional_gradients_with,
};
pub use gradients::{GRADIENT_TOLERANCE, GradientReport, check_gradients, check_gradients_with};

/// The proptest crate the strategies are built on, re-exported so that users
/// of the kit need no separate dependency to write `proptest!` tests.
pub use proptest;

/// Relative tolerances of [`check_bijector_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Round trips: `|x̂ − x|∞ ≤ round_trip · (1 + |x|∞)`.
    pub round_trip: f64,
    /// Log-det against the numerical Jacobian: `|l − l_num| ≤ log_det · (1 + |l_num|)`.
    pub log_det: f64,
    /// Agreement between analytic quantities that must match (the inverse
    /// log-det against minus the forward one, fused calls against separate
    /// ones): `|a − b| ≤ consistency · (1 + |b|)`.
    pub consistency: f64,
}

impl Tolerances {
    /// Defaults for `f64`: round trip `1e-8`, log-det `1e-6`, consistency `1e-8`.
    ///
    /// Central differences with step `ε^{1/3}(1 + |x|)` are accurate to about
    /// `ε^{2/3} ≈ 4e-11` relative per Jacobian entry, so `1e-6` leaves room for
    /// ill-conditioned Jacobians while still catching any sign or constant error.
    pub const F64: Tolerances = Tolerances {
        round_trip: 1e-8,
        log_det: 1e-6,
        consistency: 1e-8,
    };

    /// Defaults for `f32`: round trip `1e-4`, log-det `2e-3`, consistency `1e-4`
    /// (`ε^{2/3} ≈ 2.5e-5` per Jacobian entry in single precision).
    pub const F32: Tolerances = Tolerances {
        round_trip: 1e-4,
        log_det: 2e-3,
        consistency: 1e-4,
    };

    /// The defaults for the scalar type `T` (by its machine epsilon).
    pub fn for_type<T: Real>() -> Tolerances {
        if T::machine_epsilon().to_f64() > 1e-10 {
            Self::F32
        } else {
            Self::F64
        }
    }

    /// Every tolerance multiplied by `factor` (for bijectors whose inverse is
    /// iterative, say).
    pub fn scaled(self, factor: f64) -> Tolerances {
        Tolerances {
            round_trip: self.round_trip * factor,
            log_det: self.log_det * factor,
            consistency: self.consistency * factor,
        }
    }
}

impl Default for Tolerances {
    fn default() -> Self {
        Self::F64
    }
}

/// The property a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// An output that must be finite is not.
    Finite,
    /// `inverse(forward(x)) ≈ x`.
    RoundTrip,
    /// `forward(inverse(y)) ≈ y`.
    ReverseRoundTrip,
    /// `forward_log_det_jacobian(x) ≈ log|det J_num(x)|`.
    LogDetVsNumerical,
    /// `inverse_log_det_jacobian(f(x)) ≈ −forward_log_det_jacobian(x)`.
    InverseLogDet,
    /// `forward_and_log_det` agrees with `forward` and `forward_log_det_jacobian`.
    FusedForward,
    /// `inverse_and_log_det` agrees with `inverse` and `inverse_log_det_jacobian`.
    FusedInverse,
    /// Two bijectors that should be the same map disagree ([`check_equivalent`]).
    Equivalence,
    /// A density does not integrate to one ([`check_density_normalizes`]).
    Normalization,
    /// A backward pass disagrees with finite differences ([`check_gradients`]).
    Gradient,
    /// The input to a check is unusable (wrong dimension, empty).
    Input,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::Finite => "finite outputs",
            Property::RoundTrip => "round trip inverse(forward(x)) = x",
            Property::ReverseRoundTrip => "round trip forward(inverse(y)) = y",
            Property::LogDetVsNumerical => "forward log-det vs numerical Jacobian",
            Property::InverseLogDet => "inverse log-det = -forward log-det",
            Property::FusedForward => "forward_and_log_det vs separate calls",
            Property::FusedInverse => "inverse_and_log_det vs separate calls",
            Property::Equivalence => "equivalence of two bijectors",
            Property::Normalization => "density integrates to one",
            Property::Gradient => "gradient vs finite differences",
            Property::Input => "usable input",
        })
    }
}

/// A failed check: which property, where, and by how much.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFailure {
    /// The property that failed.
    pub property: Property,
    /// The sample (column) at which it failed, when it is about one sample.
    pub sample: Option<usize>,
    /// The coordinate, for vector-valued properties (round trips, outputs).
    pub coordinate: Option<usize>,
    /// The reference value (e.g. the input `x`, or the numerical log-det).
    pub expected: f64,
    /// The value the bijector produced.
    pub got: f64,
    /// The relative error that was compared with the tolerance.
    pub error: f64,
    /// The tolerance it exceeded.
    pub tolerance: f64,
    /// Extra words, e.g. which method produced a non-finite value.
    pub detail: String,
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "check \"{}\" failed", self.property)?;
        if let Some(s) = self.sample {
            write!(f, " at sample {s}")?;
        }
        if let Some(c) = self.coordinate {
            write!(f, ", coordinate {c}")?;
        }
        write!(
            f,
            ": expected {:.10e}, got {:.10e} (relative error {:.3e} > tolerance {:.1e})",
            self.expected, self.got, self.error, self.tolerance
        )?;
        if !self.detail.is_empty() {
            write!(f, "; {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckFailure {}

/// The worst relative errors seen by a successful [`check_bijector`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CheckReport {
    /// Number of samples (columns) checked.
    pub samples: usize,
    /// Worst `|inverse(forward(x)) − x|∞ / (1 + |x|∞)`.
    pub max_round_trip_error: f64,
    /// Worst `|forward(inverse(y)) − y|∞ / (1 + |y|∞)`.
    pub max_reverse_round_trip_error: f64,
    /// Worst `|fldj(x) − log|det J_num(x)|| / (1 + |log|det J_num||)`.
    pub max_log_det_error: f64,
    /// Worst `|ildj(y) + fldj(x)| / (1 + |fldj(x)|)`.
    pub max_inverse_log_det_error: f64,
    /// Worst disagreement of the fused calls with the separate ones.
    pub max_fused_error: f64,
    /// Largest `|fldj(x)|` seen: a check whose log-dets are all 0 cannot
    /// detect sign errors, and this says whether that was the case.
    pub max_abs_log_det: f64,
}

impl CheckReport {
    /// Combines two reports (worst of each, samples added).
    pub fn merge(self, other: CheckReport) -> CheckReport {
        CheckReport {
            samples: self.samples + other.samples,
            max_round_trip_error: self.max_round_trip_error.max(other.max_round_trip_error),
            max_reverse_round_trip_error: self
                .max_reverse_round_trip_error
                .max(other.max_reverse_round_trip_error),
            max_log_det_error: self.max_log_det_error.max(other.max_log_det_error),
            max_inverse_log_det_error: self
                .max_inverse_log_det_error
                .max(other.max_inverse_log_det_error),
            max_fused_error: self.max_fused_error.max(other.max_fused_error),
            max_abs_log_det: self.max_abs_log_det.max(other.max_abs_log_det),
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "samples checked           {}", self.samples)?;
        writeln!(
            f,
            "round trip x              {:.3e}",
            self.max_round_trip_error
        )?;
        writeln!(
            f,
            "round trip y              {:.3e}",
            self.max_reverse_round_trip_error
        )?;
        writeln!(
            f,
            "log-det vs numerical      {:.3e}",
            self.max_log_det_error
        )?;
        writeln!(
            f,
            "inverse log-det           {:.3e}",
            self.max_inverse_log_det_error
        )?;
        writeln!(f, "fused calls               {:.3e}", self.max_fused_error)?;
        write!(f, "largest |log-det|         {:.3e}", self.max_abs_log_det)
    }
}

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
    central_differences(&batched, &xm)
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
    central_differences(&|m: &DMatrix<T>| b.forward(m), x)
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
) -> Vec<DMatrix<f64>> {
    let (d, n) = x.shape();
    let c = T::machine_epsilon().to_f64().cbrt();
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

/// `e > tol`, with NaN counting as exceeding.
fn exceeds(e: f64, tol: f64) -> bool {
    e.is_nan() || e > tol
}

fn rel(err: f64, scale: f64) -> f64 {
    if err.is_nan() {
        f64::INFINITY
    } else {
        err / (1.0 + scale.abs())
    }
}

#[allow(clippy::too_many_arguments)] // one plain constructor for the record
pub(crate) fn fail(
    property: Property,
    sample: Option<usize>,
    coordinate: Option<usize>,
    expected: f64,
    got: f64,
    error: f64,
    tolerance: f64,
    detail: impl Into<String>,
) -> CheckFailure {
    CheckFailure {
        property,
        sample,
        coordinate,
        expected,
        got,
        error,
        tolerance,
        detail: detail.into(),
    }
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

/// Worst per-column relative error `|a − b|∞ / (1 + |b|∞)` between two batches.
/// Returns `(error, sample, coordinate, expected, got)` of the worst entry.
fn worst_matrix<T: Real>(a: &DMatrix<T>, b: &DMatrix<T>) -> (f64, usize, usize, f64, f64) {
    let mut worst = (0.0, 0, 0, 0.0, 0.0);
    for s in 0..b.ncols() {
        let scale = b
            .column(s)
            .iter()
            .fold(0.0_f64, |m, v| m.max(v.to_f64().abs()));
        for i in 0..b.nrows() {
            let (ga, eb) = (a[(i, s)].to_f64(), b[(i, s)].to_f64());
            // Identical values agree, infinities included.
            let e = if ga == eb {
                0.0
            } else {
                rel((ga - eb).abs(), scale)
            };
            if e > worst.0 || e.is_nan() {
                worst = (e, s, i, eb, ga);
            }
        }
    }
    worst
}

fn worst_vector<T: Real>(a: &DVector<T>, b: &DVector<T>) -> (f64, usize, f64, f64) {
    let mut worst = (0.0, 0, 0.0, 0.0);
    for s in 0..b.len() {
        let (ga, eb) = (a[s].to_f64(), b[s].to_f64());
        let e = if ga == eb {
            0.0
        } else {
            rel((ga - eb).abs(), eb)
        };
        if e > worst.0 {
            worst = (e, s, eb, ga);
        }
    }
    worst
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
pub fn check_bijector_with<T: Real, B: Bijector<T> + ?Sized>(
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
    let (e, s, i, ex, got) = worst_matrix(&x_back, x);
    report.max_round_trip_error = e;
    if e > tol.round_trip {
        return Err(fail(
            Property::RoundTrip,
            Some(s),
            Some(i),
            ex,
            got,
            e,
            tol.round_trip,
            "",
        ));
    }
    let y_again = b.forward(&x_back);
    check_finite_matrix("forward(inverse(y))", &y_again)?;
    let (e, s, i, ex, got) = worst_matrix(&y_again, &y);
    report.max_reverse_round_trip_error = e;
    if e > tol.round_trip {
        return Err(fail(
            Property::ReverseRoundTrip,
            Some(s),
            Some(i),
            ex,
            got,
            e,
            tol.round_trip,
            "",
        ));
    }

    // 3. Log-det against the numerical Jacobian.
    let jacs = bijector_jacobians(b, x);
    for (s, jac) in jacs.iter().enumerate() {
        let num = log_abs_det(jac);
        let got = fldj[s].to_f64();
        let e = rel((got - num).abs(), num);
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
                "expected is log|det J| of the central-difference Jacobian",
            ));
        }
    }

    // 4. Inverse log-det = −forward log-det.
    let neg_fldj = -fldj.clone();
    let (e, s, ex, got) = worst_vector(&ildj, &neg_fldj);
    report.max_inverse_log_det_error = e;
    if e > tol.consistency {
        return Err(fail(
            Property::InverseLogDet,
            Some(s),
            None,
            ex,
            got,
            e,
            tol.consistency,
            "",
        ));
    }

    // 5. Fused calls.
    let (y_f, fldj_f) = b.forward_and_log_det(x);
    let (e1, s1, i1, ex1, g1) = worst_matrix(&y_f, &y);
    if e1 > tol.consistency {
        return Err(fail(
            Property::FusedForward,
            Some(s1),
            Some(i1),
            ex1,
            g1,
            e1,
            tol.consistency,
            "forward_and_log_det(x).0 vs forward(x)",
        ));
    }
    let (e2, s2, ex2, g2) = worst_vector(&fldj_f, &fldj);
    if e2 > tol.consistency {
        return Err(fail(
            Property::FusedForward,
            Some(s2),
            None,
            ex2,
            g2,
            e2,
            tol.consistency,
            "forward_and_log_det(x).1 vs forward_log_det_jacobian(x)",
        ));
    }
    let (x_f, ildj_f) = b.inverse_and_log_det(&y);
    let (e3, s3, i3, ex3, g3) = worst_matrix(&x_f, &x_back);
    if e3 > tol.consistency {
        return Err(fail(
            Property::FusedInverse,
            Some(s3),
            Some(i3),
            ex3,
            g3,
            e3,
            tol.consistency,
            "inverse_and_log_det(y).0 vs inverse(y)",
        ));
    }
    let (e4, s4, ex4, g4) = worst_vector(&ildj_f, &ildj);
    if e4 > tol.consistency {
        return Err(fail(
            Property::FusedInverse,
            Some(s4),
            None,
            ex4,
            g4,
            e4,
            tol.consistency,
            "inverse_and_log_det(y).1 vs inverse_log_det_jacobian(y)",
        ));
    }
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
        let (e, s, i, ex, got) = worst_matrix(&ma, &mb);
        if exceeds(e, tol) {
            return Err(fail(
                Property::Equivalence,
                Some(s),
                Some(i),
                ex,
                got,
                e,
                tol,
                what,
            ));
        }
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
        let (e, s, ex, got) = worst_vector(&va, &vb);
        if exceeds(e, tol) {
            return Err(fail(
                Property::Equivalence,
                Some(s),
                None,
                ex,
                got,
                e,
                tol,
                what,
            ));
        }
    }
    Ok(())
}

/// Integrates `exp(log_prob)` over the box `[lower, upper]` (one or two
/// dimensions) with the composite Simpson rule on `points_per_axis` points per
/// axis (rounded up to an odd number), and checks `|∫ p − 1| ≤ tolerance`.
/// Returns the integral.
///
/// The box must hold essentially all the mass. Simpson's rule is accurate to
/// `O(h⁴)` for smooth densities; a density with a kink (Laplace) or a jump
/// (Uniform) converges as `O(h²)` or `O(h)`, so choose `points_per_axis` and
/// `tolerance` accordingly (e.g. 2001 points, `1e-3`, for a jump in 1-D).
///
/// ```
/// use normflow::prelude::*;
/// use normflow::testing::check_density_normalizes;
/// let d = StandardNormal::new(1)?;
/// let z = check_density_normalizes::<f64, _>(&d, &[-10.0], &[10.0], 401, 1e-8).unwrap();
/// assert!((z - 1.0).abs() < 1e-8);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn check_density_normalizes<T: Real, D: Distribution<T> + ?Sized>(
    dist: &D,
    lower: &[f64],
    upper: &[f64],
    points_per_axis: usize,
    tolerance: f64,
) -> Result<f64, CheckFailure> {
    let d = dist.dim();
    if !(1..=2).contains(&d) || lower.len() != d || upper.len() != d {
        return Err(fail(
            Property::Input,
            None,
            None,
            d as f64,
            lower.len() as f64,
            0.0,
            0.0,
            format!(
                "quadrature needs a distribution of dimension 1 or 2 and bounds of that length (dimension {d}, {} lower and {} upper bounds)",
                lower.len(),
                upper.len()
            ),
        ));
    }
    let m = (points_per_axis.max(3) / 2) * 2 + 1;
    let nodes = |a: f64, b: f64| -> Vec<(f64, f64)> {
        let h = (b - a) / (m - 1) as f64;
        (0..m)
            .map(|k| {
                let w = if k == 0 || k == m - 1 {
                    1.0
                } else if k % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                (a + h * k as f64, w * h / 3.0)
            })
            .collect()
    };
    let axes: Vec<Vec<(f64, f64)>> = (0..d).map(|i| nodes(lower[i], upper[i])).collect();
    let total_points = axes.iter().map(|a| a.len()).product::<usize>();
    let mut integral = 0.0;
    let chunk = 4096;
    let mut start = 0;
    while start < total_points {
        let len = chunk.min(total_points - start);
        let mut pts = DMatrix::<T>::zeros(d, len);
        let mut weights = vec![0.0; len];
        for c in 0..len {
            let mut idx = start + c;
            let mut w = 1.0;
            for (i, axis) in axes.iter().enumerate() {
                let (p, wi) = axis[idx % axis.len()];
                idx /= axis.len();
                pts[(i, c)] = T::lit(p);
                w *= wi;
            }
            weights[c] = w;
        }
        let lp = dist.log_prob(&pts);
        for c in 0..len {
            integral += weights[c] * lp[c].to_f64().exp();
        }
        start += len;
    }
    let err = (integral - 1.0).abs();
    if exceeds(err, tolerance) {
        return Err(fail(
            Property::Normalization,
            None,
            None,
            1.0,
            integral,
            err,
            tolerance,
            "integral of the density over the given box",
        ));
    }
    Ok(integral)
}
