//! Training support of the normalisation and linear layers: the hand-written
//! backward passes of `ActNorm`, `LuLinear` and `BatchNormalization` (in
//! evaluation and in training mode) against central finite differences,
//! batch-norm's training mode against `inverse_and_log_det_training` and
//! against finalised evaluation mode, ActNorm's data-dependent initialisation,
//! and the accumulation contract of `grad_params`.
//!
//! Each `proptest!` test runs `CASES` cases of `N` samples in dimensions 1 to 5,
//! with random parameters (the layers' random initialisation, then widened).

use nalgebra::{DMatrix, DVector};
use normflow::prelude::*;
use normflow::testing::strategies::batch;
use normflow::testing::{GRADIENT_TOLERANCE, GradientReport, check_gradients};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const CASES: u32 = 48;
const N: usize = 6;

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn uniform_vec(r: &mut StdRng, d: usize, lo: f64, hi: f64) -> DVector<f64> {
    DVector::from_iterator(d, (0..d).map(|_| r.random_range(lo..hi)))
}

fn uniform_batch(r: &mut StdRng, d: usize, n: usize, bound: f64) -> DMatrix<f64> {
    DMatrix::from_iterator(d, n, (0..d * n).map(|_| r.random_range(-bound..bound)))
}

// ---- random layers (f64) ----

/// Random init, then γ, β in [−1.5, 1.5] and random evaluation statistics
/// (mean in [−3, 3], variance in [0.01, 10]): far from the identity.
fn random_batch_norm(d: usize, seed: u64) -> BatchNormalization<f64> {
    let mut r = rng(seed);
    let mut bn = BatchNormalization::new(d, false, &mut r).unwrap();
    for p in bn.params_mut() {
        *p = r.random_range(-1.5..1.5);
    }
    let mean = uniform_vec(&mut r, d, -3.0, 3.0);
    let var = uniform_vec(&mut r, d, 0.01, 10.0);
    bn.set_statistics(mean, var).unwrap();
    bn
}

/// Random init, then log-scales in [−1.5, 1.5] and shifts in [−3, 3].
fn random_act_norm(d: usize, seed: u64) -> ActNorm<f64> {
    let mut r = rng(seed);
    let mut an = ActNorm::new(d, false, &mut r).unwrap();
    for i in 0..d {
        an.params_mut()[i] = r.random_range(-1.5..1.5);
        an.params_mut()[d + i] = r.random_range(-3.0..3.0);
    }
    an
}

/// Random init (random permutation), then off-diagonals in [−1, 1], raw
/// diagonal in [−2, 2] (diagonal of U in [0.21, 2.6]), bias in [−3, 3].
fn random_lu(d: usize, seed: u64) -> LuLinear<f64> {
    let mut r = rng(seed);
    let mut lu = LuLinear::new(d, false, &mut r).unwrap();
    let n_off = d * (d - 1) / 2;
    for (k, p) in lu.params_mut().iter_mut().enumerate() {
        *p = if k < 2 * n_off {
            r.random_range(-1.0..1.0)
        } else if k < 2 * n_off + d {
            r.random_range(-2.0..2.0)
        } else {
            r.random_range(-3.0..3.0)
        };
    }
    lu
}

fn training(mut bn: BatchNormalization<f64>) -> BatchNormalization<f64> {
    bn.set_training(true);
    bn
}

// ---- helpers ----

/// `check_gradients`, insisting that both directions and every parameter
/// were checked.
fn grad_check<B: Differentiable<f64> + Clone + std::fmt::Debug>(
    b: &B,
    x: &DMatrix<f64>,
) -> Result<GradientReport, TestCaseError> {
    let report = check_gradients(b, x).map_err(|f| TestCaseError::fail(format!("{b:?}: {f}")))?;
    prop_assert_eq!(&report.directions, &["forward", "inverse"]);
    prop_assert!(report.skipped.is_empty());
    prop_assert_eq!(report.params, b.num_params());
    Ok(report)
}

