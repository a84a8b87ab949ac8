//! The flow DSL: parser round trips, robustness, macro/parser agreement,
//! building every layer, and compile-time errors of `flow!` (trybuild).

use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::spec::ParseError;
use normflow::testing::check_bijector;
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

/// A random valid value for a key kind, as text.
fn value_text(kind: ValueKind) -> BoxedStrategy<String> {
    match kind {
        ValueKind::PositiveInt => (1u64..500).prop_map(|v| v.to_string()).boxed(),
        ValueKind::PositiveFloat => prop_oneof![
            (1u64..20).prop_map(|v| v.to_string()),
            (1e-3f64..50.0).prop_map(|v| format!("{v}")),
            (1e-3f64..50.0).prop_map(|v| format!("{v:e}")),
        ]
        .boxed(),
        ValueKind::Bool => prop_oneof![Just("true".to_string()), Just("false".to_string())].boxed(),
        ValueKind::Activation => prop_oneof![
            Just("relu".to_string()),
            Just("tanh".to_string()),
            Just("elu".to_string())
        ]
        .boxed(),
        ValueKind::Float => prop_oneof![
            (0u64..20).prop_map(|v| v.to_string()),
            (-50.0f64..50.0).prop_map(|v| format!("{v}")),
            (-50.0f64..50.0).prop_map(|v| format!("{v:e}")),
        ]
        .boxed(),
    }
}

/// Random whitespace, including none.
fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("  "), Just("\n\t")]
}

/// A random valid layer as text, with any of its names, an optional count
/// and a random subset of its keys in random order.
fn layer_text() -> impl Strategy<Value = String> {
    (0..LAYERS.len()).prop_flat_map(|i| {
        let def = &LAYERS[i];
        let names: Vec<&'static str> = std::iter::once(def.name)
            .chain(def.aliases.iter().copied())
            .collect();
        let keys: Vec<BoxedStrategy<Option<String>>> = def
            .keys
            .iter()
            .map(|k| {
                let name = k.name;
                proptest::option::of(value_text(k.kind).prop_map(move |v| format!("{name} = {v}")))
                    .boxed()
            })
            .collect();
        // Shuffle the given keys: the canonical text sorts them.
        let args = keys.prop_flat_map(|ks| {
            Just(ks.into_iter().flatten().collect::<Vec<String>>()).prop_shuffle()
        });
        (
            proptest::sample::select(names),
            proptest::option::of(1u64..5),
            args,
            ws(),
            any::<bool>(),
        )
            .prop_map(|(name, count, mut args, w, trailing)| {
                if let Some(c) = count {
                    args.insert(0, c.to_string());
                }
                if args.is_empty() {
                    name.to_string()
                } else {
                    let sep = format!(",{w}");
                    format!(
                        "{name}({w}{}{}{w})",
                        args.join(&sep),
                        if trailing { "," } else { "" }
                    )
                }
            })
    })
}

fn spec_text() -> impl Strategy<Value = String> {
    (proptest::collection::vec(layer_text(), 1..6), ws())
        .prop_map(|(layers, w)| layers.join(&format!("{w}>>{w}")))
}

proptest! {
    #![proptest_config(config(256))]

    /// Any valid spec parses; its canonical text parses back to an equal spec,
    /// and printing that again gives the same text.
    #[test]
    fn display_then_parse_is_the_same_spec(text in spec_text()) {
        let spec = FlowSpec::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}:\n{e}")))?;
        let canonical = spec.to_string();
        let again = FlowSpec::parse(&canonical).map_err(|e| TestCaseError::fail(format!("{canonical:?}:\n{e}")))?;
        prop_assert_eq!(&again, &spec);
        prop_assert_eq!(again.to_string(), canonical.clone());
        // FromStr and serde agree with parse.
        prop_assert_eq!(canonical.parse::<FlowSpec>().unwrap(), spec.clone());
        let json = serde_json::to_string(&spec).unwrap();
        prop_assert_eq!(serde_json::from_str::<FlowSpec>(&json).unwrap(), spec);
    }

    /// Arbitrary strings never panic the parser: they parse or return an error
    /// whose offset lies inside (or at the end of) the text.
    #[test]
    fn random_strings_never_panic(text in "\\PC{0,40}") {
        check_no_panic(&text)?;
    }

    /// Token soup from the DSL's own alphabet reaches deeper into the parser.
    #[test]
    fn random_token_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("maf"), Just("nsf"), Just("("), Just(")"), Just(","), Just("="), Just(">>"), Just(">"),
        Just("hidden"), Just("bins"), Just("bound"), Just("3"), Just("0"), Just("-2.5"), Just("1e9"),
        Just("true"), Just("relu"), Just("{x}"), Just("{"), Just(" "), Just("é"), Just("99999999999999999999999"),
    ], 0..16)) {
        check_no_panic(&parts.concat())?;
    }
}

