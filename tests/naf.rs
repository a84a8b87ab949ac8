//! The neural autoregressive flow (Huang, Krueger, Lacoste & Courville 2018):
//! the deep sigmoidal transformer `u = σ⁻¹(Σₖ wₖ σ(aₖ x + bₖ))` in the
//! autoregressive structure (`NeuralAutoregressive`, DSL `naf`).
//!
//! - the transformer alone: both backward passes against Richardson
//!   differences at random raw parameters; round trips; finite values and
//!   the affine asymptotics far in the tails; what a zero conditioner gives;
//! - layers at random conditioner parameters (identity_init = false) through
//!   the kit: round trip, log-det against the numerical Jacobian, gradients
//!   (the autoregressive layer in its one-pass direction, a coupling of the
//!   same transformer in both), unconditional and conditional; `f32` against
//!   `f64`;
//! - the DSL, saved models, and a short fit.

use nalgebra::DMatrix;
use normflow::bijector::transformer::{DeepSigmoidal, Transformer};
use normflow::bijector::{Coupling, CouplingMask, Differentiable};
use normflow::data::two_moons;
use normflow::nn::{Activation, ConditionerConfig};
use normflow::prelude::*;
use normflow::spec::FlowLayer;
use normflow::testing::{
    Tolerances, check_bijector, check_bijector_given, check_bijector_with, check_gradients,
    check_gradients_given,
};
use normflow::train::{FitOptions, FlowModel, Validation, fit};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Samples per batch.
const N: usize = 6;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// A randomly initialised conditioner, smooth (tanh) so that central
/// differences in the conditioning inputs see no kink.
fn cfg() -> ConditionerConfig {
    ConditionerConfig {
        hidden: 16,
        depth: 2,
        activation: Activation::Tanh,
        identity_init: false,
        residual: false,
    }
}

/// `d × n` points `1.5 · N(0, 1)`, seeded.
fn points(d: usize, n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    StandardNormal::new(d).unwrap().sample(n, &mut rng) * 1.5
}

fn coupling(dim: usize, units: usize, flip: bool, seed: u64) -> Coupling<f64, DeepSigmoidal> {
    let mask = CouplingMask::half(dim, flip).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    Coupling::with_transformer(mask, 0, DeepSigmoidal { units }, &cfg(), &mut rng).unwrap()
}

/// `(u, log du/dx)` or `(x, log dx/du)` of one coordinate as one function.
fn value(dsf: &DeepSigmoidal, density: bool, v: f64, th: &[f64]) -> (f64, f64) {
    if density {
        dsf.density_one(v, th)
    } else {
        dsf.sample_one(v, th)
    }
}

/// Richardson-extrapolated central difference of `f` at `v`.
fn derivative(f: impl Fn(f64) -> f64, v: f64) -> f64 {
    let h = 2e-5 * (1.0 + v.abs());
    let d = |h: f64| (f(v + h) - f(v - h)) / (2.0 * h);
    (4.0 * d(h / 2.0) - d(h)) / 3.0
}

/// The backward pass of one direction against differences of
/// `L = g_out · out + g_ld · log-derivative`, in the input and every raw
/// parameter.
fn check_scalar_backward(
    dsf: &DeepSigmoidal,
    density: bool,
    v: f64,
    th: &[f64],
    g_out: f64,
    g_ld: f64,
) -> Result<(), TestCaseError> {
    let loss = |v: f64, th: &[f64]| {
        let (o, l) = value(dsf, density, v, th);
        g_out * o + g_ld * l
    };
    let mut g_theta = vec![0.0; th.len()];
    let g_in = if density {
        dsf.density_one_backward(v, th, g_out, g_ld, &mut g_theta)
    } else {
        dsf.sample_one_backward(v, th, g_out, g_ld, &mut g_theta)
    };
    let num = derivative(|e| loss(e, th), v);
    prop_assert!(
        (g_in - num).abs() <= 1e-6 * (1.0 + num.abs()),
        "density={density}: ∂L/∂in {g_in} vs {num} at {v}, θ = {th:?}"
    );
    for q in 0..th.len() {
        let num = derivative(
            |e| {
                let mut t = th.to_vec();
                t[q] = e;
                loss(v, &t)
            },
            th[q],
        );
        prop_assert!(
            (g_theta[q] - num).abs() <= 1e-6 * (1.0 + num.abs()),
            "density={density}: ∂L/∂θ[{q}] {} vs {num} at {v}, θ = {th:?}",
            g_theta[q]
        );
    }
    Ok(())
}

