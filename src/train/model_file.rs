//! The model file: [`FlowModel::to_json`] and [`FlowModel::from_json`] in
//! the two formats (`normflow-model` for an unconditional model,
//! `normflow-conditional-model` for a conditional one), and the fields every
//! model file has (spec, dimension, seed, standardisation, parameters,
//! state), read with the checks of [`validate`](super::validate) and checked
//! against the memory their flow needs before it is built.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::model::BaseSpec;
use super::validate::{self, Loc, check_standardization, take, take_numbers, take_opt};
use super::{FlowModel, Standardization, write_atomically};
use crate::Parameters;
use crate::distribution::Distribution;
use crate::error::clip;
use crate::spec::FlowSpec;
use crate::{Error, Real};

/// The version of the model file format this build writes and reads.
///
/// Version 2: affine layers (MAF, IAF, RealNVP) apply their scale in the
/// density direction (`u = x·s + t`). Version 1 files applied it in the
/// sampling direction, so their parameters mean something else; they are
/// refused with an error that says to refit.
pub const MODEL_FORMAT_VERSION: u32 = 2;

/// The version of the conditional model file format this build writes and reads.
pub const CONDITIONAL_MODEL_FORMAT_VERSION: u32 = 1;

const FORMAT_NAME: &str = "normflow-model";
const CONDITIONAL_FORMAT_NAME: &str = "normflow-conditional-model";

/// The saved form of an unconditional model. The base is written only when
/// it is not the standard normal (a flow on the torus), so that other
/// models' files are those of earlier releases.
#[derive(Serialize)]
struct ModelFile {
    format: String,
    version: u32,
    spec: String,
    dim: usize,
    seed: u64,
    #[serde(skip_serializing_if = "is_standard_normal")]
    base: BaseSpec,
    standardization: Option<Standardization>,
    params: Vec<f64>,
    state: Vec<f64>,
}

/// The saved form of a conditional model.
#[derive(Serialize)]
struct ConditionalModelFile {
    format: String,
    version: u32,
    spec: String,
    dim: usize,
    context_dim: usize,
    seed: u64,
    base: BaseSpec,
    standardization: Option<Standardization>,
    context_standardization: Option<Standardization>,
    params: Vec<f64>,
    state: Vec<f64>,
}

impl<T: Real> FlowModel<T> {
    /// The model as JSON (see the type docs for the contents).
    pub fn to_json(&self) -> String {
        let mut params = Vec::with_capacity(Parameters::num_params(self));
        Parameters::visit_params(self, &mut |s| params.extend(s.iter().map(|v| v.to_f64())));
        let mut state = Vec::new();
        self.flow
            .visit_state(&mut |s| state.extend(s.iter().map(|v| v.to_f64())));
        let (spec, dim, seed) = (self.spec().to_string(), self.dim(), self.seed);
        let standardization = self.standardization.clone();
        let text = if self.context_dim() == 0 {
            serde_json::to_string_pretty(&ModelFile {
                format: FORMAT_NAME.into(),
                version: MODEL_FORMAT_VERSION,
                spec,
                dim,
                seed,
                base: self.base_spec,
                standardization,
                params,
                state,
            })
        } else {
            serde_json::to_string_pretty(&ConditionalModelFile {
                format: CONDITIONAL_FORMAT_NAME.into(),
                version: CONDITIONAL_MODEL_FORMAT_VERSION,
                spec,
                dim,
                context_dim: self.context_dim(),
                seed,
                base: self.base_spec,
                standardization,
                context_standardization: self.context_standardization.clone(),
                params,
                state,
            })
        };
        text.expect("a model serialises")
    }

