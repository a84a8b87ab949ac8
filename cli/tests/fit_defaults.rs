//! What `fit` does when it is told nothing: which rows it holds out for
//! validation (and so which epoch the model keeps), and in which precision it
//! trains.

mod common;
use common::{normflow, s, stderr, stdout, tmp};

use std::path::{Path, PathBuf};

/// `n` rows of two moons in `dir`.
fn moons(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("moons-{n}.csv"));
    let o = normflow(&[
        "datasets",
        "moons",
        "--n",
        &n.to_string(),
        "--seed",
        "1",
        "--out",
        s(&path),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    path
}

/// Runs a short `fit --json` of `data` with `extra` flags: the summary
/// object and what was printed on stderr.
fn fit(data: &Path, out: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let mut args = vec![
        "fit",
        "--data",
        s(data),
        "--flow",
        "maf(2, hidden = 8)",
        "--out",
        s(out),
        "--epochs",
        "4",
        "--batch-size",
        "32",
        "--json",
        "--force",
    ];
    args.extend_from_slice(extra);
    let o = normflow(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    (j, stderr(&o))
}

#[test]
fn a_tenth_is_held_out_by_default_and_the_best_epoch_kept() {
    let d = tmp("held-out");
    let data = moons(&d, 200);
    let model = d.join("m.json");
    let (j, err) = fit(&data, &model, &[]);
    // Validation happened: a validation NLL and a best epoch among those run.
    let valid = j["valid_nll"].as_f64().unwrap_or_else(|| panic!("{j}"));
    assert!(valid.is_finite(), "{j}");
    let best = j["best_epoch"].as_u64().unwrap();
    assert!((1..=4).contains(&best), "{j}");
    assert!(err.contains("holding out 10 % of the rows"), "{err}");
    assert!(err.contains("--valid-fraction 0"), "{err}");

    // The same as asking for it: `--valid-fraction 0.1` gives the same model,
    // and says nothing about a default.
    let asked = d.join("asked.json");
    let (j2, err2) = fit(&data, &asked, &["--valid-fraction", "0.1"]);
    assert_eq!(j2["valid_nll"], j["valid_nll"]);
    assert!(!err2.contains("holding out"), "{err2}");
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap(),
        std::fs::read_to_string(&model).unwrap()
    );
}

#[test]
fn valid_fraction_zero_trains_on_every_row() {
    let d = tmp("no-validation");
    let data = moons(&d, 200);
    let (j, err) = fit(&data, &d.join("m.json"), &["--valid-fraction", "0"]);
    assert!(j.get("valid_nll").is_none(), "{j}");
    assert_eq!(j["epochs_run"], 4, "{j}");
    assert!(!err.contains("holding out"), "{err}");
    // Early stopping needs validation data, so it is refused, with the reason.
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--flow",
        "maf(2, hidden = 8)",
        "--out",
        s(&d.join("p.json")),
        "--valid-fraction",
        "0",
        "--patience",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("validation"), "{}", stderr(&o));
    assert!(!d.join("p.json").exists());
}

#[test]
fn fewer_than_twenty_rows_all_train() {
    let d = tmp("few-rows");
    let data = moons(&d, 19);
    let (j, err) = fit(&data, &d.join("m.json"), &[]);
    assert!(j.get("valid_nll").is_none(), "{j}");
    assert!(!err.contains("holding out"), "{err}");
    // From twenty rows on, two of them validate.
    let data = moons(&d, 20);
    let (j, _) = fit(&data, &d.join("m20.json"), &[]);
    assert!(j["valid_nll"].as_f64().is_some(), "{j}");
}

#[test]
fn a_bad_valid_fraction_is_refused_and_names_the_range() {
    let d = tmp("bad-fraction");
    let data = moons(&d, 50);
    for bad in ["-0.1", "1", "1.5", "NaN"] {
        let out = d.join("m.json");
        let o = normflow(&[
            "fit",
            "--data",
            s(&data),
            "--flow",
            "maf(2, hidden = 8)",
            "--out",
            s(&out),
            "--valid-fraction",
            bad,
        ]);
        assert!(!o.status.success(), "{bad} was accepted");
        let err = stderr(&o);
        assert!(err.contains("validation fraction"), "{bad}: {err}");
        assert!(!err.contains("NaN") || bad == "NaN", "{bad}: {err}");
        assert!(!out.exists(), "{bad}: a model was written");
    }
}

/// Every number of a model file's parameters.
fn params(model: &Path) -> Vec<f64> {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model).unwrap()).unwrap();
    j["params"]
        .as_array()
        .expect("a params array")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn the_default_precision_is_f32_and_f64_is_one_flag_away() {
    let d = tmp("precision");
    let data = moons(&d, 200);
    // A model trained in f32 is saved in f64, but each of its parameters is
    // an f32 value; f64 training leaves values that f32 cannot hold.
    let is_f32 = |v: &f64| (*v as f32) as f64 == *v;
    let default = d.join("default.json");
    fit(&data, &default, &[]);
    let p = params(&default);
    assert!(!p.is_empty() && p.iter().all(is_f32), "default fit not f32");
    let wide = d.join("f64.json");
    fit(&data, &wide, &["--dtype", "f64"]);
    let p = params(&wide);
    assert!(!p.iter().all(is_f32), "--dtype f64 trained in f32");
    let narrow = d.join("f32.json");
    fit(&data, &narrow, &["--dtype", "f32"]);
    assert_eq!(
        std::fs::read_to_string(&narrow).unwrap(),
        std::fs::read_to_string(&default).unwrap()
    );
}

#[test]
fn a_context_beyond_f32_is_refused_with_the_way_out() {
    let d = tmp("context-range");
    let data = d.join("pairs.csv");
    // The last column is the context; row 7's is finite in f64 only.
    let rows: String = (0..30)
        .map(|i| {
            let c = if i == 6 {
                "2e300".to_string()
            } else {
                i.to_string()
            };
            format!("{},{c}\n", 0.1 * i as f64)
        })
        .collect();
    std::fs::write(&data, rows).unwrap();
    let out = d.join("cond.json");
    let o = normflow(&[
        "fit",
        "--data",
        s(&data),
        "--context-columns",
        "1",
        "--flow",
        "maf(2, hidden = 8)",
        "--out",
        s(&out),
        "--epochs",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("the training contexts: row 7, column 1: 2e300 is beyond the range of f32"),
        "{err}"
    );
    assert!(err.contains("--dtype f64"), "{err}");
    assert!(!out.exists());
}
