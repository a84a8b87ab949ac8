//! Hand-written reverse mode of the rational-quadratic spline layers
//! (`RationalQuadraticSpline`, `SplineCoupling`, `SplineAutoregressive`)
//! against central finite differences (`normflow::testing::check_gradients`:
//! every parameter and every input entry, f64, relative tolerance 1e-6).
//!
//! - random layers (random raw spline parameters; randomly initialised Tanh /
//!   ELU conditioners, not the identity initialisation) and random inputs
//!   inside `(−B, B)` and in the identity tails;
//! - which directions are differentiable: both for the elementwise spline and
//!   the coupling; only the inverse (one MADE pass) for the autoregressive
//!   layer, whose sequential forward is reported as skipped;
//! - accumulation: the backward passes *add* into the gradient buffer, so two
//!   half-batches sum to the full batch;
//! - steep layers, where the checker's own differences are not accurate
//!   enough, against Richardson-extrapolated differences.
//!
//! **Inputs are moved off the knots** (of both sides: the checker evaluates
//! the forward at `x` and the inverse at `y = f(x)`). The spline is C¹ but not
//! C² at its knots and at ±B, and a central difference whose stencil straddles
//! such a joint is only first-order accurate (see tests/spline_layers.rs for
//! the measured size of that error); a point `1e-4 (1 + |knot|)` away keeps
//! the stencil (`≈ 6e-6 (1 + |x|)`) and the knots' own movement under the
//! parameter steps on one side.
//!
//! **Why the random layers are moderate.** The checker's step
//! `ε^{1/3} (1 + |v|) ≈ 6e-6 (1 + |v|)` has a truncation error `∝ h² ∂³L`, and
//! the gradient of a log-det is already a second derivative of the map, so on
//! steep splines the checker's own differences miss 1e-6. Measured while
//! writing these tests (random inputs, moved off the knots as above):
//!
//! | layers | exceeded 1e-6 | worst |
//! |---|---|---|
//! | elementwise, raw `N(0, 0.7²)` (tests/spline_layers.rs), ≤ 8 bins | 30 / 300 | 7e-6 |
//! | elementwise, raw `N(0, 0.5²)`, ≤ 8 bins | 29 / 3000 | 2e-5 |
//! | coupling, doubled weights (raw parameters up to ~10) | 82 / 300 | 4.6 |
//! | coupling, default init, ELU in a third, ≤ 8 bins | 4 / 3000 | 1.3e-5 |
//! | **elementwise, raw `N(0, 0.3²)`, ≤ 6 bins** | 0 / 20 000 | 1.8e-7 |
//! | **coupling, default init, tanh, ≤ 6 bins** | 0 / 4000 | 5.1e-8 |
//! | **autoregressive, default init, ELU, ≤ 6 bins** | 0 / 4000 | 2.4e-7 |
//!
//! Almost all excesses were in the inverse direction, whose slope varies over
//! one bin *height*. Every elementwise excess agreed with Richardson-
//! extrapolated differences to 1e-7; the extreme doubled-weight couplings
//! examined (gradients of 1e5 to 4e6) have differences that converge to the
//! backward pass as the step shrinks to 1e-7 (an input gradient to 8 digits).
//! None of it is a derivation error. The proptests therefore use the
//! bold rows (the conditioners' default random initialisation gives raw
//! parameters of a few tenths; ELU's unbounded positive side gives larger ones
//! in an MLP fed `|x_A|` up to 6, hence tanh for the coupling), and
//! `steep_layers_match_richardson_differences` covers steeper layers against
//! the more accurate reference, at the same tolerance 1e-6.
//!
//! Not tested here: a `Chain` of spline layers through `check_gradients`,
//! because `Chain` does not implement `Differentiable` in this version.

