//! Sizes and depth: the footprint of a spec matches what is built, flows too
//! large for memory are refused before anything is allocated, the layer
//! limit holds in every front end, and the deepest flow allowed trains on a
//! small stack.

use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::resources::{Footprint, MEMORY_LIMIT_VAR, check_memory_with_limit, memory_limit};
use normflow::spec::MAX_LAYERS;
use normflow::train::{FitOptions, FlowModel, TrainableDensity, fit};
use normflow_dsl::{LAYERS, ValueKind};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// A random small value for a key, as text.
fn value_text(name: &'static str, kind: ValueKind) -> BoxedStrategy<String> {
    match (name, kind) {
        ("bins", _) => (1u64..6).prop_map(|v| v.to_string()).boxed(),
        ("depth", _) => (1u64..4).prop_map(|v| v.to_string()).boxed(),
        (_, ValueKind::PositiveInt) => (1u64..12).prop_map(|v| v.to_string()).boxed(),
        (_, ValueKind::PositiveFloat) => Just("2.5".to_string()).boxed(),
        (_, ValueKind::Bool) => {
            prop_oneof![Just("true".to_string()), Just("false".to_string())].boxed()
        }
        (_, ValueKind::Activation) => Just("tanh".to_string()).boxed(),
        // Keeps `low < high` of `soft_clip` whichever of the two is given.
        ("low", ValueKind::Float) => Just("-1.5".to_string()).boxed(),
        ("high", ValueKind::Float) => Just("2".to_string()).boxed(),
        (_, ValueKind::Float) => Just("0.5".to_string()).boxed(),
    }
}

/// A random layer of the DSL with a random subset of its keys and count.
fn layer_text() -> impl Strategy<Value = String> {
    (0..LAYERS.len()).prop_flat_map(|i| {
        let def = &LAYERS[i];
        let keys: Vec<BoxedStrategy<Option<String>>> = def
            .keys
            .iter()
            .map(|k| {
                let name = k.name;
                proptest::option::of(
                    value_text(name, k.kind).prop_map(move |v| format!("{name} = {v}")),
                )
                .boxed()
            })
            .collect();
        (proptest::option::of(1u64..4), keys).prop_map(move |(count, keys)| {
            let mut args: Vec<String> = count.map(|c| c.to_string()).into_iter().collect();
            args.extend(keys.into_iter().flatten());
            if args.is_empty() {
                def.name.to_string()
            } else {
                format!("{}({})", def.name, args.join(", "))
            }
        })
    })
}

fn spec_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(layer_text(), 1..4).prop_map(|v| v.join(" >> "))
}

proptest! {
    #![proptest_config(config(96))]

    /// The footprint's parameter and layer counts are those of the built
    /// flow, unconditional and conditional, whenever the flow builds.
    #[test]
    fn footprint_counts_match_built_flows(text in spec_text(), dim in 1usize..=8, context in 0usize..4) {
        let spec = FlowSpec::parse(&text).unwrap();
        let fp = spec.footprint(dim, context).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        if context == 0 {
            let Ok(flow) = spec.build::<f64>(dim, &mut rng) else { return Ok(()) };
            prop_assert_eq!(fp.params(), Some(flow.num_params() as u64), "{} at D = {}", text, dim);
            prop_assert_eq!(fp.layers(), Some(flow.layers().len() as u64), "{}", text);
        } else {
            let Ok(flow) = spec.build_conditional::<f64>(dim, context, &mut rng) else { return Ok(()) };
            prop_assert_eq!(
                fp.params(),
                Some(flow.num_params() as u64),
                "{} at D = {}, C = {}", text, dim, context
            );
            prop_assert_eq!(fp.layers(), Some(flow.layers().len() as u64), "{}", text);
        }
        // The estimates grow with what they cover.
        let model = fp.model_bytes(8).unwrap();
        let eval = fp.evaluation_bytes(64, 8).unwrap();
        let train = fp.training_bytes(64, 8).unwrap();
        prop_assert!(model >= 8 * fp.params().unwrap());
        prop_assert!(model < eval && eval < train, "{} {} {}", model, eval, train);
    }
}

fn footprint(text: &str, dim: usize) -> Footprint {
    FlowSpec::parse(text).unwrap().footprint(dim, 0).unwrap()
}

