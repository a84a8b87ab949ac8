//! Training: Adam on the negative ELBO over minibatches, with a fresh draw
//! of `ε` per image and step.

use nalgebra::DMatrix;
use normflow::Real;
use normflow::train::{Adam, Optimizer, Schedule};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::model::{Vae, normal_noise};

/// How a [`Vae`] is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's initial learning rate, decayed to 0 by a cosine schedule over
    /// the whole run.
    pub learning_rate: f64,
    /// Seed of the shuffling and of the noise.
    pub seed: u64,
}

/// The ELBO (nats per image) after one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochElbo {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean single-sample ELBO of the training images over the epoch's
    /// steps (each image once, with the parameters of its step).
    pub train: f64,
    /// Mean single-sample ELBO of the test images after the epoch, with
    /// the same noise every epoch (so the curve shows the model, not the
    /// noise).
    pub test: f64,
}

/// Mean single-sample ELBO of the columns of `x` with the noise of `seed`.
pub fn mean_elbo<T: Real>(vae: &Vae<T>, x: &DMatrix<f64>, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let eps = normal_noise::<T>(vae.latent(), x.ncols(), &mut rng);
    vae.elbo_terms(&x.map(T::lit), &eps).elbo().mean()
}

/// Trains `vae` on the columns of `train`, evaluating the test ELBO after
/// every epoch; `observer` sees each epoch's record. Each epoch's shuffling
/// and noise depend only on the seed and the epoch.
///
/// A non-finite ELBO or gradient stops training with an error naming the
/// epoch and step; the parameters are then those before that step.
pub fn train<T: Real>(
    vae: &mut Vae<T>,
    train: &DMatrix<f64>,
    test: &DMatrix<f64>,
    options: &TrainOptions,
    observer: &mut dyn FnMut(&EpochElbo),
) -> crate::Result<Vec<EpochElbo>> {
    let n = train.ncols();
    if n == 0 || options.batch_size == 0 || options.epochs == 0 {
        return Err("training needs images, a batch size ≥ 1 and at least one epoch".into());
    }
    let data = train.map(T::lit);
    let batches = n.div_ceil(options.batch_size);
    let schedule = Schedule::Cosine {
        total_steps: (options.epochs * batches) as u64,
        min_factor: 0.0,
    };
    let (mut adam_enc, mut adam_dec, mut adam_flow) = (
        Adam::new(options.learning_rate),
        Adam::new(options.learning_rate),
        Adam::new(options.learning_rate),
    );
    let test_seed = options.seed ^ 0x7E57_E1B0;
    let mut history = Vec::with_capacity(options.epochs);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut step = 0u64;
    for epoch in 1..=options.epochs {
        let mut rng = StdRng::seed_from_u64(
            options.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            idx.swap(i, j);
        }
        let mut total = 0.0;
        for b in 0..batches {
            let cols = &idx[b * options.batch_size..((b + 1) * options.batch_size).min(n)];
            let x = data.select_columns(cols);
            let eps = normal_noise::<T>(vae.latent(), cols.len(), &mut rng);
            let mut grads = vae.zero_grads();
            let elbo = vae
                .elbo_and_grad(&x, &eps, &mut grads)
                .map_err(|e| format!("epoch {epoch}, step {}: {e}", b + 1))?;
            let sum = elbo.sum();
            if !sum.is_finite() || !grads.all_finite() {
                return Err(format!(
                    "epoch {epoch}, step {}: the ELBO or its gradient is not finite; stopped with the parameters before this step",
                    b + 1
                ));
            }
            total += sum;
            let lr = options.learning_rate * schedule.factor(step);
            adam_enc.step(vae.encoder.params_mut(), &grads.encoder, lr);
            adam_dec.step(vae.decoder.params_mut(), &grads.decoder, lr);
            if !grads.flow.is_empty() {
                let mut p = vae.flow.params_to_vec();
                adam_flow.step(&mut p, &grads.flow, lr);
                vae.flow
                    .set_params(&p)
                    .map_err(|e| format!("epoch {epoch}: {e}"))?;
            }
            step += 1;
        }
        let record = EpochElbo {
            epoch,
            train: total / n as f64,
            test: mean_elbo(vae, test, test_seed),
        };
        observer(&record);
        history.push(record);
    }
    Ok(history)
}
