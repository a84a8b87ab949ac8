//! Per-dimension standardisations folded into a model: how they are
//! estimated from data and applied.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::validate;
use crate::{Error, Real};

/// A per-dimension affine standardisation folded into a model:
/// `x = mean + std ⊙ y`, so the flow sees `y = (x − mean)/std` and the model's
/// densities are in data units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    /// Per-dimension mean of the training data.
    pub mean: Vec<f64>,
    /// Per-dimension standard deviation of the training data (positive).
    pub std: Vec<f64>,
}

/// Per-dimension mean and standard deviation of the rows of `m` (`D × n`,
/// finite, `n ≥ 1`), computed on each row scaled by its largest magnitude so
/// that nothing overflows; a row with zero spread gets standard deviation 1.
/// A standard deviation or mean that is not finite (or a deviation not
/// positive) in the precision `T` is an error naming the row (`what` names
/// the data, `context` the caller).
pub(crate) fn standardization_of<T: Real>(
    m: &DMatrix<T>,
    context: &str,
    what: &str,
) -> Result<Standardization, Error> {
    let n = m.ncols() as f64;
    let mut mean = Vec::with_capacity(m.nrows());
    let mut std = Vec::with_capacity(m.nrows());
    for (i, row) in m.row_iter().enumerate() {
        let scale = row.iter().fold(0.0_f64, |a, v| a.max(v.to_f64().abs()));
        let (mu, sd) = if scale == 0.0 {
            (0.0, 1.0)
        } else {
            let y_mean = row.iter().map(|v| v.to_f64() / scale).sum::<f64>() / n;
            let y_var = row
                .iter()
                .map(|v| (v.to_f64() / scale - y_mean).powi(2))
                .sum::<f64>()
                / n;
            let sd = if y_var > 0.0 {
                y_var.sqrt() * scale
            } else {
                1.0
            };
            (y_mean * scale, sd)
        };
        let ok_mean = validate::finite_in::<T>(mu).is_some();
        let ok_std = validate::finite_in::<T>(sd).is_some_and(|s| s > T::zero());
        if !(ok_mean && ok_std) {
            return Err(crate::error::check::invalid(
                context,
                &format!("{what}, dimension {i}"),
                "data whose mean and standard deviation are finite, the deviation positive, in the model's precision",
                format!(
                    "mean {}, standard deviation {}",
                    validate::num(mu),
                    validate::num(sd)
                ),
            ));
        }
        mean.push(mu);
        std.push(sd);
    }
    Ok(Standardization { mean, std })
}

/// `(x − mean)/std` per row, or `x` itself without a standardisation. An
/// entry whose difference overflows is computed as `x/std − mean/std`.
pub(crate) fn apply_standardization<T: Real>(
    s: &Option<Standardization>,
    x: &DMatrix<T>,
) -> DMatrix<T> {
    match s {
        None => x.clone(),
        Some(s) => DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            let (m, sd) = (T::lit(s.mean[i]), T::lit(s.std[i]));
            let y = (x[(i, j)] - m) / sd;
            if y.is_finite() {
                y
            } else {
                x[(i, j)] / sd - m / sd
            }
        }),
    }
}

/// `mean + std ⊙ y` per row: the inverse of [`apply_standardization`].
pub(crate) fn undo_standardization<T: Real>(
    s: &Option<Standardization>,
    y: DMatrix<T>,
) -> DMatrix<T> {
    match s {
        None => y,
        Some(s) => DMatrix::from_fn(y.nrows(), y.ncols(), |i, j| {
            T::lit(s.mean[i]) + T::lit(s.std[i]) * y[(i, j)]
        }),
    }
}

/// `Σᵢ log stdᵢ`: the log-determinant of the standardisation's scaling.
pub(crate) fn log_scale_sum<T: Real>(s: &Option<Standardization>) -> T {
    T::lit(
        s.as_ref()
            .map_or(0.0, |s| s.std.iter().map(|v| v.ln()).sum()),
    )
}
