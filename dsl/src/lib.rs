//! The grammar of normflow's flow DSL, shared by both front ends: the
//! `flow!` proc-macro (compile time) and `FlowSpec::parse` (run time).
//!
//! ```text
//! flow  := layer (">>" layer)*
//! layer := name | name "(" args ")"
//! args  := count ("," key "=" value)* | key "=" value ("," key "=" value)*   (a trailing comma is allowed)
//! value := integer | decimal | "true" | "false" | word
//! ```
//!
//! This crate owns the table of layers and their keys ([`LAYERS`]), the one
//! validator both front ends call ([`check_layer`]), the did-you-mean
//! suggestions ([`suggest`]), the string parser ([`parse`]) with its
//! compiler-style [`ParseError`], and the canonical text form (`Display` of
//! [`Spec`]). Keeping them here is what makes the macro and the parser agree.
#![warn(missing_docs)]

use std::fmt;

mod diagnostic;
mod parse;
mod registry;
mod table;

pub use diagnostic::{ParseError, QUOTE_CHARS, SOURCE_WINDOW, quote};
pub use parse::{parse, parse_with_limit};
pub use registry::{RegisterError, register_layer, registered_def, registered_names};
pub use table::{KeyDef, LAYERS, LayerDef, Repeat, ValueKind, layer_def};

/// A value written after `key =`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A non-negative integer literal, e.g. `128`.
    Int(u64),
    /// A decimal literal, e.g. `2.5` or `1e-3` (or an integer given for a decimal key).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A bare word, e.g. `relu`.
    Word(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => {
                // Shortest text that reads back to the same f64, always with a
                // decimal point or exponent so it stays a decimal.
                let s = format!("{v:?}");
                f.write_str(&s)
            }
            Value::Bool(b) => write!(f, "{b}"),
            Value::Word(w) => f.write_str(w),
        }
    }
}

/// One validated layer: its canonical name, repeat count, and the keys that
/// were given (in the table's order, values normalised to the key's type).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// Canonical layer name (aliases resolved, e.g. `nsf` → `spline_coupling`).
    pub name: &'static str,
    /// How many copies (≥ 1).
    pub count: usize,
    /// The keys that were given, in the order of the layer's key table.
    pub args: Vec<(&'static str, Value)>,
}

impl LayerSpec {
    /// The table entry of this layer.
    pub fn def(&self) -> &'static LayerDef {
        layer_def(self.name).expect("a validated layer has a table entry")
    }

    /// The value of `key`: the given one, or `None` if the key was not given.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.args.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// How many layers this entry builds: its count, plus the reversal
    /// inserted between consecutive copies of an autoregressive layer
    /// ([`Repeat::Reverse`]). Saturates at `usize::MAX`.
    ///
    /// ```
    /// let spec = normflow_dsl::parse("maf(3) >> nice(3) >> permute").unwrap();
    /// let lens: Vec<usize> = spec.layers.iter().map(|l| l.expanded_len()).collect();
    /// assert_eq!(lens, [5, 3, 1]);
    /// assert_eq!(spec.expanded_len(), 9);
    /// ```
    pub fn expanded_len(&self) -> usize {
        expanded_len(self.def().repeat, self.count)
    }
}

/// Layers built from `count` copies repeated as `repeat` says (saturating).
fn expanded_len(repeat: Repeat, count: usize) -> usize {
    match repeat {
        Repeat::Reverse => count.saturating_mul(2).saturating_sub(1),
        Repeat::Plain | Repeat::ComplementMask => count,
    }
}

/// The most layers a flow may build, counts expanded (with the reversals
/// between repeated autoregressive layers): 10 000. Deeper flows train no
/// better, and each layer costs memory and time; [`parse`] and
/// [`check_layer`] refuse more with a diagnostic at the layer that passes it.
pub const MAX_LAYERS: usize = 10_000;

