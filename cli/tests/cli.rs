//! Drives the built `normflow` binary: every subcommand on small inputs, and
//! the bad-input cases (exit code and message).

mod common;
use common::{normflow, s, stderr, stdout, tmp};

use std::path::Path;
use std::process::Command;

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
    let json = std::fs::read_to_string(&model).unwrap().replace(
        &format!("\"version\": {}", normflow::train::MODEL_FORMAT_VERSION),
        "\"version\": 7",
    );
    std::fs::write(&newer, json).unwrap();
    let o = normflow(&["eval", "--model", s(&newer), "--data", s(&good)]);
    assert!(stderr(&o).contains("newer"), "{}", stderr(&o));
}

/// Width, height and RGB pixels of a PNG.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// Asserts that a PNG has the given size and is a real picture: many
/// distinct colours and a good fraction of non-white pixels.
fn assert_picture(path: &Path, width: u32, height: u32, min_colours: usize, min_ink: f64) {
    let (w, h, px) = decode_png(path);
    assert_eq!((w, h), (width, height), "{}", path.display());
    let colours: std::collections::HashSet<[u8; 3]> = px.iter().copied().collect();
    let ink = px.iter().filter(|p| **p != [255, 255, 255]).count() as f64 / px.len() as f64;
    assert!(
        colours.len() >= min_colours,
        "{}: only {} distinct colours",
        path.display(),
        colours.len()
    );
    assert!(
        ink >= min_ink,
        "{}: only {:.1} % of the pixels are not white",
        path.display(),
        100.0 * ink
    );
}

