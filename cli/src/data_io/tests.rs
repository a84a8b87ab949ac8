//! Unit tests of reading and writing data files.

use super::*;
use npyz::WriterBuilder;

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("normflow-cli-data-io-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// Entries of the directory, sorted: checks no temporary files remain.
    pub(super) fn entries(&self) -> Vec<String> {
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

/// The message of reading `path`, checked to be one line starting with it.
pub(super) fn err(path: &Path) -> String {
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

/// An NPY file as NumPy would write it.
pub(super) fn npy_bytes<T: npyz::AutoSerialize + Clone>(
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

    for (name, contents) in [("empty.csv", &b""[..]), ("blank.txt", b"\n  \n\t\n")] {
        let path = dir.file(name, contents);
        assert_eq!(err(&path), format!("{}: no data rows", path.display()));
    }
    // Issue 14: a header-only file says which line was taken as the header.
    let header_only = dir.file("header-only.csv", b"a,b\n\n");
    assert_eq!(
        err(&header_only),
        format!(
            "{}: no data rows (line 1 is a header)",
            header_only.display()
        )
    );

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
    // Issue 14: an empty cell has its own message (was "`` is not a number").
    assert_eq!(
        err(&empty_cell),
        format!(
            "{}: line 2, column 2: empty cell (expected a number; a trailing separator?)",
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

    let path = dir.file("nan.csv", b"1,2\n3,4\nNaN,5\n");
    assert_eq!(
        err(&path),
        format!(
            "{}: line 3, column 1: a not-a-number value; expected a finite number",
            path.display()
        )
    );
    for (cell, name) in [("-inf", "inf.csv"), ("1e999", "big.csv")] {
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
    assert!(err(&garbage).starts_with(&format!("{}: not a valid NPY file: ", garbage.display())));

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
            "{}: row 2, column 2: a not-a-number value; expected a finite number",
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