fn dim_seed_batch() -> impl Strategy<Value = (usize, u64, DMatrix<f64>)> {
    (1usize..=5).prop_flat_map(|d| (Just(d), any::<u64>(), batch(d, N, 5.0)))
}

/// The weights of a test loss `L = Σ W ⊙ out + Σ w ⊙ log_det`.
fn cotangents(d: usize, n: usize, seed: u64) -> (DMatrix<f64>, DVector<f64>) {
    let mut r = rng(seed ^ 0x5851_f42d_4c95_7f2d);
    (
        uniform_batch(&mut r, d, n, 1.0),
        uniform_vec(&mut r, n, -1.0, 1.0),
    )
}

/// Backward pass of one direction into `grad_params`.
fn backward<B: Differentiable<f64>>(
    b: &B,
    forward: bool,
    input: &DMatrix<f64>,
    g_out: &DMatrix<f64>,
    g_ld: &DVector<f64>,
    grad_params: &mut [f64],
) -> DMatrix<f64> {
    if forward {
        b.forward_and_log_det_backward(input, g_out, g_ld, grad_params)
    } else {
        b.inverse_and_log_det_backward(input, g_out, g_ld, grad_params)
    }
    .unwrap()
}

/// Backward passes ADD into `grad_params`, and a batch's gradient is the sum
/// of its two halves' (true for layers whose samples do not interact): a
/// buffer pre-filled with `c`, then the first half, then the second half,
/// must hold `c + ∂L/∂θ(full batch)`; the halves' input gradients are the
/// columns of the full batch's.
fn check_accumulates<B: Differentiable<f64>>(
    b: &B,
    x: &DMatrix<f64>,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (d, n) = x.shape();
    let y = b.forward(x);
    let (g_out, g_ld) = cotangents(d, n, seed);
    let k = n / 2;
    for (forward, input) in [(true, x), (false, &y)] {
        let prefill: Vec<f64> = (0..b.num_params()).map(|i| 0.25 * i as f64 - 1.0).collect();
        let mut full = vec![0.0; b.num_params()];
        let g_full = backward(b, forward, input, &g_out, &g_ld, &mut full);
        let mut acc = prefill.clone();
        let g_a = backward(
            b,
            forward,
            &input.columns(0, k).into_owned(),
            &g_out.columns(0, k).into_owned(),
            &g_ld.rows(0, k).into_owned(),
            &mut acc,
        );
        let g_b = backward(
            b,
            forward,
            &input.columns(k, n - k).into_owned(),
            &g_out.columns(k, n - k).into_owned(),
            &g_ld.rows(k, n - k).into_owned(),
            &mut acc,
        );
        for i in 0..b.num_params() {
            let expected = prefill[i] + full[i];
            prop_assert!(
                (acc[i] - expected).abs() <= 1e-12 * (1.0 + expected.abs()),
                "forward={forward}: parameter {i}: accumulated {} but prefill + full batch = {expected}",
                acc[i]
            );
        }
        prop_assert!((g_a - g_full.columns(0, k)).amax() <= 1e-12 * (1.0 + g_full.amax()));
        prop_assert!((g_b - g_full.columns(k, n - k)).amax() <= 1e-12 * (1.0 + g_full.amax()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn act_norm_gradients_match_finite_differences((d, seed, x) in dim_seed_batch()) {
        grad_check(&random_act_norm(d, seed), &x)?;
    }

    #[test]
    fn lu_linear_gradients_match_finite_differences((d, seed, x) in dim_seed_batch()) {
        grad_check(&random_lu(d, seed), &x)?;
    }

    #[test]
    fn batch_norm_eval_gradients_match_finite_differences((d, seed, x) in dim_seed_batch()) {
        let bn = random_batch_norm(d, seed);
        prop_assert!(!bn.is_training());
        grad_check(&bn, &x)?;
    }

    /// Training mode: the inverse direction normalises with the statistics of
    /// the batch it is given, so the finite differences (one input entry at a
    /// time) move the batch mean and variance; the backward pass must carry
    /// those paths. The forward direction uses the stored statistics.
    #[test]
    fn batch_norm_training_gradients_match_finite_differences((d, seed, x) in dim_seed_batch()) {
        grad_check(&training(random_batch_norm(d, seed)), &x)?;
    }

    #[test]
    fn act_norm_backward_accumulates((d, seed, x) in dim_seed_batch()) {
        check_accumulates(&random_act_norm(d, seed), &x, seed)?;
    }

    #[test]
    fn lu_linear_backward_accumulates((d, seed, x) in dim_seed_batch()) {
        check_accumulates(&random_lu(d, seed), &x, seed)?;
    }

    /// In evaluation mode the samples do not interact either. (In training mode
    /// they do, through the batch statistics, and the halves' gradients do not
    /// sum to the full batch's: not tested there.)
    #[test]
    fn batch_norm_eval_backward_accumulates((d, seed, x) in dim_seed_batch()) {
        check_accumulates(&random_batch_norm(d, seed), &x, seed)?;
    }

    /// Training-mode `inverse_and_log_det` (`&self`) returns exactly what
    /// `inverse_and_log_det_training` (`&mut self`) returns on the same batch,
    /// without the running-average update, which only the latter performs
    /// (m ← (1 − momentum) m + momentum m_batch, likewise v).
    #[test]
    fn batch_norm_training_mode_equals_inverse_and_log_det_training((d, seed, x) in dim_seed_batch()) {
        let eval = random_batch_norm(d, seed);
        let train = training(eval.clone());
        let (u, ld) = train.inverse_and_log_det(&x);
        prop_assert_eq!(&train.inverse(&x), &u);
        prop_assert_eq!(&train.inverse_log_det_jacobian(&x), &ld);
        prop_assert_eq!(train.running_mean(), eval.running_mean());
        prop_assert_eq!(train.running_var(), eval.running_var());

        let mut updating = eval.clone();
        let (u2, ld2) = updating.inverse_and_log_det_training(&x);
        prop_assert_eq!(&u2, &u);
        prop_assert_eq!(&ld2, &ld);
        let (m, v) = eval.batch_statistics(&x);
        let mom = eval.momentum();
        let m_exp = eval.running_mean() * (1.0 - mom) + &m * mom;
        let v_exp = eval.running_var() * (1.0 - mom) + &v * mom;
        prop_assert!((updating.running_mean() - m_exp).amax() < 1e-12);
        prop_assert!((updating.running_var() - v_exp).amax() < 1e-12);

        // The formula (MAF paper, appendix B) with the batch statistics:
        // u = e^γ (x − m_batch)/√(v_batch + ε) + β, ld = Σ (γ − ½ log(v_batch + ε)).
        let (g, b, eps) = (eval.log_scale(), eval.shift(), eval.epsilon());
        let u_formula = DMatrix::from_fn(d, N, |i, j| {
            g[i].exp() * (x[(i, j)] - m[i]) / (v[i] + eps).sqrt() + b[i]
        });
        let ld_formula: f64 = (0..d).map(|i| g[i] - 0.5 * (v[i] + eps).ln()).sum();
        prop_assert!((&u - u_formula).amax() < 1e-12);
        prop_assert!(ld.iter().all(|l| (l - ld_formula).abs() < 1e-12));
        // Each row of u has mean β (the batch is centred by its own mean).
        for (i, bi) in b.iter().enumerate() {
            prop_assert!((u.row(i).mean() - bi).abs() < 1e-12);
        }

        // The forward (sampling) direction uses the stored statistics in both modes.
        prop_assert_eq!(train.forward_and_log_det(&x), eval.forward_and_log_det(&x));
        prop_assert_eq!(train.forward(&x), eval.forward(&x));
        prop_assert_eq!(train.forward_log_det_jacobian(&x), eval.forward_log_det_jacobian(&x));
    }

    /// After `prepare_with_data(data, Finalize)` (the MAF paper's full-training-set
    /// statistics) and `set_training(false)`, evaluation mode on `data` equals
    /// training mode on `data` as one batch. `Initialize` changes nothing.
    #[test]
    fn batch_norm_finalize_makes_eval_equal_training_on_the_data(
        d in 1usize..=5, seed in any::<u64>(), n in 1usize..40,
    ) {
        let mut r = rng(seed.wrapping_add(1));
        let offset = uniform_vec(&mut r, d, -4.0, 4.0);
        let data = DMatrix::from_fn(d, n, |i, _| offset[i]) + uniform_batch(&mut r, d, n, 3.0);
        let mut bn = training(random_batch_norm(d, seed));
        let (u_train, ld_train) = bn.inverse_and_log_det(&data);

        let before = bn.clone();
        let out = bn.prepare_with_data(&data, DataStage::Initialize);
        prop_assert_eq!(&bn, &before);
        prop_assert_eq!(&out, &u_train);

        let out = bn.prepare_with_data(&data, DataStage::Finalize);
        prop_assert_eq!(bn.params(), before.params());
        let (m, v) = bn.batch_statistics(&data);
        prop_assert!((bn.running_mean() - m).amax() < 1e-12);
        prop_assert!((bn.running_var() - v).amax() < 1e-12);
        prop_assert!((&out - &u_train).amax() < 1e-12);

        bn.set_training(false);
        prop_assert!(!bn.is_training());
        let (u_eval, ld_eval) = bn.inverse_and_log_det(&data);
        prop_assert!((&u_eval - &u_train).amax() < 1e-12);
        prop_assert!((&ld_eval - &ld_train).amax() < 1e-12);
        // And evaluation mode is now a proper bijection on the data.
        prop_assert!((bn.forward(&u_eval) - &data).amax() < 1e-10);
    }

    /// `prepare_with_data(y, Initialize)` on a fresh ActNorm standardises the
    /// data it sees (per-coordinate mean 0, biased variance 1: Glow, section 3.1)
    /// and returns `inverse(y)`; a second call (or `Finalize`) changes nothing.
    #[test]
    fn act_norm_initialize_standardises_once(
        d in 1usize..=5, seed in any::<u64>(), n in 2usize..40,
    ) {
        let mut r = rng(seed.wrapping_add(2));
        let offset = uniform_vec(&mut r, d, -10.0, 10.0);
        let spread = uniform_vec(&mut r, d, 0.1, 10.0);
        let data = DMatrix::from_fn(d, n, |i, _| offset[i])
            + DMatrix::from_fn(d, n, |i, _| spread[i]).component_mul(&uniform_batch(&mut r, d, n, 1.0));
        let mut an = ActNorm::<f64>::new(d, false, &mut r).unwrap();
        let fresh = an.clone();

        let out = an.prepare_with_data(&data, DataStage::Finalize);
        prop_assert_eq!(&an, &fresh);
        prop_assert_eq!(&out, &fresh.inverse(&data));
        prop_assert!(!an.is_initialized());

        let out = an.prepare_with_data(&data, DataStage::Initialize);
        prop_assert!(an.is_initialized());
        prop_assert_eq!(&out, &an.inverse(&data));
        for i in 0..d {
            let row = out.row(i);
            let mean = row.mean();
            let var = row.map(|v| (v - mean) * (v - mean)).mean();
            prop_assert!(mean.abs() < 1e-10, "row {i}: mean {mean}");
            prop_assert!((var - 1.0).abs() < 1e-10, "row {i}: variance {var}");
        }

        let initialised = an.clone();
        let other = uniform_batch(&mut r, d, n, 50.0);
        let out = an.prepare_with_data(&other, DataStage::Initialize);
        prop_assert_eq!(&an, &initialised);
        prop_assert_eq!(&out, &initialised.inverse(&other));

        // A layer given its parameters is initialised already.
        let mut given = random_act_norm(d, seed);
        given.set_initialized(true);
        let kept = given.clone();
        given.prepare_with_data(&data, DataStage::Initialize);
        prop_assert_eq!(&given, &kept);
    }
}

/// The three layers are reachable as `Differentiable` through `dyn Bijector`
/// (the `differentiable_hooks!` in their `Bijector` impls), with the parameter
/// vector of their `params()` buffer, and `set_params` writes that buffer.
#[test]
fn layers_are_differentiable_through_dyn_bijector() {
    let layers: Vec<Box<dyn Bijector<f64>>> = vec![
        Box::new(random_act_norm(3, 1)),
        Box::new(random_lu(3, 2)),
        Box::new(random_batch_norm(3, 3)),
    ];
    let expected = [6, 12, 6];
    for (mut layer, n) in layers.into_iter().zip(expected) {
        let dl = layer.as_differentiable().expect("differentiable");
        assert_eq!(dl.num_params(), n);
        let p: Vec<f64> = (0..n).map(|i| 0.1 * i as f64 - 0.3).collect();
        // `as_mut()`: the `Bijector` impl of `Box<B>` forwards
        // `as_differentiable` but not `as_differentiable_mut` (its default
        // returns None), so the hook is called on the boxed layer itself.
        let dm = layer
            .as_mut()
            .as_differentiable_mut()
            .expect("differentiable");
        dm.set_params(&p).unwrap();
        assert_eq!(dm.params_to_vec(), p);
        let clone = dm.boxed_clone();
        let x = DMatrix::from_fn(3, 4, |i, j| i as f64 - 0.7 * j as f64);
        assert_eq!(clone.forward(&x), layer.forward(&x));
    }
}

/// The training flag is not serialised: a layer saved in training mode loads
/// in evaluation mode, with the same parameters and statistics.
#[test]
fn batch_norm_training_flag_is_not_serialised() {
    let eval = random_batch_norm(3, 7);
    let train = training(eval.clone());
    let json = serde_json::to_string(&train).unwrap();
    assert_eq!(json, serde_json::to_string(&eval).unwrap());
    let loaded: BatchNormalization<f64> = serde_json::from_str(&json).unwrap();
    assert!(!loaded.is_training());
    assert_eq!(loaded, eval);
}

/// Worst `(parameter, input)` gradient errors of `make(d, seed)` over 48
/// fixed seeds in each dimension 1..=5.
fn worst_errors<B: Differentiable<f64> + Clone + std::fmt::Debug>(
    make: impl Fn(usize, u64) -> B,
) -> (f64, f64) {
    let (mut worst_param, mut worst_input) = (0.0_f64, 0.0_f64);
    for d in 1..=5 {
        for seed in 0..48u64 {
            let b = make(d, seed);
            let x = uniform_batch(&mut rng(1000 + seed), d, N, 5.0);
            let report = check_gradients(&b, &x).unwrap_or_else(|f| panic!("{b:?}: {f}"));
            assert_eq!(report.directions, ["forward", "inverse"]);
            worst_param = worst_param.max(report.max_param_error);
            worst_input = worst_input.max(report.max_input_error);
        }
    }
    (worst_param, worst_input)
}

/// Worst gradient errors over 48 fixed seeds per dimension 1..=5 (run with
/// `--nocapture` to see them); each is bounded by `GRADIENT_TOLERANCE` (1e-6).
#[test]
fn worst_gradient_errors() {
    let results = [
        ("ActNorm", worst_errors(random_act_norm)),
        ("LuLinear", worst_errors(random_lu)),
        ("BatchNorm (eval)", worst_errors(random_batch_norm)),
        (
            "BatchNorm (training)",
            worst_errors(|d, s| training(random_batch_norm(d, s))),
        ),
    ];
    for (name, (param, input)) in results {
        println!(
            "{name:>22}: worst parameter-gradient error {param:.2e}, worst input-gradient error {input:.2e}"
        );
        assert!(param <= GRADIENT_TOLERANCE && input <= GRADIENT_TOLERANCE);
    }
}
