//! `normflow vae`: a variational autoencoder on scikit-learn's 8×8 digits,
//! trained and evaluated with hand-written backward passes.
//!
//! - [`data`]: the embedded digits, binarised at a fixed threshold, split
//!   1 500 / 297;
//! - [`model`]: encoder MLP → diagonal Gaussian `q₀(z₀ | x)` and a context
//!   `h`; a [`PosteriorFlow`](posterior::PosteriorFlow) `z = f(z₀; h)`;
//!   Bernoulli decoder MLP; the ELBO and its gradient;
//! - [`posterior`]: the flow hook and the diagonal-Gaussian posterior (no
//!   flow);
//! - [`train`]: Adam on minibatches, ELBO history per epoch;
//! - [`eval`]: test ELBO and importance-sampled log-likelihood;
//! - [`plot`]: `reconstructions.png`, `samples.png`, `elbo.png`.

pub mod data;
pub mod eval;
pub mod model;
pub mod plot;
pub mod posterior;
pub mod train;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::outln;
use crate::output::Output;
use crate::plot::Size;
use model::{Vae, VaeConfig, normal_noise};
use posterior::{ConditionalPosterior, DiagonalGaussian};
use train::TrainOptions;

/// Default number of epochs.
pub const EPOCHS: usize = 300;
/// Default latent dimension.
pub const LATENT: usize = 8;
/// Images per step.
const BATCH: usize = 100;
/// Adam's initial learning rate (cosine-decayed to 0).
const LEARNING_RATE: f64 = 1e-3;
/// Importance samples per test image.
pub const IS_SAMPLES: usize = 1000;
/// Test images shown in `reconstructions.png` (three pairs of rows).
const N_RECON: usize = 36;
/// Columns of the picture grids.
const GRID_COLS: usize = 12;
/// Prior samples shown in `samples.png`.
const N_PRIOR: usize = 120;

/// The command's arguments.
#[derive(Debug, Clone)]
pub struct VaeArgs {
    /// Output folder.
    pub out: PathBuf,
    /// Write into a non-empty folder.
    pub force: bool,
    /// Passes over the training images.
    pub epochs: usize,
    /// Seed of initialisation, shuffling and noise.
    pub seed: u64,
    /// Latent dimension.
    pub latent: usize,
}

