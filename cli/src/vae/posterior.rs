//! The pluggable stage of the approximate posterior: a map of the latent
//! sample that may depend on a context vector from the encoder.
//!
//! The encoder gives, for an image `x`, a diagonal Gaussian `N(μ(x), σ(x)²)`
//! and a context vector `h(x)`. A sample of the posterior is
//!
//! ```text
//! z₀ = μ + σ ⊙ ε,  ε ~ N(0, I)          (the reparameterisation)
//! z  = f(z₀; h)                           (the posterior flow)
//! log q(z | x) = log N(z₀; μ, σ²) − log|det ∂f/∂z₀|
//! ```
//!
//! as in Kingma et al. 2016 (*Improved Variational Inference with Inverse
//! Autoregressive Flow*, Algorithm 1), where `f` is a stack of conditional IAF
//! steps whose conditioners read `h`. [`PosteriorFlow`] is that `f`; the VAE
//! only calls it through this trait, so any conditional bijector of the
//! library drops in by implementing it.
//!
//! **Hook for a conditional flow.** The trait's methods mirror the library's
//! context-aware training methods (`forward_and_log_det_given(x, c)` and
//! `forward_and_log_det_backward_given(x, c, grad_y, grad_log_det,
//! grad_params, grad_context)`, with flat parameters), so an adapter is a few
//! lines:
//!
//! ```text
//! struct Conditional<F>(F);
//! impl<T: Real, F: Differentiable<T>> PosteriorFlow<T> for Conditional<F> {
//!     fn name(&self) -> String { "diagonal Gaussian + conditional IAF".into() }
//!     fn context_dim(&self) -> Option<usize> { Some(self.0.context_dim()) }
//!     fn num_params(&self) -> usize { self.0.num_params() }
//!     fn params_to_vec(&self) -> Vec<T> { self.0.params_to_vec() }
//!     fn set_params(&mut self, p: &[T]) -> Result<(), Error> { self.0.set_params(p) }
//!     fn forward_and_log_det(&self, z0: &DMatrix<T>, h: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
//!         self.0.forward_and_log_det_given(z0, h)
//!     }
//!     fn forward_and_log_det_backward(&self, z0, h, grad_z, grad_log_det, grad_params, grad_h)
//!         -> Result<DMatrix<T>, Error> {
//!         self.0.forward_and_log_det_backward_given(z0, h, grad_z, grad_log_det, grad_params, grad_h)
//!     }
//! }
//! ```
//!
//! An IAF's forward (sampling) direction is its parallel one, so the
//! posterior's sampling pass and its gradient cost one conditioner pass per
//! step.

use nalgebra::{DMatrix, DVector};
use normflow::bijector::{Bijector, Differentiable};
use normflow::{Error, Flow, FlowSpec, Parameters, Real};

/// A trainable map `z = f(z₀; h)` of the latent dimension `L`, given a
/// `C`-dimensional context `h` per sample (see the module documentation).
///
/// Batches are one column per sample: `z₀` is `L × n`, `h` is `C × n`.
pub trait PosteriorFlow<T: Real> {
    /// A short description for reports (e.g. `"diagonal Gaussian"`).
    fn name(&self) -> String;

    /// The context dimension `C` the flow reads, or `None` if it ignores
    /// the context (and so accepts any). The encoder produces `C` context
    /// outputs per image.
    fn context_dim(&self) -> Option<usize>;

    /// Number of trainable parameters.
    fn num_params(&self) -> usize;

    /// The flat parameter vector (a copy).
    fn params_to_vec(&self) -> Vec<T>;

    /// Overwrites the flat parameter vector; errors on a wrong length.
    fn set_params(&mut self, values: &[T]) -> Result<(), Error>;

    /// `(z, log|det ∂z/∂z₀|)` for a batch `z₀` (`L × n`) with contexts `h`
    /// (`C × n`); the log-determinant has one entry per sample.
    fn forward_and_log_det(&self, z0: &DMatrix<T>, h: &DMatrix<T>) -> (DMatrix<T>, DVector<T>);

