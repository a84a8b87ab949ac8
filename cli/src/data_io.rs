//! Reading and writing data files.
//!
//! Files hold one ROW per sample; the library works with `DMatrix<f64>` of
//! shape `D × n`, one COLUMN per sample. Everything here converts between the
//! two.
//!
//! Formats, chosen by extension:
//! - `.csv`, `.tsv`, `.txt`: text. Comma separated if the first non-empty
//!   line contains a comma, otherwise whitespace separated (whichever the
//!   extension). An optional header row is detected automatically; blank lines
//!   are skipped.
//! - `.npy`: NumPy arrays of `float32` or `float64`, 1-D (one column) or 2-D
//!   (`n × D`, C or Fortran order).
//!
//! Writes go to a temporary file in the target's directory that is then
//! renamed over the target, so an interrupted run never leaves a half-written
//! file in place of a good one; existing files are only replaced on request.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::DMatrix;
use npyz::WriterBuilder;

const SUPPORTED: &str = ".csv, .tsv, .txt, .npy";

/// Where a bad value sits: a 1-based line of a text file or a 1-based row
/// (sample) of an NPY array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Line(usize),
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
    /// The file could not be read (missing, permissions, not UTF-8, ...).
    Read { path: PathBuf, message: String },
    /// The file could not be written.
    Write { path: PathBuf, message: String },
    /// Writing would replace an existing file and `overwrite` was false.
    Exists { path: PathBuf },
    /// The extension is not one of [`SUPPORTED`].
    UnsupportedExtension { path: PathBuf },
    /// No data rows (empty, blank lines only, header only, zero-size array).
    Empty { path: PathBuf },
    /// A row with a different number of columns than the first row.
    Ragged {
        path: PathBuf,
        line: usize,
        found: usize,
        expected: usize,
    },
    /// A cell that does not parse as a number.
    NotANumber {
        path: PathBuf,
        line: usize,
        column: usize,
        text: String,
    },
    /// A NaN or infinite value.
    NotFinite {
        path: PathBuf,
        at: Location,
        column: usize,
        text: String,
    },
    /// Not a readable NPY file (bad magic, bad header, truncated data).
    MalformedNpy { path: PathBuf, message: String },
    /// An NPY dtype other than float32/float64.
    NpyDtype { path: PathBuf, descr: String },
    /// An NPY array that is not 1-D or 2-D.
    NpyRank { path: PathBuf, rank: usize },
    /// A header that does not fit the data or the format.
    BadHeader { path: PathBuf, message: String },
}

/// Error messages must stay on one line whatever the OS or a library says.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DataError::*;
        match self {
            Read { path, message } => {
                write!(f, "{}: cannot read: {}", path.display(), one_line(message))
            }
            Write { path, message } => {
                write!(f, "{}: cannot write: {}", path.display(), one_line(message))
            }
            Exists { path } => write!(
                f,
                "{}: file already exists (pass --force to overwrite it)",
                path.display()
            ),
            UnsupportedExtension { path } => {
                match path.extension() {
                    Some(ext) => write!(
                        f,
                        "{}: unsupported file extension `.{}`",
                        path.display(),
                        ext.to_string_lossy()
                    )?,
                    None => write!(f, "{}: no file extension", path.display())?,
                }
                write!(f, " (supported: {SUPPORTED})")
            }
            Empty { path } => write!(f, "{}: no data rows", path.display()),
            Ragged {
                path,
                line,
                found,
                expected,
            } => write!(
                f,
                "{}: line {line} has {found} columns, expected {expected}",
                path.display()
            ),
            NotANumber {
                path,
                line,
                column,
                text,
            } => write!(
                f,
                "{}: line {line}, column {column}: `{}` is not a number",
                path.display(),
                one_line(text)
            ),
            NotFinite {
                path,
                at,
                column,
                text,
            } => write!(
                f,
                "{}: {at}, column {column}: `{text}` is not a finite number",
                path.display()
            ),
            MalformedNpy { path, message } => write!(
                f,
                "{}: not a valid NPY file: {}",
                path.display(),
                one_line(message)
            ),
            NpyDtype { path, descr } => write!(
                f,
                "{}: unsupported NPY dtype {descr} (expected float32 or float64)",
                path.display()
            ),
            NpyRank { path, rank } => write!(
                f,
                "{}: unsupported NPY array with {rank} dimensions (expected 1 or 2)",
                path.display()
            ),
            BadHeader { path, message } => {
                write!(f, "{}: {}", path.display(), one_line(message))
            }
        }
    }
}

