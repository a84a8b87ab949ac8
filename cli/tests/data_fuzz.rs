//! Fuzz-style properties of the data-file reader (issue 14): random bytes,
//! valid CSV/TSV/TXT/NPY files mutated byte by byte, and NPY headers whose
//! fields are replaced by hostile values, fed to `read_data` through a file
//! with each extension. The reader never panics; it returns a finite matrix
//! whose shape matches its storage, or an error whose message is one line
//! starting with the path. Valid files read back exactly.

use std::fs;
use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use normflow_cli::data_io::read_data;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const EXTENSIONS: [&str; 4] = ["csv", "tsv", "txt", "npy"];

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A folder of this test process, one per property (they run in parallel).
fn folder(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("normflow-data-fuzz-{}-{tag}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` to `dir/case.EXT`, reads it, and checks the contract.
/// Returns the matrix when the read succeeded.
fn check(dir: &Path, ext: &str, bytes: &[u8]) -> Result<Option<DMatrix<f64>>, TestCaseError> {
    let path = dir.join(format!("case.{ext}"));
    fs::write(&path, bytes).unwrap();
    match read_data(&path) {
        Ok(m) => {
            let (d, n) = m.shape();
            prop_assert!(d >= 1 && n >= 1, "empty matrix {d} × {n}");
            prop_assert_eq!(m.as_slice().len(), d * n);
            prop_assert!(m.iter().all(|v| v.is_finite()), "non-finite value");
            // Touch the last element: storage and shape agree.
            prop_assert!(m[(d - 1, n - 1)].is_finite());
            Ok(Some(m))
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(!message.contains('\n'), "two lines: {message}");
            prop_assert!(
                message.starts_with(&format!("{}: ", path.display())),
                "does not start with the path: {message}"
            );
            prop_assert!(message.len() < 1000, "too long: {message}");
            Ok(None)
        }
    }
}

/// An NPY file (version 1.0) with this header dict and data.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let len = u16::try_from(header.len()).unwrap_or(u16::MAX);
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

fn npy_dict(descr: &str, fortran: &str, shape: &str) -> String {
    format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}")
}

/// A small matrix of finite values, `D × n`, as rows of samples.
fn matrix() -> impl Strategy<Value = DMatrix<f64>> {
    (1usize..5, 1usize..8).prop_flat_map(|(d, n)| {
        let value = prop_oneof![
            -1e6f64..1e6,
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            Just(0.0),
            Just(-0.0),
        ];
        proptest::collection::vec(value, d * n).prop_map(move |v| DMatrix::from_vec(d, n, v))
    })
}

/// A column name: a letter then letters, digits or `_`, never a number.
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_filter("not a number", |s| s.parse::<f64>().is_err())
}

/// A valid file of each kind for `m`, as written by a person or NumPy.
fn valid_bytes(m: &DMatrix<f64>, ext: &str, header: Option<&[String]>, crlf: bool) -> Vec<u8> {
    let (d, n) = m.shape();
    if ext == "npy" {
        let data: Vec<u8> = m.iter().flat_map(|v| v.to_le_bytes()).collect();
        return npy(&npy_dict("'<f8'", "False", &format!("({n}, {d})")), &data);
    }
    let sep = match ext {
        "csv" => ",",
        "tsv" => "\t",
        _ => " ",
    };
    let end = if crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    if let Some(names) = header {
        text += &names.join(sep);
        text += end;
    }
    for sample in m.column_iter() {
        let cells: Vec<String> = sample.iter().map(|v| format!("{v:?}")).collect();
        text += &cells.join(sep);
        text += end;
    }
    text.into_bytes()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b','),
        Just(b'\n'),
        Just(b'\r'),
        Just(b'"'),
        Just(b'#'),
        Just(b'-'),
        Just(b'e'),
        Just(0u8),
        Just(0xff),
        Just(b'('),
        Just(b'\''),
        Just(b'9'),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, k)| Mutation::Delete(i, k)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..32).prop_map(|(i, k)| Mutation::Duplicate(i, k)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *m {
        Mutation::Flip(i, b) if len > 0 => bytes[i % len] = b,
        Mutation::Flip(..) => {}
        Mutation::Insert(i, b) => bytes.insert(at(i), b),
        Mutation::Delete(i, k) => {
            let start = at(i);
            let end = (start + k).min(len);
            bytes.drain(start..end);
        }
        Mutation::Truncate(i) => bytes.truncate(at(i)),
        Mutation::Duplicate(i, k) => {
            let start = at(i);
            let end = (start + k).min(len);
            let copy = bytes[start..end].to_vec();
            bytes.splice(end..end, copy);
        }
    }
}

