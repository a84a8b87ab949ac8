//! Tests of the reliability rules of issue 14: hostile NPY headers, data
//! rows that are not guessed into headers, errors at the real line and
//! column, and files that are not readable data.

use super::tests::{TempDir, err, npy_bytes};
use super::*;

/// An NPY file (version 1.0) with the given header dict and data bytes.
fn raw_npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape}, }}")
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The message for an NPY file with this header and data.
fn npy_err(dir: &TempDir, name: &str, dict: &str, data: &[u8]) -> String {
    let path = dir.file(name, &raw_npy(dict, data));
    let m = err(&path);
    m[path.display().to_string().len() + 2..].to_string()
}

#[test]
fn npy_shapes_that_overflow_are_errors_naming_the_shape() {
    let dir = TempDir::new("npy-overflow");
    let data = f64_bytes(&[1.0, 2.0, 3.0, 4.0]);
    for fortran in [false, true] {
        let m = npy_err(
            &dir,
            "huge.npy",
            &dict("'<f8'", fortran, "(9223372036854775808, 2)"),
            &data,
        );
        assert_eq!(
            m,
            "not a valid NPY file: the header's shape (9223372036854775808, 2) \
             needs more than 2^64 bytes of data but the file has 32"
        );
    }
    // n × D fits in 64 bits but not once multiplied by the item size; and a
    // product that wraps to exactly zero.
    for shape in [
        "(2305843009213693952, 1)",
        "(18446744073709551615,)",
        "(4294967296, 4294967296)",
    ] {
        let m = npy_err(&dir, "wrap.npy", &dict("'<f8'", false, shape), &data);
        assert!(
            m.contains(&format!("shape {shape} needs more than 2^64 bytes")),
            "{m}"
        );
    }
}

#[test]
fn npy_shape_must_match_the_bytes_in_the_file() {
    let dir = TempDir::new("npy-size");
    let data = f64_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let m = npy_err(&dir, "short.npy", &dict("'<f8'", false, "(1000, 2)"), &data);
    assert_eq!(
        m,
        "not a valid NPY file: the header's shape (1000, 2) needs 16000 bytes of data \
         but the file has 32"
    );
    let m = npy_err(&dir, "long.npy", &dict("'<f4'", false, "(3,)"), &data);
    assert_eq!(
        m,
        "not a valid NPY file: the header's shape (3,) needs 12 bytes of data \
         but the file has 32 (extra bytes after the data)"
    );
    // A header length beyond the end of the file.
    let mut bytes = raw_npy(&dict("'<f8'", false, "(1, 1)"), &f64_bytes(&[1.0]));
    bytes[8] = 0xff;
    bytes[9] = 0xff;
    let path = dir.file("hlen.npy", &bytes);
    assert!(
        err(&path).contains("the header claims 65535 bytes but the file has only"),
        "{}",
        err(&path)
    );
}

#[test]
fn npy_ranks_sizes_and_dimensions() {
    let dir = TempDir::new("npy-shapes");
    let one = f64_bytes(&[1.0]);
    let cases = [
        (
            "()",
            "unsupported NPY array with 0 dimensions (expected 1 or 2)",
        ),
        (
            "(1, 1, 1)",
            "unsupported NPY array with 3 dimensions (expected 1 or 2)",
        ),
        ("(3, 0)", "the NPY array of shape (3, 0) has no columns"),
        ("(0,)", "no data rows"),
        (
            "(-1, 2)",
            "not a valid NPY file: the header's shape (-1, 2) has a negative dimension -1",
        ),
        (
            "(99999999999999999999999, 1)",
            "not a valid NPY file: the header's shape (99999999999999999999999, 1) \
             has a dimension 99999999999999999999999 over 2^64",
        ),
        (
            "(1.5, 2)",
            "not a valid NPY file: the header's shape (1.5, 2) has `1.5` where a \
             dimension (a non-negative integer) was expected",
        ),
        (
            "7",
            "not a valid NPY file: the header's 'shape' is `7`, expected a tuple of integers",
        ),
    ];
    for (shape, expected) in cases {
        let m = npy_err(&dir, "s.npy", &dict("'<f8'", false, shape), &one);
        assert_eq!(m, expected, "shape {shape}");
    }
    // Python 2 wrote long integers with an `L`.
    let path = dir.file("py2.npy", &raw_npy(&dict("'<f8'", false, "(1L, 1L)"), &one));
    assert_eq!(read_data(&path).unwrap().as_slice(), &[1.0]);
}

