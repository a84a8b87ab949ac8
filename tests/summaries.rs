//! Closed-form moments, entropies, CDFs, quantiles and KL divergences
//! against scipy (values printed by scipy 1.17.1 at the stated points), and
//! the Monte Carlo estimates against the closed forms within a few standard
//! errors.

use nalgebra::{DMatrix, DVector};
use normflow::bijector::Exp;
use normflow::distribution::{
    KlDivergence, Laplace, Logistic, Marginals, MultivariateNormal, Normal, Summary,
    TransformedDistribution, Uniform, estimate_entropy, estimate_kl, estimate_mean,
    estimate_variance,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn one(v: f64) -> DMatrix<f64> {
    DMatrix::from_element(1, 1, v)
}

fn close(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * (1.0 + want.abs()),
        "{got} vs {want}"
    );
}

#[test]
fn normal_matches_scipy() {
    let d = Normal::<f64>::scalar(0.3, 0.8).unwrap();
    // scipy.stats.norm.cdf(0.7, 0.3, 0.8), .ppf(0.025, 0.3, 0.8), .entropy(0.3, 0.8)
    close(d.cdf(&one(0.7))[(0, 0)], 0.691462461274013, 1e-15);
    close(d.quantile(&one(0.025))[(0, 0)], -1.2679711876320436, 1e-14);
    close(d.entropy(), 1.195794981890463, 1e-15);
    let s = Normal::<f64>::scalar(0.0, 1.0).unwrap();
    // norm.ppf(1e-10) and norm.cdf(-9): the far tails, relative accuracy.
    close(s.quantile(&one(1e-10))[(0, 0)], -6.361340902404056, 1e-14);
    let tail = s.cdf(&one(-9.0))[(0, 0)];
    assert!(
        (tail / 1.1285884059538324e-19 - 1.0).abs() < 1e-13,
        "{tail}"
    );
    assert_eq!(s.quantile(&one(0.0))[(0, 0)], f64::NEG_INFINITY);
    assert!(s.quantile(&one(1.5))[(0, 0)].is_nan());
}

#[test]
fn quantile_inverts_cdf_for_every_family() {
    let p = DMatrix::from_fn(1, 9, |_, j| (j as f64 + 0.5) / 9.0);
    let n = Normal::<f64>::scalar(0.3, 0.8).unwrap();
    let l = Laplace::<f64>::scalar(0.2, 1.5).unwrap();
    let g = Logistic::<f64>::scalar(-0.5, 0.7).unwrap();
    let u = Uniform::<f64>::scalar(-1.0, 2.0).unwrap();
    let fams: [&dyn Marginals<f64>; 4] = [&n, &l, &g, &u];
    for d in fams {
        let back = d.cdf(&d.quantile(&p));
        assert!((back - &p).amax() < 1e-13, "{d:?}");
    }
}

#[test]
fn laplace_logistic_uniform_match_scipy() {
    let l = Laplace::<f64>::scalar(0.2, 1.5).unwrap();
    // laplace.cdf(-0.4, 0.2, 1.5), .ppf(0.9, 0.2, 1.5), .entropy(0.2, 1.5)
    close(l.cdf(&one(-0.4))[(0, 0)], 0.3351600230178196, 1e-15);
    close(l.quantile(&one(0.9))[(0, 0)], 2.614156868651151, 1e-15);
    close(l.entropy(), 2.09861228866811, 1e-15);
    close(l.variance()[0], 2.0 * 1.5 * 1.5, 1e-15);
    let g = Logistic::<f64>::scalar(-0.5, 0.7).unwrap();
    // logistic.cdf(1.1, -0.5, 0.7), .ppf(0.3, …), .entropy(…), .var(…)
    close(g.cdf(&one(1.1))[(0, 0)], 0.9076869712477021, 1e-15);
    close(g.quantile(&one(0.3))[(0, 0)], -1.0931085022710425, 1e-15);
    close(g.entropy(), 1.6433250560612676, 1e-15);
    close(g.variance()[0], 1.612035385511262, 1e-15);
    let u = Uniform::<f64>::scalar(-1.0, 2.0).unwrap();
    // uniform(loc = −1, scale = 3): cdf(0.5) = 0.5, entropy = log 3
    close(u.cdf(&one(0.5))[(0, 0)], 0.5, 1e-15);
    close(u.entropy(), 1.0986122886681098, 1e-15);
    close(u.mean()[0], 0.5, 1e-15);
    close(u.variance()[0], 0.75, 1e-15);
    assert_eq!(u.cdf(&one(5.0))[(0, 0)], 1.0);
}

