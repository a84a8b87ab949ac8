//! Optimisers over flat parameter vectors, gradient clipping and learning-rate schedules.

use serde::{Deserialize, Serialize};

use crate::{Parameters, Real};

/// Adam (Kingma & Ba 2015) with optional decoupled weight decay (AdamW,
/// Loshchilov & Hutter 2019).
///
/// `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²`,
/// `θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε) − lr · wd · θ`.
///
/// ```
/// use normflow::train::{Adam, Optimizer};
/// // Minimise (θ − 3)²: gradient 2(θ − 3).
/// let mut theta = [0.0_f64];
/// let mut adam = Adam::new(0.1);
/// for _ in 0..500 {
///     let g = [2.0 * (theta[0] - 3.0)];
///     adam.step(&mut theta, &g, 0.1);
/// }
/// assert!((theta[0] - 3.0).abs() < 1e-3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    /// Base learning rate (the schedule multiplies it).
    pub learning_rate: f64,
    /// First-moment decay (default 0.9).
    pub beta1: f64,
    /// Second-moment decay (default 0.999).
    pub beta2: f64,
    /// Denominator offset (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay (default 0).
    pub weight_decay: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: u64,
}

impl Adam {
    /// Adam with the usual defaults and the given learning rate.
    pub fn new(learning_rate: f64) -> Self {
        Self {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The first and second moments `m`, `v` (empty before the first step).
    pub(crate) fn moments(&self) -> (&[f64], &[f64]) {
        (&self.m, &self.v)
    }
}

/// Stochastic gradient descent with (heavy-ball) momentum and optional
/// decoupled weight decay:
/// `b ← μ b + g`, `θ ← θ − lr · b − lr · wd · θ`.
///
/// ```
/// use normflow::train::{Optimizer, Sgd};
/// // One step on the gradient 2: θ = 1 − 0.1 · 2.
/// let mut theta = [1.0_f64];
/// Sgd::new(0.1, 0.9).step(&mut theta, &[2.0], 0.1);
/// assert!((theta[0] - 0.8).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sgd {
    /// Base learning rate.
    pub learning_rate: f64,
    /// Momentum `μ` (0 for plain SGD).
    pub momentum: f64,
    /// Decoupled weight decay (default 0), scaled by the learning rate as
    /// in [`Adam`].
    #[serde(default)]
    pub weight_decay: f64,
    buf: Vec<f64>,
}

impl Sgd {
    /// SGD with the given learning rate and momentum, without weight decay.
    pub fn new(learning_rate: f64, momentum: f64) -> Self {
        Self {
            learning_rate,
            momentum,
            weight_decay: 0.0,
            buf: Vec::new(),
        }
    }

    /// The momentum buffer `b` (empty before the first step).
    pub(crate) fn buffer(&self) -> &[f64] {
        &self.buf
    }
}

/// The optimiser of [`fit`](super::fit), chosen in
/// [`FitOptions::optimizer`](super::FitOptions::optimizer). Both use the
/// options' learning rate, schedule, clipping and decoupled weight decay.
///
/// ```
/// use normflow::train::{FitOptions, OptimizerKind};
/// let sgd = FitOptions::<f64> {
///     optimizer: OptimizerKind::Sgd { momentum: 0.9 },
///     learning_rate: 1e-2,
///     ..Default::default()
/// };
/// assert_eq!(FitOptions::<f64>::default().optimizer, OptimizerKind::Adam);
/// # let _ = sgd;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// [`Adam`] with `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e-8` (the default);
    /// with a positive weight decay it is AdamW (Loshchilov & Hutter 2019).
    #[default]
    Adam,
    /// [`Sgd`] with heavy-ball momentum `μ` in `[0, 1)` (0: plain SGD).
    Sgd {
        /// The momentum `μ`.
        momentum: f64,
    },
}

/// An optimiser over one flat parameter vector (and its gradient, same length).
pub trait Optimizer {
    /// The base learning rate.
    fn learning_rate(&self) -> f64;
    /// One update of `params` by `grads` with learning rate `lr` (the base
    /// rate times the schedule). State is sized on the first call.
    fn step<T: Real>(&mut self, params: &mut [T], grads: &[T], lr: f64);

