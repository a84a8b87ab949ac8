//! The variational autoencoder: encoder, posterior flow, decoder, and the
//! ELBO with its hand-written gradient.
//!
//! ```text
//! encoder:  x (64) → MLP → [μ (L); a (L); h (C)],   σ = positive_scale(a)
//! sample:   z₀ = μ + σ ⊙ ε,  ε ~ N(0, I_L);   z = f(z₀; h)   (PosteriorFlow)
//! decoder:  z (L) → MLP → ℓ (64 logits),   p(x | z) = Π Bernoulli(x_i; sigmoid(ℓ_i))
//!
//! ELBO(x) = E_ε[ log p(x | z) + log p(z) − log q(z | x) ]
//! log p(x | z) = Σ_i x_i ℓ_i − softplus(ℓ_i)          (= Σ x log σ(ℓ) + (1−x) log σ(−ℓ))
//! log p(z)     = −½ ‖z‖² − (L/2) log 2π
//! log q(z | x) = Σ_i (−½ ε_i² − log σ_i) − (L/2) log 2π − log|det ∂f/∂z₀|
//! ```
//!
//! (Kingma & Welling 2014, *Auto-Encoding Variational Bayes*; Kingma et al.
//! 2016 for the flow.) The scale is `σ = softplus(a + c) + 10⁻³` with `c`
//! such that `a = 0` gives `σ = 1` (the library's
//! [`positive_scale`](normflow::nn::positive_scale)): it grows linearly, not
//! exponentially, and `log σ ≥ log 10⁻³` stays finite. The Bernoulli
//! log-likelihood uses the stable softplus, so no logit makes it NaN.
//!
//! **Gradient** of the loss `−(1/n) Σ_j ELBO(x_j)` with `ε` fixed (the
//! reparameterisation trick), by hand, from the top:
//!
//! ```text
//! ∂/∂ℓ        = (sigmoid(ℓ) − x) / n                      → decoder backward → ∂/∂z (decoder part)
//! ∂/∂z        = decoder part + z / n                      (from −log p(z))
//! ∂/∂log|det| = −1 / n                                    (from +log|det| in the ELBO)
//! flow backward → ∂/∂z₀, ∂/∂h, ∂/∂θ_flow
//! ∂/∂μ        = ∂/∂z₀
//! ∂/∂σ        = ∂/∂z₀ ⊙ ε − 1 / (n σ)                     (from z₀ and from log q's −log σ)
//! ∂/∂a        = ∂/∂σ ⊙ positive_scale′(a)
//! encoder backward of [∂/∂μ; ∂/∂a; ∂/∂h] → ∂/∂θ_encoder
//! ```

use nalgebra::{DMatrix, DVector};
use normflow::nn::{Activation, Mlp, MlpCache, positive_scale, positive_scale_derivative};
use normflow::{Error, Real};
use rand::Rng;

use super::posterior::PosteriorFlow;

/// `½ log 2π`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// The shape of a [`Vae`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VaeConfig {
    /// Dimension of an image (64 for the 8×8 digits).
    pub data_dim: usize,
    /// Latent dimension `L`.
    pub latent: usize,
    /// Width of every hidden layer of the encoder and of the decoder.
    pub hidden: usize,
    /// Number of hidden layers of the encoder and of the decoder.
    pub depth: usize,
    /// Dimension `C` of the context vector `h` the encoder outputs for the
    /// posterior flow (as in Kingma et al. 2016). The encoder has these
    /// outputs whatever the flow, so posteriors compare with the same encoder.
    pub context: usize,
    /// Nonlinearity between layers.
    pub activation: Activation,
}

impl Default for VaeConfig {
    /// The defaults of `normflow vae`: 64 → 128 → 128 → (2·8 + 16) and
    /// 8 → 128 → 128 → 64, ELU.
    fn default() -> Self {
        Self {
            data_dim: 64,
            latent: 8,
            hidden: 128,
            depth: 2,
            context: 16,
            activation: Activation::Elu,
        }
    }
}

/// A VAE with a Bernoulli decoder and a posterior made of the encoder's
/// diagonal Gaussian followed by a [`PosteriorFlow`].
pub struct Vae<T: Real> {
    /// `x ↦ [μ; a; h]`, `2L + C` outputs.
    pub encoder: Mlp<T>,
    /// `z ↦ ℓ`, the 64 Bernoulli logits.
    pub decoder: Mlp<T>,
    /// The posterior flow `z = f(z₀; h)`.
    pub flow: Box<dyn PosteriorFlow<T>>,
    latent: usize,
    context: usize,
}

