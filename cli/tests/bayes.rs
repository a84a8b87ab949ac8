//! `vi` and `nuts`: a variational fit to a built-in target, saved and used
//! to precondition NUTS, with the JSON summaries and the bad-input cases.

mod common;
use common::{normflow, s, stderr, stdout, tmp};

fn last_json(o: &std::process::Output) -> serde_json::Value {
    let text = stdout(o);
    let line = text.lines().last().expect("a line on stdout");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn vi_then_neutra_on_the_funnel() {
    let d = tmp("bayes-vi-nuts");
    let q = d.join("q.json");
    let o = normflow(&[
        "vi",
        "--target",
        "funnel",
        "--dim",
        "4",
        "--flow",
        "iaf(2, hidden = 16)",
        "--steps",
        "300",
        "--out",
        s(&q),
        "--seed",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    for key in ["elbo", "log_z", "log_z_se", "ess", "pareto_k"] {
        assert!(j.get(key).is_some(), "`{key}` missing from {j}");
    }
    // The funnel is normalised (log Z = 0) and ELBO ≤ log Z; a short fit is
    // below but not far below it.
    let elbo = j["elbo"].as_f64().unwrap();
    assert!(elbo < 0.05 && elbo > -3.0, "{j}");
    let ess = j["ess"].as_f64().unwrap();
    assert!((1.0..=1000.0).contains(&ess), "{j}");
    assert!(q.exists());

    // NeuTra with the saved flow; draws written as CSV with a chain column.
    let draws = d.join("draws.csv");
    let o = normflow(&[
        "nuts",
        "--target",
        "funnel",
        "--dim",
        "4",
        "--flow-model",
        s(&q),
        "--chains",
        "2",
        "--tune",
        "200",
        "--draws",
        "100",
        "--seed",
        "1",
        "--out",
        s(&draws),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert_eq!(j["sampler"], "neutra");
    let chains = j["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2);
    for c in chains {
        for key in [
            "divergences",
            "grad_evals",
            "step_size",
            "ess_bulk_min",
            "rhat_max",
        ] {
            assert!(c[key].is_number(), "`{key}` of {c}");
        }
        assert!(c["grad_evals"].as_u64().unwrap() >= 100);
    }
    let text = std::fs::read_to_string(&draws).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "chain,v,x1,x2,x3");
    assert_eq!(lines.clone().count(), 200);
    assert!(lines.all(|l| l.split(',').count() == 5 && !l.contains("NaN")));

    // Plain NUTS, human-readable table: one row per chain and a total.
    let o = normflow(&[
        "nuts", "--target", "funnel", "--dim", "4", "--chains", "2", "--tune", "100", "--draws",
        "50",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("nuts on funnel") && out.contains("\nall "),
        "{out}"
    );
    assert!(!out.contains("NaN"), "{out}");

    // The draws file is not overwritten without --force, and the flow
    // model (an input) never is, even with --force.
    let before = std::fs::read_to_string(&draws).unwrap();
    let o = normflow(&[
        "nuts",
        "--target",
        "funnel",
        "--dim",
        "4",
        "--draws",
        "10",
        "--out",
        s(&draws),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&draws).unwrap(), before);
    let model = std::fs::read_to_string(&q).unwrap();
    let o = normflow(&[
        "nuts",
        "--target",
        "funnel",
        "--dim",
        "4",
        "--flow-model",
        s(&q),
        "--out",
        s(&q),
        "--force",
    ]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(&q).unwrap(), model);

    // A model of another dimension is refused with both dimensions named.
    let o = normflow(&[
        "nuts",
        "--target",
        "funnel",
        "--dim",
        "5",
        "--flow-model",
        s(&q),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("4-dimensional") && stderr(&o).contains("5-dimensional"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_targets_and_arguments_are_refused() {
    let d = tmp("bayes-bad");
    let q = d.join("q.json");
    let cases: [(&[&str], &str); 6] = [
        (
            &["vi", "--target", "nope", "--flow", "iaf(1)", "--out", s(&q)],
            "unknown --target `nope`",
        ),
        (
            &[
                "vi",
                "--target",
                "u1",
                "--dim",
                "3",
                "--flow",
                "iaf(1)",
                "--out",
                s(&q),
            ],
            "only `funnel` takes a --dim",
        ),
        (
            &[
                "vi",
                "--target",
                "funnel",
                "--dim",
                "1",
                "--flow",
                "iaf(1)",
                "--out",
                s(&q),
            ],
            "--dim",
        ),
        (
            &["vi", "--target", "u1", "--flow", "iaf(", "--out", s(&q)],
            "invalid --flow",
        ),
        (&["nuts", "--target", "u1", "--chains", "0"], "--chains"),
        (
            &["nuts", "--target", "u1", "--target-accept", "1.5"],
            "target_accept",
        ),
    ];
    for (args, needle) in cases {
        let o = normflow(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    assert!(!q.exists(), "a refused command wrote its output");
}

#[test]
fn vi_refuses_a_flow_without_a_forward_gradient() {
    // MAF samples sequentially; its forward direction has no backward pass.
    let d = tmp("bayes-maf");
    let q = d.join("maf.json");
    let o = normflow(&[
        "vi",
        "--target",
        "banana",
        "--flow",
        "maf(1)",
        "--steps",
        "5",
        "--out",
        s(&q),
    ]);
    assert!(!o.status.success());
    assert!(!q.exists());
    assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
    assert!(stderr(&o).contains("iaf"), "{}", stderr(&o));
    // A refused setting gets no fitting advice.
    let o = normflow(&[
        "vi",
        "--target",
        "banana",
        "--flow",
        "iaf(1)",
        "--batch-size",
        "0",
        "--out",
        s(&q),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("batch_size"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("may help"), "{}", stderr(&o));
    assert!(!q.exists());
}
