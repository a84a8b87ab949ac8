//! The deep sigmoidal flow transformer of the neural autoregressive flow.

use serde::{Deserialize, Serialize};

use super::Transformer;
use crate::Real;
use crate::bijector::root::{Eval, safeguarded_newton};
use crate::nn::positive_scale_with_derivative;

/// The deep sigmoidal flow (DSF) of Huang, Krueger, Lacoste & Courville
/// (2018), *Neural Autoregressive Flows* (ICML): one hidden layer of
/// `K` sigmoid units per coordinate. In the density direction (data → base)
///
/// ```text
/// u = σ⁻¹( Σₖ wₖ σ(aₖ x + bₖ) ),   aₖ > 0,  wₖ > 0,  Σₖ wₖ = 1,
/// ```
///
/// a strictly increasing map of `R` onto `R`; the sample direction is its
/// inverse, found by root finding. `3K` raw parameters per coordinate, in
/// this order: `ãₖ` (parameters `0..K`), `b̃ₖ` (`K..2K`) and `w̃ₖ`
/// (`2K..3K`), with
///
/// - `aₖ = `[`positive_scale`](crate::nn::positive_scale)`(ãₖ)` (softplus
///   with a floor of `1e-3`, equal to 1 at `ãₖ = 0`),
/// - `bₖ = b̃ₖ + βₖ` with fixed offsets `βₖ = k/(K − 1) − ½` spread evenly
///   over `[−½, ½]` (`β = 0` for `K = 1`),
/// - `w = softmax(w̃)`.
///
/// The offsets only shift what the conditioner's outputs mean (the family of
/// maps is the paper's); they break the symmetry between the units. A
/// conditioner whose last layer starts at zero (`identity_init`) gives every
/// unit the same raw parameters, and units with the same parameters get the
/// same gradients forever, so the layer would stay one sigmoid (an affine
/// map) however long it trains.
///
/// **A fresh layer.** With all raw parameters 0 the map is
/// `u = σ⁻¹(mean σ(x + βₖ))`: odd, monotone, not the identity (a sum of
/// distinct sigmoids is never a sigmoid) but close to it: `|u − x|` is at
/// most 0.13 for `K = 2`, 0.07 for `K = 4`, 0.054 for `K = 8` (the default),
/// the slope at 0 is between 0.94 and 1, and `u − x` tends to a constant
/// (of that size) in both tails.
///
/// **Tails.** For `x → ±∞` the unit with the smallest `aₖ` dominates both
/// `1 − s` and `s` (`s = Σ wₖ σ(zₖ)`), so `u ≈ a_min x + const`: the map is
/// asymptotically affine with slope `a_min ≥ 1e-3` at both ends, onto `R`,
/// and `log du/dx → log a_min`. There is no bound and no identity tail (as
/// the splines have): every finite `x` has a finite `u` and a finite
/// log-derivative, computed as below without saturating.
///
/// **Numerics.** Everything is in log space: with `zₖ = aₖ x + bₖ`,
/// `log wₖ = w̃ₖ − logsumexp(w̃)`, `log σ(z) = −softplus(−z)`,
///
/// ```text
/// log s       = logsumexp_k(log wₖ + log σ(zₖ))
/// log(1 − s)  = logsumexp_k(log wₖ + log σ(−zₖ))       (no cancellation)
/// u           = log s − log(1 − s)
/// log du/dx   = logsumexp_k(log wₖ + log aₖ + log σ(zₖ) + log σ(−zₖ)) − log s − log(1 − s)
/// ```
///
/// so no `1 − s` is ever formed and no probability is clamped.
///
/// **Sample direction.** `u(x)` lies between `minₖ zₖ` and `maxₖ zₖ` (`σ⁻¹`
/// of a convex combination of `σ(zₖ)`), so the root of `u(x) = t` lies in
/// the bracket `[minₖ (t − bₖ)/aₖ, maxₖ (t − bₖ)/aₖ]`, known without a
/// search (a bracket found by doubling steps would cost evaluations and be
/// no tighter). The root is found by Newton's method safeguarded by
/// bisection (Numerical Recipes' `rtsafe`: a Newton step that would leave
/// the bracket, or does not shrink fast enough, is replaced by bisection),
/// from the start `(t − Σ wₖ bₖ)/Σ wₖ aₖ`, until the step is below
/// `4ε(1 + |x|)`, the residual is at the rounding level of `u`, or no float
/// lies inside the bracket; at most 200 iterations (5 to 10 evaluations of
/// the units in practice). Should rounding put the root just outside the
/// bracket, the iteration ends at its nearer end, within the rounding of
/// `u` divided by `du/dx` of the root, the accuracy any method has there.
/// The result is accurate to `1e-12 (1 + |x|)` in `f64` and `1e-6 (1 + |x|)`
/// in `f32` (usually to a few ulps) wherever the map is well conditioned;
/// on a near-flat stretch (`du/dx` small, between saturated units) the error
/// is the rounding of `u` divided by `du/dx`. Its log-derivative is
/// `−log du/dx` at the root.
///
/// **Backward passes** (derived by hand). With the responsibilities
/// `pₖ = wₖσ(zₖ)/s`, `qₖ = wₖσ(−zₖ)/(1 − s)` and
/// `rₖ = wₖaₖσ(zₖ)σ(−zₖ)/N` (`N = Σ wₖaₖσ(zₖ)σ(−zₖ)`), each summing to 1
/// and each computed from the log-space sums, and `ℓ = log du/dx`:
///
/// ```text
/// ∂u/∂zₖ = pₖσ(−zₖ) + qₖσ(zₖ)          ∂ℓ/∂zₖ = rₖ(σ(−zₖ) − σ(zₖ)) − pₖσ(−zₖ) + qₖσ(zₖ)
/// ∂u/∂x  = Σ aₖ ∂u/∂zₖ                 ∂ℓ/∂x  = Σ aₖ ∂ℓ/∂zₖ
/// ∂u/∂bₖ = ∂u/∂zₖ                      ∂ℓ/∂bₖ = ∂ℓ/∂zₖ
/// ∂u/∂aₖ = x ∂u/∂zₖ                    ∂ℓ/∂aₖ = x ∂ℓ/∂zₖ + rₖ/aₖ
/// ∂u/∂w̃ₖ = pₖ − qₖ                     ∂ℓ/∂w̃ₖ = rₖ − pₖ − qₖ + wₖ
/// ```
///
/// (from `∂log s/∂zₖ = pₖσ(−zₖ)`, `∂log(1 − s)/∂zₖ = −qₖσ(zₖ)`,
/// `∂log N/∂zₖ = rₖ(σ(−zₖ) − σ(zₖ))`; the log-weights' gradients `gₖ` go
/// through the log-softmax as `gₖ − wₖ Σⱼ gⱼ`, with `Σ(p − q) = 0` and
/// `Σ(r − p − q) = −1`), then `∂ãₖ = ∂aₖ · dpositive_scale/dã`. The sample
/// direction `x(t, θ)` is differentiated by the implicit-function theorem:
/// `∂x/∂t = 1/u′(x)`, `∂x/∂θ = −(∂u/∂θ)/u′(x)`, and its log-derivative
/// `−ℓ(x(t, θ), θ)` through `x`: with cotangents `ḡₓ` and `ḡ_ℓ` of the
/// outputs and `G = (ḡₓ − ḡ_ℓ ∂ℓ/∂x)/u′`, `∂L/∂t = G` and
/// `∂L/∂θ = −G ∂u/∂θ − ḡ_ℓ ∂ℓ/∂θ`.
///
/// ```
/// use normflow::bijector::transformer::{DeepSigmoidal, Transformer};
///
/// let dsf = DeepSigmoidal { units: 4 };
/// let theta = [0.3_f64, -0.2, 0.5, 1.0, 0.1, -0.4, 0.0, 2.0, 0.0, -1.0, 0.5, 0.2];
/// let (u, ld) = dsf.density_one(0.7, &theta);
/// let (x, ld_back) = dsf.sample_one(u, &theta);
/// assert!((x - 0.7).abs() < 1e-12 && (ld + ld_back).abs() < 1e-12);
/// // Far in the tails: finite, and asymptotically affine.
/// let (far, far_ld) = dsf.density_one(1e8, &theta);
/// assert!(far.is_finite() && far_ld.is_finite());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepSigmoidal {
    /// Number of sigmoid units `K` per coordinate (at least 1).
    pub units: usize,
}

