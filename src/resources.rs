//! Memory: the limit every size is checked against before anything is
//! allocated, and the [`Footprint`] of a flow (its parameter count and the
//! memory it needs to be held, evaluated and trained).
//!
//! A request that cannot fit (a flow with a billion-wide conditioner, a model
//! file claiming a dimension of 10¹², a batch of 10⁹ samples) is refused with
//! [`Error::TooLarge`], a sentence naming the estimate and the limit, instead
//! of aborting the process when an allocation fails.
//!
//! ```
//! use normflow::prelude::*;
//! use normflow::resources;
//!
//! let spec = FlowSpec::parse("maf(5, hidden = 128)")?;
//! let fp = spec.footprint(2, 0)?;
//! let bytes = fp.model_bytes(8).unwrap();
//! assert!(bytes < 10_000_000);
//! resources::check_memory(|| "the flow".into(), Some(bytes))?;
//!
//! // A billion hidden units cannot be built: refused before allocating.
//! let huge = FlowSpec::parse("maf(hidden = 1000000000)")?;
//! let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
//! let err = huge.build::<f64>(2, &mut rng).unwrap_err();
//! assert!(matches!(err, Error::TooLarge { .. }), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::Error;

/// The environment variable that sets the memory limit in bytes (see
/// [`memory_limit`]).
pub const MEMORY_LIMIT_VAR: &str = "NORMFLOW_MEMORY_LIMIT";

/// The limit used when neither the environment variable nor the machine's
/// available memory can be read: 8 GB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 8_000_000_000;

/// The memory, in bytes, that one request (building a model, a batch, a
/// training run) may use.
///
/// - `NORMFLOW_MEMORY_LIMIT`, when set: a byte count with an optional
///   suffix, `K`/`M`/`G`/`T` (powers of 1000, a trailing `B` allowed) or
///   `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), any case, a decimal point
///   allowed: `512M`, `8G`, `1.5GB`, `2GiB`, `1000000`. `unlimited` (or
///   `none`) lifts the limit. A value that does not parse (or is 0) is
///   ignored, and the default below applies.
/// - otherwise, 90 % of the memory the machine has available now (Linux:
///   `MemAvailable` in `/proc/meminfo`, or the control group's remaining
///   allowance if that is smaller);
/// - otherwise 8 GB ([`DEFAULT_MEMORY_LIMIT`]).
///
/// ```
/// let limit = normflow::resources::memory_limit();
/// assert!(limit > 0);
/// ```
pub fn memory_limit() -> u64 {
    if let Some(v) = std::env::var_os(MEMORY_LIMIT_VAR)
        && let Some(limit) = v.to_str().and_then(parse_bytes)
    {
        return limit;
    }
    match available_memory() {
        Some(bytes) => bytes / 10 * 9,
        None => DEFAULT_MEMORY_LIMIT,
    }
}

/// Reads a byte count as [`memory_limit`] documents it: `"512M"`, `"1.5GB"`,
/// `"2GiB"`, `"1000"`, `"unlimited"` (`u64::MAX`). `None` for anything else,
/// including 0.
///
/// ```
/// use normflow::resources::parse_bytes;
/// assert_eq!(parse_bytes("512M"), Some(512_000_000));
/// assert_eq!(parse_bytes("1.5GB"), Some(1_500_000_000));
/// assert_eq!(parse_bytes("2 GiB"), Some(2 << 30));
/// assert_eq!(parse_bytes("unlimited"), Some(u64::MAX));
/// assert_eq!(parse_bytes("lots"), None);
/// assert_eq!(parse_bytes("0"), None);
/// ```
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "unlimited" || t == "none" {
        return Some(u64::MAX);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let bytes = value * scale;
    // `as` saturates; 2^64 and more means no practical limit.
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

/// The memory available to this process now, if the system says: the
/// smaller of Linux's `MemAvailable` and the control group's remaining
/// allowance.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kb.checked_mul(1024)
    });
    let read_u64 =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    // cgroup v2, then v1 (whose "no limit" is a huge number).
    let cgroup = match (
        read_u64("/sys/fs/cgroup/memory.max"),
        read_u64("/sys/fs/cgroup/memory.current"),
    ) {
        (Some(max), Some(used)) => Some(max.saturating_sub(used)),
        _ => match (
            read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ) {
            (Some(max), Some(used)) if max < 1 << 60 => Some(max.saturating_sub(used)),
            _ => None,
        },
    };
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Stack that must be left when a recursion level starts: below it,
/// [`grow_stack`] continues on a fresh segment. Far more than one layer's
/// fused pass uses between two levels (a few kilobytes; the dense products
/// keep their buffers on the heap).
const STACK_RED_ZONE: usize = 256 * 1024;

