//! Streaming writers of data files: samples (one row each) are written as
//! they are made, chunk by chunk, so memory is bounded by the chunk and not
//! by the number of rows.
//!
//! Formats, chosen by extension: `.csv` (comma), `.tsv` (tab), `.txt`
//! (space) with values in Rust's shortest round-trip form, or `.npy`
//! (`float64`, C order, shape `n × D`, NPY format 1.0). NaN is never
//! written: a NaN value is an error.

use std::io::{self, Write};
use std::path::Path;

use nalgebra::DMatrix;

/// The formats a data file can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// Comma-separated text.
    Csv,
    /// Tab-separated text.
    Tsv,
    /// Space-separated text.
    Txt,
    /// NumPy's binary format.
    Npy,
}

impl RowFormat {
    /// The format of `path`, by extension (case-insensitive), if supported.
    pub fn from_extension(path: &Path) -> Option<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") => Some(Self::Csv),
            Some("tsv") => Some(Self::Tsv),
            Some("txt") => Some(Self::Txt),
            Some("npy") => Some(Self::Npy),
            _ => None,
        }
    }

    /// The format of `path`, or the one-line error that names the
    /// supported extensions.
    pub fn of(path: &Path) -> crate::Result<Self> {
        Self::from_extension(path).ok_or_else(|| {
            crate::data_io::DataError::UnsupportedExtension {
                path: path.to_path_buf(),
            }
            .to_string()
        })
    }

    /// The format of an output: by extension, or comma-separated text for a
    /// device or FIFO without one (`--out /dev/stdout`).
    pub fn of_output(out: &crate::output::Output) -> crate::Result<Self> {
        match Self::from_extension(out.path()) {
            None if out.in_place() => Ok(Self::Csv),
            _ => Self::of(out.path()),
        }
    }

    fn delimiter(self) -> Option<u8> {
        match self {
            Self::Csv => Some(b','),
            Self::Tsv => Some(b'\t'),
            Self::Txt => Some(b' '),
            Self::Npy => None,
        }
    }
}

/// Writes `rows` rows of `dim` values each, in chunks.
pub struct RowWriter<'w> {
    out: &'w mut dyn Write,
    format: RowFormat,
    dim: usize,
    remaining: usize,
    written: usize,
}

impl<'w> RowWriter<'w> {
    /// Starts a file of `rows × dim` values: writes the NPY header (a 2-D
    /// array), or the text header row if `header` is given (text formats
    /// only; NPY does not store names).
    pub fn begin(
        out: &'w mut dyn Write,
        format: RowFormat,
        rows: usize,
        dim: usize,
        header: Option<&[String]>,
    ) -> io::Result<Self> {
        Self::start(out, format, rows, dim, header, false)
    }

    /// Starts a file of one value per row under the column name `name`: a
    /// one-column text file with a header row, or a 1-D NPY array.
    pub fn begin_column(
        out: &'w mut dyn Write,
        format: RowFormat,
        rows: usize,
        name: &str,
    ) -> io::Result<Self> {
        Self::start(out, format, rows, 1, Some(&[name.to_string()]), true)
    }

    fn start(
        out: &'w mut dyn Write,
        format: RowFormat,
        rows: usize,
        dim: usize,
        header: Option<&[String]>,
        one_dimensional: bool,
    ) -> io::Result<Self> {
        match (format.delimiter(), header) {
            (None, _) => write_npy_header(out, rows, dim, one_dimensional)?,
            (Some(sep), Some(names)) => {
                if names.len() != dim {
                    return Err(io::Error::other(format!(
                        "header has {} names but the data has {dim} columns",
                        names.len()
                    )));
                }
                if let Some(bad) = names.iter().find(|s| {
                    s.is_empty()
                        || s.contains(['\n', '\r'])
                        || (sep != b',' && s.contains(char::is_whitespace))
                }) {
                    return Err(io::Error::other(format!(
                        "header name `{bad}` cannot be written in this format"
                    )));
                }
                // CSV quotes a name holding a comma or a quote (RFC 4180).
                let cell = |s: &String| {
                    if sep == b',' && s.contains([',', '"']) {
                        format!("\"{}\"", s.replace('"', "\"\""))
                    } else {
                        s.clone()
                    }
                };
                let cells: Vec<String> = names.iter().map(cell).collect();
                out.write_all(cells.join(&(sep as char).to_string()).as_bytes())?;
                out.write_all(b"\n")?;
            }
            (Some(_), None) => {}
        }
        Ok(Self {
            out,
            format,
            dim,
            remaining: rows,
            written: 0,
        })
    }

