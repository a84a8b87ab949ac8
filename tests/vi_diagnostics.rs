//! Importance-sampling diagnostics of variational fits: `log Ẑ` within its
//! standard error of targets whose normaliser is known, the Pareto `k̂`
//! above 0.7 for a `q` too narrow for its target and below 0.5 for a good
//! one, and `fit_variational` reporting them.

use nalgebra::{DMatrix, DVector};
use normflow::FlowSpec;
use normflow::distribution::Normal;
use normflow::train::targets::Energy;
use normflow::train::{
    DistributionTarget, FlowModel, LogDensity, VariationalDiagnostics, VariationalOptions,
    diagnose_variational, fit_variational, pareto_k,
};

/// `c · N(x; μ, σ²)` in 1-D: an unnormalised Gaussian with `log Z = log c`.
struct ScaledNormal {
    log_c: f64,
    normal: Normal<f64>,
}

impl LogDensity<f64> for ScaledNormal {
    fn dim(&self) -> usize {
        1
    }
    fn log_density(&self, x: &DMatrix<f64>) -> DVector<f64> {
        normflow::Distribution::log_prob(&self.normal, x).add_scalar(self.log_c)
    }
    fn log_density_and_grad(&self, x: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
        let g = normflow::Distribution::log_prob_grad(&self.normal, x).unwrap();
        (self.log_density(x), g)
    }
}

/// A fresh `actnorm` flow is the identity: `q` is the standard normal.
fn standard_normal_q() -> FlowModel<f64> {
    FlowModel::new(&FlowSpec::parse("actnorm").unwrap(), 1, 0).unwrap()
}

#[test]
fn log_z_of_a_scaled_gaussian_is_within_its_standard_error() {
    // log Z = 2.5 exactly; q = N(0, 1) is narrower than p = N(0.3, 1.1²), so
    // the weights have a tail of shape 1 − 1/1.1² ≈ 0.17 (PSIS paper, §3:
    // k = 1 − σ_q²/σ_p² for Gaussians).
    let p = ScaledNormal {
        log_c: 2.5,
        normal: Normal::scalar(0.3, 1.1).unwrap(),
    };
    for seed in 0..3 {
        let d = diagnose_variational(&standard_normal_q(), &p, 4000, seed).unwrap();
        // Three standard errors: a 99.7 % interval of the estimator's CLT.
        assert!(
            (d.log_z - 2.5).abs() < 3.0 * d.log_z_se,
            "seed {seed}: {} ± {}",
            d.log_z,
            d.log_z_se
        );
        assert!(d.elbo < d.log_z, "Jensen: ELBO ≤ log Ẑ");
        assert!(d.pareto_k < 0.5, "seed {seed}: k̂ = {}", d.pareto_k);
        assert_eq!(d.verdict(), "good");
        assert!(d.ess > 0.5 * 4000.0 && d.ess <= 4000.0, "{}", d.ess);
    }
}

#[test]
fn a_too_narrow_q_has_a_pareto_k_above_0_7() {
    // p = N(0, 3²) against q = N(0, 1): k = 1 − 1/9 ≈ 0.89.
    let p = DistributionTarget(Normal::scalar(0.0, 3.0).unwrap());
    for seed in 0..3 {
        let d = diagnose_variational(&standard_normal_q(), &p, 4000, seed).unwrap();
        assert!(d.pareto_k > 0.7, "seed {seed}: k̂ = {}", d.pareto_k);
        assert_eq!(d.verdict(), "unreliable");
        assert!(d.ess < 0.5 * 4000.0, "{}", d.ess);
    }
}

#[test]
fn pareto_k_recovers_known_tail_shapes() {
    // Weights w = e^z with z ~ Exp(λ) have P(w > t) = t^{−λ}: shape 1/λ.
    // Quantiles of Exp(λ) stand in for draws.
    let n = 4000;
    for shape in [0.25, 0.5, 1.0] {
        let log_w: Vec<f64> = (0..n)
            .map(|i| -shape * (1.0 - (i as f64 + 0.5) / n as f64).ln())
            .collect();
        let k = pareto_k(&log_w);
        assert!((k - shape).abs() < 0.1, "shape {shape}: k̂ = {k}");
    }
    assert_eq!(pareto_k(&[0.0; 10]), f64::INFINITY); // too few to fit a tail
}

#[test]
fn bad_log_weights_are_refused() {
    assert!(VariationalDiagnostics::from_log_weights(&[1.0]).is_err());
    let e = VariationalDiagnostics::from_log_weights(&[0.0, f64::NAN, 1.0]).unwrap_err();
    assert!(e.to_string().contains("log_w[1]"), "{e}");
    assert!(VariationalDiagnostics::from_log_weights(&[0.0, f64::INFINITY]).is_err());
    assert!(VariationalDiagnostics::from_log_weights(&[f64::NEG_INFINITY; 3]).is_err());
    // −∞ is a weight of 0, not an error.
    let d = VariationalDiagnostics::from_log_weights(&[0.0, f64::NEG_INFINITY]).unwrap();
    assert!((d.log_z - 0.5f64.ln()).abs() < 1e-12);
    assert_eq!(d.elbo, f64::NEG_INFINITY);
}

#[test]
fn a_fit_of_u1_estimates_its_normaliser_and_reports_it() {
    // U1's log Z = 1.8775 by quadrature (Energy::log_normalizer).
    let want = Energy::U1.log_normalizer().unwrap();
    let spec = FlowSpec::parse("realnvp(4, hidden = 32) >> actnorm").unwrap();
    let mut q = FlowModel::<f64>::new(&spec, 2, 0).unwrap();
    let opts = VariationalOptions {
        steps: 1500,
        batch_size: 128,
        learning_rate: 3e-3,
        diagnostic_draws: 4000,
        ..Default::default()
    };
    let report = fit_variational(&mut q, &Energy::U1, &opts, &mut |_, _| true).unwrap();
    let d = report.diagnostics.expect("diagnostics of 4000 draws");
    assert_eq!(d.draws, 4000);
    assert!(
        (d.log_z - want).abs() < 3.0 * d.log_z_se + 0.01,
        "log Ẑ = {} ± {} vs {want}",
        d.log_z,
        d.log_z_se
    );
    assert!(d.elbo < want && d.elbo > want - 0.5, "ELBO {}", d.elbo);
    assert!(d.pareto_k < 0.7, "k̂ = {}", d.pareto_k);
    // None asked for: none given.
    let none = fit_variational(
        &mut q,
        &Energy::U1,
        &VariationalOptions {
            steps: 1,
            diagnostic_draws: 0,
            ..Default::default()
        },
        &mut |_, _| true,
    )
    .unwrap();
    assert!(none.diagnostics.is_none());
}
