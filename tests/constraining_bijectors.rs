//! The constraining bijectors `Ordered`, `SoftClip`, `Power` and `Reciprocal`:
//! the verification kit (`check_bijector` in f64 and f32, both directions
//! through `Invert`, and `check_gradients`) on random parameters and inputs,
//! then exact values, points outside the image, extreme inputs, serde and
//! constructor errors.

use nalgebra::{DMatrix, DVector};
use normflow::prelude::*;
use normflow::testing::strategies::{
    self, batch, batch_of, log_uniform_positive, log_uniform_signed, value,
};
use normflow::testing::{CheckReport, check_bijector, check_equivalent, check_gradients};
use proptest::prelude::*;

const N: usize = 6;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// The kit in the scalar type of `x`, with the failure as a test-case error.
fn run<T: Real, B: Bijector<T> + ?Sized>(
    b: &B,
    x: &DMatrix<T>,
) -> Result<CheckReport, TestCaseError> {
    check_bijector(b, x).map_err(|f| TestCaseError::fail(format!("{b:?}: {f}")))
}

/// The gradient check of both directions (parameter-free: no parameters).
fn grads<B: Differentiable<f64> + Clone>(b: &B, x: &DMatrix<f64>) -> Result<(), TestCaseError> {
    let r = check_gradients(b, x).map_err(|f| TestCaseError::fail(format!("{b:?}\n{f}")))?;
    prop_assert_eq!(&r.directions, &["forward", "inverse"]);
    prop_assert_eq!(r.params, 0);
    prop_assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    Ok(())
}

fn f32_of(x: &DMatrix<f64>) -> DMatrix<f32> {
    x.map(|v| v as f32)
}

/// A soft clip with `low` in `[-5, 5]`, a width log-uniform on `[0.1, 20]`
/// and a softness log-uniform on `[min_softness, 5]`.
fn soft_clip(min_softness: f64) -> impl Strategy<Value = SoftClip<f64>> {
    (
        value(5.0),
        log_uniform_positive(0.1, 20.0),
        log_uniform_positive(min_softness, 5.0),
    )
        .prop_map(|(low, w, h)| SoftClip::new(low, low + w, h).unwrap())
}

/// Inputs from `margin` softnesses below `low` to `margin` above `high`.
/// Further out the output is within `e^{−margin}·h` of a bound, and the
/// doubles near the bound no longer resolve the input to the kit's
/// tolerance.
fn soft_clip_inputs(
    b: SoftClip<f64>,
    d: usize,
    margin: f64,
) -> impl Strategy<Value = DMatrix<f64>> {
    let (low, high, h) = (b.low(), b.high(), b.hinge_softness());
    batch_of(d, N, 0.0..=1.0)
        .prop_map(move |r| r.map(|u| low - margin * h + u * (high - low + 2.0 * margin * h)))
}

fn soft_clip_case(
    min_softness: f64,
    margin: f64,
) -> impl Strategy<Value = (SoftClip<f64>, DMatrix<f64>)> {
    (soft_clip(min_softness), 1usize..=3)
        .prop_flat_map(move |(b, d)| (Just(b), soft_clip_inputs(b, d, margin)))
}

fn power(min: f64, max: f64) -> impl Strategy<Value = Power<f64>> {
    log_uniform_signed(min, max).prop_map(|p| Power::new(p).unwrap())
}

fn dim() -> impl Strategy<Value = usize> {
    1usize..=5
}