    /// Writes the columns of `chunk` (`dim × k`) as `k` rows.
    pub fn columns(&mut self, chunk: &DMatrix<f64>) -> io::Result<()> {
        if chunk.nrows() != self.dim || chunk.ncols() > self.remaining {
            return Err(io::Error::other(format!(
                "internal: a chunk of {}×{} for a file of {} columns with {} rows to go",
                chunk.nrows(),
                chunk.ncols(),
                self.dim,
                self.remaining
            )));
        }
        if let Some(k) = chunk.iter().position(|v| v.is_nan()) {
            return Err(io::Error::other(format!(
                "row {}, column {} is NaN; refusing to write it",
                self.written + k / self.dim + 1,
                k % self.dim + 1
            )));
        }
        match self.format.delimiter() {
            None => {
                let mut bytes = Vec::with_capacity(chunk.len() * 8);
                for v in chunk.iter() {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
                self.out.write_all(&bytes)?;
            }
            Some(sep) => {
                let mut line = String::new();
                for sample in chunk.column_iter() {
                    line.clear();
                    for (i, v) in sample.iter().enumerate() {
                        if i > 0 {
                            line.push(sep as char);
                        }
                        line.push_str(&v.to_string());
                    }
                    line.push('\n');
                    self.out.write_all(line.as_bytes())?;
                }
            }
        }
        self.remaining -= chunk.ncols();
        self.written += chunk.ncols();
        Ok(())
    }

    /// Ends the file; every announced row must have been written.
    pub fn finish(self) -> io::Result<()> {
        if self.remaining != 0 {
            return Err(io::Error::other(format!(
                "internal: {} rows announced but not written",
                self.remaining
            )));
        }
        self.out.flush()
    }
}

/// The NPY 1.0 header of a little-endian `float64` C-order `rows × dim`
/// array, or of a 1-D array of `rows` values.
fn write_npy_header(
    out: &mut dyn Write,
    rows: usize,
    dim: usize,
    one_dimensional: bool,
) -> io::Result<()> {
    let shape = if one_dimensional {
        format!("({rows},)")
    } else {
        format!("({rows}, {dim})")
    };
    let mut dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + dict + '\n', padded to 64.
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let len = u16::try_from(dict.len()).map_err(io::Error::other)?;
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(dict.as_bytes())
}

/// The one-shot form: `data` (`D × n`) as a whole file.
pub fn write_all_rows(
    out: &mut dyn Write,
    format: RowFormat,
    data: &DMatrix<f64>,
    header: Option<&[String]>,
) -> io::Result<()> {
    let mut w = RowWriter::begin(out, format, data.ncols(), data.nrows(), header)?;
    w.columns(data)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_readable() {
        let data = DMatrix::from_fn(3, 5, |i, j| (i * 10 + j) as f64 - 7.5);
        let mut bytes = Vec::new();
        write_all_rows(&mut bytes, RowFormat::Npy, &data, None).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[5, 3]);
        let values: Vec<f64> = npy.into_vec().unwrap();
        assert_eq!(values, data.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn chunks_give_the_same_file_as_one_write() {
        let data = DMatrix::from_fn(2, 7, |i, j| 0.1 * (i as f64) - (j as f64) / 3.0);
        for format in [RowFormat::Csv, RowFormat::Npy, RowFormat::Txt] {
            let mut whole = Vec::new();
            write_all_rows(&mut whole, format, &data, None).unwrap();
            let mut parts = Vec::new();
            let mut w = RowWriter::begin(&mut parts, format, 7, 2, None).unwrap();
            w.columns(&data.columns(0, 3).clone_owned()).unwrap();
            w.columns(&data.columns(3, 4).clone_owned()).unwrap();
            w.finish().unwrap();
            assert_eq!(whole, parts);
        }
    }

    #[test]
    fn nan_is_never_written() {
        let mut data = DMatrix::from_element(2, 3, 1.0);
        data[(1, 2)] = f64::NAN;
        let mut bytes = Vec::new();
        let e = write_all_rows(&mut bytes, RowFormat::Csv, &data, None).unwrap_err();
        assert!(e.to_string().contains("row 3, column 2 is NaN"), "{e}");
        assert!(!String::from_utf8_lossy(&bytes).contains("NaN"));
    }

    #[test]
    fn missing_rows_are_an_error() {
        let mut bytes = Vec::new();
        let w = RowWriter::begin(&mut bytes, RowFormat::Csv, 2, 1, None).unwrap();
        assert!(w.finish().is_err());
    }
}
