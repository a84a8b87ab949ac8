//! NPY files, read without trusting the header.
//!
//! The header (a Python dict literal such as
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }`) is parsed
//! here rather than by npyz: npyz 0.9 multiplies the shape's dimensions
//! unchecked (a shape like `(2**63, 2)` wraps to zero elements in release
//! builds), and its `collect` then sizes a `Vec` from the claimed length, so a
//! hostile header gave an empty buffer for a huge matrix (a segmentation fault
//! once indexed) or a "capacity overflow" panic. Here every size is checked
//! arithmetic, compared with the bytes the file really holds before anything
//! is allocated, and the matrix is built from exactly `n × D` values.

use std::io::{self, Read};
use std::path::Path;

use nalgebra::DMatrix;

use super::{DataError, Location, check_memory, quote, read_error};

const MAGIC: &[u8] = b"\x93NUMPY";

/// A header longer than this cannot describe a float array (NumPy itself
/// refuses headers over 10 000 bytes by default).
const MAX_HEADER: u64 = 1 << 20;

/// Values decoded per read from the file.
const CHUNK_ITEMS: usize = 8192;

/// The parts of the header that matter here.
struct Header {
    /// The dtype as written (a quoted string, or a list for records).
    descr: String,
    /// The dtype when it is a plain string.
    descr_str: Option<String>,
    fortran: bool,
    /// The shape's dimensions, checked to be non-negative 64-bit integers.
    shape: Vec<u64>,
}

/// A float dtype this reader decodes.
#[derive(Clone, Copy)]
struct Float {
    size: usize,
    big_endian: bool,
}

fn malformed(path: &Path, message: impl Into<String>) -> DataError {
    DataError::MalformedNpy {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn shape_text(shape: &[u64]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// Reads an NPY file of `file_len` bytes from `reader` into a `D × n`
/// matrix (one column per sample).
pub(super) fn read_npy(
    path: &Path,
    reader: &mut impl Read,
    file_len: u64,
    limit: u64,
) -> Result<DMatrix<f64>, DataError> {
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            malformed(path, "the file ended early (it shrank while read?)")
        }
        _ => read_error(path, e.to_string()),
    };
    // Magic (6 bytes), version (2), header length (2 in version 1, else 4).
    if file_len < 10 {
        return Err(malformed(
            path,
            format!("the file is only {file_len} bytes, too short for an NPY header"),
        ));
    }
    let mut pre = [0u8; 12];
    reader.read_exact(&mut pre[..10]).map_err(io_err)?;
    if &pre[..6] != MAGIC {
        return Err(malformed(
            path,
            "it does not start with the NPY magic string `\\x93NUMPY`",
        ));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (header_len, prefix) = match major {
        1 => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        2 | 3 => {
            if file_len < 12 {
                return Err(malformed(path, "the file ends inside the NPY header"));
            }
            reader.read_exact(&mut pre[10..12]).map_err(io_err)?;
            let len = u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]);
            (u64::from(len), 12u64)
        }
        _ => {
            return Err(malformed(
                path,
                format!(
                    "unsupported NPY format version {major}.{minor} (expected 1.0, 2.0 or 3.0)"
                ),
            ));
        }
    };
    // `prefix + header_len` cannot overflow: both are far below 2^64.
    let data_start = prefix + header_len;
    if data_start > file_len {
        return Err(malformed(
            path,
            format!(
                "the header claims {header_len} bytes but the file has only {} after the preamble",
                file_len - prefix
            ),
        ));
    }
    if header_len > MAX_HEADER {
        return Err(malformed(
            path,
            format!(
                "the header is {header_len} bytes long, more than the {MAX_HEADER} bytes a float array needs"
            ),
        ));
    }
    // Both bounds above make this small.
    let mut text = vec![0u8; header_len as usize];
    reader.read_exact(&mut text).map_err(io_err)?;
    let header = parse_header(&text).map_err(|m| malformed(path, m))?;

    let (n, d) = match header.shape[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => {
            return Err(DataError::NpyRank {
                path: path.to_path_buf(),
                rank: header.shape.len(),
            });
        }
    };
    let Some(float) = header.descr_str.as_deref().and_then(float_dtype) else {
        return Err(DataError::NpyDtype {
            path: path.to_path_buf(),
            descr: header.descr,
        });
    };
    let shape = shape_text(&header.shape);
    if n == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    if d == 0 {
        return Err(DataError::NpyShape {
            path: path.to_path_buf(),
            message: format!("the NPY array of shape {shape} has no columns"),
        });
    }
    let data_len = file_len - data_start;
    let Some(needed) = n
        .checked_mul(d)
        .and_then(|k| k.checked_mul(float.size as u64))
    else {
        return Err(malformed(
            path,
            format!(
                "the header's shape {shape} needs more than 2^64 bytes of data but the file has {data_len}"
            ),
        ));
    };
    if needed != data_len {
        let extra = if needed < data_len {
            " (extra bytes after the data)"
        } else {
            ""
        };
        return Err(malformed(
            path,
            format!(
                "the header's shape {shape} needs {needed} bytes of data but the file has {data_len}{extra}"
            ),
        ));
    }
    // `needed` bytes are in the file, so `n × D` values fit in the address
    // range; they must also fit under the limit, and asking for them must
    // not abort.
    let memory = needed / float.size as u64 * 8;
    let what = || format!("the NPY array of shape {shape}");
    check_memory(path, what, Some(memory), limit)?;
    let too_large = || {
        read_error(
            path,
            format!(
                "the NPY array of shape {shape} needs {} of memory, more than is available",
                normflow::error::human_bytes(memory)
            ),
        )
    };
    let n = usize::try_from(n).map_err(|_| too_large())?;
    let d = usize::try_from(d).map_err(|_| too_large())?;
    let count = n.checked_mul(d).ok_or_else(too_large)?;
    let mut values: Vec<f64> = Vec::new();
    values.try_reserve_exact(count).map_err(|_| too_large())?;
    values.resize(count, 0.0);
    decode(reader, float, header.fortran && d > 1, n, d, &mut values).map_err(io_err)?;

    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(DataError::NotFinite {
            path: path.to_path_buf(),
            at: Location::Row(k / d + 1),
            column: k % d + 1,
            text: values[k].to_string(),
        });
    }
    // Exactly `d × n` values: row-major `n × D`, i.e. column-major `D × n`.
    Ok(DMatrix::from_vec(d, n, values))
}

/// Reads `values.len()` items and stores item `k` of the file at its place
/// in sample-major order: `k` itself for C order, and for Fortran order
/// (the file is column-major `n × D`) item `k = j·n + i` at `i·D + j`.
fn decode(
    reader: &mut impl Read,
    float: Float,
    fortran: bool,
    n: usize,
    d: usize,
    values: &mut [f64],
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK_ITEMS * float.size];
    let total = values.len();
    let (mut k, mut i, mut j) = (0usize, 0usize, 0usize);
    while k < total {
        let items = (total - k).min(CHUNK_ITEMS);
        let bytes = &mut buf[..items * float.size];
        reader.read_exact(bytes)?;
        for item in bytes.chunks_exact(float.size) {
            let v = read_float(item, float);
            if fortran {
                values[i * d + j] = v;
                i += 1;
                if i == n {
                    i = 0;
                    j += 1;
                }
            } else {
                values[k] = v;
            }
            k += 1;
        }
    }
    Ok(())
}

fn read_float(item: &[u8], float: Float) -> f64 {
    match (float.size, float.big_endian) {
        (4, false) => f64::from(f32::from_le_bytes([item[0], item[1], item[2], item[3]])),
        (4, true) => f64::from(f32::from_be_bytes([item[0], item[1], item[2], item[3]])),
        (_, false) => f64::from_le_bytes(std::array::from_fn(|b| item[b])),
        (_, true) => f64::from_be_bytes(std::array::from_fn(|b| item[b])),
    }
}

/// `'<f8'`, `'>f4'`, ... as a float type; anything else is unsupported.
fn float_dtype(descr: &str) -> Option<Float> {
    let native_big = cfg!(target_endian = "big");
    let (big_endian, kind) = match descr.as_bytes().first()? {
        b'<' => (false, &descr[1..]),
        b'>' => (true, &descr[1..]),
        b'=' | b'|' => (native_big, &descr[1..]),
        _ => (native_big, descr),
    };
    let size = match kind {
        "f8" => 8,
        "f4" => 4,
        _ => return None,
    };
    Some(Float { size, big_endian })
}

/// A value of the header dict, as far as this reader cares.
enum Value<'a> {
    Str(&'a [u8]),
    Bool(bool),
    /// A tuple or list: the text between the brackets.
    Seq(&'a [u8]),
    Other,
}

/// Parses the header dict (iteratively: no recursion on nested brackets).
fn parse_header(text: &[u8]) -> Result<Header, String> {
    let mut p = Parser { text, at: 0 };
    let bad = |p: &Parser, what: &str| {
        format!(
            "the header is not a Python dict literal: {what} at byte {} of the header",
            p.at + 1
        )
    };
    p.skip_ws();
    if !p.eat(b'{') {
        return Err(bad(&p, "expected `{`"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let Some(Value::Str(key)) = p.value()? else {
            return Err(bad(&p, "expected a quoted key"));
        };
        p.skip_ws();
        if !p.eat(b':') {
            return Err(bad(&p, "expected `:`"));
        }
        p.skip_ws();
        let start = p.at;
        let value = p.value()?.ok_or_else(|| bad(&p, "expected a value"))?;
        let raw = String::from_utf8_lossy(&text[start..p.at]).into_owned();
        match key {
            b"descr" => {
                let plain = match value {
                    Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
                    _ => None,
                };
                descr = Some((raw, plain));
            }
            b"fortran_order" => match value {
                Value::Bool(b) => fortran = Some(b),
                _ => {
                    return Err(format!(
                        "the header's 'fortran_order' is `{}`, expected True or False",
                        quote(&raw)
                    ));
                }
            },
            b"shape" => match value {
                Value::Seq(inner) => shape = Some(parse_shape(inner, &raw)?),
                _ => {
                    return Err(format!(
                        "the header's 'shape' is `{}`, expected a tuple of integers",
                        quote(&raw)
                    ));
                }
            },
            _ => {}
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            if p.eat(b'}') {
                break;
            }
            return Err(bad(&p, "expected `,` or `}`"));
        }
    }
    p.skip_ws();
    if p.at < text.len() && text[p.at..].iter().any(|&b| b != 0) {
        return Err(bad(&p, "unexpected text after the dict"));
    }
    let missing = |key: &str| format!("the header has no '{key}' entry");
    let (descr, descr_str) = descr.ok_or_else(|| missing("descr"))?;
    Ok(Header {
        descr,
        descr_str,
        fortran: fortran.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

/// The dimensions of a shape tuple's inside, e.g. `3, 2` or `3,` or ``.
fn parse_shape(inner: &[u8], raw: &str) -> Result<Vec<u64>, String> {
    let text = String::from_utf8_lossy(inner);
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let mut dims = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() && i + 1 == parts.len() {
            break; // `()` or a trailing comma
        }
        let digits = part.strip_suffix(['L', 'l']).unwrap_or(part);
        let digits = digits.strip_prefix('+').unwrap_or(digits);
        let bad = |why: &str| format!("the header's shape {} {why}", quote(raw));
        if let Some(neg) = digits.strip_prefix('-')
            && !neg.is_empty()
            && neg.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad(&format!("has a negative dimension {}", quote(part))));
        }
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!(
                "has `{}` where a dimension (a non-negative integer) was expected",
                quote(part)
            )));
        }
        let dim = digits
            .parse::<u64>()
            .map_err(|_| bad(&format!("has a dimension {} over 2^64", quote(part))))?;
        dims.push(dim);
    }
    Ok(dims)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.text.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// One value, or `None` at a character no value starts with.
    fn value(&mut self) -> Result<Option<Value<'a>>, String> {
        let text = self.text;
        let Some(&first) = text.get(self.at) else {
            return Ok(None);
        };
        match first {
            b'\'' | b'"' => {
                let start = self.at + 1;
                let end = self.string_end(start, first)?;
                self.at = end + 1;
                Ok(Some(Value::Str(&text[start..end])))
            }
            b'(' | b'[' => {
                let start = self.at + 1;
                let mut depth = 0usize;
                let mut i = self.at;
                loop {
                    match text.get(i) {
                        None => {
                            return Err("the header ends inside a bracket".into());
                        }
                        Some(b'(' | b'[' | b'{') => depth += 1,
                        Some(b')' | b']' | b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(&q @ (b'\'' | b'"')) => i = self.string_end(i + 1, q)?,
                        Some(_) => {}
                    }
                    i += 1;
                }
                self.at = i + 1;
                Ok(Some(Value::Seq(&text[start..i])))
            }
            _ => {
                let start = self.at;
                while text.get(self.at).is_some_and(|&b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+')
                }) {
                    self.at += 1;
                }
                Ok(match &text[start..self.at] {
                    b"" => None,
                    b"True" => Some(Value::Bool(true)),
                    b"False" => Some(Value::Bool(false)),
                    _ => Some(Value::Other),
                })
            }
        }
    }

    /// The index of the quote closing a string that starts at `from`.
    fn string_end(&self, from: usize, quote: u8) -> Result<usize, String> {
        let mut i = from;
        loop {
            match self.text.get(i) {
                None => return Err("the header ends inside a quoted string".into()),
                Some(b'\\') => i += 2,
                Some(&b) if b == quote => return Ok(i),
                Some(_) => i += 1,
            }
        }
    }
}
