//! Normalisation and linear layers: `BatchNormalization` (MAF, Papamakarios et
//! al. 2017), `ActNorm` and `LuLinear` (Glow, Kingma & Dhariwal 2018).
//!
//! Property suite with random parameters (f64) through the verification kit,
//! exact oracles, f32 against f64, serde, constructor errors and identity
//! initialisation. Each `proptest!` test runs `CASES` cases of `N` samples in
//! dimensions 1 to 5.

use nalgebra::{DMatrix, DVector};
use normflow::nn::positive_scale;
use normflow::prelude::*;
use normflow::testing::strategies::batch;
use normflow::testing::{CheckReport, check_bijector, check_equivalent, log_abs_det};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const CASES: u32 = 64;
const N: usize = 8;

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

/// Random init, then γ, β widened to [−1.5, 1.5] and random evaluation
/// statistics (mean in [−3, 3], variance in [0.01, 10]) so that the map and its
/// log-det are far from the identity.
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

/// The layer's own random initialisation (random permutation, off-diagonals
/// and bias in ±1/√D, raw diagonal in [−1, 1]).
fn random_lu(d: usize, seed: u64) -> LuLinear<f64> {
    LuLinear::new(d, false, &mut rng(seed)).unwrap()
}

/// Wider random parameters: off-diagonals in [−1, 1], raw diagonal in [−2, 2]
/// (diagonal of U in [0.21, 2.6]), bias in [−3, 3].
fn wide_lu(d: usize, seed: u64) -> LuLinear<f64> {
    let mut lu = random_lu(d, seed);
    let mut r = rng(seed ^ 0x9e37_79b9_7f4a_7c15);
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

fn to_f32<B>(b: &B) -> B::F32
where
    B: serde::Serialize + Cast32,
{
    serde_json::from_str(&serde_json::to_string(b).unwrap()).unwrap()
}

/// The f32 version of each layer, obtained by deserialising the f64 one's JSON.
trait Cast32 {
    type F32: serde::de::DeserializeOwned;
}
impl Cast32 for BatchNormalization<f64> {
    type F32 = BatchNormalization<f32>;
}
impl Cast32 for ActNorm<f64> {
    type F32 = ActNorm<f32>;
}
impl Cast32 for LuLinear<f64> {
    type F32 = LuLinear<f32>;
}

// ---- the kit ----

/// Runs the kit and insists that the log-det is non-trivial (a zero log-det
/// cannot reveal a sign error).
fn run<B: Bijector<f64> + ?Sized>(b: &B, x: &DMatrix<f64>) -> Result<CheckReport, TestCaseError> {
    let report = check_bijector(b, x).map_err(|f| TestCaseError::fail(format!("{b:?}: {f}")))?;
    prop_assert!(
        report.max_abs_log_det > 1e-6,
        "log-det was identically ~0: {report:?}"
    );
    Ok(report)
}

/// The layer, its inverse, a chain of the layer then a random permutation, and
/// the inverse of that chain.
fn run_all<B: Bijector<f64> + Clone + 'static>(
    b: &B,
    x: &DMatrix<f64>,
    seed: u64,
) -> Result<CheckReport, TestCaseError> {
    let d = x.nrows();
    let perm = Permute::random(d, &mut rng(seed.wrapping_add(17))).unwrap();
    let chain = Chain::new(vec![Box::new(b.clone()), Box::new(perm)]).unwrap();
    let r = run(b, x)?
        .merge(run(&Invert::new(b.clone()), x)?)
        .merge(run(&chain, x)?)
        .merge(run(&Invert::new(chain), x)?);
    Ok(r)
}