    /// Reads a model from JSON text (either format), checking every field:
    /// malformed or truncated text, another format, a newer version, an
    /// invalid spec, a dimension of 0 or one the spec cannot be built for, a
    /// context dimension of 0 in a conditional file, a standardisation of the
    /// wrong length or with a non-finite mean or a non-positive standard
    /// deviation, parameters or state whose count does not match the spec, a
    /// non-finite parameter or state value, or a batch-normalisation layer
    /// with a negative running variance are [`Error::Format`] naming the
    /// field.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        Self::from_json_in(text, &Loc::new("model"))
    }

    /// [`FlowModel::from_json`] with errors located at `loc`.
    pub(crate) fn from_json_in(text: &str, loc: &Loc) -> Result<Self, Error> {
        let mut obj = validate::parse_object(text, loc, "file")?;
        let conditional =
            obj.get("format").and_then(Value::as_str) == Some(CONDITIONAL_FORMAT_NAME);
        if conditional {
            return Self::conditional_from(obj, loc);
        }
        validate::check_format(&obj, loc, FORMAT_NAME, &[], "normflow model file")?;
        if obj.contains_key("context_dim") {
            return Err(loc.err(
                "format",
                format!(
                    "is \"{FORMAT_NAME}\", an unconditional model's, but the file has a field `context_dim`; a conditional model's format is \"{CONDITIONAL_FORMAT_NAME}\""
                ),
            ));
        }
        let version = validate::version(&obj, loc, MODEL_FORMAT_VERSION)?;
        if version < MODEL_FORMAT_VERSION as u64 {
            return Err(loc.err(
                "version",
                format!(
                    "the file has format version {version}, whose affine layers applied their scales in the sampling direction; this build ({MODEL_FORMAT_VERSION}) applies them in the density direction, so the saved parameters would give a different model: refit it"
                ),
            ));
        }
        let base: Option<BaseSpec> = take_opt(
            &mut obj,
            loc,
            "base",
            "absent, \"standard_normal\" or \"uniform_torus\"",
        )?;
        let c = read_common::<T>(&mut obj, loc)?;
        check_flow_size::<T>(&c, 0, true, loc)?;
        let dims = describe_dims(c.dim, 0);
        let model = Self::new(&c.spec, c.dim, c.seed)
            .map_err(|e| build_error(loc, &c.spec_text, &dims, e))?;
        if let Some(b) = base.filter(|b| *b != model.base_spec) {
            return Err(loc.err(
                "base",
                format!(
                    "is {}, but a model of the spec `{}` has the base {}",
                    base_name(b),
                    clip(&c.spec_text),
                    base_name(model.base_spec)
                ),
            ));
        }
        model.restore(c, None, loc, &dims)
    }

    fn conditional_from(mut obj: Map<String, Value>, loc: &Loc) -> Result<Self, Error> {
        validate::version(&obj, loc, CONDITIONAL_MODEL_FORMAT_VERSION)?;
        let context_dim: usize = take(&mut obj, loc, "context_dim", "a whole number ≥ 1")?;
        if context_dim == 0 {
            return Err(loc.err("context_dim", "is 0, expected a whole number ≥ 1"));
        }
        let base: BaseSpec = take(
            &mut obj,
            loc,
            "base",
            "\"standard_normal\", \"uniform_torus\" or {\"diagonal_gaussian\": {...}}",
        )?;
        let context_standardization: Option<Standardization> = take_opt(
            &mut obj,
            loc,
            "context_standardization",
            "null or an object with the arrays `mean` and `std`",
        )?;
        if let Some(s) = &context_standardization {
            check_standardization::<T>(
                s,
                context_dim,
                loc,
                "context_standardization",
                "context_dim",
            )?;
        }
        let c = read_common::<T>(&mut obj, loc)?;
        check_flow_size::<T>(&c, context_dim, false, loc)?;
        check_base_size(base, c.dim, context_dim, c.params.len(), loc)?;
        let dims = describe_dims(c.dim, context_dim);
        let model = Self::conditional_with_base(&c.spec, c.dim, context_dim, base, c.seed)
            .map_err(|e| build_error(loc, &c.spec_text, &dims, e))?;
        model.restore(c, context_standardization, loc, &dims)
    }

    /// Installs the numbers of a file into a freshly built model.
    fn restore(
        mut self,
        c: CommonFields,
        context_standardization: Option<Standardization>,
        loc: &Loc,
        dims: &str,
    ) -> Result<Self, Error> {
        if self.base_spec == BaseSpec::UniformTorus && c.standardization.is_some() {
            return Err(loc.err(
                "standardization",
                "must be null: the model is a flow on the torus, whose data are angles",
            ));
        }
        self.standardization = c.standardization;
        self.context_standardization = context_standardization;
        let n = Parameters::num_params(&self);
        let params = validate::params::<T>(&c.params, n, loc, "params", || {
            format!("the spec `{}` in {dims}", clip(&c.spec_text))
        })?;
        self.load_params(&params);
        let layout = validate::flow_state_layout(&self.flow);
        let state = validate::state::<T>(&layout, &c.state, loc)?;
        validate::install_state(&state, |f| self.flow.visit_state_mut(f));
        Ok(self)
    }

    /// Writes the model to `path` atomically: to a temporary file in the same
    /// folder, then renamed over `path`, so an interrupted write never leaves a
    /// half-written file in place of a good one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        write_atomically(path.as_ref(), self.to_json().as_bytes())
    }

    /// Reads a model written by [`FlowModel::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json_in(&text, &Loc::new(path.display().to_string()))
    }
}

