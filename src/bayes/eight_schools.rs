//! The eight-schools hierarchical model, centred and non-centred.

use std::sync::OnceLock;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::Real;
use crate::train::LogDensity;

/// The estimated coaching effects `y_j` of the eight schools (Rubin 1981;
/// Gelman et al., *Bayesian Data Analysis*, 3rd ed., table 5.2).
pub const EIGHT_SCHOOLS_Y: [f64; 8] = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0];

/// The standard errors `σ_j` of the effects [`EIGHT_SCHOOLS_Y`].
pub const EIGHT_SCHOOLS_SIGMA: [f64; 8] = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0];

/// The number of schools `J`.
const J: usize = 8;

/// How the school effects are coordinatised in [`EightSchools`].
///
/// ```
/// use normflow::bayes::Parametrization;
/// let p: Parametrization = serde_json::from_str("\"non_centered\"").unwrap();
/// assert_eq!(p, Parametrization::NonCentered);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parametrization {
    /// The effects themselves: coordinates `(μ, log τ, θ₁, …, θ₈)` with
    /// `θ_j ~ N(μ, τ²)`. A funnel in `(log τ, θ)` where the data are weak.
    Centered,
    /// Standardised effects: coordinates `(μ, log τ, θ̃₁, …, θ̃₈)` with
    /// `θ̃_j ~ N(0, 1)` and `θ_j = μ + τ θ̃_j`. Nearly Gaussian where the
    /// data are weak, as here.
    NonCentered,
}

/// The eight-schools model (Rubin 1981, "Estimation in parallel randomized
/// experiments", *Journal of Educational Statistics* 6(4), 377–401; Gelman
/// et al., *Bayesian Data Analysis*, 3rd ed., §5.5): the effects of coaching
/// programmes on SAT scores in eight schools, partially pooled.
///
/// ```text
/// μ ~ N(0, 5²)          τ ~ Half-Cauchy(0, 5)
/// θ_j | μ, τ ~ N(μ, τ²)  y_j | θ_j ~ N(θ_j, σ_j²)   (j = 1, …, 8)
/// ```
///
/// with `y` = [`EIGHT_SCHOOLS_Y`] and `σ` = [`EIGHT_SCHOOLS_SIGMA`]. These
/// priors are not those of BDA (which takes a uniform prior on `(μ, τ)`) but
/// the proper ones of the common PyMC, Stan, Pyro and NumPyro examples of
/// the model.
///
/// The target is the posterior on the unconstrained `R¹⁰`, in the
/// coordinates of the [`Parametrization`]: `(μ, log τ, θ₁, …, θ₈)` or
/// `(μ, log τ, θ̃₁, …, θ̃₈)`. Its log-density is the log joint density of
/// the parameters and `y`, with every normalising constant and the
/// log-Jacobian `log τ` of `τ = exp(log τ)`, so that it integrates to the
/// marginal likelihood `p(y)` ([`log_normalizer`](Self::log_normalizer)) in
/// both parametrisations. The two differ by the log-Jacobian of
/// `θ̃ ↦ θ = μ + τ θ̃`: `log p_nc(μ, log τ, θ̃) = log p_c(μ, log τ, θ) + 8 log τ`.
/// Gradients are written out by hand and evaluated in `f64`.
///
/// [`to_constrained`](Self::to_constrained) maps a point of either to
/// `(μ, τ, θ₁, …, θ₈)`, so that draws of the two can be compared.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::bayes::{EightSchools, Parametrization};
/// use normflow::train::LogDensity;
///
/// let centered = EightSchools::new(Parametrization::Centered);
/// let non_centered = EightSchools::new(Parametrization::NonCentered);
/// assert_eq!(LogDensity::<f64>::dim(&centered), 10);
///
/// // The same (μ, τ, θ) in both coordinate systems.
/// let (mu, log_tau) = (4.0, 1.0);
/// let theta_tilde = [0.5, 0.1, -0.3, 0.0, -0.4, -0.2, 0.6, 0.2];
/// let mut x_nc = vec![mu, log_tau];
/// x_nc.extend(theta_tilde);
/// let c = non_centered.to_constrained(&x_nc);
/// let x_c = centered.from_constrained(&c);
/// assert!((x_c[2] - (mu + log_tau.exp() * 0.5)).abs() < 1e-12);
///
/// let lp_nc = non_centered.log_density(&DMatrix::from_column_slice(10, 1, &x_nc))[0];
/// let lp_c = centered.log_density(&DMatrix::from_column_slice(10, 1, &x_c))[0];
/// assert!((lp_nc - lp_c - 8.0 * log_tau).abs() < 1e-10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EightSchools {
    /// The coordinates of the school effects.
    pub parametrization: Parametrization,
}

impl EightSchools {
    /// The prior scale of `μ ~ N(0, 5²)`.
    pub const MU_PRIOR_SCALE: f64 = 5.0;
    /// The prior scale of `τ ~ Half-Cauchy(0, 5)`.
    pub const TAU_PRIOR_SCALE: f64 = 5.0;
    /// The dimension `D = 10` of the target.
    pub const DIM: usize = 10;
    /// The names of the constrained parameters, in the order of
    /// [`to_constrained`](Self::to_constrained).
    pub const CONSTRAINED_NAMES: [&'static str; 10] = [
        "mu", "tau", "theta[1]", "theta[2]", "theta[3]", "theta[4]", "theta[5]", "theta[6]",
        "theta[7]", "theta[8]",
    ];