#[test]
fn kl_divergences_match_their_closed_forms() {
    let p = Normal::<f64>::scalar(0.3, 0.8).unwrap();
    let q = Normal::<f64>::scalar(-0.5, 1.7).unwrap();
    close(p.kl_divergence(&q).unwrap(), 0.4752250895736121, 1e-15);
    close(p.kl_divergence(&p).unwrap(), 0.0, 1e-15);
    // numpy: ½[tr(Σ₂⁻¹Σ₁) + Δᵀ Σ₂⁻¹ Δ − 2 + log|Σ₂| − log|Σ₁|] = 1.0154831466368393;
    // scipy.stats.multivariate_normal(m1, S1).entropy() = 2.7907217266737248
    let m1 = MultivariateNormal::new(
        DVector::from_vec(vec![0.5, -1.0]),
        DMatrix::from_row_slice(2, 2, &[2.0, 0.3, 0.3, 0.5]),
    )
    .unwrap();
    let m2 = MultivariateNormal::new(
        DVector::from_vec(vec![0.0, 0.2]),
        DMatrix::from_row_slice(2, 2, &[1.0, -0.2, -0.2, 1.5]),
    )
    .unwrap();
    close(m1.kl_divergence(&m2).unwrap(), 1.0154831466368393, 1e-14);
    close(m1.entropy(), 2.7907217266737248, 1e-14);
    let a = Uniform::<f64>::scalar(0.0, 1.0).unwrap();
    let b = Uniform::<f64>::scalar(-1.0, 3.0).unwrap();
    close(a.kl_divergence(&b).unwrap(), 4f64.ln(), 1e-15);
    assert_eq!(b.kl_divergence(&a).unwrap(), f64::INFINITY);
    let two = Normal::<f64>::from_slices(&[0.0, 0.0], &[1.0, 1.0]).unwrap();
    assert!(p.kl_divergence(&two).is_err());
}

#[test]
fn monte_carlo_estimates_agree_with_closed_forms() {
    let mut rng = StdRng::seed_from_u64(7);
    let d = Laplace::<f64>::from_slices(&[0.2, -1.0], &[1.5, 0.3]).unwrap();
    let n = 40_000;
    let (m, v) = (d.mean(), d.variance());
    for (i, e) in estimate_mean(&d, n, &mut rng).unwrap().iter().enumerate() {
        assert!(
            (e.value - m[i]).abs() < 4.0 * e.standard_error,
            "mean {i}: {e:?}"
        );
    }
    for (i, e) in estimate_variance(&d, n, &mut rng)
        .unwrap()
        .iter()
        .enumerate()
    {
        assert!(
            (e.value - v[i]).abs() < 4.0 * e.standard_error,
            "variance {i}: {e:?}"
        );
    }
    let h = estimate_entropy(&d, n, &mut rng).unwrap();
    assert!(
        (h.value - d.entropy()).abs() < 4.0 * h.standard_error,
        "{h:?}"
    );
    // A transformed distribution: exp of N(0.3, 0.8²) is a log-normal with
    // entropy μ + ½ + log(σ√(2π)) = scipy.stats.lognorm.entropy(0.8, scale=e^0.3)
    // = 1.495794981890463.
    let ln = TransformedDistribution::new(Normal::<f64>::scalar(0.3, 0.8).unwrap(), Exp).unwrap();
    let h = estimate_entropy(&ln, n, &mut rng).unwrap();
    assert!(
        (h.value - 1.495794981890463).abs() < 4.0 * h.standard_error,
        "{h:?}"
    );
    let p = Normal::<f64>::scalar(0.3, 0.8).unwrap();
    let q = Normal::<f64>::scalar(-0.5, 1.7).unwrap();
    let kl = estimate_kl(&p, &q, n, &mut rng).unwrap();
    let exact = p.kl_divergence(&q).unwrap();
    assert!(
        (kl.value - exact).abs() < 4.0 * kl.standard_error,
        "{kl:?} vs {exact}"
    );
    assert!(estimate_mean(&p, 1, &mut rng).is_err());
}