impl DeepSigmoidal {
    /// The DSL's default number of units.
    pub const DEFAULT_UNITS: usize = 8;
}

impl Default for DeepSigmoidal {
    fn default() -> Self {
        DeepSigmoidal {
            units: Self::DEFAULT_UNITS,
        }
    }
}

/// At most this many iterations of the root finder.
const MAX_ITERATIONS: usize = 200;

/// The fixed offset `βₖ` of unit `k` of `units`, evenly over `[−½, ½]`.
#[inline]
fn offset<T: Real>(k: usize, units: usize) -> T {
    if units == 1 {
        T::zero()
    } else {
        T::lit(k as f64 / (units - 1) as f64 - 0.5)
    }
}

/// A running log-sum-exp (`−∞` terms are skipped).
#[derive(Clone, Copy)]
struct LogSumExp<T> {
    max: T,
    sum: T,
}

impl<T: Real> LogSumExp<T> {
    fn new() -> Self {
        LogSumExp {
            max: T::neg_infinity(),
            sum: T::zero(),
        }
    }

    #[inline]
    fn push(&mut self, v: T) {
        if v > self.max {
            self.sum = self.sum * (self.max - v).exp() + T::one();
            self.max = v;
        } else if v > T::neg_infinity() {
            self.sum += (v - self.max).exp();
        }
    }

