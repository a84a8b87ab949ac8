//! The posterior targets of `normflow::bayes`: Neal's funnel, the eight
//! schools (centred and non-centred) and the Challenger logistic regression.
//!
//! Gradients are checked against central differences of the log-density;
//! log-densities against closed forms written out here (with the
//! `scipy.stats` call each equals) and against values computed
//! independently in Python with `statistics.NormalDist`.

use nalgebra::{DMatrix, DVector};
use normflow::bayes::{
    CHALLENGER_TEMPERATURE_CENTER, CHALLENGER_TEMPERATURE_SCALE, EIGHT_SCHOOLS_SIGMA,
    EIGHT_SCHOOLS_Y, EightSchools, LogisticRegression, NealFunnel, Parametrization,
    challenger_launches,
};
use normflow::train::LogDensity;
use normflow::train::targets::Funnel;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution as _, StandardNormal};

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// `ln N(x; μ, σ²) = −½((x − μ)/σ)² − ln σ − ½ ln 2π`
/// (= `scipy.stats.norm(μ, σ).logpdf(x)`).
fn normal_logpdf(x: f64, mu: f64, sigma: f64) -> f64 {
    -0.5 * ((x - mu) / sigma).powi(2) - sigma.ln() - HALF_LN_2PI
}

/// `ln[2 / (π s (1 + (t/s)²))]` for `t ≥ 0`
/// (= `scipy.stats.halfcauchy(scale=s).logpdf(t)`).
fn half_cauchy_logpdf(t: f64, s: f64) -> f64 {
    (2.0 / std::f64::consts::PI).ln() - s.ln() - (1.0 + (t / s).powi(2)).ln()
}

fn column(p: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(p.len(), 1, p)
}

fn lp_at(t: &impl LogDensity<f64>, p: &[f64]) -> f64 {
    t.log_density(&column(p))[0]
}

/// Checks `∇ log p` against central differences at every column of `x`,
/// and that `log_density` and `log_density_and_grad` agree.
fn check_gradient(name: &str, t: &impl LogDensity<f64>, x: &DMatrix<f64>) {
    let (lp, grad) = t.log_density_and_grad(x);
    let lp_only = t.log_density(x);
    assert_eq!(grad.shape(), x.shape(), "{name}: gradient shape");
    for j in 0..x.ncols() {
        assert_eq!(lp[j], lp_only[j], "{name}: the two log-densities differ");
        assert!(lp[j].is_finite(), "{name}: log p = {} at column {j}", lp[j]);
        for i in 0..x.nrows() {
            let h = 1e-5 * (1.0 + x[(i, j)].abs());
            let (mut up, mut down) = (x.column(j).into_owned(), x.column(j).into_owned());
            up[i] += h;
            down[i] -= h;
            let fd = (lp_at(t, up.as_slice()) - lp_at(t, down.as_slice())) / (2.0 * h);
            let g = grad[(i, j)];
            assert!(
                (g - fd).abs() <= 1e-6 * (1.0 + g.abs().max(lp[j].abs())),
                "{name}: ∂/∂x[{i}] at column {j} is {g}, central difference {fd}"
            );
        }
    }
}

fn uniform_matrix(rng: &mut StdRng, d: usize, n: usize, lo: f64, hi: f64) -> DMatrix<f64> {
    DMatrix::from_fn(d, n, |_, _| rng.random_range(lo..hi))
}

// ---------------------------------------------------------------- funnel