/// Per-sample terms of the ELBO for one draw of `ε`.
#[derive(Debug, Clone)]
pub struct ElboTerms {
    /// `log p(x | z)`.
    pub log_px_given_z: DVector<f64>,
    /// `log p(z)`.
    pub log_pz: DVector<f64>,
    /// `log q(z | x)`.
    pub log_qz: DVector<f64>,
}

impl ElboTerms {
    /// The single-sample ELBO of each sample: `log p(x|z) + log p(z) − log q(z|x)`.
    /// It is also the log importance weight `log p(x, z) − log q(z | x)`.
    pub fn elbo(&self) -> DVector<f64> {
        &self.log_px_given_z + &self.log_pz - &self.log_qz
    }
}

/// The gradient of the loss, one buffer per part (same layouts as the
/// parts' parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct VaeGrads<T> {
    /// Encoder parameters.
    pub encoder: Vec<T>,
    /// Decoder parameters.
    pub decoder: Vec<T>,
    /// Flow parameters.
    pub flow: Vec<T>,
}

impl<T: Real> VaeGrads<T> {
    /// Whether every entry is finite.
    pub fn all_finite(&self) -> bool {
        self.encoder
            .iter()
            .chain(&self.decoder)
            .chain(&self.flow)
            .all(|g| g.is_finite())
    }

    /// The gradients concatenated in the order of [`Vae::params_to_vec`].
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<T> {
        [&self.encoder[..], &self.decoder[..], &self.flow[..]].concat()
    }
}

/// The encoder's output for a batch, split into its parts.
struct Encoded<T: Real> {
    mu: DMatrix<T>,
    /// Pre-scales `a` (for the backward pass).
    a: DMatrix<T>,
    sigma: DMatrix<T>,
    log_sigma: DMatrix<T>,
    h: DMatrix<T>,
}

impl<T: Real> Vae<T> {
    /// A VAE with freshly initialised networks (PyTorch's default
    /// `U(±1/√fan_in)`) and the given posterior flow. Errors if the flow
    /// reads a context of another dimension than `config.context`, or if a
    /// size is 0.
    pub fn new(
        config: &VaeConfig,
        flow: Box<dyn PosteriorFlow<T>>,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        if let Some(c) = flow.context_dim()
            && c != config.context
        {
            return Err(Error::DimensionMismatch {
                context: "Vae::new".into(),
                argument: format!("the context of the posterior flow `{}`", flow.name()),
                expected: config.context,
                got: c,
            });
        }
        let l = config.latent;
        let mut enc = vec![config.data_dim];
        enc.extend(std::iter::repeat_n(config.hidden, config.depth));
        enc.push(2 * l + config.context);
        let mut dec = vec![l];
        dec.extend(std::iter::repeat_n(config.hidden, config.depth));
        dec.push(config.data_dim);
        let encoder = Mlp::new(&enc, config.activation, false, rng)?;
        let decoder = Mlp::new(&dec, config.activation, false, rng)?;
        Ok(Self {
            encoder,
            decoder,
            flow,
            latent: l,
            context: config.context,
        })
    }

    /// The latent dimension `L`.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Sets the decoder's output bias to the logits of the mean of each
    /// pixel over `data` (clamped to `[10⁻³, 1 − 10⁻³]`), so that the
    /// untrained decoder already predicts the average image: a common
    /// initialisation that saves the first epochs from learning it.
    pub fn init_output_bias(&mut self, data: &DMatrix<f64>) {
        let last = self.decoder.num_layers() - 1;
        let (off, out, inp) = self.decoder.layer_offset(last);
        let n = data.ncols().max(1) as f64;
        let bias = &mut self.decoder.params_mut()[off + out * inp..off + out * inp + out];
        for (i, b) in bias.iter_mut().enumerate() {
            let p = (data.row(i).sum() / n).clamp(1e-3, 1.0 - 1e-3);
            *b = T::lit((p / (1.0 - p)).ln());
        }
    }

    /// Number of parameters of encoder, decoder and flow together.
    pub fn num_params(&self) -> usize {
        self.encoder.num_params() + self.decoder.num_params() + self.flow.num_params()
    }

    /// All parameters: encoder, then decoder, then flow.
    #[cfg(test)]
    pub fn params_to_vec(&self) -> Vec<T> {
        [
            self.encoder.params(),
            self.decoder.params(),
            &self.flow.params_to_vec(),
        ]
        .concat()
    }

