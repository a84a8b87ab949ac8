//! Property suite: every bijector and combinator of the core, with random
//! parameters and random inputs (f64), through `normflow::testing::check_bijector`,
//! plus the algebra laws of `Invert` and `Chain`.
//!
//! Each `proptest!` block runs `CASES` cases; each case checks a batch of `N`
//! samples of dimension 1 to 4.

use nalgebra::{DMatrix, DVector};
use normflow::prelude::*;
use normflow::testing::strategies::{
    self, batch, batch_of, log_uniform_positive, log_uniform_signed, value,
};
use normflow::testing::{CheckReport, check_bijector, check_equivalent};
use proptest::prelude::*;

const CASES: u32 = 256;
const N: usize = 8;

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    }
}

/// Runs the kit and, where the bijector's log-det is known to be nonzero on the
/// input, insists that it was (a zero log-det cannot reveal a sign error).
fn run<B: Bijector<f64> + ?Sized>(
    b: &B,
    x: &DMatrix<f64>,
    nontrivial: bool,
) -> Result<CheckReport, TestCaseError> {
    let report = check_bijector(b, x).map_err(|f| TestCaseError::fail(format!("{b:?}: {f}")))?;
    if nontrivial {
        prop_assert!(
            report.max_abs_log_det > 1e-6,
            "log-det was identically ~0 on this input: {report:?}"
        );
    }
    Ok(report)
}

/// Inputs for the sigmoid: the negative side down to −700 (its log-det must stay
/// finite there), the positive side up to 12. Above ~12, σ(x) rounds to within
/// a few ulps of 1 and no inverse can recover x to 1e-8 in f64.
fn sigmoid_inputs(d: usize) -> impl Strategy<Value = DMatrix<f64>> {
    batch_of(
        d,
        N,
        prop_oneof![2 => value(12.0), 1 => log_uniform_positive(1e-12, 700.0).prop_map(|v| -v)],
    )
}

/// Inputs away from the kink of a leaky ReLU (central differences across a
/// kink measure the average slope, not either one).
fn off_kink_inputs(d: usize) -> impl Strategy<Value = DMatrix<f64>> {
    batch_of(d, N, log_uniform_signed(1e-3, 100.0))
}

/// A `Scale` with magnitudes in `[0.2, 3]` and random signs, for long chains
/// where larger factors compound into ill-conditioned Jacobians.
fn mild_scale(d: usize) -> impl Strategy<Value = Scale<f64>> {
    strategies::vector_of(d, log_uniform_signed(0.2, 3.0)).prop_map(|v| Scale::new(v).unwrap())
}

