//! The command-line tool on hostile input: one test per class of defect of
//! docs/cli.md's "Guarantees" (no crash, no lost file, no NaN, bounded
//! memory, quiet broken pipes, exit statuses). Each asserts the exit status,
//! the message and, for files, that their bytes are unchanged.

mod common;
use common::{normflow, s, stderr, stdout, tmp};

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Exit status 1 with a one-line message containing `needle`, no panic and
/// no NaN anywhere.
fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_no_nan(o);
}

/// No word of the output is NaN (in any case).
fn assert_no_nan(o: &Output) {
    for text in [stdout(o), stderr(o)] {
        let nan = text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w.eq_ignore_ascii_case("nan"));
        assert!(!nan, "NaN printed: {text}");
    }
}

fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Two moons in `d`, and a small MAF fitted to them.
fn moons_and_model(d: &Path, n: usize) -> (PathBuf, PathBuf) {
    let data = d.join("moons.csv");
    let o = normflow(&[
        "datasets",
        "moons",
        "--n",
        &n.to_string(),
        "--out",
        s(&data),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = d.join("model.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "maf(2, hidden = 16)",
        "--out",
        s(&model),
        "--epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (data, model)
}

/// An NPY file with the given header dictionary and data bytes.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn overflowing_npy_shapes_are_errors_in_every_command() {
    let d = tmp("npy");
    let (_, model) = moons_and_model(&d, 300);
    let bad = d.join("bad.npy");
    std::fs::write(
        &bad,
        npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775808, 2), }",
            &[0u8; 32],
        ),
    )
    .unwrap();
    let out = d.join("m2.json");
    for args in [
        vec!["fit", "--data", s(&bad), "--flow", "maf", "--out", s(&out)],
        vec!["eval", "--model", s(&model), "--data", s(&bad)],
        vec![
            "plot",
            "--model",
            s(&model),
            "--data",
            s(&bad),
            "--out",
            s(&d.join("p.png")),
        ],
    ] {
        let o = normflow(&args);
        assert_refused(&o, "bad.npy");
    }
    assert!(!out.exists());
}

#[test]
fn impossible_sizes_are_refused_with_the_number_and_the_limit() {
    let d = tmp("sizes");
    let (data, model) = moons_and_model(&d, 300);
    let out = d.join("m.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "maf(hidden = 1000000000)",
        "--out",
        s(&out),
    ]);
    assert_refused(&o, "limit");
    let o = normflow(&[
        "bench",
        "--flow",
        "maf",
        "--dim",
        "100000000",
        "--batch",
        "256",
        "--op",
        "log-prob",
    ]);
    assert_refused(&o, "limit");
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "1000000000",
        "--out",
        s(&d.join("x.npy")),
    ]);
    assert_refused(&o, "limit");
    // A model file that claims a huge dimension.
    let text = std::fs::read_to_string(&model).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
    j["dim"] = serde_json::json!(1_000_000_000_000u64);
    let huge = d.join("huge.json");
    std::fs::write(&huge, j.to_string()).unwrap();
    let o = normflow(&["eval", "--model", s(&huge), "--data", s(&data)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("huge.json"), "{}", stderr(&o));
    // A spec of far too many layers, inside a model file: a short message.
    j["dim"] = serde_json::json!(2);
    j["spec"] = serde_json::json!(vec!["actnorm"; 20_000].join(" >> "));
    std::fs::write(&huge, j.to_string()).unwrap();
    let o = normflow(&["eval", "--model", s(&huge), "--data", s(&data)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).len() < 2000,
        "{} bytes of error",
        stderr(&o).len()
    );
    assert!(!out.exists());
}

#[test]
fn inputs_and_existing_files_are_never_clobbered() {
    let d = tmp("clobber");
    let (data, model) = moons_and_model(&d, 300);
    let data_bytes = std::fs::read(&data).unwrap();
    let model_bytes = std::fs::read(&model).unwrap();
    // --checkpoint onto an existing file, without --force.
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "maf",
        "--out",
        s(&d.join("new.json")),
        "--checkpoint",
        s(&model),
        "--epochs",
        "1",
    ]);
    assert_refused(&o, "already exists");
    // The output is an input, even with --force (and through a link).
    let link = d.join("link.csv");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    for out in [&data, &link] {
        let o = normflow(&[
            "fit",
            "--data",
            s(&data),
            "--flow",
            "maf",
            "--out",
            s(out),
            "--force",
            "--epochs",
            "1",
        ]);
        assert_refused(&o, "is the input");
        let o = normflow(&[
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--out",
            s(out),
            "--force",
        ]);
        assert_refused(&o, "is the input");
    }
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "5",
        "--out",
        s(&model),
        "--force",
    ]);
    assert_refused(&o, "is the input");
    // A missing folder is refused before any work.
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "5",
        "--out",
        s(&d.join("no/x.csv")),
    ]);
    assert_refused(&o, "does not exist");
    assert_eq!(std::fs::read(&data).unwrap(), data_bytes);
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    assert!(
        !entries(&d).iter().any(|e| e.contains(".tmp-")),
        "{:?}",
        entries(&d)
    );
}

