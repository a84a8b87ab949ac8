//! The circular rational-quadratic spline coupling on the torus (Rezende et
//! al. 2020, DSL `circular_spline`):
//!
//! - the transformer alone: round trips, both backward passes against
//!   Richardson differences, the ends (−π ↦ −π, π ↦ π, one slope at both);
//! - layers at random conditioner parameters through the kit in f64 (both
//!   directions, gradients in both) and f32, conditional too; the log-det
//!   against a central-difference Jacobian; identity at `identity_init`;
//!   periodicity in the conditioning angles;
//! - the DSL and the parameter count.
//!
//! Models of these layers (the torus base, points off the torus, saving and
//! loading, a short fit) are tested in `tests/torus_models.rs`, the
//! two-angle data set in `tests/von_mises.rs`.

use std::f64::consts::PI;

use nalgebra::{DMatrix, DVector};
use normflow::bijector::transformer::{CircularSpline, Transformer};
use normflow::nn::{Activation, ConditionerConfig};
use normflow::prelude::*;
use normflow::testing::{
    check_bijector, check_bijector_given, check_gradients_given_with, check_gradients_with,
    log_abs_det, numerical_jacobian,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Samples per batch.
const N: usize = 6;
/// How far the kit's inputs stay from the knots (the log-derivative has a
/// kink there, which a finite difference straddling it would see).
const GAP: f64 = 2e-3;
/// Relative tolerance of the gradient checks: the kit's default (1e-6) is
/// at the accuracy of its differences for splines with a steep bin, whose
/// log-derivative curves sharply.
const TOL: f64 = 1e-5;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A random, smooth (tanh) conditioner.
fn cfg() -> ConditionerConfig {
    ConditionerConfig {
        hidden: 16,
        depth: 2,
        activation: Activation::Tanh,
        identity_init: false,
        residual: false,
    }
}

fn layer(dim: usize, bins: usize, flip: bool, seed: u64) -> CircularSplineCoupling<f64> {
    layer_scaled(dim, bins, flip, seed, 3.0)
}

/// A random layer with the second half of its parameters (the last
/// layers') scaled by `scale`: splines further from the identity.
fn layer_scaled(
    dim: usize,
    bins: usize,
    flip: bool,
    seed: u64,
    scale: f64,
) -> CircularSplineCoupling<f64> {
    let mask = CouplingMask::half(dim, flip).unwrap();
    let mut l = CircularSplineCoupling::new(mask, bins, &cfg(), &mut rng(seed)).unwrap();
    let n = l.params().len();
    l.params_mut()[n / 2..].iter_mut().for_each(|v| *v *= scale);
    l
}

/// Points of the torus in `[−3, 3]^D` (clear of the seam at ±π, so that the
/// kit's differences stay on the circle), seeded.
fn angles(d: usize, n: usize, seed: u64) -> DMatrix<f64> {
    use rand::RngExt;
    let mut r = rng(seed);
    DMatrix::from_fn(d, n, |_, _| r.random_range(-3.0..3.0))
}

/// The `K + 1` knots on `[−π, π]` of `K` raw widths (or heights), as the
/// spline kernel computes them (minimum bin 1e-3 of the interval).
fn knots(raw: &[f64]) -> Vec<f64> {
    let k = raw.len() as f64;
    let m = raw.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let z: f64 = raw.iter().map(|v| (v - m).exp()).sum();
    let mut cum = 0.0;
    let mut out = vec![-PI];
    for v in raw {
        cum += 1e-3 + (1.0 - k * 1e-3) * (v - m).exp() / z;
        out.push(-PI + 2.0 * PI * cum);
    }
    out
}

/// `v` moved at least `gap` away from every knot.
fn clear_of(mut v: f64, knots: &[f64], gap: f64) -> f64 {
    for &k in knots {
        if (v - k).abs() < gap {
            v = if k + gap < 3.0 { k + gap } else { k - gap };
        }
    }
    v
}

/// The raw parameters the layer's conditioner gives for `x` (`|B|·3K × n`).
fn raw_params(l: &CircularSplineCoupling<f64>, x: &DMatrix<f64>) -> DMatrix<f64> {
    let ia = l.mask().identity_indices();
    let a = ia.len();
    let features = DMatrix::from_fn(2 * a, x.ncols(), |r, j| {
        if r < a {
            x[(ia[r], j)].cos()
        } else {
            x[(ia[r - a], j)].sin()
        }
    });
    l.net().forward(&features)
}

/// `x` with every transformed angle clear of its spline's x-knots (`y =
/// false`: an input of `forward`) or y-knots (`y = true`: of `inverse`).
fn off_knots(
    l: &CircularSplineCoupling<f64>,
    mut x: DMatrix<f64>,
    y: bool,
    gap: f64,
) -> DMatrix<f64> {
    let raw = raw_params(l, &x);
    let k = l.bins();
    for s in 0..x.ncols() {
        for (j, &i) in l.mask().transformed_indices().iter().enumerate() {
            let start = j * 3 * k + if y { k } else { 0 };
            let block: Vec<f64> = (start..start + k).map(|q| raw[(q, s)]).collect();
            x[(i, s)] = clear_of(x[(i, s)], &knots(&block), gap);
        }
    }
    x
}

/// Whether `forward(x)` has a transformed angle within `GAP` of a y-knot or
/// of the seam: the kit differentiates the inverse there.
fn image_near_a_kink(l: &CircularSplineCoupling<f64>, x: &DMatrix<f64>) -> bool {
    let y = l.forward(x);
    y.amax() > PI - 1e-2 || off_knots(l, y.clone(), true, GAP) != y
}

fn fail(f: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(f.to_string())
}

// ---- the transformer alone ----

/// Richardson-extrapolated central difference of `f` at `v`.
fn derivative(f: impl Fn(f64) -> f64, v: f64) -> f64 {
    let h = 1e-5 * (1.0 + v.abs());
    let d = |h: f64| (f(v + h) - f(v - h)) / (2.0 * h);
    (4.0 * d(h / 2.0) - d(h)) / 3.0
}

fn value(t: &CircularSpline, sample: bool, v: f64, th: &[f64]) -> (f64, f64) {
    if sample {
        t.sample_one(v, th)
    } else {
        t.density_one(v, th)
    }
}

/// The backward pass of one direction against differences of
/// `L = g_out · out + g_ld · log-derivative` in the input and every raw
/// parameter.
fn check_scalar_backward(
    t: &CircularSpline,
    sample: bool,
    v: f64,
    th: &[f64],
    (g_out, g_ld): (f64, f64),
) -> Result<(), TestCaseError> {
    let loss = |v: f64, th: &[f64]| {
        let (o, l) = value(t, sample, v, th);
        g_out * o + g_ld * l
    };
    let mut g_theta = vec![0.0; th.len()];
    let g_in = if sample {
        t.sample_one_backward(v, th, g_out, g_ld, &mut g_theta)
    } else {
        t.density_one_backward(v, th, g_out, g_ld, &mut g_theta)
    };
    let num = derivative(|e| loss(e, th), v);
    prop_assert!(
        (g_in - num).abs() <= 1e-6 * (1.0 + num.abs()),
        "sample={sample}: ∂L/∂in {g_in} vs {num} at {v}"
    );
    for q in 0..th.len() {
        let num = derivative(
            |e| {
                let mut p = th.to_vec();
                p[q] = e;
                loss(v, &p)
            },
            th[q],
        );
        prop_assert!(
            (g_theta[q] - num).abs() <= 1e-6 * (1.0 + num.abs()),
            "sample={sample}: ∂L/∂θ[{q}] {} vs {num} at {v}, θ = {th:?}",
            g_theta[q]
        );
    }
    Ok(())
}

/// `K` bins and `3K` raw parameters in `[−2, 2]`.
fn bins_and_raw() -> impl Strategy<Value = (usize, Vec<f64>)> {
    (1usize..=8).prop_flat_map(|k| (Just(k), proptest::collection::vec(-2.0f64..2.0, 3 * k)))
}

proptest! {
    #![proptest_config(config(64))]

    /// Round trip; the sample direction's log-derivative is minus the density
    /// direction's; both backward passes match differences (inputs kept
    /// clear of the knots and of the seam).
    #[test]
    fn transformer_round_trips_and_backward_passes((bins, th) in bins_and_raw(),
                                                   x in -3.0f64..3.0,
                                                   g_out in -1.0f64..1.0, g_ld in -1.0f64..1.0) {
        let t = CircularSpline { bins };
        let x = clear_of(x, &knots(&th[..bins]), GAP);
        let (u, ld) = t.density_one(x, &th);
        prop_assert!((-PI..PI).contains(&u));
        let (back, ld_back) = t.sample_one(u, &th);
        prop_assert!((back - x).abs() <= 1e-12, "{x} → {u} → {back}");
        prop_assert!((ld + ld_back).abs() <= 1e-10);
        let u = clear_of(u, &knots(&th[bins..2 * bins]), GAP);
        prop_assume!(u.abs() < 3.0);
        check_scalar_backward(&t, true, x, &th, (g_out, g_ld))?;
        check_scalar_backward(&t, false, u, &th, (g_out, g_ld))?;
    }

    /// The ends: −π ↦ −π and π⁻ ↦ π⁻ in both directions, and the slope at −π
    /// is the slope just below π (the shared derivative), so the map is C¹
    /// on the circle. At −π itself the parameter gradient is that of
    /// `±log δ` and the input gradient the one-sided one.
    #[test]
    fn the_ends_are_fixed_with_one_slope((bins, th) in bins_and_raw(),
                                         g_out in -1.0f64..1.0, g_ld in -1.0f64..1.0) {
        let t = CircularSpline { bins };
        for sample in [true, false] {
            let (lo, ld_lo) = value(&t, sample, -PI, &th);
            prop_assert_eq!(lo, -PI);
            let just_below = PI - 1e-12;
            let (hi, ld_hi) = value(&t, sample, just_below, &th);
            prop_assert!(hi < PI && PI - hi < 1e-7, "{hi}");
            prop_assert!((ld_lo - ld_hi).abs() < 1e-6, "{ld_lo} vs {ld_hi}");
            let (_, ld_in) = value(&t, sample, -PI + 1e-12, &th);
            prop_assert!((ld_lo - ld_in).abs() < 1e-6, "{} vs {}", ld_lo, ld_in);
            // Gradients at −π: in θ by central differences (the value there
            // is the constant −π), in the input one-sided.
            let mut g_theta = vec![0.0; th.len()];
            let g_in = if sample {
                t.sample_one_backward(-PI, &th, g_out, g_ld, &mut g_theta)
            } else {
                t.density_one_backward(-PI, &th, g_out, g_ld, &mut g_theta)
            };
            for (q, g) in g_theta.iter().enumerate() {
                let num = derivative(|e| {
                    let mut p = th.clone();
                    p[q] = e;
                    g_out * value(&t, sample, -PI, &p).0 + g_ld * value(&t, sample, -PI, &p).1
                }, th[q]);
                prop_assert!((g - num).abs() <= 1e-6 * (1.0 + num.abs()), "θ[{}]: {} vs {}", q, g, num);
            }
            // A Richardson-extrapolated forward difference.
            let f = |v: f64| { let (o, l) = value(&t, sample, v, &th); g_out * o + g_ld * l };
            let d = |h: f64| (f(-PI + h) - f(-PI)) / h;
            // (Small steps and a loose tolerance: a steep first bin curves the
            // log-derivative so sharply that the difference is good to ~1e-4.)
            let one_sided = (4.0 * d(1e-8) - d(2e-8)) / 3.0;
            prop_assert!((g_in - one_sided).abs() <= 1e-3 * (1.0 + one_sided.abs()), "{} vs {}", g_in, one_sided);
        }
    }
}

/// Off the circle: the value passes through, the log-derivative is −∞ in
/// the density direction (+∞ in the sample direction), never NaN, and the
/// backward passes give zero parameter gradients.
#[test]
fn points_off_the_circle_are_outside_the_support() {
    let t = CircularSpline { bins: 4 };
    let th: Vec<f64> = (0..12).map(|i| (i as f64 * 0.9).cos()).collect();
    for v in [PI, 3.5, -3.2, 1e300, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(t.density_one(v, &th), (v, f64::NEG_INFINITY), "{v}");
        assert_eq!(t.sample_one(v, &th), (v, f64::INFINITY), "{v}");
        let mut g = vec![0.0; 12];
        assert_eq!(t.density_one_backward(v, &th, 0.5, 1.0, &mut g), 0.5);
        assert!(g.iter().all(|v| *v == 0.0));
    }
    let (nan, ld) = t.density_one(f64::NAN, &th);
    assert!(nan.is_nan() && ld == f64::NEG_INFINITY);
}

// ---- layers through the kit ----

proptest! {
    #![proptest_config(config(8))]

    /// f64, both directions: round trip, log-det against the numerical
    /// Jacobian, forward/inverse consistency, and the gradients of both
    /// backward passes against differences.
    #[test]
    fn random_layers_pass_the_kit(seed in 0u64..10_000, dim in 2usize..=4, bins in 1usize..=8, flip: bool) {
        let l = layer(dim, bins, flip, seed);
        let x = off_knots(&l, angles(dim, N, seed + 1), false, GAP);
        prop_assume!(!image_near_a_kink(&l, &x));
        let report = check_bijector(&l, &x).map_err(fail)?;
        prop_assert!(report.max_abs_log_det > 1e-3, "{report:?}");
        let grads = check_gradients_with(&l, &x, TOL).map_err(fail)?;
        prop_assert_eq!(&grads.directions, &["forward", "inverse"]);
        // The inverse direction at data points clear of the y-knots.
        let y = off_knots(&l, angles(dim, N, seed + 5), true, GAP);
        check_bijector(&Invert::new(l.clone()), &y).map_err(fail)?;
        check_gradients_with(&Invert::new(l.clone()), &y, TOL).map_err(fail)?;
    }

    /// Random layers (unscaled: f32 rounding grows with the steepest
    /// slope) in f32, read back from JSON, inputs further from the knots
    /// (the f32 difference step is about 5e-3).
    #[test]
    fn random_layers_pass_the_kit_in_f32(seed in 0u64..10_000, dim in 2usize..=4, bins in 1usize..=8, flip: bool) {
        let l = layer_scaled(dim, bins, flip, seed, 1.0);
        let l32: CircularSplineCoupling<f32> =
            serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        let x = off_knots(&l, angles(dim, N, seed + 2), false, 2e-2);
        let y = l.forward(&x);
        prop_assume!(y.amax() < PI - 0.05 && off_knots(&l, y.clone(), true, 2e-2) == y);
        check_bijector(&l32, &x.clone().cast::<f32>()).map_err(fail)?;
        // f32 agrees with f64.
        let (y64, ld64) = l.forward_and_log_det(&x);
        let (y32, ld32) = l32.forward_and_log_det(&x.clone().cast::<f32>());
        prop_assert!((y32.cast::<f64>() - y64).amax() < 1e-4);
        prop_assert!((ld32.cast::<f64>() - ld64).amax() < 1e-3);
    }

    /// Conditioned on a context: the kit's checks with the gradients in the
    /// context, and another context gives another map.
    #[test]
    fn conditional_layers_pass_the_kit(seed in 0u64..10_000, dim in 2usize..=3, bins in 2usize..=6) {
        let mask = CouplingMask::half(dim, seed % 2 == 0).unwrap();
        let l = CircularSplineCoupling::<f64>::conditional(mask, 2, bins, &cfg(), &mut rng(seed)).unwrap();
        let x = angles(dim, N, seed + 3);
        let c = angles(2, N, seed + 4) * 0.5;
        check_bijector_given(&l, &x, &c).map_err(fail)?;
        let grads = check_gradients_given_with(&l, &x, &c, TOL).map_err(fail)?;
        prop_assert_eq!(&grads.directions, &["forward", "inverse"]);
        let other = c.map(|v| v + 1.0);
        prop_assert!((l.forward_given(&x, &c) - l.forward_given(&x, &other)).amax() > 1e-6);
    }
}

/// `log|det J|` of the forward map against the determinant of a
/// central-difference Jacobian (f64), sample by sample.
#[test]
fn log_det_matches_the_numerical_jacobian() {
    for seed in 0..6u64 {
        let dim = 2 + seed as usize % 3;
        let l = layer(dim, 3 + seed as usize, seed % 2 == 1, seed);
        let x = off_knots(&l, angles(dim, 4, 50 + seed), false, GAP);
        let (_, ldj) = l.forward_and_log_det(&x);
        for s in 0..x.ncols() {
            let f = |v: &DVector<f64>| {
                let m = DMatrix::from_column_slice(dim, 1, v.as_slice());
                l.forward(&m).column(0).into_owned()
            };
            let j = numerical_jacobian(f, &x.column(s).into_owned());
            let num = log_abs_det(&j);
            assert!(
                (ldj[s] - num).abs() < 1e-6,
                "seed {seed}: {} vs {num}",
                ldj[s]
            );
        }
    }
}

/// A fresh layer with `identity_init` (the default) is the identity with
/// log-det 0, in both directions.
#[test]
fn identity_init_is_the_identity() {
    let cfg = ConditionerConfig::default();
    for dim in [2usize, 3, 5] {
        let mask = CouplingMask::half(dim, false).unwrap();
        let l = CircularSplineCoupling::<f64>::new(mask, 8, &cfg, &mut rng(1)).unwrap();
        let x = angles(dim, 20, 2);
        let (y, ldj) = l.forward_and_log_det(&x);
        assert!((y - &x).amax() < 1e-12 && ldj.amax() < 1e-12);
        let (u, ildj) = l.inverse_and_log_det(&x);
        assert!((u - &x).amax() < 1e-12 && ildj.amax() < 1e-12);
    }
}

/// The conditioner reads (cos, sin) of the identity angles: turning one by
/// 2π changes nothing, and the transformed angles' images of −π and of
/// points just below π stay at the ends.
#[test]
fn layers_are_periodic_and_keep_the_ends() {
    let l = layer(3, 6, false, 9);
    let x = angles(3, 8, 10);
    let mut turned = x.clone();
    for i in l.mask().identity_indices() {
        turned.row_mut(*i).add_scalar_mut(2.0 * PI);
    }
    let (y, ld) = l.forward_and_log_det(&x);
    let (y2, ld2) = l.forward_and_log_det(&turned);
    for &i in l.mask().transformed_indices() {
        assert!((y.row(i) - y2.row(i)).amax() < 1e-12);
    }
    assert!((ld - ld2).amax() < 1e-12);
    let mut ends = x.clone();
    for &i in l.mask().transformed_indices() {
        ends.row_mut(i).fill(-PI);
    }
    let (e, ld_lo) = l.forward_and_log_det(&ends);
    for &i in l.mask().transformed_indices() {
        assert!(e.row(i).iter().all(|v| *v == -PI));
        ends.row_mut(i).fill(PI - 1e-10);
    }
    let (e, ld_hi) = l.forward_and_log_det(&ends);
    assert!(e.iter().all(|v| *v < PI));
    assert!((ld_lo - ld_hi).amax() < 1e-6, "one slope at both ends");
}

// ---- the DSL ----

/// `circular_spline` parses with its keys, refuses `bound`, and its
/// parameter count (footprint and built flow) is the MLP's: `2|A|` inputs
/// (cos and sin), `|B|·3K` outputs.
#[test]
fn dsl_and_parameter_count() {
    let spec =
        FlowSpec::parse("circular_spline(2, hidden = 8, depth = 1, bins = 4, activation = tanh)")
            .unwrap();
    // Printed in the table's key order.
    assert_eq!(
        spec.to_string(),
        "circular_spline(2, hidden = 8, depth = 1, activation = tanh, bins = 4)"
    );
    assert!(FlowSpec::parse("circular_spline(bound = 3.0)").is_err());
    let flow = spec.build::<f64>(5, &mut rng(0)).unwrap();
    // Copy 1: A = {0, 1}, B = {2, 3, 4}: (4·8 + 8) + (8·36 + 36);
    // copy 2 (complement): A = {2, 3, 4}, B = {0, 1}: (6·8 + 8) + (8·24 + 24).
    let expected = (40 + 324) + (56 + 216);
    assert_eq!(flow.num_params(), expected);
    assert_eq!(
        spec.footprint(5, 0).unwrap().params(),
        Some(expected as u64)
    );
    // A context of 3 adds 3·8 weights to each copy.
    let c = spec.build_conditional::<f64>(5, 3, &mut rng(0)).unwrap();
    assert_eq!(c.num_params(), expected + 48);
    assert_eq!(
        spec.footprint(5, 3).unwrap().params(),
        Some(expected as u64 + 48)
    );
    assert!(matches!(
        flow.layers()[0],
        normflow::spec::FlowLayer::CircularSpline(_)
    ));
}