/// Raw parameters of `units` units, each in `[−2, 2]`.
fn raw(units: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-2.0f64..2.0, 3 * units)
}

proptest! {
    #![proptest_config(config(64))]

    /// Both directions of the transformer: round trip, the sample
    /// direction's log-derivative is minus the density direction's, and both
    /// backward passes match differences.
    #[test]
    fn transformer_backward_passes_match_differences(
        (units, th) in (1usize..=6).prop_flat_map(|k| (Just(k), raw(k))),
        x in -4.0f64..4.0,
        g_out in -1.0f64..1.0,
        g_ld in -1.0f64..1.0,
    ) {
        let dsf = DeepSigmoidal { units };
        let (u, ld) = dsf.density_one(x, &th);
        let (x_back, ld_back) = dsf.sample_one(u, &th);
        prop_assert!((x_back - x).abs() <= 1e-12 * (1.0 + x.abs()), "{x} → {u} → {x_back}");
        prop_assert!((ld + ld_back).abs() <= 1e-10, "{ld} vs {ld_back}");
        check_scalar_backward(&dsf, true, x, &th, g_out, g_ld)?;
        check_scalar_backward(&dsf, false, u, &th, g_out, g_ld)?;
    }
}

proptest! {
    #![proptest_config(config(10))]

    /// The layer at random conditioner parameters passes the kit; its
    /// density direction's gradients match differences and its sequential
    /// sampling direction is reported as skipped.
    #[test]
    fn random_layers_pass_the_kit(seed in 0u64..10_000, dim in 1usize..=4, units in 1usize..=5) {
        let mut rng = StdRng::seed_from_u64(seed);
        let layer = NeuralAutoregressive::<f64>::new(dim, units, &cfg(), &mut rng).unwrap();
        let x = points(dim, N, seed + 1);
        let report = check_bijector(&layer, &x).map_err(|f| TestCaseError::fail(f.to_string()))?;
        prop_assert!(report.max_abs_log_det > 1e-4, "{report:?}");
        let grads = check_gradients(&layer, &x).map_err(|f| TestCaseError::fail(f.to_string()))?;
        prop_assert_eq!(&grads.directions, &["inverse"]);
        prop_assert_eq!(grads.skipped.len(), 1);
    }

    /// The same transformer in a coupling, where both directions are one
    /// pass: both backward passes (the sample direction's by the implicit
    /// function theorem) match differences.
    #[test]
    fn the_transformer_in_a_coupling_has_both_gradients(seed in 0u64..10_000, dim in 2usize..=4,
                                                        units in 1usize..=5, flip: bool) {
        let layer = coupling(dim, units, flip, seed);
        let x = points(dim, N, seed + 2);
        check_bijector(&layer, &x).map_err(|f| TestCaseError::fail(f.to_string()))?;
        let grads = check_gradients(&layer, &x).map_err(|f| TestCaseError::fail(f.to_string()))?;
        prop_assert_eq!(&grads.directions, &["forward", "inverse"]);
    }

    /// Conditioned on a context: the kit's checks, with the gradients in the
    /// context too.
    #[test]
    fn conditional_layers_pass_the_kit(seed in 0u64..10_000, dim in 1usize..=3, units in 1usize..=4) {
        let mut rng = StdRng::seed_from_u64(seed);
        let layer = NeuralAutoregressive::<f64>::conditional(dim, 2, units, &cfg(), &mut rng).unwrap();
        let (x, c) = (points(dim, N, seed + 3), points(2, N, seed + 4));
        check_bijector_given(&layer, &x, &c).map_err(|f| TestCaseError::fail(f.to_string()))?;
        let grads = check_gradients_given(&layer, &x, &c)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
        prop_assert_eq!(&grads.directions, &["inverse"]);
        // Another context, another map.
        let other = c.map(|v| v + 1.0);
        prop_assert!((layer.inverse_given(&x, &c) - layer.inverse_given(&x, &other)).amax() > 1e-6);
    }
}