    /// Reverse mode of [`forward_and_log_det`](PosteriorFlow::forward_and_log_det)
    /// at `(z₀, h)`: given the cotangents `∂L/∂z` (`L × n`) and `∂L/∂log|det|`
    /// (`n`), **adds** `∂L/∂θ` into `grad_params` and `∂L/∂h` into
    /// `grad_context` (`C × n`), and returns `∂L/∂z₀`.
    fn forward_and_log_det_backward(
        &self,
        z0: &DMatrix<T>,
        h: &DMatrix<T>,
        grad_z: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error>;
}

/// No flow: `z = z₀`, log-determinant 0. The posterior is the encoder's
/// diagonal Gaussian. It ignores the context (whose encoder outputs then get
/// a zero gradient) and has no parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiagonalGaussian;

impl<T: Real> PosteriorFlow<T> for DiagonalGaussian {
    fn name(&self) -> String {
        "diagonal Gaussian".into()
    }

    fn context_dim(&self) -> Option<usize> {
        None
    }

    fn num_params(&self) -> usize {
        0
    }

    fn params_to_vec(&self) -> Vec<T> {
        Vec::new()
    }

    fn set_params(&mut self, values: &[T]) -> Result<(), Error> {
        if values.is_empty() {
            Ok(())
        } else {
            Err(Error::DimensionMismatch {
                context: "DiagonalGaussian::set_params".into(),
                argument: "values".into(),
                expected: 0,
                got: values.len(),
            })
        }
    }

    fn forward_and_log_det(&self, z0: &DMatrix<T>, _h: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        (z0.clone(), DVector::zeros(z0.ncols()))
    }

    fn forward_and_log_det_backward(
        &self,
        _z0: &DMatrix<T>,
        _h: &DMatrix<T>,
        grad_z: &DMatrix<T>,
        _grad_log_det: &DVector<T>,
        _grad_params: &mut [T],
        _grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        Ok(grad_z.clone())
    }
}

/// A small context-dependent flow for the tests: the element-wise affine map
/// `z = z₀ ⊙ s + t` with `s = softplus(A h + a) + 10⁻³`, `t = B h + b`.
/// It has a non-zero log-determinant `Σ log s` that depends on the context,
/// so a test through it sees every path a conditional IAF uses: the
/// cotangent of `z₀`, of the log-determinant, of the parameters and of the
/// context.
#[cfg(test)]
#[derive(Debug, Clone)]
pub struct ContextAffine {
    latent: usize,
    context: usize,
    /// `A` (`L × C`, column-major), `a` (`L`), `B` (`L × C`), `b` (`L`).
    params: Vec<f64>,
}

#[cfg(test)]
impl ContextAffine {
    /// Parameters from a deterministic sequence in `[−0.5, 0.5]`.
    pub fn new(latent: usize, context: usize) -> Self {
        let n = 2 * latent * (context + 1);
        let params = (0..n)
            .map(|k| (k as f64 * 0.618_033_988_7).fract() - 0.5)
            .collect();
        Self {
            latent,
            context,
            params,
        }
    }

    fn parts(&self) -> (DMatrix<f64>, DVector<f64>, DMatrix<f64>, DVector<f64>) {
        let (l, c) = (self.latent, self.context);
        let p = &self.params;
        let a = DMatrix::from_column_slice(l, c, &p[..l * c]);
        let a0 = DVector::from_column_slice(&p[l * c..l * c + l]);
        let off = l * c + l;
        let b = DMatrix::from_column_slice(l, c, &p[off..off + l * c]);
        let b0 = DVector::from_column_slice(&p[off + l * c..]);
        (a, a0, b, b0)
    }

    /// Pre-activations `A h + a` and shifts `B h + b`.
    fn conditioner(&self, h: &DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>) {
        let (a, a0, b, b0) = self.parts();
        let mut pre = &a * h;
        let mut t = &b * h;
        for j in 0..h.ncols() {
            let mut c = pre.column_mut(j);
            c += &a0;
            let mut c = t.column_mut(j);
            c += &b0;
        }
        (pre, t)
    }
}

#[cfg(test)]
impl PosteriorFlow<f64> for ContextAffine {
    fn name(&self) -> String {
        "context affine (test)".into()
    }

    fn context_dim(&self) -> Option<usize> {
        Some(self.context)
    }

    fn num_params(&self) -> usize {
        self.params.len()
    }

    fn params_to_vec(&self) -> Vec<f64> {
        self.params.clone()
    }

    fn set_params(&mut self, values: &[f64]) -> Result<(), Error> {
        assert_eq!(values.len(), self.params.len());
        self.params.copy_from_slice(values);
        Ok(())
    }

    fn forward_and_log_det(
        &self,
        z0: &DMatrix<f64>,
        h: &DMatrix<f64>,
    ) -> (DMatrix<f64>, DVector<f64>) {
        let (pre, t) = self.conditioner(h);
        let s = pre.map(|v| v.softplus() + 1e-3);
        let z = z0.component_mul(&s) + t;
        let ld = DVector::from_fn(z0.ncols(), |j, _| s.column(j).iter().map(|v| v.ln()).sum());
        (z, ld)
    }

