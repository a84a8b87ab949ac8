//! Tests of the VAE: gradients against finite differences, the bounds of
//! the evaluation, and that training improves the test ELBO.

use nalgebra::DMatrix;
use normflow::nn::Activation;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::data;
use super::eval::{MeanSe, evaluate, log_sum_exp};
use super::model::{Vae, VaeConfig, normal_noise};
use super::posterior::{ConditionalPosterior, ContextAffine, DiagonalGaussian, PosteriorFlow};
use super::train::{TrainOptions, mean_elbo, train};

/// A tiny instance: 4 digits, latent 2, hidden 5, context 3.
fn tiny(flow: Box<dyn PosteriorFlow<f64>>, activation: Activation) -> (Vae<f64>, DMatrix<f64>) {
    let config = VaeConfig {
        data_dim: 64,
        latent: 2,
        hidden: 5,
        depth: 2,
        context: 3,
        activation,
    };
    let mut vae = Vae::new(&config, flow, &mut StdRng::seed_from_u64(7)).unwrap();
    let digits = data::load().unwrap();
    let x = digits.train.columns(0, 4).into_owned();
    vae.init_output_bias(&digits.train);
    (vae, x)
}

/// `d/dv f(v)` by central differences `D(h)` with `h = ε^{1/3}(1 + |v|)`
/// and one Richardson step `(4 D(h/2) − D(h)) / 3`, which cancels the
/// `O(h²)` error: the scheme of `normflow::testing::check_gradients`
/// (`src/testing/gradients.rs`), whose helper is private.
fn richardson(v: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    let h = f64::EPSILON.cbrt() * (1.0 + v.abs());
    let mut quotient = |h: f64| {
        let (a, b) = (v + h, v - h);
        (f(a) - f(b)) / (a - b)
    };
    let d1 = quotient(h);
    let d2 = quotient(h / 2.0);
    (4.0 * d2 - d1) / 3.0
}

/// Checks the gradient of the loss `−mean ELBO` (fixed `ε`) in every
/// parameter of encoder, decoder and flow; returns the worst relative error
/// `|analytic − numerical| / (1 + |numerical|)`, the measure of
/// `check_gradients`.
fn worst_gradient_error(vae: &mut Vae<f64>, x: &DMatrix<f64>) -> f64 {
    let eps = normal_noise::<f64>(vae.latent(), x.ncols(), &mut StdRng::seed_from_u64(3));
    let mut grads = vae.zero_grads();
    vae.elbo_and_grad(x, &eps, &mut grads).unwrap();
    let analytic = grads.to_vec();
    let theta = vae.params_to_vec();
    assert_eq!(analytic.len(), theta.len());
    let mut worst: f64 = 0.0;
    for k in 0..theta.len() {
        let num = richardson(theta[k], |v| {
            let mut p = theta.clone();
            p[k] = v;
            vae.set_params(&p);
            -vae.elbo_terms(x, &eps).elbo().mean()
        });
        let e = (analytic[k] - num).abs() / (1.0 + num.abs());
        assert!(e.is_finite(), "parameter {k}: {} vs {num}", analytic[k]);
        worst = worst.max(e);
    }
    vae.set_params(&theta);
    worst
}

#[test]
fn gradient_of_the_whole_loss_matches_finite_differences() {
    // Tolerance 1e-6: `normflow::testing::GRADIENT_TOLERANCE`, the bound the
    // library's own backward passes meet.
    for activation in [Activation::Tanh, Activation::Elu] {
        let (mut vae, x) = tiny(Box::new(DiagonalGaussian), activation);
        let e = worst_gradient_error(&mut vae, &x);
        eprintln!("{activation:?}: worst relative gradient error {e:e}");
        assert!(e < 1e-6, "{activation:?}: worst relative error {e:e}");
    }
}

#[test]
fn gradient_through_a_context_dependent_flow_matches_finite_differences() {
    // Through a flow with a context-dependent log-determinant, every path a
    // conditional IAF uses is exercised: ∂/∂z₀, ∂/∂log|det|, the flow's
    // parameters and ∂/∂h back into the encoder.
    let (mut vae, x) = tiny(Box::new(ContextAffine::new(2, 3)), Activation::Tanh);
    let e = worst_gradient_error(&mut vae, &x);
    eprintln!("context-dependent flow: worst relative gradient error {e:e}");
    assert!(e < 1e-6, "worst relative error {e:e}");
    // The context really receives a gradient (the encoder's context rows).
    let eps = normal_noise::<f64>(2, 4, &mut StdRng::seed_from_u64(3));
    let mut grads = vae.zero_grads();
    vae.elbo_and_grad(&x, &eps, &mut grads).unwrap();
    let last = vae.encoder.num_layers() - 1;
    let (off, out, inp) = vae.encoder.layer_offset(last);
    let bias_h = &grads.encoder[off + out * inp + 4..off + out * inp + 7];
    assert!(bias_h.iter().any(|g| g.abs() > 1e-6), "{bias_h:?}");
}

#[test]
fn gradient_through_a_conditional_iaf_posterior_matches_finite_differences() {
    // The posterior of the comparison: conditional IAF steps of the library,
    // reading the encoder's context. Random flow parameters (a fresh IAF is
    // the identity, whose zero output layer would hide errors behind it).
    let mut rng = StdRng::seed_from_u64(11);
    let mut iaf = ConditionalPosterior::<f64>::new(
        "iaf(2, hidden = 4, activation = tanh, identity_init = false)",
        2,
        3,
        &mut rng,
    )
    .unwrap();
    let random: Vec<f64> = (0..iaf.num_params())
        .map(|_| rng.random_range(-0.5..0.5))
        .collect();
    iaf.set_params(&random).unwrap();
    let (mut vae, x) = tiny(Box::new(iaf), Activation::Tanh);
    let e = worst_gradient_error(&mut vae, &x);
    eprintln!("conditional IAF posterior: worst relative gradient error {e:e}");
    assert!(e < 1e-6, "worst relative error {e:e}");
}

