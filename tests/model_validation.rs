//! Loading models: every field of a saved model is checked, and a bad one is
//! an `Error::Format` naming the file and the field; no input makes the
//! loaders panic, abort or allocate without bound.

use nalgebra::DMatrix;
use normflow::nn::ConditionerConfig;
use normflow::prelude::*;
use normflow::train::{BaseSpec, FitOptions, FlowModel, fit};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

fn data(n: usize, seed: u64) -> DMatrix<f64> {
    let d = Normal::new(
        nalgebra::DVector::from_vec(vec![3.0, -1.0]),
        nalgebra::DVector::from_vec(vec![0.5, 2.0]),
    )
    .unwrap();
    d.sample(n, &mut StdRng::seed_from_u64(seed))
}

/// A fitted model with every kind of saved field: a standardisation,
/// parameters, ActNorm's flag (layer 1) and batch-norm statistics (layer 3).
fn saved_model() -> Value {
    let mut model =
        FlowModel::<f64>::new(&flow!(actnorm >> maf(hidden = 4) >> batchnorm), 2, 3).unwrap();
    let opts = FitOptions {
        epochs: 1,
        batch_size: 16,
        standardize: true,
        ..Default::default()
    };
    fit(&mut model, &data(64, 1), &opts).unwrap();
    let v: Value = serde_json::from_str(&model.to_json()).unwrap();
    // The layout the tests below rely on: the flag, two means, two variances.
    assert_eq!(v["state"].as_array().unwrap().len(), 5);
    v
}

fn load(v: &Value) -> Result<FlowModel<f64>, Error> {
    FlowModel::<f64>::from_json(&v.to_string())
}

/// Loading `v` fails with an `Error::Format` whose message contains every
/// one of `parts`.
#[track_caller]
fn refused(v: &Value, parts: &[&str]) -> String {
    let e = load(v).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Format { .. }), "{msg}");
    for p in parts {
        assert!(msg.contains(p), "expected {p:?} in: {msg}");
    }
    assert!(msg.chars().count() < 1000, "{} chars: {msg}", msg.len());
    msg
}

fn with(v: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = v.clone();
    edit(&mut v);
    v
}

#[test]
fn a_valid_model_loads_as_it_was_saved() {
    let v = saved_model();
    let model = load(&v).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&model.to_json()).unwrap(), v);
}

#[test]
fn batch_norm_state_is_checked_layer_by_layer() {
    let v = saved_model();
    let msg = refused(
        &with(&v, |v| v["state"][4] = json!(-2.0)),
        &["field `state`"],
    );
    assert!(
        msg.ends_with(
            "field `state`: layer 3 (batchnorm): running variance[1] is -2, expected ≥ 0"
        ),
        "{msg}"
    );
    refused(
        &with(&v, |v| v["state"][1] = json!(1e308 * 10.0)), // serde_json writes a non-finite number as null
        &["field `state`", "entry [1] is null"],
    );
    refused(
        &with(&v, |v| v["state"][2] = json!("NaN")),
        &["field `state`", "entry [2]", "expected a number"],
    );
    refused(
        &with(&v, |v| v["state"][0] = json!(0.5)),
        &["field `state`: layer 1 (actnorm)", "expected 0 or 1"],
    );
    refused(
        &with(&v, |v| {
            v["state"].as_array_mut().unwrap().pop();
        }),
        &["field `state`", "expected 5 values", "has 4"],
    );
    // A zero running variance is legal (ε keeps √(v + ε) positive).
    assert!(load(&with(&v, |v| v["state"][3] = json!(0.0))).is_ok());
}

#[test]
fn parameters_are_counted_and_finite() {
    let v = saved_model();
    refused(
        &with(&v, |v| {
            v["params"].as_array_mut().unwrap().pop();
        }),
        &["field `params`", "the file has"],
    );
    refused(
        &with(&v, |v| v["params"][3] = json!("NaN")),
        &["field `params`", "entry [3]", "\"NaN\""],
    );
    refused(
        &with(&v, |v| v["params"] = json!("1, 2, 3")),
        &[
            "field `params`",
            "expected an array of numbers, found a string",
        ],
    );
    // Finite in f64 but not in f32: refused by an f32 model, naming the entry.
    let huge = with(&v, |v| v["params"][0] = json!(1e300));
    assert!(load(&huge).is_ok());
    let e = FlowModel::<f32>::from_json(&huge.to_string()).unwrap_err();
    assert!(
        e.to_string().contains("field `params`") && e.to_string().contains("[0] is 1e300"),
        "{e}"
    );
}