#[test]
fn npy_dtypes_big_endian_and_unsupported() {
    let dir = TempDir::new("npy-dtypes");
    // Big-endian floats are read, not rejected.
    let be8: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let path = dir.file("be8.npy", &raw_npy(&dict("'>f8'", false, "(2,)"), &be8));
    assert_eq!(read_data(&path).unwrap().as_slice(), &[1.5, -2.0]);
    let be4: Vec<u8> = [0.25f32, 8.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let path = dir.file("be4.npy", &raw_npy(&dict("'>f4'", false, "(1, 2)"), &be4));
    assert_eq!(read_data(&path).unwrap().as_slice(), &[0.25, 8.0]);

    for (descr, shown) in [
        ("'<f2'", "'<f2'"),
        ("'|O'", "'|O'"),
        ("'<c16'", "'<c16'"),
        (
            "[('a', '<f8'), ('b', '<f8')]",
            "[('a', '<f8'), ('b', '<f8')]",
        ),
        ("'\u{1}x'", "'\\u{1}x'"),
    ] {
        let m = npy_err(&dir, "t.npy", &dict(descr, false, "(1,)"), &[0; 8]);
        assert_eq!(
            m,
            format!("unsupported NPY dtype {shown} (expected float32 or float64)")
        );
    }
}

#[test]
fn npy_header_garbage_is_an_error() {
    let dir = TempDir::new("npy-garbage");
    let one = f64_bytes(&[1.0]);
    let deep = format!("{{'shape': {}", "(".repeat(70_000));
    let cases: Vec<(String, &str)> = vec![
        ("[1, 2]".into(), "expected `{` at byte 1"),
        (
            "{'descr': '<f8', 'shape': (1,)}".into(),
            "no 'fortran_order' entry",
        ),
        (
            "{'fortran_order': False, 'shape': (1,)}".into(),
            "no 'descr' entry",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False}".into(),
            "no 'shape' entry",
        ),
        (
            dict("'<f8'", false, "(1,)").replace("False", "0"),
            "'fortran_order' is `0`",
        ),
        ("{'descr': '<f8".into(), "ends inside a quoted string"),
        (deep, "ends inside a bracket"),
        ("{'descr' '<f8'}".into(), "expected `:`"),
        ("{descr: '<f8'}".into(), "expected a quoted key"),
        (
            "{'descr': '<f8' 'shape': (1,)}".into(),
            "expected `,` or `}`",
        ),
        (
            format!("{} junk", dict("'<f8'", false, "(1,)")),
            "unexpected text after the dict",
        ),
    ];
    for (header, expected) in cases {
        let bytes = if header.len() > 60_000 {
            // Version 2.0: a 4-byte header length.
            let mut b = b"\x93NUMPY\x02\x00".to_vec();
            b.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(&one);
            b
        } else {
            raw_npy(&header, &one)
        };
        let path = dir.file("g.npy", &bytes);
        let m = err(&path);
        assert!(m.contains("not a valid NPY file: "), "{m}");
        assert!(m.contains(expected), "{expected:?} not in {m}");
        assert!(m.len() < 400, "{m}");
    }
    for (bytes, expected) in [
        (&b"\x93NUMPY\x01"[..], "only 7 bytes, too short"),
        (
            b"\x93NUMPY\x09\x00\x10\x00{}",
            "unsupported NPY format version 9.0",
        ),
        (
            b"PK\x03\x04 a zip file?",
            "does not start with the NPY magic string",
        ),
    ] {
        let path = dir.file("h.npy", bytes);
        assert!(err(&path).contains(expected), "{}", err(&path));
    }
}

#[test]
fn npy_fortran_order_across_read_chunks() {
    let dir = TempDir::new("npy-chunks");
    // 5000 × 3 = 15 000 values: more than one decoding chunk.
    let (n, d) = (5000usize, 3usize);
    let value = |i: usize, j: usize| (i * 10 + j) as f64;
    let column_major: Vec<f64> = (0..d)
        .flat_map(|j| (0..n).map(move |i| value(i, j)))
        .collect();
    let bytes = npy_bytes(&[n as u64, d as u64], npyz::Order::Fortran, &column_major);
    let x = read_data(&dir.file("f.npy", &bytes)).unwrap();
    assert_eq!(x.shape(), (d, n));
    for i in [0, 1, 4095, 4096, 4999] {
        for j in 0..d {
            assert_eq!(x[(j, i)], value(i, j));
        }
    }
}

