//! The block neural autoregressive flow (De Cao, Titov & Aziz 2019):
//! `BlockNeuralAutoregressive`, DSL `bnaf`.
//!
//! - layers at random parameters through the kit, `f64` and `f32`, plain and
//!   conditional: round trips, the log-det against the numerical Jacobian
//!   (central differences in `f64`), the density direction's gradients
//!   against finite differences (the sampling direction is reported as
//!   skipped), the context's gradient;
//! - the log-det in log space stays finite where a linear-space product
//!   would underflow; non-finite input gives no panic and a `-inf` density;
//! - the DSL (parse, canonical text, parameter count, errors for keys it
//!   does not take), saved models, and a short fit.

use nalgebra::{DMatrix, DVector};
use normflow::bijector::Differentiable;
use normflow::data::two_moons;
use normflow::prelude::*;
use normflow::spec::FlowLayer;
use normflow::testing::{
    Tolerances, check_bijector, check_bijector_given, check_bijector_with, check_gradients,
    check_gradients_given, numerical_jacobian,
};
use normflow::train::{FitOptions, FlowModel, Validation, fit};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Samples per batch.
const N: usize = 5;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// `d × n` points `1.5 · N(0, 1)`, seeded.
fn points(d: usize, n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    StandardNormal::new(d).unwrap().sample(n, &mut rng) * 1.5
}

/// A layer at a random point, with its gate logits spread over `[−2, 2]`
/// so that the gates differ from the default 0.5.
fn layer(
    dim: usize,
    hidden: usize,
    blocks: usize,
    context: usize,
    seed: u64,
) -> BlockNeuralAutoregressive<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = if context == 0 {
        BlockNeuralAutoregressive::<f64>::new(dim, hidden, blocks, false, &mut rng).unwrap()
    } else {
        BlockNeuralAutoregressive::<f64>::conditional(dim, context, hidden, blocks, false, &mut rng)
            .unwrap()
    };
    let n = b.num_params();
    let p = b.params_mut();
    for i in 0..dim {
        p[n - dim + i] = ((seed as f64 + i as f64) * 1.7).sin() * 2.0;
    }
    if context > 0 {
        // Non-zero context weights (they start at zero).
        let start = n - dim - dim * b.units() * context;
        let p = b.params_mut();
        for (k, v) in p[start..n - dim].iter_mut().enumerate() {
            *v = ((k as f64) * 0.9 + seed as f64).cos() * 0.7;
        }
    }
    b
}

proptest! {
    #![proptest_config(config(24))]

    /// The kit in `f64` and `f32` (same parameters), both directions: round
    /// trips, log-dets against the numerical Jacobian, the log-det identity
    /// between directions; the density direction's gradients against
    /// differences and the sampling direction skipped.
    #[test]
    fn random_layers_pass_the_kit(seed in 0u64..10_000, dim in 1usize..=4,
                                  hidden in 1usize..=9, blocks in 1usize..=3) {
        let b = layer(dim, hidden, blocks, 0, seed);
        let x = points(dim, N, seed + 1);
        let report = check_bijector(&b, &x).map_err(|f| TestCaseError::fail(f.to_string()))?;
        prop_assert!(report.max_abs_log_det > 1e-4, "{report:?}");
        let grads = check_gradients(&b, &x).map_err(|f| TestCaseError::fail(f.to_string()))?;
        prop_assert_eq!(&grads.directions, &["inverse"]);
        prop_assert_eq!(grads.skipped.len(), 1);
        prop_assert!(grads.skipped[0].contains("root findings"), "{:?}", grads.skipped);

        let b32 = BlockNeuralAutoregressive::<f32>::from_params(
            dim, 0, b.units(), b.blocks(), b.params().iter().map(|v| *v as f32).collect()).unwrap();
        let x32 = x.map(|v| v as f32);
        check_bijector_with(&b32, &x32, &Tolerances::F32)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
        let (u, l) = b.inverse_and_log_det(&x);
        let (u32, l32) = b32.inverse_and_log_det(&x32);
        prop_assert!((u32.map(f64::from) - &u).amax() < 1e-4 * (1.0 + u.amax()));
        prop_assert!((l32.map(f64::from) - &l).amax() < 1e-3 * (1.0 + l.amax()));
    }

    /// Conditioned on a context: the kit, with the gradient in the context.
    #[test]
    fn conditional_layers_pass_the_kit(seed in 0u64..10_000, dim in 1usize..=3,
                                       hidden in 2usize..=8, context in 1usize..=3) {
        let b = layer(dim, hidden, 2, context, seed);
        let (x, c) = (points(dim, N, seed + 3), points(context, N, seed + 4));
        check_bijector_given(&b, &x, &c).map_err(|f| TestCaseError::fail(f.to_string()))?;
        let grads = check_gradients_given(&b, &x, &c)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
        prop_assert_eq!(&grads.directions, &["inverse"]);
        let other = c.map(|v| v + 1.0);
        prop_assert!((b.inverse_given(&x, &c) - b.inverse_given(&x, &other)).amax() > 1e-6);
    }
}