fn dim() -> impl Strategy<Value = usize> {
    1usize..=4
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn exp_passes(x in dim().prop_flat_map(|d| strategies::batch_with_extremes(d, N, 300.0))) {
        run(&Exp, &x, false)?;
    }

    #[test]
    fn sigmoid_passes(x in dim().prop_flat_map(sigmoid_inputs)) {
        run(&Sigmoid, &x, true)?;
    }

    #[test]
    fn tanh_passes(x in dim().prop_flat_map(|d| strategies::batch_with_extremes(d, N, 8.0))) {
        run(&Tanh, &x, false)?;
    }

    #[test]
    fn softplus_passes(x in dim().prop_flat_map(|d| strategies::batch_with_extremes(d, N, 700.0))) {
        run(&Softplus, &x, true)?;
    }

    #[test]
    fn leaky_relu_passes((b, x) in dim().prop_flat_map(|d| (strategies::leaky_relu(), off_kink_inputs(d)))) {
        run(&b, &x, false)?;
    }

    #[test]
    fn scale_passes((b, x) in dim().prop_flat_map(|d| (strategies::scale(d), batch(d, N, 10.0)))) {
        run(&b, &x, false)?;
    }

    #[test]
    fn scale_tril_passes((b, x) in dim().prop_flat_map(|d| (strategies::scale_tril(d), batch(d, N, 10.0)))) {
        run(&b, &x, false)?;
    }

    #[test]
    fn shift_and_permute_pass_inside_a_chain_with_scale(
        (s, p, sc, x) in dim().prop_flat_map(|d| (strategies::shift(d), strategies::permute(d), strategies::scale(d), batch(d, N, 10.0)))
    ) {
        // Alone, Shift, Permute and Identity have log-det 0; chained with a
        // Scale the total is nonzero and a sign error anywhere would show.
        run(&s, &x, false)?;
        run(&p, &x, false)?;
        run(&Identity, &x, false)?;
        let c = Chain::new(vec![Box::new(s), Box::new(p), Box::new(Identity), Box::new(sc)]).unwrap();
        run(&c, &x, false)?;
    }

    #[test]
    fn invert_exp_passes_on_tiny_and_huge_positives(x in dim().prop_flat_map(|d| strategies::positive_batch(d, N, 1e-300, 1e300))) {
        run(&Invert::new(Exp), &x, true)?;
    }

    #[test]
    fn invert_sigmoid_passes_near_the_ends(x in dim().prop_flat_map(|d| strategies::unit_interval_batch(d, N))) {
        run(&Invert::new(Sigmoid), &x, true)?;
    }

    #[test]
    fn invert_tanh_passes_near_the_ends(x in dim().prop_flat_map(|d| strategies::symmetric_unit_batch(d, N))) {
        run(&Invert::new(Tanh), &x, false)?;
    }

    #[test]
    fn invert_softplus_passes(x in dim().prop_flat_map(|d| strategies::positive_batch(d, N, 1e-10, 500.0))) {
        run(&Invert::new(Softplus), &x, true)?;
    }

    #[test]
    fn invert_of_parametrised_bijectors_passes(
        (sc, l, lr, x) in dim().prop_flat_map(|d| (strategies::scale(d), strategies::scale_tril(d), strategies::leaky_relu(), off_kink_inputs(d)))
    ) {
        run(&Invert::new(sc), &x, false)?;
        run(&Invert::new(l), &x, false)?;
        run(&Invert::new(lr), &x, false)?;
    }

    #[test]
    fn mixed_chain_passes(
        (l, p, sc, x) in dim().prop_flat_map(|d| (strategies::scale_tril(d), strategies::permute(d), mild_scale(d), batch(d, N, 0.1)))
    ) {
        // tanh keeps the ScaleTriL output bounded, so Exp stays in range. The
        // tanh argument stays below ~5 (|L| ≤ 10 + 2 (D − 1), |b| ≤ 3): beyond
        // that tanh is within 1e-4 of ±1 and its derivative falls below what
        // central differences resolve against the spacing of doubles near 1.
        // The scale before Exp stays below 3 in magnitude: with a factor of 20,
        // exp amplifies the output to ~e^20 while the derivative of a
        // saturated tanh is ~1e-2, and the rounding error of a difference
        // quotient (ε |f| / h) then reaches 1e-6 of the Jacobian entries.
        let c = Chain::new(vec![
            Box::new(l),
            Box::new(Tanh),
            Box::new(p),
            Box::new(sc),
            Box::new(Exp),
            Box::new(Invert::new(Softplus)),
        ]).unwrap();
        run(&c, &x, true)?;
        run(&Invert::new(c.clone()), &c.forward(&x), true)?;
    }

    #[test]
    fn blockwise_passes(
        (l, d2, seed) in dim().prop_flat_map(|d1| (strategies::scale_tril(d1), dim(), any::<u64>())),
    ) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let d1 = l.shift().len();
        let b = Blockwise::new(vec![
            (Box::new(l) as Box<dyn Bijector<f64>>, d1),
            (Box::new(Sigmoid), d2),
            (Box::new(Permute::random(d2, &mut rng).unwrap()), d2),
        ]).unwrap();
        let x = DMatrix::from_fn(d1 + 2 * d2, N, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.7 - 3.5);
        let r = run(&b, &x, true)?;
        prop_assert_eq!(r.samples, N);
    }

    // ---- algebra laws ----

    #[test]
    fn invert_invert_is_the_original(
        (l, x) in dim().prop_flat_map(|d| (strategies::scale_tril(d), batch(d, N, 3.0)))
    ) {
        let chain = Chain::new(vec![Box::new(l), Box::new(Sigmoid)]).unwrap();
        check_equivalent(&Invert::new(Invert::new(chain.clone())), &chain, &x, 1e-12)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
        check_equivalent(&Invert::new(Invert::new(Tanh)), &Tanh, &x, 0.0)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
    }

    #[test]
    fn invert_of_chain_is_chain_of_inverts_reversed(
        (a, b, x) in dim().prop_flat_map(|d| (strategies::scale_tril(d), strategies::scale(d), batch(d, N, 3.0)))
    ) {
        // Invert(Chain(a, Exp, b)) ≡ Chain(Invert(b), Invert(Exp), Invert(a)),
        // checked on inputs in the image of the chain (the domain of its inverse).
        let chain = Chain::new(vec![Box::new(a.clone()), Box::new(Exp), Box::new(b.clone())]).unwrap();
        let reversed = Chain::new(vec![
            Box::new(Invert::new(b)),
            Box::new(Invert::new(Exp)),
            Box::new(Invert::new(a)),
        ]).unwrap();
        let y = chain.forward(&x.map(|v| v * 0.5));
        prop_assume!(y.iter().all(|v| v.is_finite()));
        check_equivalent(&Invert::new(chain), &reversed, &y, 1e-10)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
    }

    #[test]
    fn then_builds_the_same_chain_as_new(
        (s, sh, x) in dim().prop_flat_map(|d| (strategies::scale(d), strategies::shift(d), batch(d, N, 1.0)))
    ) {
        let by_then = s.clone().then(Exp).then(sh.clone());
        let by_new = Chain::new(vec![Box::new(s), Box::new(Exp), Box::new(sh)]).unwrap();
        prop_assert_eq!(by_then.len(), 3); // Chain::then flattens
        check_equivalent(&by_then, &by_new, &x, 0.0).map_err(|f| TestCaseError::fail(f.to_string()))?;
    }
}