#[test]
fn funnel_new_rejects_dimensions_below_two_with_a_clear_message() {
    for dim in [0, 1] {
        let err = NealFunnel::new(dim).unwrap_err();
        assert!(matches!(err, normflow::Error::InvalidDimension { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "NealFunnel::new: argument `dim` must be at least 2 (the neck v and at least one x), got {dim}"
            )
        );
    }
    assert_eq!(NealFunnel::new(2).unwrap().dim, 2);
    assert_eq!(NealFunnel::default().dim, 10);
}

#[test]
fn funnel_log_density_is_the_sum_of_normal_log_pdfs() {
    // log p(v, x) = norm(0, 3).logpdf(v) + Σᵢ norm(0, exp(v/2)).logpdf(xᵢ)
    // (Neal 2003, §8).
    let mut rng = StdRng::seed_from_u64(1);
    for dim in [2, 3, 10] {
        let f = NealFunnel::new(dim).unwrap();
        let mut x = uniform_matrix(&mut rng, dim, 20, -3.0, 3.0);
        x.row_mut(0).apply(|v| *v *= 2.0);
        let lp = f.log_density(&x);
        for (j, c) in x.column_iter().enumerate() {
            let v = c[0];
            let expected = normal_logpdf(v, 0.0, 3.0)
                + c.iter()
                    .skip(1)
                    .map(|&xi| normal_logpdf(xi, 0.0, (0.5 * v).exp()))
                    .sum::<f64>();
            assert!(
                (lp[j] - expected).abs() < 1e-12 * (1.0 + expected.abs()),
                "D = {dim}: {} vs {expected}",
                lp[j]
            );
        }
        assert_eq!(f.log_normalizer(), 0.0);
    }
    // Values from Python's statistics.NormalDist (independent code).
    let f3 = NealFunnel::new(3).unwrap();
    assert!((lp_at(&f3, &[1.2, 0.5, -2.0]) - -5.775465588595557).abs() < 1e-12);
    let f10 = NealFunnel::new(10).unwrap();
    let p = [-2.5, 0.1, -0.05, 0.2, 0.0, 0.03, -0.1, 0.07, 0.15, -0.02];
    assert!((lp_at(&f10, &p) - 0.0592584324548624).abs() < 1e-12);
}

#[test]
fn funnel_in_two_dimensions_is_the_builtin_funnel() {
    let mut rng = StdRng::seed_from_u64(2);
    let x = uniform_matrix(&mut rng, 2, 50, -4.0, 4.0);
    let (lp, g) = NealFunnel::new(2).unwrap().log_density_and_grad(&x);
    let (lp2, g2) = Funnel.log_density_and_grad(&x);
    assert!((lp - lp2).amax() < 1e-12);
    assert!((g - g2).amax() < 1e-12);
}

#[test]
fn funnel_gradients_match_central_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    for dim in [2, 3, 10] {
        let f = NealFunnel::new(dim).unwrap();
        let mut x = uniform_matrix(&mut rng, dim, 8, -2.0, 2.0);
        x.row_mut(0).apply(|v| *v *= 2.0);
        check_gradient(&format!("NealFunnel({dim})"), &f, &x);
    }
}

#[test]
fn funnel_evaluates_in_f32_too() {
    let f = NealFunnel::new(4).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let x = uniform_matrix(&mut rng, 4, 10, -1.5, 1.5);
    let (lp, g) = f.log_density_and_grad(&x);
    let (lp32, g32) = f.log_density_and_grad(&x.map(|v| v as f32));
    assert!((lp32.map(f64::from) - &lp).amax() < 1e-5 * (1.0 + lp.amax()));
    assert!((g32.map(f64::from) - g).amax() < 1e-4);
}

#[test]
fn funnel_exact_draws_have_the_funnel_distribution() {
    let f = NealFunnel::new(5).unwrap();
    let n = 40_000;
    let draws = f.sample(n, &mut StdRng::seed_from_u64(5));
    assert_eq!(draws.shape(), (5, n));
    let nf = n as f64;
    // v ~ N(0, 9): mean 0 ± 3·3/√n, variance 9 ± a few percent.
    let v = draws.row(0);
    let v_mean = v.sum() / nf;
    let v_var = v.iter().map(|a| (a - v_mean).powi(2)).sum::<f64>() / nf;
    assert!(v_mean.abs() < 0.05, "mean of v {v_mean}");
    assert!((v_var - 9.0).abs() < 0.3, "variance of v {v_var}");
    // xᵢ e^{−v/2} ~ N(0, 1) independently of v.
    for i in 1..5 {
        let z: Vec<f64> = draws
            .column_iter()
            .map(|c| c[i] * (-0.5 * c[0]).exp())
            .collect();
        let m = z.iter().sum::<f64>() / nf;
        let var = z.iter().map(|a| (a - m).powi(2)).sum::<f64>() / nf;
        assert!(
            m.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "x{i}: {m}, {var}"
        );
    }
    // The same seed gives the same draws.
    assert_eq!(draws, f.sample(n, &mut StdRng::seed_from_u64(5)));
}

// ---------------------------------------------------------- eight schools