    /// The model in the given coordinates.
    pub const fn new(parametrization: Parametrization) -> Self {
        Self { parametrization }
    }

    /// The centred model, coordinates `(μ, log τ, θ₁, …, θ₈)`.
    pub const fn centered() -> Self {
        Self::new(Parametrization::Centered)
    }

    /// The non-centred model, coordinates `(μ, log τ, θ̃₁, …, θ̃₈)`.
    pub const fn non_centered() -> Self {
        Self::new(Parametrization::NonCentered)
    }

    /// The names of the ten coordinates of the target.
    pub fn coordinate_names(&self) -> [&'static str; 10] {
        match self.parametrization {
            Parametrization::Centered => [
                "mu", "log_tau", "theta[1]", "theta[2]", "theta[3]", "theta[4]", "theta[5]",
                "theta[6]", "theta[7]", "theta[8]",
            ],
            Parametrization::NonCentered => [
                "mu",
                "log_tau",
                "theta_tilde[1]",
                "theta_tilde[2]",
                "theta_tilde[3]",
                "theta_tilde[4]",
                "theta_tilde[5]",
                "theta_tilde[6]",
                "theta_tilde[7]",
                "theta_tilde[8]",
            ],
        }
    }

    /// The point `x` of the target (10 values in this model's coordinates)
    /// as the model's parameters `(μ, τ, θ₁, …, θ₈)`.
    ///
    /// # Panics
    /// If `x` does not have 10 values.
    pub fn to_constrained(&self, x: &[f64]) -> [f64; 10] {
        assert_eq!(
            x.len(),
            Self::DIM,
            "EightSchools::to_constrained: the point has {} values, expected 10",
            x.len()
        );
        let (mu, tau) = (x[0], x[1].exp());
        let mut out = [0.0; 10];
        out[0] = mu;
        out[1] = tau;
        for j in 0..J {
            out[2 + j] = match self.parametrization {
                Parametrization::Centered => x[2 + j],
                Parametrization::NonCentered => mu + tau * x[2 + j],
            };
        }
        out
    }

    /// The inverse of [`to_constrained`](Self::to_constrained): the
    /// parameters `(μ, τ, θ₁, …, θ₈)` (with `τ > 0`) as a point of the
    /// target in this model's coordinates.
    ///
    /// # Panics
    /// If `c` does not have 10 values.
    pub fn from_constrained(&self, c: &[f64]) -> [f64; 10] {
        assert_eq!(
            c.len(),
            Self::DIM,
            "EightSchools::from_constrained: the point has {} values, expected 10",
            c.len()
        );
        let (mu, tau) = (c[0], c[1]);
        let mut out = [0.0; 10];
        out[0] = mu;
        out[1] = tau.ln();
        for j in 0..J {
            out[2 + j] = match self.parametrization {
                Parametrization::Centered => c[2 + j],
                Parametrization::NonCentered => (c[2 + j] - mu) / tau,
            };
        }
        out
    }

    /// [`to_constrained`](Self::to_constrained) for every column of a
    /// `10 × n` batch of draws.
    ///
    /// # Panics
    /// If `x` does not have 10 rows.
    pub fn to_constrained_columns(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        crate::batch::assert_rows("EightSchools::to_constrained_columns", Self::DIM, x);
        let mut out = DMatrix::zeros(Self::DIM, x.ncols());
        for (j, col) in x.column_iter().enumerate() {
            let point: Vec<f64> = col.iter().copied().collect();
            out.column_mut(j)
                .copy_from_slice(&self.to_constrained(&point));
        }
        out
    }

    /// The log marginal likelihood `log p(y)`: the log-normaliser of the
    /// target, the same in both parametrisations.
    ///
    /// Computed once, by integrating out `θ` and `μ` exactly (given `τ`,
    /// `y ~ N(0, diag(σ_j² + τ²) + 5² 11ᵀ)`) and `log τ` by composite
    /// Simpson's rule on `[−40, 40]` with step `0.005`, which is accurate
    /// to rounding.
    pub fn log_normalizer(&self) -> f64 {
        static LOG_Z: OnceLock<f64> = OnceLock::new();
        *LOG_Z.get_or_init(log_marginal_likelihood)
    }