/// Adds `layer`'s built layers ([`LayerSpec::expanded_len`]) to the running
/// `total` of a flow, or reports (at the layer's count) that the flow passes
/// `max_layers`. Both front ends call it after [`check_layer`], with
/// [`MAX_LAYERS`].
///
/// ```
/// use normflow_dsl::{MAX_LAYERS, add_to_total, check_layer};
/// let maf = check_layer("maf", Some(3), &[]).unwrap();
/// assert_eq!(add_to_total(0, &maf, MAX_LAYERS).unwrap(), 5);
/// let p = add_to_total(MAX_LAYERS - 2, &maf, MAX_LAYERS).unwrap_err();
/// assert!(p.message.contains("10003 layers"), "{p}");
/// ```
pub fn add_to_total(total: usize, layer: &LayerSpec, max_layers: usize) -> Result<usize, Problem> {
    match total.checked_add(layer.expanded_len()) {
        Some(t) if t <= max_layers => Ok(t),
        t => Err(Problem {
            at: Location::Count,
            message: match t {
                Some(t) => format!(
                    "this layer brings the flow to {t} layers, over the limit of {max_layers}"
                ),
                None => format!("this layer brings the flow over the limit of {max_layers} layers"),
            },
            expected: format!(
                "at most {max_layers} layers in the whole flow (counts expanded, with a reversal between repeated autoregressive layers)"
            ),
            suggestion: None,
        }),
    }
}

impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if self.count == 1 && self.args.is_empty() {
            return Ok(());
        }
        f.write_str("(")?;
        let mut first = true;
        if self.count != 1 {
            write!(f, "{}", self.count)?;
            first = false;
        }
        for (k, v) in &self.args {
            if !first {
                f.write_str(", ")?;
            }
            write!(f, "{k} = {v}")?;
            first = false;
        }
        f.write_str(")")
    }
}

/// A validated flow: layers in forward (base → data) order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spec {
    /// The layers, first applied first.
    pub layers: Vec<LayerSpec>,
}

impl Spec {
    /// How many layers the flow builds: the sum of
    /// [`LayerSpec::expanded_len`] (saturating).
    pub fn expanded_len(&self) -> usize {
        self.layers
            .iter()
            .fold(0usize, |t, l| t.saturating_add(l.expanded_len()))
    }
}

impl fmt::Display for Spec {
    /// The canonical text: `name(count, key = value, …) >> …`, which parses
    /// back to an equal spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 {
                f.write_str(" >> ")?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}

/// Which part of a layer a validation problem is about, so that each front
/// end can point at the right token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The layer name.
    Name,
    /// The repeat count.
    Count,
    /// The key of argument `i` (0-based among the `key = value` arguments).
    Key(usize),
    /// The value of argument `i`.
    Value(usize),
}

/// A validation problem found by [`check_layer`].
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where it is.
    pub at: Location,
    /// What is wrong, e.g. "unknown layer `mafx`".
    pub message: String,
    /// What was expected there.
    pub expected: String,
    /// A did-you-mean suggestion, if a near miss was found.
    pub suggestion: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; expected {}", self.message, self.expected)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

