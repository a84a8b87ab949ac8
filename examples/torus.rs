//! Fits `circular_spline` flows on the torus to the two-angle data set (a
//! mixture of three products of von Mises distributions) by maximum
//! likelihood, and compares the test log-likelihood with the exact mean
//! log-density of the generating mixture on the same test points: the
//! difference estimates `KL(p ‖ model)`. Prints the numbers of
//! docs/training.md.
//!
//! ```text
//! cargo run --release --example torus
//! ```

use std::time::Instant;

use nalgebra::DMatrix;
use normflow::FlowSpec;
use normflow::data::TorusMixture;
use normflow::distribution::Distribution;
use normflow::train::{FitOptions, FlowModel, Schedule, Validation, fit};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The flow, as on the command line.
const FLOW: &str = "circular_spline(4, hidden = 64, bins = 8)";
const TRAIN: usize = 20_000;
const VALID: usize = 5_000;
const TEST: usize = 20_000;
const EPOCHS: usize = 80;
const BATCH: usize = 256;

fn main() -> Result<(), normflow::Error> {
    let mix = TorusMixture::two_angles();
    let spec = FlowSpec::parse(FLOW).expect("a valid spec");
    println!(
        "`{FLOW}` fitted to {TRAIN} points of the data set `torus` ({VALID} for validation), \
         Adam, batch {BATCH}, {EPOCHS} epochs with cosine decay; {TEST} test points."
    );
    println!();
    println!(
        "| seed | test log-likelihood | true mean log-density | KL estimate (± s.e.) | seconds |"
    );
    println!("|---|---|---|---|---|");
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let train = mix.sample(TRAIN, &mut rng);
        let valid = mix.sample(VALID, &mut rng);
        let test = mix.sample(TEST, &mut rng);
        let mut model = FlowModel::<f64>::new(&spec, 2, seed)?;
        let steps = (EPOCHS * TRAIN.div_ceil(BATCH)) as u64;
        let options = FitOptions {
            epochs: EPOCHS,
            batch_size: BATCH,
            learning_rate: 2e-3,
            schedule: Schedule::Cosine {
                total_steps: steps,
                min_factor: 0.01,
            },
            validation: Validation::Data(valid),
            seed,
            ..Default::default()
        };
        let start = Instant::now();
        fit(&mut model, &train, &options)?;
        let secs = start.elapsed().as_secs_f64();
        let (ll, truth, se) = gap(&model, &mix, &test);
        println!(
            "| {seed} | {ll:.4} | {truth:.4} | {:.4} ± {se:.4} | {secs:.0} |",
            truth - ll
        );
    }
    Ok(())
}

/// The model's mean test log-likelihood, the generating density's mean
/// log-density on the same points, and the standard error of their
/// difference (paired, so the sampling noise of the test set mostly cancels).
fn gap(model: &FlowModel<f64>, mix: &TorusMixture, test: &DMatrix<f64>) -> (f64, f64, f64) {
    let n = test.ncols() as f64;
    let lp = model.log_prob(test);
    let truth = mix.log_density(test);
    let diffs: Vec<f64> = truth.iter().zip(lp.iter()).map(|(t, m)| t - m).collect();
    let mean_diff = diffs.iter().sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d - mean_diff).powi(2)).sum::<f64>() / (n - 1.0);
    (
        lp.iter().sum::<f64>() / n,
        truth.iter().sum::<f64>() / n,
        (var / n).sqrt(),
    )
}