// ---- stability far in the tails ----

/// The log-dets of softplus, sigmoid and tanh stay finite (and match their
/// asymptotic forms) for |x| up to 700 in f64, where the true values are finite.
#[test]
fn log_dets_are_finite_far_in_the_tails() {
    let xs: [f64; 6] = [-700.0, -300.0, -40.0, 40.0, 300.0, 700.0];
    let x = DMatrix::from_row_slice(1, xs.len(), &xs);
    let sig = Sigmoid.forward_log_det_jacobian(&x);
    let tanh = Tanh.forward_log_det_jacobian(&x);
    let sp = Softplus.forward_log_det_jacobian(&x);
    for (k, &v) in xs.iter().enumerate() {
        // log σ'(x) = −|x| − 2 log(1 + e^{−|x|}) → −|x| (to 1e-17 for |x| ≥ 40).
        assert!(
            (sig[k] + v.abs()).abs() < 1e-12,
            "sigmoid at {v}: {}",
            sig[k]
        );
        // log tanh'(x) = log 4 − 2|x| − 2 log(1 + e^{−2|x|}) → log 4 − 2|x|.
        assert!(
            (tanh[k] - (4.0_f64.ln() - 2.0 * v.abs())).abs() < 1e-12,
            "tanh at {v}: {}",
            tanh[k]
        );
        // log softplus'(x) = log σ(x) = −softplus(−x): ≈ x for x ≪ 0, ≈ −e^{−x} for x ≫ 0.
        let expected = if v < 0.0 { v } else { -(-v).exp() };
        assert!(
            (sp[k] - expected).abs() < 1e-12,
            "softplus at {v}: {}",
            sp[k]
        );
        assert!(sig[k].is_finite() && tanh[k].is_finite() && sp[k].is_finite());
    }
    // The inverse log-dets in the image are finite too.
    let y = DMatrix::<f64>::from_row_slice(1, 3, &[1e-300, 0.5, 1.0 - 1e-16]);
    assert!(
        Sigmoid
            .inverse_log_det_jacobian(&y)
            .iter()
            .all(|v| v.is_finite())
    );
    let y = DMatrix::<f64>::from_row_slice(1, 3, &[1e-300, 1.0, 700.0]);
    assert!(
        Softplus
            .inverse_log_det_jacobian(&y)
            .iter()
            .all(|v| v.is_finite())
    );
}

