//! One hierarchy with an optional context: model files written by the
//! release before the redesign load with bit-identical log-densities, a
//! context-free layer ignores any context, a conditioned one refuses to be
//! called without one, chains agree on one context dimension, and one model
//! type and one `fit` serve both cases.

use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::train::{FitOptions, FlowModel, fit};
use rand::SeedableRng;
use serde_json::Value;

/// A matrix stored column-major under `key` with `rows` rows.
fn matrix(v: &Value, key: &str, rows: &str) -> DMatrix<f64> {
    let data: Vec<f64> = v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let r = v[rows].as_u64().unwrap() as usize;
    DMatrix::from_column_slice(r, data.len() / r, &data)
}

/// The log-densities the previous release computed with the same dense
/// product kernel as this build (the `fast-gemm` kernel sums in another
/// order, so the last bits differ between the two).
fn log_probs(v: &Value) -> Vec<f64> {
    let key = if cfg!(feature = "portable-gemm") {
        "log_prob_fast_gemm"
    } else {
        "log_prob"
    };
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `tests/data/model_v2.json` was written by the release before the
/// redesign (format `normflow-model`, version 2) from a flow with every
/// trainable layer family and random parameters; its log-densities at fixed
/// points were written beside it, under both product kernels. Loading it now
/// gives the same numbers, to the bit.
#[test]
fn format_2_model_files_load_with_identical_log_densities() {
    let model = FlowModel::<f64>::from_json(include_str!("data/model_v2.json")).unwrap();
    let v: Value = serde_json::from_str(include_str!("data/model_v2_log_prob.json")).unwrap();
    let x = matrix(&v, "x", "rows");
    let want = log_probs(&v);
    assert!(want.iter().all(|l| l.is_finite()));
    assert_eq!(model.log_prob(&x).as_slice(), &want[..]);
    // Saved again, it is the same file.
    assert_eq!(
        model.to_json(),
        FlowModel::<f64>::from_json(&model.to_json())
            .unwrap()
            .to_json()
    );
}

/// The same for a conditional model (format `normflow-conditional-model`,
/// version 1) with a Gaussian base of the context and both
/// standardisations, now loaded as a `FlowModel`.
#[test]
fn conditional_model_files_load_with_identical_log_densities() {
    let text = include_str!("data/conditional_model_v1.json");
    let model = FlowModel::<f64>::from_json(text).unwrap();
    assert_eq!((model.dim(), model.context_dim()), (2, 2));
    let v: Value =
        serde_json::from_str(include_str!("data/conditional_model_v1_log_prob.json")).unwrap();
    let (x, c) = (matrix(&v, "x", "rows"), matrix(&v, "c", "context_rows"));
    assert_eq!(model.log_prob_given(&x, &c).as_slice(), &log_probs(&v)[..]);
    // Written back in the conditional format it was read from.
    let again: Value = serde_json::from_str(&model.to_json()).unwrap();
    assert_eq!(again["format"], "normflow-conditional-model");
}

/// A layer built without a context ignores whatever context it is given;
/// the same layer type built with one reads it.
#[test]
fn a_context_free_layer_ignores_the_context_and_a_conditioned_one_reads_it() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let cfg = ConditionerConfig {
        hidden: 8,
        identity_init: false,
        ..Default::default()
    };
    let x = DMatrix::from_fn(3, 4, |i, j| (i as f64 - 1.0) * 0.6 + j as f64 * 0.2);
    let c1 = DMatrix::from_element(2, 4, 0.5);
    let c2 = DMatrix::from_element(2, 4, -1.5);

    let plain = MaskedAutoregressiveFlow::<f64>::new(3, &cfg, &mut rng).unwrap();
    assert_eq!(plain.context_dim(), 0);
    let (u, l) = plain.inverse_and_log_det(&x);
    assert_eq!(
        plain.inverse_and_log_det_given(&x, &c1),
        (u.clone(), l.clone())
    );
    assert_eq!(plain.inverse_and_log_det_given(&x, &c2), (u, l));

    let conditioned = MaskedAutoregressiveFlow::<f64>::conditional(3, 2, &cfg, &mut rng).unwrap();
    assert_eq!(conditioned.context_dim(), 2);
    let (u1, _) = conditioned.inverse_and_log_det_given(&x, &c1);
    let (u2, _) = conditioned.inverse_and_log_det_given(&x, &c2);
    assert!((u1 - u2).amax() > 1e-3);
}

/// Calling a conditioned layer without a context is a panic whose message
/// names the `_given` method to call.
#[test]
#[should_panic(expected = "call the `_given` method with one")]
fn a_conditioned_layer_called_without_a_context_says_what_to_call() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let cfg = ConditionerConfig::default();
    let layer = AffineCoupling::<f64>::conditional(
        CouplingMask::half(2, false).unwrap(),
        1,
        &cfg,
        &mut rng,
    )
    .unwrap();
    let _ = layer.forward(&DMatrix::zeros(2, 3));
}