fn dim_seed_batch() -> impl Strategy<Value = (usize, u64, DMatrix<f64>)> {
    (1usize..=5).prop_flat_map(|d| (Just(d), any::<u64>(), batch(d, N, 5.0)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn batch_norm_passes_the_kit((d, seed, x) in dim_seed_batch()) {
        run_all(&random_batch_norm(d, seed), &x, seed)?;
    }

    #[test]
    fn act_norm_passes_the_kit((d, seed, x) in dim_seed_batch()) {
        run_all(&random_act_norm(d, seed), &x, seed)?;
    }

    #[test]
    fn lu_linear_passes_the_kit((d, seed, x) in dim_seed_batch()) {
        run_all(&random_lu(d, seed), &x, seed)?;
        run_all(&wide_lu(d, seed), &x, seed)?;
    }

    /// A batch-norm layer in evaluation mode is the affine map of its formula
    /// (MAF paper, appendix B): forward x = (u − β) e^{−γ} √(v + ε) + m,
    /// i.e. Shift(−β), then Scale(e^{−γ} √(v + ε)), then Shift(m).
    #[test]
    fn batch_norm_eval_is_the_affine_map_of_its_formula((d, seed, x) in dim_seed_batch()) {
        let bn = random_batch_norm(d, seed);
        let g = DVector::from_column_slice(bn.log_scale());
        let b = DVector::from_column_slice(bn.shift());
        let scale = DVector::from_fn(d, |i, _| (-g[i]).exp() * (bn.running_var()[i] + bn.epsilon()).sqrt());
        let oracle = Chain::new(vec![
            Box::new(Shift::new(-b).unwrap()),
            Box::new(Scale::new(scale).unwrap()),
            Box::new(Shift::new(bn.running_mean().clone()).unwrap()),
        ]).unwrap();
        check_equivalent(&bn, &oracle, &x, 1e-13).map_err(|f| TestCaseError::fail(f.to_string()))?;
    }

    /// ActNorm (Glow, Table 1): forward x = e^{s} ⊙ u + t, i.e. Scale(e^s) then Shift(t).
    #[test]
    fn act_norm_is_scale_then_shift((d, seed, x) in dim_seed_batch()) {
        let an = random_act_norm(d, seed);
        let s = DVector::from_column_slice(an.log_scale()).map(f64::exp);
        let t = DVector::from_column_slice(an.shift());
        let oracle = Chain::new(vec![
            Box::new(Scale::new(s).unwrap()),
            Box::new(Shift::new(t).unwrap()),
        ]).unwrap();
        check_equivalent(&an, &oracle, &x, 1e-13).map_err(|f| TestCaseError::fail(f.to_string()))?;
    }
}

// ---- LuLinear oracles ----

/// The matrices P, L, U built in the test, independently, from the documented
/// parameter layout `[L strictly lower (row by row) | U strictly upper (row by
/// row) | raw diagonal | bias]`, with `(P v)ᵢ = v[permutation[i]]`.
fn reference_factors(
    lu: &LuLinear<f64>,
) -> (DMatrix<f64>, DMatrix<f64>, DMatrix<f64>, DVector<f64>) {
    let d = lu.permutation().permutation().len();
    let p = lu.params();
    let n_off = d * (d - 1) / 2;
    let mut l = DMatrix::identity(d, d);
    let mut u = DMatrix::zeros(d, d);
    let mut k = 0;
    for i in 0..d {
        for j in 0..i {
            l[(i, j)] = p[k];
            k += 1;
        }
    }
    for i in 0..d {
        for j in (i + 1)..d {
            u[(i, j)] = p[k];
            k += 1;
        }
    }
    assert_eq!(k, 2 * n_off);
    for i in 0..d {
        u[(i, i)] = positive_scale(p[2 * n_off + i]).0;
    }
    let b = DVector::from_column_slice(&p[2 * n_off + d..]);
    assert_eq!(p.len(), 2 * n_off + 2 * d);
    let perm = lu.permutation().permutation();
    let pm = DMatrix::from_fn(d, d, |i, j| if perm[i] == j { 1.0 } else { 0.0 });
    (pm, l, u, b)
}

/// W = P L U reconstructed from the parameters; y = W x + b; log|det| equals
/// log|det W| by LU (the kit's `log_abs_det`) and Σ log uᵢᵢ (det P = ±1,
/// det L = 1: Glow, section 3.2).
#[test]
fn lu_linear_weight_is_p_l_u_of_its_parameters() {
    for seed in 0..40 {
        let d = 1 + (seed as usize % 5);
        let lu = if seed % 2 == 0 {
            random_lu(d, seed)
        } else {
            wide_lu(d, seed)
        };
        let (pm, l, u, b) = reference_factors(&lu);
        assert_eq!(lu.lower(), l);
        assert_eq!(lu.upper(), u);
        assert_eq!(lu.bias(), b.as_slice());
        let w = &pm * &l * &u;
        assert!(
            (lu.weight() - &w).amax() <= 1e-14 * (1.0 + w.amax()),
            "seed {seed}"
        );
        let x = uniform_batch(&mut rng(seed + 1000), d, 6, 4.0);
        let y = lu.forward(&x);
        let mut expected = &w * &x;
        for mut c in expected.column_iter_mut() {
            c += &b;
        }
        assert!((&y - &expected).amax() < 1e-12 * (1.0 + expected.amax()));
        let ldj = lu.forward_log_det_jacobian(&x);
        let by_lu = log_abs_det(&w);
        let by_diag: f64 = (0..d).map(|i| u[(i, i)].ln()).sum();
        for s in 0..x.ncols() {
            assert!(
                (ldj[s] - by_lu).abs() < 1e-12 * (1.0 + by_lu.abs()),
                "seed {seed}"
            );
            assert!((ldj[s] - by_diag).abs() < 1e-14 * (1.0 + by_diag.abs()));
        }
        assert!(ldj.amax() > 1e-3, "non-trivial log-det");
    }
}

/// Pushing z ~ N(0, I) through y = W z + b gives N(b, W Wᵀ) (the affine
/// transformation of a Gaussian), so the transformed distribution's log_prob
/// must equal `MultivariateNormal::new(b, W Wᵀ).log_prob`.
#[test]
fn lu_linear_transformed_normal_is_the_multivariate_normal() {
    for seed in 0..30 {
        let d = 1 + (seed as usize % 5);
        let lu = if seed % 2 == 0 {
            random_lu(d, seed)
        } else {
            wide_lu(d, seed)
        };
        let w = lu.weight();
        let cov = &w * w.transpose();
        let cov = (&cov + cov.transpose()) * 0.5; // symmetric to the last bit
        let mvn = MultivariateNormal::new(DVector::from_column_slice(lu.bias()), cov).unwrap();
        let flow = TransformedDistribution::new(StandardNormal::new(d).unwrap(), lu).unwrap();
        let y = uniform_batch(&mut rng(seed + 77), d, 10, 4.0);
        let (a, b) = (flow.log_prob(&y), mvn.log_prob(&y));
        for s in 0..y.ncols() {
            assert!(
                (a[s] - b[s]).abs() < 1e-10 * (1.0 + b[s].abs()),
                "seed {seed}, sample {s}: flow {} vs MVN {}",
                a[s],
                b[s]
            );
        }
    }
}

/// The diagonal of U never falls below 1e-3, so the layer stays invertible
/// and finite for any finite raw diagonal.
#[test]
fn lu_linear_is_finite_for_extreme_raw_diagonals() {
    let mut lu = LuLinear::<f64>::new(3, true, &mut rng(0)).unwrap();
    let n_off = 3;
    lu.params_mut()[2 * n_off] = -1e6;
    lu.params_mut()[2 * n_off + 1] = 1e6;
    lu.params_mut()[0] = 0.7;
    let u = lu.upper();
    assert!(u[(0, 0)] >= 1e-3 && u[(1, 1)] > 9.9e5);
    let x = uniform_batch(&mut rng(3), 3, 5, 3.0);
    let (y, ldj) = lu.forward_and_log_det(&x);
    assert!(y.iter().all(|v| v.is_finite()) && ldj.iter().all(|v| v.is_finite()));
    let back = lu.inverse(&y);
    assert!((back - &x).amax() < 1e-8);
}

// ---- BatchNormalization oracles ----

/// Data with a different location and spread in every coordinate.
fn spread_data(seed: u64, d: usize, n: usize) -> DMatrix<f64> {
    let mut r = rng(seed);
    let loc = uniform_vec(&mut r, d, -5.0, 5.0);
    let spread = uniform_vec(&mut r, d, 0.1, 4.0);
    DMatrix::from_fn(d, n, |i, _| loc[i] + spread[i] * r.random_range(-1.7..1.7))
}

/// The batch mean and biased variance, computed here by the textbook two-pass
/// formulas (not by the layer).
fn mean_var(row: &[f64]) -> (f64, f64) {
    let n = row.len() as f64;
    let m = row.iter().sum::<f64>() / n;
    let v = row.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, v)
}

fn row(m: &DMatrix<f64>, i: usize) -> Vec<f64> {
    m.row(i).iter().copied().collect()
}

/// Training mode (MAF paper, appendix B): u = e^γ (x − m)/√(v + ε) + β with
/// the batch's mean m and biased variance v, so every output row has mean β and
/// standard deviation e^γ √(v/(v + ε)) ≈ e^γ; the log-det is Σ (γ − ½ log(v + ε)).
#[test]
fn batch_norm_training_mode_follows_the_formula() {
    for seed in 0..10 {
        let d = 1 + seed as usize % 5;
        let mut bn = random_batch_norm(d, seed);
        let x = spread_data(seed + 100, d, 400);
        let (u, ldj) = bn.inverse_and_log_det_training(&x);
        let eps = bn.epsilon();
        let mut expected_ldj = 0.0;
        for i in 0..d {
            let (g, b) = (bn.log_scale()[i], bn.shift()[i]);
            let (m, v) = mean_var(&row(&x, i));
            expected_ldj += g - 0.5 * (v + eps).ln();
            // Elementwise formula.
            for s in 0..x.ncols() {
                let e = g.exp() * (x[(i, s)] - m) / (v + eps).sqrt() + b;
                assert!((u[(i, s)] - e).abs() < 1e-12 * (1.0 + e.abs()));
            }
            // Mean β and standard deviation e^γ √(v/(v + ε)).
            let (mu, vu) = mean_var(&row(&u, i));
            assert!((mu - b).abs() < 1e-12, "mean {mu} vs β {b}");
            let std = vu.sqrt();
            let exact = g.exp() * (v / (v + eps)).sqrt();
            assert!((std - exact).abs() < 1e-12 * exact);
            // ε/v ≤ 1e-5/0.003, so std is within 2e-3 of e^γ.
            assert!((std / g.exp() - 1.0).abs() < 2e-3);
        }
        for s in 0..x.ncols() {
            assert!((ldj[s] - expected_ldj).abs() < 1e-12 * (1.0 + expected_ldj.abs()));
        }
    }
}

/// After `compute_statistics(data)` (the MAF paper's evaluation statistics),
/// evaluation mode on `data` is exactly training mode on `data` as one batch.
#[test]
fn batch_norm_eval_after_compute_statistics_equals_training() {
    for seed in 0..10 {
        let d = 1 + seed as usize % 5;
        let bn0 = random_batch_norm(d, seed);
        let x = spread_data(seed + 200, d, 257);
        let (u_train, ldj_train) = bn0.clone().inverse_and_log_det_training(&x);
        let mut bn = bn0.clone();
        bn.compute_statistics(&x).unwrap();
        let (m, v) = bn.batch_statistics(&x);
        assert_eq!(bn.running_mean(), &m);
        assert_eq!(bn.running_var(), &v);
        assert_eq!(
            bn.inverse_and_log_det(&x),
            (u_train.clone(), ldj_train.clone())
        );
        assert_eq!(bn.inverse(&x), u_train);
        assert_eq!(bn.inverse_log_det_jacobian(&x), ldj_train);
        // And the forward (sampling) direction maps the normalised data back.
        assert!((bn.forward(&u_train) - &x).amax() < 1e-12 * (1.0 + x.amax()));
    }
}

/// The mismatch users hit: with stored statistics that differ from the batch's,
/// training mode and evaluation mode are different maps.
#[test]
fn batch_norm_train_and_eval_differ_when_statistics_differ() {
    let mut bn = BatchNormalization::<f64>::new(2, true, &mut rng(0)).unwrap();
    let x = DMatrix::from_row_slice(2, 4, &[4.0, 6.0, 5.0, 5.0, -1.0, 3.0, 1.0, 1.0]);
    let (u_eval, ldj_eval) = bn.inverse_and_log_det(&x);
    let (u_train, ldj_train) = bn.inverse_and_log_det_training(&x);
    // Evaluation mode with the initial statistics is the identity…
    assert_eq!(u_eval, x);
    assert_eq!(ldj_eval, DVector::zeros(4));
    // …while training mode standardises the batch (means 5 and 1).
    assert!((u_eval - &u_train).amax() > 1.0);
    assert!(u_train.row(0).mean().abs() < 1e-14 && u_train.row(1).mean().abs() < 1e-14);
    // Biased variances 0.5 and 2: ldj = −½ (log(0.5 + ε) + log(2 + ε)).
    let expected = -0.5 * ((0.5 + 1e-5_f64).ln() + (2.0 + 1e-5_f64).ln());
    assert!((ldj_train[0] - expected).abs() < 1e-14);
    // One training step moved the stored statistics only by the momentum.
    let (u_eval2, _) = bn.inverse_and_log_det(&x);
    assert!((u_eval2 - &u_train).amax() > 1.0);
}

/// Running statistics: m ← (1 − momentum) m + momentum m_batch, likewise v
/// (the exponential moving average of PyTorch and nflows, with the biased
/// batch variance).
#[test]
fn batch_norm_running_statistics_are_a_moving_average() {
    let mut bn = BatchNormalization::<f64>::new(3, false, &mut rng(5)).unwrap();
    assert_eq!(bn.momentum(), 0.1);
    assert_eq!(bn.epsilon(), 1e-5);
    let x1 = spread_data(1, 3, 50);
    let x2 = spread_data(2, 3, 70);
    let (m0, v0) = (bn.running_mean().clone(), bn.running_var().clone());
    bn.inverse_and_log_det_training(&x1);
    bn.inverse_and_log_det_training(&x2);
    for i in 0..3 {
        let (m1, v1) = mean_var(&row(&x1, i));
        let (m2, v2) = mean_var(&row(&x2, i));
        let em = 0.9 * (0.9 * m0[i] + 0.1 * m1) + 0.1 * m2;
        let ev = 0.9 * (0.9 * v0[i] + 0.1 * v1) + 0.1 * v2;
        assert!((bn.running_mean()[i] - em).abs() < 1e-13 * (1.0 + em.abs()));
        assert!((bn.running_var()[i] - ev).abs() < 1e-13 * (1.0 + ev.abs()));
    }
    // Momentum 1: the stored statistics are the last batch's, so evaluation
    // mode then equals training mode on that batch.
    let mut bn1 =
        BatchNormalization::<f64>::with_options(3, 1e-3, 1.0, false, &mut rng(6)).unwrap();
    let (u, ldj) = bn1.inverse_and_log_det_training(&x1);
    assert_eq!(bn1.inverse_and_log_det(&x1), (u, ldj));
    // Momentum 0: the stored statistics never move.
    let mut bn0 =
        BatchNormalization::<f64>::with_options(3, 1e-3, 0.0, false, &mut rng(6)).unwrap();
    let before = bn0.clone();
    bn0.inverse_and_log_det_training(&x1);
    assert_eq!(bn0, before);
    // A non-finite batch gives non-finite outputs but does not poison the state.
    let mut bad = x1.clone();
    bad[(1, 3)] = f64::NAN;
    let mut bn2 = bn.clone();
    let (u_bad, _) = bn2.inverse_and_log_det_training(&bad);
    assert!(u_bad[(1, 0)].is_nan());
    assert_eq!(bn2, bn);
}

/// No NaN for any finite input: a batch of one sample (zero variance, so the
/// denominator is √ε) and a constant coordinate stay finite in training mode.
#[test]
fn batch_norm_training_is_finite_for_degenerate_batches() {
    let mut bn = random_batch_norm(3, 9);
    let one = DMatrix::from_column_slice(3, 1, &[1e8, -3.0, 0.0]);
    let (u, ldj) = bn.inverse_and_log_det_training(&one);
    assert!(u.iter().all(|v| v.is_finite()) && ldj.iter().all(|v| v.is_finite()));
    // u = β exactly (x − m = 0), log-det Σ (γ − ½ log ε).
    assert_eq!(u.as_slice(), bn.shift());
    let expected: f64 = bn.log_scale().iter().map(|g| g - 0.5 * 1e-5_f64.ln()).sum();
    assert!((ldj[0] - expected).abs() < 1e-12 * expected.abs());
    let constant = DMatrix::from_fn(3, 6, |i, j| if i == 1 { 2.5 } else { j as f64 });
    let (u, ldj) = bn.inverse_and_log_det_training(&constant);
    assert!(u.iter().all(|v| v.is_finite()) && ldj.iter().all(|v| v.is_finite()));
    assert!(bn.running_var().iter().all(|v| v.is_finite() && *v >= 0.0));
}

// ---- ActNorm oracles ----

/// Glow's data-dependent initialisation (section 3.1): after it, the
/// activations `inverse(data)` have mean 0 and variance 1 per coordinate.
#[test]
fn act_norm_initialisation_standardises_the_data() {
    for seed in 0..10 {
        let d = 1 + seed as usize % 5;
        let mut an = random_act_norm(d, seed);
        assert!(!an.is_initialized());
        let mut x = spread_data(seed + 300, d, 333);
        // One coordinate far from 0 with a tiny spread.
        x.row_mut(0).apply(|v| *v = 1e3 + 1e-3 * *v);
        an.initialize_from_data(&x).unwrap();
        assert!(an.is_initialized());
        let u = an.inverse(&x);
        for i in 0..d {
            let (m, v) = mean_var(&row(&u, i));
            // Rounding of x − t is ~1e-16 |x| / σ ≤ 1e-16 · 1e3 / 1e-3 relative.
            assert!(m.abs() < 1e-9, "seed {seed}, coordinate {i}: mean {m}");
            assert!(
                (v - 1.0).abs() < 1e-12,
                "seed {seed}, coordinate {i}: variance {v}"
            );
        }
        // The log-det of the forward map is Σ log σ (σ the data's biased std).
        let expected: f64 = (0..d).map(|i| 0.5 * mean_var(&row(&x, i)).1.ln()).sum();
        let ldj = an.forward_log_det_jacobian(&u);
        assert!((ldj[0] - expected).abs() < 1e-12 * (1.0 + expected.abs()));
        // Round trip back to the data.
        assert!((an.forward(&u) - &x).amax() < 1e-12 * (1.0 + x.amax()));
    }
}

/// A coordinate with zero variance gets the floor scale `MIN_STD` instead of 0,
/// so everything stays finite (and a single sample is allowed).
#[test]
fn act_norm_initialisation_guards_zero_variance() {
    let mut an = ActNorm::<f64>::new(2, true, &mut rng(0)).unwrap();
    let x = DMatrix::from_row_slice(2, 3, &[7.0, 7.0, 7.0, 1.0, 2.0, 3.0]);
    an.initialize_from_data(&x).unwrap();
    assert_eq!(an.log_scale()[0], ActNorm::<f64>::MIN_STD.ln());
    assert_eq!(an.shift()[0], 7.0);
    let (u, ldj) = an.inverse_and_log_det(&x);
    assert!(u.iter().all(|v| v.is_finite()) && ldj.iter().all(|v| v.is_finite()));
    assert_eq!(u.row(0).iter().copied().collect::<Vec<_>>(), vec![0.0; 3]);
    let mut single = ActNorm::<f64>::new(2, true, &mut rng(0)).unwrap();
    single
        .initialize_from_data(&DMatrix::from_column_slice(2, 1, &[1.0, -2.0]))
        .unwrap();
    assert!(single.params().iter().all(|v| v.is_finite()));
}

// ---- identity initialisation ----

fn assert_identity<T: Real, B: Bijector<T>>(b: &B, x: &DMatrix<T>) {
    assert_eq!(&b.forward(x), x, "{b:?}");
    assert_eq!(&b.inverse(x), x, "{b:?}");
    let zeros = DVector::<T>::zeros(x.ncols());
    assert_eq!(b.forward_log_det_jacobian(x), zeros, "{b:?}");
    assert_eq!(b.inverse_log_det_jacobian(x), zeros, "{b:?}");
    assert_eq!(b.forward_and_log_det(x), (x.clone(), zeros.clone()));
    assert_eq!(b.inverse_and_log_det(x), (x.clone(), zeros));
}

fn identity_inputs(d: usize) -> DMatrix<f64> {
    let vals = [0.0, -1.0, 1e-300, -3.5e7, 0.1, 2.0 / 3.0, 1e300, -7.25];
    DMatrix::from_fn(d, vals.len(), |i, j| vals[(i + 3 * j) % vals.len()])
}

/// With `identity_init`, a fresh layer is exactly the identity, in f64 and f32,
/// for any ε of batch norm (for ε in (0, 1), (1 − ε) + ε rounds to exactly 1).
#[test]
fn identity_init_is_exactly_the_identity() {
    for d in 1..=5 {
        let x = identity_inputs(d);
        let x32 = x.map(|v| (v as f32).clamp(-3e38, 3e38));
        let mut r = rng(d as u64);
        for eps in [1e-5, 1e-3, 0.1, 0.5, 0.9, 1e-12] {
            let bn = BatchNormalization::<f64>::with_options(d, eps, 0.1, true, &mut r).unwrap();
            assert_identity(&bn, &x);
            let bn32 =
                BatchNormalization::<f32>::with_options(d, eps as f32, 0.1, true, &mut r).unwrap();
            assert_identity(&bn32, &x32);
        }
        assert_identity(
            &BatchNormalization::<f64>::new(d, true, &mut r).unwrap(),
            &x,
        );
        assert_identity(&ActNorm::<f64>::new(d, true, &mut r).unwrap(), &x);
        assert_identity(&ActNorm::<f32>::new(d, true, &mut r).unwrap(), &x32);
        let lu = LuLinear::<f64>::new(d, true, &mut r).unwrap();
        assert_identity(&lu, &x);
        assert_eq!(lu.weight(), DMatrix::identity(d, d));
        assert_identity(&LuLinear::<f32>::new(d, true, &mut r).unwrap(), &x32);
    }
}

/// With `identity_init = false` the layers are not the identity, and the
/// initialisation is reproducible from the seed.
#[test]
fn random_init_is_random_and_reproducible() {
    let d = 4;
    let a = BatchNormalization::<f64>::new(d, false, &mut rng(1)).unwrap();
    assert_eq!(a, BatchNormalization::new(d, false, &mut rng(1)).unwrap());
    assert!(a.params().iter().all(|v| *v != 0.0 && v.abs() <= 0.1));
    let a = ActNorm::<f64>::new(d, false, &mut rng(1)).unwrap();
    assert_eq!(a, ActNorm::new(d, false, &mut rng(1)).unwrap());
    assert!(a.params().iter().all(|v| *v != 0.0 && v.abs() <= 0.1));
    let lus: Vec<LuLinear<f64>> = (0..20).map(|s| random_lu(d, s)).collect();
    assert_eq!(lus[0], random_lu(d, 0));
    assert!(lus.iter().all(|l| l.params().iter().all(|v| *v != 0.0)));
    // The permutation is drawn too: not all 20 are the identity.
    assert!(
        lus.iter()
            .any(|l| l.permutation().permutation() != [0, 1, 2, 3])
    );
}

// ---- f32 against f64 ----

fn assert_close_32(a: &DMatrix<f64>, b: &DMatrix<f32>, what: &str) {
    for (x, y) in a.iter().zip(b.iter()) {
        assert!(
            ((*y as f64) - x).abs() <= 1e-4 * (1.0 + x.abs()),
            "{what}: f64 {x} vs f32 {y}"
        );
    }
}

fn assert_close_32_vec(a: &DVector<f64>, b: &DVector<f32>, what: &str) {
    for (x, y) in a.iter().zip(b.iter()) {
        assert!(
            ((*y as f64) - x).abs() <= 1e-4 * (1.0 + x.abs()),
            "{what}: f64 {x} vs f32 {y}"
        );
    }
}

fn compare_32<B64, B32>(b64: &B64, b32: &B32, x: &DMatrix<f64>)
where
    B64: Bijector<f64>,
    B32: Bijector<f32>,
{
    let x32 = x.clone().cast::<f32>();
    let (y64, l64) = b64.forward_and_log_det(x);
    let (y32, l32) = b32.forward_and_log_det(&x32);
    assert!(l64.amax() > 1e-6, "non-trivial log-det");
    assert_close_32(&y64, &y32, "forward");
    assert_close_32_vec(&l64, &l32, "forward log-det");
    let (u64_, il64) = b64.inverse_and_log_det(x);
    let (u32_, il32) = b32.inverse_and_log_det(&x32);
    assert_close_32(&u64_, &u32_, "inverse");
    assert_close_32_vec(&il64, &il32, "inverse log-det");
}

/// The same parameters in f32 (deserialised from the f64 layer's JSON) give
/// the same maps within f32 tolerance.
#[test]
fn f32_agrees_with_f64() {
    for seed in 0..10 {
        let d = 1 + seed as usize % 5;
        let x = uniform_batch(&mut rng(seed + 500), d, 12, 4.0);
        let bn = random_batch_norm(d, seed);
        compare_32(&bn, &to_f32(&bn), &x);
        let an = random_act_norm(d, seed);
        compare_32(&an, &to_f32(&an), &x);
        let lu = wide_lu(d, seed);
        compare_32(&lu, &to_f32(&lu), &x);
        // Training mode too.
        let data = spread_data(seed + 600, d, 64);
        let (u64_, l64) = bn.clone().inverse_and_log_det_training(&data);
        let (u32_, l32) = to_f32(&bn).inverse_and_log_det_training(&data.clone().cast::<f32>());
        assert_close_32(&u64_, &u32_, "training inverse");
        assert_close_32_vec(&l64, &l32, "training log-det");
    }
}

// ---- worst-case errors (run with --nocapture to see them) ----

fn kit_f64<B: Bijector<f64> + Clone + 'static>(b: &B, x: &DMatrix<f64>, seed: u64) -> CheckReport {
    run_all(b, x, seed).unwrap_or_else(|e| panic!("{e}"))
}

