//! The crate-wide error type.

use std::fmt;

/// Everything that can go wrong when constructing distributions and bijectors.
///
/// Every variant carries enough context to say *where* (which constructor,
/// which argument) and *what* was expected; the `Display` impl reads as a
/// sentence:
///
/// ```
/// use normflow::prelude::*;
/// use nalgebra::DVector;
///
/// let err = Normal::new(DVector::from_vec(vec![0.0]), DVector::from_vec(vec![-1.0])).unwrap_err();
/// assert!(matches!(err, Error::InvalidParameter { .. }));
/// assert_eq!(
///     err.to_string(),
///     "Normal::new: argument `scale[0]` must be finite and positive, got -1"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A dimension of zero (or otherwise unusable) was given.
    InvalidDimension {
        /// The constructor or function that rejected it, e.g. `"StandardNormal::new"`.
        context: String,
        /// The argument, e.g. `"dim"`.
        argument: String,
        /// What was expected, e.g. `"at least 1"`.
        expected: String,
        /// The value that was given.
        got: usize,
    },
    /// Two things that must have the same dimension do not.
    DimensionMismatch {
        /// The constructor or function that found the mismatch.
        context: String,
        /// Which argument or component has the wrong dimension.
        argument: String,
        /// The dimension it must have.
        expected: usize,
        /// The dimension it has.
        got: usize,
    },
    /// A parameter value is outside its valid range (non-finite, non-positive
    /// scale, `low >= high`, a zero on a triangular diagonal, …).
    InvalidParameter {
        /// The constructor or function that rejected it.
        context: String,
        /// The argument, with an index where it helps, e.g. `"scale[2]"`.
        argument: String,
        /// What the argument must be, e.g. `"finite and positive"`.
        expected: String,
        /// The offending value, formatted.
        got: String,
    },
    /// A matrix that must be symmetric positive definite is not.
    NotPositiveDefinite {
        /// The constructor that needed the matrix.
        context: String,
        /// The argument holding the matrix.
        argument: String,
        /// Why it failed (not symmetric, Cholesky failed, …).
        reason: String,
    },
    /// Flow-spec text that does not parse (the error renders with a caret
    /// under the offending text).
    Parse(normflow_dsl::ParseError),
    /// A layer of a flow spec cannot be built for the requested dimension.
    Build {
        /// 0-based position of the layer in the spec.
        position: usize,
        /// The layer as written (canonical text).
        layer: String,
        /// The dimension it was built for.
        dim: usize,
        /// Why it cannot be built.
        reason: String,
    },
    /// An operation this object does not support (e.g. the gradient of a
    /// masked autoregressive flow's sequential direction).
    Unsupported {
        /// What was attempted, e.g. `"MaskedAutoregressiveFlow::forward_and_log_det_backward"`.
        context: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Fitting stopped: the loss or a gradient became non-finite (the model
    /// then holds its best-validation parameters, or its last ones with a
    /// finite loss, finalised so that it can be saved; the reason says
    /// which: see [`crate::train::fit_with_observer`]), or an input was
    /// unusable.
    Training {
        /// 1-based epoch (or step, for variational fitting).
        epoch: usize,
        /// 1-based batch within the epoch (0 when not about one batch).
        batch: usize,
        /// What happened.
        reason: String,
    },
    /// MCMC sampling stopped: the target (or the flow preconditioning it)
    /// failed at a point in a way the sampler cannot treat as a divergence.
    Sampling {
        /// 0-based chain.
        chain: usize,
        /// What happened.
        reason: String,
    },
    /// A file could not be read or written.
    Io {
        /// The path.
        path: String,
        /// The operating system's message.
        reason: String,
    },
    /// A saved model (or checkpoint) is malformed, truncated, from a newer
    /// format version, or inconsistent with its own spec.
    Format {
        /// Where (file and field).
        location: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A request whose memory (parameters, a batch, a model read from a
    /// file) is estimated before anything is allocated and is over the limit
    /// (see [`crate::resources`]).
    TooLarge {
        /// What was asked for, e.g. `"the flow `maf(5, hidden = 1000000)` in 2
        /// dimensions (1 000 000 000 parameters)"`.
        what: String,
        /// The estimated bytes, or `None` when the count itself overflows 64 bits.
        needed: Option<u64>,
        /// The limit in bytes.
        limit: u64,
    },
    /// A list that must be a permutation of `0..n` is not.
    InvalidPermutation {
        /// The constructor that rejected it.
        context: String,
        /// The list that was given.
        got: Vec<usize>,
        /// Why it is not a permutation.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidDimension {
                context,
                argument,
                expected,
                got,
            } => write!(
                f,
                "{context}: argument `{argument}` must be {expected}, got {got}"
            ),
            Error::DimensionMismatch {
                context,
                argument,
                expected,
                got,
            } => write!(
                f,
                "{context}: `{argument}` has dimension {got}, expected dimension {expected}"
            ),
            Error::InvalidParameter {
                context,
                argument,
                expected,
                got,
            } => write!(
                f,
                "{context}: argument `{argument}` must be {expected}, got {got}"
            ),
            Error::NotPositiveDefinite {
                context,
                argument,
                reason,
            } => write!(
                f,
                "{context}: argument `{argument}` must be symmetric positive definite, but {reason}"
            ),
            Error::Parse(e) => write!(f, "invalid flow spec:\n{e}"),
            Error::Build {
                position,
                layer,
                dim,
                reason,
            } => write!(
                f,
                "cannot build layer {} (`{layer}`) for dimension {dim}: {reason}",
                position + 1
            ),
            Error::Training {
                epoch,
                batch,
                reason,
            } => {
                if *batch > 0 {
                    write!(
                        f,
                        "fitting stopped at epoch {epoch}, batch {batch}: {reason}"
                    )
                } else {
                    write!(f, "fitting stopped at epoch {epoch}: {reason}")
                }
            }
            Error::Sampling { chain, reason } => {
                write!(f, "sampling stopped in chain {chain}: {reason}")
            }
            Error::Io { path, reason } => write!(f, "{path}: {reason}"),
            Error::Format { location, reason } => write!(f, "{location}: {reason}"),
            Error::Unsupported { context, reason } => {
                write!(f, "{context}: not supported: {reason}")
            }
            Error::TooLarge {
                what,
                needed,
                limit,
            } => {
                let needed = match needed {
                    Some(b) => format!("about {}", human_bytes(*b)),
                    None => "more than 2^64 bytes".into(),
                };
                write!(
                    f,
                    "{} needs {needed} of memory, over the limit of {} (set NORMFLOW_MEMORY_LIMIT to change it)",
                    clip(what),
                    human_bytes(*limit)
                )
            }
            Error::InvalidPermutation {
                context,
                got,
                reason,
            } => write!(
                f,
                "{context}: {got:?} is not a permutation of 0..{}: {reason}",
                got.len()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Parse(e) => Some(e),
            _ => None,
        }
    }
}

impl From<normflow_dsl::ParseError> for Error {
    fn from(e: normflow_dsl::ParseError) -> Self {
        Error::Parse(e)
    }
}

/// Text quoted in an error message (a spec, a cell, a field), shortened to
/// at most [`CLIP_CHARS`] characters: its start, an ellipsis and its length,
/// so that a message stays readable whatever the input.
///
/// ```
/// let long = "maf >> ".repeat(1000);
/// let short = normflow::error::clip(&long);
/// assert!(short.chars().count() < 260);
/// assert!(short.ends_with("(7000 characters in all)"));
/// assert_eq!(normflow::error::clip("maf(2)"), "maf(2)");
/// ```
pub fn clip(text: &str) -> String {
    let n = text.chars().count();
    if n <= CLIP_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(CLIP_CHARS).collect();
    format!("{head}… ({n} characters in all)")
}

/// How many characters of quoted text [`clip`] keeps.
pub const CLIP_CHARS: usize = 200;

/// A byte count for people: `"512 B"`, `"3.2 MB"`, `"1.5 GB"` (powers of 1000).
///
/// ```
/// assert_eq!(normflow::error::human_bytes(512), "512 B");
/// assert_eq!(normflow::error::human_bytes(3_200_000), "3.2 MB");
/// assert_eq!(normflow::error::human_bytes(u64::MAX), "18446.7 PB");
/// ```
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Shorthand for `Result<T, normflow::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Helpers shared by constructors to build errors and validate inputs.
pub(crate) mod check {
    /// The same error with `context` as the function that rejected the
    /// input (a constructor that delegates reports its own name).
    pub(crate) fn rename_context(e: Error, context: &str) -> Error {
        match e {
            Error::InvalidDimension {
                argument,
                expected,
                got,
                ..
            } => Error::InvalidDimension {
                context: context.into(),
                argument,
                expected,
                got,
            },
            Error::InvalidParameter {
                argument,
                expected,
                got,
                ..
            } => Error::InvalidParameter {
                context: context.into(),
                argument,
                expected,
                got,
            },
            other => other,
        }
    }

    use super::Error;
    use crate::Real;
    use nalgebra::{DMatrix, DVector};

    pub(crate) fn dim_at_least_one(context: &str, argument: &str, got: usize) -> Result<(), Error> {
        if got == 0 {
            Err(Error::InvalidDimension {
                context: context.into(),
                argument: argument.into(),
                expected: "at least 1".into(),
                got,
            })
        } else {
            Ok(())
        }
    }

    pub(crate) fn same_dim(
        context: &str,
        argument: &str,
        expected: usize,
        got: usize,
    ) -> Result<(), Error> {
        if expected != got {
            Err(Error::DimensionMismatch {
                context: context.into(),
                argument: argument.into(),
                expected,
                got,
            })
        } else {
            Ok(())
        }
    }

    pub(crate) fn invalid<T: std::fmt::Display>(
        context: &str,
        argument: &str,
        expected: &str,
        got: T,
    ) -> Error {
        Error::InvalidParameter {
            context: context.into(),
            argument: argument.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Every entry finite.
    pub(crate) fn finite_vec<T: Real>(
        context: &str,
        argument: &str,
        v: &DVector<T>,
    ) -> Result<(), Error> {
        let at = |i| format!("[{i}]");
        every_entry(context, argument, v.as_slice(), at, "finite", |x| {
            x.is_finite()
        })
    }

    /// Every entry finite and strictly positive.
    pub(crate) fn positive_vec<T: Real>(
        context: &str,
        argument: &str,
        v: &DVector<T>,
    ) -> Result<(), Error> {
        let at = |i| format!("[{i}]");
        let ok = |x: T| x.is_finite() && x > T::zero();
        every_entry(
            context,
            argument,
            v.as_slice(),
            at,
            "finite and positive",
            ok,
        )
    }

    /// Every entry finite.
    pub(crate) fn finite_mat<T: Real>(
        context: &str,
        argument: &str,
        m: &DMatrix<T>,
    ) -> Result<(), Error> {
        let rows = m.nrows();
        let at = |k| format!("[({}, {})]", k % rows, k / rows);
        every_entry(context, argument, m.as_slice(), at, "finite", |x| {
            x.is_finite()
        })
    }

    /// The first of `values` (column-major, `at` naming its index) that is
    /// not `ok`, as the error that says what was `expected`.
    fn every_entry<T: Real>(
        context: &str,
        argument: &str,
        values: &[T],
        at: impl Fn(usize) -> String,
        expected: &str,
        ok: impl Fn(T) -> bool,
    ) -> Result<(), Error> {
        match values.iter().position(|&x| !ok(x)) {
            Some(k) => Err(invalid(
                context,
                &format!("{argument}{}", at(k)),
                expected,
                values[k],
            )),
            None => Ok(()),
        }
    }

    /// A location vector (non-empty, finite) and a scale vector of the same
    /// length (finite, positive): the arguments of the independent-coordinate
    /// distributions.
    pub(crate) fn loc_scale<T: Real>(
        context: &str,
        loc: &DVector<T>,
        scale: &DVector<T>,
    ) -> Result<(), Error> {
        dim_at_least_one(context, "loc", loc.len())?;
        same_dim(context, "scale", loc.len(), scale.len())?;
        finite_vec(context, "loc", loc)?;
        positive_vec(context, "scale", scale)
    }

    /// A finite lower-triangular matrix with a nonzero diagonal (so it is
    /// invertible), of the given size.
    pub(crate) fn lower_triangular<T: Real>(
        context: &str,
        argument: &str,
        m: &DMatrix<T>,
    ) -> Result<(), Error> {
        square(context, argument, m)?;
        finite_mat(context, argument, m)?;
        for j in 0..m.ncols() {
            for i in 0..j {
                if m[(i, j)] != T::zero() {
                    return Err(invalid(
                        context,
                        &format!("{argument}[({i}, {j})]"),
                        "zero (the matrix must be lower triangular)",
                        m[(i, j)],
                    ));
                }
            }
            if m[(j, j)] == T::zero() {
                return Err(invalid(
                    context,
                    &format!("{argument}[({j}, {j})]"),
                    "nonzero (a diagonal entry of an invertible triangular matrix)",
                    m[(j, j)],
                ));
            }
        }
        Ok(())
    }

    /// A square matrix of the given size.
    pub(crate) fn square<T: Real>(
        context: &str,
        argument: &str,
        m: &DMatrix<T>,
    ) -> Result<(), Error> {
        if m.nrows() != m.ncols() {
            return Err(invalid(
                context,
                argument,
                "a square matrix",
                format!("a {}×{} matrix", m.nrows(), m.ncols()),
            ));
        }
        Ok(())
    }
}