use nalgebra::{DMatrix, DVector};
use normflow::bijector::Differentiable;
use normflow::prelude::*;
use normflow::testing::strategies::batch;
use normflow::testing::{GradientReport, check_gradients};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Samples per batch.
const N: usize = 6;
/// Distance (relative to `1 + |knot|`) kept from every knot and from ±B.
const GAP: f64 = 1e-4;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A randomly initialised, smooth conditioner (no ReLU kink for the central
/// differences to straddle).
fn random_cfg(elu: bool) -> ConditionerConfig {
    ConditionerConfig {
        hidden: 12,
        depth: 2,
        activation: if elu {
            Activation::Elu
        } else {
            Activation::Tanh
        },
        identity_init: false,
        residual: false,
    }
}

/// Raw spline parameters `N(0, 0.3²)` (see the file's docs).
fn moderate_spline(d: usize, bins: usize, bound: f64, seed: u64) -> RationalQuadraticSpline<f64> {
    let mut s = RationalQuadraticSpline::random(d, bins, bound, &mut rng(seed)).unwrap();
    s.params_mut().iter_mut().for_each(|v| *v *= 0.3);
    s
}

/// Doubles every conditioner weight: raw spline parameters of O(1) up to ~10,
/// steep bins (for the Richardson test only).
fn amplify(params: &mut [f64]) {
    params.iter_mut().for_each(|v| *v *= 2.0);
}

// ---- moving inputs off the knots ----

fn is_clear(v: f64, knots: &[f64]) -> bool {
    knots.iter().all(|k| (v - k).abs() >= GAP * (1.0 + k.abs()))
}

/// `v`, moved right until it is at least `GAP·(1 + |knot|)` from every knot.
fn clear_of(mut v: f64, knots: &[f64]) -> f64 {
    for _ in 0..64 {
        match knots
            .iter()
            .find(|k| (v - **k).abs() < GAP * (1.0 + k.abs()))
        {
            Some(k) => v = k + 2.0 * GAP * (1.0 + k.abs()),
            None => break,
        }
    }
    v
}

/// The one-dimensional spline with the raw parameters `theta`.
fn spline_1d(theta: &[f64], bins: usize, bound: f64) -> RationalQuadraticSpline<f64> {
    RationalQuadraticSpline::new(1, bins, bound, theta.to_vec()).expect("valid raw parameters")
}

fn at(f: impl Fn(&DMatrix<f64>) -> DMatrix<f64>, v: f64) -> f64 {
    f(&DMatrix::from_element(1, 1, v))[(0, 0)]
}

/// `x`, moved right (the spline is increasing, so its image moves right too)
/// until `x` is clear of the x-knots and `s(x)` of the y-knots.
fn clear_both_sides(s: &RationalQuadraticSpline<f64>, mut x: f64) -> f64 {
    let (xs, ys, _) = s.knots(0);
    for _ in 0..64 {
        x = clear_of(x, &xs);
        let y = at(|m| s.forward(m), x);
        if is_clear(y, &ys) {
            return x;
        }
        x = at(|m| s.inverse(m), clear_of(y, &ys));
    }
    panic!("could not move {x} off the knots of {s:?}")
}

fn off_knots_elementwise(s: &RationalQuadraticSpline<f64>, mut x: DMatrix<f64>) -> DMatrix<f64> {
    for i in 0..x.nrows() {
        let si = spline_1d(s.coord_params(i), s.bins(), s.bound());
        for v in x.row_mut(i).iter_mut() {
            *v = clear_both_sides(&si, *v);
        }
    }
    x
}

fn off_knots_coupling(c: &SplineCoupling<f64>, mut x: DMatrix<f64>) -> DMatrix<f64> {
    // The splines depend on x_A = y_A only, which the nudges leave alone.
    let raw = c.spline_params(&x);
    let p = 3 * c.bins() - 1;
    for s in 0..x.ncols() {
        for (j, &i) in c.mask().transformed_indices().iter().enumerate() {
            let theta: Vec<f64> = (0..p).map(|q| raw[(j * p + q, s)]).collect();
            x[(i, s)] = clear_both_sides(&spline_1d(&theta, c.bins(), c.bound()), x[(i, s)]);
        }
    }
    x
}

/// A data point `y` (the input of the differentiable inverse) moved off the
/// y-knots of its own splines, in the autoregressive order (coordinate
/// `order[k]`'s spline depends on the coordinates before it).
fn off_knots_autoregressive(l: &SplineAutoregressive<f64>, mut y: DMatrix<f64>) -> DMatrix<f64> {
    let d = y.nrows();
    let p = 3 * l.bins() - 1;
    for &i in l.order() {
        let out = l.made().forward(&y);
        for s in 0..y.ncols() {
            let theta: Vec<f64> = (0..p).map(|q| out[(q * d + i, s)]).collect();
            let (_, ys, _) = spline_1d(&theta, l.bins(), l.bound()).knots(0);
            y[(i, s)] = clear_of(y[(i, s)], &ys);
        }
    }
    y
}

/// Puts entry `(row, 0)` in a tail (`|v| = tail · B`, `tail > 1`) and entry
/// `(row, 1)` inside (`inside · B`, `|inside| < 1`), so every batch has both.
fn tail_and_inside(x: &mut DMatrix<f64>, row: usize, bound: f64, tail: f64, inside: f64) {
    x[(row, 0)] = tail * bound;
    x[(row, 1)] = inside * bound;
}

fn signed_tail() -> impl Strategy<Value = f64> {
    (1.05f64..3.0, any::<bool>()).prop_map(|(t, neg)| if neg { -t } else { t })
}

fn check<B: Differentiable<f64> + Clone>(
    what: &str,
    layer: &B,
    x: &DMatrix<f64>,
) -> GradientReport {
    check_gradients(layer, x).unwrap_or_else(|f| panic!("{what}: {f}"))
}

fn both_directions(r: &GradientReport) -> bool {
    r.directions == ["forward", "inverse"] && r.skipped.is_empty()
}

/// The autoregressive layer: inverse checked, forward skipped with a reason
/// that points to the inverse.
fn inverse_only(r: &GradientReport) -> bool {
    r.directions == ["inverse"]
        && r.skipped.len() == 1
        && r.skipped[0].starts_with("forward")
        && r.skipped[0].contains("inverse direction")
}

// ---- random layers through check_gradients ----

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn elementwise_spline_gradients_match_finite_differences(
        (d, bins, bound, seed, x, tail, inside) in (1usize..=4, 1usize..=6, 1.0f64..4.0, any::<u64>())
            .prop_flat_map(|(d, bins, bound, seed)| (
                Just(d), Just(bins), Just(bound), Just(seed),
                batch(d, N, 1.5 * bound), signed_tail(), -0.95f64..0.95,
            ))
    ) {
        let s = moderate_spline(d, bins, bound, seed);
        let mut x = x;
        tail_and_inside(&mut x, 0, bound, tail, inside);
        let x = off_knots_elementwise(&s, x);
        let r = check("spline", &s, &x);
        prop_assert!(both_directions(&r), "{r:?}");
        prop_assert_eq!(r.params, d * (3 * bins - 1));
        // One bin is the identity whatever the parameters; more are not.
        let ld = s.forward_log_det_jacobian(&x).amax();
        prop_assert!(bins == 1 || ld > 1e-4, "trivial log-dets {ld}");
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn spline_coupling_gradients_match_finite_differences(
        (d, flip, alternating, bins, bound, seed, x, tail, inside) in
            (2usize..=4, any::<bool>(), any::<bool>(), 1usize..=6, 1.0f64..4.0, any::<u64>())
            .prop_flat_map(|(d, flip, alt, bins, bound, seed)| (
                Just(d), Just(flip), Just(alt), Just(bins), Just(bound), Just(seed),
                batch(d, N, 1.5 * bound), signed_tail(), -0.95f64..0.95,
            ))
    ) {
        let mask = if alternating {
            CouplingMask::alternating(d, flip)
        } else {
            CouplingMask::half(d, flip)
        }.unwrap();
        // Tanh: bounded hidden units, raw parameters of a few tenths.
        let c = SplineCoupling::new(mask, bins, bound, &random_cfg(false), &mut rng(seed)).unwrap();
        let mut x = x;
        tail_and_inside(&mut x, c.mask().transformed_indices()[0], bound, tail, inside);
        let x = off_knots_coupling(&c, x);
        let r = check("coupling", &c, &x);
        prop_assert!(both_directions(&r), "{r:?}");
    }

    #[test]
    fn spline_autoregressive_inverse_gradients_match_finite_differences(
        (d, bins, bound, seed, y, tail, inside) in
            (1usize..=4, 1usize..=6, 1.0f64..4.0, any::<u64>())
            .prop_flat_map(|(d, bins, bound, seed)| (
                Just(d), Just(bins), Just(bound), Just(seed),
                batch(d, N, 1.5 * bound), signed_tail(), -0.95f64..0.95,
            ))
    ) {
        let mut r = rng(seed);
        let order = Permute::random(d, &mut r).unwrap().permutation().to_vec();
        // ELU: the other smooth activation (the MADE's masks keep its raw
        // parameters smaller than the coupling's MLP's).
        let l = SplineAutoregressive::with_order(d, order, bins, bound, &random_cfg(true), &mut r).unwrap();
        // The checker differentiates the inverse at forward(u): choose the data
        // point y off its knots and start from u = inverse(y).
        let mut y = y;
        tail_and_inside(&mut y, d - 1, bound, tail, inside);
        let y = off_knots_autoregressive(&l, y);
        let u = l.inverse(&y);
        let rep = check("autoregressive", &l, &u);
        prop_assert!(inverse_only(&rep), "{rep:?}");
    }
}

/// Zero raw parameters and zero-initialised conditioners (the identity maps)
/// still have non-zero parameter gradients, and they are right.
#[test]
fn identity_initialised_layers_have_correct_gradients() {
    let x = DMatrix::from_fn(3, N, |i, j| (i as f64 - 1.0) * 0.9 + j as f64 * 0.37 - 0.8);
    let s = RationalQuadraticSpline::<f64>::identity(3, 5, 2.0).unwrap();
    let r = check("identity spline", &s, &off_knots_elementwise(&s, x.clone()));
    assert!(both_directions(&r), "{r:?}");
    let cfg = ConditionerConfig {
        identity_init: true,
        ..random_cfg(false)
    };
    let c = SplineCoupling::new(
        CouplingMask::half(3, false).unwrap(),
        5,
        2.0,
        &cfg,
        &mut rng(1),
    )
    .unwrap();
    let r = check("identity coupling", &c, &off_knots_coupling(&c, x.clone()));
    assert!(both_directions(&r), "{r:?}");
    let l = SplineAutoregressive::new(3, 5, 2.0, &cfg, &mut rng(2)).unwrap();
    let y = off_knots_autoregressive(&l, x);
    let r = check("identity autoregressive", &l, &l.inverse(&y));
    assert!(inverse_only(&r), "{r:?}");
    // The gradient of Σ x at the identity is not zero: the check saw something.
    let mut g = vec![0.0; s.num_params()];
    s.forward_and_log_det_backward(
        &off_knots_elementwise(&s, DMatrix::from_element(3, 1, 0.3)),
        &DMatrix::from_element(3, 1, 1.0),
        &DVector::from_element(1, 1.0),
        &mut g,
    )
    .unwrap();
    assert!(g.iter().any(|v| v.abs() > 1e-3), "{g:?}");
}

/// The sequential direction of the autoregressive layer is not
/// differentiable, and says what to use instead.
#[test]
fn autoregressive_forward_gradient_is_unsupported() {
    let l = SplineAutoregressive::<f64>::new(2, 4, 2.0, &random_cfg(false), &mut rng(3)).unwrap();
    let mut g = vec![0.0; l.num_params()];
    let e = l
        .forward_and_log_det_backward(
            &DMatrix::zeros(2, 1),
            &DMatrix::zeros(2, 1),
            &DVector::zeros(1),
            &mut g,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("inverse direction") && msg.contains("Invert"),
        "{msg}"
    );
    assert!(g.iter().all(|v| *v == 0.0));
    assert!(l.as_differentiable().is_some());
}

/// Writing parameters from outside re-zeroes the MADE's masked weights
/// (`params_changed` calls `enforce_masks`), so the layer stays autoregressive.
#[test]
fn autoregressive_set_params_keeps_the_masks() {
    let mut l =
        SplineAutoregressive::<f64>::new(3, 4, 2.0, &random_cfg(false), &mut rng(4)).unwrap();
    let ones = vec![1.0; l.num_params()];
    l.set_params(&ones).unwrap();
    let masked_zero = l.params_to_vec().iter().filter(|v| **v == 0.0).count();
    let masks: usize = l
        .made()
        .masks()
        .iter()
        .map(|m| m.iter().filter(|v| **v == 0.0).count())
        .sum();
    assert!(masks > 0);
    assert_eq!(masked_zero, masks);
}

// ---- accumulation ----

/// Runs a backward pass of `layer` on the columns `cols` of `input`, adding into `g`.
fn backward_cols(
    layer: &dyn Differentiable<f64>,
    inverse: bool,
    input: &DMatrix<f64>,
    w_out: &DMatrix<f64>,
    w_ld: &DVector<f64>,
    cols: std::ops::Range<usize>,
    g: &mut [f64],
) -> DMatrix<f64> {
    let n = cols.len();
    let inp = input.columns(cols.start, n).clone_owned();
    let go = w_out.columns(cols.start, n).clone_owned();
    let gl = w_ld.rows(cols.start, n).clone_owned();
    if inverse {
        layer.inverse_and_log_det_backward(&inp, &go, &gl, g)
    } else {
        layer.forward_and_log_det_backward(&inp, &go, &gl, g)
    }
    .unwrap()
}

/// Backward passes **add** into `grad_params`: the gradient of the full batch
/// equals the sum of the gradients of its two halves accumulated into one
/// buffer (which starts non-zero, to see that nothing is overwritten), and the
/// input gradients are the full batch's columns.
#[test]
fn parameter_gradients_accumulate_over_half_batches() {
    let mut r = rng(5);
    let n = 10;
    let mut s = RationalQuadraticSpline::random(3, 6, 2.0, &mut r).unwrap();
    s.params_mut().iter_mut().for_each(|v| *v *= 0.7);
    let mut c = SplineCoupling::new(
        CouplingMask::alternating(3, false).unwrap(),
        6,
        2.0,
        &random_cfg(false),
        &mut r,
    )
    .unwrap();
    amplify(c.params_mut());
    let mut a =
        SplineAutoregressive::with_order(3, vec![2, 0, 1], 6, 2.0, &random_cfg(true), &mut r)
            .unwrap();
    amplify(a.params_mut());
    let x = DMatrix::from_fn(3, n, |i, j| ((i * 7 + j * 5) % 11) as f64 * 0.55 - 2.6);
    let w_out = DMatrix::from_fn(3, n, |i, j| ((i * 3 + j * 2) % 7) as f64 / 3.0 - 1.0);
    let w_ld = DVector::from_fn(n, |j, _| (j % 4) as f64 * 0.5 - 0.7);
    let cases: [(&str, &dyn Differentiable<f64>, bool); 5] = [
        ("spline forward", &s, false),
        ("spline inverse", &s, true),
        ("coupling forward", &c, false),
        ("coupling inverse", &c, true),
        ("autoregressive inverse", &a, true),
    ];
    for (what, layer, inverse) in cases {
        let np = layer.num_params();
        let mut full = vec![0.0; np];
        let g_full = backward_cols(layer, inverse, &x, &w_out, &w_ld, 0..n, &mut full);
        let start: Vec<f64> = (0..np).map(|k| (k % 5) as f64 - 2.0).collect();
        let mut halves = start.clone();
        let g1 = backward_cols(layer, inverse, &x, &w_out, &w_ld, 0..4, &mut halves);
        let g2 = backward_cols(layer, inverse, &x, &w_out, &w_ld, 4..n, &mut halves);
        assert!(full.iter().any(|v| v.abs() > 1e-2), "{what}: zero gradient");
        for k in 0..np {
            let sum = halves[k] - start[k];
            assert!(
                (sum - full[k]).abs() <= 1e-12 * (1.0 + full[k].abs()),
                "{what}: parameter {k}: halves {sum} vs full {}",
                full[k]
            );
        }
        // Input gradients per column; equal up to the summation order of the
        // conditioner's gemms (which depends on the batch width).
        let halves_in =
            DMatrix::from_fn(3, n, |i, j| if j < 4 { g1[(i, j)] } else { g2[(i, j - 4)] });
        let err = (&halves_in - &g_full).amax() / (1.0 + g_full.amax());
        assert!(err <= 1e-14, "{what}: input gradients differ by {err:e}");
    }
}

// ---- worst errors ----

/// The worst gradient errors `check_gradients` sees over many random layers of
/// the proptests' kinds (printed; run with `--nocapture`).
#[test]
fn worst_gradient_errors_over_many_random_layers() {
    use rand::RngExt;
    let mut worst = [(0.0f64, 0.0f64); 3];
    let names = [
        "RationalQuadraticSpline (both directions)",
        "SplineCoupling, tanh (both directions)",
        "SplineAutoregressive, elu (inverse)",
    ];
    let mut bump = |k: usize, rep: &GradientReport| {
        worst[k].0 = worst[k].0.max(rep.max_param_error);
        worst[k].1 = worst[k].1.max(rep.max_input_error);
    };
    for seed in 0..30u64 {
        let mut r = rng(100 + seed);
        let d = 2 + (seed % 3) as usize;
        let bins = 1 + (seed % 6) as usize;
        let bound = 1.0 + (seed % 4) as f64;
        let raw = DMatrix::from_fn(d, N, |_, _| r.random_range(-1.5 * bound..1.5 * bound));
        let s = moderate_spline(d, bins, bound, 1000 + seed);
        let rep = check("spline", &s, &off_knots_elementwise(&s, raw.clone()));
        assert!(both_directions(&rep));
        bump(0, &rep);
        let mask = CouplingMask::alternating(d, seed % 2 == 0).unwrap();
        let c = SplineCoupling::new(mask, bins, bound, &random_cfg(false), &mut r).unwrap();
        let rep = check("coupling", &c, &off_knots_coupling(&c, raw.clone()));
        assert!(both_directions(&rep));
        bump(1, &rep);
        let order = Permute::random(d, &mut r).unwrap().permutation().to_vec();
        let a = SplineAutoregressive::with_order(d, order, bins, bound, &random_cfg(true), &mut r)
            .unwrap();
        let y = off_knots_autoregressive(&a, raw);
        let rep = check("autoregressive", &a, &a.inverse(&y));
        assert!(inverse_only(&rep));
        bump(2, &rep);
    }
    eprintln!("check_gradients, worst relative errors over 30 random layers of each kind:");
    for (name, (p, i)) in names.iter().zip(worst) {
        eprintln!("  {name:44} parameters {p:.2e}   inputs {i:.2e}");
    }
}

// ---- steep layers, against a more accurate reference ----

/// Deterministic weights in `[−1, 1]` for the test loss.
fn weight(k: usize) -> f64 {
    ((k * 7919 + 13) % 2003) as f64 / 1001.5 - 1.0
}

/// Worst `|analytic − numerical| / (1 + |numerical|)` of the parameter and
/// input gradients of `L = Σ W ⊙ out + Σ w ⊙ log_det` in one direction, where
/// "numerical" is the Richardson extrapolation `(4 D(h/2) − D(h)) / 3` of
/// central differences `D` (error `O(h⁴)` instead of `O(h²)`) with
/// `h = 2e-6 (1 + |v|)`.
fn richardson_errors<B: Differentiable<f64> + Clone>(
    b: &B,
    input: &DMatrix<f64>,
    inverse: bool,
) -> (f64, f64) {
    let (d, n) = input.shape();
    let w_out = DMatrix::from_fn(d, n, |i, j| weight(i + d * j));
    let w_ld = DVector::from_fn(n, |j, _| weight(1000 + j));
    let loss = |l: &B, inp: &DMatrix<f64>| {
        let (o, ld) = if inverse {
            l.inverse_and_log_det(inp)
        } else {
            l.forward_and_log_det(inp)
        };
        o.component_mul(&w_out).sum() + ld.dot(&w_ld)
    };
    let mut gp = vec![0.0; b.num_params()];
    let gi = if inverse {
        b.inverse_and_log_det_backward(input, &w_out, &w_ld, &mut gp)
    } else {
        b.forward_and_log_det_backward(input, &w_out, &w_ld, &mut gp)
    }
    .unwrap();
    let richardson = |f: &mut dyn FnMut(f64) -> f64, v: f64| {
        let h = 2e-6 * (1.0 + v.abs());
        let mut central = |h: f64| (f(v + h) - f(v - h)) / ((v + h) - (v - h));
        (4.0 * central(h / 2.0) - central(h)) / 3.0
    };
    let rel = |a: f64, num: f64| (a - num).abs() / (1.0 + num.abs());
    let theta = b.params_to_vec();
    let mut work = b.clone();
    let mut worst_p: f64 = 0.0;
    for k in 0..theta.len() {
        let num = richardson(
            &mut |t| {
                let mut p = theta.clone();
                p[k] = t;
                work.set_params(&p).unwrap();
                loss(&work, input)
            },
            theta[k],
        );
        worst_p = worst_p.max(rel(gp[k], num));
    }
    let mut worst_i: f64 = 0.0;
    for s in 0..n {
        for i in 0..d {
            let num = richardson(
                &mut |v| {
                    let mut m = input.clone();
                    m[(i, s)] = v;
                    loss(b, &m)
                },
                input[(i, s)],
            );
            worst_i = worst_i.max(rel(gi[(i, s)], num));
        }
    }
    (worst_p, worst_i)
}

/// Steep layers, where `check_gradients`' own differences are not accurate
/// to 1e-6 (file docs): elementwise splines with raw parameters `N(0, 0.7²)`
/// and up to 10 bins (tests/spline_layers.rs's distribution), and conditioned
/// layers with doubled weights, against Richardson-extrapolated differences at
/// the same tolerance 1e-6 (printed; run with `--nocapture`).
#[test]
fn steep_layers_match_richardson_differences() {
    use rand::RngExt;
    let tol = 1e-6;
    let mut worst = [(0.0f64, 0.0f64); 3];
    let mut note = |k: usize, what: &str, (p, i): (f64, f64)| {
        assert!(
            p <= tol && i <= tol,
            "{what}: parameters {p:e}, inputs {i:e}"
        );
        worst[k].0 = worst[k].0.max(p);
        worst[k].1 = worst[k].1.max(i);
    };
    for seed in 0..12u64 {
        let mut r = rng(300 + seed);
        let d = 2 + (seed % 3) as usize;
        let bins = 2 + (seed % 9) as usize;
        let bound = 1.0 + (seed % 3) as f64;
        let raw = DMatrix::from_fn(d, N, |_, _| r.random_range(-1.5 * bound..1.5 * bound));
        let mut s = RationalQuadraticSpline::random(d, bins, bound, &mut r).unwrap();
        s.params_mut().iter_mut().for_each(|v| *v *= 0.7);
        let x = off_knots_elementwise(&s, raw.clone());
        note(
            0,
            &format!("spline {seed} forward"),
            richardson_errors(&s, &x, false),
        );
        note(
            0,
            &format!("spline {seed} inverse"),
            richardson_errors(&s, &s.forward(&x), true),
        );
        let mask = CouplingMask::alternating(d, seed % 2 == 0).unwrap();
        let mut c = SplineCoupling::new(mask, bins, bound, &random_cfg(false), &mut r).unwrap();
        amplify(c.params_mut());
        let x = off_knots_coupling(&c, raw.clone());
        note(
            1,
            &format!("coupling {seed} forward"),
            richardson_errors(&c, &x, false),
        );
        note(
            1,
            &format!("coupling {seed} inverse"),
            richardson_errors(&c, &c.forward(&x), true),
        );
        let order = Permute::random(d, &mut r).unwrap().permutation().to_vec();
        let mut a =
            SplineAutoregressive::with_order(d, order, bins, bound, &random_cfg(true), &mut r)
                .unwrap();
        amplify(a.params_mut());
        let y = off_knots_autoregressive(&a, raw);
        note(
            2,
            &format!("autoregressive {seed} inverse"),
            richardson_errors(&a, &y, true),
        );
    }
    eprintln!(
        "steep layers against Richardson differences, worst relative errors (12 layers each):"
    );
    let names = [
        "RationalQuadraticSpline, N(0, 0.7²), ≤ 10 bins",
        "SplineCoupling, tanh, doubled weights",
        "SplineAutoregressive, elu, doubled weights",
    ];
    for (name, (p, i)) in names.iter().zip(worst) {
        eprintln!("  {name:46} parameters {p:.2e}   inputs {i:.2e}");
    }
}