/// The inverse (density) direction's Jacobian by central differences is
/// lower triangular with a positive diagonal, and `log|det|` of it is the
/// layer's log-det (the kit checks the same through the forward direction).
#[test]
fn log_det_matches_the_numerical_jacobian() {
    for seed in 0..8u64 {
        let dim = 1 + seed as usize % 4;
        let b = layer(dim, 3 * dim, 1 + seed as usize % 3, 0, seed);
        let x = points(dim, 4, seed + 20);
        let ldj = b.inverse_log_det_jacobian(&x);
        for s in 0..x.ncols() {
            let col = x.column(s).clone_owned();
            let jac = numerical_jacobian(
                |v: &DVector<f64>| {
                    let m = DMatrix::from_column_slice(dim, 1, v.as_slice());
                    b.inverse(&m).column(0).clone_owned()
                },
                &col,
            );
            let mut sum = 0.0;
            for i in 0..dim {
                assert!(jac[(i, i)] > 0.0, "seed {seed}: {jac}");
                sum += jac[(i, i)].ln();
                for j in i + 1..dim {
                    assert!(
                        jac[(i, j)].abs() < 1e-9,
                        "seed {seed}: not triangular: {jac}"
                    );
                }
            }
            assert!(
                (sum - ldj[s]).abs() < 1e-7 * (1.0 + sum.abs()),
                "seed {seed}: {sum} vs {}",
                ldj[s]
            );
        }
    }
}

/// Round trips to the documented tolerance: `1e-10 (1 + |x|)` in `f64`
/// (here out to |x| = 30, where the tanh units saturate) and `1e-3 (1 + |x|)`
/// in `f32`; the log-dets of the two directions cancel.
#[test]
fn round_trips_to_the_stated_tolerance() {
    for seed in 0..10u64 {
        let dim = 1 + seed as usize % 3;
        let b = layer(dim, 4 * dim, 2, 0, seed);
        let x = DMatrix::from_fn(dim, 12, |i, j| {
            ((i * 5 + j * 7 + seed as usize) as f64 * 0.61).sin() * [1.0, 5.0, 30.0][j % 3]
        });
        let (u, ildj) = b.inverse_and_log_det(&x);
        let (back, fldj) = b.forward_and_log_det(&u);
        for (a, e) in back.iter().zip(x.iter()) {
            assert!(
                (a - e).abs() <= 1e-10 * (1.0 + e.abs()),
                "seed {seed}: {e} → {a}"
            );
        }
        assert!((ildj + fldj).amax() < 1e-9, "seed {seed}");

        let b32 = BlockNeuralAutoregressive::<f32>::from_params(
            dim,
            0,
            b.units(),
            b.blocks(),
            b.params().iter().map(|v| *v as f32).collect(),
        )
        .unwrap();
        let x32 = x.map(|v| v as f32);
        let back32 = b32.forward(&b32.inverse(&x32));
        for (a, e) in back32.iter().zip(x32.iter()) {
            assert!(
                (a - e).abs() <= 1e-3 * (1.0 + e.abs()),
                "seed {seed}: {e} → {a}"
            );
        }
    }
}

