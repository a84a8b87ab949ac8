//! The conditional Sylvester layer: a context `c` shifts the bias to
//! `b + W c`. The kit's checks under contexts in f64 and f32 (round trips,
//! log-det against the numerical Jacobian), gradients with respect to the
//! parameters and the context against central differences, the unchanged
//! meaning of an unconditional layer, the DSL in a conditional flow, and a
//! conditional model that saves and loads.

use nalgebra::DMatrix;
use normflow::distribution::Distribution;
use normflow::prelude::*;
use normflow::testing::strategies::batch;
use normflow::testing::{check_bijector_given, check_gradients_given};
use normflow::train::FlowModel;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// A conditional layer whose raw parameters are uniform in `[−1.5, 1.5]`.
fn layer(dim: usize, m: usize, cd: usize, seed: u64) -> Sylvester<f64> {
    let mut r = StdRng::seed_from_u64(seed);
    let mut layer = Sylvester::<f64>::conditional(dim, m, cd, &mut r).unwrap();
    for p in layer.params_mut() {
        *p = r.random_range(-1.5..1.5);
    }
    layer
}

fn to_f32(l: &Sylvester<f64>) -> Sylvester<f32> {
    let p = l.params().iter().map(|&v| v as f32).collect();
    let d = l.dim().unwrap();
    Sylvester::from_params_conditional(d, l.reflections(), l.context_dim(), p).unwrap()
}

fn case() -> impl Strategy<Value = (Sylvester<f64>, DMatrix<f64>, DMatrix<f64>)> {
    (1usize..=4, 1usize..=3, 1usize..=3, any::<u64>()).prop_flat_map(|(d, m, cd, seed)| {
        (
            Just(layer(d, m, cd, seed)),
            batch(d, 5, 2.0),
            batch(cd, 5, 1.5),
        )
    })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn passes_the_kit_under_contexts((l, x, c) in case()) {
        check_bijector_given(&l, &x, &c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (x32, c32) = (x.map(|v| v as f32), c.map(|v| v as f32));
        check_bijector_given(&to_f32(&l), &x32, &c32)
            .map_err(|e| TestCaseError::fail(format!("f32: {e}")))?;
    }

    #[test]
    fn gradients_in_parameters_and_context_match_finite_differences((l, x, c) in case()) {
        let report = check_gradients_given(&l, &x, &c)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(report.directions.len(), 2, "both directions are differentiable");
    }
}

/// `b + W c` is the bias: with `W = 0` the layer is the unconditional one
/// with the same `v, R, R̃, b`, and a context changes the output otherwise.
#[test]
fn the_context_enters_through_the_bias_only() {
    let (d, m, cd) = (3, 2, 2);
    let l = layer(d, m, cd, 5);
    let base_len = l.num_params() - d * cd;
    assert_eq!(l.context_weights().len(), d * cd);
    let mut p = l.params().to_vec();
    p[base_len..].iter_mut().for_each(|w| *w = 0.0);
    let zero_w = Sylvester::from_params_conditional(d, m, cd, p.clone()).unwrap();
    let plain = Sylvester::from_params(d, m, p[..base_len].to_vec()).unwrap();
    let x = DMatrix::from_fn(d, 4, |i, j| (i as f64 - j as f64) * 0.6);
    let c = DMatrix::from_fn(cd, 4, |i, j| (i + j) as f64 * 0.7 - 1.0);
    assert_eq!(zero_w.forward_given(&x, &c), plain.forward(&x));
    assert_eq!(
        zero_w.inverse_and_log_det_given(&x, &c),
        plain.inverse_and_log_det(&x)
    );
    let c2 = c.map(|v| v + 0.5);
    assert!((l.forward_given(&x, &c) - l.forward_given(&x, &c2)).amax() > 1e-3);
    // The wrong context dimension is refused, not read out of bounds.
    let short = DMatrix::zeros(cd - 1, 4);
    let caught = std::panic::catch_unwind(|| l.forward_given(&x, &short));
    assert!(caught.is_err());
}

/// In a conditional flow `sylvester` takes the context (its parameter count
/// and the footprint's agree) and a conditional model saves and loads with
/// identical log-densities; built unconditionally it is unchanged.
#[test]
fn dsl_conditional_flow_and_model_round_trip() {
    let spec = FlowSpec::parse("sylvester(2, m = 2)").unwrap();
    let (d, cd) = (3, 2);
    assert!(FlowSpec::layer_takes_context("sylvester"));
    let flow = spec
        .build_conditional::<f64>(d, cd, &mut StdRng::seed_from_u64(1))
        .unwrap();
    let per_layer = 2 * d + d * (d + 1) + d;
    assert_eq!(flow.num_params(), 2 * (per_layer + d * cd));
    assert_eq!(
        spec.footprint(d, cd).unwrap().params(),
        Some(flow.num_params() as u64)
    );
    let plain = spec.build::<f64>(d, &mut StdRng::seed_from_u64(1)).unwrap();
    assert_eq!(plain.num_params(), 2 * per_layer);

    let model = FlowModel::<f64>::conditional(&spec, d, cd, 9).unwrap();
    let x = DMatrix::from_fn(d, 5, |i, j| (i as f64 * 0.5 - j as f64 * 0.3).sin());
    let c = DMatrix::from_fn(cd, 5, |i, j| (i + 2 * j) as f64 * 0.2 - 0.8);
    let lp = model.log_prob_given(&x, &c);
    assert!(lp.iter().all(|v| v.is_finite()));
    let loaded = FlowModel::<f64>::from_json(&model.to_json()).unwrap();
    assert_eq!(loaded.log_prob_given(&x, &c), lp);
}
