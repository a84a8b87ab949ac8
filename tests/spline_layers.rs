//! Rational-quadratic spline layers (Durkan, Bekasov, Murray & Papamakarios
//! 2019, *Neural Spline Flows*): the elementwise `RationalQuadraticSpline`, the
//! `SplineCoupling` and the `SplineAutoregressive` layer.
//!
//! - the kit (`check_bijector`) on random layers and random inputs, in the
//!   tails (out to ±1e3), exactly at the knots and at ±B;
//! - an exact oracle: a 2-bin spline whose knots are known numbers, against
//!   Durkan et al. eq. 4 (values) and eq. 5 (derivatives) evaluated by hand;
//! - Jacobian structure: diagonal, coupling, triangular in the order;
//! - zero parameters / zero-initialised conditioners are the identity;
//! - the conditioners' documented output layouts; f32 against f64; serde;
//!   constructor errors; densities that integrate to one.
//!
//! **Why random inputs are moved off the knots.** The spline is C¹ but not C²:
//! its second derivative jumps at every knot (and at ±B). A central difference
//! whose stencil straddles a knot is then only first-order accurate, with an
//! error of about `|Δf''| h / 12` (at the knots of 200 random splines with 2
//! to 10 bins, the kit's log-det error reached 3.5e-3 relative, at
//! `h ≈ 6e-6 (1 + |x|)`), far above the kit's `1e-6`. Random inputs
//! are therefore nudged away from the knots of their own spline before the
//! kit runs, and the knots themselves are tested separately: with one-sided
//! Richardson differences from each side (which do not straddle), and with the
//! kit at a log-det tolerance that admits the first-order error.

