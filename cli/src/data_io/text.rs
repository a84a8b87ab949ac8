//! Text data files: CSV (with quoting) and whitespace-separated, one row per
//! sample; see the module docs of [`super`] for the rules.

use std::path::Path;

use nalgebra::DMatrix;

use super::{DataError, Location, check_memory, read_error};

/// The bytes of a text file as UTF-8, or an error naming the line and
/// character of the first byte that is not.
pub(super) fn decode<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(read_error(
            path,
            "the file is UTF-16 text; save it as UTF-8 text",
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // The prefix is valid UTF-8, so counting non-continuation bytes
        // counts its characters.
        let before = good[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        DataError::NotUtf8 {
            path: path.to_path_buf(),
            line: 1 + good.iter().filter(|&&b| b == b'\n').count(),
            column: before + 1,
            byte: bytes.get(e.valid_up_to()).copied().unwrap_or(0),
        }
    })
}

/// Whether a cell is a column name: non-empty, not a number, and not a
/// malformed one (starting with a digit, a sign or a point).
fn is_name(cell: &str) -> bool {
    !cell.is_empty()
        && cell.parse::<f64>().is_err()
        && !cell.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
}

/// Whether a line is a comment (its first character is `#`).
fn is_comment(line: &str) -> bool {
    line.starts_with('#')
}

/// Accumulates the rows of a text file.
struct Table<'p> {
    path: &'p Path,
    /// The number of cells of the first non-empty row, once seen.
    columns: Option<usize>,
    /// The line of the header, if the first row was one.
    header: Option<usize>,
    /// Row-major values, which is exactly the column-major storage of `D × n`.
    values: Vec<f64>,
    rows: usize,
    /// The memory the values may take, in bytes.
    limit: u64,
}

impl<'p> Table<'p> {
    fn new(path: &'p Path, limit: u64) -> Self {
        Table {
            path,
            columns: None,
            header: None,
            values: Vec::new(),
            rows: 0,
            limit,
        }
    }

    fn push(&mut self, line: usize, cells: &[&str]) -> Result<(), DataError> {
        let Some(columns) = self.columns else {
            self.columns = Some(cells.len());
            if cells.iter().all(|c| is_name(c)) {
                self.header = Some(line);
                return Ok(());
            }
            return self.add(line, cells, cells.len());
        };
        self.add(line, cells, columns)
    }

    fn add(&mut self, line: usize, cells: &[&str], columns: usize) -> Result<(), DataError> {
        let path = || self.path.to_path_buf();
        if cells.len() != columns {
            return Err(DataError::Ragged {
                path: path(),
                line,
                found: cells.len(),
                expected: columns,
            });
        }
        self.reserve(line, columns)?;
        for (c, cell) in cells.iter().enumerate() {
            let column = c + 1;
            if cell.is_empty() {
                return Err(DataError::EmptyCell {
                    path: path(),
                    line,
                    column,
                });
            }
            let Ok(value) = cell.parse::<f64>() else {
                return Err(DataError::NotANumber {
                    path: path(),
                    line,
                    column,
                    text: cell.to_string(),
                });
            };
            if !value.is_finite() {
                return Err(DataError::NotFinite {
                    path: path(),
                    at: Location::Line(line),
                    column,
                    text: cell.to_string(),
                });
            }
            self.values.push(value);
        }
        self.rows += 1;
        Ok(())
    }

    /// Makes room for `more` values, doubling the storage when it is full:
    /// the new size is checked against the limit, and an allocation that
    /// fails is an error, not an abort.
    fn reserve(&mut self, line: usize, more: usize) -> Result<(), DataError> {
        let (len, capacity) = (self.values.len(), self.values.capacity());
        if len.saturating_add(more) <= capacity {
            return Ok(());
        }
        let wanted = capacity
            .saturating_mul(2)
            .max(len.saturating_add(more))
            .max(1024);
        let bytes = u64::try_from(wanted).ok().and_then(|w| w.checked_mul(8));
        let what = || format!("the values up to line {line}");
        check_memory(self.path, what, bytes, self.limit)?;
        self.values.try_reserve_exact(wanted - len).map_err(|_| {
            read_error(
                self.path,
                format!("not enough memory for the values up to line {line}"),
            )
        })
    }

    fn finish(self) -> Result<DMatrix<f64>, DataError> {
        let columns = self.columns.unwrap_or(0);
        if self.rows == 0 || columns == 0 {
            let path = self.path.to_path_buf();
            return Err(match self.header {
                Some(line) => DataError::HeaderOnly { path, line },
                None => DataError::Empty { path },
            });
        }
        // `add` pushed exactly `columns` values per row.
        debug_assert_eq!(self.values.len(), columns * self.rows);
        Ok(DMatrix::from_vec(columns, self.rows, self.values))
    }
}

/// Parses a text data file (already decoded) into a `D × n` matrix.
/// The values may take `limit` bytes.
pub(super) fn read_text(path: &Path, text: &str, limit: u64) -> Result<DMatrix<f64>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let comma = text
        .lines()
        .find(|l| !l.trim().is_empty() && !is_comment(l))
        .is_some_and(|l| l.contains(','));
    let mut table = Table::new(path, limit);
    if comma {
        read_csv(path, text, &mut table)?;
    } else {
        for (i, line) in text.lines().enumerate() {
            if is_comment(line) {
                continue;
            }
            let cells: Vec<&str> = line.split_whitespace().collect();
            if !cells.is_empty() {
                table.push(i + 1, &cells)?;
            }
        }
    }
    table.finish()
}

/// Comma-separated rows through the `csv` crate (quoting, CRLF), with line
/// numbers counted from the bytes so that skipped lines count too.
fn read_csv(path: &Path, text: &str, table: &mut Table<'_>) -> Result<(), DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let bytes = text.as_bytes();
    let (mut line, mut counted) = (1, 0);
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| read_error(path, e.to_string()))?;
        if !more {
            return Ok(());
        }
        if record.len() == 1 && record[0].is_empty() {
            continue; // a line of spaces only
        }
        // The csv crate's own line count misses skipped blank lines: count
        // newlines up to the record's first byte instead. The record's
        // position may sit on the line ends (and comments) before it.
        let mut start = record
            .position()
            .and_then(|p| usize::try_from(p.byte()).ok())
            .unwrap_or(counted)
            .max(counted);
        loop {
            match bytes.get(start) {
                Some(b'\n' | b'\r') => start += 1,
                Some(b'#') if start == 0 || matches!(bytes[start - 1], b'\n' | b'\r') => {
                    start = bytes[start..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |i| start + i + 1);
                }
                _ => break,
            }
        }
        line += bytes
            .get(counted..start)
            .map_or(0, |s| s.iter().filter(|&&b| b == b'\n').count());
        counted = start;
        let cells: Vec<&str> = record.iter().collect();
        table.push(line, &cells)?;
    }
}