#[test]
fn context_mismatch_is_an_error() {
    let config = VaeConfig {
        context: 5,
        ..VaeConfig::default()
    };
    let err = Vae::new(
        &config,
        Box::new(ContextAffine::new(8, 3)),
        &mut StdRng::seed_from_u64(0),
    )
    .err()
    .expect("a context of 3 where the encoder gives 5");
    assert!(err.to_string().contains("context"), "{err}");
}

#[test]
fn extreme_parameters_give_finite_values() {
    // Logits of ±1e4 and scales at both ends: the stable softplus forms keep
    // every ELBO and gradient finite.
    let (mut vae, x) = tiny(Box::new(DiagonalGaussian), Activation::Elu);
    for big in [1e3, -1e3] {
        let p: Vec<f64> = vae
            .params_to_vec()
            .iter()
            .enumerate()
            .map(|(k, _)| if k % 2 == 0 { big } else { -big })
            .collect();
        vae.set_params(&p);
        let eps = normal_noise::<f64>(2, 4, &mut StdRng::seed_from_u64(1));
        let mut grads = vae.zero_grads();
        let elbo = vae.elbo_and_grad(&x, &eps, &mut grads).unwrap();
        assert!(elbo.iter().all(|v| v.is_finite()), "{elbo}");
        assert!(grads.all_finite());
    }
}

#[test]
fn log_sum_exp_is_stable() {
    // log(e^a + e^a) = a + log 2, for a far beyond exp's range.
    for a in [-1000.0, 0.0, 1000.0] {
        assert!((log_sum_exp(&[a, a]) - (a + 2f64.ln())).abs() < 1e-12);
    }
    assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    assert_eq!(log_sum_exp(&[f64::NEG_INFINITY, 2.0]), 2.0);
}

/// A VAE trained for a few epochs on the digits (small, so the test is quick).
fn briefly_trained(epochs: usize) -> (Vae<f64>, data::Digits, f64) {
    let digits = data::load().unwrap();
    let config = VaeConfig::default();
    let mut vae = Vae::new(
        &config,
        Box::new(DiagonalGaussian),
        &mut StdRng::seed_from_u64(0),
    )
    .unwrap();
    vae.init_output_bias(&digits.train);
    let before = mean_elbo(&vae, &digits.test, 11);
    let options = TrainOptions {
        epochs,
        batch_size: 100,
        learning_rate: 1e-3,
        seed: 0,
    };
    train(&mut vae, &digits.train, &digits.test, &options, &mut |_| {}).unwrap();
    (vae, digits, before)
}

#[test]
fn training_improves_the_test_elbo() {
    let (vae, digits, before) = briefly_trained(30);
    let after = mean_elbo(&vae, &digits.test, 11);
    // Measured: −24.74 nats untrained (the decoder starts at the average
    // image) and −20.69 after 30 epochs. A gain of 3 nats is a clear margin:
    // about ten standard errors of the test ELBO over its 297 images (0.28,
    // `normflow vae`'s report).
    assert!(after > before + 3.0, "before {before}, after {after}");
}

#[test]
fn importance_sampling_bounds() {
    let (vae, digits, _) = briefly_trained(5);
    let test = digits.test.columns(0, 100).into_owned();
    // Independent noise for the two estimates, so that the inequality is a
    // statistical statement that can fail, not Jensen on shared samples.
    let elbo = evaluate(&vae, &test, 200, 1).unwrap();
    let is = evaluate(&vae, &test, 1000, 2).unwrap();
    let diff: Vec<f64> = is
        .log_likelihood
        .iter()
        .zip(&elbo.elbo)
        .map(|(a, b)| a - b)
        .collect();
    let d = MeanSe::of(&diff);
    // Burda et al. 2016, Theorem 1: E[L_K] ≥ E[L_1] = ELBO. The gap is the
    // expected log-ratio of the bounds, a few nats for a briefly trained VAE;
    // require it to exceed 3 standard errors.
    assert!(d.mean > 3.0 * d.se, "L_1000 − ELBO = {d}");
    // L_K is non-decreasing in K in expectation (same theorem): L_10 ≤ L_1000.
    let is10 = evaluate(&vae, &test, 10, 3).unwrap();
    let gap: Vec<f64> = is
        .log_likelihood
        .iter()
        .zip(&is10.log_likelihood)
        .map(|(a, b)| a - b)
        .collect();
    let g = MeanSe::of(&gap);
    assert!(g.mean > -3.0 * g.se, "L_1000 − L_10 = {g}");
    // K = 1: the estimate is the single-sample ELBO. With the same noise the
    // two are identical…
    let one = evaluate(&vae, &test, 1, 4).unwrap();
    assert_eq!(one.log_likelihood, one.elbo);
    // …and with independent noise they agree in expectation: the mean
    // difference from the 200-sample ELBO is within 4 standard errors.
    let diff: Vec<f64> = one
        .log_likelihood
        .iter()
        .zip(&elbo.elbo)
        .map(|(a, b)| a - b)
        .collect();
    let d = MeanSe::of(&diff);
    assert!(d.mean.abs() < 4.0 * d.se, "L_1 − ELBO = {d}");
}