/// Size of each fresh stack segment (about a thousand layers' worth).
const STACK_SEGMENT: usize = 4 * 1024 * 1024;

/// Runs `f`, first moving to a fresh heap-allocated stack segment if the
/// current thread's stack is nearly used up. Every recursion whose depth
/// grows with the number of layers (the fused passes through a sequence of
/// parts) goes through it, so that depth cannot overflow any thread's stack,
/// the main thread's 8 MB or a worker's 2 MB alike.
pub(crate) fn grow_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, f)
}

/// Refuses a request whose estimated size is over [`memory_limit`]:
/// `bytes` is the estimate (`None` when counting it overflowed 64 bits),
/// `what` names the request for the message (called only on refusal).
///
/// ```
/// use normflow::resources::check_memory;
/// assert!(check_memory(|| "a small batch".into(), Some(1000)).is_ok());
/// let e = check_memory(|| "a batch of 10^30 samples".into(), None).unwrap_err();
/// assert!(e.to_string().contains("more than 2^64 bytes"), "{e}");
/// ```
pub fn check_memory(what: impl FnOnce() -> String, bytes: Option<u64>) -> Result<(), Error> {
    check_memory_with_limit(what, bytes, memory_limit())
}

/// [`check_memory`] against an explicit `limit` in bytes.
///
/// ```
/// use normflow::resources::check_memory_with_limit;
/// let e = check_memory_with_limit(|| "the flow `lu`".into(), Some(3_200_000_000), 1_000_000_000)
///     .unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "the flow `lu` needs about 3.2 GB of memory, over the limit of 1.0 GB (set NORMFLOW_MEMORY_LIMIT to change it)"
/// );
/// ```
pub fn check_memory_with_limit(
    what: impl FnOnce() -> String,
    bytes: Option<u64>,
    limit: u64,
) -> Result<(), Error> {
    match bytes {
        Some(b) if b <= limit => Ok(()),
        needed => Err(Error::TooLarge {
            what: what(),
            needed,
            limit,
        }),
    }
}

/// What a flow built for a dimension costs, computed from its spec without
/// building it ([`FlowSpec::footprint`](crate::FlowSpec::footprint)): its
/// layers, its exact parameter count and its memory. Every count is `None`
/// when it overflows 64 bits (the request is then "more than 2^64").
///
/// The byte estimates are honest upper bounds for planning and refusing; the
/// parameter count is exact (it equals the built flow's `num_params()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub(crate) dim: u64,
    pub(crate) layers: Option<u64>,
    pub(crate) params: Option<u64>,
    /// Scalars allocated besides the parameters and kept: MADE masks,
    /// batch-normalisation statistics.
    pub(crate) fixed_scalars: Option<u64>,
    /// Scalars a single evaluation allocates whatever the batch (LU's
    /// `D × D` factors).
    pub(crate) workspace: Option<u64>,
    /// Index entries (8 bytes each): permutations, autoregressive orders.
    pub(crate) words: Option<u64>,
    /// Scalars per sample alive at once in an evaluation (the widest layer).
    pub(crate) eval_per_sample: Option<u64>,
    /// Scalars per sample alive in a training pass (every layer's
    /// activations and their gradients).
    pub(crate) train_per_sample: Option<u64>,
}

/// Checked `a + b` of optional counts.
pub(crate) fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a?.checked_add(b?)
}

/// Checked `a · b` of optional counts.
pub(crate) fn mul(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a?.checked_mul(b?)
}

impl Footprint {
    /// Number of layers once counts are expanded (with the reversals
    /// inserted between repeated autoregressive layers).
    pub fn layers(&self) -> Option<u64> {
        self.layers
    }

    /// The exact number of trainable parameters.
    pub fn params(&self) -> Option<u64> {
        self.params
    }

    /// Scalars per sample a forward or inverse evaluation keeps alive at
    /// once (an upper bound).
    pub fn evaluation_scalars_per_sample(&self) -> Option<u64> {
        self.eval_per_sample
    }

    /// Scalars per sample a training pass keeps alive (an upper bound).
    pub fn training_scalars_per_sample(&self) -> Option<u64> {
        self.train_per_sample
    }