/// The log-det is formed in log space: where the `tanh` units saturate so
/// far that `sech²` underflows (`e^{-2000}`), and where a shifted
/// log-matrix product underflows (products `e^{-800}`), it is finite and
/// equals the closed form.
#[test]
fn log_space_survives_saturation() {
    let lsech2 = |x: f64| 2.0 * (std::f64::consts::LN_2 - x.abs() - (-2.0 * x.abs()).exp().ln_1p());
    let lse = |a: f64, b: f64| a.max(b) + (-(a - b).abs()).exp().ln_1p();
    // D = 1, one unit, one block: f = e^{s₂} tanh(e^{s₁} x + b₁) + b₂, and a
    // gate logit of 3000 (g = 1, log(1 − g) = −3000): ldj = s₁ + s₂ + log sech²(…).
    // Layout: [V₁, s₁, b₁, V₂, s₂, b₂, α].
    let p = vec![0.3, 0.5, 0.0, -1.0, -0.25, 0.1, 3000.0];
    let b = BlockNeuralAutoregressive::<f64>::from_params(1, 0, 1, 1, p).unwrap();
    for x in [1000.0, -1000.0, 3.0] {
        let l = b.inverse_log_det_jacobian(&DMatrix::from_element(1, 1, x))[0];
        let want = lse(-3000.0, 0.5 - 0.25 + lsech2(0.5f64.exp() * x));
        assert!((l - want).abs() < 1e-9 * want.abs(), "{x}: {l} vs {want}");
    }
    // D = 1, two units, two blocks. Layer 1: W = (1, 1), b = (0, 400), so at
    // x = 0 the input log-slopes are (0, log sech² 400 ≈ −798.6). Layer 2:
    // both rows log W = (−800, 0), so each product is about e^{-800} and the
    // shifted sum underflows. Output: W = (1, 1). Gate logit 3000.
    // Layout: layer 1 [V (2), s (2), b (2)], layer 2 [V (2 + 2), s (2),
    // b (2)], layer 3 [V (2), s (1), b (1)], α.
    let half_ln2 = 0.5 * std::f64::consts::LN_2;
    let p = vec![
        0.0, 0.0, 0.0, 0.0, 0.0, 400.0, // layer 1
        -800.0, 0.0, -800.0, 0.0, 0.0, 0.0, 0.0, 0.0, // layer 2
        0.0, 0.0, half_ln2, 0.0,    // layer 3
        3000.0, // gate
    ];
    let b = BlockNeuralAutoregressive::<f64>::from_params(1, 0, 2, 2, p).unwrap();
    let l = b.inverse_log_det_jacobian(&DMatrix::from_element(1, 1, 0.0))[0];
    // Layer 2's pre-activations are e^{-800}·tanh 0 + 1·tanh 400 = 1.
    let m = lse(-800.0, lsech2(400.0));
    let want = lse(-3000.0, std::f64::consts::LN_2 + lsech2(1.0) + m);
    assert!(
        l.is_finite() && (l - want).abs() < 1e-9 * want.abs(),
        "{l} vs {want}"
    );
}

/// Non-finite input: the density is `-inf` (never NaN, no panic), sampling
/// gives non-finite coordinates instead of panicking, and finite columns of
/// the same batch are unaffected.
#[test]
fn non_finite_input_is_clean() {
    let b = layer(3, 6, 2, 0, 4);
    let dist = TransformedDistribution::new(StandardNormal::new(3).unwrap(), b.clone()).unwrap();
    let mut x = points(3, 4, 9);
    let clean = dist.log_prob(&x);
    x[(1, 0)] = f64::NAN;
    x[(0, 1)] = f64::INFINITY;
    x[(2, 2)] = f64::NEG_INFINITY;
    let lp = dist.log_prob(&x);
    for s in 0..3 {
        assert_eq!(lp[s], f64::NEG_INFINITY, "{lp}");
    }
    assert_eq!(lp[3], clean[3]);
    let y = b.forward(&x);
    assert!(y.column(0).iter().any(|v| !v.is_finite()));
    assert!(y.column(3).iter().all(|v| v.is_finite()));
}