#[test]
fn the_standardization_is_checked_before_anything_is_built() {
    let v = saved_model();
    refused(
        &with(&v, |v| v["standardization"]["std"][1] = json!(-1.0)),
        &["field `standardization`", "std[1] is -1", "finite positive"],
    );
    refused(
        &with(&v, |v| v["standardization"]["std"][0] = json!(0.0)),
        &["field `standardization`", "std[0] is 0"],
    );
    refused(
        &with(&v, |v| {
            v["standardization"]["mean"]
                .as_array_mut()
                .unwrap()
                .push(json!(1.0))
        }),
        &["field `standardization`", "has 3 means, expected 2"],
    );
    refused(
        &with(&v, |v| v["standardization"]["mean"][0] = json!("inf")),
        &["field `standardization`", "string \"inf\""],
    );
    // A dimension of 10^12 is refused by the standardisation's length, before
    // anything of that size is allocated…
    refused(
        &with(&v, |v| v["dim"] = json!(1_000_000_000_000u64)),
        &["field `standardization`", "expected 1000000000000"],
    );
    // …and without one, by the memory the flow would need.
    refused(
        &with(&v, |v| {
            v["dim"] = json!(1_000_000_000_000u64);
            v["standardization"] = Value::Null;
        }),
        &["field `dim`", "1000000000000 dimensions", "memory"],
    );
}

#[test]
fn scalar_fields_name_themselves() {
    let v = saved_model();
    for (field, value) in [
        ("dim", json!(0)),
        ("dim", json!(-1)),
        ("dim", json!(2.5)),
        ("dim", json!("2")),
        ("seed", json!(-1)),
        ("seed", json!("seven")),
        ("spec", json!(3)),
        ("format", json!("normflow-something")),
        ("version", json!("2")),
        ("standardization", json!([1, 2])),
    ] {
        refused(
            &with(&v, |v| v[field] = value.clone()),
            &[&format!("field `{field}`")],
        );
    }
    for field in ["spec", "dim", "seed", "params", "state"] {
        refused(
            &with(&v, |v| {
                v.as_object_mut().unwrap().remove(field);
            }),
            &[&format!("field `{field}`"), "missing"],
        );
    }
    // A consistent but different dimension: the parameter count cannot match.
    refused(
        &with(&v, |v| {
            v["dim"] = json!(3);
            v["standardization"] = Value::Null;
        }),
        &["field `params`", "in 3 dimensions has"],
    );
    let e = FlowModel::<f64>::from_json("[1, 2]").unwrap_err();
    assert!(e.to_string().contains("expected a JSON object"), "{e}");
}

/// A spec of 20 000 layers (over the limit) and one of 5 000 (within it, but
/// with the wrong parameter count): both refused in a message of bounded
/// length.
#[test]
fn long_specs_give_short_messages() {
    let v = saved_model();
    for layers in [20_000, 5_000] {
        let spec = vec!["actnorm"; layers].join(" >> ");
        let msg = refused(&with(&v, |v| v["spec"] = json!(spec)), &["field `"]);
        assert!(
            msg.contains("field `spec`") || msg.contains("field `params`"),
            "{msg}"
        );
    }
}

fn saved_conditional() -> Value {
    let base = BaseSpec::DiagonalGaussian(ConditionerConfig {
        hidden: 4,
        ..Default::default()
    });
    let model = FlowModel::<f64>::conditional_with_base(
        &flow!(maf(hidden = 4) >> batchnorm),
        2,
        1,
        base,
        0,
    )
    .unwrap();
    let v: Value = serde_json::from_str(&model.to_json()).unwrap();
    assert_eq!(v["state"].as_array().unwrap().len(), 4);
    v
}

#[test]
fn conditional_models_check_their_own_fields_too() {
    let v = saved_conditional();
    let load = |v: &Value| FlowModel::<f64>::from_json(&v.to_string());
    let x = DMatrix::from_element(2, 3, 0.5);
    let c = DMatrix::from_element(1, 3, 0.1);
    let good = load(&v).unwrap();
    assert!(good.log_prob_given(&x, &c).iter().all(|l| l.is_finite()));
    let cases: Vec<(Value, &[&str])> = vec![
        (
            with(&v, |v| v["state"][3] = json!(-1.0)),
            &["field `state`: layer 2 (batchnorm): running variance[1] is -1"],
        ),
        (
            with(&v, |v| {
                v["base"]["diagonal_gaussian"]["hidden"] = json!(1_000_000_000_000u64)
            }),
            &["field `base`", "at least"],
        ),
        (
            with(&v, |v| v["base"] = json!("lognormal")),
            &["field `base`"],
        ),
        (
            with(&v, |v| v["context_dim"] = json!(0)),
            &["field `context_dim`"],
        ),
        (
            with(&v, |v| v["context_dim"] = json!(1_000_000_000_000u64)),
            &["field `context_dim`", "memory"],
        ),
        (
            with(&v, |v| {
                v["context_standardization"] = json!({"mean": [0.0, 1.0], "std": [1.0, 1.0]})
            }),
            &[
                "field `context_standardization`",
                "expected 1 (the field `context_dim`)",
            ],
        ),
        (
            with(&v, |v| {
                v["params"].as_array_mut().unwrap().pop();
            }),
            &["field `params`"],
        ),
        (
            with(&v, |v| v["format"] = json!("normflow-model")),
            &["field `format`", "normflow-conditional-model"],
        ),
    ];
    for (bad, parts) in cases {
        let e = load(&bad).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Format { .. }), "{msg}");
        for p in parts {
            assert!(msg.contains(p), "expected {p:?} in: {msg}");
        }
    }
}