#[test]
fn small_flows_are_far_below_any_limit() {
    let fp = footprint("maf(5, hidden = 128)", 2);
    // 5 MADEs 2 → 128 → 128 → 4: (2·128 + 128) + (128·128 + 128) + (128·4 + 4).
    assert_eq!(fp.params(), Some(5 * (384 + 16_512 + 516)));
    assert!(fp.model_bytes(8).unwrap() < 5_000_000);
    assert!(fp.training_bytes(256, 8).unwrap() < 50_000_000);
    let mut rng = StdRng::seed_from_u64(0);
    assert!(
        FlowSpec::parse("maf(5, hidden = 128)")
            .unwrap()
            .build::<f64>(2, &mut rng)
            .is_ok()
    );
}

#[test]
fn impossible_flows_are_refused_against_an_explicit_limit() {
    const GB: u64 = 1_000_000_000;
    for (text, dim) in [
        ("maf(hidden = 1000000000)", 2),
        ("maf(2)", 1_000_000_000_000),
        ("maf(2)", 100_000_000),
        ("exp", 1_000_000_000_000),
        ("lu", 1_000_000),
        ("maf(hidden = 18446744073709551615)", 2),
    ] {
        let fp = footprint(text, dim);
        let bytes = fp.model_bytes(8);
        let e = check_memory_with_limit(|| format!("`{text}`"), bytes, 8 * GB).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("over the limit of 8.0 GB"), "{shown}");
        assert!(shown.contains("NORMFLOW_MEMORY_LIMIT"), "{shown}");
    }
    // The overflowing one says so rather than printing a wrapped number.
    let fp = footprint("maf(hidden = 18446744073709551615, depth = 3)", 2);
    assert_eq!(fp.params(), None);
    let e = check_memory_with_limit(|| "it".into(), fp.model_bytes(4), 8 * GB).unwrap_err();
    assert!(e.to_string().contains("more than 2^64 bytes"), "{e}");
}

/// With the machine's own limit (the variable is never set in this test
/// binary), building refuses at once instead of aborting.
#[test]
fn building_refuses_impossible_flows_before_allocating() {
    assert!(std::env::var_os(MEMORY_LIMIT_VAR).is_none() || memory_limit() < 1 << 50);
    let mut rng = StdRng::seed_from_u64(0);
    for (text, dim) in [
        ("maf(hidden = 1000000000)", 2),
        ("maf(2)", 1_000_000_000_000),
        ("maf(2)", 100_000_000),
        ("exp", 1_000_000_000_000),
        ("permute", usize::MAX),
    ] {
        let spec = FlowSpec::parse(text).unwrap();
        let e = spec.build::<f32>(dim, &mut rng).unwrap_err();
        let shown = e.to_string();
        assert!(
            matches!(e, Error::TooLarge { .. }),
            "{text} at {dim}: {shown}"
        );
        assert!(shown.contains(&format!("in {dim} dimensions")), "{shown}");
        assert!(shown.contains("parameters"), "{shown}");
        // The same through the model and the conditional builds.
        assert!(matches!(
            FlowModel::<f64>::new(&spec, dim, 0),
            Err(Error::TooLarge { .. })
        ));
        let e = spec.build_conditional::<f64>(dim, 3, &mut rng).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    }
    // A model file claiming an absurd dimension.
    let model = FlowModel::<f64>::new(&FlowSpec::parse("actnorm").unwrap(), 2, 0).unwrap();
    let json = model.to_json();
    let edited = json.replacen("\"dim\": 2", "\"dim\": 1000000000000", 1);
    assert_ne!(
        json, edited,
        "the model file names its dimension as `\"dim\": 2`"
    );
    let e = FlowModel::<f64>::from_json(&edited).unwrap_err();
    assert!(!e.to_string().is_empty());
}