/// Far in the tails the map stays finite and is asymptotically affine with
/// slope `minₖ aₖ` at both ends (the docs' claim); round trips hold there
/// too, in `f64` out to `|x| = 1e8` and in `f32` out to `1e4`.
#[test]
fn tails_are_finite_and_affine() {
    let dsf = DeepSigmoidal { units: 3 };
    // ã = (0.5, −1, 2), so a_min = positive_scale(−1).
    let th: [f64; 9] = [0.5, -1.0, 2.0, 0.3, -2.0, 1.0, 0.2, -0.5, 1.5];
    let a_min = normflow::nn::positive_scale(-1.0f64).0;
    for x in [1e3, -1e3, 1e6, -1e6, 1e8, -1e8] {
        let (u, ld) = dsf.density_one(x, &th);
        assert!(u.is_finite() && ld.is_finite(), "{x}: {u}, {ld}");
        assert!(
            (ld - a_min.ln()).abs() < 1e-9,
            "{x}: {ld} vs {}",
            a_min.ln()
        );
        let (u2, _) = dsf.density_one(2.0 * x, &th);
        assert!(((u2 - u) / x - a_min).abs() < 1e-9 * (1.0 + a_min), "{x}");
        let (back, ld_back) = dsf.sample_one(u, &th);
        assert!((back - x).abs() <= 1e-12 * x.abs(), "{x} → {back}");
        assert!((ld + ld_back).abs() < 1e-9);
    }
    let th32: Vec<f32> = th.iter().map(|v| *v as f32).collect();
    for x in [1e2f32, -1e2, 1e4, -1e4] {
        let (u, ld) = dsf.density_one(x, &th32);
        assert!(u.is_finite() && ld.is_finite(), "{x}: {u}, {ld}");
        let (back, ld_back) = dsf.sample_one(u, &th32);
        assert!((back - x).abs() <= 1e-6 * x.abs(), "{x} → {back}");
        assert!((ld + ld_back).abs() < 1e-3);
    }
    // Extreme raw parameters: slopes at the floor and at 1e4, weights that
    // underflow, offsets of ±1e3.
    let th: [f64; 9] = [-50.0, 1e4, 0.0, 1e3, -1e3, 0.0, -800.0, 0.0, 800.0];
    for x in [-1e5, -10.0, 0.0, 3.0, 1e5] {
        let (u, ld) = dsf.density_one(x, &th);
        assert!(u.is_finite() && ld.is_finite(), "{x}: {u}, {ld}");
        let (back, _) = dsf.sample_one(u, &th);
        let (u_back, _) = dsf.density_one(back, &th);
        assert!(
            (u_back - u).abs() <= 1e-9 * (1.0 + u.abs()),
            "{x}: {u} vs {u_back}"
        );
    }
}

/// With all raw parameters 0 (a zero-initialised conditioner) the map is odd,
/// increasing, not the identity for `K ≥ 2` but within the documented
/// distance of it (0.13 for K = 2, 0.07 for K = 4, 0.054 for K = 8, measured
/// on [−30, 30]); and the units get different gradients, so training can
/// separate them.
#[test]
fn a_zero_conditioner_gives_a_near_identity_map_with_distinct_units() {
    for (units, bound) in [(1, 1e-12), (2, 0.13), (4, 0.07), (8, 0.054)] {
        let dsf = DeepSigmoidal { units };
        let th = vec![0.0; 3 * units];
        let mut worst = 0.0f64;
        let mut last = f64::NEG_INFINITY;
        for i in -600..=600 {
            let x = i as f64 * 0.05;
            let (u, _) = dsf.density_one(x, &th);
            let (v, _) = dsf.density_one(-x, &th);
            assert!((u + v).abs() < 1e-12, "K = {units}: not odd at {x}");
            assert!(u > last, "K = {units}: not increasing at {x}");
            last = u;
            worst = worst.max((u - x).abs());
        }
        assert!(worst <= bound, "K = {units}: |u − x| up to {worst}");
        if units > 1 {
            assert!(worst > 1e-3, "K = {units}: the identity");
            let mut g = vec![0.0; 3 * units];
            dsf.density_one_backward(0.8, &th, 1.0, 1.0, &mut g);
            let b = &g[units..2 * units];
            assert!(b.windows(2).all(|p| (p[0] - p[1]).abs() > 1e-4), "{g:?}");
        }
    }
}

