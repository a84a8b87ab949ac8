//! The `normflow` binary with conditional models: `fit --context-columns` and
//! `--context`, `eval` and `sample` with contexts, and the bad-input cases
//! (one-line errors, exit code 1).

mod common;
use common::{normflow, s, stderr, stdout, tmp};

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;

/// `n` rows `x, y, c`: `c` uniform on (−1, 1) (a fixed low-discrepancy
/// sequence), `(x, y)` a small Gaussian blob centred at `(2c, −c)`.
fn paired_csv(path: &Path, n: usize, phase: f64) {
    let mut text = String::from("x,y,c\n");
    for k in 0..n {
        let c = ((k as f64 * 0.618_033_988_75 + phase) % 1.0) * 2.0 - 1.0;
        let (u, v) = (
            ((k * 7919) % 1000) as f64 / 1000.0 - 0.5,
            ((k * 104_729) % 1000) as f64 / 1000.0 - 0.5,
        );
        writeln!(text, "{},{},{c}", 2.0 * c + 0.3 * u, -c + 0.3 * v).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn error_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let e = stderr(o);
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    e
}

#[test]
fn fit_eval_sample_with_contexts() {
    let d = tmp("round");
    let (train, test, model) = (
        d.join("train.csv"),
        d.join("test.csv"),
        d.join("model.json"),
    );
    paired_csv(&train, 1500, 0.0);
    paired_csv(&test, 300, 0.37);
    let o = normflow(&[
        "fit",
        "--data",
        s(&train),
        "--context-columns",
        "1",
        "--flow",
        "maf(2, hidden = 32)",
        "--out",
        s(&model),
        "--epochs",
        "15",
        "--batch-size",
        "100",
        "--lr",
        "3e-3",
        "--standardize",
        "--valid-fraction",
        "0.1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(summary["valid_nll"].as_f64().is_some());
    let text = std::fs::read_to_string(&model).unwrap();
    assert!(text.contains("normflow-conditional-model"));

    // eval with the context in the last column.
    let o = normflow(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&test),
        "--context-columns",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(e["n"], 300);
    let cond_lp = e["mean_log_prob"].as_f64().unwrap();

    // The same with the contexts in a separate file.
    let (xs, cs) = (d.join("x.csv"), d.join("c.csv"));
    let rows: Vec<Vec<String>> = std::fs::read_to_string(&test)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    std::fs::write(
        &xs,
        rows.iter()
            .map(|r| format!("{},{}\n", r[0], r[1]))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(
        &cs,
        rows.iter()
            .map(|r| format!("{}\n", r[2]))
            .collect::<String>(),
    )
    .unwrap();
    let o = normflow(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&xs),
        "--context",
        s(&cs),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e2: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(e2["mean_log_prob"].as_f64().unwrap(), cond_lp);

    // The conditional model beats an unconditional one on the same data.
    let (plain, plain_model) = (d.join("plain.csv"), d.join("plain.json"));
    std::fs::copy(&xs, &plain).unwrap();
    let xtrain = d.join("xtrain.csv");
    let train_rows: String = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{}\n", f[0], f[1])
        })
        .collect();
    std::fs::write(&xtrain, train_rows).unwrap();
    let o = normflow(&[
        "fit",
        "--data",
        s(&xtrain),
        "--flow",
        "maf(2, hidden = 32)",
        "--out",
        s(&plain_model),
        "--epochs",
        "15",
        "--batch-size",
        "100",
        "--lr",
        "3e-3",
        "--standardize",
        "--valid-fraction",
        "0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = normflow(&[
        "eval",
        "--model",
        s(&plain_model),
        "--data",
        s(&plain),
        "--json",
    ]);
    let plain_lp: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(
        cond_lp > plain_lp["mean_log_prob"].as_f64().unwrap() + 0.5,
        "{cond_lp} vs {plain_lp}"
    );

    // sample: one per context row, or -n per row.
    let out = d.join("samples.csv");
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "--context",
        s(&cs),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 300);
    let o = normflow(&[
        "sample",
        "--model",
        s(&model),
        "--context",
        s(&cs),
        "-n",
        "3",
        "--out",
        s(&out),
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 900);
}

#[test]
fn bad_contexts_are_one_line_errors() {
    let d = tmp("bad");
    let (train, model) = (d.join("train.csv"), d.join("model.json"));
    paired_csv(&train, 200, 0.0);
    let o = normflow(&[
        "fit",
        "--data",
        s(&train),
        "--context-columns",
        "1",
        "--flow",
        "maf(hidden = 8)",
        "--out",
        s(&model),
        "--epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let short_c = d.join("short.csv");
    std::fs::write(&short_c, "0.1\n0.2\n").unwrap();
    let two_c = d.join("two.csv");
    std::fs::write(&two_c, "0.1,0.2\n0.2,0.3\n").unwrap();
    let x3 = d.join("x3.csv");
    std::fs::write(&x3, "1,2\n3,4\n5,6\n").unwrap();

    // Row counts differ.
    let e = error_line(&normflow(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&x3),
        "--context",
        s(&short_c),
    ]));
    assert!(e.contains("2 rows of context for 3 rows of data"), "{e}");
    // Wrong context dimension.
    let e = error_line(&normflow(&[
        "sample",
        "--model",
        s(&model),
        "--context",
        s(&two_c),
        "--out",
        s(&d.join("o.csv")),
    ]));
    assert!(
        e.contains("the context has 2 columns but the model takes a 1-dimensional context"),
        "{e}"
    );
    let e = error_line(&normflow(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&train),
        "--context-columns",
        "2",
    ]));
    assert!(
        e.contains("the data has 1 columns but the model is 2-dimensional"),
        "{e}"
    );
    // A conditional model without a context, and a context for a plain model.
    let e = error_line(&normflow(&["eval", "--model", s(&model), "--data", s(&x3)]));
    assert!(
        e.contains("conditional model") && e.contains("--context"),
        "{e}"
    );
    let e = error_line(&normflow(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "5",
        "--out",
        s(&d.join("o.csv")),
    ]));
    assert!(
        e.contains("conditional model") && e.contains("--context FILE"),
        "{e}"
    );
    let plain = d.join("plain.json");
    assert!(
        normflow(&[
            "fit",
            "--data",
            s(&x3),
            "--flow",
            "maf(hidden = 4)",
            "--out",
            s(&plain),
            "--epochs",
            "1"
        ])
        .status
        .success()
    );
    let e = error_line(&normflow(&[
        "eval",
        "--model",
        s(&plain),
        "--data",
        s(&x3),
        "--context",
        s(&short_c),
    ]));
    assert!(e.contains("takes no context"), "{e}");
    // Every column a context; fitting with mismatched context rows.
    let e = error_line(&normflow(&[
        "fit",
        "--data",
        s(&x3),
        "--context-columns",
        "2",
        "--flow",
        "maf",
        "--out",
        s(&d.join("m.json")),
    ]));
    assert!(e.contains("leaves no data columns"), "{e}");
    let e = error_line(&normflow(&[
        "fit",
        "--data",
        s(&x3),
        "--context",
        s(&short_c),
        "--flow",
        "maf",
        "--out",
        s(&d.join("m.json")),
    ]));
    assert!(e.contains("2 rows of context for 3 rows of data"), "{e}");
    let e = error_line(&normflow(&[
        "fit",
        "--data",
        s(&x3),
        "--context",
        s(&short_c),
        "--valid",
        s(&x3),
        "--flow",
        "maf",
        "--out",
        s(&d.join("m.json")),
    ]));
    assert!(
        e.contains("2 rows of context") || e.contains("--valid-context"),
        "{e}"
    );
    // Plotting a conditional model says what it is.
    let e = error_line(&normflow(&[
        "plot",
        "--model",
        s(&model),
        "--out",
        s(&d.join("p.png")),
    ]));
    assert!(e.contains("conditional model"), "{e}");
}