impl std::error::Error for DataError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Tsv,
    Txt,
    Npy,
}

fn format_of(path: &Path) -> Result<Format, DataError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("tsv") => Ok(Format::Tsv),
        Some("txt") => Ok(Format::Txt),
        Some("npy") => Ok(Format::Npy),
        _ => Err(DataError::UnsupportedExtension {
            path: path.to_path_buf(),
        }),
    }
}

/// Reads a data file (one row per sample) into a `D × n` matrix (one column
/// per sample). The format is chosen by extension; see the module docs.
pub fn read_data(path: &Path) -> Result<DMatrix<f64>, DataError> {
    let format = format_of(path)?;
    let read_err = |e: io::Error| DataError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if format == Format::Npy {
        let bytes = fs::read(path).map_err(read_err)?;
        read_npy(path, &bytes)
    } else {
        let text = fs::read_to_string(path).map_err(read_err)?;
        read_text(path, &text)
    }
}

fn is_number(field: &str) -> bool {
    field.parse::<f64>().is_ok()
}

/// Accumulates the rows of a text file, deciding on the header once the
/// second non-empty row is seen.
struct Table<'p> {
    path: &'p Path,
    /// The first non-empty row, held back until we know whether it is a header.
    first: Option<(usize, Vec<String>)>,
    decided: bool,
    columns: usize,
    /// Row-major values, which is exactly the column-major storage of `D × n`.
    values: Vec<f64>,
    rows: usize,
}

impl<'p> Table<'p> {
    fn new(path: &'p Path) -> Self {
        Table {
            path,
            first: None,
            decided: false,
            columns: 0,
            values: Vec::new(),
            rows: 0,
        }
    }

    fn push(&mut self, line: usize, fields: &[&str]) -> Result<(), DataError> {
        if self.decided {
            return self.add(line, fields);
        }
        let Some((first_line, first)) = self.first.take() else {
            self.first = Some((line, fields.iter().map(|s| s.to_string()).collect()));
            return Ok(());
        };
        self.decided = true;
        self.columns = first.len();
        let header = !first.iter().all(|f| is_number(f)) && fields.iter().all(|f| is_number(f));
        if !header {
            let first: Vec<&str> = first.iter().map(String::as_str).collect();
            self.add(first_line, &first)?;
        }
        self.add(line, fields)
    }