    /// [`step`](Optimizer::step) applied to the parameter buffers of `model`
    /// where they live (`grads` in [`Parameters::visit_params`] order), then
    /// [`Parameters::params_changed`]. The default copies the parameters
    /// out and back; [`Adam`] and [`Sgd`] update them in place.
    ///
    /// ```
    /// use normflow::train::{Adam, Optimizer};
    /// use normflow::Parameters;
    /// # use rand::SeedableRng;
    /// let spec = normflow::FlowSpec::parse("realnvp(hidden = 4)")?;
    /// let mut flow = spec.build::<f64>(2, &mut rand::rngs::StdRng::seed_from_u64(0))?;
    /// let (mut a, mut b) = (Adam::new(0.01), Adam::new(0.01));
    /// let grads = vec![0.5; flow.num_params()];
    /// let mut flat = flow.params_to_vec();
    /// a.step(&mut flat, &grads, 0.01);
    /// b.step_params(&mut flow, &grads, 0.01);
    /// assert_eq!(flow.params_to_vec(), flat);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    fn step_params<T: Real, P: Parameters<T> + ?Sized>(
        &mut self,
        model: &mut P,
        grads: &[T],
        lr: f64,
    ) {
        let mut params = model.params_to_vec();
        self.step(&mut params, grads, lr);
        model.load_params(&params);
    }
}

/// The parameter buffers of `model` in order, each with its offset in the
/// flat vector, then `params_changed`.
fn for_each_buffer<T: Real, P: Parameters<T> + ?Sized>(
    model: &mut P,
    mut f: impl FnMut(usize, &mut [T]),
) {
    let mut off = 0;
    model.visit_params_mut(&mut |p| {
        f(off, p);
        off += p.len();
    });
    model.params_changed();
}

/// One step's constants of [`Adam`] (bias corrections folded in).
#[derive(Clone, Copy)]
struct AdamStep<T> {
    step: T,
    inv_sqrt_b2t: T,
    eps: T,
    decay: T,
    beta1: f64,
    beta2: f64,
}

impl Adam {
    /// Sizes the state for `n` parameters (restarting if it was sized for
    /// another model), counts the step and returns its constants.
    fn begin<T: Real>(&mut self, n: usize, grads: usize, lr: f64) -> AdamStep<T> {
        if resize_state("Adam::step", n, grads, &mut [&mut self.m, &mut self.v]) {
            self.t = 0;
        }
        self.t = self.t.saturating_add(1);
        let b1t = 1.0 - self.beta1.powi(self.t.min(i32::MAX as u64) as i32);
        let b2t = 1.0 - self.beta2.powi(self.t.min(i32::MAX as u64) as i32);
        // The bias corrections folded into two constants (as PyTorch does):
        // lr·m̂/(√v̂ + ε) = (lr/b1t)·m / (√v·(1/√b2t) + ε). The moments are
        // kept in f64; the square root and the division run in the
        // parameters' precision (f32 for an f32 model: twice the vector width
        // of f64, and these two operations dominate the step).
        AdamStep {
            step: T::lit(lr / b1t),
            inv_sqrt_b2t: T::lit(1.0 / b2t.sqrt()),
            eps: T::lit(self.eps),
            decay: T::lit(lr * self.weight_decay),
            beta1: self.beta1,
            beta2: self.beta2,
        }
    }

    /// The update of the parameters `params` at offset `off` of the flat
    /// vector, whose gradients are `grads`.
    fn update<T: Real>(&mut self, k: AdamStep<T>, off: usize, params: &mut [T], grads: &[T]) {
        let range = off..off + params.len();
        let update = |params: &mut [T], grads: &[T], ms: &mut [f64], vs: &mut [f64]| {
            // Zipped iterators: no bounds checks, so the loop vectorises.
            for (((p, g), m), v) in params.iter_mut().zip(grads).zip(ms).zip(vs) {
                let g = g.to_f64();
                *m = k.beta1 * *m + (1.0 - k.beta1) * g;
                *v = k.beta2 * *v + (1.0 - k.beta2) * g * g;
                let u = k.step * T::lit(*m) / (T::lit(*v).sqrt() * k.inv_sqrt_b2t + k.eps);
                *p = *p - u - k.decay * *p;
            }
        };
        // Large buffers: contiguous parts on several threads (feature
        // `threads`); each parameter's update is independent of the others.
        let parts = crate::parallel::parts_for_len(params.len());
        let chunk = params.len().div_ceil(parts.max(1)).max(1);
        let items: Vec<_> = params
            .chunks_mut(chunk)
            .zip(grads[range.clone()].chunks(chunk))
            .zip(self.m[range.clone()].chunks_mut(chunk))
            .zip(self.v[range].chunks_mut(chunk))
            .collect();
        crate::parallel::for_each_part(items, |(((p, g), m), v)| update(p, g, m, v));
    }
}

impl Optimizer for Adam {
    fn learning_rate(&self) -> f64 {
        self.learning_rate
    }
    fn step<T: Real>(&mut self, params: &mut [T], grads: &[T], lr: f64) {
        let k = self.begin(params.len(), grads.len(), lr);
        self.update(k, 0, params, grads);
    }
    fn step_params<T: Real, P: Parameters<T> + ?Sized>(
        &mut self,
        model: &mut P,
        grads: &[T],
        lr: f64,
    ) {
        let k = self.begin(model.num_params(), grads.len(), lr);
        for_each_buffer(model, |off, p| self.update(k, off, p, grads));
    }
}

