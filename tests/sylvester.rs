//! Orthogonal (Householder) Sylvester flows (van den Berg et al. 2018): the
//! bijector contract and the gradients at random parameters, the
//! invertibility constraint, the DSL name and its `m` key, saving and loading
//! a model, and a short variational fit.

use nalgebra::{DMatrix, DVector};
use normflow::distribution::Normal;
use normflow::prelude::*;
use normflow::testing::strategies::batch;
use normflow::testing::{Tolerances, check_bijector_with, check_gradients};
use normflow::train::{DistributionTarget, FlowModel, VariationalOptions, fit_variational};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// A layer whose every raw parameter is uniform in `[−spread, spread]`.
fn random_layer(dim: usize, m: usize, spread: f64, seed: u64) -> Sylvester<f64> {
    let mut r = rng(seed);
    let mut layer = Sylvester::<f64>::new(dim, m, &mut r).unwrap();
    for p in layer.params_mut() {
        *p = r.random_range(-spread..spread);
    }
    layer
}

/// The same layer in `f32`.
fn to_f32(layer: &Sylvester<f64>, dim: usize) -> Sylvester<f32> {
    let p: Vec<f32> = layer.params().iter().map(|&v| v as f32).collect();
    Sylvester::<f32>::from_params(dim, layer.reflections(), p).unwrap()
}

fn tight() -> Tolerances {
    Tolerances {
        round_trip: 1e-9,
        ..Tolerances::F64
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// Round trip, log-det against the numerical Jacobian (central
    /// differences, f64) and consistency of the fused calls.
    #[test]
    fn bijector_contract_at_random_parameters(
        (dim, x) in (1usize..=4).prop_flat_map(|d| (Just(d), batch(d, 5, 3.0))),
        m in 1usize..=4,
        seed in 0u64..1000,
    ) {
        let layer = random_layer(dim, m, 1.0, seed);
        let report = check_bijector_with(&layer, &x, &tight())
            .map_err(|f| TestCaseError::fail(format!("{layer:?}: {f}")))?;
        prop_assert!(report.max_abs_log_det > 1e-9, "{report:?}");
    }

    /// The diagonal products stay above −1 for any raw parameters, so the
    /// Jacobian determinant is positive and the map round-trips.
    #[test]
    fn invertibility_constraint_holds_at_random_raw_parameters(
        dim in 1usize..=4,
        m in 1usize..=3,
        seed in 0u64..1000,
    ) {
        let layer = random_layer(dim, m, 15.0, seed);
        for d in layer.diag_products() {
            prop_assert!(d > -1.0 && d < 1.0, "{d}");
        }
        let q = layer.q();
        prop_assert!((q.transpose() * &q - DMatrix::identity(dim, dim)).amax() < 1e-12);
        let x = DMatrix::from_fn(dim, 7, |i, j| ((i * 5 + j * 3) as f64 * 0.91).sin() * 4.0);
        let (y, ldj) = layer.forward_and_log_det(&x);
        prop_assert!(ldj.iter().all(|v| v.is_finite()));
        let (x_back, ildj) = layer.inverse_and_log_det(&y);
        prop_assert!(x_back.iter().all(|v| v.is_finite()));
        prop_assert!((&ldj + &ildj).amax() < 1e-8 * (1.0 + ldj.amax()));
    }
}

/// Both backward passes against finite differences, in f64.
#[test]
fn gradients_match_finite_differences_f64() {
    for seed in 0..12u64 {
        let dim = 1 + (seed as usize % 4);
        let m = 1 + (seed as usize % 3);
        let layer = random_layer(dim, m, 1.0, seed);
        let x = DMatrix::from_fn(dim, 4, |i, j| {
            ((i * 3 + j * 7 + seed as usize) as f64).sin()
        });
        let report = check_gradients(&layer, &x).unwrap_or_else(|f| panic!("{layer:?}: {f}"));
        assert_eq!(report.directions, ["forward", "inverse"]);
        assert!(report.skipped.is_empty() && report.warnings.is_empty());
        assert_eq!(report.params, m * dim + dim * (dim + 1) + dim);
    }
}

/// The f32 backward passes agree with the (checked) f64 ones at the same
/// parameters, within f32 accuracy.
#[test]
fn gradients_in_f32_agree_with_f64() {
    for seed in 0..8u64 {
        let dim = 1 + (seed as usize % 4);
        let m = 1 + (seed as usize % 3);
        let l64 = random_layer(dim, m, 1.0, seed);
        let l32 = to_f32(&l64, dim);
        let x64 = DMatrix::from_fn(dim, 4, |i, j| {
            ((i * 3 + j * 7 + seed as usize) as f64).cos()
        });
        let x32 = x64.map(|v| v as f32);
        let gy64 = DMatrix::from_fn(dim, 4, |i, j| ((i + 2 * j) as f64 * 0.37).sin());
        let gl64 = DVector::from_fn(4, |j, _| 0.5 - j as f64 * 0.3);
        let (gy32, gl32) = (gy64.map(|v| v as f32), gl64.map(|v| v as f32));
        for forward in [true, false] {
            let (in64, in32) = if forward {
                (x64.clone(), x32.clone())
            } else {
                (l64.forward(&x64), l32.forward(&x32))
            };
            let mut gp64 = vec![0.0; l64.num_params()];
            let mut gp32 = vec![0.0f32; l32.num_params()];
            let (gi64, gi32) = if forward {
                (
                    l64.forward_and_log_det_backward(&in64, &gy64, &gl64, &mut gp64),
                    l32.forward_and_log_det_backward(&in32, &gy32, &gl32, &mut gp32),
                )
            } else {
                (
                    l64.inverse_and_log_det_backward(&in64, &gy64, &gl64, &mut gp64),
                    l32.inverse_and_log_det_backward(&in32, &gy32, &gl32, &mut gp32),
                )
            };
            let (gi64, gi32) = (gi64.unwrap(), gi32.unwrap());
            let close = |a: f64, b: f32| (a - b as f64).abs() <= 2e-3 * (1.0 + a.abs());
            for (a, b) in gp64.iter().zip(&gp32).chain(gi64.iter().zip(gi32.iter())) {
                assert!(close(*a, *b), "seed {seed}, forward {forward}: {a} vs {b}");
            }
        }
    }
}

/// The inverse solves to near machine precision even for layers far from
/// the identity (large off-diagonal entries, saturated tanh).
#[test]
fn inverse_is_accurate_far_from_the_identity() {
    for seed in 0..6u64 {
        let layer = random_layer(3, 2, 6.0, seed);
        let x = DMatrix::from_fn(3, 9, |i, j| ((i * 11 + j * 5) as f64 * 0.43).sin() * 5.0);
        let y = layer.forward(&x);
        let back = layer.inverse(&y);
        let scale = 1.0 + y.amax();
        assert!((back - &x).amax() < 1e-10 * scale, "seed {seed}");
    }
}

#[test]
fn constructor_and_loading_reject_bad_input() {
    let mut r = rng(0);
    assert!(Sylvester::<f64>::new(0, 1, &mut r).is_err());
    assert!(Sylvester::<f64>::new(2, 0, &mut r).is_err());
    assert!(Sylvester::<f64>::from_params(2, 1, vec![0.0; 5]).is_err());
    let mut p = vec![0.0; 2 + 6 + 2];
    assert!(Sylvester::<f64>::from_params(2, 1, p.clone()).is_ok());
    p[3] = f64::NAN;
    assert!(Sylvester::<f64>::from_params(2, 1, p).is_err());
    // Serde round trip and validation on load.
    let layer = random_layer(3, 2, 1.0, 1);
    let json = serde_json::to_string(&layer).unwrap();
    let back: Sylvester<f64> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, layer);
    let bad = json.replace("\"reflections\":2", "\"reflections\":3");
    assert!(serde_json::from_str::<Sylvester<f64>>(&bad).is_err());
}