/// The `f32` layers agree with the `f64` ones (same parameters): values, and
/// the backward passes to single precision (relative `1e-3` of the largest
/// entry), in both directions of the coupling (the sample direction includes
/// the `f32` root finding) and the density direction of the autoregressive
/// layer; the `f32` layer passes the kit at the `f32` tolerances.
#[test]
fn f32_agrees_with_f64() {
    fn compare<A: Differentiable<f64>, B: Differentiable<f32>>(
        a: &A,
        b: &B,
        x: &DMatrix<f64>,
        directions: &[bool],
    ) {
        let (d, n) = x.shape();
        let g_out = DMatrix::from_fn(d, n, |i, j| ((i * 5 + j * 3) as f64 * 0.9).sin());
        let g_ld = nalgebra::DVector::from_fn(n, |j, _| ((j * 7) as f64 * 0.4).cos());
        let x32 = x.map(|v| v as f32);
        let (u64, l64) = a.inverse_and_log_det(x);
        let (u32, l32) = b.inverse_and_log_det(&x32);
        assert!((u32.map(f64::from) - &u64).amax() < 1e-4 * (1.0 + u64.amax()));
        assert!((l32.map(f64::from) - &l64).amax() < 1e-3 * (1.0 + l64.amax()));
        for &forward in directions {
            let input = if forward { u64.clone() } else { x.clone() };
            let input32 = input.map(|v| v as f32);
            let (g32_out, g32_ld) = (g_out.map(|v| v as f32), g_ld.map(|v| v as f32));
            let mut gp64 = vec![0.0; a.num_params()];
            let mut gp32 = vec![0.0f32; b.num_params()];
            let (gi64, gi32) = if forward {
                (
                    a.forward_and_log_det_backward(&input, &g_out, &g_ld, &mut gp64),
                    b.forward_and_log_det_backward(&input32, &g32_out, &g32_ld, &mut gp32),
                )
            } else {
                (
                    a.inverse_and_log_det_backward(&input, &g_out, &g_ld, &mut gp64),
                    b.inverse_and_log_det_backward(&input32, &g32_out, &g32_ld, &mut gp32),
                )
            };
            let (gi64, gi32) = (gi64.unwrap(), gi32.unwrap());
            let scale = 1.0
                + gp64
                    .iter()
                    .chain(gi64.iter())
                    .fold(0.0f64, |m, v| m.max(v.abs()));
            for (g64, g32) in gp64
                .iter()
                .chain(gi64.iter())
                .zip(gp32.iter().chain(gi32.iter()))
            {
                assert!(
                    (g64 - f64::from(*g32)).abs() <= 1e-3 * scale,
                    "forward={forward}: {g64} vs {g32}"
                );
            }
        }
    }
    for seed in 0..6u64 {
        let (dim, units) = (2 + seed as usize % 3, 1 + seed as usize % 4);
        let x = points(dim, N, seed + 10);
        let mut rng = StdRng::seed_from_u64(seed);
        let ar = NeuralAutoregressive::<f64>::new(dim, units, &cfg(), &mut rng).unwrap();
        let mut ar32 = NeuralAutoregressive::<f32>::new(dim, units, &cfg(), &mut rng).unwrap();
        for (p32, p) in ar32.params_mut().iter_mut().zip(ar.params()) {
            *p32 = *p as f32;
        }
        compare(&ar, &ar32, &x, &[false]);
        check_bijector_with(&ar32, &x.map(|v| v as f32), &Tolerances::F32).unwrap();

        let c = coupling(dim, units, seed % 2 == 1, seed);
        let mask = CouplingMask::half(dim, seed % 2 == 1).unwrap();
        let mut c32 = Coupling::<f32, DeepSigmoidal>::with_transformer(
            mask,
            0,
            DeepSigmoidal { units },
            &cfg(),
            &mut rng,
        )
        .unwrap();
        for (p32, p) in c32.params_mut().iter_mut().zip(c.params()) {
            *p32 = *p as f32;
        }
        compare(&c, &c32, &x, &[false, true]);
    }
}

#[test]
fn constructors_check_their_arguments() {
    let mut rng = StdRng::seed_from_u64(0);
    let e = NeuralAutoregressive::<f64>::new(2, 0, &cfg(), &mut rng).unwrap_err();
    assert!(e.to_string().contains("units"), "{e}");
    let e = NeuralAutoregressive::<f64>::conditional(2, 0, 4, &cfg(), &mut rng).unwrap_err();
    assert!(e.to_string().contains("context_dim"), "{e}");
    let layer = NeuralAutoregressive::<f64>::new(3, 4, &cfg(), &mut rng).unwrap();
    assert_eq!((layer.units(), layer.made().params_per_dim()), (4, 12));
    // Serialised with its units; a file with 0 units is refused.
    let json = serde_json::to_string(&layer).unwrap();
    let back: NeuralAutoregressive<f64> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, layer);
    let bad = json.replace("\"units\":4", "\"units\":0");
    assert_ne!(bad, json);
    assert!(serde_json::from_str::<NeuralAutoregressive<f64>>(&bad).is_err());
    // A MADE of the wrong width for the units.
    let made = normflow::nn::Made::<f64>::new(2, 0, 7, &cfg(), &mut rng).unwrap();
    let e = NeuralAutoregressive::from_made(made, 2).unwrap_err();
    assert!(e.to_string().contains("6 outputs per dimension"), "{e}");
    let made = normflow::nn::Made::<f64>::new(2, 1, 6, &cfg(), &mut rng).unwrap();
    let layer = NeuralAutoregressive::from_made(made, 2).unwrap();
    assert_eq!(layer.context_dim(), 1);
}