/// Runs `normflow vae`.
pub fn run(args: &VaeArgs) -> crate::Result<()> {
    if args.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    if !(1..=64).contains(&args.latent) {
        return Err(format!(
            "--latent must be between 1 and 64, got {}",
            args.latent
        ));
    }
    crate::demo::prepare_folder(&args.out, args.force)?;
    let start = Instant::now();
    let digits = data::load()?;
    let config = VaeConfig {
        latent: args.latent,
        ..VaeConfig::default()
    };
    let options = TrainOptions {
        epochs: args.epochs,
        batch_size: BATCH,
        learning_rate: LEARNING_RATE,
        seed: args.seed,
    };
    outln!(
        "VAE on scikit-learn's 8×8 digits, binarised at pixel ≥ {}: {} training and {} test images",
        data::THRESHOLD,
        data::N_TRAIN,
        data::N_TEST
    );
    outln!(
        "encoder 64-{h}-{h}-(μ {l}, σ {l}, context {c}), decoder {l}-{h}-{h}-64 Bernoulli logits, {act}; {e} epochs, batch {BATCH}, Adam {LEARNING_RATE} with cosine decay, seed {s}",
        h = config.hidden,
        l = config.latent,
        c = config.context,
        act = config.activation.name(),
        e = args.epochs,
        s = args.seed,
    );

    // Two posteriors with the same encoder, decoder, budget and seed: the
    // encoder's diagonal Gaussian alone, and followed by conditional IAF steps
    // that read the encoder's context (Kingma et al. 2016).
    let mut rng = StdRng::seed_from_u64(args.seed);
    let gaussian = train_one(
        &config,
        Box::new(DiagonalGaussian),
        &digits,
        &options,
        args,
        &mut rng,
    )?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let iaf = ConditionalPosterior::<f64>::new(IAF_SPEC, config.latent, config.context, &mut rng)
        .map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let flow = train_one(&config, Box::new(iaf), &digits, &options, args, &mut rng)?;

    // The IAF's improvement, paired over test images.
    let diff: Vec<f64> = flow
        .evaluation
        .elbo
        .iter()
        .zip(&gaussian.evaluation.elbo)
        .map(|(a, b)| a - b)
        .collect();
    let ll_diff: Vec<f64> = flow
        .evaluation
        .log_likelihood
        .iter()
        .zip(&gaussian.evaluation.log_likelihood)
        .map(|(a, b)| a - b)
        .collect();
    outln!();
    outln!(
        "IAF posterior − diagonal Gaussian: test ELBO {} nats per image, test log-likelihood {} (paired over images)",
        eval::MeanSe::of(&diff),
        eval::MeanSe::of(&ll_diff)
    );
    let vae = flow.vae;
    let history = flow.history;
    let name = vae.flow.name();

    let path = |name: &str| -> crate::Result<Output> {
        Output::check(&args.out.join(name), args.force, &[])
    };
    let written = [
        path("reconstructions.png")?,
        path("samples.png")?,
        path("elbo.png")?,
    ];
    reconstructions(&written[0], &vae, &digits.test)?;
    let z = normal_noise::<f64>(
        vae.latent(),
        N_PRIOR,
        &mut StdRng::seed_from_u64(args.seed ^ 0x5A),
    );
    let means = vae.decode_mean(&z);
    plot::tiles_png(
        &written[1],
        &grid(&means, GRID_COLS),
        "decoder means for z ~ N(0, I)",
    )?;
    plot::elbo_png(
        &written[2],
        &history,
        Size {
            width: 700,
            height: 450,
        },
        &format!("ELBO per epoch ({name} posterior)"),
    )?;
    outln!();
    outln!("wrote:");
    for p in &written {
        outln!("  {}", p.path().display());
    }
    outln!("wall time {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The conditional flow after the encoder's Gaussian in the IAF posterior:
/// two IAF steps (reversed between them) whose MADEs read the context.
pub const IAF_SPEC: &str = "iaf(2, hidden = 64, activation = elu)";

/// A trained VAE with its history and test evaluation.
struct Trained {
    vae: Vae<f64>,
    history: Vec<train::EpochElbo>,
    evaluation: eval::Evaluation,
}

/// Trains and evaluates one VAE with posterior stage `flow`, printing its
/// numbers.
fn train_one(
    config: &VaeConfig,
    flow: Box<dyn posterior::PosteriorFlow<f64>>,
    digits: &data::Digits,
    options: &TrainOptions,
    args: &VaeArgs,
    rng: &mut StdRng,
) -> crate::Result<Trained> {
    let mut vae = Vae::<f64>::new(config, flow, rng).map_err(|e| e.to_string())?;
    vae.init_output_bias(&digits.train);
    let name = vae.flow.name();
    let bar = progress(args.epochs);
    let fit_start = Instant::now();
    let history = train::train(&mut vae, &digits.train, &digits.test, options, &mut |r| {
        bar.set_position(r.epoch as u64);
        bar.set_message(format!(
            "train ELBO {:.2}, test ELBO {:.2}",
            r.train, r.test
        ));
    })?;
    bar.finish_and_clear();
    let fit_s = fit_start.elapsed().as_secs_f64();
    let eval_start = Instant::now();
    let evaluation = eval::evaluate(&vae, &digits.test, IS_SAMPLES, args.seed ^ 0xE7A1)?;
    let eval_s = eval_start.elapsed().as_secs_f64();
    let last = history.last().expect("at least one epoch");
    outln!();
    outln!(
        "posterior: {name} ({} parameters; trained in {fit_s:.1} s, evaluated in {eval_s:.1} s)",
        vae.num_params()
    );
    outln!(
        "  last epoch: training ELBO {:.3}, test ELBO {:.3} (single sample)",
        last.train,
        last.test
    );
    outln!(
        "  test ELBO:                     {} nats per image (mean ± standard error over {} images, {IS_SAMPLES} samples each)",
        evaluation.elbo_summary(),
        data::N_TEST
    );
    outln!(
        "  test log-likelihood (IS, K = {IS_SAMPLES}): {} nats per image",
        evaluation.log_likelihood_summary()
    );
    outln!(
        "  gap log-likelihood − ELBO:     {} nats per image (paired over images)",
        evaluation.gap_summary()
    );
    Ok(Trained {
        vae,
        history,
        evaluation,
    })
}

/// Test images and their reconstructions, in pairs of rows.
fn reconstructions(path: &Output, vae: &Vae<f64>, test: &DMatrix<f64>) -> crate::Result<()> {
    let n = N_RECON.min(test.ncols());
    let x = test.columns(0, n).into_owned();
    let recon = vae.reconstruct(&x);
    let mut rows = Vec::new();
    for start in (0..n).step_by(GRID_COLS) {
        let end = (start + GRID_COLS).min(n);
        let take = |m: &DMatrix<f64>| -> Vec<Vec<f64>> {
            (start..end)
                .map(|j| m.column(j).iter().copied().collect())
                .collect()
        };
        rows.push(("test image".to_string(), take(&x)));
        rows.push(("reconstruction".to_string(), take(&recon)));
    }
    plot::tiles_png(
        path,
        &rows,
        "test images and reconstructions (decoder means at ε = 0)",
    )
}

/// The columns of `m` as images in rows of `cols`, without labels.
fn grid(m: &DMatrix<f64>, cols: usize) -> Vec<(String, Vec<Vec<f64>>)> {
    let images: Vec<Vec<f64>> = m
        .column_iter()
        .map(|c| c.iter().copied().collect())
        .collect();
    images
        .chunks(cols)
        .map(|c| (String::new(), c.to_vec()))
        .collect()
}

/// A progress bar over epochs on stderr, hidden when stderr is not a terminal.
fn progress(epochs: usize) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(epochs as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg} [{elapsed} < {eta}]")
                .expect("a valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    }
}
