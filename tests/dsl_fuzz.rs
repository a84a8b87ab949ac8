//! Fuzz-style property tests of the spec parser beyond `tests/dsl.rs`:
//! long and hostile strings, token soups with huge numbers, and mutated
//! valid specs (huge or negative numbers, duplicated keys, nesting, long
//! repetitions) never panic, and every diagnostic stays a few hundred
//! characters per line; any accepted spec gets a footprint without panicking.

use normflow::prelude::*;
use normflow::spec::ParseError;
use normflow_dsl::{LAYERS, ValueKind};
use proptest::prelude::*;
use proptest::sample::Index;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// The longest line a diagnostic may print.
const MAX_LINE: usize = 400;

/// Parses `text`: no panic; an error stays short and points inside the text;
/// an accepted spec gets a footprint for small dimensions and contexts.
fn check(text: &str) -> Result<(), TestCaseError> {
    let parsed = std::panic::catch_unwind(|| FlowSpec::parse(text));
    let Ok(parsed) = parsed else {
        return Err(TestCaseError::fail(format!(
            "the parser panicked on {:?}",
            &text[..text.len().min(200)]
        )));
    };
    match parsed {
        Err(e) => check_error(text, &e),
        Ok(spec) => {
            for dim in 1..=8 {
                for context in 0..=2 {
                    let fp = std::panic::catch_unwind(|| {
                        let fp = spec.footprint(dim, context).unwrap();
                        (
                            fp.model_bytes(8),
                            fp.evaluation_bytes(1 << 20, 4),
                            fp.training_bytes(usize::MAX, 8),
                        )
                    });
                    prop_assert!(fp.is_ok(), "footprint panicked on {spec} at {dim}");
                }
            }
            Ok(())
        }
    }
}

fn check_error(text: &str, e: &ParseError) -> Result<(), TestCaseError> {
    prop_assert!(e.offset() <= text.len());
    let shown = std::panic::catch_unwind(|| e.to_string());
    prop_assert!(shown.is_ok(), "rendering panicked");
    let shown = shown.unwrap();
    prop_assert!(shown.starts_with("error: "));
    prop_assert!(shown.lines().count() <= 7, "{}", shown);
    for line in shown.lines() {
        prop_assert!(
            line.chars().count() <= MAX_LINE,
            "a {}-character line:\n{}",
            line.chars().count(),
            shown
        );
    }
    Ok(())
}

/// Literals that overflow or sit at the edge of every numeric type.
const HUGE: &[&str] = &[
    "18446744073709551616",
    "18446744073709551615",
    "99999999999999999999999999999999",
    "1e400",
    "-1e400",
    "1e-400",
    "9223372036854775808",
    "4294967296",
    "0",
    "-1",
    "-0",
    "1.7976931348623157e308",
    "00000000000000000000000000000001",
    "1_000_000",
    ".",
    "1e",
    "--3",
];

