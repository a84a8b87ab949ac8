//! The fields every model file has (spec, dimension, seed, standardisation,
//! parameters, state), read with the checks of [`validate`](super::validate)
//! and checked against the memory their flow needs before it is built;
//! shared by [`FlowModel`](super::FlowModel) and
//! [`ConditionalFlowModel`](super::ConditionalFlowModel).

use serde_json::{Map, Value};

use super::Standardization;
use super::validate::{Loc, check_standardization, take, take_numbers, take_opt};
use crate::error::clip;
use crate::spec::FlowSpec;
use crate::{Error, Real};

/// Renders a flow-spec parse error for a message: in full (the line with a
/// caret under the offending text) when that is short, else without quoting
/// the line.
pub(crate) fn spec_parse_error(e: &normflow_dsl::ParseError) -> String {
    let full = e.to_string();
    if full.chars().count() <= 4 * crate::error::CLIP_CHARS {
        return full;
    }
    let mut s = format!(
        "error: {} at line {}, column {}; expected {}",
        clip(e.message()),
        e.line(),
        e.column(),
        clip(e.expected())
    );
    if let Some(h) = e.suggestion() {
        s.push_str(&format!(" (did you mean `{}`?)", clip(h)));
    }
    s
}

/// The fields every model file has, read and checked before anything is
/// built from them.
pub(crate) struct CommonFields {
    /// The spec as written in the file.
    pub(crate) spec_text: String,
    /// The parsed spec.
    pub(crate) spec: FlowSpec,
    /// The data dimension (≥ 1).
    pub(crate) dim: usize,
    /// The build seed.
    pub(crate) seed: u64,
    /// The standardisation, checked for `dim` dimensions.
    pub(crate) standardization: Option<Standardization>,
    /// The flat parameters (not yet checked: their count needs the built model).
    pub(crate) params: Vec<f64>,
    /// The flat layer state (not yet checked: its layout needs the built model).
    pub(crate) state: Vec<f64>,
}

/// Reads the fields `spec`, `dim`, `seed`, `standardization`, `params` and
/// `state` of a model file.
pub(crate) fn read_common<T: Real>(
    obj: &mut Map<String, Value>,
    loc: &Loc,
) -> Result<CommonFields, Error> {
    let spec_text: String = take(obj, loc, "spec", "the flow spec as a string")?;
    let dim: usize = take(obj, loc, "dim", "a whole number ≥ 1")?;
    if dim == 0 {
        return Err(loc.err("dim", "is 0, expected a whole number ≥ 1"));
    }
    let seed: u64 = take(obj, loc, "seed", "a whole number from 0 to 2^64 − 1")?;
    let standardization: Option<Standardization> = take_opt(
        obj,
        loc,
        "standardization",
        "null or an object with the arrays `mean` and `std`",
    )?;
    if let Some(s) = &standardization {
        check_standardization::<T>(s, dim, loc, "standardization", "dim")?;
    }
    let params = take_numbers(obj, loc, "params")?;
    let state = take_numbers(obj, loc, "state")?;
    let spec = FlowSpec::parse(&spec_text).map_err(|e| {
        loc.err(
            "spec",
            format!("invalid flow spec:\n{}", spec_parse_error(&e)),
        )
    })?;
    Ok(CommonFields {
        spec_text,
        spec,
        dim,
        seed,
        standardization,
        params,
        state,
    })
}

/// Checks, before anything is built, that the flow of `c` for `c.dim`
/// dimensions (and a `context_dim`-dimensional context, 0 for an
/// unconditional model) fits in memory, and that the file holds its
/// parameters: exactly as many (`exact`, an unconditional model) or at least
/// as many (a conditional model, whose base adds its own). Too large a flow
/// is an error about the field `dim` (or `context_dim`, or `spec`: whichever
/// the flow is too large for); a count that cannot match is one about the
/// field `params`.
pub(crate) fn check_flow_size<T: Real>(
    c: &CommonFields,
    context_dim: usize,
    exact: bool,
    loc: &Loc,
) -> Result<(), Error> {
    let bytes = std::mem::size_of::<T>();
    let dims = describe_dims(c.dim, context_dim);
    let fp = c.spec.check_size(c.dim, context_dim, bytes).map_err(|e| {
        let field = if !matches!(e, Error::TooLarge { .. }) {
            "spec"
        } else if fits(&c.spec, 1, context_dim, bytes) {
            "dim"
        } else if context_dim > 1 && fits(&c.spec, c.dim, 1, bytes) {
            "context_dim"
        } else {
            "spec"
        };
        loc.err(
            field,
            format!(
                "the spec `{}` cannot be built for {dims}: {e}",
                clip(&c.spec_text)
            ),
        )
    })?;
    let have = c.params.len() as u64;
    match fp.params() {
        Some(n) if n == have || (!exact && n < have) => Ok(()),
        n => Err(loc.err(
            "params",
            format!(
                "the flow of the spec `{}` in {dims} has {} parameters, the file has {have}",
                clip(&c.spec_text),
                n.map_or("more than 2^64".to_string(), |n| n.to_string())
            ),
        )),
    }
}

/// Whether the flow of `spec` for `dim` (and `context_dim`) fits in memory.
fn fits(spec: &FlowSpec, dim: usize, context_dim: usize, bytes: usize) -> bool {
    spec.footprint(dim, context_dim)
        .is_ok_and(|fp| crate::resources::check_memory(String::new, fp.model_bytes(bytes)).is_ok())
}

/// "2 dimensions", or "2 dimensions with a 3-dimensional context".
pub(crate) fn describe_dims(dim: usize, context_dim: usize) -> String {
    if context_dim == 0 {
        format!("{dim} dimensions")
    } else {
        format!("{dim} dimensions with a {context_dim}-dimensional context")
    }
}

/// The error of a model that cannot be built from its file's spec and
/// dimension: about the field `dim` when the request is too large, else about
/// the field `spec`.
pub(crate) fn build_error(loc: &Loc, spec_text: &str, dims: &str, e: Error) -> Error {
    let field = if matches!(e, Error::TooLarge { .. }) {
        "dim"
    } else {
        "spec"
    };
    loc.err(
        field,
        format!(
            "the spec `{}` cannot be built for {dims}: {e}",
            clip(spec_text)
        ),
    )
}
