//! Reading and writing data files.
//!
//! Files hold one ROW per sample; the library works with `DMatrix<f64>` of
//! shape `D × n`, one COLUMN per sample. Everything here converts between the
//! two.
//!
//! Formats, chosen by extension (case-insensitive):
//! - `.csv`, `.tsv`, `.txt`: UTF-8 text (an optional byte-order mark is
//!   skipped). Comma separated if the first non-empty line contains a comma,
//!   otherwise whitespace separated (whichever the extension). Blank lines are
//!   skipped, and so are lines whose first character is `#` (comments, as
//!   NumPy's `savetxt` writes them). Windows line endings work.
//!
//!   The first non-empty row is a header exactly when every cell of it is a
//!   name: non-empty, not a number (`inf` and `nan` are numbers), and not
//!   starting like one (a digit, `+`, `-` or `.`: `0x10` and `1e` are
//!   malformed numbers, not names). Otherwise it is data, and every bad cell
//!   is reported at its real line and column (the column counts cells, from
//!   1).
//! - `.npy`: NumPy arrays of `float32` or `float64` (little- or big-endian),
//!   1-D (one column) or 2-D (`n × D`, C or Fortran order). The header is
//!   parsed here, every size in it is computed with checked arithmetic and
//!   compared with the bytes the file really holds before anything is
//!   allocated.
//!
//! Only regular files are read (not directories, FIFOs or devices), and never
//! more bytes than the file's size. The memory for the text and the values
//! is checked against [`normflow::resources::memory_limit`] before it is
//! allocated, and an allocation that fails anyway is an error, not an abort.
//!
//! Writes go to a temporary file in the target's directory that is then
//! renamed over the target, so an interrupted run never leaves a half-written
//! file in place of a good one; existing files are only replaced on request.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use nalgebra::DMatrix;

// The formats are those of the writers (`crate::rows`).
use crate::rows::RowFormat as Format;

mod npy;
mod text;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reliability;

pub use write::{write_column, write_data};

const SUPPORTED: &str = ".csv, .tsv, .txt, .npy";

/// Where a bad value sits: a 1-based line of a text file or a 1-based row
/// (sample) of an NPY array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line of a text file.
    Line(usize),
    /// A 1-based row (sample) of an NPY array.
    Row(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(l) => write!(f, "line {l}"),
            Location::Row(r) => write!(f, "row {r}"),
        }
    }
}

/// Everything that can go wrong reading or writing a data file. The
/// `Display` form is one line and starts with the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    /// The file could not be read (missing, permissions, a directory, a
    /// FIFO, too large for memory, ...).
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file could not be written.
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Writing would replace an existing file and `overwrite` was false.
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The extension is not one of `.csv`, `.tsv`, `.txt`, `.npy`.
    UnsupportedExtension {
        /// The file.
        path: PathBuf,
    },
    /// No data rows (empty, blank lines only, zero-size array).
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A text file with a header row and no data rows.
    HeaderOnly {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: usize,
    },
    /// A text file that is not UTF-8.
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the first invalid byte.
        line: usize,
        /// The 1-based character position of that byte within its line.
        column: usize,
        /// The first invalid byte.
        byte: u8,
    },
    /// A row with a different number of columns than the first row.
    Ragged {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the row.
        line: usize,
        /// How many cells the row has.
        found: usize,
        /// How many cells the first row has.
        expected: usize,
    },
    /// An empty cell where a number was expected.
    EmptyCell {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based cell number within the line.
        column: usize,
    },
    /// A cell that does not parse as a number.
    NotANumber {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based cell number within the line.
        column: usize,
        /// The cell as written.
        text: String,
    },
    /// A NaN or infinite value.
    NotFinite {
        /// The file.
        path: PathBuf,
        /// The line (text) or row (NPY) of the value.
        at: Location,
        /// The 1-based column.
        column: usize,
        /// The value as written (text) or printed (NPY).
        text: String,
    },
    /// Not a readable NPY file (bad magic, bad header, a shape that does not
    /// match the data).
    MalformedNpy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An NPY dtype other than float32/float64.
    NpyDtype {
        /// The file.
        path: PathBuf,
        /// The dtype as written in the header.
        descr: String,
    },
    /// An NPY array that is not 1-D or 2-D.
    NpyRank {
        /// The file.
        path: PathBuf,
        /// The number of dimensions.
        rank: usize,
    },
    /// A well-formed NPY shape that holds no usable data (e.g. no columns).
    NpyShape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A header that does not fit the data or the format.
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Error messages must stay on one line whatever the OS or a library says.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text from the input quoted in a message: one line, control characters
/// escaped, clipped to a readable length.
pub(crate) fn quote(s: &str) -> String {
    normflow::error::clip(&printable(&one_line(s)))
}