/// `sylvester(2, m = 2)` builds two layers with two reflections each; the
/// default `m` is the dimension.
#[test]
fn dsl_builds_sylvester_with_its_m_key() {
    let spec = FlowSpec::parse("sylvester(2, m = 2)").unwrap();
    let flow = spec.build::<f64>(3, &mut rng(0)).unwrap();
    assert_eq!(flow.layers().len(), 2);
    assert_eq!(flow.num_params(), 2 * (2 * 3 + 12 + 3));
    let flow = FlowSpec::parse("sylvester")
        .unwrap()
        .build::<f64>(3, &mut rng(0))
        .unwrap();
    assert_eq!(flow.num_params(), 3 * 3 + 12 + 3);
    assert!(FlowSpec::parse("sylvester(m = 0)").is_err());
    let x = DMatrix::from_fn(3, 5, |i, j| (i as f64 - j as f64) * 0.3);
    check_bijector_with(&flow, &x, &tight()).unwrap();
}

/// A model with Sylvester layers saves and loads with identical log-densities.
#[test]
fn model_saves_and_loads_with_identical_log_prob() {
    let spec = FlowSpec::parse("sylvester(2, m = 2)").unwrap();
    let model = FlowModel::<f64>::new(&spec, 2, 7).unwrap();
    let x = DMatrix::from_fn(2, 6, |i, j| ((i * 2 + j) as f64 * 0.7).sin() * 2.0);
    let loaded = FlowModel::<f64>::from_json(&model.to_json()).unwrap();
    assert_eq!(loaded.log_prob(&x), model.log_prob(&x));
    let path = std::env::temp_dir().join(format!("normflow_sylvester_{}.json", std::process::id()));
    model.save(&path).unwrap();
    let from_file = FlowModel::<f64>::load(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(from_file.log_prob(&x), model.log_prob(&x));
}

/// A few hundred steps of reverse-KL fitting to a 2-D Gaussian raise the ELBO.
#[test]
fn variational_fit_raises_the_elbo() {
    let target = DistributionTarget(
        Normal::<f64>::new(
            DVector::from_vec(vec![1.0, -0.5]),
            DVector::from_vec(vec![0.6, 1.8]),
        )
        .unwrap(),
    );
    let spec = FlowSpec::parse("sylvester(4)").unwrap();
    let mut q = FlowModel::<f64>::new(&spec, 2, 3).unwrap();
    let opts = VariationalOptions {
        steps: 400,
        learning_rate: 1e-2,
        batch_size: 64,
        ..Default::default()
    };
    let report = fit_variational(&mut q, &target, &opts, &mut |_, _| true).unwrap();
    let h = &report.elbo_history;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&h[..25]), mean(&h[h.len() - 25..]));
    assert!(last > first + 0.3, "ELBO {first} → {last}");
    // log Z = 0: the ELBO of a good fit is close to 0 from below.
    assert!(last > -0.3 && last < 0.05, "final ELBO {last}");
}