    /// Overwrites all parameters (the layout of [`Vae::params_to_vec`]).
    #[cfg(test)]
    pub fn set_params(&mut self, p: &[T]) {
        let (ne, nd) = (self.encoder.num_params(), self.decoder.num_params());
        assert_eq!(p.len(), self.num_params());
        self.encoder.params_mut().copy_from_slice(&p[..ne]);
        self.decoder.params_mut().copy_from_slice(&p[ne..ne + nd]);
        self.flow
            .set_params(&p[ne + nd..])
            .expect("the flow's parameter count");
    }

    /// A zero gradient of the right sizes.
    pub fn zero_grads(&self) -> VaeGrads<T> {
        VaeGrads {
            encoder: vec![T::zero(); self.encoder.num_params()],
            decoder: vec![T::zero(); self.decoder.num_params()],
            flow: vec![T::zero(); self.flow.num_params()],
        }
    }

    fn split(&self, out: &DMatrix<T>) -> Encoded<T> {
        let l = self.latent;
        let c = self.context;
        let mu = out.rows(0, l).into_owned();
        let a = out.rows(l, l).into_owned();
        let h = out.rows(2 * l, c).into_owned();
        let sigma = a.map(|v| positive_scale(v).0);
        let log_sigma = a.map(|v| positive_scale(v).1);
        Encoded {
            mu,
            a,
            sigma,
            log_sigma,
            h,
        }
    }

    fn encode(&self, x: &DMatrix<T>) -> Encoded<T> {
        self.split(&self.encoder.forward(x))
    }

    fn encode_cached(&self, x: &DMatrix<T>) -> (Encoded<T>, MlpCache<T>) {
        let (out, cache) = self.encoder.forward_cached(x);
        (self.split(&out), cache)
    }

    /// `log p(x | z)` per column for logits `ℓ`: `Σ_i x_i ℓ_i − softplus(ℓ_i)`.
    fn bernoulli_log_lik(x: &DMatrix<T>, logits: &DMatrix<T>) -> DVector<f64> {
        DVector::from_fn(x.ncols(), |j, _| {
            x.column(j)
                .iter()
                .zip(logits.column(j).iter())
                .map(|(&xi, &li)| (xi * li - li.softplus()).to_f64())
                .sum()
        })
    }

    /// The ELBO terms given the encoding, with `ε` (`L × n`) as the noise.
    fn terms_given(
        &self,
        x: &DMatrix<T>,
        enc: &Encoded<T>,
        eps: &DMatrix<T>,
    ) -> (ElboTerms, DMatrix<T>) {
        let z0 = &enc.mu + enc.sigma.component_mul(eps);
        let (z, ld) = self.flow.forward_and_log_det(&z0, &enc.h);
        let logits = self.decoder.forward(&z);
        let terms = self.assemble(x, enc, eps, &z, &ld, &logits);
        (terms, z)
    }

    fn assemble(
        &self,
        x: &DMatrix<T>,
        enc: &Encoded<T>,
        eps: &DMatrix<T>,
        z: &DMatrix<T>,
        ld: &DVector<T>,
        logits: &DMatrix<T>,
    ) -> ElboTerms {
        let l = self.latent as f64;
        let n = x.ncols();
        let log_pz = DVector::from_fn(n, |j, _| {
            -0.5 * z.column(j).iter().map(|v| v.to_f64().powi(2)).sum::<f64>() - l * HALF_LN_2PI
        });
        let log_qz = DVector::from_fn(n, |j, _| {
            let base: f64 = eps
                .column(j)
                .iter()
                .zip(enc.log_sigma.column(j).iter())
                .map(|(&e, &ls)| -0.5 * e.to_f64().powi(2) - ls.to_f64())
                .sum();
            base - l * HALF_LN_2PI - ld[j].to_f64()
        });
        ElboTerms {
            log_px_given_z: Self::bernoulli_log_lik(x, logits),
            log_pz,
            log_qz,
        }
    }

    /// The ELBO terms of every column of `x` (`64 × n`) for one draw of the
    /// noise `ε` (`L × n`).
    pub fn elbo_terms(&self, x: &DMatrix<T>, eps: &DMatrix<T>) -> ElboTerms {
        self.terms_given(x, &self.encode(x), eps).0
    }