// ---- the kit, f64 ----

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn ordered_passes_the_kit(x in dim().prop_flat_map(|d| batch(d, N, 4.0))) {
        run(&Ordered, &x)?;
        run(&Invert::new(Ordered), &Ordered.forward(&x))?;
    }

    #[test]
    fn soft_clip_passes_the_kit((b, x) in soft_clip_case(0.05, 8.0)) {
        let r = run(&b, &x)?;
        prop_assert!(r.max_abs_log_det > 0.0);
        run(&Invert::new(b), &b.forward(&x))?;
    }

    #[test]
    fn power_passes_the_kit(
        (b, x) in (power(0.2, 5.0), dim()).prop_flat_map(|(b, d)| (Just(b), strategies::positive_batch(d, N, 1e-3, 1e3)))
    ) {
        run(&b, &x)?;
        run(&Invert::new(b), &b.forward(&x))?;
    }

    /// Magnitudes from 1e-3: closer to the pole at 0, the kit's wider
    /// central-difference step reaches across it, where `1/x` is finite
    /// again, and no longer measures the derivative.
    #[test]
    fn reciprocal_passes_the_kit_on_small_and_huge_values(
        x in dim().prop_flat_map(|d| batch_of(d, N, log_uniform_signed(1e-3, 1e100)))
    ) {
        let r = run(&Reciprocal, &x)?;
        prop_assert!(r.max_abs_log_det > 1e-6);
        run(&Invert::new(Reciprocal), &x)?;
    }
}

// ---- the kit, f32 ----

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn f32_ordered_passes_the_kit(x in dim().prop_flat_map(|d| batch(d, N, 2.0))) {
        let x = f32_of(&x);
        run(&Ordered, &x)?;
        run(&Invert::new(Ordered), &Ordered.forward(&x))?;
    }

    #[test]
    fn f32_soft_clip_passes_the_kit(
        (low, w, h, x) in (value(3.0), log_uniform_positive(0.5, 6.0), log_uniform_positive(0.3, 2.0))
            .prop_flat_map(|(low, w, h)| (Just(low), Just(w), Just(h), batch_of(2, N, 0.0..=1.0)))
    ) {
        let b = SoftClip::new(low as f32, (low + w) as f32, h as f32).unwrap();
        let x = f32_of(&x.map(|u| low - h + u * (w + 2.0 * h)));
        run(&b, &x)?;
        run(&Invert::new(b), &b.forward(&x))?;
    }

    #[test]
    fn f32_power_passes_the_kit(
        (p, x) in (log_uniform_signed(0.25, 4.0), strategies::positive_batch(3, N, 0.05, 20.0))
    ) {
        let b = Power::new(p as f32).unwrap();
        let x = f32_of(&x);
        run(&b, &x)?;
        run(&Invert::new(b), &b.forward(&x))?;
    }

    #[test]
    fn f32_reciprocal_passes_the_kit(x in batch_of(3, N, log_uniform_signed(0.05, 1e15))) {
        let x = f32_of(&x);
        run(&Reciprocal, &x)?;
        run(&Invert::new(Reciprocal), &x)?;
    }
}

// ---- gradients (f64, both directions) ----

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn ordered_gradients(x in dim().prop_flat_map(|d| batch(d, N, 3.0))) {
        grads(&Ordered, &x)?;
    }

    #[test]
    fn soft_clip_gradients((b, x) in soft_clip_case(0.2, 2.0)) {
        grads(&b, &x)?;
    }

    #[test]
    fn power_gradients(
        (b, x) in (power(0.2, 4.0), dim()).prop_flat_map(|(b, d)| (Just(b), strategies::positive_batch(d, N, 0.2, 10.0)))
    ) {
        grads(&b, &x)?;
    }

    #[test]
    fn reciprocal_gradients(x in dim().prop_flat_map(|d| batch_of(d, N, log_uniform_signed(0.2, 10.0)))) {
        grads(&Reciprocal, &x)?;
    }

    /// Inside a chain the four still pass gradients on (they are trainable
    /// parts, so a chain holding them can be trained).
    #[test]
    fn gradients_pass_through_a_chain_of_them(x in (1usize..=3).prop_flat_map(|d| batch(d, N, 1.5))) {
        // The soft clip keeps every coordinate above 0.5, so the ordered
        // vector stays positive for the power.
        let c = Chain::<f64>::new(vec![
            Box::new(SoftClip::new(0.5, 3.0, 0.7).unwrap()),
            Box::new(Ordered),
            Box::new(Power::new(1.5).unwrap()),
            Box::new(Reciprocal),
        ]).unwrap();
        grads(&c, &x)?;
    }
}