fn check_no_panic(text: &str) -> Result<(), TestCaseError> {
    match std::panic::catch_unwind(|| FlowSpec::parse(text)) {
        Err(_) => Err(TestCaseError::fail(format!("parser panicked on {text:?}"))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            prop_assert!(
                e.offset() <= text.len(),
                "offset {} past the end of {text:?}",
                e.offset()
            );
            let shown = e.to_string(); // rendering must not panic either
            prop_assert!(shown.starts_with("error: "));
            Ok(())
        }
    }
}

/// The macro and the parser agree on a corpus of specs.
#[test]
fn macro_and_parser_agree() {
    let corpus: Vec<(FlowSpec, &str)> = vec![
        (
            flow!(maf(3) >> permute >> iaf(2)),
            "maf(3) >> permute >> iaf(2)",
        ),
        (flow!(maf), "maf"),
        (flow!(maf(1)), "maf"),
        (
            flow!(nsf(2, bins = 4, bound = 5)),
            "spline_coupling(2, bins = 4, bound = 5.0)",
        ),
        (
            flow!(spline_coupling(bound = 2.5, bins = 10,)),
            "nsf(bins = 10, bound = 2.5)",
        ),
        (
            flow!(realnvp(
                4,
                hidden = 128,
                depth = 3,
                activation = tanh,
                identity_init = false
            )),
            "realnvp(4, hidden = 128, depth = 3, activation = tanh, identity_init = false)",
        ),
        (
            flow!(planar(8) >> radial(2, identity_init = false)),
            "planar(8)>>radial(2,identity_init=false)",
        ),
        (
            flow!(batchnorm >> actnorm >> lu >> reverse >> permute),
            "batchnorm >> actnorm >> lu >> reverse >> permute",
        ),
        (
            flow!(exp >> sigmoid >> tanh >> softplus),
            "exp >> sigmoid >> tanh >> softplus",
        ),
        (
            flow!(spline_ar(2, bins = 3, bound = 1e-1, activation = elu)),
            "spline_ar(2, bins = 3, bound = 0.1, activation = elu)",
        ),
        (flow!(nice(2, depth = 1)), "nice(2, depth = 1)"),
    ];
    for (from_macro, text) in corpus {
        let parsed = FlowSpec::parse(text).unwrap_or_else(|e| panic!("{text}:\n{e}"));
        assert_eq!(from_macro, parsed, "{text}");
    }
}

#[test]
fn parse_errors_point_at_the_problem() {
    let cases: &[(&str, usize, &str, Option<&str>)] = &[
        ("mafx(3) >> permute", 1, "unknown layer `mafx`", Some("maf")),
        (
            "maf(3) >> permte",
            11,
            "unknown layer `permte`",
            Some("permute"),
        ),
        ("maf(0)", 5, "count of 0", None),
        ("maf(3, bins = 4)", 8, "takes no key `bins`", None),
        ("maf(hiden = 4)", 5, "takes no key `hiden`", Some("hidden")),
        ("nsf(bins = 2.5)", 12, "wrong type", None),
        ("nsf(bins = 0)", 12, "out of range", None),
        ("nsf(bound = 0)", 13, "out of range", None),
        ("nsf(bound = -1.5)", 13, "out of range", None),
        ("maf(depth = 0)", 13, "out of range", None),
        ("maf(hidden = 0)", 14, "out of range", None),
        (
            "maf(activation = rleu)",
            18,
            "unknown activation `rleu`",
            Some("relu"),
        ),
        (
            "maf(identity_init = ture)",
            21,
            "not a boolean",
            Some("true"),
        ),
        ("maf(identity_init = 1)", 21, "wrong type", None),
        ("maf(3", 4, "never closed", None),
        ("maf >>", 7, "ends early", None),
        ("maf permute", 5, "expected `>>`", None),
        (
            "maf >> { x }",
            8,
            "only work inside the `flow!` macro",
            None,
        ),
        ("", 1, "empty", None),
        ("permute(hidden = 3)", 9, "takes no key `hidden`", None),
    ];
    for &(text, column, message, suggestion) in cases {
        let e: ParseError = FlowSpec::parse(text).expect_err(text);
        assert_eq!(e.column(), column, "{text}: {e}");
        assert!(e.message().contains(message), "{text}: {e}");
        assert_eq!(e.suggestion(), suggestion, "{text}: {e}");
        let shown = e.to_string();
        // A caret line under the offending column.
        let caret_line = shown
            .lines()
            .find(|l| l.contains('^'))
            .expect("a caret line");
        let caret_col = caret_line.find('^').unwrap() - caret_line.find('|').unwrap() - 2 + 1;
        assert_eq!(caret_col, column, "{text}:\n{shown}");
    }
}