/// f32 and f64 agree within f32 tolerance on the same parameters and inputs.
#[test]
fn f32_agrees_with_f64() {
    let l = DMatrix::from_row_slice(3, 3, &[1.5, 0.0, 0.0, -0.4, 0.8, 0.0, 0.3, 0.2, -2.0]);
    let b = DVector::from_vec(vec![0.5, -1.0, 2.0]);
    // Scales of magnitude < 1 keep the tanh output inside (−1, 1), so the
    // shifted logit below stays in its domain (0, 1).
    let s = DVector::from_vec(vec![0.5, -0.4, 0.25]);
    let half = DVector::from_vec(vec![0.5, 0.5, 0.5]);
    let c64 = Chain::<f64>::new(vec![
        Box::new(ScaleTriL::new(l.clone(), b.clone()).unwrap()),
        Box::new(Tanh),
        Box::new(Permute::new(vec![2, 0, 1]).unwrap()),
        Box::new(Scale::new(s.clone()).unwrap()),
        Box::new(Shift::new(half.clone()).unwrap()),
        Box::new(Invert::new(Sigmoid)),
        Box::new(LeakyRelu::new(0.3).unwrap()),
        Box::new(Softplus),
        Box::new(Exp),
    ])
    .unwrap();
    let c32 = Chain::<f32>::new(vec![
        Box::new(ScaleTriL::new(l.cast::<f32>(), b.cast::<f32>()).unwrap()),
        Box::new(Tanh),
        Box::new(Permute::new(vec![2, 0, 1]).unwrap()),
        Box::new(Scale::new(s.cast::<f32>()).unwrap()),
        Box::new(Shift::new(half.cast::<f32>()).unwrap()),
        Box::new(Invert::new(Sigmoid)),
        Box::new(LeakyRelu::new(0.3_f32).unwrap()),
        Box::new(Softplus),
        Box::new(Exp),
    ])
    .unwrap();
    let x = DMatrix::from_fn(3, 16, |i, j| ((i * 5 + j * 7) % 13) as f64 / 6.5 - 1.0);
    let x32 = x.clone().cast::<f32>();
    let (y64, l64) = c64.forward_and_log_det(&x);
    let (y32, l32) = c32.forward_and_log_det(&x32);
    assert!(y64.iter().all(|v| v.is_finite()) && l64.iter().all(|v| v.is_finite()));
    assert!(l64.amax() > 0.1, "the log-dets should be nontrivial");
    for (a, b) in y64.iter().zip(y32.iter()) {
        assert!(
            ((*b as f64) - a).abs() <= 1e-4 * (1.0 + a.abs()),
            "forward: f64 {a} vs f32 {b}"
        );
    }
    for (a, b) in l64.iter().zip(l32.iter()) {
        assert!(
            ((*b as f64) - a).abs() <= 1e-4 * (1.0 + a.abs()),
            "log-det: f64 {a} vs f32 {b}"
        );
    }
    let back32 = c32.inverse(&y32);
    assert!((back32.cast::<f64>() - &x).amax() < 1e-3);
}

#[test]
fn f32_bijectors_pass_the_kit_with_f32_tolerances() {
    let x = DMatrix::from_fn(3, 10, |i, j| ((i * 5 + j * 7) % 13) as f32 / 3.0 - 2.0);
    let l = DMatrix::from_row_slice(3, 3, &[1.5_f32, 0.0, 0.0, -0.4, 0.8, 0.0, 0.3, 0.2, -2.0]);
    let st = ScaleTriL::new(l, DVector::from_vec(vec![0.5_f32, -1.0, 2.0])).unwrap();
    for b in [
        Box::new(Exp) as Box<dyn Bijector<f32>>,
        Box::new(Sigmoid),
        Box::new(Tanh),
        Box::new(Softplus),
        Box::new(st),
        Box::new(Scale::new(DVector::from_vec(vec![3.0_f32, -0.2, 1.1])).unwrap()),
    ] {
        let r = check_bijector(b.as_ref(), &x).unwrap_or_else(|f| panic!("{b:?}: {f}"));
        assert!(r.max_log_det_error < 2e-3);
    }
}

// ---- serde ----

fn roundtrip<B>(b: &B) -> B
where
    B: serde::Serialize + serde::de::DeserializeOwned,
{
    serde_json::from_str(&serde_json::to_string(b).unwrap()).unwrap()
}

