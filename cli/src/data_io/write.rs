//! Writing whole data files (one row per sample): the one-shot form of
//! [`crate::rows`], through the output guard of [`crate::output`].

use std::path::Path;

use nalgebra::DMatrix;

use super::{DataError, Format, format_of};
use crate::output::Output;
use crate::rows::{self, RowWriter};

/// Writes a `D × n` matrix as a file with one row per sample, chosen by
/// extension: text with an optional header row (`.csv` comma, `.tsv` tab,
/// `.txt` space separated; values in `{}` form, which round-trips), or `.npy`
/// (`float64`, C order, shape `n × D`; the header is not stored).
///
/// Refuses to replace an existing file unless `overwrite`, and replaces it
/// atomically (temporary file + rename) when it does; NaN is never written.
pub fn write_data(
    path: &Path,
    data: &DMatrix<f64>,
    header: Option<&[String]>,
    overwrite: bool,
) -> Result<(), DataError> {
    let format = format_of(path)?;
    if let Some(names) = header {
        check_header(path, format, names, data.nrows())?;
    }
    let out = guard(path, overwrite)?;
    out.write(|w| rows::write_all_rows(w, format, data, header))
        .map_err(|e| write_error(path, e))
}

/// Writes one value per sample (e.g. log-densities) under the column name
/// `name`: a one-column text file with a header row, or a 1-D `.npy` array
/// (the name is not stored). Same overwrite and atomicity rules as
/// [`write_data`].
pub fn write_column(
    path: &Path,
    values: &[f64],
    name: &str,
    overwrite: bool,
) -> Result<(), DataError> {
    let format = format_of(path)?;
    let out = guard(path, overwrite)?;
    let data = DMatrix::from_row_slice(1, values.len(), values);
    out.write(|w| {
        let mut rows = RowWriter::begin_column(w, format, values.len(), name)?;
        rows.columns(&data)?;
        rows.finish()
    })
    .map_err(|e| write_error(path, e))
}

/// The output guard for `path` (no inputs to protect here).
fn guard(path: &Path, overwrite: bool) -> Result<Output, DataError> {
    if !overwrite && std::fs::symlink_metadata(path).is_ok() {
        return Err(DataError::Exists {
            path: path.to_path_buf(),
        });
    }
    Output::check(path, overwrite, &[]).map_err(|e| write_error(path, e))
}

/// The guard's message (which starts with the path) as a [`DataError`].
fn write_error(path: &Path, message: String) -> DataError {
    let prefix = format!("{}: ", path.display());
    let message = message.strip_prefix(&prefix).unwrap_or(&message);
    let message = message.strip_prefix("cannot write: ").unwrap_or(message);
    DataError::Write {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn check_header(path: &Path, format: Format, names: &[String], d: usize) -> Result<(), DataError> {
    let bad = |message: String| {
        Err(DataError::BadHeader {
            path: path.to_path_buf(),
            message,
        })
    };
    if names.len() != d {
        return bad(format!(
            "header has {} names but the data has {d} columns",
            names.len()
        ));
    }
    if matches!(format, Format::Tsv | Format::Txt)
        && let Some(name) = names
            .iter()
            .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return bad(format!(
            "header name `{name}` is empty or contains whitespace, \
             which a whitespace-separated file cannot hold (use .csv)"
        ));
    }
    Ok(())
}