/// Whether `base` is the standard normal (not written in an unconditional file).
fn is_standard_normal(base: &BaseSpec) -> bool {
    *base == BaseSpec::StandardNormal
}

/// A base as a model file names it.
fn base_name(base: BaseSpec) -> &'static str {
    match base {
        BaseSpec::StandardNormal => "\"standard_normal\"",
        BaseSpec::DiagonalGaussian(_) => "\"diagonal_gaussian\"",
        BaseSpec::UniformTorus => "\"uniform_torus\"",
    }
}

/// Refuses a base whose conditioner has more parameters than the file holds
/// in all (a lower bound of its count, by checked arithmetic), before the
/// network is allocated.
fn check_base_size(
    base: BaseSpec,
    dim: usize,
    context_dim: usize,
    file_params: usize,
    loc: &Loc,
) -> Result<(), Error> {
    let BaseSpec::DiagonalGaussian(cfg) = base else {
        return Ok(());
    };
    let (h, outputs) = (cfg.hidden as u128, 2 * dim as u128);
    let inputs = context_dim as u128;
    // The weights alone (biases left out): input and output layers and the
    // hidden-to-hidden ones (two per residual block).
    let lower = if cfg.depth == 0 && !cfg.residual {
        inputs.saturating_mul(outputs)
    } else {
        let inner = if cfg.residual {
            (cfg.depth as u128).saturating_mul(2)
        } else {
            (cfg.depth as u128).saturating_sub(1)
        };
        inputs
            .saturating_mul(h)
            .saturating_add(h.saturating_mul(outputs))
            .saturating_add(inner.saturating_mul(h.saturating_mul(h)))
    };
    if lower > file_params as u128 {
        return Err(loc.err(
            "base",
            format!(
                "its conditioner (hidden {}, depth {}) for {dim} dimensions given {context_dim} has at least {lower} parameters, more than the {file_params} of the field `params`",
                cfg.hidden, cfg.depth
            ),
        ));
    }
    Ok(())
}

/// Renders a flow-spec parse error for a message: in full (the line with a
/// caret under the offending text) when that is short, else without quoting
/// the line.
pub(crate) fn spec_parse_error(e: &normflow_dsl::ParseError) -> String {
    let hint = if e.message().starts_with("unknown layer") {
        "\n(a layer of your own must be registered with `normflow::spec::register_layer` \
         before a model that names it is loaded)"
    } else {
        ""
    };
    let full = e.to_string();
    if full.chars().count() <= 4 * crate::error::CLIP_CHARS {
        return full + hint;
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
    s + hint
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
        cannot_build(loc, field, &c.spec_text, &dims, e)
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
    cannot_build(loc, field, spec_text, dims, e)
}

/// "the spec … cannot be built for …", about `field`.
fn cannot_build(loc: &Loc, field: &str, spec_text: &str, dims: &str, e: Error) -> Error {
    let spec = clip(spec_text);
    loc.err(
        field,
        format!("the spec `{spec}` cannot be built for {dims}: {e}"),
    )
}