    fn forward_and_log_det_backward(
        &self,
        z0: &DMatrix<f64>,
        h: &DMatrix<f64>,
        grad_z: &DMatrix<f64>,
        grad_log_det: &DVector<f64>,
        grad_params: &mut [f64],
        grad_context: &mut DMatrix<f64>,
    ) -> Result<DMatrix<f64>, Error> {
        let (l, c) = (self.latent, self.context);
        let (pre, _) = self.conditioner(h);
        let s = pre.map(|v| v.softplus() + 1e-3);
        // ∂L/∂s = g_z ⊙ z₀ + g_ld / s;  ∂L/∂pre = ∂L/∂s ⊙ sigmoid(pre).
        let mut g_pre = grad_z.component_mul(z0);
        for j in 0..z0.ncols() {
            for i in 0..l {
                g_pre[(i, j)] =
                    (g_pre[(i, j)] + grad_log_det[j] / s[(i, j)]) * pre[(i, j)].sigmoid();
            }
        }
        let g_t = grad_z;
        let (a, _, b, _) = self.parts();
        let ga = &g_pre * h.transpose();
        let gb = g_t * h.transpose();
        let off = l * c + l;
        for k in 0..l * c {
            grad_params[k] += ga[k];
            grad_params[off + k] += gb[k];
        }
        for i in 0..l {
            grad_params[l * c + i] += g_pre.row(i).sum();
            grad_params[off + l * c + i] += g_t.row(i).sum();
        }
        *grad_context += a.transpose() * &g_pre + b.transpose() * g_t;
        Ok(grad_z.component_mul(&s))
    }
}

/// A conditional flow of the library as the posterior stage: with the DSL
/// text `iaf(2, hidden = 64)` it is the stack of conditional IAF steps of
/// Kingma et al. (2016) whose MADEs read the encoder's context `h` (as an
/// input of degree 0, so each step stays autoregressive in `z`). An IAF's
/// forward (sampling) direction is its one-pass direction, so both the
/// posterior sample and its gradient cost one MADE pass per step.
#[derive(Debug, Clone)]
pub struct ConditionalPosterior<T: Real> {
    flow: Flow<T>,
    spec: String,
}

impl<T: Real> ConditionalPosterior<T> {
    /// Builds `spec` (DSL text) as a conditional flow over `latent`
    /// dimensions with a `context`-dimensional context.
    pub fn new(
        spec: &str,
        latent: usize,
        context: usize,
        rng: &mut dyn rand::Rng,
    ) -> Result<Self, Error> {
        let parsed = FlowSpec::parse(spec)?;
        let flow = parsed.build_conditional::<T>(latent, context, rng)?;
        Ok(Self {
            flow,
            spec: parsed.to_string(),
        })
    }
}

impl<T: Real> PosteriorFlow<T> for ConditionalPosterior<T> {
    fn name(&self) -> String {
        format!("diagonal Gaussian + conditional `{}`", self.spec)
    }

    fn context_dim(&self) -> Option<usize> {
        Some(self.flow.context_dim())
    }

    fn num_params(&self) -> usize {
        Parameters::num_params(&self.flow)
    }

    fn params_to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.num_params());
        self.flow.visit_params(&mut |s| out.extend_from_slice(s));
        out
    }

    fn set_params(&mut self, values: &[T]) -> Result<(), Error> {
        let n = self.num_params();
        if values.len() != n {
            return Err(Error::DimensionMismatch {
                context: "ConditionalPosterior::set_params".into(),
                argument: "values".into(),
                expected: n,
                got: values.len(),
            });
        }
        let mut off = 0;
        self.flow.visit_params_mut(&mut |s| {
            s.copy_from_slice(&values[off..off + s.len()]);
            off += s.len();
        });
        self.flow.params_changed();
        Ok(())
    }

    fn forward_and_log_det(&self, z0: &DMatrix<T>, h: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.flow.forward_and_log_det_given(z0, h)
    }

    fn forward_and_log_det_backward(
        &self,
        z0: &DMatrix<T>,
        h: &DMatrix<T>,
        grad_z: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        self.flow.forward_and_log_det_backward_given(
            z0,
            h,
            grad_z,
            grad_log_det,
            grad_params,
            grad_context,
        )
    }
}