#[test]
fn the_layer_limit_holds_everywhere() {
    // The parser points at the layer that passes it.
    let text = format!("{} >> maf", vec!["actnorm"; MAX_LAYERS].join(" >> "));
    let e = FlowSpec::parse(&text).unwrap_err();
    assert!(e.message().contains("10001 layers"), "{e}");
    assert!(
        e.to_string().lines().all(|l| l.chars().count() < 400),
        "{e}"
    );
    let e = FlowSpec::parse("maf(5001)").unwrap_err();
    assert!(e.message().contains("10001 layers"), "{e}");
    assert!(FlowSpec::parse("maf(5000)").is_ok());
    // Specs joined with `then` are checked when built.
    let half = FlowSpec::parse("actnorm(6000)").unwrap();
    let joined = half.clone().then(half);
    let mut rng = StdRng::seed_from_u64(0);
    let e = joined.build::<f64>(2, &mut rng).unwrap_err();
    assert!(matches!(e, Error::Build { position: 1, .. }), "{e}");
    assert!(e.to_string().contains("12000 layers"), "{e}");
    let e = joined.build_conditional::<f64>(2, 1, &mut rng).unwrap_err();
    assert!(matches!(e, Error::Build { .. }), "{e}");
}

/// A model file whose spec has 20 000 layers gives a short error.
#[test]
fn a_huge_spec_in_a_model_file_gives_a_short_error() {
    let model = FlowModel::<f64>::new(&FlowSpec::parse("actnorm").unwrap(), 2, 0).unwrap();
    let json = model.to_json();
    let huge = vec!["actnorm"; 20_000].join(" >> ");
    let edited = json.replacen("\"actnorm\"", &format!("\"{huge}\""), 1);
    assert_ne!(json, edited);
    let e = FlowModel::<f64>::from_json(&edited)
        .unwrap_err()
        .to_string();
    assert!(
        e.len() < 2000,
        "{} bytes: {}",
        e.len(),
        &e[..500.min(e.len())]
    );
    assert!(e.lines().all(|l| l.chars().count() < 400), "{e}");
}

/// The deepest flow allowed, one training step on a small batch.
fn train_deepest() {
    let spec = FlowSpec::parse(&format!("actnorm({MAX_LAYERS})")).unwrap();
    let mut model = FlowModel::<f64>::new(&spec, 2, 0).unwrap();
    assert_eq!(model.flow().layers().len(), MAX_LAYERS);
    let x = DMatrix::from_fn(2, 8, |i, j| (i as f64) - 0.3 * j as f64);
    let mut grad = vec![0.0; model.num_params()];
    let lp = model.mean_log_prob_and_grad(&x, &mut grad).unwrap();
    assert!(lp.is_finite());
    assert!(grad.iter().all(|g| g.is_finite()));
    let options = FitOptions {
        epochs: 1,
        batch_size: 8,
        ..FitOptions::default()
    };
    let report = fit(&mut model, &x, &options).unwrap();
    assert_eq!(report.epochs_run, 1);
}

#[test]
fn the_deepest_flow_trains_on_the_main_stack() {
    train_deepest();
}

#[test]
fn the_deepest_flow_trains_on_a_small_thread_stack() {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(train_deepest)
        .unwrap()
        .join()
        .expect("training on a 256 KB stack");
}

/// The variable is read: run in a child process (this same test binary,
/// with the variable set), so that no test here changes the environment
/// another one reads.
#[test]
fn the_environment_variable_sets_the_limit() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_with_a_100_mb_limit",
            "--ignored",
            "--test-threads=1",
        ])
        .env(MEMORY_LIMIT_VAR, "100M")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
#[ignore = "run by the_environment_variable_sets_the_limit with NORMFLOW_MEMORY_LIMIT=100M"]
fn child_with_a_100_mb_limit() {
    if std::env::var(MEMORY_LIMIT_VAR).as_deref() != Ok("100M") {
        return;
    }
    assert_eq!(memory_limit(), 100_000_000);
    // A MADE 2 → 4000 → 4000 → 4: about 16 M parameters and as many mask
    // entries, 256 MB in f64: over 100 MB, though the machine could hold it.
    let spec = FlowSpec::parse("maf(hidden = 4000)").unwrap();
    let fp = spec.footprint(2, 0).unwrap();
    assert!(fp.model_bytes(8).unwrap() > 100_000_000);
    let mut rng = StdRng::seed_from_u64(0);
    let e = spec.build::<f64>(2, &mut rng).unwrap_err();
    assert!(e.to_string().contains("over the limit of 100.0 MB"), "{e}");
    assert!(spec.build::<f64>(2, &mut rng).is_err());
    // Small flows still build.
    assert!(
        FlowSpec::parse("maf(2, hidden = 16)")
            .unwrap()
            .build::<f64>(2, &mut rng)
            .is_ok()
    );
}