// ---- Ordered ----

#[test]
fn ordered_values() {
    let zeros = DMatrix::<f64>::zeros(3, 1);
    assert_eq!(Ordered.forward(&zeros).as_slice(), &[0.0, 1.0, 2.0]);
    assert_eq!(Ordered.forward_log_det_jacobian(&zeros)[0], 0.0);
    assert_eq!(
        Ordered
            .inverse(&DMatrix::from_column_slice(3, 1, &[0.0, 1.0, 2.0]))
            .as_slice(),
        &[0.0, 0.0, 0.0]
    );
    // [1, ln 2, ln 3] ↦ [1, 3, 6], log-det ln 2 + ln 3 = ln 6.
    let x = DMatrix::from_column_slice(3, 1, &[1.0, 2.0_f64.ln(), 3.0_f64.ln()]);
    let (y, l) = Ordered.forward_and_log_det(&x);
    assert!((y - DMatrix::from_column_slice(3, 1, &[1.0, 3.0, 6.0])).amax() < 1e-14);
    assert!((l[0] - 6.0_f64.ln()).abs() < 1e-15);
    let y = DMatrix::from_column_slice(3, 1, &[1.0, 3.0, 6.0]);
    assert!((Ordered.inverse_log_det_jacobian(&y)[0] + 6.0_f64.ln()).abs() < 1e-15);
    // One coordinate: the identity.
    let x = DMatrix::from_row_slice(1, 3, &[-2.0, 0.0, 7.5]);
    assert_eq!(Ordered.forward(&x), x);
    assert_eq!(Ordered.inverse(&x), x);
    assert_eq!(Ordered.forward_log_det_jacobian(&x), DVector::zeros(3));
}

/// Ties and decreases are outside the image: `−∞` coordinates and an
/// inverse log-det of `−∞`, never NaN, and a transformed log-density of `−∞`.
#[test]
fn ordered_outside_the_image_is_minus_infinity_not_nan() {
    let y = DMatrix::from_column_slice(3, 3, &[0.0_f64, 1.0, 1.0, 0.0, -1.0, 5.0, 0.0, 1.0, 2.0]);
    let (x, l) = Ordered.inverse_and_log_det(&y);
    assert_eq!(x[(2, 0)], f64::NEG_INFINITY); // tie
    assert_eq!(x[(1, 1)], f64::NEG_INFINITY); // decrease
    assert!((x[(2, 1)] - 6.0_f64.ln()).abs() < 1e-15);
    assert!(x.iter().all(|v| !v.is_nan()));
    assert_eq!(l[0], f64::NEG_INFINITY);
    assert_eq!(l[1], f64::NEG_INFINITY);
    assert!(l[2].is_finite());
    assert_eq!(Ordered.inverse(&y), x);
    assert_eq!(Ordered.inverse_log_det_jacobian(&y), l);

    let d = TransformedDistribution::new(StandardNormal::new(3).unwrap(), Ordered).unwrap();
    let lp = d.log_prob(&y);
    assert_eq!(lp[0], f64::NEG_INFINITY);
    assert_eq!(lp[1], f64::NEG_INFINITY);
    assert!(lp[2].is_finite());
    // The backward pass at such points does not panic either.
    let _ = Ordered.inverse_and_log_det_backward(&y, &y, &DVector::from_element(3, 1.0), &mut []);
}