    /// `K` log importance weights `log p(x, z_k) − log q(z_k | x)` of one
    /// image `x` (`64 × 1`), `z_k` drawn from the posterior with the noise
    /// columns of `eps` (`L × K`). The encoder runs once.
    pub fn log_weights(&self, x: &DMatrix<T>, eps: &DMatrix<T>) -> DVector<f64> {
        assert_eq!(x.ncols(), 1, "Vae::log_weights: one image at a time");
        let k = eps.ncols();
        let one = self.encode(x);
        let rep = |m: &DMatrix<T>| DMatrix::from_fn(m.nrows(), k, |i, _| m[(i, 0)]);
        let enc = Encoded {
            mu: rep(&one.mu),
            a: rep(&one.a),
            sigma: rep(&one.sigma),
            log_sigma: rep(&one.log_sigma),
            h: rep(&one.h),
        };
        self.terms_given(&rep(x), &enc, eps).0.elbo()
    }

    /// Decoder means `sigmoid(ℓ(z))` (`64 × n`) of latent points `z` (`L × n`).
    pub fn decode_mean(&self, z: &DMatrix<T>) -> DMatrix<f64> {
        self.decoder.forward(z).map(|v| v.sigmoid().to_f64())
    }

    /// Reconstructions: the decoder means at `z = f(μ(x); h(x))` (the
    /// posterior sample with `ε = 0`).
    pub fn reconstruct(&self, x: &DMatrix<T>) -> DMatrix<f64> {
        let enc = self.encode(x);
        let (z, _) = self.flow.forward_and_log_det(&enc.mu, &enc.h);
        self.decode_mean(&z)
    }

    /// The per-sample ELBO of the batch `x` for the noise `ε`, and the
    /// gradient of the loss `−mean ELBO` **added** into `grads` (see the
    /// module documentation for the formulas).
    pub fn elbo_and_grad(
        &self,
        x: &DMatrix<T>,
        eps: &DMatrix<T>,
        grads: &mut VaeGrads<T>,
    ) -> Result<DVector<f64>, Error> {
        let n = x.ncols();
        let inv_n = T::lit(1.0 / n as f64);
        let (enc, enc_cache) = self.encode_cached(x);
        let z0 = &enc.mu + enc.sigma.component_mul(eps);
        let (z, ld) = self.flow.forward_and_log_det(&z0, &enc.h);
        let (logits, dec_cache) = self.decoder.forward_cached(&z);
        let terms = self.assemble(x, &enc, eps, &z, &ld, &logits);

        // Decoder: ∂loss/∂ℓ = (sigmoid(ℓ) − x) / n.
        let mut g_logits = logits.map(|v| v.sigmoid());
        g_logits -= x;
        g_logits *= inv_n;
        let mut g_z = self
            .decoder
            .backward(&dec_cache, &g_logits, &mut grads.decoder, None);
        // Prior: −log p(z) contributes z / n.
        g_z += &z * inv_n;
        // Flow: the ELBO holds +log|det|.
        let g_ld = DVector::from_element(n, -inv_n);
        let mut g_h = DMatrix::zeros(enc.h.nrows(), n);
        let g_z0 = self.flow.forward_and_log_det_backward(
            &z0,
            &enc.h,
            &g_z,
            &g_ld,
            &mut grads.flow,
            &mut g_h,
        )?;
        // Reparameterisation and −log σ of log q.
        let l = self.latent;
        let mut g_out = DMatrix::zeros(self.encoder.output_dim(), n);
        g_out.rows_mut(0, l).copy_from(&g_z0);
        let g_a = DMatrix::from_fn(l, n, |i, j| {
            let g_sigma = g_z0[(i, j)] * eps[(i, j)] - inv_n / enc.sigma[(i, j)];
            g_sigma * positive_scale_derivative(enc.a[(i, j)])
        });
        g_out.rows_mut(l, l).copy_from(&g_a);
        g_out.rows_mut(2 * l, g_h.nrows()).copy_from(&g_h);
        self.encoder
            .backward(&enc_cache, &g_out, &mut grads.encoder, None);
        Ok(terms.elbo())
    }
}

/// Standard-normal noise, `rows × cols`.
pub fn normal_noise<T: Real>(rows: usize, cols: usize, rng: &mut dyn Rng) -> DMatrix<T> {
    use rand_distr::{Distribution as _, StandardNormal};
    DMatrix::from_fn(rows, cols, |_, _| {
        let e: f64 = StandardNormal.sample(rng);
        T::lit(e)
    })
}