/// A chain takes the context dimension of its conditioned parts, passes the
/// context to every part, and refuses parts with different context
/// dimensions, naming the part.
#[test]
fn a_chain_has_one_context_dimension() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let cfg = ConditionerConfig {
        hidden: 8,
        identity_init: false,
        ..Default::default()
    };
    let a = MaskedAutoregressiveFlow::<f64>::conditional(2, 3, &cfg, &mut rng).unwrap();
    let b =
        AffineCoupling::<f64>::conditional(CouplingMask::half(2, true).unwrap(), 3, &cfg, &mut rng)
            .unwrap();
    let chain = a.clone().then(Permute::reverse(2).unwrap()).then(b.clone());
    assert_eq!(chain.context_dim(), 3);
    let x = DMatrix::from_fn(2, 5, |i, j| i as f64 * 0.3 - j as f64 * 0.2);
    let c = DMatrix::from_fn(3, 5, |i, j| (i + j) as f64 * 0.1);
    // The chain is its parts in order under the same context.
    let (y1, l1) = a.forward_and_log_det_given(&x, &c);
    let (y2, l2) = Permute::reverse(2).unwrap().forward_and_log_det(&y1);
    let (y3, l3) = b.forward_and_log_det_given(&y2, &c);
    let (y, l) = chain.forward_and_log_det_given(&x, &c);
    assert!((y - y3).amax() < 1e-12 && (l - (l1 + l2 + l3)).amax() < 1e-12);

    let other = AffineCoupling::<f64>::conditional(
        CouplingMask::half(2, false).unwrap(),
        2,
        &cfg,
        &mut rng,
    )
    .unwrap();
    let e = chain.try_then(other).unwrap_err();
    assert!(e.to_string().contains("context dimension"), "{e}");
}

/// One model type and one `fit`: the same calls fit `p(x)` from samples and
/// `p(x | c)` from pairs, and the conditional model learns how `x` follows
/// `c` (here `x = 2c + small noise`, so the density at the right `x` is far
/// above the density at the wrong one).
#[test]
fn one_model_type_and_one_fit_for_both() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let n = 400;
    let c = DMatrix::from_fn(1, n, |_, j| (j as f64 / n as f64) * 2.0 - 1.0);
    let noise: DMatrix<f64> = StandardNormal::new(1).unwrap().sample(n, &mut rng);
    let x = DMatrix::from_fn(1, n, |_, j| 2.0 * c[(0, j)] + 0.1 * noise[(0, j)]);
    let options = FitOptions {
        epochs: 30,
        batch_size: 50,
        learning_rate: 1e-2,
        ..Default::default()
    };
    let spec = flow!(maf(2, hidden = 16, activation = tanh));
    let mut plain = FlowModel::<f64>::new(&spec, 1, 0).unwrap();
    fit(&mut plain, &x, &options).unwrap();
    let mut conditional = FlowModel::<f64>::conditional(&spec, 1, 1, 0).unwrap();
    fit(&mut conditional, (&x, &c), &options).unwrap();
    // Given c = 0.5 the data sit at x ≈ 1, not at x ≈ −1.
    let at = |x: f64| conditional.log_prob_one_at(&[x], &[0.5]);
    assert!(at(1.0) > at(-1.0) + 5.0, "{} vs {}", at(1.0), at(-1.0));
    // The conditional model explains the data far better than the marginal.
    let nll_plain = -plain.log_prob(&x).mean();
    let nll_conditional = -conditional.log_prob_given(&x, &c).mean();
    assert!(
        nll_conditional < nll_plain - 0.5,
        "{nll_conditional} vs {nll_plain}"
    );
}

/// In a conditional flow the layers without a conditioner (here a NICE
/// coupling, built on the same coupling structure as RealNVP) are handed the
/// flow's context and ignore it: the round trip holds and the NICE layer's
/// log-determinant stays 0.
#[test]
fn unconditioned_layers_of_a_conditional_flow_ignore_its_context() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let spec =
        flow!(nice(hidden = 8, identity_init = false) >> maf(hidden = 8, identity_init = false));
    let flow = spec.build_conditional::<f64>(2, 2, &mut rng).unwrap();
    assert_eq!(flow.context_dim(), 2);
    assert_eq!(flow.layers()[0].context_dim(), 0);
    let x = DMatrix::from_fn(2, 4, |i, j| i as f64 * 0.5 - j as f64 * 0.3);
    let c = DMatrix::from_fn(2, 4, |i, j| (i + 2 * j) as f64 * 0.2);
    let (u, ildj) = flow.inverse_and_log_det_given(&x, &c);
    let (x_back, fldj) = flow.forward_and_log_det_given(&u, &c);
    assert!((x_back - &x).amax() < 1e-10 && (ildj + fldj).amax() < 1e-10);
    let nice = &flow.layers()[0];
    assert_eq!(nice.forward_and_log_det_given(&x, &c).1.amax(), 0.0);
    assert_eq!(nice.forward_given(&x, &c), nice.forward(&x));
}

/// One set of kit checks: `check_bijector` takes a conditioned layer too
/// (at fixed probe contexts); `check_gradients` sends one to
/// `check_gradients_given`, which also checks the context's gradient.
#[test]
fn the_kit_checks_conditioned_layers() {
    use normflow::testing::{
        check_bijector, check_gradients, check_gradients_given, probe_contexts,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let cfg = ConditionerConfig {
        hidden: 8,
        activation: Activation::Tanh,
        identity_init: false,
        ..Default::default()
    };
    let x = DMatrix::from_fn(3, 5, |i, j| (i as f64 - 1.0) * 0.6 + j as f64 * 0.2 - 0.4);
    let maf = MaskedAutoregressiveFlow::<f64>::conditional(3, 2, &cfg, &mut rng).unwrap();
    let report = check_bijector(&maf, &x).unwrap();
    assert!(report.max_log_det_error < 1e-6, "{report}");
    let e = check_gradients(&maf, &x).unwrap_err();
    assert!(e.to_string().contains("check_gradients_given"), "{e}");
    let coupling = SplineCoupling::<f64>::conditional(
        CouplingMask::half(3, false).unwrap(),
        2,
        4,
        3.0,
        &cfg,
        &mut rng,
    )
    .unwrap();
    check_bijector(&coupling, &x).unwrap();
    let g = check_gradients_given(&coupling, &x, &probe_contexts(2, 5)).unwrap();
    assert_eq!(g.directions, ["forward", "inverse"]);
    assert!(g.max_input_error < 1e-6); // x and the context
}