fn kit_f32<B: Bijector<f32> + Clone + 'static>(b: &B, x: &DMatrix<f32>, seed: u64) -> CheckReport {
    let d = x.nrows();
    let perm = Permute::random(d, &mut rng(seed.wrapping_add(17))).unwrap();
    let chain = Chain::new(vec![Box::new(b.clone()), Box::new(perm)]).unwrap();
    let check = |r: Result<CheckReport, _>| r.unwrap_or_else(|f| panic!("{b:?}: {f}"));
    let r = check(check_bijector(b, x))
        .merge(check(check_bijector(&Invert::new(b.clone()), x)))
        .merge(check(check_bijector(&chain, x)))
        .merge(check(check_bijector(&Invert::new(chain), x)));
    assert!(r.max_abs_log_det > 1e-6, "{b:?}: {r:?}");
    r
}

fn print_report(name: &str, r: &CheckReport) {
    eprintln!(
        "{name:<28} round trip {:.2e}  reverse {:.2e}  log-det vs numerical {:.2e}  inverse log-det {:.2e}  fused {:.2e}  (max |log-det| {:.2}, {} samples)",
        r.max_round_trip_error,
        r.max_reverse_round_trip_error,
        r.max_log_det_error,
        r.max_inverse_log_det_error,
        r.max_fused_error,
        r.max_abs_log_det,
        r.samples
    );
}