impl Sgd {
    /// The update of the parameters `params` at offset `off` of the flat
    /// vector, whose gradients are `grads`.
    fn update<T: Real>(&mut self, off: usize, params: &mut [T], grads: &[T], lr: f64) {
        let decay = lr * self.weight_decay;
        for (i, p) in params.iter_mut().enumerate() {
            let b = &mut self.buf[off + i];
            *b = self.momentum * *b + grads[off + i].to_f64();
            let old = p.to_f64();
            let mut next = old - lr * *b;
            if decay != 0.0 {
                next -= decay * old;
            }
            *p = T::lit(next);
        }
    }
}

impl Optimizer for Sgd {
    fn learning_rate(&self) -> f64 {
        self.learning_rate
    }
    fn step<T: Real>(&mut self, params: &mut [T], grads: &[T], lr: f64) {
        resize_state("Sgd::step", params.len(), grads.len(), &mut [&mut self.buf]);
        self.update(0, params, grads, lr);
    }
    fn step_params<T: Real, P: Parameters<T> + ?Sized>(
        &mut self,
        model: &mut P,
        grads: &[T],
        lr: f64,
    ) {
        let n = model.num_params();
        resize_state("Sgd::step", n, grads.len(), &mut [&mut self.buf]);
        for_each_buffer(model, |off, p| self.update(off, p, grads, lr));
    }
}

/// Checks that there is one gradient per parameter and sizes the
/// optimiser's per-parameter state to them (zeroed) if it is sized for
/// another model; returns whether it was.
///
/// # Panics
/// If the lengths differ.
fn resize_state(caller: &str, params: usize, grads: usize, state: &mut [&mut Vec<f64>]) -> bool {
    assert_eq!(
        params, grads,
        "{caller}: {params} parameters but {grads} gradients"
    );
    let stale = state.iter().any(|s| s.len() != params);
    if stale {
        for s in state.iter_mut() {
            **s = vec![0.0; params];
        }
    }
    stale
}

/// Scales `grads` so that their global Euclidean norm is at most `max_norm`;
/// returns the norm before clipping.
///
/// ```
/// let mut g = [3.0_f64, 4.0];
/// assert_eq!(normflow::train::clip_grad_norm(&mut g, 1.0), 5.0);
/// assert!((g[0] - 0.6).abs() < 1e-15 && (g[1] - 0.8).abs() < 1e-15);
/// ```
pub fn clip_grad_norm<T: Real>(grads: &mut [T], max_norm: f64) -> f64 {
    let norm = grads
        .iter()
        .map(|g| g.to_f64() * g.to_f64())
        .sum::<f64>()
        .sqrt();
    if norm > max_norm && norm.is_finite() && norm > 0.0 {
        let s = T::lit(max_norm / norm);
        for g in grads.iter_mut() {
            *g *= s;
        }
    }
    norm
}

/// A learning-rate schedule: the factor applied to the base rate at a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Schedule {
    /// Always 1.
    #[default]
    Constant,
    /// Cosine decay from 1 to `min_factor` over `total_steps` (Loshchilov & Hutter 2017).
    Cosine {
        /// Steps over which to decay.
        total_steps: u64,
        /// Final factor.
        min_factor: f64,
    },
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Steps between decays.
        every: u64,
        /// Decay factor.
        gamma: f64,
    },
}