/// `identity_init` starts the gates at 0.05: the map stays within
/// `0.05 (|x| + B)` of the identity (`B ≤ 1 + √fan_in` at the random start)
/// and its log-det near 0.
#[test]
fn identity_init_starts_close_to_the_identity() {
    let mut rng = StdRng::seed_from_u64(2);
    let b = BlockNeuralAutoregressive::<f64>::new(3, 24, 2, true, &mut rng).unwrap();
    assert!(b.gates().iter().all(|g| (g - 0.05).abs() < 1e-12));
    let x = points(3, 50, 1) * 3.0;
    let (u, l) = b.inverse_and_log_det(&x);
    for s in 0..x.ncols() {
        for i in 0..3 {
            let bound = 1.0 + (((i + 1) * b.units()) as f64).sqrt();
            assert!((u[(i, s)] - x[(i, s)]).abs() <= 0.05 * (x[(i, s)].abs() + bound));
        }
        assert!(l[s].abs() < 3.0 * 0.06, "{}", l[s]);
    }
    let random = BlockNeuralAutoregressive::<f64>::new(3, 24, 2, false, &mut rng).unwrap();
    assert!(random.gates().iter().all(|g| *g == 0.5));
}

#[test]
fn constructors_check_their_arguments() {
    let mut rng = StdRng::seed_from_u64(0);
    for (d, h, k) in [(0, 4, 2), (2, 0, 2), (2, 4, 0)] {
        assert!(BlockNeuralAutoregressive::<f64>::new(d, h, k, false, &mut rng).is_err());
    }
    let e = BlockNeuralAutoregressive::<f64>::conditional(2, 0, 4, 2, false, &mut rng).unwrap_err();
    assert!(e.to_string().contains("context_dim"), "{e}");
    // Hidden width rounded up to a multiple of D.
    let b = BlockNeuralAutoregressive::<f64>::new(3, 7, 2, false, &mut rng).unwrap();
    assert_eq!((b.units(), b.hidden_width(), b.blocks()), (3, 9, 2));
    assert_eq!(
        Some(b.num_params()),
        BlockNeuralAutoregressive::<f64>::param_count(3, 3, 2, 0)
    );
    let e = BlockNeuralAutoregressive::<f64>::from_params(3, 0, 3, 2, vec![0.0; 5]).unwrap_err();
    assert!(e.to_string().contains("length 5"), "{e}");
    let mut p = b.params().to_vec();
    p[3] = f64::NAN;
    assert!(BlockNeuralAutoregressive::<f64>::from_params(3, 0, 3, 2, p).is_err());
    // Serialised with its shape; a file whose shape does not match is refused.
    let json = serde_json::to_string(&b).unwrap();
    let back: BlockNeuralAutoregressive<f64> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, b);
    let bad = json.replace("\"units\":3", "\"units\":4");
    assert_ne!(bad, json);
    assert!(serde_json::from_str::<BlockNeuralAutoregressive<f64>>(&bad).is_err());
}

#[test]
fn the_dsl_builds_bnaf() {
    let spec = FlowSpec::parse("bnaf(2, blocks = 3, hidden = 12)").unwrap();
    assert_eq!(spec, flow!(bnaf(2, hidden = 12, blocks = 3)));
    assert_eq!(spec.to_string(), "bnaf(2, hidden = 12, blocks = 3)");
    assert_eq!(FlowSpec::parse(&spec.to_string()).unwrap(), spec);
    let mut rng = StdRng::seed_from_u64(1);
    let flow = spec.build::<f64>(3, &mut rng).unwrap();
    // bnaf, reverse, bnaf.
    assert_eq!(flow.layers().len(), 3);
    let FlowLayer::Bnaf(first) = &flow.layers()[0] else {
        panic!("{:?}", flow.layers()[0]);
    };
    assert_eq!((first.units(), first.blocks()), (4, 3));
    assert!(
        first.gates().iter().all(|g| *g == 0.5),
        "random start by default"
    );
    assert!(matches!(flow.layers()[1], FlowLayer::Permute(_)));
    assert_eq!(
        spec.footprint(3, 0).unwrap().params(),
        Some(flow.num_params() as u64)
    );
    // Defaults: hidden 64, 2 blocks; identity_init = true gives gates 0.05.
    let flow = flow!(bnaf(identity_init = true))
        .build::<f64>(2, &mut rng)
        .unwrap();
    let FlowLayer::Bnaf(b) = &flow.layers()[0] else {
        panic!()
    };
    assert_eq!((b.units(), b.blocks()), (32, 2));
    // The parameter count docs/training.md gives for `bnaf` at D = 2.
    assert_eq!(b.num_params(), 3526);
    assert!(b.gates().iter().all(|g| (g - 0.05).abs() < 1e-12));

    // Keys bnaf does not take, and out-of-range values.
    for (text, needle) in [
        ("bnaf(depth = 3)", "takes no key `depth`"),
        ("bnaf(activation = relu)", "takes no key `activation`"),
        ("bnaf(residual = true)", "takes no key `residual`"),
        ("bnaf(units = 4)", "takes no key `units`"),
        ("bnaf(blocks = 0)", "0 is out of range"),
        ("bnaf(hidden = 0)", "0 is out of range"),
        ("maf(blocks = 2)", "takes no key `blocks`"),
    ] {
        let e = FlowSpec::parse(text).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains(needle), "{text}: {shown}");
    }
    let e = FlowSpec::parse("bnaf(depth = 3)").unwrap_err().to_string();
    assert!(e.contains("`blocks`"), "the accepted keys are listed: {e}");

    // Conditioned: the bnaf layers read the context.
    assert!(FlowSpec::layer_takes_context("bnaf"));
    let flow = flow!(bnaf(2, hidden = 4))
        .build_conditional::<f64>(2, 3, &mut rng)
        .unwrap();
    let kinds: Vec<usize> = flow.layers().iter().map(|l| l.context_dim()).collect();
    assert_eq!(kinds, [3, 0, 3]);
    assert_eq!(
        flow!(bnaf(2, hidden = 4)).footprint(2, 3).unwrap().params(),
        Some(flow.num_params() as u64)
    );
}