/// Validates one layer as written: its name, an optional count (`None` when
/// not written) and its `key = value` arguments. Both front ends call this.
///
/// ```
/// use normflow_dsl::{Value, check_layer, Location};
/// let l = check_layer("nsf", Some(2), &[("bins".into(), Value::Int(4))]).unwrap();
/// assert_eq!(l.name, "spline_coupling");
/// let p = check_layer("maf", None, &[("bins".into(), Value::Int(4))]).unwrap_err();
/// assert_eq!(p.at, Location::Key(0));
/// ```
pub fn check_layer(
    name: &str,
    count: Option<u64>,
    args: &[(String, Value)],
) -> Result<LayerSpec, Problem> {
    let Some(def) = layer_def(name) else {
        let names: Vec<&str> = LAYERS
            .iter()
            .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
            .chain(registered_names())
            .collect();
        return Err(Problem {
            at: Location::Name,
            message: format!("unknown layer `{}`", quote(name)),
            expected: format!("one of {}", join_names(&names)),
            suggestion: suggest(name, &names).map(str::to_string),
        });
    };
    let count = match count {
        None => 1,
        Some(0) => {
            return Err(Problem {
                at: Location::Count,
                message: "a count of 0 repeats the layer zero times".into(),
                expected: "a count of at least 1".into(),
                suggestion: None,
            });
        }
        Some(c) => {
            let max_count = match def.repeat {
                Repeat::Reverse => MAX_LAYERS.div_ceil(2),
                Repeat::Plain | Repeat::ComplementMask => MAX_LAYERS,
            };
            match usize::try_from(c) {
                Ok(c) if c <= max_count => c,
                _ => {
                    // Exact even for counts near 2^64.
                    let layers = match def.repeat {
                        Repeat::Reverse => 2 * u128::from(c) - 1,
                        Repeat::Plain | Repeat::ComplementMask => u128::from(c),
                    };
                    let between = if def.repeat == Repeat::Reverse {
                        " (with a reversal between consecutive copies)"
                    } else {
                        ""
                    };
                    return Err(Problem {
                        at: Location::Count,
                        message: format!(
                            "a count of {c} builds {layers} layers{between}, over the limit of {MAX_LAYERS}"
                        ),
                        expected: format!("a count of at most {max_count}"),
                        suggestion: None,
                    });
                }
            }
        }
    };
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    for (i, (key, value)) in args.iter().enumerate() {
        let Some(kd) = def.keys.iter().find(|k| k.name == key) else {
            let keys: Vec<&str> = def.keys.iter().map(|k| k.name).collect();
            return Err(Problem {
                at: Location::Key(i),
                message: format!("layer `{}` takes no key `{}`", def.name, quote(key)),
                expected: if keys.is_empty() {
                    format!("no keys (`{}` has no options)", def.name)
                } else {
                    format!("one of {}", join_names(&keys))
                },
                suggestion: suggest(key, &keys).map(str::to_string),
            });
        };
        if out.iter().any(|(k, _)| *k == kd.name) {
            return Err(Problem {
                at: Location::Key(i),
                message: format!("key `{key}` is given twice"),
                expected: "each key at most once".into(),
                suggestion: None,
            });
        }
        let v = kd
            .kind
            .check(value)
            .map_err(|(message, suggestion)| Problem {
                at: Location::Value(i),
                message: format!("bad value for `{key}`: {message}"),
                expected: kd.kind.expected().into(),
                suggestion,
            })?;
        out.push((kd.name, v));
    }
    out.sort_by_key(|(k, _)| def.keys.iter().position(|kd| kd.name == *k));
    Ok(LayerSpec {
        name: def.name,
        count,
        args: out,
    })
}

fn join_names(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate to `word` by edit distance, if it is close enough
/// to be a plausible typo (distance ≤ 2, and less than half the word).
///
/// ```
/// assert_eq!(normflow_dsl::suggest("mafx", &["maf", "iaf"]), Some("maf"));
/// assert_eq!(normflow_dsl::suggest("zzz", &["maf", "iaf"]), None);
/// ```
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(usize, &'a str)> = None;
    let len = word.chars().count();
    for &c in candidates {
        // The distance is at least the difference in length, and only
        // distances up to 2 are suggested: skip hopeless (and huge) words.
        if len.abs_diff(c.chars().count()) > 2 {
            continue;
        }
        let d = edit_distance(word, c);
        if d == 0 {
            continue;
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = 2.min(word.chars().count().max(c.chars().count()) / 2);
    (d <= limit.max(1)).then_some(c)
}

/// Levenshtein distance (insertions, deletions, substitutions), plus adjacent
/// transpositions counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}