/// Serialising and deserialising gives bit-identical forward, inverse and log-dets.
#[test]
fn serde_round_trip_is_exact() {
    let x = DMatrix::from_fn(3, 5, |i, j| (i as f64 - 1.0) * 0.7 + j as f64 * 0.31 - 0.4);
    let same = |a: &dyn Bijector<f64>, b: &dyn Bijector<f64>| {
        assert_eq!(a.forward(&x), b.forward(&x), "{a:?}");
        assert_eq!(
            a.forward_log_det_jacobian(&x),
            b.forward_log_det_jacobian(&x),
            "{a:?}"
        );
        let y = a.forward(&x);
        assert_eq!(a.inverse(&y), b.inverse(&y), "{a:?}");
    };
    let shift = Shift::new(DVector::from_vec(vec![0.1, -0.2, 1.0 / 3.0])).unwrap();
    same(&shift, &roundtrip(&shift));
    let scale = Scale::new(DVector::from_vec(vec![std::f64::consts::PI, -0.2, 1e-3])).unwrap();
    same(&scale, &roundtrip(&scale));
    let lr = LeakyRelu::new(0.1234567891234).unwrap();
    same(&lr, &roundtrip(&lr));
    let st = ScaleTriL::new(
        DMatrix::from_row_slice(3, 3, &[1.1, 0.0, 0.0, 0.3, -0.7, 0.0, 1.0 / 7.0, 0.2, 2.5]),
        DVector::from_vec(vec![0.5, -1.0, 2.0]),
    )
    .unwrap();
    same(&st, &roundtrip(&st));
    let p = Permute::new(vec![1, 2, 0]).unwrap();
    same(&p, &roundtrip(&p));
    let inv = Invert::new(st.clone());
    same(&inv, &roundtrip(&inv));
    for unit in [
        Box::new(roundtrip(&Exp)) as Box<dyn Bijector<f64>>,
        Box::new(roundtrip(&Sigmoid)),
        Box::new(roundtrip(&Tanh)),
        Box::new(roundtrip(&Softplus)),
        Box::new(roundtrip(&Identity)),
    ] {
        let _ = unit.forward(&x);
    }
    // A serialised permutation that is not one is rejected on load.
    assert!(serde_json::from_str::<Permute>("[0, 0, 1]").is_err());
}

// ---- constructor errors ----

#[test]
fn constructor_errors_name_the_argument() {
    let e = Shift::new(DVector::from_vec(vec![1.0, f64::INFINITY])).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { .. }));
    assert!(e.to_string().contains("shift[1]"), "{e}");
    assert!(matches!(
        Shift::<f64>::new(DVector::zeros(0)).unwrap_err(),
        Error::InvalidDimension { .. }
    ));

    let e = Scale::new(DVector::from_vec(vec![1.0, 0.0])).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { .. }));
    assert!(e.to_string().contains("scale[1]"), "{e}");
    assert!(matches!(
        Scale::new(DVector::from_vec(vec![f64::NAN])).unwrap_err(),
        Error::InvalidParameter { .. }
    ));

    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = LeakyRelu::new(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }));
        assert!(e.to_string().contains("slope"), "{e}");
    }

    let b = DVector::zeros(2);
    let upper = DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.0, 1.0]);
    let e = ScaleTriL::new(upper, b.clone()).unwrap_err();
    assert!(e.to_string().contains("scale_tril[(0, 1)]"), "{e}");
    let zero_diag = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.5, 0.0]);
    let e = ScaleTriL::new(zero_diag, b.clone()).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { .. }));
    assert!(e.to_string().contains("scale_tril[(1, 1)]"), "{e}");
    let e = ScaleTriL::<f64>::new(DMatrix::identity(2, 2), DVector::zeros(3)).unwrap_err();
    assert!(matches!(
        e,
        Error::DimensionMismatch {
            expected: 2,
            got: 3,
            ..
        }
    ));
    let e = ScaleTriL::new(DMatrix::<f64>::zeros(2, 3), b).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { .. }));

    for bad in [vec![0, 0], vec![0, 2], vec![1, 2, 3]] {
        assert!(matches!(
            Permute::new(bad).unwrap_err(),
            Error::InvalidPermutation { .. }
        ));
    }
    assert!(matches!(
        Permute::new(vec![]).unwrap_err(),
        Error::InvalidDimension { .. }
    ));
    assert!(matches!(
        Permute::reverse(0).unwrap_err(),
        Error::InvalidDimension { .. }
    ));

    let e = Chain::<f64>::new(vec![
        Box::new(Permute::reverse(2).unwrap()),
        Box::new(Permute::reverse(3).unwrap()),
    ])
    .unwrap_err();
    assert!(matches!(
        e,
        Error::DimensionMismatch {
            expected: 2,
            got: 3,
            ..
        }
    ));
    let e = BijectorExt::<f64>::try_then(Exp, Permute::reverse(3).unwrap())
        .unwrap()
        .try_then(Permute::reverse(2).unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::DimensionMismatch { .. }));

    assert!(matches!(
        Blockwise::<f64>::new(vec![]).unwrap_err(),
        Error::InvalidDimension { .. }
    ));
    let e = Blockwise::<f64>::new(vec![(Box::new(Permute::reverse(3).unwrap()), 2)]).unwrap_err();
    assert!(matches!(
        e,
        Error::DimensionMismatch {
            expected: 2,
            got: 3,
            ..
        }
    ));
    let e = Blockwise::<f64>::new(vec![(Box::new(Exp), 0)]).unwrap_err();
    assert!(matches!(e, Error::InvalidDimension { .. }));
}