fn hostile_shape() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(n, d)| format!("({n}, {d})")),
        (any::<u64>(), 0u64..4).prop_map(|(n, d)| format!("({n}, {d})")),
        (0u64..4, any::<u64>()).prop_map(|(n, d)| format!("({n}, {d})")),
        any::<u64>().prop_map(|n| format!("({n},)")),
        Just("(9223372036854775808, 2)".to_string()),
        Just("(18446744073709551615, 18446744073709551615)".to_string()),
        Just("(-1, 2)".to_string()),
        Just("(3, -9223372036854775808)".to_string()),
        Just("(99999999999999999999999999, 1)".to_string()),
        Just("()".to_string()),
        Just("(2, 2, 2)".to_string()),
        Just("(1.5, 2)".to_string()),
        Just("[2, 2]".to_string()),
        Just("((2, 2),)".to_string()),
        Just("None".to_string()),
        Just("'(2, 2)'".to_string()),
        (1usize..3000).prop_map(|k| "(".repeat(k)),
        "\\([0-9, L+-]{0,20}\\)",
    ]
}

fn hostile_descr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("'<f8'".to_string()),
        Just("'>f8'".to_string()),
        Just("'<f4'".to_string()),
        Just("'>f4'".to_string()),
        Just("'|f8'".to_string()),
        Just("'<f2'".to_string()),
        Just("'<i8'".to_string()),
        Just("'|u1'".to_string()),
        Just("'|O'".to_string()),
        Just("'<U10'".to_string()),
        Just("[('a', '<f8'), ('b', '<f8', (2, 3))]".to_string()),
        Just("'<f8".to_string()),
        Just("42".to_string()),
        "'[<>|=]?[a-zA-Z]{0,2}[0-9]{0,3}'",
    ]
}

fn hostile_order() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("False".to_string()),
        Just("True".to_string()),
        Just("1".to_string()),
        Just("None".to_string()),
        Just("'True'".to_string()),
    ]
}

/// Runs `body` on `cases` values of `strategy` in a fresh folder, removed
/// afterwards; panics with the minimal failing value.
fn run<S: Strategy>(
    tag: &str,
    cases: u32,
    strategy: S,
    body: impl Fn(&Path, S::Value) -> Result<(), TestCaseError>,
) {
    let dir = folder(tag);
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&strategy, |value| body(&dir, value));
    let _ = fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn random_bytes_never_panic() {
    let strategy = (proptest::collection::vec(any::<u8>(), 0..512), 0usize..4);
    run("random", 512, strategy, |dir, (bytes, ext)| {
        check(dir, EXTENSIONS[ext], &bytes)?;
        // The same bytes behind a valid NPY preamble reach the header parser.
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        check(dir, "npy", &with_magic)?;
        Ok(())
    });
}

#[test]
fn random_text_never_panics() {
    let strategy = ("[0-9a-z.,;#eE+\\- \t\r\n\"']{0,200}", 0usize..3);
    run("text", 512, strategy, |dir, (text, ext)| {
        check(dir, EXTENSIONS[ext], text.as_bytes())?;
        Ok(())
    });
}

#[test]
fn valid_files_read_back_exactly() {
    let strategy = (
        matrix(),
        0usize..4,
        proptest::collection::vec(name(), 4),
        any::<bool>(),
        any::<bool>(),
    );
    run(
        "valid",
        384,
        strategy,
        |dir, (m, ext, names, with_header, crlf)| {
            let ext = EXTENSIONS[ext];
            let header = (with_header && ext != "npy").then(|| names[..m.nrows()].to_vec());
            let bytes = valid_bytes(&m, ext, header.as_deref(), crlf);
            let back = check(dir, ext, &bytes)?;
            let back = back.ok_or_else(|| TestCaseError::fail("a valid file was refused"))?;
            prop_assert_eq!(back.shape(), m.shape());
            for (a, b) in back.iter().zip(m.iter()) {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            }
            Ok(())
        },
    );
}

#[test]
fn mutated_valid_files_never_panic() {
    let strategy = (
        matrix(),
        0usize..4,
        proptest::collection::vec(name(), 4),
        any::<bool>(),
        proptest::collection::vec(mutation(), 1..5),
    );
    run(
        "mutated",
        512,
        strategy,
        |dir, (m, ext, names, with_header, mutations)| {
            let ext = EXTENSIONS[ext];
            let header = (with_header && ext != "npy").then(|| names[..m.nrows()].to_vec());
            let mut bytes = valid_bytes(&m, ext, header.as_deref(), false);
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            check(dir, ext, &bytes)?;
            Ok(())
        },
    );
}

#[test]
fn hostile_npy_headers_never_panic() {
    let strategy = (
        hostile_descr(),
        hostile_order(),
        hostile_shape(),
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::option::of(any::<u16>()),
        prop_oneof![Just(1u8), any::<u8>()],
    );
    run(
        "hostile",
        512,
        strategy,
        |dir, (descr, order, shape, data, length, version)| {
            let mut bytes = npy(&npy_dict(&descr, &order, &shape), &data);
            bytes[6] = version;
            if let Some(len) = length {
                bytes[8..10].copy_from_slice(&len.to_le_bytes());
            }
            if let Some(m) = check(dir, "npy", &bytes)? {
                // Accepted only when the header really describes the data.
                let item = if descr.contains('4') { 4 } else { 8 };
                prop_assert_eq!(m.len() * item, data.len());
            }
            Ok(())
        },
    );
}