    fn value(self) -> T {
        self.max + self.sum.ln()
    }
}

/// `(log σ(z), log σ(−z), σ(z), σ(−z))` from one exponential.
#[inline]
fn sigmoids<T: Real>(z: T) -> (T, T, T, T) {
    let e = (-z.abs()).exp();
    let l = e.ln_1p();
    let log_pos = -((-z).max(T::zero()) + l);
    let log_neg = -(z.max(T::zero()) + l);
    let big = T::one() / (T::one() + e);
    let small = e / (T::one() + e);
    if z >= T::zero() {
        (log_pos, log_neg, big, small)
    } else {
        (log_pos, log_neg, small, big)
    }
}

/// One unit's constrained parameters.
#[derive(Clone, Copy)]
struct Unit<T> {
    a: T,
    log_a: T,
    /// `da/dã`.
    da: T,
    b: T,
    log_w: T,
}

/// The units of one coordinate, from its raw parameters.
fn units<T: Real>(k: usize, theta: &[T]) -> impl Iterator<Item = Unit<T>> + '_ {
    let mut lse = LogSumExp::new();
    for v in &theta[2 * k..3 * k] {
        lse.push(*v);
    }
    let lse_w = lse.value();
    (0..k).map(move |j| {
        let (a, log_a, da) = positive_scale_with_derivative(theta[j]);
        Unit {
            a,
            log_a,
            da,
            b: theta[k + j] + offset::<T>(j, k),
            log_w: theta[2 * k + j] - lse_w,
        }
    })
}

/// The log-space sums of one coordinate at `x`.
#[derive(Clone, Copy)]
struct Sums<T> {
    /// `log s`.
    log_s: T,
    /// `log(1 − s)`.
    log_c: T,
    /// `log N`.
    log_n: T,
    /// `maxₖ |zₖ|`, for the rounding level of `u`.
    z_max: T,
}

impl<T: Real> Sums<T> {
    fn at(x: T, units: impl Iterator<Item = Unit<T>>) -> Self {
        let (mut s, mut c, mut n) = (LogSumExp::new(), LogSumExp::new(), LogSumExp::new());
        let mut z_max = T::zero();
        for un in units {
            let z = un.a * x + un.b;
            let (log_pos, log_neg, _, _) = sigmoids(z);
            s.push(un.log_w + log_pos);
            c.push(un.log_w + log_neg);
            n.push(un.log_w + un.log_a + log_pos + log_neg);
            z_max = z_max.max(z.abs());
        }
        Sums {
            log_s: s.value(),
            log_c: c.value(),
            log_n: n.value(),
            z_max,
        }
    }

    fn u(&self) -> T {
        self.log_s - self.log_c
    }

    fn log_derivative(&self) -> T {
        self.log_n - self.log_s - self.log_c
    }
}

/// `(∂u/∂x, ∂ℓ/∂x)` at `x`, adding `c_u ∂u/∂θ + c_ld ∂ℓ/∂θ` into `g` (the
/// `3K` raw-parameter gradients of the coordinate) when it is given (the
/// table in the docs of [`DeepSigmoidal`]).
fn partials<T: Real>(
    x: T,
    units: impl Iterator<Item = Unit<T>>,
    sums: &Sums<T>,
    mut coefficients: Option<(T, T, &mut [T])>,
) -> (T, T) {
    let (mut du_dx, mut dld_dx) = (T::zero(), T::zero());
    for (j, un) in units.enumerate() {
        let z = un.a * x + un.b;
        let (log_pos, log_neg, pos, neg) = sigmoids(z);
        let p = (un.log_w + log_pos - sums.log_s).exp();
        let q = (un.log_w + log_neg - sums.log_c).exp();
        let r = (un.log_w + un.log_a + log_pos + log_neg - sums.log_n).exp();
        let du_dz = p * neg + q * pos;
        let dld_dz = r * (neg - pos) - p * neg + q * pos;
        du_dx += un.a * du_dz;
        dld_dx += un.a * dld_dz;
        if let Some((c_u, c_ld, g)) = coefficients.as_mut() {
            let (c_u, c_ld, k) = (*c_u, *c_ld, g.len() / 3);
            let g_z = c_u * du_dz + c_ld * dld_dz;
            g[j] += (g_z * x + c_ld * r / un.a) * un.da;
            g[k + j] += g_z;
            g[2 * k + j] += c_u * (p - q) + c_ld * (r - p - q + un.log_w.exp());
        }
    }
    (du_dx, dld_dx)
}