/// Fits a small model to `data` (one epoch or two: the pictures only need a
/// model, not a good one).
fn quick_model(data: &Path, model: &Path, flow: &str) {
    let o = normflow(&[
        "fit",
        "--data",
        s(data),
        "--flow",
        flow,
        "--out",
        s(model),
        "--epochs",
        "2",
        "--batch-size",
        "100",
        "--standardize",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn plot_density_and_corner() {
    let d = tmp("plot");
    let moons = d.join("moons.csv");
    assert!(
        normflow(&["datasets", "moons", "--n", "500", "--out", s(&moons)])
            .status
            .success()
    );
    let m2 = d.join("m2.json");
    quick_model(&moons, &m2, "realnvp(2, hidden = 8)");
    let png2 = d.join("density.png");
    let o = normflow(&[
        "plot",
        "--model",
        s(&m2),
        "--data",
        s(&moons),
        "--out",
        s(&png2),
        "--width",
        "320",
        "--height",
        "240",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A heat map fills a good part of the picture with colour-map shades
    // (less at this small size, where axes and colour bar take room).
    assert_picture(&png2, 320, 240, 100, 0.3);
    // Without data the grid covers model samples.
    let png2b = d.join("density-nodata.png");
    let o = normflow(&["plot", "--model", s(&m2), "--out", s(&png2b)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_picture(&png2b, 600, 500, 100, 0.5);

    // A 3-D model: a corner plot.
    let data3 = d.join("d3.csv");
    let rows: String = (0..300)
        .map(|i| {
            let t = i as f64 / 30.0;
            format!(
                "{},{},{}\n",
                t.sin(),
                t.cos() * 0.5,
                (t * 0.7).sin() + t / 10.0
            )
        })
        .collect();
    std::fs::write(&data3, rows).unwrap();
    let m3 = d.join("m3.json");
    quick_model(&data3, &m3, "realnvp(2, hidden = 8)");
    let png3 = d.join("corner.png");
    let o = normflow(&[
        "plot",
        "--model",
        s(&m3),
        "--data",
        s(&data3),
        "--out",
        s(&png3),
        "--width",
        "450",
        "--height",
        "400",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Scatter points, histograms and text on white: fewer inked pixels.
    assert_picture(&png3, 450, 400, 20, 0.05);

    // The same output again is refused without --force and kept as it was.
    let before = std::fs::read(&png3).unwrap();
    let o = normflow(&["plot", "--model", s(&m3), "--out", s(&png3)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&png3).unwrap(), before);
    let o = normflow(&["plot", "--model", s(&m3), "--out", s(&png3), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_picture(&png3, 600, 500, 20, 0.05);
}

#[test]
fn demo_writes_model_and_pictures() {
    let d = tmp("demo");
    let out = d.join("demo");
    let o = normflow(&["demo", "--out", s(&out), "--epochs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("test log-likelihood"), "{}", stdout(&o));
    for name in ["model.json", "density.png", "samples.png", "loss.png"] {
        assert!(out.join(name).is_file(), "{name} missing");
        assert!(stdout(&o).contains(name), "{name} not reported");
    }
    assert_picture(&out.join("density.png"), 600, 500, 100, 0.5);
    assert_picture(&out.join("samples.png"), 900, 450, 20, 0.03);
    assert_picture(&out.join("loss.png"), 600, 400, 20, 0.03);
    // The model loads and samples.
    let samples = d.join("s.csv");
    let o = normflow(&[
        "sample",
        "--model",
        s(&out.join("model.json")),
        "-n",
        "10",
        "--out",
        s(&samples),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A non-empty folder is refused without --force…
    let before = std::fs::read(out.join("model.json")).unwrap();
    let o = normflow(&["demo", "--out", s(&out), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: ") && err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(out.join("model.json")).unwrap(), before);
    // …and written into with it.
    let o = normflow(&["demo", "--out", s(&out), "--epochs", "1", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(out.join("model.json")).unwrap(), before);
    // A file where the folder should be.
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    let o = normflow(&["demo", "--out", s(&file), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a folder"), "{}", stderr(&o));
}

#[test]
fn bench_json_for_every_op() {
    for op in ["log-prob", "sample", "train-step"] {
        for dtype in ["f32", "f64"] {
            let o = normflow(&[
                "bench",
                "--flow",
                "maf(2, hidden = 16) >> actnorm",
                "--dim",
                "3",
                "--batch",
                "64",
                "--op",
                op,
                "--dtype",
                dtype,
                "--repeat",
                "5",
                "--warmup",
                "1",
                "--json",
            ]);
            assert!(o.status.success(), "{op}: {}", stderr(&o));
            let out = stdout(&o);
            assert_eq!(out.trim().lines().count(), 1, "{out}");
            let j: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
            assert_eq!(j["op"], op);
            assert_eq!(j["dim"], 3);
            assert_eq!(j["batch"], 64);
            assert_eq!(j["dtype"], dtype);
            assert_eq!(j["repeat"], 5);
            assert_eq!(j["flow"], "maf(2, hidden = 16) >> actnorm");
            let get = |k: &str| {
                j[k].as_f64()
                    .unwrap_or_else(|| panic!("{k} missing in {j}"))
            };
            let (median, min, max) = (get("median_s"), get("min_s"), get("max_s"));
            assert!(min > 0.0 && min <= median && median <= max, "{j}");
            // samples per second = batch / median.
            assert!((get("samples_per_s") - 64.0 / median).abs() < 1e-6 * get("samples_per_s"));
            // The CLI builds with the gemm crate (feature `portable-gemm` at least).
            let kernels = j["kernels"]
                .as_str()
                .unwrap_or_else(|| panic!("kernels in {j}"));
            assert!(kernels.starts_with("gemm crate"), "{j}");
            // The masks' share of the products is counted for log-prob only.
            assert_eq!(j["kept_flops"].is_null(), op != "log-prob", "{j}");
        }
    }
    // The multiply-adds the masks keep, by the MADE rule (Germain et al.
    // 2015): at D = 2 every hidden unit has degree 1, so the first layer
    // keeps the H weights of input 1, the hidden layer all H², and the
    // output layer the 2H weights of the two parameters of coordinate 2.
    // Two MADEs of H = 16: 2 · (16 + 256 + 32) = 608 weights, 2 FLOP per
    // weight and sample, 64 samples.
    let o = normflow(&[
        "bench",
        "--flow",
        "maf(2, hidden = 16)",
        "--dim",
        "2",
        "--batch",
        "64",
        "--op",
        "log-prob",
        "--repeat",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["kept_flops"].as_f64(), Some(2.0 * 608.0 * 64.0), "{j}");
    let rate = j["kept_gflop_per_s"].as_f64().unwrap();
    let expected = 2.0 * 608.0 * 64.0 / j["median_s"].as_f64().unwrap() / 1e9;
    assert!((rate - expected).abs() <= 1e-9 * expected, "{j}");
    // Without --json: one readable line.
    let o = normflow(&[
        "bench", "--flow", "realnvp", "--dim", "2", "--batch", "8", "--op", "sample", "--repeat",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("samples/s"), "{}", stdout(&o));
}

/// Ctrl-C during `fit` stops after the current batch and still writes a
/// model that loads.
#[cfg(unix)]
#[test]
fn fit_stops_on_ctrl_c_and_writes_the_model() {
    use std::time::{Duration, Instant};
    let d = tmp("ctrlc");
    let train = d.join("train.csv");
    assert!(
        normflow(&["datasets", "moons", "--n", "2000", "--out", s(&train)])
            .status
            .success()
    );
    let model = d.join("model.json");
    let ck = d.join("run.ckpt");
    // Far more epochs than the test waits for.
    let mut child = Command::new(env!("CARGO_BIN_EXE_normflow"))
        .args([
            "fit",
            "--data",
            s(&train),
            "--flow",
            "maf(3, hidden = 32)",
            "--out",
            s(&model),
            "--epochs",
            "100000",
            "--checkpoint",
            s(&ck),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // The checkpoint appears after the first epoch: fitting has started and
    // the Ctrl-C handler is installed.
    let start = Instant::now();
    while !ck.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no epoch finished in 60 s"
        );
        assert!(child.try_wait().unwrap().is_none(), "fit ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stopped.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("fit did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // 130: the status shells expect after Ctrl-C (docs/cli.md, Guarantees).
    assert_eq!(status.code(), Some(130), "exit {status:?}: {err}");
    assert!(err.contains("interrupted after"), "{err}");
    // The model was written and loads.
    let o = normflow(&["eval", "--model", s(&model), "--data", s(&train), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(j["mean_log_prob"].as_f64().unwrap().is_finite(), "{j}");
}

#[test]
fn plot_and_bench_bad_inputs() {
    let d = tmp("bad-plot");
    let missing = d.join("missing.json");
    let out = d.join("p.png");
    let o = normflow(&["plot", "--model", s(&missing), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: ") && err.contains("missing.json"),
        "{err}"
    );
    assert!(!out.exists());
    // An existing output is refused before anything is read.
    std::fs::write(&out, "mine").unwrap();
    let o = normflow(&["plot", "--model", s(&missing), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "mine");
    // Not a PNG name.
    let moons = d.join("moons.csv");
    assert!(
        normflow(&["datasets", "moons", "--n", "200", "--out", s(&moons)])
            .status
            .success()
    );
    let model = d.join("m.json");
    quick_model(&moons, &model, "realnvp(hidden = 4)");
    let o = normflow(&["plot", "--model", s(&model), "--out", s(&d.join("p.jpg"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(".png"), "{}", stderr(&o));
    // Data of another dimension.
    let three = d.join("three.csv");
    std::fs::write(&three, "1,2,3\n4,5,6\n").unwrap();
    let o = normflow(&[
        "plot",
        "--model",
        s(&model),
        "--data",
        s(&three),
        "--out",
        s(&d.join("q.png")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("3 columns but the model is 2-dimensional"),
        "{}",
        stderr(&o)
    );

    // bench: an invalid spec shows the caret diagnostic.
    let o = normflow(&[
        "bench",
        "--flow",
        "maf(3) >> permte",
        "--dim",
        "2",
        "--batch",
        "8",
        "--op",
        "log-prob",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("^^^^^^") && err.contains("did you mean `permute`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // Dimension and batch of zero.
    for (flag, args) in [
        ("--dim", ["--dim", "0", "--batch", "8"]),
        ("--batch", ["--dim", "2", "--batch", "0"]),
    ] {
        let mut a = vec!["bench", "--flow", "maf", "--op", "sample"];
        a.extend(args);
        let o = normflow(&a);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        assert!(
            stderr(&o).contains(&format!("{flag} must be at least 1")),
            "{}",
            stderr(&o)
        );
    }
    // A layer that cannot be built for the dimension.
    let o = normflow(&[
        "bench", "--flow", "realnvp", "--dim", "1", "--batch", "8", "--op", "sample",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("at least 2"), "{}", stderr(&o));
    // An unknown operation is a usage error.
    let o = normflow(&[
        "bench", "--flow", "maf", "--dim", "2", "--batch", "8", "--op", "train",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn fit_with_sgd_and_weight_decay() {
    let d = tmp("optimizers");
    let train = d.join("train.csv");
    assert!(
        normflow(&["datasets", "moons", "--n", "600", "--out", s(&train)])
            .status
            .success()
    );
    let nll = |extra: &[&str], name: &str| -> f64 {
        let out = d.join(name);
        let mut args = vec![
            "fit",
            "--data",
            s(&train),
            "--flow",
            "maf(2, hidden = 16)",
            "--out",
            s(&out),
            "--epochs",
            "4",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = normflow(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        j["train_nll"].as_f64().unwrap()
    };
    let sgd = nll(
        &["--optimizer", "sgd", "--momentum", "0.9", "--lr", "1e-2"],
        "sgd.json",
    );
    let adamw = nll(&["--weight-decay", "1e-4"], "adamw.json");
    let adam = nll(&[], "adam.json");
    // Different optimisers take different steps from the same start.
    assert!(sgd.is_finite() && sgd != adam, "{sgd} {adam}");
    assert!(adamw.is_finite() && adamw != adam, "{adamw} {adam}");
    for (flags, needle) in [
        (
            ["--optimizer", "sgd", "--momentum", "1"],
            "--momentum must be in [0, 1)",
        ),
        (
            ["--weight-decay", "-1", "--optimizer", "adam"],
            "--weight-decay must be",
        ),
    ] {
        let mut args = vec![
            "fit",
            "--data",
            s(&train),
            "--flow",
            "maf",
            "--out",
            "never.json",
        ];
        args.extend(flags);
        let o = normflow(&args);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
}
