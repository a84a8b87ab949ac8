//! The von Mises distribution on the circle `[−π, π)`: its density (with a
//! stable `log I₀`), the mean resultant length `I₁(κ)/I₀(κ)` and an exact
//! sampler (Best & Fisher 1979).

use std::f64::consts::PI;

use rand::{Rng, RngExt};

/// `log I_ν(κ)` and the needed pieces for `ν ∈ {0, 1}`, `κ ≥ 0`: the power
/// series below `κ = 20` (its largest term is below `e²⁰`, and 60 terms
/// reach the last bit), and above it the asymptotic series
/// `I_ν(κ) ≈ e^κ/√(2πκ) Σₙ (−1)ⁿ Πⱼ₌₁ⁿ (4ν² − (2j − 1)²) / (n! (8κ)ⁿ)`
/// (Abramowitz & Stegun 9.7.1), summed while its terms shrink (at `κ = 20`
/// the 15th term is below `10⁻¹³`).
fn log_bessel_i(nu: u32, kappa: f64) -> f64 {
    debug_assert!(nu <= 1 && kappa >= 0.0);
    if kappa < 20.0 {
        // Σₘ (κ/2)^{2m+ν} / (m! (m+ν)!), in terms of the first term.
        let q = 0.25 * kappa * kappa;
        let (mut term, mut sum) = (1.0, 1.0);
        for m in 1..200 {
            term *= q / (m as f64 * (m + nu as usize) as f64);
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
        }
        let first = if nu == 0 {
            0.0
        } else if kappa > 0.0 {
            (0.5 * kappa).ln()
        } else {
            return f64::NEG_INFINITY;
        };
        return first + sum.ln();
    }
    let mu = 4.0 * (nu * nu) as f64;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for n in 1..40 {
        let j = (2 * n - 1) as f64;
        let next = -term * (mu - j * j) / (n as f64 * 8.0 * kappa);
        if next.abs() >= term.abs() {
            break;
        }
        term = next;
        sum += term;
        if term.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    kappa - 0.5 * (2.0 * PI * kappa).ln() + sum.ln()
}

/// `log I₀(κ)`, the logarithm of the modified Bessel function of the first
/// kind of order 0, for `κ ≥ 0`, to about 1e-15 relative accuracy and
/// without overflow for any finite `κ` (`log I₀(κ) ≈ κ − ½ log(2πκ)` for
/// large `κ`).
///
/// ```
/// use normflow::data::log_bessel_i0;
/// assert_eq!(log_bessel_i0(0.0), 0.0);
/// // I₀(1) = 1.2660658777520082 (Abramowitz & Stegun table 9.8).
/// assert!((log_bessel_i0(1.0) - 1.2660658777520082_f64.ln()).abs() < 1e-15);
/// assert!(log_bessel_i0(1e6).is_finite());
/// ```
pub fn log_bessel_i0(kappa: f64) -> f64 {
    log_bessel_i(0, kappa)
}

/// The mean resultant length `A(κ) = I₁(κ)/I₀(κ)` of a von Mises
/// distribution: `E[cos(x − μ)]` (0 at `κ = 0`, → 1 as `κ` grows).
///
/// ```
/// // I₁(1)/I₀(1) = 0.5651591039924851/1.2660658777520082 (A&S table 9.8).
/// let a = normflow::data::mean_resultant_length(1.0);
/// assert!((a - 0.5651591039924851 / 1.2660658777520082).abs() < 1e-15);
/// ```
pub fn mean_resultant_length(kappa: f64) -> f64 {
    if kappa <= 0.0 {
        return 0.0;
    }
    (log_bessel_i(1, kappa) - log_bessel_i(0, kappa)).exp()
}

/// `x` wrapped onto `[−π, π)`.
pub(crate) fn wrap_angle(x: f64) -> f64 {
    let v = (x + PI).rem_euclid(2.0 * PI) - PI;
    // `rem_euclid` may round up to 2π itself.
    if v >= PI { v - 2.0 * PI } else { v }
}

/// The von Mises distribution on the circle `[−π, π)`, mean direction `μ`
/// and concentration `κ ≥ 0`: `p(x) = exp(κ cos(x − μ)) / (2π I₀(κ))`
/// (the uniform distribution at `κ = 0`).
///
/// ```
/// use normflow::data::VonMises;
/// use rand::SeedableRng;
/// let vm = VonMises::new(1.0, 4.0);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let x: Vec<f64> = (0..1000).map(|_| vm.sample(&mut rng)).collect();
/// assert!(x.iter().all(|v| (-std::f64::consts::PI..std::f64::consts::PI).contains(v)));
/// assert_eq!(vm.log_prob(4.0), f64::NEG_INFINITY); // outside [−π, π)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VonMises {
    mu: f64,
    kappa: f64,
    /// `log(2π I₀(κ))`.
    log_norm: f64,
}

impl VonMises {
    /// The von Mises distribution of mean direction `mu` (any finite
    /// angle, taken modulo 2π) and concentration `kappa`.
    ///
    /// # Panics
    /// If `mu` is not finite or `kappa` is negative or not finite.
    pub fn new(mu: f64, kappa: f64) -> Self {
        assert!(mu.is_finite(), "VonMises: mu must be finite, got {mu}");
        assert!(
            kappa.is_finite() && kappa >= 0.0,
            "VonMises: kappa must be finite and ≥ 0, got {kappa}"
        );
        Self {
            mu: wrap_angle(mu),
            kappa,
            log_norm: (2.0 * PI).ln() + log_bessel_i0(kappa),
        }
    }

    /// The mean direction `μ`, in `[−π, π)`.
    pub fn mu(&self) -> f64 {
        self.mu
    }

    /// The concentration `κ`.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }

    /// `log p(x)`: `κ cos(x − μ) − log(2π I₀(κ))` for `x ∈ [−π, π)`, `−∞`
    /// elsewhere (NaN included).
    pub fn log_prob(&self, x: f64) -> f64 {
        if (-PI..PI).contains(&x) {
            self.kappa * (x - self.mu).cos() - self.log_norm
        } else {
            f64::NEG_INFINITY
        }
    }

    /// One draw, in `[−π, π)`: the rejection sampler of Best & Fisher (1979,
    /// *Efficient simulation of the von Mises distribution*, Applied
    /// Statistics 28), exact, with acceptance probability above 0.65 for
    /// every `κ`; a uniform angle when `κ < 1e-8`.
    pub fn sample(&self, rng: &mut dyn Rng) -> f64 {
        let k = self.kappa;
        if k < 1e-8 {
            return wrap_angle(2.0 * PI * rng.random::<f64>() - PI);
        }
        let tau = 1.0 + (1.0 + 4.0 * k * k).sqrt();
        let rho = (tau - (2.0 * tau).sqrt()) / (2.0 * k);
        let r = (1.0 + rho * rho) / (2.0 * rho);
        loop {
            let (u1, u2, u3): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
            let z = (PI * u1).cos();
            let f = ((1.0 + r * z) / (r + z)).clamp(-1.0, 1.0);
            let c = k * (r - f);
            if c * (2.0 - c) - u2 > 0.0 || (c / u2).ln() + 1.0 - c >= 0.0 {
                let side = if u3 < 0.5 { -1.0 } else { 1.0 };
                return wrap_angle(self.mu + side * f.acos());
            }
        }
    }
}