impl Schedule {
    /// The factor at (0-based) step `step`.
    ///
    /// ```
    /// use normflow::train::Schedule;
    /// let s = Schedule::Cosine { total_steps: 100, min_factor: 0.0 };
    /// assert_eq!(s.factor(0), 1.0);
    /// assert!((s.factor(50) - 0.5).abs() < 1e-12);
    /// assert!(s.factor(100).abs() < 1e-12);
    /// assert_eq!(Schedule::Step { every: 10, gamma: 0.5 }.factor(25), 0.25);
    /// ```
    pub fn factor(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Cosine {
                total_steps,
                min_factor,
            } => {
                let t = (step as f64 / total_steps.max(1) as f64).min(1.0);
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step { every, gamma } => gamma.powi((step / every.max(1)) as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three steps of Adam, with weight decay, against the update rule
    /// written out as in Kingma & Ba (2015), Algorithm 1, plus the decoupled
    /// decay term of Loshchilov & Hutter (2019).
    #[test]
    fn adam_follows_the_published_update() {
        let grads = [[0.3, -2.0, 0.0], [0.1, -1.5, 4.0], [-0.2, 0.5, 1e-6]];
        let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
        let mut adam = Adam::new(lr);
        adam.weight_decay = wd;
        let mut p64 = [1.0_f64, -0.5, 2.0];
        let mut p32 = [1.0_f32, -0.5, 2.0];
        let mut want = p64;
        let (mut m, mut v) = ([0.0; 3], [0.0; 3]);
        let mut adam32 = adam.clone();
        for (t, g) in grads.iter().enumerate() {
            adam.step(&mut p64, g, lr);
            adam32.step(&mut p32, &g.map(|x| x as f32), lr);
            let t = (t + 1) as i32;
            for i in 0..3 {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mhat = m[i] / (1.0 - b1.powi(t));
                let vhat = v[i] / (1.0 - b2.powi(t));
                want[i] -= lr * mhat / (vhat.sqrt() + eps) + lr * wd * want[i];
            }
            for i in 0..3 {
                assert!(
                    (p64[i] - want[i]).abs() <= 1e-14,
                    "f64 step {t}: {p64:?} vs {want:?}"
                );
                assert!(
                    (f64::from(p32[i]) - want[i]).abs() <= 1e-6,
                    "f32 step {t}: {p32:?} vs {want:?}"
                );
            }
        }
        assert_eq!(adam.steps(), 3);
    }

    /// Three steps of SGD with momentum and decoupled decay against the
    /// update written out: `b ← μ b + g`, `θ ← θ − lr b − lr wd θ`
    /// (heavy ball as in PyTorch's `SGD`, the decay as in AdamW).
    #[test]
    fn sgd_follows_the_heavy_ball_update() {
        let grads = [[0.3, -2.0], [0.1, -1.5], [-0.2, 0.5]];
        let (lr, mu, wd) = (0.05, 0.9, 0.1);
        let mut sgd = Sgd::new(lr, mu);
        sgd.weight_decay = wd;
        let mut p = [1.0_f64, -0.5];
        let (mut want, mut b) = (p, [0.0; 2]);
        for g in &grads {
            sgd.step(&mut p, g, lr);
            for i in 0..2 {
                b[i] = mu * b[i] + g[i];
                want[i] = want[i] - lr * b[i] - lr * wd * want[i];
            }
            assert_eq!(p, want);
        }
        // Without decay, the update is the plain heavy ball.
        let mut plain = Sgd::new(lr, 0.0);
        let mut q = [1.0_f32];
        plain.step(&mut q, &[2.0], lr);
        assert_eq!(q, [(1.0 - lr * 2.0) as f32]);
    }

    #[test]
    fn an_sgd_state_without_decay_still_reads() {
        let v = serde_json::json!({"learning_rate": 0.1, "momentum": 0.5, "buf": [1.0]});
        let sgd: Sgd = serde_json::from_value(v).unwrap();
        assert_eq!((sgd.weight_decay, sgd.buffer()), (0.0, &[1.0][..]));
        assert_eq!(OptimizerKind::default(), OptimizerKind::Adam);
    }

    /// Two buffers of different lengths, visited in order.
    struct TwoBuffers(Vec<f64>, Vec<f64>, usize);

    impl crate::Parameters<f64> for TwoBuffers {
        fn num_params(&self) -> usize {
            self.0.len() + self.1.len()
        }
        fn visit_params(&self, f: &mut dyn FnMut(&[f64])) {
            f(&self.0);
            f(&self.1);
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [f64])) {
            f(&mut self.0);
            f(&mut self.1);
        }
        fn params_changed(&mut self) {
            self.2 += 1;
        }
    }

    /// Updating the buffers in place is the flat update, step after step
    /// (the moments line up with the offsets), and tells the model once.
    #[test]
    fn in_place_steps_equal_flat_steps() {
        let grads = |k: usize| -> Vec<f64> { (0..5).map(|i| ((i + k) as f64).sin()).collect() };
        let start = || TwoBuffers(vec![0.1, -0.2, 0.3], vec![1.0, 2.0], 0);
        for momentum in [0.0, 0.9] {
            let (mut a, mut b) = (Adam::new(0.1), Adam::new(0.1));
            a.weight_decay = 0.01;
            b.weight_decay = 0.01;
            let (mut s, mut t) = (Sgd::new(0.1, momentum), Sgd::new(0.1, momentum));
            let (mut flat_a, mut flat_s) = (start().params_to_vec(), start().params_to_vec());
            let (mut model_a, mut model_s) = (start(), start());
            for k in 0..4 {
                a.step(&mut flat_a, &grads(k), 0.05);
                b.step_params(&mut model_a, &grads(k), 0.05);
                s.step(&mut flat_s, &grads(k), 0.05);
                t.step_params(&mut model_s, &grads(k), 0.05);
            }
            assert_eq!(model_a.params_to_vec(), flat_a);
            assert_eq!(model_s.params_to_vec(), flat_s);
            assert_eq!((model_a.2, model_s.2), (4, 4));
            assert_eq!(a, b);
        }
    }
}