/// A short fit of `bnaf` to two moons improves the log-likelihood, its
/// samples are scored as `log_prob` scores them, and fitted models
/// (unconditional and conditional) save and load to the same log-densities,
/// bit for bit.
#[test]
fn fits_two_moons_and_round_trips_through_json() {
    let mut rng = StdRng::seed_from_u64(3);
    let data = two_moons(1000, 0.1, &mut rng);
    let mut model = FlowModel::<f64>::new(&flow!(bnaf(hidden = 32)), 2, 7).unwrap();
    let before = model.log_prob(&data).mean();
    let options = FitOptions {
        epochs: 50,
        max_steps: Some(200),
        batch_size: 128,
        learning_rate: 5e-3,
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
    let (s, lp) = model.sample_and_log_prob(64, &mut rng);
    assert!((model.log_prob(&s) - lp).amax() < 1e-8);

    let spec = flow!(bnaf(2, hidden = 8) >> actnorm);
    let mut conditional = FlowModel::<f64>::conditional(&spec, 2, 1, 4).unwrap();
    // Move the context weights off zero.
    let mut p = conditional.params_to_vec();
    for (k, v) in p.iter_mut().enumerate() {
        *v += 0.01 * ((k as f64) * 0.37).sin();
    }
    conditional.set_params(&p).unwrap();
    let c = DMatrix::from_fn(1, 50, |_, j| j as f64 / 25.0 - 1.0);
    let x = data.columns(0, 50).into_owned();
    let lp = conditional.log_prob_given(&x, &c);
    assert!(lp.iter().all(|v| v.is_finite()));
    let loaded = FlowModel::<f64>::from_json(&conditional.to_json()).unwrap();
    assert_eq!(loaded.log_prob_given(&x, &c), lp);
}

/// The gradient of a whole `bnaf` flow (the fused pass through every layer)
/// matches the separate backward passes' sum and finite differences.
#[test]
fn a_flow_of_bnaf_layers_has_checked_gradients() {
    let mut rng = StdRng::seed_from_u64(8);
    let flow = flow!(bnaf(2, hidden = 6, blocks = 2))
        .build::<f64>(3, &mut rng)
        .unwrap();
    let x = points(3, N, 11);
    let grads = check_gradients(&flow, &x).unwrap();
    assert_eq!(grads.directions, ["inverse"]);
    assert!(
        grads.params > 0 && grads.max_param_error < 1e-6,
        "{grads:?}"
    );
    // The backward pass of the sampling direction says why it is missing.
    let mut g = vec![0.0; flow.num_params()];
    let e = flow
        .forward_and_log_det_backward(&x, &x, &DVector::zeros(N), &mut g)
        .unwrap_err();
    assert!(e.to_string().contains("Invert"), "{e}");
}