/// Huge inputs: `exp` overflows to `+∞` in the output (documented) while the
/// log-det stays finite; very negative ones make a tie (outside the image).
#[test]
fn ordered_extreme_inputs() {
    let x = DMatrix::from_column_slice(2, 2, &[0.0_f64, 800.0, 0.0, -800.0]);
    let (y, l) = Ordered.forward_and_log_det(&x);
    assert_eq!(y[(1, 0)], f64::INFINITY);
    assert_eq!(l.as_slice(), &[800.0, -800.0]);
    assert_eq!(y[(1, 1)], 0.0); // e^{-800} underflows
    assert_eq!(Ordered.inverse(&y)[(1, 1)], f64::NEG_INFINITY);
    // Large but representable: exact round trip of the log-gaps.
    let x = DMatrix::from_column_slice(3, 1, &[1e6_f64, 300.0, -300.0]);
    let back = Ordered.inverse(&Ordered.forward(&x));
    assert_eq!(back[(0, 0)], 1e6);
    assert!((back[(1, 0)] - 300.0).abs() < 1e-12);
    assert!(back.iter().all(|v| !v.is_nan()));
}

// ---- SoftClip ----

/// TensorFlow Probability's documented values (printed in f32).
#[test]
fn soft_clip_matches_tfp() {
    let b = SoftClip::new(-10.0_f64, 10.0, 1.0).unwrap();
    let x = DMatrix::from_row_slice(1, 5, &[-15.0, -7.0, 1.0, 9.0, 20.0]);
    let expected = [-9.993284, -6.951412, 0.9998932, 8.686738, 9.999954];
    for (got, want) in b.forward(&x).iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-6 * (1.0 + want.abs()),
            "{got} vs {want}"
        );
    }
    // A narrow interval: the shrinkage makes the map slightly asymmetric.
    let b = SoftClip::new(-1.0_f64, 1.0, 1.0).unwrap();
    let y = b.forward(&DMatrix::from_row_slice(1, 2, &[-0.5, 0.5]));
    assert!((y[(0, 0)] + 0.2527727).abs() < 1e-6, "{y}");
    assert!((y[(0, 1)] - 0.19739306).abs() < 1e-6, "{y}");
    // A hard clip (softness 0.1): 9 stays within 1e-5 of itself.
    let b = SoftClip::new(-10.0_f64, 10.0, 0.1).unwrap();
    let y = b.forward(&DMatrix::from_element(1, 1, 9.0));
    assert!((y[(0, 0)] - 8.999995).abs() < 1e-6, "{y}");
}

#[test]
fn soft_clip_is_nearly_the_identity_inside_and_maps_into_the_box() {
    let wide = SoftClip::new(-100.0_f64, 100.0, 1.0).unwrap();
    let x = DMatrix::from_fn(1, 101, |_, j| j as f64 - 50.0);
    let y = wide.forward(&x);
    assert!((&y - &x).amax() < 1e-3, "{}", (&y - &x).amax());
    let l = wide.forward_log_det_jacobian(&x);
    assert!(l.amax() < 1e-3);
    // 0 goes into (low, high), wherever the box is.
    for (low, high, h) in [
        (-1.0_f64, 1.0, 1.0),
        (5.0, 6.0, 0.3),
        (-7.0, -6.5, 2.0),
        (0.0, 1e-3, 1.0),
    ] {
        let b = SoftClip::new(low, high, h).unwrap();
        let y = b.forward(&DMatrix::zeros(1, 1))[(0, 0)];
        assert!(low < y && y < high, "{b:?}: {y}");
        let back = b.inverse(&DMatrix::from_element(1, 1, y))[(0, 0)];
        assert!(back.abs() < 1e-9 * (1.0 + high.abs() / h), "{b:?}: {back}");
    }
}

