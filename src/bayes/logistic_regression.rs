//! Bayesian logistic regression on one covariate, with the pre-Challenger
//! O-ring data built in.

use std::sync::OnceLock;

use nalgebra::{DMatrix, DVector};

use crate::train::LogDensity;
use crate::{Error, Real};

/// The launch temperature (°F) subtracted from the Challenger covariate.
pub const CHALLENGER_TEMPERATURE_CENTER: f64 = 70.0;

/// The scale (°F) the centred Challenger temperature is divided by.
pub const CHALLENGER_TEMPERATURE_SCALE: f64 = 10.0;

/// The data file, embedded at build time (see `data/README.md`).
const CHALLENGER_CSV: &str = include_str!("../../data/challenger.csv");

/// One of the 23 shuttle launches before the Challenger accident whose
/// booster O-rings were recovered and inspected (Dalal, Fowlkes & Hoadley
/// 1989, table 1).
///
/// ```
/// use normflow::bayes::challenger_launches;
/// let coldest = challenger_launches()
///     .iter()
///     .min_by(|a, b| a.temperature_f.total_cmp(&b.temperature_f))
///     .unwrap();
/// assert_eq!((coldest.flight, coldest.temperature_f, coldest.distress), ("STS-51-C", 53.0, true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChallengerLaunch {
    /// The flight, e.g. `"STS-41-B"`.
    pub flight: &'static str,
    /// The launch temperature in °F.
    pub temperature_f: f64,
    /// Whether at least one O-ring showed thermal distress (erosion or
    /// blow-by).
    pub distress: bool,
}

/// The 23 launches of `data/challenger.csv`, in flight order: Dalal,
/// Fowlkes & Hoadley (1989), "Risk analysis of the space shuttle:
/// pre-Challenger prediction of failure", *JASA* 84(408), 945–957, table 1.
/// Seven of them had O-ring distress. Parsed once from the copy embedded in
/// the library (no file is read at run time).
pub fn challenger_launches() -> &'static [ChallengerLaunch] {
    static LAUNCHES: OnceLock<Vec<ChallengerLaunch>> = OnceLock::new();
    LAUNCHES.get_or_init(|| parse_challenger(CHALLENGER_CSV))
}

/// Parses `flight,temperature_f,distress` rows after a header.
fn parse_challenger(text: &'static str) -> Vec<ChallengerLaunch> {
    let mut lines = text.lines();
    assert_eq!(
        lines.next().map(str::trim),
        Some("flight,temperature_f,distress"),
        "data/challenger.csv: unexpected header"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&'static str> = line.trim().split(',').collect();
            assert_eq!(fields.len(), 3, "data/challenger.csv: bad row {line:?}");
            let temperature_f = fields[1]
                .parse()
                .unwrap_or_else(|_| panic!("data/challenger.csv: bad temperature in {line:?}"));
            let distress = match fields[2] {
                "0" => false,
                "1" => true,
                _ => panic!("data/challenger.csv: distress must be 0 or 1 in {line:?}"),
            };
            ChallengerLaunch {
                flight: fields[0],
                temperature_f,
                distress,
            }
        })
        .collect()
}

/// The posterior of a logistic regression with an intercept `α` and one
/// slope `β`:
///
/// ```text
/// α ~ N(0, s²),  β ~ N(0, s²)  (independent; s = 10 by default)
/// P(y_i = 1 | α, β) = σ(α + β x_i),  σ(z) = 1/(1 + e^{−z})
/// ```
///
/// Coordinates `(α, β)`. The log-density is the log joint density of the
/// parameters and the outcomes (normalised prior, Bernoulli likelihood),
/// `log p̃(α, β) = −log 2π − 2 log s − (α² + β²)/(2s²) + Σᵢ [yᵢ log σ(zᵢ) +
/// (1 − yᵢ) log σ(−zᵢ)]` with `zᵢ = α + β xᵢ` and the stable
/// `log σ(z) = −softplus(−z)`. Its gradient, `Σᵢ (yᵢ − σ(zᵢ)) (1, xᵢ) −
/// (α, β)/s²`, is written out by hand; both are evaluated in `f64`.
///
/// [`challenger`](Self::challenger) is the model of the O-ring data
/// ([`challenger_launches`]): `yᵢ` is O-ring distress and
/// `xᵢ = (tᵢ − 70)/10` the launch temperature `tᵢ` (°F) centred at 70 °F and
/// in units of 10 °F, so that `α` is the log-odds of distress at 70 °F and
/// `β` the change of log-odds per 10 °F warmer.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::bayes::LogisticRegression;
/// use normflow::train::LogDensity;
///
/// let model = LogisticRegression::challenger();
/// assert_eq!(model.len(), 23);
/// // At α = β = 0 every launch has probability ½.
/// let lp = model.log_density(&DMatrix::<f64>::zeros(2, 1))[0];
/// let prior = -(2.0 * std::f64::consts::PI).ln() - 2.0 * 10f64.ln();
/// assert!((lp - (23.0 * 0.5f64.ln() + prior)).abs() < 1e-12);
/// // Colder launches had more distress: the slope is negative at the mode.
/// let [_alpha, beta] = model.posterior_mode();
/// assert!(beta < 0.0);
///
/// // Any data set.
/// let m = LogisticRegression::new(vec![-1.0, 0.0, 1.0], vec![false, true, true])?;
/// assert_eq!(m.outcomes(), &[false, true, true]);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    x: Vec<f64>,
    y: Vec<bool>,
    prior_scale: f64,
}

impl LogisticRegression {
    /// The default prior standard deviation `s` of `α` and `β`.
    pub const DEFAULT_PRIOR_SCALE: f64 = 10.0;