/// Every layer name builds for dims 1, 2, 3 and 7 (or says why not) and the
/// built flow, with random (non-identity) initialisation, passes the kit.
#[test]
fn every_layer_builds_and_passes_the_kit() {
    for def in LAYERS {
        for dim in [1usize, 2, 3, 7] {
            let mut text = def.name.to_string();
            if def.keys.iter().any(|k| k.name == "identity_init") {
                text.push_str("(2, identity_init = false");
                if def.keys.iter().any(|k| k.name == "hidden") {
                    text.push_str(", hidden = 16");
                }
                text.push(')');
            }
            let spec = FlowSpec::parse(&text).unwrap();
            let mut rng = StdRng::seed_from_u64(dim as u64);
            match spec.build::<f64>(dim, &mut rng) {
                Err(e) => {
                    let is_coupling = matches!(
                        def.name,
                        "nice" | "realnvp" | "spline_coupling" | "circular_spline"
                    );
                    assert!(is_coupling && dim == 1, "{text} for dim {dim}: {e}");
                    assert!(matches!(e, Error::Build { .. }));
                    assert!(e.to_string().contains("at least 2"), "{e}");
                }
                Ok(flow) => {
                    let x = DMatrix::from_fn(dim, 6, |i, j| {
                        let v = ((i * 7 + j * 3) as f64 * 0.77).sin() * 1.5;
                        // `power` acts on (0, ∞), `reciprocal` on R without 0.
                        match def.name {
                            "power" | "reciprocal" => 0.2 + v.abs(),
                            _ => v,
                        }
                    });
                    // Elementwise maps with a restricted image: check them on
                    // their domain in the forward direction.
                    let report = check_bijector(&flow, &x)
                        .unwrap_or_else(|f| panic!("{text} for dim {dim}: {f}"));
                    // `ordered` in one dimension is the identity.
                    let volume_preserving = matches!(def.name, "nice" | "permute" | "reverse")
                        || (def.name == "ordered" && dim == 1);
                    if !volume_preserving {
                        assert!(
                            report.max_abs_log_det > 0.0,
                            "{text} for dim {dim}: trivial log-det"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn repeated_layers_alternate_as_documented() {
    let mut rng = StdRng::seed_from_u64(3);
    let flow = FlowSpec::parse("maf(3, hidden = 8) >> realnvp(2, hidden = 8)")
        .unwrap()
        .build::<f64>(4, &mut rng)
        .unwrap();
    use normflow::spec::FlowLayer;
    let kinds: Vec<&str> = flow
        .layers()
        .iter()
        .map(|l| match l {
            FlowLayer::Maf(_) => "maf",
            FlowLayer::Permute(p) if p.permutation() == [3, 2, 1, 0] => "reverse",
            FlowLayer::RealNvp(_) => "realnvp",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "maf", "reverse", "maf", "reverse", "maf", "realnvp", "realnvp"
        ]
    );
    let (FlowLayer::RealNvp(a), FlowLayer::RealNvp(b)) = (&flow.layers()[5], &flow.layers()[6])
    else {
        unreachable!()
    };
    assert_eq!(a.mask().complement(), *b.mask());
    assert_eq!(a.mask().identity_indices(), &[0, 1]);
}

#[test]
fn built_distribution_is_a_density() {
    let mut rng = StdRng::seed_from_u64(4);
    let spec = flow!(
        maf(2, hidden = 16, identity_init = false)
            >> permute
            >> iaf(2, hidden = 16, identity_init = false)
    );
    let dist = spec.build_distribution::<f64>(2, &mut rng).unwrap();
    let z = normflow::testing::check_density_normalizes(
        &dist,
        &[-12.0, -12.0],
        &[12.0, 12.0],
        301,
        2e-3,
    )
    .unwrap();
    assert!((z - 1.0).abs() < 2e-3);
    let (x, lp) = dist.sample_and_log_prob(16, &mut rng);
    assert!((dist.log_prob(&x) - lp).amax() < 1e-8);
}

#[test]
fn same_seed_builds_the_same_flow() {
    let spec = flow!(realnvp(2, identity_init = false) >> permute >> planar(identity_init = false));
    let a = spec.build::<f64>(3, &mut StdRng::seed_from_u64(5)).unwrap();
    let b = spec.build::<f64>(3, &mut StdRng::seed_from_u64(5)).unwrap();
    assert_eq!(a, b);
    let c = spec.build::<f64>(3, &mut StdRng::seed_from_u64(6)).unwrap();
    assert_ne!(a, c);
}

#[test]
fn zero_dimension_is_an_error() {
    let e = flow!(maf)
        .build::<f64>(0, &mut StdRng::seed_from_u64(0))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidDimension { .. }));
}

#[test]
fn user_layers_in_the_macro() {
    let mut rng = StdRng::seed_from_u64(7);
    let builder = flow!(realnvp(hidden = 8) >> { Exp } >> { Invert::new(Exp) } >> maf(hidden = 8));
    let chain: Chain<f64> = builder.build(3, &mut rng).unwrap();
    assert_eq!(chain.len(), 4);
    let x = DMatrix::from_fn(3, 4, |i, j| (i + j) as f64 * 0.2);
    check_bijector(&chain, &x).unwrap();
    // A user layer of the wrong dimension is reported.
    let e = flow!(maf >> { Permute::reverse(2).unwrap() })
        .build(3, &mut rng)
        .map(|c: Chain<f64>| c.len())
        .unwrap_err();
    assert!(matches!(e, Error::DimensionMismatch { .. }), "{e}");
}

/// Compile-time errors of `flow!` point at the offending token.
#[test]
fn macro_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