#[test]
fn a_signal_during_a_write_leaves_no_temporary_file() {
    let d = tmp("kill");
    let (_, model) = moons_and_model(&d, 300);
    let out = d.join("many.csv");
    for signal in ["-INT", "-TERM"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_normflow"))
            .args([
                "sample",
                "--model",
                s(&model),
                "-n",
                "50000000",
                "--out",
                s(&out),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the temporary file exists, then signal.
        let start = Instant::now();
        while !entries(&d).iter().any(|e| e.contains(".tmp-")) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no write started"
            );
            assert!(child.try_wait().unwrap().is_none(), "sample ended early");
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{signal}");
        assert_eq!(
            entries(&d),
            vec!["model.json", "moons.csv"],
            "after {signal}"
        );
    }
}

#[test]
fn no_nan_is_ever_printed() {
    let d = tmp("finite");
    let (data, model) = moons_and_model(&d, 300);
    let out = d.join("m.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "maf",
        "--out",
        s(&out),
        "--epochs",
        "0",
    ]);
    assert_refused(&o, "--epochs must be at least 1");
    // Rows outside the support: said in words and in JSON.
    let exp_model = d.join("exp.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&d.join("pos.csv")),
        "--flow",
        "exp",
        "--out",
        s(&exp_model),
    ]);
    assert_eq!(o.status.code(), Some(1)); // no such data file yet
    std::fs::write(d.join("pos.csv"), "x,y\n1,2\n3,4\n2,2\n1,1\n").unwrap();
    let o = normflow(&[
        "fit",
        "--data",
        s(&d.join("pos.csv")),
        "--flow",
        "actnorm >> exp",
        "--out",
        s(&exp_model),
        "--epochs",
        "2",
        "--batch-size",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(d.join("mixed.csv"), "1,2\n-1,2\n3,4\n").unwrap();
    let o = normflow(&[
        "eval",
        "--model",
        s(&exp_model),
        "--data",
        s(&d.join("mixed.csv")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_nan(&o);
    assert!(
        stderr(&o).contains("1 of 3 rows are outside"),
        "{}",
        stderr(&o)
    );
    let o = normflow(&[
        "eval",
        "--model",
        s(&exp_model),
        "--data",
        s(&d.join("mixed.csv")),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["mean_log_prob"], "-inf");
    assert_eq!(j["outside_support"], 1);
    assert!(!stdout(&o).contains("null"), "{}", stdout(&o));
    // A model whose parameters are finite but huge: no NaN row is written.
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let n = j["params"].as_array().unwrap().len();
    j["params"] = serde_json::json!(vec![1e300; n]);
    let wild = d.join("wild.json");
    std::fs::write(&wild, j.to_string()).unwrap();
    let samples = d.join("wild.csv");
    let o = normflow(&[
        "sample",
        "--model",
        s(&wild),
        "-n",
        "100",
        "--out",
        s(&samples),
    ]);
    assert_no_nan(&o);
    if o.status.success() {
        let text = std::fs::read_to_string(&samples).unwrap();
        assert!(!text.to_lowercase().contains("nan"), "{text}");
        assert!(text.lines().count() == 100);
    } else {
        assert!(!samples.exists());
    }
}

#[test]
fn divergence_keeps_the_model_and_says_so() {
    let d = tmp("diverge");
    let (data, _) = moons_and_model(&d, 500);
    let out = d.join("m.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "maf(2, hidden = 16)",
        "--out",
        s(&out),
        "--lr",
        "1e9",
        "--epochs",
        "5",
        "--json",
    ]);
    assert_no_nan(&o);
    // Either the loss became non-finite (exit 1, model written and said
    // where) or it rose by orders of magnitude (a warning).
    if o.status.success() {
        assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    } else {
        assert!(stderr(&o).contains(s(&out)), "{}", stderr(&o));
    }
    assert!(out.exists(), "no model written: {}", stderr(&o));
    let o = normflow(&["eval", "--model", s(&out), "--data", s(&data), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_nan(&o);
}

#[test]
fn data_files_are_not_guessed_at() {
    let d = tmp("parse");
    let out = d.join("m.json");
    for (name, text, needle) in [
        ("a.csv", "1,abc\n3,4\n5,6\n", "line 1, column 2"),
        ("b.csv", "1,2,\n3,4,\n", "column 3"),
        ("c.csv", "x\n0x10\n", "line 2, column 1"),
    ] {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        let o = normflow(&["fit", "--data", s(&path), "--flow", "maf", "--out", s(&out)]);
        assert_refused(&o, needle);
    }
    assert!(!out.exists());
}

/// Peak resident memory of a child, polled from /proc until it exits.
fn peak_rss_kb(mut child: std::process::Child) -> (u64, std::process::ExitStatus) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (peak, status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sampling_a_million_points_stays_under_200_mb() {
    let d = tmp("stream");
    let (_, model) = moons_and_model(&d, 300);
    let out = d.join("many.npy");
    let child = Command::new(env!("CARGO_BIN_EXE_normflow"))
        .args([
            "sample",
            "--model",
            s(&model),
            "-n",
            "1000000",
            "--out",
            s(&out),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (peak, status) = peak_rss_kb(child);
    assert!(status.success());
    assert!(peak > 0 && peak < 200_000, "peak RSS {peak} kB");
    // 1 000 000 rows of 2 float64 behind a 128-byte header.
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 128 + 16_000_000);
}

#[test]
fn closed_pipes_are_quiet_and_full_devices_are_errors() {
    let d = tmp("pipe");
    let (data, model) = moons_and_model(&d, 20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_normflow"))
        .args(["eval", "--model", s(&model), "--data", s(&data)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.trim().parse::<f64>().is_ok(), "{first}");
    // The reader is gone (like `| head -1`).
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A character device that is always full, made by the test (needs root).
    let full = d.join("full.npy");
    let made = Command::new("mknod")
        .args([s(&full), "c", "1", "7"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        return;
    }
    let o = Command::new(env!("CARGO_BIN_EXE_normflow"))
        .args(["eval", "--model", s(&model), "--data", s(&data)])
        .stdout(std::fs::OpenOptions::new().write(true).open(&full).unwrap())
        .output()
        .unwrap();
    assert_refused(&o, "standard output");
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "100000",
        "--out",
        s(&full),
    ]);
    assert_refused(&o, "full.npy");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&full)
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn estimates_that_cannot_be_made_are_refused() {
    let d = tmp("numerics");
    let data = d.join("d.csv");
    std::fs::write(&data, "1,2\n2,1\n3,3\n0,1\n").unwrap();
    let out = d.join("m.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "batchnorm >> maf",
        "--out",
        s(&out),
        "--batch-size",
        "1",
    ]);
    assert_refused(&o, "batch");
    // Standardising finite data near 1e160 (its variance would overflow), in
    // f64.
    let big = d.join("big.csv");
    let rows: String = (0..50)
        .map(|i| format!("{}e160,{}\n", 1.0 + 0.01 * i as f64, i))
        .collect();
    std::fs::write(&big, rows).unwrap();
    let fit_big = |dtype: &str| {
        normflow(&[
            "fit",
            "--data",
            s(&big),
            "--flow",
            "maf(2, hidden = 8)",
            "--out",
            s(&out),
            "--standardize",
            "--epochs",
            "2",
            "--json",
            "--force",
            "--dtype",
            dtype,
        ])
    };
    let o = fit_big("f64");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_nan(&o);
    // The same data is beyond f32 (the default): refused, saying where and
    // what to do, and the model written by the f64 fit stays as it was.
    let before = std::fs::read_to_string(&out).unwrap();
    let o = fit_big("f32");
    assert_refused(&o, "row 1, column 1: 1e160 is beyond the range of f32");
    assert!(stderr(&o).contains("--dtype f64"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before);
}

#[test]
fn small_things() {
    let d = tmp("small");
    let (data, model) = moons_and_model(&d, 300);
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "0",
        "--out",
        s(&d.join("z.csv")),
    ]);
    assert_refused(&o, "-n must be at least 1");
    assert!(!d.join("z.csv").exists());
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "maf",
        "--out",
        s(&d.join("m.json")),
        "--lr",
        "-1e-3",
    ]);
    assert_refused(
        &o,
        "--lr must be a finite positive learning rate, got -0.001",
    );
    // Plot of a conditional model: the command-line fix.
    let cond = d.join("cond.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--context-columns",
        "1",
        "--flow",
        "maf",
        "--out",
        s(&cond),
        "--epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = normflow(&["plot", "--model", s(&cond), "--out", s(&d.join("c.png"))]);
    assert_refused(&o, "normflow sample");
    assert!(
        !stderr(&o).contains("ConditionalFlowModel"),
        "{}",
        stderr(&o)
    );
    // Data near 1e300 plots (labels in scientific notation).
    let big = d.join("big.csv");
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{}e300,{}e300\n",
                1.0 + 0.01 * i as f64,
                1.0 - 0.01 * i as f64
            )
        })
        .collect();
    std::fs::write(&big, rows).unwrap();
    let o = normflow(&[
        "plot",
        "--model",
        s(&model),
        "--data",
        s(&big),
        "--out",
        s(&d.join("b.png")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn interrupted_fits_exit_130_and_say_so_in_json() {
    let d = tmp("interrupt");
    let (data, _) = moons_and_model(&d, 2000);
    let out = d.join("m.json");
    let child = Command::new(env!("CARGO_BIN_EXE_normflow"))
        .args([
            "fit",
            "--data",
            s(&data),
            "--flow",
            "maf(3, hidden = 32)",
            "--out",
            s(&out),
            "--epochs",
            "100000",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_no_nan(&o);
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["interrupted"], true);
    assert!(out.exists());
}
