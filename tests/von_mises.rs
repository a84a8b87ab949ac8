//! The two-angle data set `torus`: the von Mises distribution (`log I₀`,
//! `I₁/I₀`, the Best–Fisher sampler against its density) and the mixture of
//! products of von Mises distributions (its density integrates to one on the
//! torus; its sampler's trigonometric moments are the closed form).

use std::f64::consts::PI;

use nalgebra::DMatrix;
use normflow::data::{Dataset, TorusMixture, VonMises, log_bessel_i0, mean_resultant_length};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `log I₀` against a trapezoid rule of `I₀(κ) = (1/2π) ∫ e^{κ cos t} dt`
/// (exponentially accurate for a periodic integrand), across the switch
/// from the series to the asymptotic expansion at κ = 20, and `I₁/I₀`
/// against the same rule for `I₁ = (1/2π) ∫ cos t e^{κ cos t} dt`.
#[test]
fn bessel_functions_match_quadrature() {
    let quad = |kappa: f64, weight: fn(f64) -> f64| {
        let n = 4000;
        let terms: Vec<f64> = (0..n)
            .map(|i| -PI + 2.0 * PI * i as f64 / n as f64)
            .map(|t| (kappa * (t.cos() - 1.0)).exp() * weight(t))
            .collect();
        kappa + (terms.iter().sum::<f64>() / n as f64).ln()
    };
    for kappa in [
        0.0, 1e-3, 0.5, 1.0, 3.0, 8.0, 19.99, 20.0, 20.01, 35.0, 100.0, 600.0,
    ] {
        let want = quad(kappa, |_| 1.0);
        let got = log_bessel_i0(kappa);
        assert!(
            (got - want).abs() <= 1e-13 * (1.0 + want.abs()),
            "κ {kappa}: {got} vs {want}"
        );
        if kappa > 0.0 {
            let a = (quad(kappa, f64::cos) - want).exp();
            let got = mean_resultant_length(kappa);
            assert!((got - a).abs() < 1e-13, "κ {kappa}: {got} vs {a}");
        }
    }
    assert!(log_bessel_i0(1e8).is_finite());
}

/// The Best–Fisher sampler against the density: mean `E[cos(x − μ)] =
/// I₁(κ)/I₀(κ)` and `E[sin(x − μ)] = 0` (within 5 standard errors), and a
/// χ² test on 24 equal-width bins whose probabilities come from the density
/// by quadrature (χ²₂₃: 99.99% quantile 55.0).
#[test]
fn von_mises_sampler_matches_its_density() {
    let n = 100_000;
    for (mu, kappa) in [(0.3, 0.5), (-2.9, 4.0), (3.0, 12.0)] {
        let vm = VonMises::new(mu, kappa);
        let mut r = rng(kappa as u64 + 7);
        let x: Vec<f64> = (0..n).map(|_| vm.sample(&mut r)).collect();
        assert!(x.iter().all(|v| (-PI..PI).contains(v)));
        let c = x.iter().map(|v| (v - mu).cos()).sum::<f64>() / n as f64;
        let s = x.iter().map(|v| (v - mu).sin()).sum::<f64>() / n as f64;
        let se = (0.5 / n as f64).sqrt();
        assert!(
            (c - mean_resultant_length(kappa)).abs() < 5.0 * se,
            "κ {kappa}: {c}"
        );
        assert!(s.abs() < 5.0 * se, "κ {kappa}: {s}");
        let bins = 24;
        let width = 2.0 * PI / bins as f64;
        let mut counts = vec![0usize; bins];
        for v in &x {
            counts[(((v + PI) / width) as usize).min(bins - 1)] += 1;
        }
        let chi2: f64 = (0..bins)
            .map(|b| {
                let m = 200;
                let p: f64 = (0..m)
                    .map(|i| {
                        vm.log_prob(-PI + width * (b as f64 + (i as f64 + 0.5) / m as f64))
                            .exp()
                    })
                    .sum::<f64>()
                    * width
                    / m as f64;
                let e = p * n as f64;
                (counts[b] as f64 - e).powi(2) / e
            })
            .sum();
        assert!(chi2 < 55.0, "κ {kappa}: χ² {chi2}");
    }
}

/// The two-angle mixture: its density integrates to one on the torus, the
/// sampler's first trigonometric moments are the closed form
/// `E[e^{i x_d}] = Σ_c w_c A(κ_cd) e^{i μ_cd}`, and the named data set is
/// this sampler.
#[test]
fn the_two_angle_set_is_a_normalised_mixture_with_a_matching_sampler() {
    let mix = TorusMixture::two_angles();
    let g = 300;
    let h = 2.0 * PI / g as f64;
    let grid = DMatrix::from_fn(2, g * g, |i, j| {
        let k = if i == 0 { j % g } else { j / g };
        -PI + (k as f64 + 0.5) * h
    });
    let mass: f64 = mix.log_density(&grid).iter().map(|v| v.exp()).sum::<f64>() * h * h;
    assert!((mass - 1.0).abs() < 1e-10, "mass {mass}");
    let n = 100_000;
    let x = mix.sample(n, &mut rng(21));
    assert_eq!(x, Dataset::Torus.generate(n, &mut rng(21)));
    let w = mix.weights();
    for d in 0..2 {
        let (mut c, mut s) = (0.0, 0.0);
        for (wc, comp) in w.iter().zip(mix.components()) {
            let a = mean_resultant_length(comp[d].kappa());
            c += wc * a * comp[d].mu().cos();
            s += wc * a * comp[d].mu().sin();
        }
        let ec = x.row(d).iter().map(|v| v.cos()).sum::<f64>() / n as f64;
        let es = x.row(d).iter().map(|v| v.sin()).sum::<f64>() / n as f64;
        let se = (1.0 / n as f64).sqrt();
        assert!(
            (ec - c).abs() < 5.0 * se && (es - s).abs() < 5.0 * se,
            "angle {d}"
        );
    }
    let outside = DMatrix::from_row_slice(2, 2, &[PI, 0.0, 0.0, f64::NAN]);
    assert!(
        mix.log_density(&outside)
            .iter()
            .all(|v| *v == f64::NEG_INFINITY)
    );
}