    fn add(&mut self, line: usize, fields: &[&str]) -> Result<(), DataError> {
        if fields.len() != self.columns {
            return Err(DataError::Ragged {
                path: self.path.to_path_buf(),
                line,
                found: fields.len(),
                expected: self.columns,
            });
        }
        for (c, field) in fields.iter().enumerate() {
            let value: f64 = field.parse().map_err(|_| DataError::NotANumber {
                path: self.path.to_path_buf(),
                line,
                column: c + 1,
                text: field.to_string(),
            })?;
            if !value.is_finite() {
                return Err(DataError::NotFinite {
                    path: self.path.to_path_buf(),
                    at: Location::Line(line),
                    column: c + 1,
                    text: field.to_string(),
                });
            }
            self.values.push(value);
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<DMatrix<f64>, DataError> {
        if let Some((line, first)) = self.first.take() {
            // A single non-empty line: a header (and no data) if it is not all
            // numbers, otherwise the only data row.
            if first.iter().all(|f| is_number(f)) {
                self.columns = first.len();
                let first: Vec<&str> = first.iter().map(String::as_str).collect();
                self.add(line, &first)?;
            }
        }
        if self.rows == 0 || self.columns == 0 {
            return Err(DataError::Empty {
                path: self.path.to_path_buf(),
            });
        }
        Ok(DMatrix::from_vec(self.columns, self.rows, self.values))
    }
}

fn read_text(path: &Path, text: &str) -> Result<DMatrix<f64>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let comma = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.contains(','));
    let mut table = Table::new(path);
    if comma {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let bytes = text.as_bytes();
        let (mut line, mut counted) = (1, 0);
        for record in reader.records() {
            let record = record.map_err(|e| DataError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            if record.len() == 1 && record[0].is_empty() {
                continue; // a line of spaces only
            }
            // The csv crate's own line count misses skipped blank lines:
            // count newlines up to the record's first byte instead.
            let mut start = record.position().map_or(0, |p| p.byte() as usize);
            while matches!(bytes.get(start), Some(b'\n' | b'\r')) {
                start += 1;
            }
            line += bytes[counted..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted = start;
            let fields: Vec<&str> = record.iter().collect();
            table.push(line, &fields)?;
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields.is_empty() {
                table.push(i + 1, &fields)?;
            }
        }
    }
    table.finish()
}

fn read_npy(path: &Path, bytes: &[u8]) -> Result<DMatrix<f64>, DataError> {
    let malformed = |e: io::Error| DataError::MalformedNpy {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let npy = npyz::NpyFile::new(bytes).map_err(malformed)?;
    let shape = npy.shape().to_vec();
    let order = npy.order();
    let (n, d) = match shape[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => {
            return Err(DataError::NpyRank {
                path: path.to_path_buf(),
                rank: shape.len(),
            });
        }
    };
    let values: Vec<f64> = match npy.try_data::<f64>() {
        Ok(reader) => reader.collect::<io::Result<_>>().map_err(malformed)?,
        Err(npy) => match npy.try_data::<f32>() {
            Ok(reader) => reader
                .map(|v| v.map(f64::from))
                .collect::<io::Result<_>>()
                .map_err(malformed)?,
            Err(npy) => {
                return Err(DataError::NpyDtype {
                    path: path.to_path_buf(),
                    descr: npy.dtype().descr(),
                });
            }
        },
    };
    let (n, d) = (n as usize, d as usize);
    if n == 0 || d == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    // C order (and 1-D): sample-contiguous, i.e. the column-major storage of
    // `D × n`. Fortran order: the column-major storage of `n × D`.
    let data = if order == npyz::Order::Fortran && d > 1 {
        DMatrix::from_vec(n, d, values).transpose()
    } else {
        DMatrix::from_vec(d, n, values)
    };
    if let Some(k) = data.iter().position(|v| !v.is_finite()) {
        return Err(DataError::NotFinite {
            path: path.to_path_buf(),
            at: Location::Row(k / d + 1),
            column: k % d + 1,
            text: data[k].to_string(),
        });
    }
    Ok(data)
}

/// Writes a `D × n` matrix as a file with one row per sample, chosen by
/// extension: text with an optional header row (`.csv` comma, `.tsv` tab,
/// `.txt` space separated; values in `{}` form, which round-trips), or `.npy`
/// (`float64`, C order, shape `n × D`; the header is not stored).
///
/// Refuses to replace an existing file unless `overwrite`, and replaces it
/// atomically (temporary file + rename) when it does.
pub fn write_data(
    path: &Path,
    data: &DMatrix<f64>,
    header: Option<&[String]>,
    overwrite: bool,
) -> Result<(), DataError> {
    let format = format_of(path)?;
    let (d, n) = data.shape();
    if let Some(names) = header {
        check_header(path, format, names, d)?;
    }
    write_atomically(path, overwrite, |out| match format {
        Format::Npy => {
            let mut writer = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .shape(&[n as u64, d as u64])
                .writer(out)
                .begin_nd()?;
            // Column-major `D × n` storage is C-order `n × D`.
            writer.extend(data.iter().copied())?;
            writer.finish()
        }
        Format::Csv | Format::Tsv | Format::Txt => {
            let delimiter = match format {
                Format::Csv => b',',
                Format::Tsv => b'\t',
                _ => b' ',
            };
            let mut writer = csv::WriterBuilder::new()
                .delimiter(delimiter)
                .from_writer(out);
            if let Some(names) = header {
                writer.write_record(names)?;
            }
            for sample in data.column_iter() {
                writer.write_record(sample.iter().map(|v| v.to_string()))?;
            }
            writer.flush()
        }
    })
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
    if format_of(path)? == Format::Npy {
        return write_atomically(path, overwrite, |out| {
            let mut writer = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .shape(&[values.len() as u64])
                .writer(out)
                .begin_nd()?;
            writer.extend(values.iter().copied())?;
            writer.finish()
        });
    }
    let data = DMatrix::from_row_slice(1, values.len(), values);
    write_data(path, &data, Some(&[name.to_string()]), overwrite)
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

/// Writes through `body` into a fresh temporary file next to `path`, then
/// renames it over `path`. With `overwrite` false an existing `path` is an
/// error (checked before writing and again just before the rename).
fn write_atomically<F>(path: &Path, overwrite: bool, body: F) -> Result<(), DataError>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let write_err = |e: io::Error| DataError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let refuse_existing = || -> Result<(), DataError> {
        // `symlink_metadata`: a dangling symlink is an existing entry too.
        if !overwrite && fs::symlink_metadata(path).is_ok() {
            return Err(DataError::Exists {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    };
    refuse_existing()?;
    let Some(file_name) = path.file_name() else {
        return Err(write_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        )));
    };
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(write_err)?;
    let mut out = BufWriter::new(file);
    let written = body(&mut out)
        .and_then(|()| out.flush())
        .and_then(|()| out.get_ref().sync_all())
        .map_err(write_err)
        .and_then(|()| refuse_existing())
        .and_then(|()| fs::rename(&tmp, path).map_err(write_err));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("normflow-cli-data-io-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, contents).unwrap();
            path
        }

        /// Entries of the directory, sorted: checks no temporary files remain.
        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn err(path: &Path) -> String {
        let e = read_data(path).unwrap_err();
        let message = e.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.starts_with(&format!("{}: ", path.display())),
            "{message}"
        );
        message
    }

    /// Values that stress round-tripping: tiny, huge, negative zero, thirds.
    fn awkward() -> DMatrix<f64> {
        DMatrix::from_row_slice(
            2,
            4,
            &[
                0.1,
                -1.0 / 3.0,
                1e-300,
                -0.0,
                f64::MAX,
                f64::MIN_POSITIVE,
                5e-324,
                123_456_789.123_456_79,
            ],
        )
    }

    fn assert_bits_eq(a: &DMatrix<f64>, b: &DMatrix<f64>) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.iter().zip(b.iter()) {
            assert_eq!(x.to_bits(), y.to_bits(), "{x} vs {y}");
        }
    }

    #[test]
    fn text_round_trips_are_bit_identical() {
        let dir = TempDir::new("text-rt");
        let data = awkward();
        let names = vec!["x one".to_string(), "y,two".to_string()];
        let path = dir.0.join("out.csv");
        write_data(&path, &data, Some(&names), false).unwrap();
        assert_bits_eq(&read_data(&path).unwrap(), &data);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("x one,\"y,two\"\n0.1,"), "{text}");
        // Without a header, and in the whitespace-separated formats.
        for name in ["plain.csv", "out.tsv", "out.txt"] {
            let path = dir.0.join(name);
            write_data(&path, &data, None, false).unwrap();
            assert_bits_eq(&read_data(&path).unwrap(), &data);
        }
        let tsv = dir.0.join("named.tsv");
        let names = vec!["a".to_string(), "b".to_string()];
        write_data(&tsv, &data, Some(&names), false).unwrap();
        assert!(fs::read_to_string(&tsv).unwrap().starts_with("a\tb\n0.1\t"));
        assert_bits_eq(&read_data(&tsv).unwrap(), &data);
        assert_eq!(
            dir.entries(),
            ["named.tsv", "out.csv", "out.tsv", "out.txt", "plain.csv"]
        );
    }

    #[test]
    fn npy_round_trip_is_bit_identical() {
        let dir = TempDir::new("npy-rt");
        let data = awkward();
        let path = dir.0.join("out.npy");
        write_data(&path, &data, None, false).unwrap();
        assert_bits_eq(&read_data(&path).unwrap(), &data);
        // The file itself is n × D in C order, as NumPy expects.
        let npy = npyz::NpyFile::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(npy.shape(), &[4, 2]);
        assert_eq!(npy.order(), npyz::Order::C);
        assert_eq!(npy.dtype().descr(), "'<f8'");
        let flat: Vec<f64> = npy.into_vec().unwrap();
        assert_eq!(flat[..3], [0.1, f64::MAX, -1.0 / 3.0]);
        assert_eq!(dir.entries(), ["out.npy"]);
    }

    #[test]
    fn header_is_detected() {
        let dir = TempDir::new("header");
        let expected = DMatrix::from_row_slice(2, 2, &[1.0, 3.0, 2.0, 4.0]);
        let with = dir.file("with.csv", b"a,b\n1,2\n3,4\n");
        assert_eq!(read_data(&with).unwrap(), expected);
        let without = dir.file("without.csv", b"1,2\n3,4\n");
        assert_eq!(read_data(&without).unwrap(), expected);
        // Quoted names, spaces around fields, CRLF, blank lines, a BOM.
        let messy = dir.file(
            "messy.csv",
            b"\xef\xbb\xbf\n\"x, y\" , z\r\n\r\n 1 , 2\r\n   \r\n3,4\r\n\n",
        );
        assert_eq!(read_data(&messy).unwrap(), expected);
        // A numeric-looking first line is data even when it has a name-like
        // second line: the second line is then an error, not a header.
        let late = dir.file("late.csv", b"1,2\na,b\n");
        assert_eq!(
            err(&late),
            format!("{}: line 2, column 1: `a` is not a number", late.display())
        );
        // A single numeric line is one sample.
        let single = dir.file("single.txt", b"1 2 3\n");
        assert_eq!(
            read_data(&single).unwrap(),
            DMatrix::from_column_slice(3, 1, &[1.0, 2.0, 3.0])
        );
    }

    #[test]
    fn whitespace_separated_files() {
        let dir = TempDir::new("ws");
        let expected = DMatrix::from_row_slice(2, 3, &[1.0, -3.0, 5e-3, 2.5, 4.0, 6.0]);
        let txt = dir.file("a.txt", b"x y\n  1 \t 2.5\n\n-3   4\n5e-3\t6\n");
        assert_eq!(read_data(&txt).unwrap(), expected);
        let tsv = dir.file("b.tsv", b"1\t2.5\n-3\t4\n5e-3\t6");
        assert_eq!(read_data(&tsv).unwrap(), expected);
        // A comma file is a comma file whatever its extension.
        let commas = dir.file("c.txt", b"1,2.5\n-3,4\n5e-3,6\n");
        assert_eq!(read_data(&commas).unwrap(), expected);
    }

    #[test]
    fn one_dimensional_npy_is_one_column() {
        let dir = TempDir::new("npy-1d");
        let path = dir.0.join("v.npy");
        npyz::to_file_1d(&path, vec![1.5f64, -2.0, 3.25]).unwrap();
        assert_eq!(
            read_data(&path).unwrap(),
            DMatrix::from_row_slice(1, 3, &[1.5, -2.0, 3.25])
        );
    }

    fn npy_bytes<T: npyz::AutoSerialize + Clone>(
        shape: &[u64],
        order: npyz::Order,
        values: &[T],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(shape)
            .order(order)
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        writer.extend(values.iter().cloned()).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn fortran_order_and_f32_npy() {
        let dir = TempDir::new("npy-orders");
        // Samples (1, 2, 3), (4, 5, 6): n = 2, D = 3.
        let expected = DMatrix::from_column_slice(3, 2, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let fortran = npy_bytes(&[2, 3], npyz::Order::Fortran, &[1.0f64, 4., 2., 5., 3., 6.]);
        let path = dir.file("f.npy", &fortran);
        assert_eq!(read_data(&path).unwrap(), expected);
        let c32 = npy_bytes(&[2, 3], npyz::Order::C, &[1.0f32, 2., 3., 4., 5., 6.]);
        let path = dir.file("c32.npy", &c32);
        assert_eq!(read_data(&path).unwrap(), expected);
        let f32_fortran = npy_bytes(&[2, 3], npyz::Order::Fortran, &[1.0f32, 4., 2., 5., 3., 6.]);
        let path = dir.file("f32.npy", &f32_fortran);
        assert_eq!(read_data(&path).unwrap(), expected);
        // f32 values convert exactly.
        let odd = npy_bytes(&[1], npyz::Order::C, &[0.1f32]);
        let path = dir.file("odd.npy", &odd);
        assert_eq!(read_data(&path).unwrap()[0], f64::from(0.1f32));
    }

    #[test]
    fn text_errors_name_file_line_and_column() {
        let dir = TempDir::new("text-errors");
        let missing = dir.0.join("missing.csv");
        let m = err(&missing);
        assert!(m.starts_with(&format!("{}: cannot read: ", missing.display())));
        assert!(m.contains("os error"), "{m}");

        for (name, contents) in [
            ("empty.csv", &b""[..]),
            ("blank.txt", b"\n  \n\t\n"),
            ("header-only.csv", b"a,b\n\n"),
        ] {
            let path = dir.file(name, contents);
            assert_eq!(err(&path), format!("{}: no data rows", path.display()));
        }

        let ragged = dir.file("ragged.csv", b"x,y\n1,2\n\n3,4\n5,6\n\n7,8,9\n");
        assert_eq!(
            err(&ragged),
            format!("{}: line 7 has 3 columns, expected 2", ragged.display())
        );
        let ragged_ws = dir.file("ragged.txt", b"1 2\n3\n");
        assert_eq!(
            err(&ragged_ws),
            format!("{}: line 2 has 1 columns, expected 2", ragged_ws.display())
        );

        let word = dir.file("word.csv", b"a,b\n1,2\n\n3,abc\n");
        assert_eq!(
            err(&word),
            format!(
                "{}: line 4, column 2: `abc` is not a number",
                word.display()
            )
        );
        let empty_cell = dir.file("cell.csv", b"1,2\n3,\n");
        assert_eq!(
            err(&empty_cell),
            format!(
                "{}: line 2, column 2: `` is not a number",
                empty_cell.display()
            )
        );
        let word_ws = dir.file("word.tsv", b"1\t2\n3\t4x\n");
        assert_eq!(
            err(&word_ws),
            format!(
                "{}: line 2, column 2: `4x` is not a number",
                word_ws.display()
            )
        );

        for (cell, name) in [
            ("NaN", "nan.csv"),
            ("-inf", "inf.csv"),
            ("1e999", "big.csv"),
        ] {
            let path = dir.file(name, format!("1,2\n3,4\n{cell},5\n").as_bytes());
            assert_eq!(
                err(&path),
                format!(
                    "{}: line 3, column 1: `{cell}` is not a finite number",
                    path.display()
                )
            );
        }

        let latin1 = dir.file("latin1.csv", b"caf\xe9,b\n1,2\n");
        assert!(err(&latin1).contains("valid UTF-8"));

        for name in ["data.xlsx", "data"] {
            let path = dir.file(name, b"1,2\n");
            let m = err(&path);
            assert!(m.ends_with("(supported: .csv, .tsv, .txt, .npy)"), "{m}");
        }
        let xlsx = dir.0.join("data.xlsx");
        assert!(err(&xlsx).contains("unsupported file extension `.xlsx`"));
        // Extensions are case-insensitive.
        let upper = dir.file("UP.CSV", b"1,2\n");
        assert_eq!(read_data(&upper).unwrap().shape(), (2, 1));
    }

    #[test]
    fn npy_errors() {
        let dir = TempDir::new("npy-errors");
        let garbage = dir.file("garbage.npy", b"not an npy file at all");
        assert!(
            err(&garbage).starts_with(&format!("{}: not a valid NPY file: ", garbage.display()))
        );

        let mut truncated = npy_bytes(&[3, 2], npyz::Order::C, &[1.0f64; 6]);
        truncated.truncate(truncated.len() - 4);
        let path = dir.file("truncated.npy", &truncated);
        assert!(err(&path).starts_with(&format!("{}: not a valid NPY file: ", path.display())));

        let ints = npy_bytes(&[2, 2], npyz::Order::C, &[1i64, 2, 3, 4]);
        let path = dir.file("ints.npy", &ints);
        assert_eq!(
            err(&path),
            format!(
                "{}: unsupported NPY dtype '<i8' (expected float32 or float64)",
                path.display()
            )
        );

        let cube = npy_bytes(&[2, 1, 2], npyz::Order::C, &[1.0f64; 4]);
        let path = dir.file("cube.npy", &cube);
        assert_eq!(
            err(&path),
            format!(
                "{}: unsupported NPY array with 3 dimensions (expected 1 or 2)",
                path.display()
            )
        );

        let empty = npy_bytes::<f64>(&[0, 3], npyz::Order::C, &[]);
        let path = dir.file("empty.npy", &empty);
        assert_eq!(err(&path), format!("{}: no data rows", path.display()));

        // Row/column of the non-finite value, in sample terms, for both orders.
        let nan_c = npy_bytes(&[2, 3], npyz::Order::C, &[1.0f64, 2., 3., 4., f64::NAN, 6.]);
        let path = dir.file("nan-c.npy", &nan_c);
        assert_eq!(
            err(&path),
            format!(
                "{}: row 2, column 2: `NaN` is not a finite number",
                path.display()
            )
        );
        let inf_f = npy_bytes(
            &[2, 3],
            npyz::Order::Fortran,
            &[1.0f32, 4., 2., 5., f32::NEG_INFINITY, 6.],
        );
        let path = dir.file("inf-f.npy", &inf_f);
        assert_eq!(
            err(&path),
            format!(
                "{}: row 1, column 3: `-inf` is not a finite number",
                path.display()
            )
        );
    }

    #[test]
    fn writes_refuse_to_overwrite_unless_asked() {
        let dir = TempDir::new("overwrite");
        let data = DMatrix::from_row_slice(1, 2, &[1.0, 2.0]);
        let newer = DMatrix::from_row_slice(1, 2, &[3.0, 4.0]);
        for name in ["d.csv", "d.npy"] {
            let path = dir.0.join(name);
            write_data(&path, &data, None, false).unwrap();
            let e = write_data(&path, &newer, None, false).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "{}: file already exists (pass --force to overwrite it)",
                    path.display()
                )
            );
            assert_eq!(read_data(&path).unwrap(), data);
            write_data(&path, &newer, None, true).unwrap();
            assert_eq!(read_data(&path).unwrap(), newer);
        }
        // No temporary files are left behind.
        assert_eq!(dir.entries(), ["d.csv", "d.npy"]);
    }

    #[test]
    fn write_errors() {
        let dir = TempDir::new("write-errors");
        let data = DMatrix::from_row_slice(2, 1, &[1.0, 2.0]);
        let path = dir.0.join("out.json");
        assert_eq!(
            write_data(&path, &data, None, false)
                .unwrap_err()
                .to_string(),
            format!(
                "{}: unsupported file extension `.json` (supported: .csv, .tsv, .txt, .npy)",
                path.display()
            )
        );

        let path = dir.0.join("out.csv");
        let one = vec!["a".to_string()];
        assert_eq!(
            write_data(&path, &data, Some(&one), false)
                .unwrap_err()
                .to_string(),
            format!(
                "{}: header has 1 names but the data has 2 columns",
                path.display()
            )
        );
        let path = dir.0.join("out.txt");
        let spaced = vec!["a".to_string(), "b c".to_string()];
        let m = write_data(&path, &data, Some(&spaced), false)
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with(&format!(
                "{}: header name `b c` is empty or contains whitespace",
                path.display()
            )),
            "{m}"
        );

        let path = dir.0.join("no-such-dir").join("out.csv");
        let m = write_data(&path, &data, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with(&format!("{}: cannot write: ", path.display())),
            "{m}"
        );
        assert!(!m.contains('\n'));

        // Writing into a directory name fails at the rename, and cleans up.
        let sub = dir.0.join("taken.csv");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("keep"), b"").unwrap();
        let m = write_data(&sub, &data, None, true).unwrap_err().to_string();
        assert!(
            m.starts_with(&format!("{}: cannot write: ", sub.display())),
            "{m}"
        );
        assert_eq!(dir.entries(), ["taken.csv"]);
    }

    #[test]
    fn columns_of_per_sample_values() {
        let dir = TempDir::new("column");
        let values = [-1.5, 0.25, -3.0 / 7.0];
        let csv_path = dir.0.join("logp.csv");
        write_column(&csv_path, &values, "log_density", false).unwrap();
        let text = fs::read_to_string(&csv_path).unwrap();
        assert!(text.starts_with("log_density\n-1.5\n0.25\n"), "{text}");
        let back = read_data(&csv_path).unwrap();
        assert_eq!(back.shape(), (1, 3));
        assert_eq!(back.as_slice(), &values);

        let npy_path = dir.0.join("logp.npy");
        write_column(&npy_path, &values, "log_density", false).unwrap();
        let npy = npyz::NpyFile::new(File::open(&npy_path).unwrap()).unwrap();
        assert_eq!(npy.shape(), &[3]);
        assert_eq!(read_data(&npy_path).unwrap().as_slice(), &values);

        for path in [&csv_path, &npy_path] {
            let e = write_column(path, &values, "log_density", false).unwrap_err();
            assert!(matches!(e, DataError::Exists { .. }));
            write_column(path, &[1.0], "log_density", true).unwrap();
            assert_eq!(read_data(path).unwrap().as_slice(), &[1.0]);
        }
        assert_eq!(dir.entries(), ["logp.csv", "logp.npy"]);

        // Boxed as a std error, as the command-line layer will.
        let boxed: Box<dyn std::error::Error> = write_column(&csv_path, &values, "x", false)
            .unwrap_err()
            .into();
        assert!(boxed.to_string().contains("already exists"));
    }
}