/// Runs the kit on 100 random layers of each kind (the layer, its inverse, and
/// both inside a chain with a permutation), in f64 and in f32 (the same
/// parameters), and prints the worst errors.
#[test]
fn worst_case_errors_are_reported() {
    let mut reports: Vec<(&str, CheckReport)> = Vec::new();
    let (mut bn64, mut an64, mut lu64) = Default::default();
    let (mut bn32, mut an32, mut lu32) = Default::default();
    for seed in 0..100u64 {
        let d = 1 + seed as usize % 5;
        let x = uniform_batch(&mut rng(seed + 900), d, N, 5.0);
        let x32 = x.clone().cast::<f32>();
        let bn = random_batch_norm(d, seed);
        let an = random_act_norm(d, seed);
        let lu = wide_lu(d, seed);
        bn64 = CheckReport::merge(bn64, kit_f64(&bn, &x, seed));
        an64 = CheckReport::merge(an64, kit_f64(&an, &x, seed));
        lu64 = CheckReport::merge(lu64, kit_f64(&lu, &x, seed));
        bn32 = CheckReport::merge(bn32, kit_f32(&to_f32(&bn), &x32, seed));
        an32 = CheckReport::merge(an32, kit_f32(&to_f32(&an), &x32, seed));
        lu32 = CheckReport::merge(lu32, kit_f32(&to_f32(&lu), &x32, seed));
        // The f32 kit's log-det error for LuLinear (up to ~1e-3) is that of its
        // f32 central-difference Jacobian of an ill-conditioned W; the layer's
        // own f32 log-det matches log|det W| in f64 far more closely.
        let l32 = to_f32(&lu).forward_log_det_jacobian(&x32)[0] as f64;
        let exact = log_abs_det(&lu.weight());
        assert!(
            (l32 - exact).abs() < 1e-6 * (1.0 + exact.abs()),
            "seed {seed}: {l32} vs {exact}"
        );
    }
    reports.push(("BatchNormalization f64", bn64));
    reports.push(("ActNorm f64", an64));
    reports.push(("LuLinear f64", lu64));
    reports.push(("BatchNormalization f32", bn32));
    reports.push(("ActNorm f32", an32));
    reports.push(("LuLinear f32", lu32));
    for (name, r) in &reports {
        print_report(name, r);
    }
    let worst = |f32_: bool| {
        reports
            .iter()
            .filter(|(n, _)| n.ends_with("f32") == f32_)
            .fold(CheckReport::default(), |a, (_, r)| a.merge(*r))
    };
    print_report("all f64", &worst(false));
    print_report("all f32", &worst(true));
}