    /// `log p` at one point (10 values), writing `∇ log p` into `grad`.
    fn eval(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        let half_l2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let (mu, eta) = (p[0], p[1]);
        let tau = eta.exp();
        let (sm, st) = (Self::MU_PRIOR_SCALE, Self::TAU_PRIOR_SCALE);
        // log N(μ; 0, 5²).
        let mut lp = -half_l2pi - sm.ln() - 0.5 * mu * mu / (sm * sm);
        let mut g_mu = -mu / (sm * sm);
        // log Half-Cauchy(τ; 5) = log(2/π) − log 5 − log(1 + (τ/5)²), with
        // log(1 + (τ/5)²) = softplus(2 log τ − 2 log 5), plus the
        // log-Jacobian log τ of τ = e^{log τ}.
        let u = 2.0 * (eta - st.ln());
        lp += (2.0 / std::f64::consts::PI).ln() - st.ln() - u.softplus() + eta;
        let mut g_eta = -2.0 * u.sigmoid() + 1.0;
        match self.parametrization {
            Parametrization::Centered => {
                let inv_tau2 = (-2.0 * eta).exp();
                for j in 0..J {
                    let (y, s) = (EIGHT_SCHOOLS_Y[j], EIGHT_SCHOOLS_SIGMA[j]);
                    let theta = p[2 + j];
                    let d = theta - mu;
                    // (θ − μ)²/τ², which is 0 at θ = μ even where 1/τ² overflows.
                    let (q, dq) = if d == 0.0 {
                        (0.0, 0.0)
                    } else {
                        (d * d * inv_tau2, d * inv_tau2)
                    };
                    let r = (y - theta) / s;
                    // log N(θ_j; μ, τ²) + log N(y_j; θ_j, σ_j²).
                    lp += -half_l2pi - eta - 0.5 * q - half_l2pi - s.ln() - 0.5 * r * r;
                    g_mu += dq;
                    g_eta += -1.0 + q;
                    grad[2 + j] = -dq + r / s;
                }
            }
            Parametrization::NonCentered => {
                for j in 0..J {
                    let (y, s) = (EIGHT_SCHOOLS_Y[j], EIGHT_SCHOOLS_SIGMA[j]);
                    let z = p[2 + j];
                    let r = (y - mu - tau * z) / s;
                    // log N(θ̃_j; 0, 1) + log N(y_j; μ + τ θ̃_j, σ_j²).
                    lp += -half_l2pi - 0.5 * z * z - half_l2pi - s.ln() - 0.5 * r * r;
                    let w = r / s;
                    g_mu += w;
                    g_eta += w * tau * z;
                    grad[2 + j] = -z + w * tau;
                }
            }
        }
        grad[0] = g_mu;
        grad[1] = g_eta;
        lp
    }
}

/// `log p(y) = log ∫ p(y | τ) p(τ) dτ`, with `μ` and `θ` integrated out
/// exactly and `η = log τ` by composite Simpson's rule.
fn log_marginal_likelihood() -> f64 {
    let (lo, hi, steps) = (-40.0_f64, 40.0_f64, 16_000_usize);
    let h = (hi - lo) / steps as f64;
    let terms: Vec<f64> = (0..=steps)
        .map(|k| {
            let w: f64 = if k == 0 || k == steps {
                1.0
            } else if k % 2 == 1 {
                4.0
            } else {
                2.0
            };
            w.ln() + log_integrand(lo + h * k as f64)
        })
        .collect();
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln() + (h / 3.0).ln()
}

/// `log p(y | τ) + log p(τ) + log τ` at `τ = e^η`.
fn log_integrand(eta: f64) -> f64 {
    let tau2 = (2.0 * eta).exp();
    let sm2 = EightSchools::MU_PRIOR_SCALE * EightSchools::MU_PRIOR_SCALE;
    let st = EightSchools::TAU_PRIOR_SCALE;
    let (mut a, mut b, mut c, mut logdet) = (0.0, 0.0, 0.0, 0.0);
    for j in 0..J {
        let v = EIGHT_SCHOOLS_SIGMA[j] * EIGHT_SCHOOLS_SIGMA[j] + tau2;
        let y = EIGHT_SCHOOLS_Y[j];
        a += 1.0 / v;
        b += y / v;
        c += y * y / v;
        logdet += v.ln();
    }
    // Matrix determinant lemma and Sherman–Morrison for diag(v) + s² 11ᵀ.
    let k = 1.0 + sm2 * a;
    let log_lik = -0.5 * J as f64 * (2.0 * std::f64::consts::PI).ln()
        - 0.5 * (logdet + k.ln())
        - 0.5 * (c - sm2 * b * b / k);
    let log_prior =
        (2.0 / std::f64::consts::PI).ln() - st.ln() - (2.0 * (eta - st.ln())).softplus();
    log_lik + log_prior + eta
}

impl<T: Real> LogDensity<T> for EightSchools {
    fn dim(&self) -> usize {
        Self::DIM
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_density_and_grad(x).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        crate::batch::assert_rows("EightSchools", Self::DIM, x);
        let n = x.ncols();
        let mut lp = DVector::zeros(n);
        let mut grad = DMatrix::zeros(Self::DIM, n);
        let mut point = [0.0; 10];
        let mut g = [0.0; 10];
        for j in 0..n {
            for (p, v) in point.iter_mut().zip(x.column(j).iter()) {
                *p = v.to_f64();
            }
            lp[j] = T::lit(self.eval(&point, &mut g));
            for (i, gi) in g.iter().enumerate() {
                grad[(i, j)] = T::lit(*gi);
            }
        }
        (lp, grad)
    }
}
