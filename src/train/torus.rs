//! Flows on the torus: which base a [`FlowModel`](super::FlowModel) of a
//! spec takes, and the checks a model on the torus puts on its data.
//!
//! A spec with a `circular_spline` layer is a flow on the torus `[−π, π)^D`:
//! it takes the [`UniformTorus`](crate::distribution::UniformTorus) base
//! (`BaseSpec::UniformTorus`) by itself, and every one of its layers must
//! keep the torus (`circular_spline`, `permute`, `reverse`); any other spec
//! keeps the standard normal base.

use nalgebra::DMatrix;

use super::model::BaseSpec;
use crate::distribution::UniformTorus;
use crate::error::clip;
use crate::spec::FlowSpec;
use crate::{Error, Real};

/// The layers that map the torus onto itself.
const TORUS_LAYERS: &[&str] = &["circular_spline", "permute", "reverse"];

/// Whether `spec` is a flow on the torus: it has a `circular_spline` layer.
/// Errors if it also has a layer that does not keep the torus.
pub(super) fn is_torus(spec: &FlowSpec, caller: &str) -> Result<bool, Error> {
    let layers = spec.layers();
    if !layers.iter().any(|l| l.name == "circular_spline") {
        return Ok(false);
    }
    match layers
        .iter()
        .enumerate()
        .find(|(_, l)| !TORUS_LAYERS.contains(&l.name))
    {
        None => Ok(true),
        Some((pos, l)) => Err(Error::Unsupported {
            context: caller.into(),
            reason: format!(
                "`circular_spline` is a flow on the torus [-pi, pi)^D with a uniform base, and \
                 every other layer must keep the torus (`circular_spline`, `permute`, \
                 `reverse`); layer {pos}, `{}`, does not",
                clip(&l.to_string())
            ),
        }),
    }
}

/// The base a model of `spec` takes when none is asked for: uniform on the
/// torus for a flow on the torus, else the standard normal.
pub(super) fn default_base(spec: &FlowSpec, caller: &str) -> Result<BaseSpec, Error> {
    Ok(if is_torus(spec, caller)? {
        BaseSpec::UniformTorus
    } else {
        BaseSpec::StandardNormal
    })
}

/// Checks that `base` suits `spec`: the torus base for a flow on the
/// torus and only for one.
pub(super) fn check_base(spec: &FlowSpec, base: BaseSpec, caller: &str) -> Result<(), Error> {
    let torus = is_torus(spec, caller)?;
    if torus == (base == BaseSpec::UniformTorus) {
        return Ok(());
    }
    let reason = if torus {
        format!(
            "a flow on the torus (`{}`) needs the base `uniform_torus`",
            clip(&spec.to_string())
        )
    } else {
        "the base `uniform_torus` needs a flow on the torus: `circular_spline` layers, \
         with `permute` or `reverse` between them"
            .to_string()
    };
    Err(Error::Unsupported {
        context: caller.into(),
        reason,
    })
}

/// The error of standardising a model on the torus.
pub(super) fn no_standardization(caller: &str) -> Error {
    Error::Unsupported {
        context: caller.into(),
        reason: "the model is a flow on the torus: its data are angles in [-pi, pi), which a \
                 standardisation would move off the torus; fit it without one"
            .into(),
    }
}

/// Checks that the first `dim` rows of `data` (the samples; a context may
/// follow) are angles in `[−π, π)`, naming the first entry that is not.
pub(super) fn check_angles<T: Real>(
    what: &str,
    data: &DMatrix<T>,
    dim: usize,
) -> Result<(), Error> {
    if data.nrows() < dim {
        return Ok(()); // a shape error, reported by the shape checks
    }
    for (j, col) in data.column_iter().enumerate() {
        let x = &col.as_slice()[..dim];
        if !UniformTorus::contains(x) {
            let i = x
                .iter()
                .position(|v| !UniformTorus::contains(std::slice::from_ref(v)))
                .unwrap_or(0);
            return Err(crate::error::check::invalid(
                "fit",
                &format!("{what}[({i}, {j})]"),
                "an angle in [-pi, pi) (the model is a flow on the torus; wrap angles with \
                 (x + pi).rem_euclid(2 pi) - pi)",
                x[i],
            ));
        }
    }
    Ok(())
}
