//! The validated reading of model and checkpoint files, shared by
//! [`FlowModel`](super::FlowModel)
//! and the checkpoints of [`fit`](super::fit).
//!
//! A file is parsed into a JSON object once; every field is then taken out
//! of it by name and checked on its own (type, length, finiteness, range),
//! so that an error names the file and the field and says what was expected.
//! Text quoted from the file is shortened with [`clip`]. The fields common
//! to both model files, and the size checks made before a flow is built from
//! them, are in [`model_file`](super::model_file).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Standardization;
use crate::Parameters;
use crate::error::clip;
use crate::spec::{Flow, FlowLayer};
use crate::{Error, Real};

/// Where the fields being read live: a file (or `"model"` for text) and a
/// prefix for the fields of a nested object (`"model."` for the model inside
/// a checkpoint).
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    file: String,
    prefix: String,
}

impl Loc {
    /// The top-level fields of `file`.
    pub(crate) fn new(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            prefix: String::new(),
        }
    }

    /// The fields of the object in field `outer` of `file`.
    pub(crate) fn nested(file: impl Into<String>, outer: &str) -> Self {
        Self {
            file: file.into(),
            prefix: format!("{outer}."),
        }
    }

    /// A [`Error::Format`] about `field` (the whole file, or the whole
    /// nested object, when `field` is empty).
    pub(crate) fn err(&self, field: &str, reason: impl Into<String>) -> Error {
        let location = if field.is_empty() && self.prefix.is_empty() {
            self.file.clone()
        } else if field.is_empty() {
            format!(
                "{}, field `{}`",
                self.file,
                self.prefix.trim_end_matches('.')
            )
        } else {
            format!("{}, field `{}{field}`", self.file, self.prefix)
        };
        Error::Format {
            location,
            reason: reason.into(),
        }
    }
}

/// Parses `text` as one JSON object (`what` names the kind of file in the
/// messages: "file", "checkpoint").
pub(crate) fn parse_object(text: &str, loc: &Loc, what: &str) -> Result<Map<String, Value>, Error> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        loc.err(
            "",
            if e.is_eof() {
                format!("the {what} is truncated ({e})")
            } else {
                format!("not valid JSON: {e}")
            },
        )
    })?;
    match value {
        Value::Object(m) => Ok(m),
        other => Err(loc.err(
            "",
            format!(
                "expected a JSON object with named fields, found {}",
                kind(&other)
            ),
        )),
    }
}

/// Checks the field `format`: `expected`, or one of `others` (the format of
/// another kind of file, with the advice to give), else not a file of this
/// kind (`not_this`, e.g. "normflow model file").
pub(crate) fn check_format(
    obj: &Map<String, Value>,
    loc: &Loc,
    expected: &str,
    others: &[(&str, &str)],
    not_this: &str,
) -> Result<(), Error> {
    let found = obj.get("format").and_then(|v| v.as_str());
    if found == Some(expected) {
        return Ok(());
    }
    if let Some((_, advice)) = others.iter().find(|(f, _)| Some(*f) == found) {
        return Err(loc.err("format", *advice));
    }
    Err(loc.err(
        "format",
        format!("expected \"{expected}\"; this is not a {not_this}"),
    ))
}

/// The field `version`, refused when newer than `current`.
pub(crate) fn version(obj: &Map<String, Value>, loc: &Loc, current: u32) -> Result<u64, Error> {
    let version = obj
        .get("version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| loc.err("version", "missing or not a whole number"))?;
    if version > u64::from(current) {
        return Err(loc.err(
            "version",
            format!(
                "the file has format version {version}, newer than this build's {current}; upgrade normflow to read it"
            ),
        ));
    }
    Ok(version)
}

/// Takes the field `name` out of `obj` and deserialises it; `expected` says
/// what it must be ("a whole number ≥ 1").
pub(crate) fn take<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    loc: &Loc,
    name: &str,
    expected: &str,
) -> Result<T, Error> {
    let v = obj
        .remove(name)
        .ok_or_else(|| loc.err(name, format!("missing; expected {expected}")))?;
    deserialize(v, loc, name, expected)
}