// ---- fuzzing: random mutations never panic ----

/// A JSON value of any kind, including the awkward ones (huge, negative,
/// non-integer, strings that look like numbers, long strings).
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        (0u64..8).prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
        prop::sample::select(vec![
            "NaN",
            "inf",
            "-1",
            "maf",
            "",
            "maf(hidden = 1000000000)",
            "lu >> lu",
            "actnorm >> batchnorm",
            "diagonal_gaussian",
            "standard_normal",
        ])
        .prop_map(|s| json!(s)),
        "[a-z(),= >0-9]{0,40}".prop_map(Value::String),
        prop::collection::vec(any::<f64>(), 0..6).prop_map(|v| json!(v)),
        Just(json!({"mean": [0.0], "std": [-1.0]})),
        Just(
            json!({"diagonal_gaussian": {"hidden": 4, "depth": 1000000000000u64, "activation": "relu", "identity_init": true}})
        ),
    ]
}

/// Sets the entry at `path` (a top-level key, or a key and an index into its
/// array) of `v` to `x`, or removes the key when `x` is `None`.
fn mutate(v: &mut Value, key: &str, index: usize, x: Option<Value>) {
    let obj = v.as_object_mut().unwrap();
    match x {
        None => {
            obj.remove(key);
        }
        Some(x) => match obj.get_mut(key) {
            Some(Value::Array(a)) if !a.is_empty() && index % 2 == 1 => {
                let i = index % a.len();
                a[i] = x;
            }
            _ => {
                obj.insert(key.to_string(), x);
            }
        },
    }
}

/// Edits of the text itself: cut it, or splice characters in.
fn edit_text(text: &str, at: usize, cut: usize, insert: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + cut).min(chars.len());
    chars[..at]
        .iter()
        .chain(insert.chars().collect::<Vec<_>>().iter())
        .chain(chars[end..].iter())
        .collect()
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

const MODEL_KEYS: &[&str] = &[
    "format",
    "version",
    "spec",
    "dim",
    "seed",
    "standardization",
    "params",
    "state",
];
const CONDITIONAL_KEYS: &[&str] = &[
    "format",
    "version",
    "spec",
    "dim",
    "context_dim",
    "seed",
    "base",
    "standardization",
    "context_standardization",
    "params",
    "state",
];

proptest! {
    #![proptest_config(config(96))]

    /// Random field mutations of a valid model: the loader returns a model
    /// or an error; a model it returns evaluates without NaN.
    #[test]
    fn mutated_models_never_panic(
        edits in prop::collection::vec(
            (prop::sample::select(MODEL_KEYS), any::<usize>(), prop::option::weighted(0.9, any_json())),
            1..4,
        )
    ) {
        let mut v = saved_model_cached().clone();
        for (key, index, x) in edits {
            mutate(&mut v, key, index, x);
        }
        if let Ok(m) = load(&v).map_err(|e| e.to_string()).and_then(|m| {
            if m.dim() == 2 { Ok(m) } else { Err("another dimension".into()) }
        }) {
            let lp = m.log_prob(&data(8, 2));
            prop_assert!(lp.iter().all(|l| !l.is_nan()));
        }
    }

    /// Random text edits of a valid model: never a panic.
    #[test]
    fn edited_model_text_never_panics(
        at in any::<usize>(), cut in 0usize..40, insert in "[\\[\\]{}\",:0-9a-z.e-]{0,12}"
    ) {
        let text = edit_text(&saved_model_cached().to_string(), at, cut, &insert);
        let _ = FlowModel::<f64>::from_json(&text);
        let _ = FlowModel::<f32>::from_json(&text);
    }

    /// Random field mutations of a valid conditional model: never a panic.
    #[test]
    fn mutated_conditional_models_never_panic(
        edits in prop::collection::vec(
            (prop::sample::select(CONDITIONAL_KEYS), any::<usize>(), prop::option::weighted(0.9, any_json())),
            1..4,
        )
    ) {
        let mut v = saved_conditional();
        for (key, index, x) in edits {
            mutate(&mut v, key, index, x);
        }
        let loaded = FlowModel::<f64>::from_json(&v.to_string());
        if let Ok(m) = loaded.ok().filter(|m| m.dim() == 2 && m.context_dim() == 1).ok_or(()) {
            let lp = m.log_prob_given(&DMatrix::from_element(2, 3, 0.5), &DMatrix::from_element(1, 3, 0.1));
            prop_assert!(lp.iter().all(|l| !l.is_nan()));
        }
    }
}

/// [`saved_model`], fitted once for all the fuzz cases.
fn saved_model_cached() -> &'static Value {
    static MODEL: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    MODEL.get_or_init(saved_model)
}
