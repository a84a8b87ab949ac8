//! What a check reports: the tolerances it is held to, the property a
//! failure is about, the failure itself and the report of a success.

use std::fmt;

use crate::Real;

/// Relative tolerances of [`check_bijector_with`](super::check_bijector_with).
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
    /// Two bijectors that should be the same map disagree ([`check_equivalent`](super::check_equivalent)).
    Equivalence,
    /// A density does not integrate to one ([`check_density_normalizes`](super::check_density_normalizes)).
    Normalization,
    /// A backward pass disagrees with finite differences ([`check_gradients`](super::check_gradients)).
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

/// The worst relative errors seen by a successful [`check_bijector`](super::check_bijector).
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

/// A failure with no location or numbers: an input the check refuses.
pub(crate) fn refuse(property: Property, detail: impl Into<String>) -> CheckFailure {
    fail(property, None, None, 0.0, 0.0, 0.0, 0.0, detail)
}

/// A backward pass that failed or returned an unusable gradient (an
/// infinite error against `tolerance`).
pub(crate) fn broken_gradient(tolerance: f64, detail: impl Into<String>) -> CheckFailure {
    fail(
        Property::Gradient,
        None,
        None,
        0.0,
        0.0,
        f64::INFINITY,
        tolerance,
        detail,
    )
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