/// [`take`] for an optional field: missing or `null` is `None`.
pub(crate) fn take_opt<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    loc: &Loc,
    name: &str,
    expected: &str,
) -> Result<Option<T>, Error> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => deserialize(v, loc, name, expected).map(Some),
    }
}

fn deserialize<T: DeserializeOwned>(
    v: Value,
    loc: &Loc,
    name: &str,
    expected: &str,
) -> Result<T, Error> {
    // The kind of value is worth saying when it is the wrong one; inside an
    // object or array, serde's own message says what is wrong where.
    let found = match &v {
        Value::Object(_) | Value::Array(_) => String::new(),
        other => format!(", found {}", kind(other)),
    };
    serde_json::from_value(v).map_err(|e| {
        loc.err(
            name,
            format!("expected {expected}{found} ({})", clip(&e.to_string())),
        )
    })
}

/// Takes the field `name`, an array of numbers, naming the first entry that
/// is not a number.
pub(crate) fn take_numbers(
    obj: &mut Map<String, Value>,
    loc: &Loc,
    name: &str,
) -> Result<Vec<f64>, Error> {
    let v = obj
        .remove(name)
        .ok_or_else(|| loc.err(name, "missing; expected an array of numbers"))?;
    numbers(v, loc, name)
}

/// An array of numbers, naming the first entry that is not a number.
pub(crate) fn numbers(v: Value, loc: &Loc, name: &str) -> Result<Vec<f64>, Error> {
    let Value::Array(items) = v else {
        return Err(loc.err(
            name,
            format!("expected an array of numbers, found {}", kind(&v)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64().ok_or_else(|| {
                loc.err(
                    name,
                    format!("entry [{i}] is {}, expected a number", clip(&x.to_string())),
                )
            })
        })
        .collect()
}

/// A short description of a JSON value's type, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `x` in the model's precision, if it is finite there.
pub(crate) fn finite_in<T: Real>(x: f64) -> Option<T> {
    let t = T::lit(x);
    t.is_finite().then_some(t)
}

/// A number for a message: as written in plain notation when moderate,
/// else in scientific notation (`1e300`, not 301 digits); a non-finite one
/// in words.
pub(crate) fn num(x: f64) -> String {
    if x.is_nan() {
        "not a number".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+infinity" } else { "−infinity" }.into()
    } else if x == 0.0 || (1e-5..1e16).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// "expected a finite number", saying "in the model's precision" when `x` is
/// finite in f64 (and so only overflows a narrower type).
fn finite_expected(x: f64) -> &'static str {
    if x.is_finite() {
        "expected a finite number in the model's precision"
    } else {
        "expected a finite number"
    }
}

/// Checks a standardisation for `dim` dimensions (the value of the field
/// `dim_field`): lengths, finite means, finite positive standard deviations,
/// all in the model's precision `T`.
pub(crate) fn check_standardization<T: Real>(
    s: &Standardization,
    dim: usize,
    loc: &Loc,
    field: &str,
    dim_field: &str,
) -> Result<(), Error> {
    for (what, v) in [("means", &s.mean), ("standard deviations", &s.std)] {
        if v.len() != dim {
            return Err(loc.err(
                field,
                format!(
                    "has {} {what}, expected {dim} (the field `{dim_field}`)",
                    v.len()
                ),
            ));
        }
    }
    for (i, &m) in s.mean.iter().enumerate() {
        if finite_in::<T>(m).is_none() {
            return Err(loc.err(
                field,
                format!("mean[{i}] is {}, {}", num(m), finite_expected(m)),
            ));
        }
    }
    for (i, &v) in s.std.iter().enumerate() {
        if !finite_in::<T>(v).is_some_and(|t| t > T::zero()) {
            return Err(loc.err(
                field,
                format!("std[{i}] is {}, expected a finite positive number", num(v)),
            ));
        }
    }
    Ok(())
}

/// The parameters of the file (field `params`) in the model's precision:
/// `expected` of them (`owner` says whose count that is, e.g. "the spec
/// `maf` in 2 dimensions"), every one finite.
pub(crate) fn params<T: Real>(
    values: &[f64],
    expected: usize,
    loc: &Loc,
    field: &str,
    owner: impl FnOnce() -> String,
) -> Result<Vec<T>, Error> {
    if values.len() != expected {
        return Err(loc.err(
            field,
            format!(
                "{} has {expected} parameters, the file has {}",
                owner(),
                values.len()
            ),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            finite_in::<T>(x).ok_or_else(|| {
                loc.err(
                    field,
                    format!("[{i}] is {}, {}", num(x), finite_expected(x)),
                )
            })
        })
        .collect()
}

/// How one built layer's state is laid out: its DSL name where its state has
/// a meaning to check (batch-norm statistics, the ActNorm flag) and the
/// lengths of the slices it visits.
pub(crate) struct LayerState {
    name: Option<&'static str>,
    slices: Vec<usize>,
}

/// The state layout of every layer of `flow`, in order.
pub(crate) fn flow_state_layout<T: Real>(flow: &Flow<T>) -> Vec<LayerState> {
    flow.layers()
        .iter()
        .map(|l| {
            let mut slices = Vec::new();
            l.visit_state(&mut |s: &[T]| slices.push(s.len()));
            LayerState {
                name: flow_layer_name(l),
                slices,
            }
        })
        .collect()
}

/// The DSL name of a layer whose state [`state`] checks by its meaning.
fn flow_layer_name<T: Real>(l: &FlowLayer<T>) -> Option<&'static str> {
    match l {
        FlowLayer::BatchNorm(_) => Some("batchnorm"),
        FlowLayer::ActNorm(_) => Some("actnorm"),
        _ => None,
    }
}

/// The layers' state of the file (field `state`) in the model's precision,
/// checked layer by layer against `layout`: the count, every value finite,
/// batch-norm running means finite and running variances ≥ 0, the ActNorm
/// initialisation flag 0 or 1.
pub(crate) fn state<T: Real>(
    layout: &[LayerState],
    values: &[f64],
    loc: &Loc,
) -> Result<Vec<T>, Error> {
    let expected = layout
        .iter()
        .flat_map(|l| l.slices.iter())
        .try_fold(0usize, |a, &n| a.checked_add(n));
    if expected != Some(values.len()) {
        return Err(loc.err(
            "state",
            match expected {
                Some(n) => format!(
                    "expected {n} values of layer state, the file has {}",
                    values.len()
                ),
                None => "the spec's layer state has more values than can be counted".into(),
            },
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    let mut off = 0;
    for (k, layer) in layout.iter().enumerate() {
        let at = |what: String| match layer.name {
            Some(name) => loc.err("state", format!("layer {} ({name}): {what}", k + 1)),
            None => loc.err("state", format!("layer {}: {what}", k + 1)),
        };
        for (j, &len) in layer.slices.iter().enumerate() {
            let slice = &values[off..off + len];
            off += len;
            for (i, &x) in slice.iter().enumerate() {
                let t = finite_in::<T>(x);
                let problem = match (layer.name, layer.slices.len(), j) {
                    (Some("batchnorm"), 2, 0) => t.is_none().then(|| {
                        format!("running mean[{i}] is {}, {}", num(x), finite_expected(x))
                    }),
                    (Some("batchnorm"), 2, _) => match t {
                        Some(v) if v >= T::zero() => None,
                        Some(_) => {
                            Some(format!("running variance[{i}] is {}, expected ≥ 0", num(x)))
                        }
                        None => Some(format!(
                            "running variance[{i}] is {}, expected a finite number ≥ 0",
                            num(x)
                        )),
                    },
                    (Some("actnorm"), _, _) => (x != 0.0 && x != 1.0)
                        .then(|| format!("the initialisation flag is {}, expected 0 or 1", num(x))),
                    _ => t
                        .is_none()
                        .then(|| format!("value [{i}] is {}, {}", num(x), finite_expected(x))),
                };
                if let Some(p) = problem {
                    return Err(at(p));
                }
                out.push(T::lit(x));
            }
        }
    }
    Ok(out)
}

/// Writes `values` (as checked by [`state`]) into the slices `visit` gives,
/// in order.
pub(crate) fn install_state<T: Real>(values: &[T], visit: impl FnOnce(&mut dyn FnMut(&mut [T]))) {
    let mut off = 0;
    visit(&mut |s: &mut [T]| {
        if let Some(src) = values.get(off..off + s.len()) {
            s.copy_from_slice(src);
        }
        off += s.len();
    });
}