// ---- serde ----

fn roundtrip<B: serde::Serialize + serde::de::DeserializeOwned>(b: &B) -> B {
    serde_json::from_str(&serde_json::to_string(b).unwrap()).unwrap()
}

fn assert_bit_identical<B: Bijector<f64>>(a: &B, b: &B, x: &DMatrix<f64>) {
    assert_eq!(a.forward(x), b.forward(x));
    assert_eq!(a.inverse(x), b.inverse(x));
    assert_eq!(a.forward_log_det_jacobian(x), b.forward_log_det_jacobian(x));
    assert_eq!(a.inverse_log_det_jacobian(x), b.inverse_log_det_jacobian(x));
    assert_eq!(a.forward_and_log_det(x), b.forward_and_log_det(x));
    assert_eq!(a.inverse_and_log_det(x), b.inverse_and_log_det(x));
}

/// Serialising to a JSON string and back gives bit-identical outputs (and equal
/// layers, statistics and flags included).
///
/// This needs serde_json to parse floats exactly: its default parser may be
/// off by one ulp for 17-digit numbers (e.g. it reads "1.3878083388678961" as
/// 1.387808338867896), and only the `float_roundtrip` feature of serde_json
/// makes parsing correctly rounded. The crate's Cargo.toml must enable it.
#[test]
fn serde_round_trip_is_exact() {
    for seed in 0..10 {
        let d = 1 + seed as usize % 5;
        let x = uniform_batch(&mut rng(seed + 1), d, 7, 3.0);
        let mut bn = random_batch_norm(d, seed);
        bn.inverse_and_log_det_training(&spread_data(seed, d, 9));
        let bn2 = roundtrip(&bn);
        assert_eq!(bn, bn2);
        assert_bit_identical(&bn, &bn2, &x);
        assert_eq!(
            bn.clone().inverse_and_log_det_training(&x),
            bn2.clone().inverse_and_log_det_training(&x)
        );
        let mut an = random_act_norm(d, seed);
        let an2 = roundtrip(&an);
        assert_eq!(an, an2);
        assert!(!an2.is_initialized());
        assert_bit_identical(&an, &an2, &x);
        an.initialize_from_data(&spread_data(seed, d, 9)).unwrap();
        let an3 = roundtrip(&an);
        assert!(an3.is_initialized());
        assert_bit_identical(&an, &an3, &x);
        let lu = wide_lu(d, seed);
        let lu2 = roundtrip(&lu);
        assert_eq!(lu, lu2);
        assert_bit_identical(&lu, &lu2, &x);
        // Also as boxed trait objects inside a chain.
        let c = Chain::new(vec![Box::new(bn2), Box::new(an3), Box::new(lu2)]).unwrap();
        let y = c.forward(&x);
        assert!((c.inverse(&y) - &x).amax() < 1e-10);
    }
}