#[test]
fn the_dsl_builds_naf() {
    let spec = FlowSpec::parse("naf(2, hidden = 16, units = 4)").unwrap();
    assert_eq!(spec, flow!(naf(2, hidden = 16, units = 4)));
    assert_eq!(spec.to_string(), "naf(2, hidden = 16, units = 4)");
    let mut rng = StdRng::seed_from_u64(1);
    let flow = spec.build::<f64>(3, &mut rng).unwrap();
    // naf, reverse, naf (a reversal between copies, as for maf).
    assert_eq!(flow.layers().len(), 3);
    let FlowLayer::Naf(first) = &flow.layers()[0] else {
        panic!("{:?}", flow.layers()[0]);
    };
    assert_eq!(
        (first.units(), first.made().layer_weights(0).nrows()),
        (4, 16)
    );
    assert!(matches!(flow.layers()[1], FlowLayer::Permute(_)));
    let fp = spec.footprint(3, 0).unwrap();
    assert_eq!(fp.params(), Some(flow.num_params() as u64));
    // The default is 8 units.
    let flow = flow!(naf).build::<f64>(2, &mut rng).unwrap();
    let FlowLayer::Naf(layer) = &flow.layers()[0] else {
        panic!()
    };
    assert_eq!(layer.units(), 8);

    let e = FlowSpec::parse("naf(2, units = 0)").unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("0 is out of range"), "{shown}");
    assert!(shown.contains("an integer of at least 1"), "{shown}");
    assert!(FlowSpec::parse("maf(units = 4)").is_err());

    // Conditioned: the layers read the context.
    assert!(FlowSpec::layer_takes_context("naf"));
    let flow = flow!(naf(2, hidden = 8, identity_init = false))
        .build_conditional::<f64>(2, 3, &mut rng)
        .unwrap();
    let kinds: Vec<usize> = flow.layers().iter().map(|l| l.context_dim()).collect();
    assert_eq!(kinds, [3, 0, 3]);
    assert_eq!(
        spec.footprint(2, 3).unwrap().params(),
        Some(
            flow!(naf(2, hidden = 16, units = 4))
                .build_conditional::<f64>(2, 3, &mut rng)
                .unwrap()
                .num_params() as u64
        )
    );
}

/// A fit of `naf(2)` to two moons improves the log-likelihood, and the
/// fitted model (unconditional and conditional) saves and loads to the same
/// log-densities, bit for bit.
#[test]
fn fits_two_moons_and_round_trips_through_json() {
    let mut rng = StdRng::seed_from_u64(3);
    let data = two_moons(1000, 0.1, &mut rng);
    let mut model = FlowModel::<f64>::new(&flow!(naf(2, hidden = 32)), 2, 7).unwrap();
    let before = model.log_prob(&data).mean();
    let options = FitOptions {
        epochs: 50,
        max_steps: Some(300),
        batch_size: 128,
        learning_rate: 3e-3,
        standardize: true,
        validation: Validation::None,
        patience: None,
        seed: 1,
        ..Default::default()
    };
    fit(&mut model, &data, &options).unwrap();
    let after = model.log_prob(&data).mean();
    assert!(
        after.is_finite() && after > before + 0.5,
        "{before} → {after}"
    );
    let loaded = FlowModel::<f64>::from_json(&model.to_json()).unwrap();
    assert_eq!(loaded.log_prob(&data), model.log_prob(&data));
    // Samples are scored as log_prob scores them (root finding to 1e-12).
    let (s, lp) = model.sample_and_log_prob(64, &mut rng);
    assert!((model.log_prob(&s) - lp).amax() < 1e-8);

    let spec = flow!(naf(2, hidden = 8, units = 3, identity_init = false) >> actnorm);
    let conditional = FlowModel::<f64>::conditional(&spec, 2, 1, 4).unwrap();
    let c = DMatrix::from_fn(1, 50, |_, j| j as f64 / 25.0 - 1.0);
    let x = data.columns(0, 50).into_owned();
    let loaded = FlowModel::<f64>::from_json(&conditional.to_json()).unwrap();
    assert_eq!(
        loaded.log_prob_given(&x, &c),
        conditional.log_prob_given(&x, &c)
    );
}