    /// Bytes to build and hold the model with `scalar_bytes`-byte scalars
    /// (4 for `f32`, 8 for `f64`) and evaluate one sample: its parameters,
    /// what its layers allocate up front (masks, statistics, permutations,
    /// `D × D` matrices) and one sample's worth of vectors.
    ///
    /// ```
    /// use normflow::FlowSpec;
    /// // LU in 1000 dimensions: 1000·1001 parameters and D × D factors.
    /// let fp = FlowSpec::parse("lu")?.footprint(1000, 0)?;
    /// assert_eq!(fp.params(), Some(1_001_000));
    /// assert!(fp.model_bytes(8).unwrap() > 8 * 4_000_000);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn model_bytes(&self, scalar_bytes: usize) -> Option<u64> {
        let sb = Some(scalar_bytes as u64);
        let scalars = [
            self.params,
            self.fixed_scalars,
            self.workspace,
            self.eval_per_sample,
        ]
        .into_iter()
        .try_fold(0u64, |acc, s| acc.checked_add(s?))?;
        add(mul(Some(scalars), sb), mul(self.words, Some(8)))
    }

    /// Bytes to evaluate (log-density or sampling) a batch of `batch`
    /// samples: the model, plus the batch's input and output and the widest
    /// layer's activations for every sample.
    ///
    /// ```
    /// use normflow::FlowSpec;
    /// let fp = FlowSpec::parse("maf(2, hidden = 32)")?.footprint(4, 0)?;
    /// let (one, many) = (fp.evaluation_bytes(1, 8).unwrap(), fp.evaluation_bytes(1000, 8).unwrap());
    /// assert!(one < many && many < 1000 * one);
    /// assert_eq!(fp.evaluation_bytes(usize::MAX, 8), None);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn evaluation_bytes(&self, batch: usize, scalar_bytes: usize) -> Option<u64> {
        let sb = Some(scalar_bytes as u64);
        let per_sample = add(self.eval_per_sample, mul(Some(self.dim), Some(2)));
        let batch_scalars = mul(Some(batch as u64), per_sample);
        add(self.model_bytes(scalar_bytes), mul(batch_scalars, sb))
    }

    /// Bytes to train on batches of `batch` samples: the model, the gradient,
    /// the working, last-good and best copies of the parameters, the
    /// optimizer's two moments (always `f64`), and every layer's activations
    /// and their gradients for every sample of the batch.
    ///
    /// ```
    /// use normflow::FlowSpec;
    /// let fp = FlowSpec::parse("realnvp(4, hidden = 64)")?.footprint(8, 0)?;
    /// let train = fp.training_bytes(256, 4).unwrap();
    /// assert!(train > fp.evaluation_bytes(256, 4).unwrap());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn training_bytes(&self, batch: usize, scalar_bytes: usize) -> Option<u64> {
        let sb = Some(scalar_bytes as u64);
        // gradient + working copy + last good + best, then Adam's m and v.
        let copies = add(mul(Some(4), sb), Some(16));
        let per_sample = add(self.train_per_sample, mul(Some(self.dim), Some(3)));
        let batch_scalars = mul(Some(batch as u64), per_sample);
        [mul(self.params, copies), mul(batch_scalars, sb)]
            .into_iter()
            .try_fold(self.model_bytes(scalar_bytes)?, |acc, b| {
                acc.checked_add(b?)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_suffixes() {
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes(" 8G "), Some(8_000_000_000));
        assert_eq!(parse_bytes("8g"), Some(8_000_000_000));
        assert_eq!(parse_bytes("512MB"), Some(512_000_000));
        assert_eq!(parse_bytes("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_bytes("3KiB"), Some(3072));
        assert_eq!(parse_bytes("1e9"), None);
        assert_eq!(parse_bytes("-5G"), None);
        assert_eq!(parse_bytes(""), None);
        assert_eq!(parse_bytes("G"), None);
        assert_eq!(parse_bytes("1.2.3G"), None);
        assert_eq!(parse_bytes("99999999999999999999999TB"), Some(u64::MAX));
        assert_eq!(parse_bytes("0.1"), None);
    }

    #[test]
    fn checks_compare_with_the_limit() {
        assert!(check_memory_with_limit(|| unreachable!(), Some(10), 10).is_ok());
        let e = check_memory_with_limit(|| "x".into(), Some(11), 10).unwrap_err();
        assert_eq!(
            e,
            Error::TooLarge {
                what: "x".into(),
                needed: Some(11),
                limit: 10
            }
        );
        assert!(check_memory_with_limit(|| "x".into(), None, u64::MAX).is_err());
    }

    #[test]
    fn the_machine_limit_is_plausible() {
        // Whatever the machine, some memory is available and the estimate
        // is not absurd (below 2^50 bytes = 1 PiB).
        let a = available_memory();
        if let Some(a) = a {
            assert!(a > 0 && a < 1 << 50, "{a}");
        }
    }
}