#[test]
fn a_first_row_is_a_header_only_if_every_cell_is_a_name() {
    let dir = TempDir::new("header-rule");
    let cases: [(&str, &[u8], &str); 10] = [
        (
            "a.csv",
            b"1,abc\n3,4\n5,6",
            "line 1, column 2: `abc` is not a number",
        ),
        (
            "b.csv",
            b"x,y\n0x10,1\n",
            "line 2, column 1: `0x10` is not a number",
        ),
        (
            "c.csv",
            b"0x10,y\n1,2\n",
            "line 1, column 1: `0x10` is not a number",
        ),
        ("d.csv", b"1e,2\n", "line 1, column 1: `1e` is not a number"),
        (
            "e.csv",
            b"-x,y\n1,2\n",
            "line 1, column 1: `-x` is not a number",
        ),
        (
            "f.csv",
            b"inf,y\n1,2\n",
            "line 1, column 1: `inf` is not a finite number",
        ),
        (
            "g.csv",
            b"nan,infinity\n1,2\n",
            "line 1, column 1: a not-a-number value; expected a finite number",
        ),
        (
            "h.txt",
            b"a b\n1 2\n3 .\n",
            "line 3, column 2: `.` is not a number",
        ),
        // A name missing from a would-be header: not a header, so data.
        (
            "i.csv",
            b"a,,c\n1,2,3\n",
            "line 1, column 1: `a` is not a number",
        ),
        ("j.csv", b"a,b,c\n1,2\n", "line 2 has 2 columns, expected 3"),
    ];
    for (name, contents, expected) in cases {
        let path = dir.file(name, contents);
        assert_eq!(err(&path), format!("{}: {expected}", path.display()));
    }
    // Names with digits inside, quoted names and spaces are names.
    let path = dir.file("ok.csv", b"x1,\"y 2\",z_3\n1,2,3\n4,5,6\n");
    assert_eq!(read_data(&path).unwrap().shape(), (3, 2));
}

#[test]
fn empty_cells_and_line_endings() {
    let dir = TempDir::new("cells");
    let cases: [(&str, &[u8], &str); 5] = [
        ("a.csv", b"1,2,\n", "line 1, column 3"),
        ("b.csv", b"1,2,\r\n3,4,\r\n", "line 1, column 3"),
        ("c.csv", b"a,b\r\n\r\n1,2\r\n,4\r\n", "line 4, column 1"),
        ("d.csv", b"1,2\n3,4\n5,\n", "line 3, column 2"),
        (
            "e.csv",
            b"\xef\xbb\xbf\n\n1, 2\n3,\"\"\n",
            "line 4, column 2",
        ),
    ];
    for (name, contents, at) in cases {
        let path = dir.file(name, contents);
        assert_eq!(
            err(&path),
            format!(
                "{}: {at}: empty cell (expected a number; a trailing separator?)",
                path.display()
            )
        );
    }
    let crlf = dir.file("crlf.csv", b"a,b\r\n1,2\r\n3,4\r\n");
    let tsv = dir.file("crlf.tsv", b"a\tb\r\n1\t2\r\n3\t4\r\n");
    let expected = DMatrix::from_row_slice(2, 2, &[1.0, 3.0, 2.0, 4.0]);
    assert_eq!(read_data(&crlf).unwrap(), expected);
    assert_eq!(read_data(&tsv).unwrap(), expected);
}

#[test]
fn comment_lines_are_skipped_and_counted() {
    let dir = TempDir::new("comments");
    let expected = DMatrix::from_row_slice(2, 2, &[1.0, 3.0, 2.0, 4.0]);
    for (name, contents) in [
        ("a.csv", &b"# x,y\n1,2\n# note, with a comma\n3,4\n"[..]),
        ("b.txt", b"# made by savetxt\nx y\n1 2\n#\n3 4\n"),
        ("c.csv", b"#!\r\na,b\r\n#\r\n1,2\r\n3,4\r\n"),
    ] {
        let path = dir.file(name, contents);
        assert_eq!(read_data(&path).unwrap(), expected, "{name}");
    }
    for (name, contents, at) in [
        ("d.csv", &b"# c\n1,2\n#\n\n3,x\n"[..], "line 5, column 2"),
        ("e.txt", b"# a b\n1 2\n#\n3 x\n", "line 4, column 2"),
        ("f.csv", b"#\"unclosed\n1,2\n3,x\n", "line 3, column 2"),
    ] {
        let path = dir.file(name, contents);
        assert_eq!(
            err(&path),
            format!("{}: {at}: `x` is not a number", path.display())
        );
    }
}