#[test]
#[should_panic(expected = "Chain::then: `parts[1]` has dimension 2, expected dimension 3")]
fn then_panics_on_dimension_mismatch() {
    let _ = Chain::<f64>::new(vec![Box::new(Permute::reverse(3).unwrap())])
        .unwrap()
        .then(Permute::reverse(2).unwrap());
}

#[test]
#[should_panic(expected = "input has dimension 2 (rows), expected dimension 3")]
fn wrong_input_dimension_panics_with_both_dimensions() {
    let s = Shift::new(DVector::from_vec(vec![1.0, 2.0, 3.0])).unwrap();
    let _ = s.forward(&DMatrix::zeros(2, 4));
}

#[test]
fn permute_random_is_a_seeded_permutation() {
    use rand::SeedableRng;
    let mut r1 = rand::rngs::StdRng::seed_from_u64(5);
    let mut r2 = rand::rngs::StdRng::seed_from_u64(5);
    let a = Permute::random(10, &mut r1).unwrap();
    let b = Permute::random(10, &mut r2).unwrap();
    assert_eq!(a, b);
    let mut sorted = a.permutation().to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    assert_eq!(Permute::reverse(4).unwrap().permutation(), &[3, 2, 1, 0]);
}

/// Boxed trait objects are bijectors too, and a chain of them can be inverted.
#[test]
fn trait_objects_compose() {
    let parts: Vec<Box<dyn Bijector<f64>>> =
        vec![Box::new(Sigmoid), Box::new(Invert::new(Sigmoid))];
    let c = Chain::new(parts).unwrap();
    let boxed: Box<dyn Bijector<f64>> = Box::new(c);
    let inv = Invert::new(boxed);
    let x = DMatrix::from_row_slice(1, 3, &[-2.0, 0.0, 3.0]);
    assert!((inv.forward(&x) - &x).amax() < 1e-12);
}

/// Bijectors and distributions, boxed as trait objects, cross threads
/// (both traits require `Send + Sync`).
#[test]
fn trait_objects_cross_threads() {
    fn send_sync<X: Send + Sync + ?Sized>(_: &X) {}
    let chain: Box<dyn Bijector<f64>> = Box::new(
        Chain::new(vec![
            Box::new(Exp) as Box<dyn Bijector<f64>>,
            Box::new(Scale::new(nalgebra::DVector::from_element(2, 2.0)).unwrap()),
        ])
        .unwrap(),
    );
    let dist: Box<dyn Distribution<f64>> = Box::new(StandardNormal::new(2).unwrap());
    send_sync(&*chain);
    send_sync(&*dist);
    let x = nalgebra::DMatrix::from_element(2, 3, 0.5);
    let expected = chain.forward(&x);
    let shared = std::sync::Arc::new(chain);
    let worker = {
        let shared = std::sync::Arc::clone(&shared);
        let x = x.clone();
        std::thread::spawn(move || shared.forward(&x))
    };
    assert_eq!(worker.join().unwrap(), expected);
    // The re-exported crates are the ones the traits use.
    let m: normflow::nalgebra::DMatrix<f64> = dist.sample(
        4,
        &mut <normflow::rand::rngs::StdRng as normflow::rand::SeedableRng>::seed_from_u64(1),
    );
    assert_eq!(m.shape(), (2, 4));
}