/// Control characters (a NUL in a cell, an escape in a file name) written
/// as escapes, so that a message prints as one clean line.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A path as shown at the start of a message (one line whatever its name).
fn shown(path: &Path) -> String {
    printable(&path.display().to_string())
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DataError::*;
        match self {
            Read { path, message } => {
                write!(f, "{}: cannot read: {}", shown(path), one_line(message))
            }
            Write { path, message } => {
                write!(f, "{}: cannot write: {}", shown(path), one_line(message))
            }
            Exists { path } => write!(
                f,
                "{}: file already exists (pass --force to overwrite it)",
                shown(path)
            ),
            UnsupportedExtension { path } => {
                match path.extension() {
                    Some(ext) => write!(
                        f,
                        "{}: unsupported file extension `.{}`",
                        shown(path),
                        quote(&ext.to_string_lossy())
                    )?,
                    None => write!(f, "{}: no file extension", shown(path))?,
                }
                write!(f, " (supported: {SUPPORTED})")
            }
            Empty { path } => write!(f, "{}: no data rows", shown(path)),
            HeaderOnly { path, line } => {
                write!(f, "{}: no data rows (line {line} is a header)", shown(path))
            }
            NotUtf8 {
                path,
                line,
                column,
                byte,
            } => write!(
                f,
                "{}: line {line}, character {column}: byte 0x{byte:02X} is not valid UTF-8 \
                 (save the file as UTF-8 text)",
                shown(path)
            ),
            Ragged {
                path,
                line,
                found,
                expected,
            } => write!(
                f,
                "{}: line {line} has {found} columns, expected {expected}",
                shown(path)
            ),
            EmptyCell { path, line, column } => write!(
                f,
                "{}: line {line}, column {column}: empty cell \
                 (expected a number; a trailing separator?)",
                shown(path)
            ),
            NotANumber {
                path,
                line,
                column,
                text,
            } => write!(
                f,
                "{}: line {line}, column {column}: `{}` is not a number",
                shown(path),
                quote(text)
            ),
            NotFinite {
                path,
                at,
                column,
                text,
            } if text.to_ascii_lowercase().contains("nan") => write!(
                // The value is not echoed: no output of the tool spells NaN.
                f,
                "{}: {at}, column {column}: a not-a-number value; expected a finite number",
                shown(path),
            ),
            NotFinite {
                path,
                at,
                column,
                text,
            } => write!(
                f,
                "{}: {at}, column {column}: `{}` is not a finite number",
                shown(path),
                quote(text)
            ),
            MalformedNpy { path, message } => write!(
                f,
                "{}: not a valid NPY file: {}",
                shown(path),
                one_line(message)
            ),
            NpyDtype { path, descr } => write!(
                f,
                "{}: unsupported NPY dtype {} (expected float32 or float64)",
                shown(path),
                quote(descr)
            ),
            NpyRank { path, rank } => write!(
                f,
                "{}: unsupported NPY array with {rank} dimensions (expected 1 or 2)",
                shown(path)
            ),
            NpyShape { path, message } => write!(f, "{}: {}", shown(path), one_line(message)),
            BadHeader { path, message } => {
                write!(f, "{}: {}", shown(path), one_line(message))
            }
        }
    }
}

impl std::error::Error for DataError {}

fn format_of(path: &Path) -> Result<Format, DataError> {
    Format::from_extension(path).ok_or_else(|| DataError::UnsupportedExtension {
        path: path.to_path_buf(),
    })
}

/// Reads a data file (one row per sample) into a `D × n` matrix (one column
/// per sample). The format is chosen by extension; see the module docs.
///
/// Every failure is a [`DataError`] whose `Display` is one line starting
/// with the path; the matrix returned has at least one row and one column,
/// and only finite values.
///
/// The memory it needs (the text, the values) is checked against
/// [`normflow::resources::memory_limit`] before it is allocated.
pub fn read_data(path: &Path) -> Result<DMatrix<f64>, DataError> {
    read_data_within(path, normflow::resources::memory_limit())
}

/// [`read_data`] with an explicit memory limit in bytes.
pub(crate) fn read_data_within(path: &Path, limit: u64) -> Result<DMatrix<f64>, DataError> {
    let format = format_of(path)?;
    let (file, len) = open_regular(path)?;
    if format == Format::Npy {
        npy::read_npy(path, &mut BufReader::new(file), len, limit)
    } else {
        let bytes = read_all(path, file, len, limit)?;
        let text = text::decode(path, &bytes)?;
        text::read_text(path, text, limit.saturating_sub(len))
    }
}

/// Refuses a request of `bytes` (`None`: over 2^64) over `limit`, with the
/// library's sentence naming both.
fn check_memory(
    path: &Path,
    what: impl FnOnce() -> String,
    bytes: Option<u64>,
    limit: u64,
) -> Result<(), DataError> {
    normflow::resources::check_memory_with_limit(what, bytes, limit)
        .map_err(|e| read_error(path, e.to_string()))
}

fn read_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Read {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Opens `path` if it is a regular file, and returns it with its size.
///
/// The kind is checked before opening, since opening a FIFO blocks until a
/// writer appears, and again on the open file.
fn open_regular(path: &Path) -> Result<(File, u64), DataError> {
    let check = |meta: &fs::Metadata| -> Result<(), DataError> {
        if meta.is_dir() {
            Err(read_error(path, "it is a directory, not a data file"))
        } else if !meta.is_file() {
            Err(read_error(
                path,
                "not a regular file (a FIFO, socket or device); give a data file",
            ))
        } else {
            Ok(())
        }
    };
    let io_err = |e: io::Error| read_error(path, e.to_string());
    check(&fs::metadata(path).map_err(io_err)?)?;
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    check(&meta)?;
    Ok((file, meta.len()))
}

/// Reads at most `len` bytes (the file's size when opened), asking for the
/// memory first so that a file too large for it is an error.
fn read_all(path: &Path, file: File, len: u64, limit: u64) -> Result<Vec<u8>, DataError> {
    check_memory(path, || "the file".into(), Some(len), limit)?;
    let too_large = || {
        read_error(
            path,
            format!(
                "the file is {}, more than the memory available",
                normflow::error::human_bytes(len)
            ),
        )
    };
    let capacity = usize::try_from(len).map_err(|_| too_large())?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(capacity).map_err(|_| too_large())?;
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, e.to_string()))?;
    Ok(bytes)
}