/// Through `serde_json::Value` (no text, so no float parsing) the round trip is
/// exact whatever serde_json's features: the layers serialise losslessly.
#[test]
fn serde_value_round_trip_is_exact() {
    fn via_value<B: serde::Serialize + serde::de::DeserializeOwned>(b: &B) -> B {
        serde_json::from_value(serde_json::to_value(b).unwrap()).unwrap()
    }
    for seed in 0..10 {
        let d = 1 + seed as usize % 5;
        let x = uniform_batch(&mut rng(seed + 1), d, 7, 3.0);
        let mut bn = random_batch_norm(d, seed);
        bn.inverse_and_log_det_training(&spread_data(seed, d, 9));
        let bn2 = via_value(&bn);
        assert_eq!(bn, bn2);
        assert_bit_identical(&bn, &bn2, &x);
        let mut an = random_act_norm(d, seed);
        an.initialize_from_data(&spread_data(seed, d, 9)).unwrap();
        let an2 = via_value(&an);
        assert_eq!(an, an2);
        assert_bit_identical(&an, &an2, &x);
        let lu = wide_lu(d, seed);
        let lu2 = via_value(&lu);
        assert_eq!(lu, lu2);
        assert_bit_identical(&lu, &lu2, &x);
    }
}

/// Deserialisation validates: no invalid layer can be loaded.
#[test]
fn deserialisation_rejects_invalid_layers() {
    let bn = BatchNormalization::<f64>::new(2, true, &mut rng(0)).unwrap();
    let good = serde_json::to_value(&bn).unwrap();
    assert!(serde_json::from_value::<BatchNormalization<f64>>(good.clone()).is_ok());
    for (key, bad) in [
        ("running_var", serde_json::json!([1.0, -0.5])),
        ("running_mean", serde_json::json!([0.0, 0.0, 0.0])),
        ("epsilon", serde_json::json!(0.0)),
        ("epsilon", serde_json::json!(1.0)),
        ("momentum", serde_json::json!(1.5)),
        ("params", serde_json::json!([0.0, 0.0, 0.0])),
    ] {
        let mut v = good.clone();
        v[key] = bad.clone();
        let e = serde_json::from_value::<BatchNormalization<f64>>(v).unwrap_err();
        let key_root = if key == "running_var" { "var" } else { key };
        assert!(
            e.to_string().contains(key_root) || key == "running_mean",
            "{key} = {bad}: {e}"
        );
    }
    let an = ActNorm::<f64>::new(2, true, &mut rng(0)).unwrap();
    let mut v = serde_json::to_value(&an).unwrap();
    v["params"] = serde_json::json!([0.0, 0.0, 0.0]);
    assert!(serde_json::from_value::<ActNorm<f64>>(v.clone()).is_err());
    v["params"] = serde_json::json!([]);
    assert!(serde_json::from_value::<ActNorm<f64>>(v).is_err());
    let lu = LuLinear::<f64>::new(3, false, &mut rng(0)).unwrap();
    let good = serde_json::to_value(&lu).unwrap();
    let mut v = good.clone();
    v["permutation"] = serde_json::json!([0, 0, 1]);
    assert!(serde_json::from_value::<LuLinear<f64>>(v).is_err());
    let mut v = good.clone();
    v["params"] = serde_json::json!(vec![0.0; 11]);
    let e = serde_json::from_value::<LuLinear<f64>>(v).unwrap_err();
    assert!(e.to_string().contains("params"), "{e}");
}

