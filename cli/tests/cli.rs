//! Drives the built `normflow` binary: every subcommand on small inputs, and
//! the bad-input cases (exit code and message).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn normflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_normflow"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh temporary folder per test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("normflow-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn datasets_list_and_write() {
    let o = normflow(&["datasets"]);
    assert!(o.status.success());
    for name in [
        "moons",
        "circles",
        "checkerboard",
        "8gaussians",
        "pinwheel",
        "spirals",
    ] {
        assert!(
            stdout(&o).contains(name),
            "{name} missing from:\n{}",
            stdout(&o)
        );
    }
    let d = tmp("datasets");
    let out = d.join("moons.csv");
    let o = normflow(&[
        "datasets",
        "moons",
        "--n",
        "200",
        "--seed",
        "3",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 201); // header + 200 rows
    // The same command again refuses to overwrite without --force.
    let o = normflow(&["datasets", "moons", "--n", "200", "--out", s(&out)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        text,
        "the existing file was touched"
    );
    let o = normflow(&["datasets", "nope", "--out", s(&out)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown data set `nope`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn fit_eval_sample_round_trip() {
    let d = tmp("fit");
    let train = d.join("train.csv");
    let test = d.join("test.npy");
    assert!(
        normflow(&[
            "datasets",
            "moons",
            "--n",
            "2000",
            "--seed",
            "1",
            "--out",
            s(&train)
        ])
        .status
        .success()
    );
    assert!(
        normflow(&[
            "datasets",
            "moons",
            "--n",
            "500",
            "--seed",
            "2",
            "--out",
            s(&test)
        ])
        .status
        .success()
    );
    let model = d.join("model.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&train),
        "--flow",
        "maf(3, hidden = 32)",
        "--out",
        s(&model),
        "--epochs",
        "30",
        "--batch-size",
        "128",
        "--lr",
        "3e-3",
        "--standardize",
        "--valid-fraction",
        "0.1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    for key in [
        "epochs_run",
        "best_epoch",
        "train_nll",
        "valid_nll",
        "wall_s",
    ] {
        assert!(j.get(key).is_some(), "missing {key} in {j}");
    }
    // Held-out log-likelihood is sensible: two moons at noise 0.05 has a true
    // mean log-density of about −0.29, and the best single Gaussian scores
    // about −1.9 (½ log((2πe)² det Σ) with Σ the moons' covariance, det ≈ 0.15);
    // a small flow trained briefly must beat the Gaussian clearly.
    let o = normflow(&["eval", "--model", s(&model), "--data", s(&test), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["n"], 500);
    let ll = j["mean_log_prob"].as_f64().unwrap();
    assert!(ll > -1.4, "test log-likelihood {ll}");
    assert!(j["std_error"].as_f64().unwrap() > 0.0);
    // Per-row output to a file.
    let lp = d.join("lp.csv");
    assert!(
        normflow(&[
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&test),
            "--out",
            s(&lp)
        ])
        .status
        .success()
    );
    assert_eq!(std::fs::read_to_string(&lp).unwrap().lines().count(), 501);
    // Sampling.
    let samples = d.join("samples.csv");
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "100",
        "--out",
        s(&samples),
        "--seed",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&samples)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        100
    );
}

#[test]
fn fit_resume_continues_the_run() {
    let d = tmp("resume");
    let train = d.join("train.csv");
    assert!(
        normflow(&["datasets", "circles", "--n", "600", "--out", s(&train)])
            .status
            .success()
    );
    let ck = d.join("run.ckpt");
    let (m1, m2) = (d.join("a.json"), d.join("b.json"));
    let common = [
        "--data",
        s(&train),
        "--flow",
        "realnvp(2, hidden = 8)",
        "--batch-size",
        "100",
        "--seed",
        "5",
    ];
    // Two epochs with a checkpoint, then resume to four…
    let mut a: Vec<&str> = vec!["fit"];
    a.extend(common);
    a.extend(["--epochs", "2", "--checkpoint", s(&ck), "--out", s(&m1)]);
    assert!(normflow(&a).status.success());
    let mut b: Vec<&str> = vec!["fit"];
    b.extend(common);
    b.extend(["--epochs", "4", "--resume", s(&ck), "--out", s(&m2)]);
    let o = normflow(&b);
    assert!(o.status.success(), "{}", stderr(&o));
    // …equals four epochs in one go.
    let m3 = d.join("c.json");
    let mut c: Vec<&str> = vec!["fit"];
    c.extend(common);
    c.extend(["--epochs", "4", "--out", s(&m3)]);
    assert!(normflow(&c).status.success());
    assert_eq!(
        std::fs::read_to_string(&m2).unwrap(),
        std::fs::read_to_string(&m3).unwrap()
    );
}

#[test]
fn check_reports_every_property() {
    let o = normflow(&[
        "check",
        "--flow",
        "maf(2, hidden = 8, activation = tanh) >> permute >> nsf(bins = 4, hidden = 8, activation = tanh) >> actnorm",
        "--dim",
        "3",
    ]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for row in [
        "round trip",
        "log-det vs numerical Jacobian",
        "parameter gradients",
    ] {
        assert!(out.contains(row), "{row} missing:\n{out}");
    }
    // The MAF's sampling direction has no backward pass: reported, not failed.
    assert!(out.contains("skipped"), "{out}");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let d = tmp("bad");
    let ragged = d.join("ragged.csv");
    std::fs::write(&ragged, "1,2\n3,4\n5\n").unwrap();
    let nan = d.join("nan.csv");
    std::fs::write(&nan, "x,y\n1,2\n3,nan\n").unwrap();
    let text = d.join("text.csv");
    std::fs::write(&text, "1,2\n3,abc\n").unwrap();
    let empty = d.join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let good = d.join("good.csv");
    std::fs::write(&good, "1,2,3\n4,5,6\n7,8,9\n").unwrap();
    let out = d.join("m.json");
    let missing = d.join("missing.csv");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "fit",
                "--data",
                s(&missing),
                "--flow",
                "maf",
                "--out",
                s(&out),
            ],
            "missing.csv",
        ),
        (
            vec![
                "fit",
                "--data",
                s(&ragged),
                "--flow",
                "maf",
                "--out",
                s(&out),
            ],
            "line 3",
        ),
        (
            vec!["fit", "--data", s(&nan), "--flow", "maf", "--out", s(&out)],
            "line 3",
        ),
        (
            vec!["fit", "--data", s(&text), "--flow", "maf", "--out", s(&out)],
            "abc",
        ),
        (
            vec![
                "fit",
                "--data",
                s(&empty),
                "--flow",
                "maf",
                "--out",
                s(&out),
            ],
            "empty.csv",
        ),
        (
            vec![
                "fit",
                "--data",
                s(&good),
                "--flow",
                "mafx(3)",
                "--out",
                s(&out),
            ],
            "did you mean `maf`",
        ),
    ];
    for (args, needle) in cases {
        let o = normflow(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // A model of another dimension.
    let model = d.join("m2.json");
    assert!(
        normflow(&[
            "fit",
            "--data",
            s(&good),
            "--flow",
            "realnvp(hidden = 4)",
            "--out",
            s(&model),
            "--epochs",
            "1"
        ])
        .status
        .success()
    );
    let two = d.join("two.csv");
    std::fs::write(&two, "1,2\n3,4\n").unwrap();
    let o = normflow(&["eval", "--model", s(&model), "--data", s(&two)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("2 columns but the model is 3-dimensional"),
        "{}",
        stderr(&o)
    );
    // A malformed model file.
    let broken = d.join("broken.json");
    std::fs::write(
        &broken,
        "{\"format\": \"normflow-model\", \"version\": 1, \"spec\": ",
    )
    .unwrap();
    let o = normflow(&["eval", "--model", s(&broken), "--data", s(&two)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    // A newer format version.
    let newer = d.join("newer.json");
    let json = std::fs::read_to_string(&model)
        .unwrap()
        .replace("\"version\": 1", "\"version\": 7");
    std::fs::write(&newer, json).unwrap();
    let o = normflow(&["eval", "--model", s(&newer), "--data", s(&good)]);
    assert!(stderr(&o).contains("newer"), "{}", stderr(&o));
}