use nalgebra::{DMatrix, DVector};
use normflow::nn::{Activation, ConditionerConfig};
use normflow::prelude::*;
use normflow::testing::strategies::{batch, batch_with_extremes};
use normflow::testing::{
    CheckReport, Tolerances, bijector_jacobians, check_bijector, check_bijector_with,
    check_density_normalizes, check_equivalent,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const N: usize = 8;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A randomly initialised conditioner. Tanh rather than ReLU: the layer is then
/// smooth in the conditioning inputs too (a ReLU kink straddled by a central
/// difference has the same first-order error as a spline knot).
fn random_cfg() -> ConditionerConfig {
    ConditionerConfig {
        hidden: 16,
        depth: 2,
        activation: Activation::Tanh,
        identity_init: false,
        residual: false,
    }
}

/// Runs the kit; a failure names `what` (the layers' `Debug` output is long).
fn run<B: Bijector<f64> + ?Sized>(
    what: &str,
    b: &B,
    x: &DMatrix<f64>,
    nontrivial: bool,
) -> Result<CheckReport, TestCaseError> {
    let report = check_bijector(b, x).map_err(|f| TestCaseError::fail(format!("{what}: {f}")))?;
    if nontrivial {
        prop_assert!(
            report.max_abs_log_det > 1e-4,
            "{what}: log-det was ~0 on this input: {report:?}"
        );
    }
    Ok(report)
}

// ---- moving inputs off the knots (see the file's docs) ----

/// `v`, moved right until it is at least `gap·(1 + |knot|)` from every knot.
fn clear_of(mut v: f64, knots: &[f64], gap: f64) -> f64 {
    for _ in 0..64 {
        match knots
            .iter()
            .find(|k| (v - **k).abs() < gap * (1.0 + k.abs()))
        {
            Some(k) => v = k + 2.0 * gap * (1.0 + k.abs()),
            None => break,
        }
    }
    v
}

/// Which knots to avoid: the x-knots (inputs of `forward`) or the y-knots
/// (inputs of `inverse`).
#[derive(Clone, Copy)]
enum Side {
    X,
    Y,
}

/// The knots on `side` of a spline given by one coordinate's raw parameters.
fn knots_of(raw: &[f64], bins: usize, bound: f64, side: Side) -> Vec<f64> {
    let (xs, ys, _) = RationalQuadraticSpline::new(1, bins, bound, raw.to_vec())
        .expect("raw parameters from a layer are valid")
        .knots(0);
    match side {
        Side::X => xs,
        Side::Y => ys,
    }
}

const GAP: f64 = 1e-4;

fn off_knots_elementwise(
    s: &RationalQuadraticSpline<f64>,
    x: DMatrix<f64>,
    side: Side,
) -> DMatrix<f64> {
    off_knots_elementwise_gap(s, x, side, GAP)
}

fn off_knots_elementwise_gap(
    s: &RationalQuadraticSpline<f64>,
    mut x: DMatrix<f64>,
    side: Side,
    gap: f64,
) -> DMatrix<f64> {
    for i in 0..x.nrows() {
        let knots = knots_of(s.coord_params(i), s.bins(), s.bound(), side);
        for v in x.row_mut(i).iter_mut() {
            *v = clear_of(*v, &knots, gap);
        }
    }
    x
}

fn off_knots_coupling(c: &SplineCoupling<f64>, x: DMatrix<f64>, side: Side) -> DMatrix<f64> {
    off_knots_coupling_gap(c, x, side, GAP)
}

fn off_knots_coupling_gap(
    c: &SplineCoupling<f64>,
    mut x: DMatrix<f64>,
    side: Side,
    gap: f64,
) -> DMatrix<f64> {
    // The knots depend on x_A = y_A only, which the nudges leave alone.
    let raw = c.spline_params(&x);
    let p = 3 * c.bins() - 1;
    for s in 0..x.ncols() {
        for (j, &i) in c.mask().transformed_indices().iter().enumerate() {
            let theta: Vec<f64> = (0..p).map(|q| raw[(j * p + q, s)]).collect();
            x[(i, s)] = clear_of(x[(i, s)], &knots_of(&theta, c.bins(), c.bound(), side), gap);
        }
    }
    x
}

/// Raw parameters of coordinate `i`, sample `s`, from a MADE output (rows `p·D + i`).
fn made_theta(out: &DMatrix<f64>, d: usize, p: usize, i: usize, s: usize) -> Vec<f64> {
    (0..p).map(|q| out[(q * d + i, s)]).collect()
}

/// For `Side::X`, `v` is a base point `u` (input of `forward`); for `Side::Y`
/// a data point `x` (input of `inverse`). Either way coordinate `order[k]`'s
/// spline depends on the data coordinates before it, so nudge in order.
fn off_knots_autoregressive(
    l: &SplineAutoregressive<f64>,
    v: DMatrix<f64>,
    side: Side,
) -> DMatrix<f64> {
    off_knots_autoregressive_gap(l, v, side, GAP)
}

fn off_knots_autoregressive_gap(
    l: &SplineAutoregressive<f64>,
    mut v: DMatrix<f64>,
    side: Side,
    gap: f64,
) -> DMatrix<f64> {
    let d = v.nrows();
    let p = 3 * l.bins() - 1;
    for &i in l.order() {
        let data = match side {
            Side::X => l.forward(&v),
            Side::Y => v.clone(),
        };
        let out = l.made().forward(&data);
        for s in 0..v.ncols() {
            let knots = knots_of(&made_theta(&out, d, p, i, s), l.bins(), l.bound(), side);
            v[(i, s)] = clear_of(v[(i, s)], &knots, gap);
        }
    }
    v
}

/// Doubles every conditioner weight, so that the raw spline parameters are
/// O(1) and the layers are far from the identity (the PyTorch-style
/// initialisation gives outputs of a few tenths). Not more: see `steep_bins_*`.
fn amplify(params: &mut [f64]) {
    params.iter_mut().for_each(|v| *v *= 2.0);
}

// ---- random layers through the kit ----

fn spline_case() -> impl Strategy<Value = (RationalQuadraticSpline<f64>, DMatrix<f64>)> {
    (1usize..=5, 2usize..=10, 0.5f64..5.0, any::<u64>()).prop_flat_map(|(d, bins, bound, seed)| {
        let mut s = RationalQuadraticSpline::random(d, bins, bound, &mut rng(seed)).unwrap();
        // Raw parameters ~ N(0, 0.7²) rather than N(0, 1); see `steep_bins_*` below.
        s.params_mut().iter_mut().for_each(|v| *v *= 0.7);
        // Inside, in the tails, and far out (up to 1e3) in one batch.
        let x = prop_oneof![
            3 => batch(d, N, 1.5 * bound),
            1 => batch_with_extremes(d, N, 1e3),
        ];
        (Just(s), x)
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn elementwise_spline_passes_the_kit((s, x) in spline_case()) {
        let x = off_knots_elementwise(&s, x, Side::X);
        let inside = x.iter().any(|v| v.abs() < s.bound());
        run("spline", &s, &x, inside)?;
        let y = off_knots_elementwise(&s, s.forward(&x), Side::Y);
        run("Invert(spline)", &Invert::new(s.clone()), &y, inside)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn spline_coupling_passes_the_kit(
        (d, flip, alternating, bins, bound, seed, x) in (2usize..=5, any::<bool>(), any::<bool>(), 2usize..=8, 1.0f64..4.0, any::<u64>())
            .prop_flat_map(|(d, flip, alt, bins, bound, seed)| (Just(d), Just(flip), Just(alt), Just(bins), Just(bound), Just(seed), batch(d, N, 1.5 * bound)))
    ) {
        let mask = if alternating {
            CouplingMask::alternating(d, flip)
        } else {
            CouplingMask::half(d, flip)
        }.unwrap();
        let mut r = rng(seed);
        let mut c = SplineCoupling::new(mask, bins, bound, &random_cfg(), &mut r).unwrap();
        amplify(c.params_mut());
        let x = off_knots_coupling(&c, x, Side::X);
        let inside = c.mask().transformed_indices().iter().any(|&i| x.row(i).iter().any(|v| v.abs() < bound));
        run("coupling", &c, &x, inside)?;
        let y = off_knots_coupling(&c, c.forward(&x), Side::Y);
        run("Invert(coupling)", &Invert::new(c.clone()), &y, inside)?;
    }

    #[test]
    fn spline_autoregressive_passes_the_kit(
        (d, bins, bound, seed, x) in (1usize..=5, 2usize..=8, 1.0f64..4.0, any::<u64>())
            .prop_flat_map(|(d, bins, bound, seed)| (Just(d), Just(bins), Just(bound), Just(seed), batch(d, N, 1.5 * bound)))
    ) {
        let mut r = rng(seed);
        let order = Permute::random(d, &mut r).unwrap().permutation().to_vec();
        let mut l = SplineAutoregressive::with_order(d, order, bins, bound, &random_cfg(), &mut r).unwrap();
        amplify(l.params_mut());
        let u = off_knots_autoregressive(&l, x, Side::X);
        let inside = u.iter().any(|v| v.abs() < bound);
        run("autoregressive", &l, &u, inside)?;
        let y = off_knots_autoregressive(&l, l.forward(&u), Side::Y);
        run("Invert(autoregressive)", &Invert::new(l.clone()), &y, inside)?;
    }
}

/// A chain of all three layers (with a permutation) passes the kit.
#[test]
fn a_chain_of_spline_layers_passes_the_kit() {
    let mut r = rng(11);
    let cfg = random_cfg();
    let a =
        SplineCoupling::new(CouplingMask::half(3, false).unwrap(), 6, 3.0, &cfg, &mut r).unwrap();
    let b = SplineAutoregressive::new(3, 6, 3.0, &cfg, &mut r).unwrap();
    let e = RationalQuadraticSpline::random(3, 6, 3.0, &mut r).unwrap();
    let x = DMatrix::from_fn(3, 16, |i, j| ((i * 5 + j * 7) % 13) as f64 / 2.0 - 3.1);
    let chain = a
        .clone()
        .then(Permute::reverse(3).unwrap())
        .then(b.clone())
        .then(e.clone());
    // Nudge off the knots of the first layer; the later layers' knots are
    // reached only through the earlier maps, so check that the chain passes
    // on this fixed batch (it does, none of its points lands near a knot).
    let x = off_knots_coupling(&a, x, Side::X);
    let report = check_bijector(&chain, &x).unwrap_or_else(|f| panic!("{f}"));
    assert!(report.max_abs_log_det > 0.1, "{report:?}");
    // Invert(chain) is the chain of the inverses, reversed.
    let reversed = Invert::new(e)
        .then(Invert::new(b))
        .then(Permute::reverse(3).unwrap())
        .then(Invert::new(a));
    check_equivalent(
        &Invert::new(chain.clone()),
        &reversed,
        &chain.forward(&x),
        1e-12,
    )
    .unwrap();
}

/// The worst errors the kit sees over many random layers, in f64 and f32
/// (printed; run with `--nocapture` to read them). The f32 twins are the f64
/// layers read back from JSON into the f32 type; f32 inputs are kept
/// `2e-2 (1 + |knot|)` away from the knots (the f32 step is `≈ 5e-3 (1 + |x|)`).
#[test]
fn worst_case_errors_over_many_random_layers() {
    use rand::RngExt;
    let (mut r64, mut r32) = (CheckReport::default(), CheckReport::default());
    for seed in 0..40u64 {
        let mut r = rng(1000 + seed);
        let d = 2 + (seed % 4) as usize;
        let bins = 2 + (seed % 7) as usize;
        let bound = 1.0 + (seed % 3) as f64;
        let cfg = random_cfg();
        let mut e = RationalQuadraticSpline::random(d, bins, bound, &mut r).unwrap();
        e.params_mut().iter_mut().for_each(|v| *v *= 0.7);
        let mask = CouplingMask::alternating(d, seed % 2 == 0).unwrap();
        let mut c = SplineCoupling::new(mask, bins, bound, &cfg, &mut r).unwrap();
        amplify(c.params_mut());
        let order = Permute::random(d, &mut r).unwrap().permutation().to_vec();
        let mut a = SplineAutoregressive::with_order(d, order, bins, bound, &cfg, &mut r).unwrap();
        amplify(a.params_mut());
        let raw = DMatrix::from_fn(d, N, |_, _| r.random_range(-1.5 * bound..1.5 * bound));
        let check64 = |b: &dyn Bijector<f64>, x: &DMatrix<f64>| {
            check_bijector(b, x).unwrap_or_else(|f| panic!("seed {seed}: {f}"))
        };
        let xe = off_knots_elementwise(&e, raw.clone(), Side::X);
        let xc = off_knots_coupling(&c, raw.clone(), Side::X);
        let xa = off_knots_autoregressive(&a, raw.clone(), Side::X);
        let ye = off_knots_elementwise(&e, e.forward(&xe), Side::Y);
        let yc = off_knots_coupling(&c, c.forward(&xc), Side::Y);
        let ya = off_knots_autoregressive(&a, a.forward(&xa), Side::Y);
        for rep in [
            check64(&e, &xe),
            check64(&c, &xc),
            check64(&a, &xa),
            check64(&Invert::new(e.clone()), &ye),
            check64(&Invert::new(c.clone()), &yc),
            check64(&Invert::new(a.clone()), &ya),
        ] {
            r64 = r64.merge(rep);
        }
        // f32 twins, inputs further from the knots.
        let e32: RationalQuadraticSpline<f32> = from_json(&e);
        let c32: SplineCoupling<f32> = from_json(&c);
        let a32: SplineAutoregressive<f32> = from_json(&a);
        let xe = off_knots_elementwise_gap(&e, raw.clone(), Side::X, 2e-2).cast::<f32>();
        let xc = off_knots_coupling_gap(&c, raw.clone(), Side::X, 2e-2).cast::<f32>();
        let xa = off_knots_autoregressive_gap(&a, raw.clone(), Side::X, 2e-2).cast::<f32>();
        let check32 = |b: &dyn Bijector<f32>, x: &DMatrix<f32>| {
            check_bijector(b, x).unwrap_or_else(|f| panic!("f32, seed {seed}: {f}"))
        };
        for rep in [check32(&e32, &xe), check32(&c32, &xc), check32(&a32, &xa)] {
            r32 = r32.merge(rep);
        }
    }
    eprintln!("f64, 40 random layers of each kind, both directions:\n{r64}");
    eprintln!("f32, the same layers (forward direction):\n{r32}");
    assert!(r64.max_abs_log_det > 1.0 && r32.max_abs_log_det > 1.0);
}

fn from_json<A: serde::Serialize, B: serde::de::DeserializeOwned>(a: &A) -> B {
    serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap()
}

// ---- tails, knots and ±B ----

fn some_spline(bins: usize, bound: f64, seed: u64) -> RationalQuadraticSpline<f64> {
    RationalQuadraticSpline::random(2, bins, bound, &mut rng(seed)).unwrap()
}

/// Outside `(−B, B)` the spline is exactly the identity with log-det exactly 0,
/// however far out, in both directions, and never NaN.
#[test]
fn tails_are_the_exact_identity() {
    let s = some_spline(8, 3.0, 1);
    let b = 3.0_f64;
    let out = [
        -1e3,
        -1e300,
        -b - 1e-12,
        -b,
        b,
        b * (1.0 + f64::EPSILON),
        3.5,
        1e3,
        f64::MAX,
    ];
    let x = DMatrix::from_fn(2, out.len(), |_, j| out[j]);
    let (y, ldj) = s.forward_and_log_det(&x);
    assert_eq!(y, x);
    assert!(ldj.iter().all(|v| *v == 0.0), "{ldj}");
    let (back, ildj) = s.inverse_and_log_det(&x);
    assert_eq!(back, x);
    assert!(ildj.iter().all(|v| *v == 0.0), "{ildj}");
    // Infinities pass through with a finite log-det; NaN stays NaN, with no panic.
    let special = DMatrix::from_row_slice(2, 2, &[f64::INFINITY, f64::NAN, f64::NEG_INFINITY, 0.5]);
    let (y, ldj) = s.forward_and_log_det(&special);
    assert_eq!(y[(0, 0)], f64::INFINITY);
    assert_eq!(y[(1, 0)], f64::NEG_INFINITY);
    assert!(ldj[0] == 0.0);
    assert!(y[(0, 1)].is_nan());
    let (x_inf, ildj) = s.inverse_and_log_det(&special);
    assert_eq!(x_inf[(0, 0)], f64::INFINITY);
    assert!(ildj[0] == 0.0);
}

/// `check_bijector` in the tails: far out (±1e3), just outside ±B, and
/// mixed with points inside.
#[test]
fn kit_passes_in_the_tails() {
    for (bins, bound, seed) in [(8, 3.0, 2), (3, 0.5, 3), (12, 5.0, 4)] {
        let s = some_spline(bins, bound, seed);
        let pts = [
            -1e3,
            -2.0 * bound,
            -1.01 * bound,
            1.01 * bound,
            2.0 * bound,
            1e3,
        ];
        let x = DMatrix::from_fn(2, pts.len(), |i, j| pts[(j + i) % pts.len()]);
        let r = check_bijector(&s, &x).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(r.max_abs_log_det, 0.0); // identity out there
        // Mixed with inside points (off the knots) the log-dets are nontrivial.
        let x = off_knots_elementwise(
            &s,
            DMatrix::from_fn(2, pts.len(), |i, j| {
                if i == 0 {
                    pts[j]
                } else {
                    (j as f64 / 3.0 - 0.9) * bound
                }
            }),
            Side::X,
        );
        let r = check_bijector(&s, &x).unwrap_or_else(|f| panic!("{f}"));
        assert!(r.max_abs_log_det > 1e-3, "{r:?}");
    }
}

/// Derivative from one side by one-sided differences `D(h) = (f(x + h) − f(x)) / h`
/// (`h` of the sign `side`), extrapolated twice: `D₁(h) = 2 D(h/2) − D(h)`,
/// then `(4 D₁(h/2) − D₁(h)) / 3`, with error `O(h³)`. The stencil stays on one
/// side of `x`, so a knot at `x` does not spoil it.
fn one_sided(f: impl Fn(f64) -> f64, x: f64, side: f64) -> f64 {
    let h = side * 1e-5 * (1.0 + x.abs());
    let d = |h: f64| (f(x + h) - f(x)) / ((x + h) - x);
    let d1 = |h: f64| 2.0 * d(h / 2.0) - d(h);
    (4.0 * d1(h / 2.0) - d1(h)) / 3.0
}

/// At every knot (interior knots and ±B): the spline maps `x_j` exactly onto
/// `y_j`, the inverse maps `y_j` exactly back, the log-det is `log δ_j`, and the
/// one-sided derivatives from both sides agree with `δ_j` (the spline is C¹).
#[test]
fn knots_map_exactly_and_the_spline_is_c1_there() {
    for (bins, bound, seed) in [(8, 3.0, 5), (2, 1.0, 6), (16, 4.0, 7)] {
        let s = some_spline(bins, bound, seed);
        for coord in 0..2 {
            let (xs, ys, ds) = s.knots(coord);
            assert_eq!(xs.len(), bins + 1);
            assert_eq!(
                (xs[0], xs[bins], ys[0], ys[bins]),
                (-bound, bound, -bound, bound)
            );
            assert_eq!((ds[0], ds[bins]), (1.0, 1.0));
            assert!(
                xs.windows(2)
                    .all(|w| w[1] - w[0] >= 2.0 * bound * 1e-3 * (1.0 - 1e-12))
            );
            assert!(
                ys.windows(2)
                    .all(|w| w[1] - w[0] >= 2.0 * bound * 1e-3 * (1.0 - 1e-12))
            );
            assert!(ds.iter().all(|d| *d >= 1e-3));
            // The other coordinate sits in the tail, where it contributes 0.
            let at = |v: f64| {
                let mut m = DMatrix::from_element(2, 1, 5.0 * bound);
                m[(coord, 0)] = v;
                m
            };
            for j in 0..=bins {
                let (y, ldj) = s.forward_and_log_det(&at(xs[j]));
                assert_eq!(y[(coord, 0)], ys[j], "knot {j}");
                let (x, ildj) = s.inverse_and_log_det(&at(ys[j]));
                assert_eq!(x[(coord, 0)], xs[j], "knot {j}");
                assert!(
                    (ldj[0] - ds[j].ln()).abs() < 1e-12,
                    "knot {j}: {} vs {}",
                    ldj[0],
                    ds[j].ln()
                );
                assert!((ildj[0] + ldj[0]).abs() < 1e-12);
                let f = |v: f64| s.forward(&at(v))[(coord, 0)];
                for side in [-1.0, 1.0] {
                    let num = one_sided(f, xs[j], side);
                    assert!(
                        (num - ds[j]).abs() < 1e-6 * ds[j],
                        "knot {j}, side {side}: one-sided derivative {num} vs δ = {}",
                        ds[j]
                    );
                }
            }
        }
    }
}

/// The kit exactly at the knots and at ±B. Round trips and consistency hold at
/// the default tolerances; the log-det against central differences needs a
/// looser tolerance there, because a stencil centred on a knot has the
/// first-order error `|Δf''| h / 12` (see the file's docs); a sign error or a
/// missing term would still be off by O(1).
#[test]
fn kit_passes_exactly_on_the_knots_and_at_the_bounds() {
    let at_knots = Tolerances {
        log_det: 1e-2,
        ..Tolerances::F64
    };
    for (bins, bound, seed) in [(8, 3.0, 8), (2, 1.0, 9), (5, 2.0, 10)] {
        let s = some_spline(bins, bound, seed);
        let (x0, _, _) = s.knots(0);
        let (x1, _, _) = s.knots(1);
        let x = DMatrix::from_fn(2, bins + 1, |i, j| if i == 0 { x0[j] } else { x1[j] });
        let r = check_bijector_with(&s, &x, &at_knots).unwrap_or_else(|f| panic!("{f}"));
        assert!(r.max_round_trip_error <= 1e-14 && r.max_reverse_round_trip_error <= 1e-14);
        assert!(r.max_abs_log_det > 1e-2, "{r:?}");
    }
}

/// Why the random tests draw moderate parameters. With raw parameters of
/// N(0, 1) size a bin can be very steep: here coordinate 1's first bin rises
/// by 0.007 over a width of 0.88, with slope 1 at both ends (boundary knot and
/// δ₁ ≈ 1.43), so the slope dips to ~1.4e-4 in between and the inverse's slope
/// climbs from 1 to ~7200 within 3e-3 of `y`. The kit's central differences
/// (step ≈ 9e-6 here) then misjudge the inverse's derivative (7204 instead of
/// 7201); a central difference at `h = 1e-8`, whose truncation error is far
/// smaller, agrees with the analytic log-det to 1e-9. The layer is right; the
/// default step of the numerical reference is too coarse for such a bin.
#[test]
fn steep_bins_log_det_matches_a_fine_difference() {
    let p: Vec<f64> = vec![
        1.0305613425552895,
        0.2650340243287397,
        -0.5133021818258443,
        -0.9524946766255066,
        -0.48126404778657816,
        0.6952250395295008,
        0.7593475385726063,
        0.4534698624456369,
        2.0252571635515637,
        -0.9336212596725907,
        -0.5122947620511203,
        -2.813556455440435,
        -0.8355360513117605,
        2.2425339471313457,
        0.6156050229756015,
        1.2928418718940455,
    ];
    let s = RationalQuadraticSpline::new(2, 3, 0.5, p).unwrap();
    let x = DMatrix::from_row_slice(2, 1, &[0.0, -0.22087405687909334]);
    let (y, ldj) = s.forward_and_log_det(&x);
    let (_, ildj) = s.inverse_and_log_det(&y);
    assert!((ldj[0] + ildj[0]).abs() < 1e-12);
    let h = 1e-8;
    let inv = |c: usize, v: f64| {
        let mut m = y.clone();
        m[(c, 0)] = v;
        s.inverse(&m)[(c, 0)]
    };
    let fine: f64 = (0..2)
        .map(|c| ((inv(c, y[(c, 0)] + h) - inv(c, y[(c, 0)] - h)) / (2.0 * h)).ln())
        .sum();
    assert!(ildj[0] > 10.0, "a steep inverse: {}", ildj[0]);
    assert!(
        (fine - ildj[0]).abs() < 1e-7,
        "fine difference {fine} vs analytic {}",
        ildj[0]
    );
    // The kit's own numerical Jacobian is off by more than its 1e-6 here.
    let kit: f64 =
        normflow::testing::log_abs_det(&bijector_jacobians(&Invert::new(s.clone()), &y)[0]);
    assert!((kit - ildj[0]).abs() > 1e-5, "kit {kit} vs {}", ildj[0]);
}

// ---- an exact oracle ----

/// A 2-bin spline on [−1, 1] with known knots:
/// - widths: raw (0, 0) → softmax (½, ½) → fractions 1e-3 + 0.998·½ = ½ each,
///   so the x-knots are (−1, 0, 1);
/// - heights: raw (ln 3, 0) → softmax (¾, ¼) → fractions 1e-3 + 0.998·¾ = 0.7495
///   and 0.2505, so the y-knots are (−1, −1 + 2·0.7495, 1) = (−1, 0.499, 1);
/// - the interior derivative: raw `ln(e^{2 − 1e-3} − 1) − ln(e^{1 − 1e-3} − 1)`,
///   which the map `softplus(raw + ln(e^{1 − 1e-3} − 1)) + 1e-3` sends to δ₁ = 2.
fn oracle() -> RationalQuadraticSpline<f64> {
    let c = ((1.0_f64 - 1e-3).exp() - 1.0).ln();
    let d = ((2.0_f64 - 1e-3).exp() - 1.0).ln() - c;
    RationalQuadraticSpline::new(1, 2, 1.0, vec![0.0, 0.0, 3.0_f64.ln(), 0.0, d]).unwrap()
}

#[test]
fn oracle_knots_are_the_hand_computed_numbers() {
    let (xs, ys, ds) = oracle().knots(0);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
    assert!(
        close(xs[0], -1.0) && close(xs[1], 0.0) && close(xs[2], 1.0),
        "{xs:?}"
    );
    assert!(
        close(ys[0], -1.0) && close(ys[1], 0.499) && close(ys[2], 1.0),
        "{ys:?}"
    );
    assert!(
        close(ds[0], 1.0) && (ds[1] - 2.0).abs() < 1e-14 && close(ds[2], 1.0),
        "{ds:?}"
    );
}

/// Values and derivatives of the oracle spline against Durkan et al. eq. 4,
/// `y = y_k + h [s ξ² + δ_k ξ(1−ξ)] / [s + (δ_{k+1} + δ_k − 2s) ξ(1−ξ)]`, and
/// eq. 5, `dy/dx = s² [δ_{k+1} ξ² + 2s ξ(1−ξ) + δ_k (1−ξ)²] / [s + (…) ξ(1−ξ)]²`,
/// worked out by hand from the knots above (w = 1 in both bins, so s = h).
#[test]
fn oracle_matches_eq_4_and_eq_5() {
    let s = oracle();
    // Bin 0 at x = −0.5: ξ = ½, h = s = 1.499, δ₀ = 1, δ₁ = 2, ξ(1−ξ) = ξ² = (1−ξ)² = ¼.
    //   numerator   s·¼ + δ₀·¼ = 0.37475 + 0.25           = 0.62475
    //   denominator s + (2 + 1 − 2·1.499)·¼ = 1.499 + 0.0005 = 1.4995
    //   y  = −1 + 1.499 · 0.62475 / 1.4995 = −1 + 0.93650025 / 1.4995
    //   y' = 1.499² (2·¼ + 2·1.499·¼ + 1·¼) / 1.4995² = 2.247001 · 1.4995 / 1.4995²
    //      = 2.247001 / 1.4995
    // Bin 1 at x = 0.5: ξ = ½, h = s = 0.501, δ₁ = 2, δ₂ = 1.
    //   numerator   0.501·¼ + 2·¼ = 0.62525
    //   denominator 0.501 + (1 + 2 − 1.002)·¼ = 1.0005
    //   y  = 0.499 + 0.501 · 0.62525 / 1.0005 = 0.499 + 0.31325025 / 1.0005
    //   y' = 0.501² (1·¼ + 2·0.501·¼ + 2·¼) / 1.0005² = 0.251001 / 1.0005
    // Bin 1 at x = 0.25: ξ = ¼, ξ² = 1/16, ξ(1−ξ) = 3/16, (1−ξ)² = 9/16.
    //   numerator   0.501/16 + 2·3/16 = 0.4063125
    //   denominator 0.501 + 1.998·3/16 = 0.875625
    //   y  = 0.499 + 0.501 · 0.4063125 / 0.875625
    //   y' = 0.251001 (1·1/16 + 2·0.501·3/16 + 2·9/16) / 0.875625²
    //      = 0.251001 · (0.0625 + 0.187875 + 1.125) / 0.875625²
    //      = 0.251001 · 1.375375 / 0.875625²
    let cases: [(f64, f64, f64); 3] = [
        (-0.5, -1.0 + 0.93650025 / 1.4995, 2.247001 / 1.4995),
        (0.5, 0.499 + 0.31325025 / 1.0005, 0.251001 / 1.0005),
        (
            0.25,
            0.499 + 0.501 * 0.4063125 / 0.875625,
            0.251001 * 1.375375 / (0.875625 * 0.875625),
        ),
    ];
    for (x, y_expected, dy_expected) in cases {
        let xm = DMatrix::from_element(1, 1, x);
        let (y, ldj) = s.forward_and_log_det(&xm);
        assert!(
            (y[(0, 0)] - y_expected).abs() < 1e-14,
            "x = {x}: {} vs {y_expected}",
            y[(0, 0)]
        );
        assert!(
            (ldj[0] - dy_expected.ln()).abs() < 1e-13,
            "x = {x}: log y' {} vs {}",
            ldj[0],
            dy_expected.ln()
        );
        let (back, ildj) = s.inverse_and_log_det(&y);
        assert!(
            (back[(0, 0)] - x).abs() < 1e-14,
            "inverse at {x}: {}",
            back[(0, 0)]
        );
        assert!((ildj[0] + dy_expected.ln()).abs() < 1e-13);
    }
    // And the knots: exactly y_k (ξ = 0 in eq. 4).
    let (xs, ys, _) = s.knots(0);
    let y = s.forward(&DMatrix::from_row_slice(1, 3, &xs));
    assert_eq!(y.as_slice(), ys.as_slice());
}

/// The inverse uses `ξ = 2c / (−b − √(b² − 4ac))`. Just above a knot `c ≈ 0`
/// and the textbook root `(−b + √(b² − 4ac)) / 2a` cancels to exactly 0; the
/// stable form keeps full relative precision. With equal bins on [−1, 1], the
/// knot 0 maps to 0 and `x ≈ y / δ₁` to first order (the next term is
/// `O(y²)`, below 1e-300 relative here).
#[test]
fn inverse_keeps_relative_precision_next_to_a_knot() {
    let c = ((1.0_f64 - 1e-3).exp() - 1.0).ln();
    let d = ((2.0_f64 - 1e-3).exp() - 1.0).ln() - c;
    let s = RationalQuadraticSpline::new(1, 2, 1.0, vec![0.0, 0.0, 0.0, 0.0, d]).unwrap();
    let (xs, ys, ds) = s.knots(0);
    assert_eq!((xs[1], ys[1]), (0.0, 0.0));
    for y in [1e-20, 1e-100, 1e-300] {
        let x = s.inverse(&DMatrix::from_element(1, 1, y))[(0, 0)];
        assert!((x * ds[1] / y - 1.0).abs() < 1e-14, "y = {y}: x = {x}");
        let back = s.forward(&DMatrix::from_element(1, 1, x))[(0, 0)];
        assert!(
            (back / y - 1.0).abs() < 1e-14,
            "y = {y}: f(f⁻¹(y)) = {back}"
        );
    }
}

// ---- the identity ----

fn assert_identity(b: &dyn Bijector<f64>, x: &DMatrix<f64>) {
    // "Exactly" up to a few ulps of rounding in eq. 4 (ξ·w and y_k + h·ξ).
    let tol = 4.0 * f64::EPSILON * (1.0 + x.amax());
    let (y, ldj) = b.forward_and_log_det(x);
    assert!((&y - x).amax() <= tol, "{b:?}: forward {}", (&y - x).amax());
    assert!(
        ldj.amax() <= 4.0 * f64::EPSILON,
        "{b:?}: log-det {}",
        ldj.amax()
    );
    let (u, ildj) = b.inverse_and_log_det(x);
    assert!((&u - x).amax() <= tol, "{b:?}: inverse {}", (&u - x).amax());
    assert!(
        ildj.amax() <= 4.0 * f64::EPSILON,
        "{b:?}: inverse log-det {}",
        ildj.amax()
    );
}

/// All-zero raw parameters, and zero-initialised conditioners, are the identity.
#[test]
fn zero_parameters_and_zero_initialised_conditioners_are_the_identity() {
    let x = DMatrix::from_fn(4, 41, |i, j| (j as f64 / 40.0 - 0.5) * 8.0 + 0.1 * i as f64);
    for bins in [1, 2, 8, 999] {
        assert_identity(
            &RationalQuadraticSpline::identity(4, bins, 3.0).unwrap(),
            &x,
        );
    }
    let cfg = ConditionerConfig::default();
    assert!(cfg.identity_init);
    let mut r = rng(0);
    let c = SplineCoupling::new(
        CouplingMask::alternating(4, true).unwrap(),
        8,
        3.0,
        &cfg,
        &mut r,
    )
    .unwrap();
    assert!(c.spline_params(&x).iter().all(|v| *v == 0.0));
    assert_identity(&c, &x);
    let a = SplineAutoregressive::new(4, 8, 3.0, &cfg, &mut r).unwrap();
    assert!(a.made().forward(&x).iter().all(|v| *v == 0.0));
    assert_identity(&a, &x);
    // One bin is the identity whatever its parameters (one bin, δ₀ = δ₁ = 1).
    let one =
        RationalQuadraticSpline::new(4, 1, 3.0, (0..8).map(|k| k as f64 - 3.5).collect()).unwrap();
    assert_identity(&one, &x);
}

// ---- Jacobian structure ----

fn lower_triangle_is_nontrivial(j: &DMatrix<f64>, order: &[usize]) -> bool {
    (0..order.len()).any(|k| (0..k).any(|m| j[(order[k], order[m])].abs() > 1e-6))
}

#[test]
fn elementwise_spline_has_a_diagonal_jacobian() {
    let s = RationalQuadraticSpline::random(4, 8, 3.0, &mut rng(12)).unwrap();
    let x = off_knots_elementwise(
        &s,
        DMatrix::from_fn(4, 6, |i, j| (i as f64 - 1.5) + 0.37 * j as f64),
        Side::X,
    );
    for (k, j) in bijector_jacobians(&s, &x).iter().enumerate() {
        for r in 0..4 {
            for c in 0..4 {
                if r == c {
                    assert!(j[(r, c)] > 0.0, "sample {k}: J[{r}{c}] = {}", j[(r, c)]);
                } else {
                    assert_eq!(j[(r, c)], 0.0, "sample {k}: J[{r}{c}]");
                }
            }
        }
    }
}

#[test]
fn coupling_passes_the_identity_half_and_has_a_block_triangular_jacobian() {
    let mask = CouplingMask::new(vec![true, false, true, false, false]).unwrap();
    let c = SplineCoupling::new(mask.clone(), 6, 2.5, &random_cfg(), &mut rng(13)).unwrap();
    let x = off_knots_coupling(
        &c,
        DMatrix::from_fn(5, 6, |i, j| (i as f64 - 2.0) * 0.9 + 0.31 * j as f64),
        Side::X,
    );
    let y = c.forward(&x);
    for &a in mask.identity_indices() {
        assert_eq!(y.row(a), x.row(a), "identity coordinate {a} changed");
    }
    let mut depends_on_a = false;
    for (k, j) in bijector_jacobians(&c, &x).iter().enumerate() {
        for &a in mask.identity_indices() {
            for col in 0..5 {
                let unit = if col == a { 1.0 } else { 0.0 };
                assert_eq!(j[(a, col)], unit, "sample {k}: row {a} is not a unit row");
            }
        }
        for &b in mask.transformed_indices() {
            assert!(j[(b, b)] > 0.0);
            for &b2 in mask.transformed_indices() {
                if b2 != b {
                    assert_eq!(j[(b, b2)], 0.0, "sample {k}: J[{b}{b2}]");
                }
            }
            depends_on_a |= mask
                .identity_indices()
                .iter()
                .any(|&a| j[(b, a)].abs() > 1e-6);
        }
    }
    assert!(
        depends_on_a,
        "the transformed half should depend on the identity half"
    );
}

#[test]
fn autoregressive_spline_has_a_triangular_jacobian_in_its_order() {
    let order = vec![2, 0, 3, 1];
    let l = SplineAutoregressive::with_order(4, order.clone(), 6, 2.5, &random_cfg(), &mut rng(14))
        .unwrap();
    assert_eq!(l.order(), order.as_slice());
    let u = off_knots_autoregressive(
        &l,
        DMatrix::from_fn(4, 6, |i, j| (i as f64 - 1.5) * 0.8 + 0.29 * j as f64),
        Side::X,
    );
    let mut nontrivial = false;
    for (s, j) in bijector_jacobians(&l, &u).iter().enumerate() {
        for k in 0..4 {
            assert!(j[(order[k], order[k])] > 0.0);
            for m in k + 1..4 {
                assert_eq!(
                    j[(order[k], order[m])],
                    0.0,
                    "sample {s}: x_{} depends on u_{} which comes later",
                    order[k],
                    order[m]
                );
            }
        }
        nontrivial |= lower_triangle_is_nontrivial(j, &order);
    }
    assert!(
        nontrivial,
        "the Jacobian should have entries below the diagonal"
    );
}

// ---- the conditioners' output layouts ----

/// The coupling's MLP output, cut into the documented blocks (`j·(3K − 1) + p`),
/// gives per-sample elementwise splines that reproduce the layer.
#[test]
fn coupling_output_layout_is_as_documented() {
    let mask = CouplingMask::half(5, true).unwrap(); // 0, 1 transformed; 2, 3, 4 condition
    let (bins, bound) = (5, 2.0);
    let c = SplineCoupling::new(mask.clone(), bins, bound, &random_cfg(), &mut rng(15)).unwrap();
    let p = 3 * bins - 1;
    assert_eq!(c.net().output_dim(), 2 * p);
    assert_eq!(c.net().input_dim(), 3);
    let x = DMatrix::from_fn(5, 4, |i, j| (i as f64 - 2.0) * 0.7 + 0.4 * j as f64);
    let raw = c.spline_params(&x);
    let (y, ldj) = c.forward_and_log_det(&x);
    for s in 0..x.ncols() {
        let per_sample =
            RationalQuadraticSpline::new(2, bins, bound, raw.column(s).iter().copied().collect())
                .unwrap();
        let xb = DMatrix::from_fn(2, 1, |r, _| x[(mask.transformed_indices()[r], s)]);
        let (yb, l) = per_sample.forward_and_log_det(&xb);
        for (r, &i) in mask.transformed_indices().iter().enumerate() {
            assert_eq!(y[(i, s)], yb[(r, 0)]);
        }
        assert_eq!(ldj[s], l[0]);
    }
}

/// The MADE output rows `p·D + i` are coordinate `i`'s raw parameters: the
/// layer's inverse (one pass) equals elementwise splines built from them.
#[test]
fn autoregressive_output_layout_is_as_documented() {
    let (d, bins, bound) = (3, 4, 2.0);
    let l = SplineAutoregressive::new(d, bins, bound, &random_cfg(), &mut rng(16)).unwrap();
    let p = 3 * bins - 1;
    assert_eq!(l.made().params_per_dim(), p);
    let x = DMatrix::from_fn(d, 4, |i, j| (i as f64 - 1.0) * 0.9 + 0.35 * j as f64);
    let out = l.made().forward(&x);
    let (u, ldj) = l.inverse_and_log_det(&x);
    for s in 0..x.ncols() {
        let mut total = 0.0;
        for i in 0..d {
            let spline =
                RationalQuadraticSpline::new(1, bins, bound, made_theta(&out, d, p, i, s)).unwrap();
            let (ui, li) = spline.inverse_and_log_det(&DMatrix::from_element(1, 1, x[(i, s)]));
            assert_eq!(u[(i, s)], ui[(0, 0)]);
            total += li[0];
        }
        assert!((ldj[s] - total).abs() < 1e-14);
    }
}

/// The parameter buffers: the elementwise spline's is coordinate after
/// coordinate; the layers' are their conditioners'.
#[test]
fn parameter_buffers() {
    let mut s = RationalQuadraticSpline::<f64>::identity(3, 4, 2.0).unwrap();
    assert_eq!(s.num_params(), 3 * 11);
    assert_eq!(s.params_per_coord(), 11);
    // Changing coordinate 1's block changes coordinate 1 only.
    s.params_mut()[11] = 2.0; // first raw width of coordinate 1
    assert_eq!(s.coord_params(1)[0], 2.0);
    let x = DMatrix::from_row_slice(3, 1, &[0.3, 0.3, 0.3]);
    let y = s.forward(&x);
    assert!((y[(0, 0)] - 0.3).abs() < 1e-15 && (y[(2, 0)] - 0.3).abs() < 1e-15);
    assert!((y[(1, 0)] - 0.3).abs() > 1e-3);

    let cfg = ConditionerConfig {
        hidden: 8,
        depth: 1,
        ..random_cfg()
    };
    let mut c = SplineCoupling::<f64>::new(
        CouplingMask::half(4, false).unwrap(),
        3,
        1.0,
        &cfg,
        &mut rng(17),
    )
    .unwrap();
    // MLP 2 → 8 → 2·(3·3 − 1) = 16.
    assert_eq!(c.num_params(), (2 * 8 + 8) + (8 * 16 + 16));
    assert_eq!(c.params(), c.net().params());
    c.params_mut().iter_mut().for_each(|v| *v = 0.0);
    assert_identity(
        &c,
        &DMatrix::from_fn(4, 3, |i, j| i as f64 * 0.3 - j as f64 * 0.2),
    );

    let mut a = SplineAutoregressive::<f64>::new(3, 3, 1.0, &cfg, &mut rng(18)).unwrap();
    assert_eq!(a.num_params(), a.made().num_params());
    assert_eq!(a.params(), a.made().params());
    // Writing every weight breaks the masks until they are enforced again;
    // then output (p·D + i) depends on inputs j < i only.
    a.params_mut().iter_mut().for_each(|v| *v = 0.5);
    a.enforce_masks();
    let conn = a.made().connectivity();
    for r in 0..conn.nrows() {
        for j in 0..3 {
            if j >= r % 3 {
                assert_eq!(conn[(r, j)], 0.0);
            }
        }
    }
    let u = DMatrix::from_fn(3, 2, |i, j| i as f64 * 0.2 - j as f64 * 0.3);
    assert!((a.inverse(&a.forward(&u)) - &u).amax() < 1e-12);
}

// ---- f32 ----

#[test]
fn f32_agrees_with_f64() {
    let s64 = RationalQuadraticSpline::<f64>::random(3, 8, 3.0, &mut rng(19)).unwrap();
    let s32 = RationalQuadraticSpline::<f32>::new(
        3,
        8,
        3.0,
        s64.params().iter().map(|v| *v as f32).collect(),
    )
    .unwrap();
    let mut r64 = rng(20);
    let mut r32 = rng(20);
    let cfg = random_cfg();
    let c64 = SplineCoupling::<f64>::new(
        CouplingMask::half(3, false).unwrap(),
        8,
        3.0,
        &cfg,
        &mut r64,
    )
    .unwrap();
    let c32 = SplineCoupling::<f32>::new(
        CouplingMask::half(3, false).unwrap(),
        8,
        3.0,
        &cfg,
        &mut r32,
    )
    .unwrap();
    let a64 = SplineAutoregressive::<f64>::new(3, 8, 3.0, &cfg, &mut r64).unwrap();
    let a32 = SplineAutoregressive::<f32>::new(3, 8, 3.0, &cfg, &mut r32).unwrap();
    let x = DMatrix::from_fn(3, 24, |i, j| ((i * 5 + j * 7) % 17) as f64 / 2.5 - 3.4);
    let x32 = x.clone().cast::<f32>();
    let pairs: [(&dyn Bijector<f64>, &dyn Bijector<f32>); 3] =
        [(&s64, &s32), (&c64, &c32), (&a64, &a32)];
    for (b64, b32) in pairs {
        let (y64, l64) = b64.forward_and_log_det(&x);
        let (y32, l32) = b32.forward_and_log_det(&x32);
        assert!(l64.amax() > 0.1, "{b64:?}: trivial log-dets");
        for (a, b) in y64.iter().zip(y32.iter()) {
            assert!(
                (*b as f64 - a).abs() <= 1e-4 * (1.0 + a.abs()),
                "{b64:?}: {a} vs {b}"
            );
        }
        for (a, b) in l64.iter().zip(l32.iter()) {
            assert!(
                (*b as f64 - a).abs() <= 1e-4 * (1.0 + a.abs()),
                "{b64:?}: {a} vs {b}"
            );
        }
        let back = b32.inverse(&y32).cast::<f64>();
        assert!((back - &x).amax() < 1e-4, "{b64:?}");
    }
}

/// The kit in f32 with f32 tolerances. The f32 central-difference step is
/// `ε^{1/3} (1 + |x|) ≈ 5e-3 (1 + |x|)`, so inputs are kept 2e-2 (relative)
/// away from the knots.
#[test]
fn f32_layers_pass_the_kit_with_f32_tolerances() {
    let s64 = RationalQuadraticSpline::<f64>::random(3, 6, 3.0, &mut rng(21)).unwrap();
    let s32 = RationalQuadraticSpline::<f32>::new(
        3,
        6,
        3.0,
        s64.params().iter().map(|v| *v as f32).collect(),
    )
    .unwrap();
    let mut x = DMatrix::from_fn(3, 12, |i, j| ((i * 5 + j * 7) % 13) as f64 / 2.0 - 3.2);
    for i in 0..3 {
        let (xs, _, _) = s64.knots(i);
        for v in x.row_mut(i).iter_mut() {
            *v = clear_of(*v, &xs, 2e-2);
        }
    }
    let r = check_bijector(&s32, &x.cast::<f32>()).unwrap_or_else(|f| panic!("{f}"));
    assert!(r.max_abs_log_det > 0.1);
}

// ---- densities ----

/// A spline pushes N(0, 1) to a density that integrates to one (Simpson's
/// rule; the density is only C⁰ at the knots' images, hence many points).
#[test]
fn spline_density_integrates_to_one() {
    let s = RationalQuadraticSpline::<f64>::random(1, 8, 3.0, &mut rng(22)).unwrap();
    let d = TransformedDistribution::new(StandardNormal::new(1).unwrap(), s).unwrap();
    check_density_normalizes(&d, &[-10.0], &[10.0], 40_001, 1e-6).unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn spline_flow_density_integrates_to_one_in_2d() {
    let mut r = rng(23);
    let cfg = random_cfg();
    let a =
        SplineCoupling::new(CouplingMask::half(2, false).unwrap(), 8, 3.0, &cfg, &mut r).unwrap();
    let b = SplineAutoregressive::with_order(2, vec![1, 0], 8, 3.0, &cfg, &mut r).unwrap();
    let dist = TransformedDistribution::new(StandardNormal::new(2).unwrap(), a.then(b)).unwrap();
    check_density_normalizes(&dist, &[-8.0, -8.0], &[8.0, 8.0], 801, 1e-4)
        .unwrap_or_else(|f| panic!("{f}"));
    // Sampling and scoring agree.
    let (y, lp) = dist.sample_and_log_prob(64, &mut r);
    assert!((dist.log_prob(&y) - lp).amax() < 1e-10);
}

// ---- serde ----

fn roundtrip<B: serde::Serialize + serde::de::DeserializeOwned>(b: &B) -> B {
    serde_json::from_str(&serde_json::to_string(b).unwrap()).unwrap()
}

#[test]
fn serde_round_trip_preserves_the_layers() {
    let mut r = rng(24);
    let s = RationalQuadraticSpline::<f64>::random(3, 5, 2.0, &mut r).unwrap();
    let c = SplineCoupling::<f64>::new(
        CouplingMask::alternating(3, false).unwrap(),
        5,
        2.0,
        &random_cfg(),
        &mut r,
    )
    .unwrap();
    let a =
        SplineAutoregressive::<f64>::with_order(3, vec![1, 2, 0], 5, 2.0, &random_cfg(), &mut r)
            .unwrap();
    // Arbitrary f64 parameters: serde_json, built without its `float_roundtrip`
    // feature (the crate's Cargo.toml), may read a 17-digit float back one ulp
    // off, so these agree to rounding; `serde_round_trip_is_bit_identical`
    // checks the layers' serialised form bit for bit.
    let x = DMatrix::from_fn(3, 5, |i, j| (i as f64 - 1.0) * 0.7 + j as f64 * 0.31 - 0.4);
    let (s2, c2, a2) = (roundtrip(&s), roundtrip(&c), roundtrip(&a));
    assert_eq!(
        (s2.bins(), s2.bound(), s2.num_params()),
        (5, 2.0, s.num_params())
    );
    assert_eq!(c2.mask(), c.mask());
    assert_eq!(a2.order(), a.order());
    check_equivalent(&s, &s2, &x, 1e-13).unwrap();
    check_equivalent(&c, &c2, &x, 1e-13).unwrap();
    check_equivalent(&a, &a2, &x, 1e-13).unwrap();
    // Invalid serialised layers are rejected on load.
    let mut v: serde_json::Value = serde_json::to_value(&s).unwrap();
    v["bound"] = serde_json::json!(-1.0);
    assert!(serde_json::from_value::<RationalQuadraticSpline<f64>>(v).is_err());
    let mut v: serde_json::Value = serde_json::to_value(&s).unwrap();
    v["params"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<RationalQuadraticSpline<f64>>(v).is_err());
    let mut v: serde_json::Value = serde_json::to_value(&c).unwrap();
    v["bins"] = serde_json::json!(4);
    assert!(serde_json::from_value::<SplineCoupling<f64>>(v).is_err());
    let mut v: serde_json::Value = serde_json::to_value(&a).unwrap();
    v["bins"] = serde_json::json!(6);
    assert!(serde_json::from_value::<SplineAutoregressive<f64>>(v).is_err());
}

/// With parameters that JSON carries exactly (multiples of 1/128: short
/// decimals, parsed without rounding), a serde_json round trip gives the same
/// layer and bit-identical forward, inverse and log-dets.
#[test]
fn serde_round_trip_is_bit_identical() {
    let dyadic = |k: usize| ((k * 37) % 257) as f64 / 128.0 - 1.0;
    let mut r = rng(25);
    let mut s = RationalQuadraticSpline::<f64>::identity(3, 5, 2.0).unwrap();
    s.params_mut()
        .iter_mut()
        .enumerate()
        .for_each(|(k, v)| *v = dyadic(k));
    let mut c = SplineCoupling::<f64>::new(
        CouplingMask::alternating(3, false).unwrap(),
        5,
        2.0,
        &random_cfg(),
        &mut r,
    )
    .unwrap();
    c.params_mut()
        .iter_mut()
        .enumerate()
        .for_each(|(k, v)| *v = dyadic(k));
    let mut a =
        SplineAutoregressive::<f64>::with_order(3, vec![1, 2, 0], 5, 2.0, &random_cfg(), &mut r)
            .unwrap();
    a.params_mut()
        .iter_mut()
        .enumerate()
        .for_each(|(k, v)| *v = dyadic(k));
    a.enforce_masks();
    let x = DMatrix::from_fn(3, 7, |i, j| (i as f64 - 1.0) * 0.7 + j as f64 * 0.31 - 0.9);
    let same = |p: &dyn Bijector<f64>, q: &dyn Bijector<f64>| {
        let (y, l) = p.forward_and_log_det(&x);
        assert!(l.amax() > 1e-2, "{p:?}: trivial log-dets");
        assert_eq!(q.forward(&x), y);
        assert_eq!(q.forward_log_det_jacobian(&x), l);
        assert_eq!(q.inverse(&y), p.inverse(&y));
        assert_eq!(
            q.inverse_log_det_jacobian(&y),
            p.inverse_log_det_jacobian(&y)
        );
    };
    let s2 = roundtrip(&s);
    assert_eq!(s2, s);
    same(&s, &s2);
    let c2 = roundtrip(&c);
    assert_eq!(c2, c);
    same(&c, &c2);
    let a2 = roundtrip(&a);
    assert_eq!(a2, a);
    same(&a, &a2);
}

// ---- constructor errors ----

#[test]
fn constructor_errors_name_the_argument() {
    let ok = |dim: usize, bins: usize| vec![0.0_f64; dim * (3 * bins - 1)];
    let e = RationalQuadraticSpline::new(0, 4, 1.0, vec![]).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { ref argument, .. } if argument == "dim"),
        "{e}"
    );
    let e = RationalQuadraticSpline::<f64>::new(1, 0, 1.0, vec![]).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { ref argument, got: 0, .. } if argument == "bins"),
        "{e}"
    );
    // K · 1e-3 must stay below 1.
    assert!(RationalQuadraticSpline::<f64>::identity(1, 999, 1.0).is_ok());
    let e = RationalQuadraticSpline::<f64>::identity(1, 1000, 1.0).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { got: 1000, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("bins"), "{e}");
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = RationalQuadraticSpline::new(1, 4, bad, ok(1, 4)).unwrap_err();
        assert!(
            matches!(e, Error::InvalidParameter { ref argument, .. } if argument == "bound"),
            "{e}"
        );
    }
    let e = RationalQuadraticSpline::new(2, 4, 1.0, ok(1, 4)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimensionMismatch {
                expected: 22,
                got: 11,
                ..
            }
        ),
        "{e}"
    );
    let mut p = ok(2, 4);
    p[13] = f64::NAN;
    let e = RationalQuadraticSpline::new(2, 4, 1.0, p).unwrap_err();
    assert!(e.to_string().contains("params[13]"), "{e}");
    assert!(RationalQuadraticSpline::<f64>::random(1, 0, 1.0, &mut rng(0)).is_err());

    let cfg = ConditionerConfig::default();
    let mask = CouplingMask::half(2, false).unwrap();
    let e = SplineCoupling::<f64>::new(mask.clone(), 0, 1.0, &cfg, &mut rng(0)).unwrap_err();
    assert!(e.to_string().starts_with("SplineCoupling::new"), "{e}");
    let e = SplineCoupling::new(mask.clone(), 4, f64::NAN, &cfg, &mut rng(0)).unwrap_err();
    assert!(e.to_string().contains("bound"), "{e}");
    let bad_cfg = ConditionerConfig { hidden: 0, ..cfg };
    let e = SplineCoupling::<f64>::new(mask.clone(), 4, 1.0, &bad_cfg, &mut rng(0)).unwrap_err();
    assert!(e.to_string().contains("hidden"), "{e}");
    let net =
        normflow::nn::Mlp::<f64>::new(&[1, 4, 10], Activation::Tanh, false, &mut rng(0)).unwrap();
    let e = SplineCoupling::from_parts(mask, 4, 1.0, net).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimensionMismatch {
                expected: 11,
                got: 10,
                ..
            }
        ),
        "{e}"
    );

    let e = SplineAutoregressive::<f64>::new(0, 4, 1.0, &cfg, &mut rng(0)).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { ref context, .. } if context == "SplineAutoregressive::new"),
        "{e}"
    );
    let e = SplineAutoregressive::<f64>::with_order(3, vec![0, 0, 1], 4, 1.0, &cfg, &mut rng(0))
        .unwrap_err();
    assert!(e.to_string().contains("order"), "{e}");
    let e = SplineAutoregressive::<f64>::new(2, 1000, 1.0, &cfg, &mut rng(0)).unwrap_err();
    assert!(e.to_string().contains("bins"), "{e}");
    let e = SplineAutoregressive::new(2, 4, -2.0, &cfg, &mut rng(0)).unwrap_err();
    assert!(e.to_string().contains("bound"), "{e}");
    let made = normflow::nn::Made::<f64>::new(2, 0, 2, &cfg, &mut rng(0)).unwrap();
    assert!(SplineAutoregressive::from_made(made, 4, 1.0).is_err());
}

#[test]
#[should_panic(expected = "input has dimension 2 (rows), expected dimension 3")]
fn wrong_input_dimension_panics() {
    let s = RationalQuadraticSpline::<f64>::identity(3, 4, 1.0).unwrap();
    let _ = s.forward(&DMatrix::zeros(2, 1));
}

#[test]
fn layers_report_their_dimension() {
    let cfg = ConditionerConfig::default();
    let s = RationalQuadraticSpline::<f64>::identity(3, 4, 1.0).unwrap();
    let c = SplineCoupling::<f64>::new(
        CouplingMask::half(5, false).unwrap(),
        4,
        1.0,
        &cfg,
        &mut rng(0),
    )
    .unwrap();
    let a = SplineAutoregressive::<f64>::new(2, 4, 1.0, &cfg, &mut rng(0)).unwrap();
    assert_eq!((s.dim(), c.dim(), a.dim()), (Some(3), Some(5), Some(2)));
    assert_eq!((s.bins(), s.bound()), (4, 1.0));
    assert_eq!((c.bins(), c.bound(), a.bins(), a.bound()), (4, 1.0, 4, 1.0));
    let _unused: DVector<f64> = s.forward_log_det_jacobian(&DMatrix::zeros(3, 1));
}