/// A valid small layer with a random subset of its keys.
fn layer_text() -> impl Strategy<Value = String> {
    (0..LAYERS.len()).prop_flat_map(|i| {
        let def = &LAYERS[i];
        let keys: Vec<BoxedStrategy<Option<String>>> = def
            .keys
            .iter()
            .map(|k| {
                let name = k.name;
                let value = match k.kind {
                    ValueKind::PositiveInt => (1u64..9).prop_map(|v| v.to_string()).boxed(),
                    ValueKind::PositiveFloat => Just("2.5".to_string()).boxed(),
                    ValueKind::Bool => Just("true".to_string()).boxed(),
                    ValueKind::Activation => Just("elu".to_string()).boxed(),
                    ValueKind::Float => Just("-0.5".to_string()).boxed(),
                };
                proptest::option::of(value.prop_map(move |v| format!("{name} = {v}"))).boxed()
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

/// A char boundary of `text` chosen by `at`.
fn boundary(text: &str, at: &Index) -> usize {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    bounds[at.index(bounds.len())]
}

/// One way of breaking a valid spec.
#[derive(Debug, Clone)]
enum Mutation {
    /// Every number becomes this literal.
    Numbers(&'static str),
    /// A key given twice at the first `(`.
    DuplicateKey,
    /// The text nested inside another layer's parentheses.
    Nest(usize),
    /// A fragment inserted somewhere.
    Insert(Index, &'static str),
    /// The text cut somewhere.
    Truncate(Index),
    /// The text repeated, joined by `>>` (long lines, the layer limit).
    Repeat(usize),
    /// A character replaced by another.
    Replace(Index, char),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragment = proptest::sample::select(vec![
        "(",
        ")",
        ",",
        "=",
        ">>",
        ">",
        "{",
        "}",
        "hidden = ",
        "bins",
        " = = ",
        "maf(",
        "1e400",
        "18446744073709551616",
        "é",
        "\u{0}",
        "\n",
        "\t",
        "\r\n",
        "🦀",
        "_",
        "-",
        ".",
    ]);
    prop_oneof![
        proptest::sample::select(HUGE).prop_map(Mutation::Numbers),
        Just(Mutation::DuplicateKey),
        (1usize..40).prop_map(Mutation::Nest),
        (any::<Index>(), fragment).prop_map(|(i, f)| Mutation::Insert(i, f)),
        any::<Index>().prop_map(Mutation::Truncate),
        (2usize..4000).prop_map(Mutation::Repeat),
        (any::<Index>(), any::<char>()).prop_map(|(i, c)| Mutation::Replace(i, c)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    match m {
        Mutation::Numbers(lit) => {
            let mut out = String::new();
            let mut in_number = false;
            for c in text.chars() {
                if c.is_ascii_digit() || (in_number && c == '.') {
                    if !in_number {
                        out.push_str(lit);
                    }
                    in_number = true;
                } else {
                    in_number = false;
                    out.push(c);
                }
            }
            out
        }
        Mutation::DuplicateKey => match text.find('(') {
            Some(i) => format!("{}hidden = 3, hidden = 4, {}", &text[..=i], &text[i + 1..]),
            None => format!("{text}(depth = 1, depth = 2)"),
        },
        Mutation::Nest(n) => format!("{}{text}{}", "maf(".repeat(*n), ")".repeat(*n)),
        Mutation::Insert(at, f) => {
            let i = boundary(text, at);
            format!("{}{f}{}", &text[..i], &text[i..])
        }
        Mutation::Truncate(at) => text[..boundary(text, at)].to_string(),
        Mutation::Repeat(n) => vec![text; *n].join(" >> "),
        Mutation::Replace(at, c) => {
            let i = boundary(text, at);
            match text[i..].chars().next() {
                Some(old) => format!("{}{c}{}", &text[..i], &text[i + old.len_utf8()..]),
                None => format!("{text}{c}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Longer arbitrary strings, control characters included.
    #[test]
    fn long_random_strings_give_short_errors(text in "(?s).{0,300}") {
        check(&text)?;
    }

    /// One hostile token repeated into a huge line: the error stays short.
    #[test]
    fn huge_lines_give_short_errors(
        token in proptest::sample::select(vec!["maf", "mafx", "(", "9", "maf(3)", "é", "x_", ">> "]),
        times in 1usize..60_000,
        tail in proptest::sample::select(vec!["", " >> bad", ")", "(hidden = 0)"]),
    ) {
        check(&format!("{}{tail}", token.repeat(times)))?;
    }

    /// Token soup with huge and negative numbers, every key and some junk.
    #[test]
    fn token_soup_with_huge_numbers_never_panics(parts in proptest::collection::vec(prop_oneof![
        proptest::sample::select(HUGE),
        proptest::sample::select(vec![
            "maf", "iaf", "nsf", "spline_ar", "lu", "permute", "(", ")", ",", "=", ">>", " ",
            "hidden", "depth", "bins", "bound", "residual", "activation", "identity_init",
            "true", "relu", "x", "{}",
        ]),
    ], 0..64)) {
        check(&parts.concat())?;
    }

    /// Valid specs, broken one or two ways.
    #[test]
    fn mutated_specs_never_panic(text in spec_text(), first in mutation(), second in proptest::option::of(mutation())) {
        let mut t = apply(&text, &first);
        if let Some(m) = &second {
            t = apply(&t, m);
        }
        check(&t)?;
    }
}

/// Numbers at the edges give errors that say what is wrong with them.
#[test]
fn huge_and_negative_numbers_are_clear_errors() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "maf(hidden = 99999999999999999999)",
            14,
            "the integer `99999999999999999999` is too large",
        ),
        ("maf(18446744073709551616)", 5, "is too large"),
        (
            "maf(18446744073709551615)",
            5,
            "builds 36893488147419103229 layers",
        ),
        ("nsf(bound = 1e400)", 13, "too large for a 64-bit float"),
        ("nsf(bins = 0)", 12, "0 is out of range"),
        ("maf(0)", 5, "count of 0"),
        ("maf(-3)", 5, "the count must be at least 1, found `-3`"),
        (
            "maf(2.5)",
            5,
            "the count must be a whole number, found `2.5`",
        ),
        ("maf(hidden = -3)", 14, "-3 is out of range"),
        ("maf(depth = -1e300)", 13, "out of range"),
        ("nsf(bound = -2)", 13, "out of range"),
        ("actnorm(10001)", 9, "over the limit of 10000"),
        (
            "maf(5001)",
            5,
            "builds 10001 layers (with a reversal between consecutive copies)",
        ),
    ];
    for &(text, column, message) in cases {
        let e = FlowSpec::parse(text).expect_err(text);
        assert_eq!(e.column(), column, "{text}: {e}");
        assert!(e.message().contains(message), "{text}: {e}");
        assert!(e.to_string().lines().all(|l| l.chars().count() <= MAX_LINE));
    }
}

/// Quoted user text is cut: a 100 000-character unknown name is named by
/// its start.
#[test]
fn long_names_are_quoted_short() {
    let name = "q".repeat(100_000);
    for text in [
        name.clone(),
        format!("maf({name} = 3)"),
        format!("maf(activation = {name})"),
        format!("maf(identity_init = {name})"),
        format!("maf(hidden = {name})"),
        format!("maf >> {name}9"),
    ] {
        let e = FlowSpec::parse(&text).unwrap_err();
        let shown = e.to_string();
        assert!(shown.len() < 1500, "{} bytes", shown.len());
        assert!(
            shown.contains("(100000 characters)") || shown.contains("(100001 characters)"),
            "{shown}"
        );
    }
}