/// Random points of the target: μ ∈ (−10, 15), log τ ∈ (−2, 3), and the
/// last eight coordinates on the scale of each parametrisation.
fn eight_schools_points(rng: &mut StdRng, p: Parametrization, n: usize) -> DMatrix<f64> {
    DMatrix::from_fn(10, n, |i, _| match (i, p) {
        (0, _) => rng.random_range(-10.0..15.0),
        (1, _) => rng.random_range(-2.0..3.0),
        (_, Parametrization::Centered) => rng.random_range(-15.0..25.0),
        (_, Parametrization::NonCentered) => rng.random_range(-2.0..2.0),
    })
}

#[test]
fn eight_schools_data_are_those_of_bda_table_5_2() {
    assert_eq!(
        EIGHT_SCHOOLS_Y,
        [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
    );
    assert_eq!(
        EIGHT_SCHOOLS_SIGMA,
        [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
    );
}

#[test]
fn eight_schools_gradients_match_central_differences() {
    let mut rng = StdRng::seed_from_u64(6);
    for p in [Parametrization::Centered, Parametrization::NonCentered] {
        let m = EightSchools::new(p);
        let x = eight_schools_points(&mut rng, p, 10);
        check_gradient(&format!("EightSchools({p:?})"), &m, &x);
    }
}

#[test]
fn eight_schools_log_density_is_the_log_joint_density() {
    // log N(μ; 0, 5²) + log HalfCauchy(τ; 5) + log τ + Σⱼ [log N(θⱼ; μ, τ²)
    // + log N(yⱼ; θⱼ, σⱼ²)] with θ = μ + τ θ̃ in the non-centred case, where
    // log N(θ̃ⱼ; 0, 1) replaces log N(θⱼ; μ, τ²).
    let mut rng = StdRng::seed_from_u64(7);
    for p in [Parametrization::Centered, Parametrization::NonCentered] {
        let m = EightSchools::new(p);
        let x = eight_schools_points(&mut rng, p, 10);
        let lp = m.log_density(&x);
        for (k, c) in x.column_iter().enumerate() {
            let (mu, eta) = (c[0], c[1]);
            let tau = eta.exp();
            let mut expected = normal_logpdf(mu, 0.0, 5.0) + half_cauchy_logpdf(tau, 5.0) + eta;
            for j in 0..8 {
                let (theta, prior) = match p {
                    Parametrization::Centered => (c[2 + j], normal_logpdf(c[2 + j], mu, tau)),
                    Parametrization::NonCentered => {
                        (mu + tau * c[2 + j], normal_logpdf(c[2 + j], 0.0, 1.0))
                    }
                };
                expected +=
                    prior + normal_logpdf(EIGHT_SCHOOLS_Y[j], theta, EIGHT_SCHOOLS_SIGMA[j]);
            }
            assert!(
                (lp[k] - expected).abs() < 1e-11 * (1.0 + expected.abs()),
                "{p:?}: {} vs {expected}",
                lp[k]
            );
        }
    }
    // Values from Python's statistics.NormalDist.
    let c = [4.0, 1.5, 10.0, 6.0, 2.0, 5.0, 1.0, 3.0, 9.0, 7.0];
    assert!((lp_at(&EightSchools::centered(), &c) - -54.176977389488314).abs() < 1e-10);
    let nc = [4.0, 1.5, 0.8, 0.2, -0.5, 0.1, -0.6, -0.3, 0.9, 0.4];
    assert!((lp_at(&EightSchools::non_centered(), &nc) - -41.497140244375046).abs() < 1e-10);
}

#[test]
fn eight_schools_parametrizations_differ_by_the_log_jacobian_of_theta() {
    // θ = μ + τ θ̃ has ∂θ/∂θ̃ = τ I₈, so p_nc(μ, log τ, θ̃) =
    // p_c(μ, log τ, μ + τ θ̃) · τ⁸: the log-densities differ by 8 log τ.
    let (c, nc) = (EightSchools::centered(), EightSchools::non_centered());
    let mut rng = StdRng::seed_from_u64(8);
    let x_nc = eight_schools_points(&mut rng, Parametrization::NonCentered, 50);
    for col in x_nc.column_iter() {
        let p_nc: Vec<f64> = col.iter().copied().collect();
        let constrained = nc.to_constrained(&p_nc);
        let p_c = c.from_constrained(&constrained);
        assert_eq!(c.to_constrained(&p_c)[1], constrained[1]);
        let diff = lp_at(&nc, &p_nc) - lp_at(&c, &p_c);
        assert!(
            (diff - 8.0 * p_nc[1]).abs() < 1e-9,
            "difference {diff}, 8 log τ = {}",
            8.0 * p_nc[1]
        );
    }
}

#[test]
fn eight_schools_constrained_maps_round_trip() {
    let mut rng = StdRng::seed_from_u64(9);
    for p in [Parametrization::Centered, Parametrization::NonCentered] {
        let m = EightSchools::new(p);
        let x = eight_schools_points(&mut rng, p, 5);
        let cons = m.to_constrained_columns(&x);
        for (j, col) in x.column_iter().enumerate() {
            let point: Vec<f64> = col.iter().copied().collect();
            let c = m.to_constrained(&point);
            assert_eq!(cons.column(j).as_slice(), &c[..]);
            assert_eq!(c[0], point[0]);
            assert!((c[1] - point[1].exp()).abs() < 1e-15 * c[1]);
            let back = m.from_constrained(&c);
            for (a, b) in back.iter().zip(&point) {
                assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "{p:?}: {a} vs {b}");
            }
        }
        assert_eq!(m.coordinate_names()[0], "mu");
        assert_eq!(m.coordinate_names()[1], "log_tau");
    }
    assert_eq!(EightSchools::CONSTRAINED_NAMES[9], "theta[8]");
    assert_eq!(
        EightSchools::non_centered().coordinate_names()[2],
        "theta_tilde[1]"
    );
}

/// `log ∫ p(μ, log τ, ·) d⁸` over the last eight coordinates, exactly: the
/// log-density is quadratic in them with Hessian `−diag(h)`, so the
/// integral is `p(mode) (2π)⁴ / √(Π h)`. Also checks that the gradient
/// vanishes at the mode.
fn log_marginal_over_effects(m: &EightSchools, mu: f64, eta: f64) -> f64 {
    let tau2 = (2.0 * eta).exp();
    let tau = eta.exp();
    let mut point = vec![mu, eta];
    let mut log_h = 0.0;
    for j in 0..8 {
        let (y, s2) = (EIGHT_SCHOOLS_Y[j], EIGHT_SCHOOLS_SIGMA[j].powi(2));
        let (mode, h) = match m.parametrization {
            Parametrization::Centered => (
                (mu / tau2 + y / s2) / (1.0 / tau2 + 1.0 / s2),
                1.0 / tau2 + 1.0 / s2,
            ),
            Parametrization::NonCentered => (tau * (y - mu) / (s2 + tau2), 1.0 + tau2 / s2),
        };
        point.push(mode);
        log_h += h.ln();
    }
    let (lp, g) = m.log_density_and_grad(&column(&point));
    for j in 2..10 {
        assert!(
            g[j].abs() < 1e-9 * (1.0 + (-2.0 * eta).exp()),
            "∂/∂x[{j}] = {}",
            g[j]
        );
    }
    lp[0] + 8.0 * HALF_LN_2PI - 0.5 * log_h
}

#[test]
fn eight_schools_marginal_over_the_effects_is_the_closed_form() {
    // Integrating θ (or θ̃) out leaves yⱼ | μ, τ ~ N(μ, σⱼ² + τ²):
    // p(μ, log τ | y) ∝ N(μ; 0, 5²) HalfCauchy(τ; 5) τ Πⱼ N(yⱼ; μ, σⱼ² + τ²),
    // the same for both parametrisations.
    let mut rng = StdRng::seed_from_u64(10);
    for _ in 0..20 {
        let mu: f64 = rng.random_range(-10.0..15.0);
        let eta: f64 = rng.random_range(-2.0..3.0);
        let tau = eta.exp();
        let mut expected = normal_logpdf(mu, 0.0, 5.0) + half_cauchy_logpdf(tau, 5.0) + eta;
        for j in 0..8 {
            let sd = (EIGHT_SCHOOLS_SIGMA[j].powi(2) + tau * tau).sqrt();
            expected += normal_logpdf(EIGHT_SCHOOLS_Y[j], mu, sd);
        }
        for m in [EightSchools::centered(), EightSchools::non_centered()] {
            let got = log_marginal_over_effects(&m, mu, eta);
            assert!(
                (got - expected).abs() < 1e-9,
                "{:?} at μ = {mu}, log τ = {eta}: {got} vs {expected}",
                m.parametrization
            );
        }
    }
}

#[test]
fn eight_schools_log_normalizer_matches_quadrature() {
    // The trapezoidal rule (step 0.1) in (μ, log τ) over [−30, 40] × [−25, 15]
    // of the exact marginal over the effects of the non-centred target.
    let m = EightSchools::non_centered();
    let h = 0.1;
    let mut terms = Vec::new();
    for a in 0..=700 {
        let mu = -30.0 + h * a as f64;
        for b in 0..=400 {
            let eta = -25.0 + h * b as f64;
            terms.push(log_marginal_over_effects(&m, mu, eta));
        }
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_z = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln() + 2.0 * h.ln();
    let lib = m.log_normalizer();
    assert!(
        (lib - log_z).abs() < 1e-8,
        "library {lib}, quadrature {log_z}"
    );
    assert_eq!(EightSchools::centered().log_normalizer(), lib);
    // The same integral computed in Python (statistics.NormalDist, step 0.05).
    assert!((lib - -31.31134735229577).abs() < 1e-8);
}

#[test]
fn eight_schools_parametrization_serializes_in_snake_case() {
    let m = EightSchools::non_centered();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(json, r#"{"parametrization":"non_centered"}"#);
    assert_eq!(serde_json::from_str::<EightSchools>(&json).unwrap(), m);
    assert_eq!(
        serde_json::to_string(&Parametrization::Centered).unwrap(),
        r#""centered""#
    );
}

// ---------------------------------------------------- logistic regression

#[test]
fn challenger_data_file_parses_to_23_launches_with_7_distressed() {
    let launches = challenger_launches();
    assert_eq!(launches.len(), 23);
    assert_eq!(launches.iter().filter(|l| l.distress).count(), 7);
    let temps: Vec<f64> = launches.iter().map(|l| l.temperature_f).collect();
    let expected = [
        66, 70, 69, 68, 67, 72, 73, 70, 57, 63, 70, 78, 67, 53, 67, 75, 70, 81, 76, 79, 75, 76, 58,
    ];
    assert_eq!(temps, expected.map(f64::from));
    let distress: Vec<u8> = launches.iter().map(|l| u8::from(l.distress)).collect();
    assert_eq!(
        distress,
        [
            0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1
        ]
    );
    assert_eq!(launches[0].flight, "STS-1");
    assert_eq!(launches[22].flight, "STS-61-C");

    let model = LogisticRegression::challenger();
    assert_eq!(model.len(), 23);
    for (x, l) in model.covariates().iter().zip(launches) {
        assert_eq!(
            *x,
            (l.temperature_f - CHALLENGER_TEMPERATURE_CENTER) / CHALLENGER_TEMPERATURE_SCALE
        );
    }
}

#[test]
fn logistic_regression_at_the_origin_is_23_log_half_plus_the_prior() {
    let model = LogisticRegression::challenger();
    // log N(0; 0, 10²) twice: −ln 2π − 2 ln 10.
    let prior = 2.0 * normal_logpdf(0.0, 0.0, 10.0);
    let expected = 23.0 * 0.5f64.ln() + prior;
    assert!((lp_at(&model, &[0.0, 0.0]) - expected).abs() < 1e-12);
    // At the origin ∂/∂α = Σ(yᵢ − ½) = 7 − 11.5.
    let (_, g) = model.log_density_and_grad(&DMatrix::<f64>::zeros(2, 1));
    assert!((g[0] - (7.0 - 11.5)).abs() < 1e-12);
}

#[test]
fn logistic_regression_log_density_is_the_bernoulli_log_likelihood_plus_prior() {
    let model = LogisticRegression::challenger();
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..20 {
        let (a, b): (f64, f64) = (rng.random_range(-5.0..5.0), rng.random_range(-8.0..8.0));
        let mut expected = normal_logpdf(a, 0.0, 10.0) + normal_logpdf(b, 0.0, 10.0);
        for (x, y) in model.covariates().iter().zip(model.outcomes()) {
            let p = 1.0 / (1.0 + (-(a + b * x)).exp());
            expected += if *y { p.ln() } else { (1.0 - p).ln() };
        }
        assert!((lp_at(&model, &[a, b]) - expected).abs() < 1e-9);
    }
}

#[test]
fn logistic_regression_gradients_match_central_differences() {
    let mut rng = StdRng::seed_from_u64(12);
    let challenger = LogisticRegression::challenger();
    let x = uniform_matrix(&mut rng, 2, 10, -4.0, 4.0);
    check_gradient("challenger", &challenger, &x);
    // A synthetic data set with another prior scale.
    let xs: Vec<f64> = (0..40)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect::<Vec<f64>>();
    let ys: Vec<bool> = xs.iter().map(|x| *x + 0.3 > 0.0).collect();
    let synthetic = LogisticRegression::new(xs, ys)
        .unwrap()
        .with_prior_scale(2.5)
        .unwrap();
    check_gradient(
        "synthetic",
        &synthetic,
        &uniform_matrix(&mut rng, 2, 10, -3.0, 3.0),
    );
}

#[test]
fn logistic_regression_is_finite_far_from_the_data() {
    // log σ(z) = −softplus(−z) stays finite where σ(z) underflows.
    let model = LogisticRegression::challenger();
    let x: DMatrix<f64> =
        DMatrix::from_column_slice(2, 3, &[800.0, -900.0, -700.0, 1000.0, 0.0, 2000.0]);
    let (lp, g) = model.log_density_and_grad(&x);
    assert!(lp.iter().all(|v| v.is_finite()), "{lp}");
    assert!(g.iter().all(|v| v.is_finite()), "{g}");
}

#[test]
fn logistic_regression_mode_by_newton_steps_has_a_negative_slope() {
    let model = LogisticRegression::challenger();
    // A few Newton steps from the origin with the library's gradient and a
    // Hessian by central differences of it.
    let grad = |p: [f64; 2]| -> DVector<f64> {
        model
            .log_density_and_grad(&column(&p))
            .1
            .column(0)
            .into_owned()
    };
    let mut p = [0.0, 0.0];
    for _ in 0..8 {
        let g = grad(p);
        let h = 1e-5;
        let mut hess = nalgebra::Matrix2::zeros();
        for i in 0..2 {
            let (mut up, mut down) = (p, p);
            up[i] += h;
            down[i] -= h;
            let d = (grad(up) - grad(down)) / (2.0 * h);
            hess[(0, i)] = d[0];
            hess[(1, i)] = d[1];
        }
        let step = hess
            .lu()
            .solve(&nalgebra::Vector2::new(g[0], g[1]))
            .unwrap();
        p = [p[0] - step[0], p[1] - step[1]];
    }
    assert!(p.iter().all(|v| v.is_finite()));
    assert!(grad(p).amax() < 1e-8, "gradient at the mode {}", grad(p));
    assert!(
        p[1] < 0.0,
        "slope {}: colder launches should have more distress",
        p[1]
    );
    let mode = model.posterior_mode();
    assert!((mode[0] - p[0]).abs() < 1e-6 && (mode[1] - p[1]).abs() < 1e-6);
    // The same mode from Newton's method in Python.
    assert!((mode[0] - -1.1989046595402495).abs() < 1e-9);
    assert!((mode[1] - -2.292259935176061).abs() < 1e-9);
    // The maximum-likelihood fit logit P = b₀ + b₁ t has the widely quoted
    // b₀ = 15.0429, b₁ = −0.2322; a very wide prior recovers it.
    let flat = LogisticRegression::challenger()
        .with_prior_scale(1e4)
        .unwrap()
        .posterior_mode();
    let b1 = flat[1] / CHALLENGER_TEMPERATURE_SCALE;
    let b0 = flat[0] - b1 * CHALLENGER_TEMPERATURE_CENTER;
    assert!(
        (b0 - 15.0429).abs() < 1e-3 && (b1 - -0.2322).abs() < 1e-4,
        "{b0}, {b1}"
    );
}

#[test]
fn logistic_regression_rejects_bad_data_and_priors() {
    let err = LogisticRegression::new(vec![0.0, 1.0], vec![true]).unwrap_err();
    assert!(
        matches!(err, normflow::Error::DimensionMismatch { .. }),
        "{err}"
    );
    let err = LogisticRegression::new(vec![0.0, f64::NAN], vec![true, false]).unwrap_err();
    assert!(err.to_string().contains("x[1]"), "{err}");
    for s in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        assert!(
            LogisticRegression::challenger()
                .with_prior_scale(s)
                .is_err()
        );
    }
    // No data: the posterior is the prior.
    let empty = LogisticRegression::new(vec![], vec![]).unwrap();
    assert!(empty.is_empty());
    let expected = normal_logpdf(1.0, 0.0, 10.0) + normal_logpdf(-2.0, 0.0, 10.0);
    assert!((lp_at(&empty, &[1.0, -2.0]) - expected).abs() < 1e-12);
}
