//! Reading model files on the command line.

use std::path::Path;

use nalgebra::DMatrix;
use normflow::train::FlowModel;

use crate::Result;

/// Whether the model file at `path` holds a conditional model.
pub fn is_conditional(path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: cannot read: {}",
            path.display(),
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        )
    })?;
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        // Let the model loader report what is wrong with the file.
        Err(_) => return Ok(false),
    };
    Ok(value.get("format").and_then(|v| v.as_str()) == Some("normflow-conditional-model"))
}

/// Loads an unconditional model. Every command first asks
/// [`is_conditional`] and gives a conditional model its own path (or its
/// command-line advice), so the file is not inspected twice here.
pub fn load(path: &Path) -> Result<FlowModel<f64>> {
    FlowModel::<f64>::load(path).map_err(|e| e.to_string())
}

/// Checks that data read from `path` has the model's dimension.
pub fn check_dim(dim: usize, x: &DMatrix<f64>, path: &Path) -> Result<()> {
    if x.nrows() != dim {
        return Err(format!(
            "{}: the data has {} columns but the model is {dim}-dimensional",
            path.display(),
            x.nrows(),
        ));
    }
    Ok(())
}

/// Refuses a fit whose batches would not fit in memory (the flow's own
/// parameters are checked when it is built).
pub fn check_training_memory(
    spec: &normflow::FlowSpec,
    dim: usize,
    context_dim: usize,
    batch: usize,
    scalar_bytes: usize,
) -> Result<()> {
    let footprint = spec
        .footprint(dim, context_dim)
        .map_err(|e| e.to_string())?;
    normflow::resources::check_memory(
        || {
            format!(
                "training `{}` in {dim} dimensions with batches of {batch}",
                normflow::error::clip(&spec.to_string())
            )
        },
        footprint.training_bytes(batch, scalar_bytes),
    )
    .map_err(|e| e.to_string())
}

/// Memory one chunk of evaluation or sampling may take.
const CHUNK_BYTES: u64 = 64_000_000;

/// How many samples to evaluate or draw at a time for `spec` in `dim`
/// dimensions: at most `max`, and few enough that a chunk's intermediate
/// values take about 64 MB at most (at least 1).
pub fn chunk_for(spec: &normflow::FlowSpec, dim: usize, context_dim: usize, max: usize) -> usize {
    let per_sample = spec
        .footprint(dim, context_dim)
        .ok()
        .and_then(|f| f.evaluation_scalars_per_sample())
        .and_then(|s| s.checked_add(2 * dim as u64 + context_dim as u64))
        .and_then(|s| s.checked_mul(8));
    match per_sample {
        Some(b) if b > 0 => usize::try_from(CHUNK_BYTES / b)
            .unwrap_or(max)
            .clamp(1, max),
        _ => 1,
    }
}