    /// The posterior given covariates `x` and outcomes `y` (one each per
    /// observation), with the default priors `α, β ~ N(0, 10²)`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] if `x` and `y` differ in length,
    /// [`Error::InvalidParameter`] if an `x` is not finite.
    pub fn new(x: Vec<f64>, y: Vec<bool>) -> Result<Self, Error> {
        if x.len() != y.len() {
            return Err(Error::DimensionMismatch {
                context: "LogisticRegression::new".into(),
                argument: "y".into(),
                expected: x.len(),
                got: y.len(),
            });
        }
        if let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::InvalidParameter {
                context: "LogisticRegression::new".into(),
                argument: format!("x[{i}]"),
                expected: "finite".into(),
                got: v.to_string(),
            });
        }
        Ok(Self {
            x,
            y,
            prior_scale: Self::DEFAULT_PRIOR_SCALE,
        })
    }

    /// The same model with priors `α, β ~ N(0, scale²)`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `scale` is finite and positive.
    pub fn with_prior_scale(mut self, scale: f64) -> Result<Self, Error> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::InvalidParameter {
                context: "LogisticRegression::with_prior_scale".into(),
                argument: "scale".into(),
                expected: "finite and positive".into(),
                got: scale.to_string(),
            });
        }
        self.prior_scale = scale;
        Ok(self)
    }

    /// The pre-Challenger O-ring model: outcome O-ring distress,
    /// covariate `(t − 70)/10` of the launch temperature `t` in °F
    /// ([`CHALLENGER_TEMPERATURE_CENTER`], [`CHALLENGER_TEMPERATURE_SCALE`]),
    /// priors `α, β ~ N(0, 10²)`.
    pub fn challenger() -> Self {
        let launches = challenger_launches();
        Self {
            x: launches
                .iter()
                .map(|l| {
                    (l.temperature_f - CHALLENGER_TEMPERATURE_CENTER) / CHALLENGER_TEMPERATURE_SCALE
                })
                .collect(),
            y: launches.iter().map(|l| l.distress).collect(),
            prior_scale: Self::DEFAULT_PRIOR_SCALE,
        }
    }

    /// The covariates `xᵢ`.
    pub fn covariates(&self) -> &[f64] {
        &self.x
    }

    /// The outcomes `yᵢ`.
    pub fn outcomes(&self) -> &[bool] {
        &self.y
    }

    /// The number of observations.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether there are no observations (the posterior is the prior).
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// The prior standard deviation `s` of `α` and `β`.
    pub fn prior_scale(&self) -> f64 {
        self.prior_scale
    }

    /// `(log p̃, ∂/∂α, ∂/∂β)` and, when `hessian` is set, the Hessian
    /// `(∂²/∂α², ∂²/∂α∂β, ∂²/∂β²)`.
    fn eval(&self, alpha: f64, beta: f64, hessian: bool) -> ([f64; 3], [f64; 3]) {
        let s2 = self.prior_scale * self.prior_scale;
        let mut lp = -(2.0 * std::f64::consts::PI).ln()
            - 2.0 * self.prior_scale.ln()
            - 0.5 * (alpha * alpha + beta * beta) / s2;
        let (mut ga, mut gb) = (-alpha / s2, -beta / s2);
        let mut h = [-1.0 / s2, 0.0, -1.0 / s2];
        for (&x, &y) in self.x.iter().zip(&self.y) {
            let z = alpha + beta * x;
            let p = z.sigmoid();
            let r = if y {
                lp += z.log_sigmoid();
                1.0 - p
            } else {
                lp += (-z).log_sigmoid();
                -p
            };
            ga += r;
            gb += r * x;
            if hessian {
                let w = p * (1.0 - p);
                h[0] -= w;
                h[1] -= w * x;
                h[2] -= w * x * x;
            }
        }
        ([lp, ga, gb], h)
    }

    /// The posterior mode `(α̂, β̂)`, by Newton's method with step halving
    /// from `(0, 0)`. The log-posterior is strictly concave (the Gaussian
    /// prior makes it so even for separable data), so the mode is unique.
    pub fn posterior_mode(&self) -> [f64; 2] {
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..200 {
            let ([lp, ga, gb], [haa, hab, hbb]) = self.eval(a, b, true);
            // Newton step: −H⁻¹ g for the 2 × 2 negative-definite H.
            let det = haa * hbb - hab * hab;
            let da = -(hbb * ga - hab * gb) / det;
            let db = -(-hab * ga + haa * gb) / det;
            let mut t = 1.0;
            while t > 1e-10 && self.eval(a + t * da, b + t * db, false).0[0] < lp {
                t *= 0.5;
            }
            a += t * da;
            b += t * db;
            if (t * da).abs().max((t * db).abs()) < 1e-12 * (1.0 + a.abs().max(b.abs())) {
                break;
            }
        }
        [a, b]
    }
}

impl<T: Real> LogDensity<T> for LogisticRegression {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, x: &DMatrix<T>) -> DVector<T> {
        self.log_density_and_grad(x).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<T>) -> (DVector<T>, DMatrix<T>) {
        crate::batch::assert_rows("LogisticRegression", 2, x);
        let n = x.ncols();
        let mut lp = DVector::zeros(n);
        let mut grad = DMatrix::zeros(2, n);
        for j in 0..n {
            let ([v, ga, gb], _) = self.eval(x[(0, j)].to_f64(), x[(1, j)].to_f64(), false);
            lp[j] = T::lit(v);
            grad[(0, j)] = T::lit(ga);
            grad[(1, j)] = T::lit(gb);
        }
        (lp, grad)
    }
}