/// The root `x` of `u(x) = t` for the units `us` (see the docs of
/// [`DeepSigmoidal`]).
fn solve<T: Real>(t: T, us: &[Unit<T>]) -> T {
    if !t.is_finite() {
        return t;
    }
    // u(x) lies between minₖ zₖ and maxₖ zₖ, so the root lies between the
    // roots of the units' own zₖ = t.
    let (mut lo, mut hi) = (T::infinity(), T::neg_infinity());
    let (mut mean_a, mut mean_b) = (T::zero(), T::zero());
    for un in us {
        let root = (t - un.b) / un.a;
        lo = lo.min(root);
        hi = hi.max(root);
        let w = un.log_w.exp();
        mean_a += w * un.a;
        mean_b += w * un.b;
    }
    let start = (t - mean_b) / mean_a;
    if lo >= hi || !(hi - lo).is_finite() {
        // One unit (u is affine), or units that coincide: exact.
        return if lo.is_finite() { lo } else { start };
    }
    let (eps, four) = (T::machine_epsilon(), T::lit(4.0));
    safeguarded_newton(
        lo,
        hi,
        start,
        MAX_ITERATIONS,
        |next| four * eps * (T::one() + next.abs()),
        |x| {
            let s = Sums::at(x, us.iter().copied());
            Eval {
                value: s.u() - t,
                slope: s.log_derivative().exp(),
                // The rounding level of u.
                noise: four * eps * (T::one() + s.log_s.abs() + s.log_c.abs() + s.z_max),
            }
        },
    )
}

impl<T: Real> Transformer<T> for DeepSigmoidal {
    const NAME: &'static str = "deep_sigmoidal";
    const COUPLING_NAME: &'static str = "DeepSigmoidalCoupling";
    const AUTOREGRESSIVE_NAME: &'static str = "NeuralAutoregressive";
    const SEQUENTIAL: &'static str = "the sampling direction of a neural autoregressive flow takes D \
         sequential MADE passes, each with a root finding, and has no backward pass; train \
         through the density direction (data → base, one MADE pass, as maximum likelihood \
         does), or wrap the layer in `Invert` so that sampling is the one-pass direction";

    fn params_per_coord(&self) -> usize {
        3 * self.units
    }

    fn validate(&self, context: &str) -> Result<(), crate::Error> {
        crate::error::check::dim_at_least_one(context, "units", self.units)
    }

    #[inline]
    fn density_one(&self, x: T, theta: &[T]) -> (T, T) {
        let s = Sums::at(x, units(self.units, theta));
        (s.u(), s.log_derivative())
    }

    fn sample_one(&self, u: T, theta: &[T]) -> (T, T) {
        let us: Vec<Unit<T>> = units(self.units, theta).collect();
        let x = solve(u, &us);
        (x, -Sums::at(x, us.iter().copied()).log_derivative())
    }

    fn density_one_backward(&self, x: T, theta: &[T], g_u: T, g_ld: T, g_theta: &mut [T]) -> T {
        let s = Sums::at(x, units(self.units, theta));
        let g = Some((g_u, g_ld, g_theta));
        let (du_dx, dld_dx) = partials(x, units(self.units, theta), &s, g);
        g_u * du_dx + g_ld * dld_dx
    }

    fn sample_one_backward(&self, u: T, theta: &[T], g_x: T, g_ld: T, g_theta: &mut [T]) -> T {
        let us: Vec<Unit<T>> = units(self.units, theta).collect();
        let x = solve(u, &us);
        let s = Sums::at(x, us.iter().copied());
        let (du_dx, dld_dx) = partials(x, us.iter().copied(), &s, None);
        // The implicit-function theorem (see the type's docs).
        let g = (g_x - g_ld * dld_dx) / du_dx;
        partials(x, us.iter().copied(), &s, Some((-g, -g_ld, g_theta)));
        g
    }
}