// ---- constructor errors ----

#[test]
fn constructor_errors_name_the_argument() {
    let mut r = rng(0);
    // Zero dimension.
    let e = BatchNormalization::<f64>::new(0, true, &mut r).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { .. }) && e.to_string().contains("`dim`"),
        "{e}"
    );
    let e = ActNorm::<f64>::new(0, false, &mut r).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { .. }) && e.to_string().contains("`dim`"),
        "{e}"
    );
    let e = LuLinear::<f64>::new(0, false, &mut r).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { .. }) && e.to_string().contains("`dim`"),
        "{e}"
    );

    // Batch norm options.
    for eps in [0.0, -1e-5, 1.0, 2.0, f64::NAN, f64::INFINITY] {
        let e = BatchNormalization::<f64>::with_options(2, eps, 0.1, true, &mut r).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }), "{e}");
        assert!(e.to_string().contains("`epsilon`"), "{e}");
    }
    for m in [-0.1, 1.5, f64::NAN] {
        let e = BatchNormalization::<f64>::with_options(2, 1e-5, m, true, &mut r).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }), "{e}");
        assert!(e.to_string().contains("`momentum`"), "{e}");
    }

    // Batch norm statistics; a failed call leaves the layer unchanged.
    let mut bn = random_batch_norm(2, 1);
    let before = bn.clone();
    let e = bn
        .set_statistics(DVector::zeros(2), DVector::from_vec(vec![1.0, -0.5]))
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("`var[1]`"),
        "{e}"
    );
    let e = bn
        .set_statistics(
            DVector::from_vec(vec![f64::NAN, 0.0]),
            DVector::from_element(2, 1.0),
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("`mean[0]`"),
        "{e}"
    );
    let e = bn
        .set_statistics(DVector::zeros(3), DVector::from_element(2, 1.0))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimensionMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ) && e.to_string().contains("`mean`"),
        "{e}"
    );
    let e = bn.compute_statistics(&DMatrix::zeros(3, 4)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimensionMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ) && e.to_string().contains("`data`"),
        "{e}"
    );
    let e = bn.compute_statistics(&DMatrix::zeros(2, 0)).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { .. }) && e.to_string().contains("`data`"),
        "{e}"
    );
    let mut bad = DMatrix::zeros(2, 3);
    bad[(1, 2)] = f64::INFINITY;
    let e = bn.compute_statistics(&bad).unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("`data[(1, 2)]`"),
        "{e}"
    );
    // Finite data whose variance overflows: deviations of ±1e300.
    let huge = DMatrix::from_row_slice(2, 2, &[1e300, -1e300, 0.0, 0.0]);
    let e = bn.compute_statistics(&huge).unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("var"),
        "{e}"
    );
    assert_eq!(bn, before);

    // ActNorm.
    let e = ActNorm::from_params(DVector::from_vec(vec![0.0, f64::NAN]), DVector::zeros(2))
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("`log_scale[1]`"),
        "{e}"
    );
    let e = ActNorm::from_params(
        DVector::zeros(2),
        DVector::from_vec(vec![f64::INFINITY, 0.0]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("`shift[0]`"), "{e}");
    let e = ActNorm::<f64>::from_params(DVector::zeros(2), DVector::zeros(3)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimensionMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ) && e.to_string().contains("`shift`"),
        "{e}"
    );
    let e = ActNorm::<f64>::from_params(DVector::zeros(0), DVector::zeros(0)).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { .. }) && e.to_string().contains("`log_scale`"),
        "{e}"
    );
    let mut an = random_act_norm(2, 3);
    let before = an.clone();
    let e = an.initialize_from_data(&DMatrix::zeros(3, 5)).unwrap_err();
    assert!(
        matches!(e, Error::DimensionMismatch { .. }) && e.to_string().contains("`x_data`"),
        "{e}"
    );
    let e = an.initialize_from_data(&DMatrix::zeros(2, 0)).unwrap_err();
    assert!(
        matches!(e, Error::InvalidDimension { .. }) && e.to_string().contains("`x_data`"),
        "{e}"
    );
    let e = an.initialize_from_data(&bad).unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("`x_data[(1, 2)]`"),
        "{e}"
    );
    assert_eq!(an, before);
    assert!(!an.is_initialized());
    let given =
        ActNorm::from_params(DVector::from_vec(vec![0.5]), DVector::from_vec(vec![-1.0])).unwrap();
    assert!(given.is_initialized());
    assert_eq!(given.params(), &[0.5, -1.0]);

    // LuLinear.
    let p = Permute::new(vec![1, 0]).unwrap();
    let e = LuLinear::<f64>::from_parts(p.clone(), vec![0.0; 5]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimensionMismatch {
                expected: 6,
                got: 5,
                ..
            }
        ) && e.to_string().contains("`params`"),
        "{e}"
    );
    let e = LuLinear::from_parts(p.clone(), vec![0.0, 0.0, f64::NAN, 0.0, 0.0, 0.0]).unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { .. }) && e.to_string().contains("`params[2]`"),
        "{e}"
    );
    let lu = LuLinear::from_parts(p, vec![0.5, -0.25, 0.0, 1.0, 3.0, 4.0]).unwrap();
    // W = P L U with L = [[1, 0], [0.5, 1]], U = [[σ(0) = 1, −0.25], [0, σ(1)]], P swapping rows.
    let s1 = positive_scale(1.0_f64).0;
    let w = DMatrix::from_row_slice(2, 2, &[0.5, -0.125 + s1, 1.0, -0.25]);
    assert!((lu.weight() - w).amax() < 1e-15);
    assert_eq!(lu.bias(), &[3.0, 4.0]);
}

#[test]
#[should_panic(expected = "expected dimension 3")]
fn lu_linear_panics_on_the_wrong_dimension() {
    let lu = LuLinear::<f64>::new(3, false, &mut rng(0)).unwrap();
    let _ = lu.forward(&DMatrix::zeros(2, 4));
}

#[test]
#[should_panic(expected = "expected dimension 2")]
fn batch_norm_training_panics_on_the_wrong_dimension() {
    let mut bn = BatchNormalization::<f64>::new(2, true, &mut rng(0)).unwrap();
    let _ = bn.inverse_and_log_det_training(&DMatrix::zeros(3, 4));
}

#[test]
#[should_panic(expected = "no samples")]
fn batch_norm_training_panics_on_an_empty_batch() {
    let mut bn = BatchNormalization::<f64>::new(2, true, &mut rng(0)).unwrap();
    let _ = bn.inverse_and_log_det_training(&DMatrix::zeros(2, 0));
}