/// Far outside the box: outputs in `[low, high]` (rounded onto a bound far
/// enough out), never NaN, and finite log-dets of about `−|x − bound|/h`.
#[test]
fn soft_clip_extreme_inputs() {
    let b = SoftClip::new(-2.0_f64, 3.0, 0.5).unwrap();
    let xs = [-1e300, -1e6, -400.0, -50.0, 50.0, 400.0, 1e6, 1e300];
    let x = DMatrix::from_row_slice(1, xs.len(), &xs);
    let (y, l) = b.forward_and_log_det(&x);
    for (k, &v) in xs.iter().enumerate() {
        assert!((-2.0..=3.0).contains(&y[(0, k)]), "{v}: {}", y[(0, k)]);
        assert!(l[k].is_finite(), "{v}: {}", l[k]);
        let bound = if v < 0.0 { -2.0 } else { 3.0 };
        let expected = -(v - bound).abs() / 0.5;
        assert!(
            (l[k] - expected).abs() <= 1e-9 * expected.abs() + 1.0,
            "{v}: {}",
            l[k]
        );
    }
    let b32 = SoftClip::new(-2.0_f32, 3.0, 0.5).unwrap();
    let l32 = b32.forward_log_det_jacobian(&DMatrix::from_row_slice(1, 2, &[-1e30, 50.0]));
    assert!(l32.iter().all(|v| v.is_finite()), "{l32}");
    // With low = 0, tiny outputs keep their precision: x = −5 lies 50
    // softnesses below the box, y ≈ 1e-23, and the round trip is exact to 1e-12.
    let unit = SoftClip::new(0.0_f64, 1.0, 0.1).unwrap();
    let x = DMatrix::from_row_slice(1, 4, &[-5.0, -1.0, 1.5, 3.0]);
    let y = unit.forward(&x);
    assert!(y[(0, 0)] > 0.0 && y[(0, 0)] < 1e-20, "{y}");
    assert!(y[(0, 3)] < 1.0, "{y}");
    let back = unit.inverse(&y);
    assert!(
        (back.columns(0, 2) - x.columns(0, 2)).amax() < 1e-12,
        "{back}"
    );
    assert!((back[(0, 2)] - 1.5).abs() < 1e-9, "{back}");
    assert!(
        unit.inverse_log_det_jacobian(&y)
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn soft_clip_outside_the_image() {
    let b = SoftClip::new(-1.0_f64, 2.0, 1.0).unwrap();
    let y = DMatrix::from_row_slice(1, 6, &[-1.0, 2.0, -3.0, 5.0, f64::NAN, 0.5]);
    let (x, l) = b.inverse_and_log_det(&y);
    assert!(x.columns(0, 5).iter().all(|v| v.is_nan()));
    assert!(l.rows(0, 5).iter().all(|v| v.is_nan()));
    assert!(x[(0, 5)].is_finite() && l[5].is_finite());
    let d = TransformedDistribution::new(StandardNormal::new(1).unwrap(), b).unwrap();
    let lp = d.log_prob(&y);
    assert!(
        lp.rows(0, 5).iter().all(|&v| v == f64::NEG_INFINITY),
        "{lp}"
    );
    assert!(lp[5].is_finite());
}

// ---- Power ----

#[test]
fn power_values() {
    let sq = Power::new(2.0_f64).unwrap();
    let x = DMatrix::from_element(1, 1, 3.0);
    assert_eq!(sq.forward(&x)[(0, 0)], 9.0);
    assert!((sq.forward_log_det_jacobian(&x)[0] - 6.0_f64.ln()).abs() < 1e-15);
    let y = DMatrix::from_element(1, 1, 9.0);
    assert_eq!(sq.inverse(&y)[(0, 0)], 3.0);
    assert!((sq.inverse_log_det_jacobian(&y)[0] + 6.0_f64.ln()).abs() < 1e-15);
    // p = −1 is the reciprocal on (0, ∞); p = 1 the identity.
    let x = DMatrix::from_row_slice(2, 3, &[0.1, 0.5, 1.0, 2.0, 7.0, 1e5]);
    check_equivalent(&Power::new(-1.0).unwrap(), &Reciprocal, &x, 1e-15).unwrap();
    check_equivalent(&Power::new(1.0).unwrap(), &Identity, &x, 0.0).unwrap();
    // Inverse of Power(p) is Power(1/p).
    check_equivalent(
        &Invert::new(Power::new(4.0).unwrap()),
        &Power::new(0.25).unwrap(),
        &x,
        1e-14,
    )
    .unwrap();
    assert_eq!(Power::new(-2.5_f64).unwrap().p(), -2.5);
}

#[test]
fn power_outside_the_domain_and_extremes() {
    let b = Power::new(3.0_f64).unwrap();
    let x = DMatrix::from_row_slice(1, 3, &[-2.0, 0.0, f64::NAN]);
    assert!(b.forward(&x).iter().all(|v| v.is_nan()));
    assert!(b.forward_log_det_jacobian(&x).iter().all(|v| v.is_nan()));
    assert!(b.inverse(&x).iter().all(|v| v.is_nan()));
    assert!(b.inverse_log_det_jacobian(&x).iter().all(|v| v.is_nan()));
    let d = TransformedDistribution::new(StandardNormal::new(1).unwrap(), b).unwrap();
    assert!(d.log_prob(&x).iter().all(|&v| v == f64::NEG_INFINITY));
    // Overflow of x^p is documented; the log-dets stay finite.
    let big = DMatrix::from_row_slice(1, 2, &[1e200, 1e-300]);
    let y = b.forward(&big);
    assert_eq!(y[(0, 0)], f64::INFINITY);
    assert_eq!(y[(0, 1)], 0.0);
    assert!(
        b.forward_log_det_jacobian(&big)
            .iter()
            .all(|v| v.is_finite())
    );
    let y = DMatrix::from_row_slice(1, 2, &[1e300, 1e-300]);
    let x = b.inverse(&y);
    // 1/3 is rounded, so y^{1/3} is off by about |log y|·ε relative.
    assert!((x[(0, 0)] / 1e100 - 1.0).abs() < 1e-13, "{x}");
    assert!((x[(0, 1)] / 1e-100 - 1.0).abs() < 1e-13, "{x}");
    assert!(b.inverse_log_det_jacobian(&y).iter().all(|v| v.is_finite()));
}

// ---- Reciprocal ----

#[test]
fn reciprocal_is_its_own_inverse() {
    let x = DMatrix::from_row_slice(2, 3, &[-4.0, 0.5, 2.0, -1e-7, 3.0, 1e10]);
    let y = Reciprocal.forward(&x);
    assert_eq!(Reciprocal.inverse(&x), y);
    assert_eq!(
        Reciprocal.forward_log_det_jacobian(&x),
        Reciprocal.inverse_log_det_jacobian(&x)
    );
    assert!(
        (Reciprocal.inverse_log_det_jacobian(&y) + Reciprocal.forward_log_det_jacobian(&x)).amax()
            < 1e-12
    );
    check_equivalent(&Invert::new(Reciprocal), &Reciprocal, &x, 0.0).unwrap();
    let twice = Chain::<f64>::new(vec![Box::new(Reciprocal), Box::new(Reciprocal)]).unwrap();
    check_equivalent(&twice, &Identity, &x, 1e-15).unwrap();
    let l = Reciprocal.forward_log_det_jacobian(&DMatrix::from_element(1, 1, -0.5));
    assert!((l[0] - 2.0 * 2.0_f64.ln()).abs() < 1e-15);
}

#[test]
fn reciprocal_at_zero_and_extremes() {
    let x = DMatrix::from_row_slice(1, 4, &[0.0, -0.0, 1e300, -1e-300]);
    let (y, l) = Reciprocal.forward_and_log_det(&x);
    assert_eq!(y[(0, 0)], f64::INFINITY);
    assert_eq!(y[(0, 1)], f64::NEG_INFINITY);
    assert_eq!(l[0], f64::INFINITY);
    assert_eq!(l[1], f64::INFINITY);
    assert!(y.columns(2, 2).iter().all(|v| v.is_finite()));
    assert!(l.rows(2, 2).iter().all(|v| v.is_finite()));
    let back = Reciprocal.inverse(&y);
    assert!(
        (back[(0, 2)] / 1e300 - 1.0).abs() < 1e-15 && (back[(0, 3)] / -1e-300 - 1.0).abs() < 1e-15
    );
    let d = TransformedDistribution::new(StandardNormal::new(1).unwrap(), Reciprocal).unwrap();
    let lp = d.log_prob(&DMatrix::from_row_slice(1, 2, &[0.0, 2.0]));
    assert_eq!(lp[0], f64::NEG_INFINITY);
    assert!(lp[1].is_finite());
}

// ---- shared ----

fn roundtrip<B: serde::Serialize + serde::de::DeserializeOwned>(b: &B) -> B {
    serde_json::from_str(&serde_json::to_string(b).unwrap()).unwrap()
}

#[test]
fn serde_round_trip_is_exact_and_validated() {
    let x = DMatrix::from_fn(3, 4, |i, j| 0.3 + (i as f64) * 0.7 + j as f64 * 0.31);
    let same = |a: &dyn Bijector<f64>, b: &dyn Bijector<f64>| {
        assert_eq!(a.forward(&x), b.forward(&x), "{a:?}");
        assert_eq!(
            a.forward_log_det_jacobian(&x),
            b.forward_log_det_jacobian(&x)
        );
        let y = a.forward(&x);
        assert_eq!(a.inverse(&y), b.inverse(&y), "{a:?}");
    };
    let clip = SoftClip::new(-0.1, 1.0 / 3.0, 0.123456789).unwrap();
    assert_eq!(roundtrip(&clip), clip);
    same(&clip, &roundtrip(&clip));
    let p = Power::new(std::f64::consts::PI).unwrap();
    assert_eq!(roundtrip(&p), p);
    same(&p, &roundtrip(&p));
    same(&Ordered, &roundtrip(&Ordered));
    same(&Reciprocal, &roundtrip(&Reciprocal));
    assert!(
        serde_json::to_string(&clip)
            .unwrap()
            .contains("hinge_softness")
    );
    // Invalid parameters are rejected on load.
    assert!(serde_json::from_str::<Power<f64>>(r#"{"p": 0.0}"#).is_err());
    assert!(
        serde_json::from_str::<SoftClip<f64>>(
            r#"{"low": 1.0, "high": 0.0, "hinge_softness": 1.0}"#
        )
        .is_err()
    );
    assert!(
        serde_json::from_str::<SoftClip<f64>>(
            r#"{"low": 0.0, "high": 1.0, "hinge_softness": -1.0}"#
        )
        .is_err()
    );
}

#[test]
fn constructor_errors_name_the_argument() {
    for bad in [0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = Power::new(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }));
        assert!(e.to_string().contains("`p`"), "{e}");
    }
    let cases: [(f64, f64, f64, &str); 8] = [
        (f64::NAN, 1.0, 1.0, "`low`"),
        (f64::NEG_INFINITY, 1.0, 1.0, "`low`"),
        (0.0, f64::INFINITY, 1.0, "`high`"),
        (1.0, 1.0, 1.0, "`high`"),
        (2.0, 1.0, 1.0, "`high`"),
        (-f64::MAX, f64::MAX, 1.0, "`high`"),
        (0.0, 1.0, 0.0, "`hinge_softness`"),
        (0.0, 1.0, f64::NAN, "`hinge_softness`"),
    ];
    for (low, high, h, arg) in cases {
        let e = SoftClip::new(low, high, h).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }));
        assert!(e.to_string().contains(arg), "{e}");
    }
    let b = SoftClip::new(-1.0_f32, 2.0, 0.5).unwrap();
    assert_eq!((b.low(), b.high(), b.hinge_softness()), (-1.0, 2.0, 0.5));
}

/// Boxed, they are trainable parts that cross threads.
#[test]
fn trait_objects_are_trainable_and_cross_threads() {
    fn send_sync<X: Send + Sync + ?Sized>(_: &X) {}
    let parts: Vec<Box<dyn Bijector<f64>>> = vec![
        Box::new(Ordered),
        Box::new(SoftClip::new(0.0, 1.0, 1.0).unwrap()),
        Box::new(Power::new(2.0).unwrap()),
        Box::new(Reciprocal),
    ];
    for p in &parts {
        send_sync(p.as_ref());
        assert!(p.as_differentiable().is_some(), "{p:?}");
    }
}
