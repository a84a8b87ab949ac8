//! Accuracy of fitting, on data with a known answer (release mode; a few
//! minutes on 2 cores). Numbers are printed so the gaps stay visible.

use std::time::Instant;

use nalgebra::DMatrix;
use normflow::data::{two_moons, two_moons_log_density};
use normflow::prelude::*;
use normflow::train::{FitOptions, FlowModel, Schedule, Validation, fit};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOISE: f64 = 0.05;

fn moons() -> (DMatrix<f64>, DMatrix<f64>) {
    let train = two_moons(20_000, NOISE, &mut StdRng::seed_from_u64(0));
    let test = two_moons(5_000, NOISE, &mut StdRng::seed_from_u64(1));
    (train, test)
}

fn mean_log_prob(model: &FlowModel<f64>, x: &DMatrix<f64>) -> f64 {
    model.log_prob(x).mean()
}

/// `maf(5, hidden = 128, residual = true)`, 100 epochs at batch 256 and
/// learning rate 1e-3 (cosine-decayed to 0 over the run) on two moons
/// (make_moons, noise 0.05, 20 000 train / 5 000 test, unscaled). This is the
/// architecture of nflows' `MaskedAutoregressiveFlow` (a MADE of two residual
/// blocks per layer, reverse permutations in between), with which
/// PyTorch/nflows reaches −0.359 ± 0.025 over three seeds on this budget. The
/// generating density scores about −0.29 on such data (computed below the same
/// way: a Gaussian mixture over the arc points with s.d. 0.05).
///
/// Over three seeds (model and shuffling seed 0, 1, 2 with training and test
/// sets drawn from data seeds 0, 10, 20) this configuration scored −0.322,
/// −0.328 and −0.317; this test runs seed 0. The plain MADE
/// (`residual = false`, two hidden layers) scored between −0.34 and −0.44
/// depending on the seed, so the residual blocks matter here; and with the
/// scale dividing in the density direction (an older parametrisation) one
/// seed in three diverged to −1.0.
#[test]
fn maf_on_two_moons() {
    let (train, test) = moons();
    let truth: f64 = two_moons_log_density(&test, 5_000, NOISE)
        .iter()
        .sum::<f64>()
        / 5_000.0;
    let mut model =
        FlowModel::<f64>::new(&flow!(maf(5, hidden = 128, residual = true)), 2, 0).unwrap();
    let start = Instant::now();
    let steps = 100 * 20_000_u64.div_ceil(256);
    let options = FitOptions {
        epochs: 100,
        batch_size: 256,
        learning_rate: 1e-3,
        schedule: Schedule::Cosine {
            total_steps: steps,
            min_factor: 0.0,
        },
        ..Default::default()
    };
    let report = fit(&mut model, &train, &options).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let ll = mean_log_prob(&model, &test);
    eprintln!(
        "two moons, maf(5, hidden = 128, residual = true): test log-likelihood {ll:.4} nats (true density {truth:.4}), {:.2} s per epoch, {} steps",
        secs / report.epochs_run as f64,
        report.steps
    );
    assert!(ll >= -0.36, "test log-likelihood {ll}");
    // A saved and reloaded model gives the same test log-likelihood to the last bit.
    let reloaded = FlowModel::<f64>::from_json(&model.to_json()).unwrap();
    assert_eq!(mean_log_prob(&reloaded, &test).to_bits(), ll.to_bits());
}

/// A neural-spline flow on the same data and budget closes most of the gap to
/// the true density.
#[test]
fn spline_flow_on_two_moons() {
    let (train, test) = moons();
    let truth: f64 = two_moons_log_density(&test, 5_000, NOISE)
        .iter()
        .sum::<f64>()
        / 5_000.0;
    let mut model =
        FlowModel::<f64>::new(&flow!(nsf(4, hidden = 64, bins = 8, bound = 4)), 2, 0).unwrap();
    let start = Instant::now();
    let report = fit(
        &mut model,
        &train,
        &FitOptions {
            epochs: 40,
            batch_size: 256,
            learning_rate: 1e-3,
            // Decaying the rate to zero makes the result the end of a
            // settled run rather than one noisy iterate of a constant-rate
            // walk (with a constant rate, changing only the summation order
            // of the products moved the result by 0.03 nats).
            schedule: Schedule::Cosine {
                total_steps: 40 * 20_000_u64.div_ceil(256),
                min_factor: 0.0,
            },
            standardize: true,
            ..Default::default()
        },
    )
    .unwrap();
    let ll = mean_log_prob(&model, &test);
    eprintln!(
        "two moons, nsf(4, hidden = 64, bins = 8): test log-likelihood {ll:.4} nats (true density {truth:.4}), {:.2} s per epoch",
        start.elapsed().as_secs_f64() / report.epochs_run as f64
    );
    assert!(ll >= -0.36, "test log-likelihood {ll}");
}

/// Early stopping on small, high-dimensional data that overfits: the
/// validation-based stop keeps the test log-likelihood near its best instead
/// of letting it collapse.
#[test]
fn early_stopping_prevents_overfitting() {
    let d = 64;
    // Correlated Gaussian data: x = A z with a random A.
    let mut rng = StdRng::seed_from_u64(3);
    let a = DMatrix::from_fn(d, d, |i, j| if i == j { 1.0 } else { ((i * 31 + j * 17) % 13) as f64 / 13.0 - 0.5 } * 0.5);
    let sample = |n: usize, rng: &mut StdRng| -> DMatrix<f64> {
        &a * Distribution::<f64>::sample(&StandardNormal::new(d).unwrap(), n, rng)
    };
    let train = sample(1_200, &mut rng);
    let valid = sample(300, &mut rng);
    let test = sample(2_000, &mut rng);
    let spec = flow!(maf(2, hidden = 256));
    let opts = |validation| FitOptions {
        epochs: 60,
        batch_size: 100,
        learning_rate: 3e-3,
        standardize: true,
        validation,
        patience: Some(5),
        ..Default::default()
    };
    let mut stopped = FlowModel::<f64>::new(&spec, d, 0).unwrap();
    let r1 = fit(&mut stopped, &train, &opts(Validation::Data(valid.clone()))).unwrap();
    // The same run without validation data trains for all 60 epochs.
    let mut overfit = FlowModel::<f64>::new(&spec, d, 0).unwrap();
    let r2 = fit(
        &mut overfit,
        &train,
        &FitOptions {
            patience: None,
            ..opts(Validation::None)
        },
    )
    .unwrap();
    let (ll_stop, ll_over) = (
        mean_log_prob(&stopped, &test),
        mean_log_prob(&overfit, &test),
    );
    let train_ll = mean_log_prob(&overfit, &train);
    eprintln!(
        "64-D early stopping: stopped after epoch {} (best {}), test LL {ll_stop:.2}; without stopping {} epochs, train LL {train_ll:.2}, test LL {ll_over:.2}",
        r1.epochs_run, r1.best_epoch, r2.epochs_run
    );
    assert!(r1.stopped_early);
    assert_eq!(r2.epochs_run, 60);
    // Overfitting happened: the full run fits its training data far better
    // than unseen data…
    assert!(
        train_ll > ll_over + 10.0,
        "no overfitting to prevent: train {train_ll}, test {ll_over}"
    );
    // …and the stopped model is much better on the unseen data.
    assert!(
        ll_stop > ll_over + 5.0,
        "stopped {ll_stop} vs overfit {ll_over}"
    );
}