#[test]
fn quoted_text_is_clipped_and_printable() {
    let dir = TempDir::new("clip");
    let long = "a".repeat(1000);
    let path = dir.file("long.csv", format!("1,{long}\n").as_bytes());
    let m = err(&path);
    assert!(m.contains("(1000 characters in all)"), "{m}");
    assert!(m.len() < path.display().to_string().len() + 300, "{m}");
    let path = dir.file("nul.csv", b"1,2\n3,\x00\x1b\n");
    let m = err(&path);
    assert!(
        m.ends_with("line 2, column 2: `\\u{0}\\u{1b}` is not a number"),
        "{m}"
    );
    // A file name with a newline still gives a one-line message.
    let path = dir.file("two\nlines.csv", b"");
    let m = read_data(&path).unwrap_err().to_string();
    assert!(!m.contains('\n'), "{m}");
    assert!(m.ends_with("two\\nlines.csv: no data rows"), "{m}");
}

#[test]
fn files_that_are_not_utf8_text() {
    let dir = TempDir::new("utf8");
    let path = dir.file("latin1.csv", b"x,y\n1,2\ncaf\xe9,3\n");
    assert_eq!(
        err(&path),
        format!(
            "{}: line 3, character 4: byte 0xE9 is not valid UTF-8 (save the file as UTF-8 text)",
            path.display()
        )
    );
    let path = dir.file("utf16.csv", b"\xff\xfe1\x00,\x002\x00");
    assert_eq!(
        err(&path),
        format!(
            "{}: cannot read: the file is UTF-16 text; save it as UTF-8 text",
            path.display()
        )
    );
    // Binary garbage with a text extension.
    let path = dir.file("bin.txt", &[0x93, b'N', b'U', 0, 0xff]);
    assert!(err(&path).contains("line 1, character 1: byte 0x93"));
}

#[test]
fn directories_and_special_files_are_refused() {
    let dir = TempDir::new("special");
    let sub = dir.0.join("folder.csv");
    fs::create_dir(&sub).unwrap();
    assert_eq!(
        err(&sub),
        format!(
            "{}: cannot read: it is a directory, not a data file",
            sub.display()
        )
    );
    #[cfg(unix)]
    {
        // A socket (no writer to wait for either way) and a FIFO, which would
        // block forever if it were opened.
        let sock = dir.0.join("sock.npy");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let fifo = dir.0.join("fifo.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for path in [sock, fifo] {
            assert_eq!(
                err(&path),
                format!(
                    "{}: cannot read: not a regular file (a FIFO, socket or device); give a data file",
                    path.display()
                )
            );
        }
    }
}

#[test]
fn memory_is_checked_against_the_limit_before_allocating() {
    let dir = TempDir::new("limit");
    let limit_msg = "(set NORMFLOW_MEMORY_LIMIT to change it)";
    let text = dir.file("t.csv", b"1,2\n3,4\n5,6\n");
    let m = read_data_within(&text, 10).unwrap_err().to_string();
    assert_eq!(
        m,
        format!(
            "{}: cannot read: the file needs about 12 B of memory, over the limit of 10 B {limit_msg}",
            text.display()
        )
    );
    // The file fits, its values do not.
    let m = read_data_within(&text, 1000).unwrap_err().to_string();
    assert!(
        m.starts_with(&format!(
            "{}: cannot read: the values up to line 1 needs about ",
            text.display()
        )) && m.ends_with(&format!("over the limit of 988 B {limit_msg}")),
        "{m}"
    );
    assert_eq!(read_data_within(&text, 100_000).unwrap().shape(), (2, 3));

    let values: Vec<f32> = (0..2000).map(|i| i as f32).collect();
    let npy = dir.file("a.npy", &npy_bytes(&[1000, 2], npyz::Order::C, &values));
    let m = read_data_within(&npy, 10_000).unwrap_err().to_string();
    assert!(
        m.starts_with(&format!(
            "{}: cannot read: the NPY array of shape (1000, 2) needs about 16",
            npy.display()
        )) && m.ends_with(limit_msg),
        "{m}"
    );
    assert_eq!(read_data_within(&npy, 20_000).unwrap().shape(), (2, 1000));
}
