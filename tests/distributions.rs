//! Integration tests of `normflow::distribution` through the public API.
//!
//! Every numeric expectation says where it comes from: a closed-form density
//! written out independently in this file (with the scipy.stats call that
//! evaluates the same formula), or a textbook moment. The sections follow the
//! contract of DESIGN.md ("The math every part obeys", "Errors and bad input"):
//!
//! 1. `log_prob` of every distribution against its closed form;
//! 2. transformed distributions against closed-form oracles (log-normal,
//!    logit-normal, affine maps of a standard normal), exact `-inf` outside the
//!    support, and `sample_and_log_prob` against `log_prob`;
//! 3. sampling moments within a few standard errors;
//! 4. normalisation by quadrature (`normflow::testing::check_density_normalizes`);
//! 5. f32 against f64;
//! 6. constructor errors;
//! 7. serde round trips;
//! 8. panics on the wrong number of rows.
//!
//! Conventions: a batch is `D × n`, one column per sample; forward = base → data.

use std::f64::consts::PI;

use nalgebra::{DMatrix, DVector};
use normflow::prelude::*;
use normflow::testing::{check_density_normalizes, strategies};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde::de::DeserializeOwned;

// ---------------------------------------------------------------------------
// Helpers and independent closed forms
// ---------------------------------------------------------------------------

/// `ln(2π)`.
fn ln_2pi() -> f64 {
    (2.0 * PI).ln()
}

/// A `d × n` batch from its samples laid end to end: sample `j` is
/// `data[j·d .. (j+1)·d]` (nalgebra is column-major).
fn batch(d: usize, data: &[f64]) -> DMatrix<f64> {
    assert_eq!(
        data.len() % d,
        0,
        "batch: {} values for dimension {d}",
        data.len()
    );
    DMatrix::from_column_slice(d, data.len() / d, data)
}

fn dvec(v: &[f64]) -> DVector<f64> {
    DVector::from_column_slice(v)
}

/// A matrix written row by row, as one reads it on paper.
fn mat(r: usize, c: usize, row_major: &[f64]) -> DMatrix<f64> {
    DMatrix::from_row_slice(r, c, row_major)
}

/// `|got − want| ≤ tol · (1 + |want|)`; an infinite `want` must be matched exactly.
#[track_caller]
fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    if want.is_infinite() {
        assert_eq!(got, want, "{what}");
        return;
    }
    let err = (got - want).abs();
    assert!(
        err <= tol * (1.0 + want.abs()),
        "{what}: got {got:.17e}, want {want:.17e}, error {err:.3e} > {tol:.1e}·(1 + |want|)"
    );
}

/// `ln N(x; μ, σ²) = −½((x − μ)/σ)² − ln σ − ½ ln 2π` (= `scipy.stats.norm(μ, σ).logpdf(x)`).
fn normal_lpdf(x: f64, mu: f64, sigma: f64) -> f64 {
    let z = (x - mu) / sigma;
    -0.5 * z * z - sigma.ln() - 0.5 * ln_2pi()
}

/// `ln[e^{−|x−μ|/b} / (2b)] = −ln(2b) − |x − μ|/b` (= `scipy.stats.laplace(μ, b).logpdf(x)`).
fn laplace_lpdf(x: f64, mu: f64, b: f64) -> f64 {
    -(2.0 * b).ln() - (x - mu).abs() / b
}

/// The logistic density `e^{−z} / (s (1 + e^{−z})²)`, `z = (x − μ)/s`
/// (= `scipy.stats.logistic(μ, s).logpdf(x)`). The density is even in `z`, so
/// it is evaluated at `−|z|`, where `e^{−|z|} ≤ 1` cannot overflow:
/// `−|z| − ln s − 2 ln(1 + e^{−|z|})`.
fn logistic_lpdf(x: f64, mu: f64, s: f64) -> f64 {
    let a = ((x - mu) / s).abs();
    -a - s.ln() - 2.0 * (-a).exp().ln_1p()
}

/// `ln N(x; μ, Σ)` for `Σ = [[a, b], [b, c]]` with the explicit inverse
/// `Σ⁻¹ = [[c, −b], [−b, a]] / (ac − b²)`:
/// `−½ dᵀΣ⁻¹d − ½ ln det Σ − ln 2π`, `d = x − μ`
/// (= `scipy.stats.multivariate_normal(μ, Σ).logpdf(x)`).
fn mvn2_lpdf(x: [f64; 2], mu: [f64; 2], cov: [[f64; 2]; 2]) -> f64 {
    let [[a, b], [b2, c]] = cov;
    assert_eq!(b, b2, "symmetric covariance");
    let det = a * c - b * b;
    let (d0, d1) = (x[0] - mu[0], x[1] - mu[1]);
    let q = (c * d0 * d0 - 2.0 * b * d0 * d1 + a * d1 * d1) / det;
    -0.5 * q - 0.5 * det.ln() - ln_2pi()
}

/// `ln N(x; μ, Σ)` for a 3 × 3 `Σ`, with the determinant by cofactor expansion
/// along the first row and the inverse as adjugate / determinant.
fn mvn3_lpdf(x: [f64; 3], mu: [f64; 3], cov: [[f64; 3]; 3]) -> f64 {
    let [[a, b, c], [d, e, f], [g, h, i]] = cov;
    let det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
    let adj = [
        [e * i - f * h, c * h - b * i, b * f - c * e],
        [f * g - d * i, a * i - c * g, c * d - a * f],
        [d * h - e * g, b * g - a * h, a * e - b * d],
    ];
    let dx = [x[0] - mu[0], x[1] - mu[1], x[2] - mu[2]];
    let mut q = 0.0;
    for r in 0..3 {
        for s in 0..3 {
            q += dx[r] * adj[r][s] / det * dx[s];
        }
    }
    -0.5 * q - 0.5 * det.ln() - 1.5 * ln_2pi()
}

/// `L Lᵀ` written out entry by entry (no nalgebra product), for a 3 × 3 `L`.
fn l_lt3(l: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    // (L Lᵀ)ᵢⱼ = Σₖ Lᵢₖ Lⱼₖ: the dot product of rows i and j.
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| l[i][k] * l[j][k]).sum()))
}

fn arr3_to_mat(a: [[f64; 3]; 3]) -> DMatrix<f64> {
    DMatrix::from_fn(3, 3, |i, j| a[i][j])
}

fn seeded(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

// ---------------------------------------------------------------------------
// 1. log_prob against closed forms
// ---------------------------------------------------------------------------

#[test]
fn standard_normal_log_prob_matches_closed_form() {
    let d1 = StandardNormal::new(1).unwrap();
    // scipy.stats.norm.logpdf(0.0) = −½ ln 2π = −0.9189385332046727
    // (digits from the formula in double precision).
    let lp: DVector<f64> = d1.log_prob(&batch(1, &[0.0]));
    assert_close(lp[0], -0.918_938_533_204_672_7, 1e-15, "N(0,1) at 0");
    // ln N(x; 0, 1) = −½x² − ½ ln 2π.
    let xs = [1.5, -3.0, 10.0, -0.25];
    let lp = d1.log_prob(&batch(1, &xs));
    for (j, &x) in xs.iter().enumerate() {
        assert_close(lp[j], normal_lpdf(x, 0.0, 1.0), 1e-14, "N(0,1)");
    }
    // D = 3: −½‖x‖² − (3/2) ln 2π.
    let d3 = StandardNormal::new(3).unwrap();
    let data = [1.0, 2.0, -0.5, 0.0, 0.0, 0.0, -4.0, 0.25, 3.0];
    let lp: DVector<f64> = d3.log_prob(&batch(3, &data));
    assert_eq!(lp.len(), 3);
    for j in 0..3 {
        let c = &data[3 * j..3 * j + 3];
        let want = -0.5 * (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]) - 1.5 * ln_2pi();
        assert_close(lp[j], want, 1e-14, "N(0, I_3)");
    }
}

#[test]
fn normal_log_prob_matches_closed_form() {
    let d = Normal::new(dvec(&[3.0]), dvec(&[2.0])).unwrap();
    let lp = d.log_prob(&batch(1, &[1.0, 2.0, 3.0, -7.5]));
    // scipy.stats.norm(3, 2).logpdf(1.0) = −½(1)² − ln 2 − ½ ln 2π = −2.112085713764618
    assert_close(lp[0], -2.112_085_713_764_618, 1e-15, "N(3, 2²) at 1");
    // scipy.stats.norm(3, 2).logpdf(2.0) = −½(½)² − ln 2 − ½ ln 2π = −1.737085713764618
    assert_close(lp[1], -1.737_085_713_764_618, 1e-15, "N(3, 2²) at 2");
    // At the mean: −ln σ − ½ ln 2π.
    assert_close(
        lp[2],
        -(2.0_f64).ln() - 0.5 * ln_2pi(),
        1e-15,
        "N(3, 2²) at 3",
    );
    assert_close(
        lp[3],
        normal_lpdf(-7.5, 3.0, 2.0),
        1e-15,
        "N(3, 2²) at -7.5",
    );

    // Diagonal 2-D: the sum of the per-coordinate log-densities.
    let (loc, scale) = ([1.0, -2.0], [0.5, 3.0]);
    let d = Normal::new(dvec(&loc), dvec(&scale)).unwrap();
    let data = [1.0, -2.0, 0.3, 4.0, -2.5, -11.0, 7.0, 0.0];
    let lp = d.log_prob(&batch(2, &data));
    for j in 0..4 {
        let want = normal_lpdf(data[2 * j], loc[0], scale[0])
            + normal_lpdf(data[2 * j + 1], loc[1], scale[1]);
        assert_close(lp[j], want, 1e-14, "diagonal normal");
    }
}

#[test]
fn multivariate_normal_log_prob_matches_closed_form_2d() {
    let cov = [[2.0, 0.5], [0.5, 1.0]];
    let d = MultivariateNormal::new(dvec(&[0.0, 0.0]), mat(2, 2, &[2.0, 0.5, 0.5, 1.0])).unwrap();
    let lp = d.log_prob(&batch(2, &[1.0, -1.0]));
    // scipy.stats.multivariate_normal([0, 0], [[2, .5], [.5, 1]]).logpdf([1, -1]):
    // det Σ = 1.75, dᵀΣ⁻¹d = (1·1 − 2·0.5·1·(−1) + 2·1)/1.75 = 4/1.75, so
    // −½·4/1.75 − ½ ln 1.75 − ln 2π = −3.2605421032341995.
    assert_close(lp[0], -3.260_542_103_234_199_5, 1e-15, "MVN 2-D at (1, -1)");

    let mu = [0.5, -1.0];
    let d = MultivariateNormal::new(dvec(&mu), mat(2, 2, &[2.0, 0.5, 0.5, 1.0])).unwrap();
    let data = [0.5, -1.0, 3.0, 2.0, -4.0, -0.5, 0.1, -7.0];
    let lp = d.log_prob(&batch(2, &data));
    for j in 0..4 {
        let want = mvn2_lpdf([data[2 * j], data[2 * j + 1]], mu, cov);
        assert_close(lp[j], want, 1e-14, "MVN 2-D");
    }
}

#[test]
fn multivariate_normal_log_prob_matches_closed_form_3d() {
    let mu = [0.5, -1.0, 2.0];
    let cov = [[4.0, 1.0, 0.5], [1.0, 3.0, -0.75], [0.5, -0.75, 2.0]];
    let d = MultivariateNormal::new(dvec(&mu), arr3_to_mat(cov)).unwrap();
    let data = [
        0.5, -1.0, 2.0, 1.0, 1.0, 1.0, -3.0, 2.5, 0.0, 10.0, -8.0, 4.0,
    ];
    let lp = d.log_prob(&batch(3, &data));
    for j in 0..4 {
        let x = [data[3 * j], data[3 * j + 1], data[3 * j + 2]];
        assert_close(
            lp[j],
            mvn3_lpdf(x, mu, cov),
            1e-13,
            "MVN 3-D from covariance",
        );
    }
    // The covariance round-trips through the Cholesky factor.
    assert!((d.covariance() - arr3_to_mat(cov)).amax() < 1e-14);

    // from_scale_tril: covariance L Lᵀ. A negative diagonal entry is allowed
    // (|det L| enters the density); flipping the sign of a column of L leaves
    // L Lᵀ unchanged.
    let l = [[2.0, 0.0, 0.0], [0.5, -1.5, 0.0], [-1.0, 0.25, 0.75]];
    let mu = [1.0, 0.0, -1.0];
    let cov = l_lt3(l);
    let d = MultivariateNormal::from_scale_tril(dvec(&mu), arr3_to_mat(l)).unwrap();
    let d_cov = MultivariateNormal::new(dvec(&mu), arr3_to_mat(cov)).unwrap();
    let lp = d.log_prob(&batch(3, &data));
    let lp_cov = d_cov.log_prob(&batch(3, &data));
    for j in 0..4 {
        let x = [data[3 * j], data[3 * j + 1], data[3 * j + 2]];
        let want = mvn3_lpdf(x, mu, cov);
        assert_close(lp[j], want, 1e-13, "MVN 3-D from scale_tril");
        assert_close(lp_cov[j], want, 1e-13, "MVN 3-D from L Lᵀ");
    }
}

#[test]
fn uniform_log_prob_inside_boundary_and_outside() {
    // scipy.stats.uniform(loc=-1, scale=3).logpdf(0.5) = −ln 3 = −1.0986122886681098.
    let u = Uniform::new(dvec(&[-1.0]), dvec(&[2.0])).unwrap();
    let lp = u.log_prob(&batch(
        1,
        &[0.5, -1.0, 2.0, -1.000001, 2.5, f64::NAN, f64::INFINITY],
    ));
    assert_close(lp[0], -1.098_612_288_668_109_8, 1e-15, "U(-1, 2) inside");
    // The box is closed, like scipy's support [loc, loc + scale].
    assert_close(lp[1], -(3.0_f64).ln(), 1e-15, "U(-1, 2) at low");
    assert_close(lp[2], -(3.0_f64).ln(), 1e-15, "U(-1, 2) at high");
    // Outside (and NaN): exactly -inf.
    for j in 3..7 {
        assert_eq!(lp[j], f64::NEG_INFINITY, "U(-1, 2) outside, point {j}");
    }

    // 2-D box [-1, 2] × [0, 0.5]: −ln(3 · 0.5) inside; one coordinate out → −inf.
    let u = Uniform::new(dvec(&[-1.0, 0.0]), dvec(&[2.0, 0.5])).unwrap();
    let lp = u.log_prob(&batch(
        2,
        &[0.0, 0.25, 2.0, 0.5, 0.0, -0.01, 2.01, 0.25, 0.0, f64::NAN],
    ));
    assert_close(lp[0], -(1.5_f64).ln(), 1e-15, "2-D uniform inside");
    assert_close(lp[1], -(1.5_f64).ln(), 1e-15, "2-D uniform corner");
    for j in 2..5 {
        assert_eq!(lp[j], f64::NEG_INFINITY, "2-D uniform outside, point {j}");
    }
}

#[test]
fn laplace_log_prob_matches_closed_form() {
    let d = Laplace::new(dvec(&[1.0]), dvec(&[2.0])).unwrap();
    let lp = d.log_prob(&batch(1, &[4.0, 1.0, -9.0]));
    // scipy.stats.laplace(1, 2).logpdf(4.0) = −ln 4 − 3/2 = −2.886294361119891.
    assert_close(lp[0], -2.886_294_361_119_891, 1e-15, "Laplace(1, 2) at 4");
    // At the median: −ln(2b).
    assert_close(lp[1], -(4.0_f64).ln(), 1e-15, "Laplace(1, 2) at 1");
    assert_close(
        lp[2],
        laplace_lpdf(-9.0, 1.0, 2.0),
        1e-15,
        "Laplace(1, 2) at -9",
    );

    let (loc, scale) = ([0.0, -1.0], [0.5, 3.0]);
    let d = Laplace::new(dvec(&loc), dvec(&scale)).unwrap();
    let data = [0.0, -1.0, 0.7, 5.0, -3.0, -20.0];
    let lp = d.log_prob(&batch(2, &data));
    for j in 0..3 {
        let want = laplace_lpdf(data[2 * j], loc[0], scale[0])
            + laplace_lpdf(data[2 * j + 1], loc[1], scale[1]);
        assert_close(lp[j], want, 1e-14, "2-D Laplace");
    }
}

#[test]
fn logistic_log_prob_matches_closed_form() {
    let d = Logistic::new(dvec(&[1.0]), dvec(&[0.5])).unwrap();
    let lp = d.log_prob(&batch(1, &[2.0, 1.0, -3.0]));
    // scipy.stats.logistic(1, 0.5).logpdf(2.0): z = 2,
    // −z − ln s − 2 ln(1 + e^{−z}) = −1.5607088415259995.
    assert_close(
        lp[0],
        -1.560_708_841_525_999_5,
        1e-15,
        "Logistic(1, .5) at 2",
    );
    // At the mean: ln(1/(4s)).
    assert_close(lp[1], -(2.0_f64).ln(), 1e-15, "Logistic(1, .5) at 1");
    assert_close(
        lp[2],
        logistic_lpdf(-3.0, 1.0, 0.5),
        1e-15,
        "Logistic(1, .5) at -3",
    );

    // Far tails on both sides stay finite: ln p(±800) = −800 − 2 ln(1 + e^{−800}) = −800
    // for Logistic(0, 1) (a naive e^{−z} overflows at z = −800).
    let d = Logistic::new(dvec(&[0.0]), dvec(&[1.0])).unwrap();
    let lp = d.log_prob(&batch(1, &[800.0, -800.0]));
    assert_close(lp[0], -800.0, 1e-15, "Logistic(0, 1) at 800");
    assert_close(lp[1], -800.0, 1e-15, "Logistic(0, 1) at -800");

    let (loc, scale) = ([1.0, -2.0], [0.5, 3.0]);
    let d = Logistic::new(dvec(&loc), dvec(&scale)).unwrap();
    let data = [1.0, -2.0, 2.0, 10.0, -6.0, -20.0];
    let lp = d.log_prob(&batch(2, &data));
    for j in 0..3 {
        let want = logistic_lpdf(data[2 * j], loc[0], scale[0])
            + logistic_lpdf(data[2 * j + 1], loc[1], scale[1]);
        assert_close(lp[j], want, 1e-14, "2-D logistic");
    }
}

#[test]
fn gaussian_mixture_log_prob_matches_explicit_sum() {
    // Weights [1, 3] are normalised to [0.25, 0.75].
    let m = GaussianMixture::new(
        dvec(&[1.0, 3.0]),
        mat(1, 2, &[-2.0, 2.0]),
        mat(1, 2, &[0.5, 1.0]),
    )
    .unwrap();
    let xs = [-2.0, 0.0, 0.7, 3.0, -5.0];
    let lp = m.log_prob(&batch(1, &xs));
    for (j, &x) in xs.iter().enumerate() {
        // ln(Σₖ wₖ N(x; μₖ, σₖ²)), densities summed directly.
        let p = 0.25 * normal_lpdf(x, -2.0, 0.5).exp() + 0.75 * normal_lpdf(x, 2.0, 1.0).exp();
        assert_close(lp[j], p.ln(), 1e-14, "1-D mixture");
    }
    // Far out the direct sum underflows (e^{−1152} = 0 in f64) but log-sum-exp
    // does not: the second component dominates by a factor e^{4000+}, so
    // ln p(50) = ln 0.75 + ln N(50; 2, 1) to double precision.
    let lp = m.log_prob(&batch(1, &[50.0]));
    assert_close(
        lp[0],
        0.75_f64.ln() + normal_lpdf(50.0, 2.0, 1.0),
        1e-15,
        "1-D mixture far tail",
    );

    // 2-D, three components with diagonal covariances: wₖ Πᵢ N(xᵢ; μᵢₖ, σᵢₖ²).
    let w = [0.2, 0.5, 0.3];
    let locs = [[-2.0, 0.0, 3.0], [1.0, -1.0, 2.0]]; // row i = coordinate i
    let scales = [[0.5, 1.0, 2.0], [1.0, 0.75, 0.5]];
    let m = GaussianMixture::new(
        dvec(&[2.0, 5.0, 3.0]),
        mat(2, 3, &[locs[0], locs[1]].concat()),
        mat(2, 3, &[scales[0], scales[1]].concat()),
    )
    .unwrap();
    let data = [0.0, 0.0, 3.0, 2.0, -2.0, 1.0, 1.5, -0.5, -4.0, 5.0];
    let lp = m.log_prob(&batch(2, &data));
    for j in 0..5 {
        let x = [data[2 * j], data[2 * j + 1]];
        let p: f64 = (0..3)
            .map(|k| {
                w[k] * (normal_lpdf(x[0], locs[0][k], scales[0][k])
                    + normal_lpdf(x[1], locs[1][k], scales[1][k]))
                .exp()
            })
            .sum();
        assert_close(lp[j], p.ln(), 1e-13, "2-D mixture");
    }
}

// ---------------------------------------------------------------------------
// 2. Transformed distributions: closed-form oracles and support
// ---------------------------------------------------------------------------

/// Log-normal: `ln p(y) = −ln y − ln σ − ½ ln 2π − (ln y − μ)²/(2σ²)` for `y > 0`
/// (= `scipy.stats.lognorm(s=σ, scale=e^μ).logpdf(y)`).
fn lognormal_lpdf(y: f64, mu: f64, sigma: f64) -> f64 {
    let l = y.ln();
    -l - sigma.ln() - 0.5 * ln_2pi() - (l - mu) * (l - mu) / (2.0 * sigma * sigma)
}

/// Logit-normal: `ln p(y) = ln N(logit y; μ, σ²) − ln y − ln(1 − y)`, `0 < y < 1`.
fn logit_normal_lpdf(y: f64, mu: f64, sigma: f64) -> f64 {
    normal_lpdf((y / (1.0 - y)).ln(), mu, sigma) - y.ln() - (1.0 - y).ln()
}

#[test]
fn exp_of_normal_is_log_normal() {
    let d = TransformedDistribution::new(Normal::new(dvec(&[3.0]), dvec(&[2.0])).unwrap(), Exp)
        .unwrap();
    let ys = [1.0, 5.0, 0.01, 150.0, 20.085_536_923_187_668];
    let lp = d.log_prob(&batch(1, &ys));
    // scipy.stats.lognorm(s=2, scale=e³).logpdf(1.0) = −ln 2 − ½ ln 2π − 9/8 = −2.737085713764618.
    assert_close(lp[0], -2.737_085_713_764_618, 1e-15, "lognormal at 1");
    // scipy.stats.lognorm(s=2, scale=e³).logpdf(5.0) = −3.463231491120672 (same formula).
    assert_close(lp[1], -3.463_231_491_120_672, 1e-15, "lognormal at 5");
    for (j, &y) in ys.iter().enumerate() {
        assert_close(lp[j], lognormal_lpdf(y, 3.0, 2.0), 1e-14, "lognormal");
    }
}

#[test]
fn sigmoid_of_normal_is_logit_normal() {
    let d = TransformedDistribution::new(Normal::new(dvec(&[0.5]), dvec(&[1.5])).unwrap(), Sigmoid)
        .unwrap();
    let ys = [1e-6, 0.1, 0.5, 0.73, 0.999];
    let lp = d.log_prob(&batch(1, &ys));
    for (j, &y) in ys.iter().enumerate() {
        assert_close(lp[j], logit_normal_lpdf(y, 0.5, 1.5), 1e-12, "logit-normal");
    }
}

#[test]
fn tanh_of_standard_normal_matches_change_of_variables() {
    let d =
        TransformedDistribution::<f64, _, _>::new(StandardNormal::new(1).unwrap(), Tanh).unwrap();
    let ys = [-0.9, 0.0, 0.5, 0.999];
    let lp = d.log_prob(&batch(1, &ys));
    for (j, &y) in ys.iter().enumerate() {
        // x = atanh y, dx/dy = 1/(1 − y²): ln p(y) = ln N(atanh y; 0, 1) − ln(1 − y²).
        let want = normal_lpdf(y.atanh(), 0.0, 1.0) - (1.0 - y * y).ln();
        assert_close(lp[j], want, 1e-12, "tanh of N(0,1)");
    }
}

#[test]
fn chain_scale_shift_exp_is_log_normal() {
    // y = exp(2x + 1), x ~ N(0, 1): a log-normal with μ = 1, σ = 2.
    let flow = Scale::new(dvec(&[2.0]))
        .unwrap()
        .then(Shift::new(dvec(&[1.0])).unwrap())
        .then(Exp);
    let d =
        TransformedDistribution::<f64, _, _>::new(StandardNormal::new(1).unwrap(), flow).unwrap();
    let ys = [0.5, std::f64::consts::E, 40.0];
    let lp = d.log_prob(&batch(1, &ys));
    for (j, &y) in ys.iter().enumerate() {
        assert_close(lp[j], lognormal_lpdf(y, 1.0, 2.0), 1e-14, "exp(2x + 1)");
    }
}

#[test]
fn out_of_support_is_exactly_neg_infinity_never_nan() {
    let inf = f64::INFINITY;
    let nan = f64::NAN;
    let normal = || Normal::new(dvec(&[0.5]), dvec(&[1.5])).unwrap();

    // Exp: the image is (0, ∞); y ≤ 0, NaN (and the limit y = ∞) have density 0.
    let d = TransformedDistribution::new(normal(), Exp).unwrap();
    let lp = d.log_prob(&batch(1, &[0.0, -0.0, -1e-300, -1.0, -inf, nan, inf]));
    for (j, v) in lp.iter().enumerate() {
        assert_eq!(*v, f64::NEG_INFINITY, "Exp, point {j}");
    }

    // Sigmoid: the image is (0, 1).
    let d = TransformedDistribution::new(normal(), Sigmoid).unwrap();
    let lp = d.log_prob(&batch(1, &[0.0, 1.0, -0.5, 1.5, nan, inf, -inf]));
    for (j, v) in lp.iter().enumerate() {
        assert_eq!(*v, f64::NEG_INFINITY, "Sigmoid, point {j}");
    }

    // Tanh: the image is (−1, 1).
    let d = TransformedDistribution::new(normal(), Tanh).unwrap();
    let lp = d.log_prob(&batch(1, &[-1.0, 1.0, -2.0, 2.0, nan, inf]));
    for (j, v) in lp.iter().enumerate() {
        assert_eq!(*v, f64::NEG_INFINITY, "Tanh, point {j}");
    }

    // Through a chain: y = exp(x) − 1 has image (−1, ∞). At y = −2 the inner
    // log sees −1 (NaN), at y = −1 it sees 0 (−inf): both must come out −inf.
    let flow = Exp.then(Shift::new(dvec(&[-1.0])).unwrap());
    let d =
        TransformedDistribution::<f64, _, _>::new(StandardNormal::new(1).unwrap(), flow).unwrap();
    let lp = d.log_prob(&batch(1, &[-2.0, -1.0, -1.5, nan, 1.0]));
    for j in 0..4 {
        assert_eq!(lp[j], f64::NEG_INFINITY, "exp then shift(-1), point {j}");
    }
    // Inside: y = 1 ⇔ exp(x) = 2, a log-normal(0, 1) density at 2.
    assert_close(lp[4], lognormal_lpdf(2.0, 0.0, 1.0), 1e-14, "exp - 1 at 1");

    // Columns are independent: one bad coordinate poisons only its own column.
    let d =
        TransformedDistribution::<f64, _, _>::new(StandardNormal::new(2).unwrap(), Exp).unwrap();
    let lp = d.log_prob(&batch(2, &[1.0, -1.0, 1.0, 1.0, nan, 2.0]));
    assert_eq!(lp[0], f64::NEG_INFINITY);
    assert_close(
        lp[1],
        2.0 * lognormal_lpdf(1.0, 0.0, 1.0),
        1e-14,
        "2-D log-normal at (1, 1)",
    );
    assert_eq!(lp[2], f64::NEG_INFINITY);
}

// -- The zoo: every distribution (base and transformed) with test points -----

/// One distribution with points at which to evaluate it (some outside its
/// support). Every parameter and point is exactly representable in f32, so that
/// the f32 and f64 versions describe the same density at the same points.
struct Case<T: Real> {
    name: &'static str,
    dist: Box<dyn Distribution<T>>,
    points: DMatrix<T>,
}

fn f32_exact(x: f64) -> f64 {
    assert_eq!(
        x as f32 as f64, x,
        "{x} is not exactly representable in f32"
    );
    x
}

fn lit_vec<T: Real>(v: &[f64]) -> DVector<T> {
    DVector::from_iterator(v.len(), v.iter().map(|&x| T::lit(f32_exact(x))))
}

fn lit_mat<T: Real>(r: usize, c: usize, row_major: &[f64]) -> DMatrix<T> {
    DMatrix::from_row_iterator(r, c, row_major.iter().map(|&x| T::lit(f32_exact(x))))
}

fn lit_batch<T: Real>(d: usize, data: &[f64]) -> DMatrix<T> {
    DMatrix::from_iterator(
        d,
        data.len() / d,
        data.iter().map(|&x| T::lit(f32_exact(x))),
    )
}

fn zoo<T: Real>() -> Vec<Case<T>> {
    let std_normal = |d| StandardNormal::new(d).unwrap();
    vec![
        Case {
            name: "StandardNormal(3)",
            dist: Box::new(std_normal(3)),
            points: lit_batch(3, &[0.0, 0.0, 0.0, 1.0, -2.0, 0.5, 3.5, -0.25, 7.0]),
        },
        Case {
            name: "Normal",
            dist: Box::new(Normal::new(lit_vec(&[3.0, -1.5]), lit_vec(&[2.0, 0.25])).unwrap()),
            points: lit_batch(2, &[3.0, -1.5, 1.0, 0.0, -4.0, -3.25, 10.0, 2.0]),
        },
        Case {
            name: "MultivariateNormal::new",
            dist: Box::new(
                MultivariateNormal::new(
                    lit_vec(&[0.5, -1.0, 2.0]),
                    lit_mat(3, 3, &[4.0, 1.0, 0.5, 1.0, 3.0, -0.75, 0.5, -0.75, 2.0]),
                )
                .unwrap(),
            ),
            points: lit_batch(3, &[0.5, -1.0, 2.0, 1.0, 1.0, 1.0, -3.0, 2.5, 0.0]),
        },
        Case {
            name: "MultivariateNormal::from_scale_tril",
            dist: Box::new(
                MultivariateNormal::from_scale_tril(
                    lit_vec(&[1.0, 0.0, -1.0]),
                    lit_mat(3, 3, &[2.0, 0.0, 0.0, 0.5, -1.5, 0.0, -1.0, 0.25, 0.75]),
                )
                .unwrap(),
            ),
            points: lit_batch(3, &[1.0, 0.0, -1.0, 2.0, 2.0, 2.0, -5.0, 0.5, 3.0]),
        },
        Case {
            name: "Uniform",
            dist: Box::new(Uniform::new(lit_vec(&[-1.0, 0.0]), lit_vec(&[2.0, 0.5])).unwrap()),
            points: lit_batch(2, &[0.0, 0.25, -1.0, 0.5, 2.5, 0.25, 0.0, -0.125]),
        },
        Case {
            name: "Laplace",
            dist: Box::new(Laplace::new(lit_vec(&[1.0, 0.0]), lit_vec(&[2.0, 0.5])).unwrap()),
            points: lit_batch(2, &[1.0, 0.0, 4.0, -1.5, -7.0, 3.0]),
        },
        Case {
            name: "Logistic",
            dist: Box::new(Logistic::new(lit_vec(&[1.0, -2.0]), lit_vec(&[0.5, 3.0])).unwrap()),
            points: lit_batch(2, &[1.0, -2.0, 2.0, 10.0, -6.0, -20.0]),
        },
        Case {
            name: "GaussianMixture",
            dist: Box::new(
                GaussianMixture::new(
                    lit_vec(&[2.0, 5.0, 3.0]),
                    lit_mat(2, 3, &[-2.0, 0.0, 3.0, 1.0, -1.0, 2.0]),
                    lit_mat(2, 3, &[0.5, 1.0, 2.0, 1.0, 0.75, 0.5]),
                )
                .unwrap(),
            ),
            points: lit_batch(2, &[0.0, 0.0, 3.0, 2.0, -2.0, 1.0, 12.0, -9.0]),
        },
        Case {
            name: "Normal(3, 2) -> Exp",
            dist: Box::new(
                TransformedDistribution::new(
                    Normal::new(lit_vec(&[3.0]), lit_vec(&[2.0])).unwrap(),
                    Exp,
                )
                .unwrap(),
            ),
            points: lit_batch(1, &[0.125, 1.0, 5.0, 40.0, -1.0, 0.0]),
        },
        Case {
            name: "Normal(0.5, 1.5) -> Sigmoid",
            dist: Box::new(
                TransformedDistribution::new(
                    Normal::new(lit_vec(&[0.5]), lit_vec(&[1.5])).unwrap(),
                    Sigmoid,
                )
                .unwrap(),
            ),
            points: lit_batch(1, &[0.0625, 0.5, 0.875, 0.0, 1.0, 1.5]),
        },
        Case {
            name: "StandardNormal(2) -> Tanh",
            dist: Box::new(TransformedDistribution::<T, _, _>::new(std_normal(2), Tanh).unwrap()),
            points: lit_batch(2, &[0.0, 0.0, 0.5, -0.875, 0.25, 1.0, -1.5, 0.0]),
        },
        Case {
            name: "StandardNormal(2) -> ScaleTriL",
            dist: Box::new(
                TransformedDistribution::new(
                    std_normal(2),
                    ScaleTriL::new(
                        lit_mat(2, 2, &[1.5, 0.0, 0.75, -0.5]),
                        lit_vec(&[1.0, -2.0]),
                    )
                    .unwrap(),
                )
                .unwrap(),
            ),
            points: lit_batch(2, &[1.0, -2.0, 0.0, 0.0, 4.0, -5.0]),
        },
        Case {
            name: "StandardNormal(1) -> Scale(2) >> Shift(1) >> Exp",
            dist: Box::new(
                TransformedDistribution::new(
                    std_normal(1),
                    Scale::new(lit_vec::<T>(&[2.0]))
                        .unwrap()
                        .then(Shift::new(lit_vec::<T>(&[1.0])).unwrap())
                        .then(Exp),
                )
                .unwrap(),
            ),
            points: lit_batch(1, &[0.5, 2.75, 100.0, -2.0]),
        },
    ]
}

/// Every column of `dim × count` built from all `dim`-tuples of `values`.
fn all_tuples(dim: usize, values: &[f64]) -> Vec<Vec<f64>> {
    let mut out = vec![vec![]];
    for _ in 0..dim {
        out = out
            .into_iter()
            .flat_map(|t| {
                values.iter().map(move |&v| {
                    let mut t = t.clone();
                    t.push(v);
                    t
                })
            })
            .collect();
    }
    out
}

fn check_special_inputs<T: Real>() {
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e30,
        -1e30,
        0.0,
        1.0,
        -1.0,
    ];
    for case in zoo::<T>() {
        let d = case.dist.dim();
        let tuples = all_tuples(d, &specials);
        let x =
            DMatrix::from_iterator(d, tuples.len(), tuples.iter().flatten().map(|&v| T::lit(v)));
        let lp = case.dist.log_prob(&x);
        for (j, t) in tuples.iter().enumerate() {
            let v = lp[j].to_f64();
            assert!(!v.is_nan(), "{}: NaN log_prob at {t:?}", case.name);
            assert!(v < f64::INFINITY, "{}: +inf log_prob at {t:?}", case.name);
            // Every density here vanishes at infinity, and NaN is in no support.
            if t.iter().any(|c| !c.is_finite()) {
                assert_eq!(v, f64::NEG_INFINITY, "{}: at {t:?}", case.name);
            }
        }
    }
}

#[test]
fn special_inputs_give_neg_infinity_never_nan_f64() {
    check_special_inputs::<f64>();
}

#[test]
fn special_inputs_give_neg_infinity_never_nan_f32() {
    check_special_inputs::<f32>();
}

#[test]
fn sample_and_log_prob_agrees_with_log_prob_f64() {
    for (i, case) in zoo::<f64>().into_iter().enumerate() {
        let mut rng = seeded(100 + i as u64);
        let (x, lp) = case.dist.sample_and_log_prob(256, &mut rng);
        assert_eq!(x.shape(), (case.dist.dim(), 256), "{}", case.name);
        assert_eq!(lp.len(), 256, "{}", case.name);
        let again = case.dist.log_prob(&x);
        for j in 0..256 {
            assert!(
                lp[j].is_finite(),
                "{}: sample {j} has log_prob {}",
                case.name,
                lp[j]
            );
            // Fused forward pass vs inverse pass: the same value up to rounding.
            assert_close(lp[j], again[j], 1e-10, case.name);
        }
        // `sample` with the same seed draws the same points.
        let x2 = case.dist.sample(256, &mut seeded(100 + i as u64));
        assert_eq!(x2, x, "{}: sample vs sample_and_log_prob", case.name);
    }
}

#[test]
fn sample_and_log_prob_agrees_with_log_prob_f32() {
    for (i, case) in zoo::<f32>().into_iter().enumerate() {
        let mut rng = seeded(200 + i as u64);
        let (x, lp) = case.dist.sample_and_log_prob(256, &mut rng);
        assert_eq!(x.shape(), (case.dist.dim(), 256), "{}", case.name);
        let again = case.dist.log_prob(&x);
        for j in 0..256 {
            assert!(lp[j].is_finite(), "{}: sample {j}", case.name);
            // Looser than f64: recomputing the preimage of a sample rounds it
            // first. The worst case is the logit of a sigmoid sample near 1,
            // where 1 − y ≈ 1e-3 holds an f32 rounding of 6e-8, a relative
            // error ≈ 1e-4 in the preimage.
            assert_close(lp[j] as f64, again[j] as f64, 2e-3, case.name);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Normal's log_prob against the closed form at random parameters and points.
    #[test]
    fn prop_normal_matches_closed_form(
        mu in -10.0..10.0_f64,
        sigma in strategies::log_uniform_positive(0.01, 100.0),
        x in strategies::batch(1, 8, 50.0),
    ) {
        let d = Normal::new(dvec(&[mu]), dvec(&[sigma])).unwrap();
        let lp = d.log_prob(&x);
        for j in 0..8 {
            let want = normal_lpdf(x[(0, j)], mu, sigma);
            prop_assert!((lp[j] - want).abs() <= 1e-12 * (1.0 + want.abs()), "{} vs {}", lp[j], want);
        }
    }

    /// StandardNormal pushed through `Scale(s) >> Shift(b)` is `Normal(b, |s|)`:
    /// y = s ⊙ x + b with x ~ N(0, I). Negative scales flip the axis but leave
    /// the density unchanged, so they exercise the |·| in log|det|.
    #[test]
    fn prop_scale_then_shift_is_normal(
        s in strategies::vector_of(2, strategies::log_uniform_signed(0.05, 20.0)),
        b in strategies::vector_of(2, strategies::value(10.0)),
        y in strategies::batch(2, 8, 50.0),
    ) {
        let flow = Scale::new(s.clone()).unwrap().then(Shift::new(b.clone()).unwrap());
        let d = TransformedDistribution::<f64, _, _>::new(StandardNormal::new(2).unwrap(), flow).unwrap();
        let oracle = Normal::new(b, s.map(f64::abs)).unwrap();
        let (lp, want) = (d.log_prob(&y), oracle.log_prob(&y));
        for j in 0..8 {
            prop_assert!((lp[j] - want[j]).abs() <= 1e-12 * (1.0 + want[j].abs()), "{} vs {}", lp[j], want[j]);
        }
        // The same with Chain::new.
        let chain = Chain::<f64>::new(vec![
            Box::new(Scale::new(s.clone()).unwrap()),
            Box::new(Shift::new(oracle.loc().clone()).unwrap()),
        ]).unwrap();
        let d = TransformedDistribution::<f64, _, _>::new(StandardNormal::new(2).unwrap(), chain).unwrap();
        let lp = d.log_prob(&y);
        for j in 0..8 {
            prop_assert!((lp[j] - want[j]).abs() <= 1e-12 * (1.0 + want[j].abs()));
        }
    }

    /// StandardNormal pushed through `ScaleTriL(L, b)` is `MultivariateNormal(b, L Lᵀ)`.
    /// Against `from_scale_tril` (same L) the agreement is to rounding; against
    /// `new(b, L Lᵀ)` the covariance is re-factorised by Cholesky. With diagonal
    /// magnitudes down to 0.1 and off-diagonal entries up to 2 (the strategy's
    /// ranges), κ(L) reaches ~1e4, so the refactorised L carries a relative error
    /// ≈ κ(L)·ε ≈ 1e-12, amplified by κ(L) again in L⁻¹(y − b): 1e-7 is that bound
    /// with a margin.
    #[test]
    fn prop_scale_tril_is_multivariate_normal(
        st in strategies::scale_tril(3),
        y in strategies::batch(3, 6, 10.0),
    ) {
        let l = st.scale_tril().clone();
        let b = st.shift().clone();
        let d = TransformedDistribution::<f64, _, _>::new(StandardNormal::new(3).unwrap(), st).unwrap();
        let lp = d.log_prob(&y);
        let from_l = MultivariateNormal::from_scale_tril(b.clone(), l.clone()).unwrap().log_prob(&y);
        let from_cov = MultivariateNormal::new(b, &l * l.transpose()).unwrap().log_prob(&y);
        for j in 0..6 {
            prop_assert!((lp[j] - from_l[j]).abs() <= 1e-12 * (1.0 + from_l[j].abs()), "{} vs {}", lp[j], from_l[j]);
            prop_assert!((lp[j] - from_cov[j]).abs() <= 1e-7 * (1.0 + from_cov[j].abs()), "{} vs {}", lp[j], from_cov[j]);
        }
    }

    /// Exp of Normal(μ, σ) is the log-normal at random parameters and points.
    #[test]
    fn prop_exp_of_normal_is_log_normal(
        mu in -3.0..3.0_f64,
        sigma in strategies::log_uniform_positive(0.05, 5.0),
        y in strategies::positive_batch(1, 8, 1e-6, 1e6),
    ) {
        let d = TransformedDistribution::new(Normal::new(dvec(&[mu]), dvec(&[sigma])).unwrap(), Exp).unwrap();
        let lp = d.log_prob(&y);
        for j in 0..8 {
            let want = lognormal_lpdf(y[(0, j)], mu, sigma);
            prop_assert!((lp[j] - want).abs() <= 1e-12 * (1.0 + want.abs()), "{} vs {}", lp[j], want);
        }
    }

    /// Sigmoid of Normal(μ, σ) is the logit-normal at random parameters and points.
    #[test]
    fn prop_sigmoid_of_normal_is_logit_normal(
        mu in -3.0..3.0_f64,
        sigma in strategies::log_uniform_positive(0.1, 5.0),
        y in strategies::batch_of(1, 8, 0.001..0.999_f64),
    ) {
        let d = TransformedDistribution::new(Normal::new(dvec(&[mu]), dvec(&[sigma])).unwrap(), Sigmoid).unwrap();
        let lp = d.log_prob(&y);
        for j in 0..8 {
            let want = logit_normal_lpdf(y[(0, j)], mu, sigma);
            prop_assert!((lp[j] - want).abs() <= 1e-10 * (1.0 + want.abs()), "{} vs {}", lp[j], want);
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Sampling moments
// ---------------------------------------------------------------------------

/// Number of draws per moment check.
const N_SAMPLES: usize = 20_000;
/// Tolerance in standard errors. Each comparison fails by chance with
/// probability ≈ 6e-7 (two-sided normal tail at 5σ); with fixed seeds the
/// outcome is deterministic anyway.
const Z: f64 = 5.0;

/// Checks the sample mean and sample covariance of the `D × n` draws `x`
/// against the exact `mean` and `cov`, each to within `Z` standard errors.
///
/// Standard errors (central limit theorem):
/// - mean of coordinate i: `SE = √(Σᵢᵢ / n)`;
/// - covariance entry (i, j): the sample covariance is the mean of the products
///   `(Xᵢ − mᵢ)(Xⱼ − mⱼ)` up to an O(1/n) correction for the estimated means,
///   so `SE = √((E[(Xᵢ − mᵢ)²(Xⱼ − mⱼ)²] − Σᵢⱼ²) / n)`, with the exact fourth
///   moment `fourth(i, j)` supplied by the caller. For a normal coordinate
///   (μ₄ = 3σ⁴) this is the familiar `σ²√(2/n)`; heavy tails widen it, e.g. to
///   `σ²√(5/n)` for Laplace (μ₄ = 6σ⁴). Using the true fourth moment instead
///   of a fixed multiple keeps the test as tight as the sampling noise allows.
#[track_caller]
fn assert_moments(
    name: &str,
    x: &DMatrix<f64>,
    mean: &[f64],
    cov: &DMatrix<f64>,
    fourth: impl Fn(usize, usize) -> f64,
) {
    let (d, n) = x.shape();
    assert_eq!(d, mean.len(), "{name}: dimension");
    assert!(x.iter().all(|v| v.is_finite()), "{name}: non-finite sample");
    let nf = n as f64;
    let m: Vec<f64> = (0..d).map(|i| x.row(i).sum() / nf).collect();
    for i in 0..d {
        let se = (cov[(i, i)] / nf).sqrt();
        let err = (m[i] - mean[i]).abs();
        assert!(
            err <= Z * se,
            "{name}: mean[{i}] = {} vs {} (|error| = {err:.4} > {Z}·SE = {:.4})",
            m[i],
            mean[i],
            Z * se
        );
    }
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = x
                .column_iter()
                .map(|c| (c[i] - m[i]) * (c[j] - m[j]))
                .sum::<f64>()
                / (nf - 1.0);
            let var_prod = fourth(i, j) - cov[(i, j)] * cov[(i, j)];
            assert!(var_prod > 0.0, "{name}: bad fourth moment for ({i}, {j})");
            let se = (var_prod / nf).sqrt();
            let err = (s - cov[(i, j)]).abs();
            assert!(
                err <= Z * se,
                "{name}: cov[({i}, {j})] = {s} vs {} (|error| = {err:.4} > {Z}·SE = {:.4})",
                cov[(i, j)],
                Z * se
            );
        }
    }
}

/// Fourth moments of independent coordinates with variances `var` and central
/// fourth moments `mu4`: `E[(Xᵢ−mᵢ)⁴] = μ₄ᵢ`, `E[(Xᵢ−mᵢ)²(Xⱼ−mⱼ)²] = σᵢ²σⱼ²` (i ≠ j).
fn independent_fourth(var: Vec<f64>, mu4: Vec<f64>) -> impl Fn(usize, usize) -> f64 {
    move |i, j| if i == j { mu4[i] } else { var[i] * var[j] }
}

/// Fourth moments of a Gaussian vector (Isserlis' theorem):
/// `E[(Xᵢ−mᵢ)²(Xⱼ−mⱼ)²] = Σᵢᵢ Σⱼⱼ + 2 Σᵢⱼ²`.
fn gaussian_fourth(cov: DMatrix<f64>) -> impl Fn(usize, usize) -> f64 {
    move |i, j| cov[(i, i)] * cov[(j, j)] + 2.0 * cov[(i, j)] * cov[(i, j)]
}

#[test]
fn moments_of_standard_normal_and_normal() {
    let d = StandardNormal::new(3).unwrap();
    let x: DMatrix<f64> = d.sample(N_SAMPLES, &mut seeded(1));
    let cov = DMatrix::identity(3, 3);
    assert_moments(
        "StandardNormal(3)",
        &x,
        &[0.0; 3],
        &cov,
        gaussian_fourth(cov.clone()),
    );

    // N(μ, σ²): mean μ, variance σ², μ₄ = 3σ⁴.
    let (loc, scale) = ([3.0, -1.5], [2.0, 0.25]);
    let d = Normal::new(dvec(&loc), dvec(&scale)).unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(2));
    let var: Vec<f64> = scale.iter().map(|s| s * s).collect();
    let cov = DMatrix::from_diagonal(&dvec(&var));
    assert_moments("Normal", &x, &loc, &cov, gaussian_fourth(cov.clone()));

    // The f32 sampling path draws from the same law.
    let d32 = Normal::new(lit_vec::<f32>(&loc), lit_vec::<f32>(&scale)).unwrap();
    let x32: DMatrix<f32> = d32.sample(N_SAMPLES, &mut seeded(3));
    assert_moments(
        "Normal<f32>",
        &x32.cast::<f64>(),
        &loc,
        &cov,
        gaussian_fourth(cov.clone()),
    );
}

#[test]
fn moments_of_multivariate_normal() {
    let mu = [0.5, -1.0, 2.0];
    let cov = arr3_to_mat([[4.0, 1.0, 0.5], [1.0, 3.0, -0.75], [0.5, -0.75, 2.0]]);
    let d = MultivariateNormal::new(dvec(&mu), cov.clone()).unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(4));
    assert_moments("MVN::new", &x, &mu, &cov, gaussian_fourth(cov.clone()));

    // from_scale_tril: covariance L Lᵀ (written out entry by entry).
    let l = [[2.0, 0.0, 0.0], [0.5, -1.5, 0.0], [-1.0, 0.25, 0.75]];
    let cov = arr3_to_mat(l_lt3(l));
    let mu = [1.0, 0.0, -1.0];
    let d = MultivariateNormal::from_scale_tril(dvec(&mu), arr3_to_mat(l)).unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(5));
    assert_moments(
        "MVN::from_scale_tril",
        &x,
        &mu,
        &cov,
        gaussian_fourth(cov.clone()),
    );
}

#[test]
fn moments_of_uniform() {
    // U(l, h): mean (l + h)/2, variance (h − l)²/12, μ₄ = (h − l)⁴/80.
    let (low, high) = ([-1.0, 0.0], [2.0, 0.5]);
    let d = Uniform::new(dvec(&low), dvec(&high)).unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(6));
    for c in x.column_iter() {
        assert!(
            (0..2).all(|i| c[i] > low[i] && c[i] < high[i]),
            "sample {c} outside the box"
        );
    }
    let w: Vec<f64> = (0..2).map(|i| high[i] - low[i]).collect();
    let mean: Vec<f64> = (0..2).map(|i| 0.5 * (low[i] + high[i])).collect();
    let var: Vec<f64> = w.iter().map(|w| w * w / 12.0).collect();
    let mu4: Vec<f64> = w.iter().map(|w| w.powi(4) / 80.0).collect();
    let cov = DMatrix::from_diagonal(&dvec(&var));
    assert_moments("Uniform", &x, &mean, &cov, independent_fourth(var, mu4));
}

#[test]
fn moments_of_laplace() {
    // Laplace(μ, b): mean μ, variance 2b², kurtosis 6, so μ₄ = 6(2b²)² = 24b⁴.
    let (loc, scale) = ([1.0, 0.0], [2.0, 0.5]);
    let d = Laplace::new(dvec(&loc), dvec(&scale)).unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(7));
    let var: Vec<f64> = scale.iter().map(|b| 2.0 * b * b).collect();
    let mu4: Vec<f64> = scale.iter().map(|b| 24.0 * b.powi(4)).collect();
    let cov = DMatrix::from_diagonal(&dvec(&var));
    assert_moments("Laplace", &x, &loc, &cov, independent_fourth(var, mu4));
}

#[test]
fn moments_of_logistic() {
    // Logistic(μ, s): mean μ, variance s²π²/3, kurtosis 21/5, so μ₄ = 7π⁴s⁴/15.
    let (loc, scale) = ([1.0, -2.0], [0.5, 3.0]);
    let d = Logistic::new(dvec(&loc), dvec(&scale)).unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(8));
    let var: Vec<f64> = scale.iter().map(|s| s * s * PI * PI / 3.0).collect();
    let mu4: Vec<f64> = scale
        .iter()
        .map(|s| 7.0 * PI.powi(4) * s.powi(4) / 15.0)
        .collect();
    let cov = DMatrix::from_diagonal(&dvec(&var));
    assert_moments("Logistic", &x, &loc, &cov, independent_fourth(var, mu4));
}

/// Exact mean, covariance and fourth moments of a diagonal Gaussian mixture.
/// With `aₖ = μₖ − m`:
/// - mean `m = Σₖ wₖ μₖ`;
/// - covariance by the law of total variance: `Σᵢⱼ = Σₖ wₖ (δᵢⱼ σᵢₖ² + aᵢₖ aⱼₖ)`;
/// - `E[(Xᵢ−mᵢ)⁴] = Σₖ wₖ (aᵢₖ⁴ + 6aᵢₖ²σᵢₖ² + 3σᵢₖ⁴)` (the normal's moments about
///   a shifted centre) and, for i ≠ j (coordinates independent within a
///   component), `E[(Xᵢ−mᵢ)²(Xⱼ−mⱼ)²] = Σₖ wₖ (aᵢₖ² + σᵢₖ²)(aⱼₖ² + σⱼₖ²)`.
fn mixture_moments(
    w: &[f64],
    locs: &DMatrix<f64>,
    scales: &DMatrix<f64>,
) -> (Vec<f64>, DMatrix<f64>, DMatrix<f64>) {
    let (d, k) = locs.shape();
    let mean: Vec<f64> = (0..d)
        .map(|i| (0..k).map(|c| w[c] * locs[(i, c)]).sum())
        .collect();
    let a = |i: usize, c: usize| locs[(i, c)] - mean[i];
    let s2 = |i: usize, c: usize| scales[(i, c)] * scales[(i, c)];
    let cov = DMatrix::from_fn(d, d, |i, j| {
        (0..k)
            .map(|c| w[c] * (if i == j { s2(i, c) } else { 0.0 } + a(i, c) * a(j, c)))
            .sum()
    });
    let fourth = DMatrix::from_fn(d, d, |i, j| {
        (0..k)
            .map(|c| {
                if i == j {
                    let (a, s) = (a(i, c), s2(i, c));
                    w[c] * (a.powi(4) + 6.0 * a * a * s + 3.0 * s * s)
                } else {
                    w[c] * (a(i, c).powi(2) + s2(i, c)) * (a(j, c).powi(2) + s2(j, c))
                }
            })
            .sum()
    });
    (mean, cov, fourth)
}

#[test]
fn moments_of_gaussian_mixture() {
    // 1-D: weights [1, 3] → [0.25, 0.75]; mean −0.5 + 1.5 = 1, variance
    // Σ w σ² + Σ w (μ − m)² = 0.8125 + 3 = 3.8125.
    let locs = mat(1, 2, &[-2.0, 2.0]);
    let scales = mat(1, 2, &[0.5, 1.0]);
    let m = GaussianMixture::new(dvec(&[1.0, 3.0]), locs.clone(), scales.clone()).unwrap();
    let (mean, cov, fourth) = mixture_moments(&[0.25, 0.75], &locs, &scales);
    assert_close(mean[0], 1.0, 1e-15, "mixture mean by hand");
    assert_close(cov[(0, 0)], 3.8125, 1e-15, "mixture variance by hand");
    let x = m.sample(N_SAMPLES, &mut seeded(9));
    assert_moments("1-D mixture", &x, &mean, &cov, |i, j| fourth[(i, j)]);

    // 2-D, three components: the component means make the coordinates
    // correlated although every component is diagonal.
    let locs = mat(2, 3, &[-2.0, 0.0, 3.0, 1.0, -1.0, 2.0]);
    let scales = mat(2, 3, &[0.5, 1.0, 2.0, 1.0, 0.75, 0.5]);
    let m = GaussianMixture::new(dvec(&[2.0, 5.0, 3.0]), locs.clone(), scales.clone()).unwrap();
    let (mean, cov, fourth) = mixture_moments(&[0.2, 0.5, 0.3], &locs, &scales);
    assert!(cov[(0, 1)].abs() > 0.5, "the oracle has a real correlation");
    let x = m.sample(N_SAMPLES, &mut seeded(10));
    assert_moments("2-D mixture", &x, &mean, &cov, |i, j| fourth[(i, j)]);
}

#[test]
fn moments_of_transformed_distributions() {
    // Log-normal(μ, σ) = Exp of Normal(μ, σ): raw moments E[Yᵏ] = exp(kμ + k²σ²/2);
    // central μ₄ = E[Y⁴] − 4m E[Y³] + 6m² E[Y²] − 3m⁴.
    let (mu, sigma) = (0.5, 0.5);
    let d = TransformedDistribution::new(Normal::new(dvec(&[mu]), dvec(&[sigma])).unwrap(), Exp)
        .unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(11));
    assert!(
        x.iter().all(|&y| y > 0.0),
        "log-normal samples are positive"
    );
    let raw = |k: f64| (k * mu + k * k * sigma * sigma / 2.0).exp();
    let m = raw(1.0);
    let var = raw(2.0) - m * m;
    let mu4 = raw(4.0) - 4.0 * m * raw(3.0) + 6.0 * m * m * raw(2.0) - 3.0 * m.powi(4);
    assert_moments(
        "log-normal",
        &x,
        &[m],
        &DMatrix::from_element(1, 1, var),
        independent_fourth(vec![var], vec![mu4]),
    );

    // StandardNormal(2) through ScaleTriL(L, b): N(b, L Lᵀ).
    let l = mat(2, 2, &[1.5, 0.0, 0.8, 0.6]);
    let b = [1.0, -2.0];
    let cov = mat(2, 2, &[2.25, 1.2, 1.2, 1.0]); // L Lᵀ by hand
    assert!((&l * l.transpose() - &cov).amax() < 1e-15);
    let d = TransformedDistribution::<f64, _, _>::new(
        StandardNormal::new(2).unwrap(),
        ScaleTriL::new(l, dvec(&b)).unwrap(),
    )
    .unwrap();
    let x = d.sample(N_SAMPLES, &mut seeded(12));
    assert_moments(
        "N(0, I) -> ScaleTriL",
        &x,
        &b,
        &cov,
        gaussian_fourth(cov.clone()),
    );
}

// ---------------------------------------------------------------------------
// 4. Normalisation by quadrature
// ---------------------------------------------------------------------------
//
// `check_density_normalizes` integrates exp(log_prob) with the composite
// Simpson rule. For smooth densities that decay fast inside the box, the error
// is far below 1e-9 at the grids used here (O(h⁴), and for Gaussians the
// trapezoid rules Simpson combines are even exponentially accurate), and the
// boxes are wide enough (≥ 12σ, or ≥ 40 scale units for exponential tails)
// that the mass outside is below 1e-16. Densities with a jump or a kink get a
// tolerance from the error bound of Simpson's rule on that non-smooth point,
// computed in the test.

#[track_caller]
fn assert_normalizes<D: Distribution<f64> + ?Sized>(
    name: &str,
    d: &D,
    lower: &[f64],
    upper: &[f64],
    points: usize,
    tol: f64,
) {
    let z = check_density_normalizes::<f64, D>(d, lower, upper, points, tol)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!((z - 1.0).abs() <= tol, "{name}: integral {z}");
}

#[test]
fn smooth_densities_normalize_1d() {
    assert_normalizes(
        "StandardNormal(1)",
        &StandardNormal::new(1).unwrap(),
        &[-10.0],
        &[10.0],
        401,
        1e-9,
    );
    assert_normalizes(
        "Normal(3, 2)",
        &Normal::new(dvec(&[3.0]), dvec(&[2.0])).unwrap(),
        &[3.0 - 24.0],
        &[3.0 + 24.0],
        801,
        1e-9,
    );
    // Logistic(−1, 0.7): tails e^{−|z|}; ±40 scale units leave 2e^{−40} ≈ 8e-18.
    assert_normalizes(
        "Logistic(-1, 0.7)",
        &Logistic::new(dvec(&[-1.0]), dvec(&[0.7])).unwrap(),
        &[-1.0 - 28.0],
        &[-1.0 + 28.0],
        1001,
        1e-9,
    );
    assert_normalizes(
        "1-D mixture",
        &GaussianMixture::new(
            dvec(&[1.0, 3.0]),
            mat(1, 2, &[-2.0, 2.0]),
            mat(1, 2, &[0.5, 1.0]),
        )
        .unwrap(),
        &[-14.0],
        &[14.0],
        801,
        1e-9,
    );
}

#[test]
fn smooth_densities_normalize_2d() {
    assert_normalizes(
        "StandardNormal(2)",
        &StandardNormal::new(2).unwrap(),
        &[-9.0, -9.0],
        &[9.0, 9.0],
        181,
        1e-9,
    );
    assert_normalizes(
        "Normal 2-D",
        &Normal::new(dvec(&[1.0, -1.0]), dvec(&[0.5, 2.0])).unwrap(),
        &[1.0 - 6.0, -1.0 - 24.0],
        &[1.0 + 6.0, -1.0 + 24.0],
        241,
        1e-9,
    );
    // Σ = [[2, .5], [.5, 1]]: marginal σ ≈ 1.41 and 1, boxes of ≥ 12σ.
    assert_normalizes(
        "MultivariateNormal 2-D",
        &MultivariateNormal::new(dvec(&[0.0, 0.0]), mat(2, 2, &[2.0, 0.5, 0.5, 1.0])).unwrap(),
        &[-17.0, -12.0],
        &[17.0, 12.0],
        341,
        1e-9,
    );
    assert_normalizes(
        "MultivariateNormal::from_scale_tril 2-D",
        &MultivariateNormal::from_scale_tril(dvec(&[1.0, 0.0]), mat(2, 2, &[1.0, 0.0, -0.8, 0.6]))
            .unwrap(),
        &[1.0 - 12.0, -12.0],
        &[1.0 + 12.0, 12.0],
        341,
        1e-9,
    );
    assert_normalizes(
        "Logistic 2-D",
        &Logistic::new(dvec(&[0.0, 1.0]), dvec(&[1.0, 0.5])).unwrap(),
        &[-40.0, 1.0 - 20.0],
        &[40.0, 1.0 + 20.0],
        401,
        1e-9,
    );
    // Marginal boxes: component means ± ≥ 12σ of the widest component.
    assert_normalizes(
        "2-D mixture",
        &GaussianMixture::new(
            dvec(&[2.0, 5.0, 3.0]),
            mat(2, 3, &[-2.0, 0.0, 3.0, 1.0, -1.0, 2.0]),
            mat(2, 3, &[0.5, 1.0, 2.0, 1.0, 0.75, 0.5]),
        )
        .unwrap(),
        &[-16.0, -13.0],
        &[27.0, 14.0],
        401,
        1e-9,
    );
}

/// Composite Simpson on a step of height `p` inside a panel `[x₀, x₀ + 2h]`:
/// the three weights h/3, 4h/3, h/3 misplace at most `(2/3) p h` of mass
/// (worst when the jump sits at the middle node). Per axis of a box density
/// with two jumps, the relative error of the 1-D factor is therefore at most
/// `(4/3) h / (high − low)`.
fn uniform_axis_bound(h: f64, width: f64) -> f64 {
    4.0 / 3.0 * h / width
}

#[test]
fn uniform_normalizes_with_jump_error_bound() {
    // 1-D U(−1, 3) on [−2, 4] with 2001 nodes: h = 0.003, jumps not on nodes.
    let h = 6.0 / 2000.0;
    let tol = uniform_axis_bound(h, 4.0);
    assert_normalizes(
        "Uniform(-1, 3)",
        &Uniform::new(dvec(&[-1.0]), dvec(&[3.0])).unwrap(),
        &[-2.0],
        &[4.0],
        2001,
        tol,
    );
    // 2-D box [0, 2] × [−1, 1] on [−0.5, 2.5] × [−1.5, 1.5]: the quadrature is a
    // tensor product and the density a product of indicators, so the integral is
    // the product of the two 1-D factors: error ≤ (1 + e₁)(1 + e₂) − 1.
    let h = 3.0 / 400.0;
    let e = uniform_axis_bound(h, 2.0);
    assert_normalizes(
        "Uniform 2-D",
        &Uniform::new(dvec(&[0.0, -1.0]), dvec(&[2.0, 1.0])).unwrap(),
        &[-0.5, -1.5],
        &[2.5, 1.5],
        401,
        (1.0 + e) * (1.0 + e) - 1.0,
    );
}

/// Relative error bound of composite Simpson for the Laplace(μ, b) density on a
/// box of width `width` with node spacing `h`:
/// - the kink at μ: write the density there as a C² function plus
///   `(J/2)|x − μ|`, where `J = 2 p(μ)/b = 1/b²` is the jump of the derivative;
///   Simpson on `|x − c|` over one panel errs by at most `h²/3` (at c = middle
///   node), so the kink costs at most `J h²/6`;
/// - the smooth remainder: `width · h⁴ · max|f⁗| / 180` with `max|f⁗| = p(μ)/b⁴`.
///
/// Twice their sum, for the smaller terms (the C² remainder in the kink's panel).
fn laplace_axis_bound(b: f64, h: f64, width: f64) -> f64 {
    let j = 1.0 / (b * b);
    let p_mode = 1.0 / (2.0 * b);
    2.0 * (j * h * h / 6.0 + width * h.powi(4) * p_mode / b.powi(4) / 180.0)
}

#[test]
fn laplace_normalizes_with_kink_error_bound() {
    // Laplace(1, 0.5) on [−18.3, 20.7] (≥ 38 scale units each side), 3001 nodes:
    // h = 0.013 and the kink at 1 lies inside a panel (node 1484.6).
    let (b, width) = (0.5, 39.0);
    let h = width / 3000.0;
    assert_normalizes(
        "Laplace(1, 0.5)",
        &Laplace::new(dvec(&[1.0]), dvec(&[b])).unwrap(),
        &[-18.3],
        &[20.7],
        3001,
        laplace_axis_bound(b, h, width),
    );
    // 2-D Laplace([0, 1], [1, 0.5]) on [−39.9, 40.1] × [−18.95, 21.05] with 801
    // nodes per axis; again a product of two 1-D factors.
    let (w0, w1) = (80.0, 40.0);
    let (h0, h1) = (w0 / 800.0, w1 / 800.0);
    let e0 = laplace_axis_bound(1.0, h0, w0);
    let e1 = laplace_axis_bound(0.5, h1, w1);
    assert_normalizes(
        "Laplace 2-D",
        &Laplace::new(dvec(&[0.0, 1.0]), dvec(&[1.0, 0.5])).unwrap(),
        &[-39.9, -18.95],
        &[40.1, 21.05],
        801,
        (1.0 + e0) * (1.0 + e1) - 1.0,
    );
}

#[test]
fn transformed_densities_normalize() {
    // N(0, I) through ScaleTriL(L, b): N(b, L Lᵀ), Σ = [[2.25, 1.2], [1.2, 1]];
    // marginal σ = 1.5 and 1, boxes of 12σ.
    let d = TransformedDistribution::<f64, _, _>::new(
        StandardNormal::new(2).unwrap(),
        ScaleTriL::new(mat(2, 2, &[1.5, 0.0, 0.8, 0.6]), dvec(&[1.0, -2.0])).unwrap(),
    )
    .unwrap();
    assert_normalizes(
        "N(0, I) -> ScaleTriL",
        &d,
        &[1.0 - 18.0, -2.0 - 12.0],
        &[1.0 + 18.0, -2.0 + 12.0],
        361,
        1e-9,
    );

    // Log-normal(0, 0.5) on [1e-9, 60]: the mass above 60 is P(Z > ln 60 / 0.5 ≈ 8.2)
    // ≈ 1e-16, below 1e-9 the density is e^{−845}/1e-9 = 0; h = 0.01 against a
    // peak of width ≈ 0.4.
    let d = TransformedDistribution::new(Normal::new(dvec(&[0.0]), dvec(&[0.5])).unwrap(), Exp)
        .unwrap();
    assert_normalizes("log-normal(0, 0.5)", &d, &[1e-9], &[60.0], 6001, 1e-8);

    // Logit-normal(0.5, 1.5) on the closed [0, 1]: the end points are outside the
    // support and must give density 0 (a NaN there would poison the integral).
    let d = TransformedDistribution::new(Normal::new(dvec(&[0.5]), dvec(&[1.5])).unwrap(), Sigmoid)
        .unwrap();
    assert_normalizes("logit-normal(0.5, 1.5)", &d, &[0.0], &[1.0], 4001, 1e-7);

    // tanh of N(0, 0.5² I) on the closed square [−1, 1]²: 2-D, edges outside the
    // support. (Not N(0, I): with 1 − |y| = ε its density ∝ exp(−ln²(2/ε)/8)/ε
    // vanishes so slowly at the edges, ≈ 0.4 at ε = 1e-3, that P(|y| > 0.999) ≈ 1e-4
    // sits in the last panel, where Simpson cannot resolve it. With σ = 0.5 the
    // exponent is ln²(2/ε)/2 and the mass beyond 1 − h is ≈ 1e-9.)
    let d = TransformedDistribution::new(
        Normal::new(dvec(&[0.0, 0.0]), dvec(&[0.5, 0.5])).unwrap(),
        Tanh,
    )
    .unwrap();
    assert_normalizes(
        "N(0, 0.5² I) -> Tanh",
        &d,
        &[-1.0, -1.0],
        &[1.0, 1.0],
        401,
        1e-7,
    );
}

// ---------------------------------------------------------------------------
// 5. f32 against f64
// ---------------------------------------------------------------------------

#[test]
fn f32_and_f64_log_probs_agree() {
    // Same parameters and points (exactly representable in f32), so the only
    // difference is the arithmetic: f32 has ε ≈ 1.2e-7, and these formulas lose
    // at most a few tens of ulps, well inside 1e-5·(1 + |log p|).
    let (z32, z64) = (zoo::<f32>(), zoo::<f64>());
    assert_eq!(z32.len(), z64.len());
    for (a, b) in z32.iter().zip(z64.iter()) {
        assert_eq!(a.name, b.name);
        assert_eq!(
            a.points.clone().cast::<f64>(),
            b.points,
            "{}: same points",
            a.name
        );
        let (l32, l64) = (a.dist.log_prob(&a.points), b.dist.log_prob(&b.points));
        let mut finite = 0;
        for j in 0..l64.len() {
            assert_close(
                l32[j] as f64,
                l64[j],
                1e-5,
                &format!("{} at point {j}", a.name),
            );
            finite += l64[j].is_finite() as usize;
        }
        assert!(finite >= 2, "{}: too few points inside the support", a.name);
    }
}

// ---------------------------------------------------------------------------
// 6. Constructor errors
// ---------------------------------------------------------------------------

#[track_caller]
fn err<T: std::fmt::Debug>(r: Result<T, Error>) -> Error {
    match r {
        Ok(v) => panic!("the constructor accepted invalid input and returned {v:?}"),
        Err(e) => e,
    }
}

/// `InvalidParameter` for exactly `argument`, and the message names it (in
/// backticks) and the constructor.
#[track_caller]
fn assert_invalid_parameter(e: &Error, context: &str, argument: &str) {
    assert!(matches!(e, Error::InvalidParameter { .. }), "{e:?}");
    if let Error::InvalidParameter {
        context: c,
        argument: a,
        ..
    } = e
    {
        assert_eq!((c.as_str(), a.as_str()), (context, argument), "{e:?}");
    }
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("`{argument}`")),
        "{msg:?} does not name `{argument}`"
    );
    assert!(
        msg.starts_with(context),
        "{msg:?} does not start with {context}"
    );
}

#[track_caller]
fn assert_dimension_mismatch(e: &Error, argument: &str, expected: usize, got: usize) {
    assert!(matches!(e, Error::DimensionMismatch { .. }), "{e:?}");
    if let Error::DimensionMismatch {
        argument: a,
        expected: x,
        got: g,
        ..
    } = e
    {
        assert_eq!((a.as_str(), *x, *g), (argument, expected, got), "{e:?}");
    }
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "`{argument}` has dimension {got}, expected dimension {expected}"
        )),
        "{msg:?}"
    );
}

#[track_caller]
fn assert_invalid_dimension(e: &Error, argument: &str) {
    assert!(matches!(e, Error::InvalidDimension { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("`{argument}`")), "{msg:?}");
    assert!(msg.contains("at least 1"), "{msg:?}");
}

#[test]
fn standard_normal_rejects_zero_dimension() {
    let e = err(StandardNormal::new(0));
    assert_invalid_dimension(&e, "dim");
    assert_eq!(
        e.to_string(),
        "StandardNormal::new: argument `dim` must be at least 1, got 0"
    );
    assert!(StandardNormal::new(1).is_ok());
}

type LocScaleCtor = fn(DVector<f64>, DVector<f64>) -> Result<(), Error>;

#[test]
fn location_scale_families_reject_bad_parameters() {
    let families: [(&str, LocScaleCtor); 3] = [
        ("Normal::new", |l, s| Normal::new(l, s).map(drop)),
        ("Laplace::new", |l, s| Laplace::new(l, s).map(drop)),
        ("Logistic::new", |l, s| Logistic::new(l, s).map(drop)),
    ];
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    for (ctx, ctor) in families {
        assert!(ctor(dvec(&[0.0, 1.0]), dvec(&[1.0, 2.0])).is_ok(), "{ctx}");
        // Empty.
        assert_invalid_dimension(&ctor(dvec(&[]), dvec(&[])).unwrap_err(), "loc");
        // Length mismatch.
        let e = ctor(dvec(&[0.0, 1.0]), dvec(&[1.0])).unwrap_err();
        assert_dimension_mismatch(&e, "scale", 2, 1);
        // Non-finite loc.
        for (bad, idx) in [(nan, 1), (inf, 1), (-inf, 1)] {
            let e = ctor(dvec(&[0.0, bad]), dvec(&[1.0, 1.0])).unwrap_err();
            assert_invalid_parameter(&e, ctx, &format!("loc[{idx}]"));
        }
        // Non-positive, NaN, infinite scale.
        for bad in [0.0, -0.0, -1.0, nan, inf, -inf] {
            let e = ctor(dvec(&[0.0, 1.0]), dvec(&[bad, 1.0])).unwrap_err();
            assert_invalid_parameter(&e, ctx, "scale[0]");
            assert!(e.to_string().contains("finite and positive"), "{e}");
            let e = ctor(dvec(&[0.0, 1.0]), dvec(&[1.0, bad])).unwrap_err();
            assert_invalid_parameter(&e, ctx, "scale[1]");
        }
    }
    // The full sentence (error.rs documents this exact text).
    let e = err(Normal::new(dvec(&[0.0]), dvec(&[-1.0])));
    assert_eq!(
        e.to_string(),
        "Normal::new: argument `scale[0]` must be finite and positive, got -1"
    );
}

#[test]
fn uniform_rejects_bad_bounds() {
    const CTX: &str = "Uniform::new";
    // low == high and low > high.
    let e = err(Uniform::new(dvec(&[0.0, 1.0]), dvec(&[1.0, 1.0])));
    assert_invalid_parameter(&e, CTX, "high[1]");
    assert!(e.to_string().contains("greater than low[1] = 1"), "{e}");
    let e = err(Uniform::new(dvec(&[2.0]), dvec(&[1.0])));
    assert_invalid_parameter(&e, CTX, "high[0]");
    // Non-finite bounds.
    let e = err(Uniform::new(dvec(&[f64::NAN]), dvec(&[1.0])));
    assert_invalid_parameter(&e, CTX, "low[0]");
    let e = err(Uniform::new(dvec(&[0.0, 0.0]), dvec(&[1.0, f64::INFINITY])));
    assert_invalid_parameter(&e, CTX, "high[1]");
    let e = err(Uniform::new(dvec(&[f64::NEG_INFINITY]), dvec(&[1.0])));
    assert_invalid_parameter(&e, CTX, "low[0]");
    // Shapes.
    let e = err(Uniform::new(dvec(&[0.0, 0.0]), dvec(&[1.0])));
    assert_dimension_mismatch(&e, "high", 2, 1);
    assert_invalid_dimension(&err(Uniform::new(dvec(&[]), dvec(&[]))), "low");
}

#[test]
fn multivariate_normal_new_rejects_bad_covariance() {
    const CTX: &str = "MultivariateNormal::new";
    let z2 = || dvec(&[0.0, 0.0]);
    // Not symmetric.
    let e = err(MultivariateNormal::new(
        z2(),
        mat(2, 2, &[2.0, 0.5, 0.4, 1.0]),
    ));
    assert!(matches!(e, Error::NotPositiveDefinite { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(CTX) && msg.contains("`covariance`") && msg.contains("not symmetric"),
        "{msg}"
    );
    // Symmetric but indefinite (eigenvalues 3 and −1), singular, negative diagonal.
    for cov in [
        mat(2, 2, &[1.0, 2.0, 2.0, 1.0]),
        mat(2, 2, &[1.0, 1.0, 1.0, 1.0]),
        mat(2, 2, &[-1.0, 0.0, 0.0, 1.0]),
        mat(2, 2, &[0.0, 0.0, 0.0, 0.0]),
    ] {
        let e = err(MultivariateNormal::new(z2(), cov.clone()));
        assert!(
            matches!(e, Error::NotPositiveDefinite { .. }),
            "{cov}: {e:?}"
        );
        assert!(e.to_string().contains("Cholesky"), "{e}");
    }
    // Not square.
    let e = err(MultivariateNormal::new(z2(), DMatrix::identity(2, 3)));
    assert_invalid_parameter(&e, CTX, "covariance");
    assert!(
        e.to_string().contains("square") && e.to_string().contains("2×3"),
        "{e}"
    );
    // Square but the wrong size for loc.
    let e = err(MultivariateNormal::new(
        dvec(&[0.0; 3]),
        DMatrix::identity(2, 2),
    ));
    assert_dimension_mismatch(&e, "covariance", 3, 2);
    // Non-finite entries.
    let e = err(MultivariateNormal::new(
        z2(),
        mat(2, 2, &[1.0, 0.0, f64::NAN, 1.0]),
    ));
    assert_invalid_parameter(&e, CTX, "covariance[(1, 0)]");
    let e = err(MultivariateNormal::new(
        dvec(&[0.0, f64::INFINITY]),
        DMatrix::identity(2, 2),
    ));
    assert_invalid_parameter(&e, CTX, "loc[1]");
    assert_invalid_dimension(
        &err(MultivariateNormal::new(dvec(&[]), DMatrix::zeros(0, 0))),
        "loc",
    );
    // Asymmetry at the level of rounding (relative √ε is the documented tolerance) is accepted.
    assert!(MultivariateNormal::new(z2(), mat(2, 2, &[2.0, 0.5 + 1e-12, 0.5, 1.0])).is_ok());
}

#[test]
fn multivariate_normal_from_scale_tril_rejects_bad_factor() {
    const CTX: &str = "MultivariateNormal::from_scale_tril";
    let z2 = || dvec(&[0.0, 0.0]);
    // An entry above the diagonal.
    let e = err(MultivariateNormal::from_scale_tril(
        z2(),
        mat(2, 2, &[1.0, 0.5, 0.0, 1.0]),
    ));
    assert_invalid_parameter(&e, CTX, "scale_tril[(0, 1)]");
    assert!(e.to_string().contains("lower triangular"), "{e}");
    // A zero on the diagonal.
    let e = err(MultivariateNormal::from_scale_tril(
        z2(),
        mat(2, 2, &[1.0, 0.0, 0.3, 0.0]),
    ));
    assert_invalid_parameter(&e, CTX, "scale_tril[(1, 1)]");
    assert!(e.to_string().contains("nonzero"), "{e}");
    // Not square, wrong size, non-finite.
    let e = err(MultivariateNormal::from_scale_tril(
        z2(),
        DMatrix::identity(3, 2),
    ));
    assert_invalid_parameter(&e, CTX, "scale_tril");
    let e = err(MultivariateNormal::from_scale_tril(
        dvec(&[0.0; 3]),
        DMatrix::identity(2, 2),
    ));
    assert_dimension_mismatch(&e, "scale_tril", 3, 2);
    let e = err(MultivariateNormal::from_scale_tril(
        z2(),
        mat(2, 2, &[1.0, 0.0, f64::NEG_INFINITY, 1.0]),
    ));
    assert_invalid_parameter(&e, CTX, "scale_tril[(1, 0)]");
    // A negative diagonal is a valid (sign-flipped) factor.
    assert!(MultivariateNormal::from_scale_tril(z2(), mat(2, 2, &[-1.0, 0.0, 0.3, 2.0])).is_ok());
}

#[test]
fn gaussian_mixture_rejects_bad_weights_shapes_and_scales() {
    const CTX: &str = "GaussianMixture::new";
    let locs = || mat(1, 2, &[-1.0, 1.0]);
    let scales = || mat(1, 2, &[1.0, 2.0]);
    assert!(GaussianMixture::new(dvec(&[1.0, 1.0]), locs(), scales()).is_ok());
    // No components, no dimensions.
    let e = err(GaussianMixture::new(
        dvec(&[]),
        DMatrix::zeros(1, 0),
        DMatrix::zeros(1, 0),
    ));
    assert_invalid_dimension(&e, "weights");
    let e = err(GaussianMixture::new(
        dvec(&[1.0, 1.0]),
        DMatrix::zeros(0, 2),
        DMatrix::zeros(0, 2),
    ));
    assert_invalid_dimension(&e, "locs (rows)");
    // Shapes that disagree.
    let e = err(GaussianMixture::new(
        dvec(&[1.0, 1.0]),
        DMatrix::zeros(1, 3),
        scales(),
    ));
    assert_dimension_mismatch(&e, "locs (columns = components)", 2, 3);
    let e = err(GaussianMixture::new(
        dvec(&[1.0, 1.0]),
        locs(),
        DMatrix::from_element(2, 2, 1.0),
    ));
    assert_dimension_mismatch(&e, "scales (rows)", 1, 2);
    let e = err(GaussianMixture::new(
        dvec(&[1.0, 1.0]),
        locs(),
        DMatrix::from_element(1, 3, 1.0),
    ));
    assert_dimension_mismatch(&e, "scales (columns = components)", 2, 3);
    // Weights that are not finite and positive.
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = err(GaussianMixture::new(dvec(&[1.0, bad]), locs(), scales()));
        assert_invalid_parameter(&e, CTX, "weights[1]");
        assert!(e.to_string().contains("finite and positive"), "{e}");
    }
    // A non-finite location.
    let e = err(GaussianMixture::new(
        dvec(&[1.0, 1.0]),
        mat(1, 2, &[0.0, f64::NAN]),
        scales(),
    ));
    assert_invalid_parameter(&e, CTX, "locs[(0, 1)]");
    // Scales that are not finite and positive, at (row, component).
    for bad in [0.0, -2.0, f64::NAN, f64::INFINITY] {
        let e = err(GaussianMixture::new(
            dvec(&[1.0, 1.0]),
            mat(2, 2, &[0.0, 0.0, 0.0, 0.0]),
            mat(2, 2, &[1.0, 1.0, bad, 1.0]),
        ));
        assert_invalid_parameter(&e, CTX, "scales[(1, 0)]");
    }
}

#[test]
fn transformed_distribution_rejects_bijector_of_other_dimension() {
    let e = err(TransformedDistribution::<f64, _, _>::new(
        StandardNormal::new(2).unwrap(),
        Shift::new(dvec(&[1.0, 2.0, 3.0])).unwrap(),
    ));
    assert_dimension_mismatch(&e, "bijector", 2, 3);
    assert!(
        e.to_string().starts_with("TransformedDistribution::new"),
        "{e}"
    );

    let l3 = DMatrix::<f64>::identity(3, 3);
    let e = err(TransformedDistribution::new(
        Normal::new(dvec(&[0.0, 0.0]), dvec(&[1.0, 1.0])).unwrap(),
        ScaleTriL::new(l3, dvec(&[0.0; 3])).unwrap(),
    ));
    assert_dimension_mismatch(&e, "bijector", 2, 3);

    // A chain whose fixed dimension (from its Scale) differs.
    let chain = Exp.then(Scale::new(dvec(&[1.0])).unwrap());
    let e = err(TransformedDistribution::<f64, _, _>::new(
        StandardNormal::new(2).unwrap(),
        chain,
    ));
    assert_dimension_mismatch(&e, "bijector", 2, 1);

    // Elementwise bijectors fit every dimension.
    for d in 1..4 {
        assert!(
            TransformedDistribution::<f64, _, _>::new(StandardNormal::new(d).unwrap(), Exp).is_ok()
        );
    }
}

// ---------------------------------------------------------------------------
// 7. serde round trips
// ---------------------------------------------------------------------------

/// Serialises `d` to JSON and back; the copy gives bit-identical log-densities
/// and, from the same seed, the same samples.
#[track_caller]
fn assert_serde_round_trip<D>(d: &D, x: &DMatrix<f64>)
where
    D: Distribution<f64> + Serialize + DeserializeOwned,
{
    let json = serde_json::to_string(d).expect("serialize");
    let back: D = serde_json::from_str(&json).unwrap_or_else(|e| panic!("deserialize {json}: {e}"));
    assert_eq!(back.dim(), d.dim(), "{json}");
    assert_eq!(back.log_prob(x), d.log_prob(x), "{json}");
    assert_eq!(
        back.sample(16, &mut seeded(42)),
        d.sample(16, &mut seeded(42)),
        "{json}"
    );
    // Serialising again gives the same text.
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
}

#[test]
fn serde_round_trips_preserve_log_prob() {
    let x1 = batch(1, &[-2.5, -0.3, 0.0, 0.1, 0.7, 1.0, 3.3, 40.0]);
    let x2 = batch(2, &[0.0, 0.0, 0.3, -0.2, 1.5, 0.25, -4.0, 2.0, 10.0, -0.1]);
    let x3 = batch(3, &[0.0, 0.0, 0.0, 1.0, -2.0, 0.3, 5.0, 0.1, -0.7]);

    assert_serde_round_trip(&StandardNormal::new(3).unwrap(), &x3);
    assert_serde_round_trip(
        &Normal::new(dvec(&[0.1, -0.3]), dvec(&[0.7, 2.9])).unwrap(),
        &x2,
    );
    assert_serde_round_trip(
        &MultivariateNormal::new(
            dvec(&[0.1, 0.2, 0.3]),
            arr3_to_mat([[4.0, 1.0, 0.5], [1.0, 3.0, -0.7], [0.5, -0.7, 2.0]]),
        )
        .unwrap(),
        &x3,
    );
    assert_serde_round_trip(
        &MultivariateNormal::from_scale_tril(dvec(&[1.0, -1.0]), mat(2, 2, &[0.3, 0.0, -1.7, 2.2]))
            .unwrap(),
        &x2,
    );
    assert_serde_round_trip(
        &Uniform::new(dvec(&[-0.1, 0.0]), dvec(&[2.0, 0.3])).unwrap(),
        &x2,
    );
    assert_serde_round_trip(
        &Laplace::new(dvec(&[0.3, -1.0]), dvec(&[0.1, 3.0])).unwrap(),
        &x2,
    );
    assert_serde_round_trip(
        &Logistic::new(dvec(&[0.3, -1.0]), dvec(&[0.1, 3.0])).unwrap(),
        &x2,
    );
    // Weights [0.1, 0.2, 0.3] normalise to values whose floating-point sum is
    // 0.9999999999999999, not 1: the round trip must still be exact.
    assert_serde_round_trip(
        &GaussianMixture::new(
            dvec(&[0.1, 0.2, 0.3]),
            mat(2, 3, &[-2.0, 0.1, 3.0, 1.0, -1.0, 2.0]),
            mat(2, 3, &[0.5, 1.0, 2.0, 1.0, 0.7, 0.5]),
        )
        .unwrap(),
        &x2,
    );
    assert_serde_round_trip(
        &TransformedDistribution::new(Normal::new(dvec(&[3.0]), dvec(&[2.0])).unwrap(), Exp)
            .unwrap(),
        &x1,
    );
    assert_serde_round_trip(
        &TransformedDistribution::<f64, _, _>::new(
            StandardNormal::new(2).unwrap(),
            ScaleTriL::new(mat(2, 2, &[1.5, 0.0, 0.8, -0.6]), dvec(&[1.0, -2.0])).unwrap(),
        )
        .unwrap(),
        &x2,
    );

    // f32 parameters survive too.
    let d32 = Normal::new(lit_vec::<f32>(&[0.5]), lit_vec::<f32>(&[1.25])).unwrap();
    let json = serde_json::to_string(&d32).unwrap();
    let back: Normal<f32> = serde_json::from_str(&json).unwrap();
    let x = DMatrix::from_row_slice(1, 3, &[0.1_f32, -3.7, 2.2]);
    assert_eq!(back.log_prob(&x), d32.log_prob(&x));
}

#[test]
fn deserialization_validates_parameters() {
    // DESIGN.md: everything that reads outside input (model JSON, …) returns a
    // typed error, and constructors validate; a saved model must not bypass
    // that. nalgebra stores a matrix as [column-major data, nrows, ncols], with
    // ncols `null` for a vector.
    let bad_std = serde_json::from_str::<StandardNormal>(r#"{"dim":0}"#);
    assert!(bad_std.is_err());

    let e =
        serde_json::from_str::<Normal<f64>>(r#"{"loc":[[0.0],1,null],"scale":[[-2.0],1,null]}"#)
            .expect_err("Normal with a negative scale");
    assert!(e.to_string().contains("scale[0]"), "{e}");
    let e =
        serde_json::from_str::<Normal<f64>>(r#"{"loc":[[0.0,1.0],2,null],"scale":[[2.0],1,null]}"#)
            .expect_err("Normal with mismatched lengths");
    assert!(e.to_string().contains("`scale` has dimension 1"), "{e}");
    let e =
        serde_json::from_str::<Laplace<f64>>(r#"{"loc":[[0.0],1,null],"scale":[[0.0],1,null]}"#)
            .expect_err("Laplace with a zero scale");
    assert!(e.to_string().contains("scale[0]"), "{e}");
    let e =
        serde_json::from_str::<Logistic<f64>>(r#"{"loc":[[0.0],1,null],"scale":[[-1.0],1,null]}"#)
            .expect_err("Logistic with a negative scale");
    assert!(e.to_string().contains("scale[0]"), "{e}");
    let e = serde_json::from_str::<Uniform<f64>>(r#"{"low":[[1.0],1,null],"high":[[0.0],1,null]}"#)
        .expect_err("Uniform with low > high");
    assert!(e.to_string().contains("high[0]"), "{e}");
    // An upper-triangular "scale_tril" (column-major data [1, 0, 0.5, 1] is [[1, .5], [0, 1]]).
    let e = serde_json::from_str::<MultivariateNormal<f64>>(
        r#"{"loc":[[0.0,0.0],2,null],"scale_tril":[[1.0,0.0,0.5,1.0],2,2]}"#,
    )
    .expect_err("MultivariateNormal with an upper-triangular factor");
    assert!(e.to_string().contains("scale_tril[(0, 1)]"), "{e}");
    let e = serde_json::from_str::<GaussianMixture<f64>>(
        r#"{"weights":[[0.5,-0.5],2,null],"locs":[[0.0,1.0],1,2],"scales":[[1.0,1.0],1,2]}"#,
    )
    .expect_err("GaussianMixture with a negative weight");
    assert!(e.to_string().contains("weights[1]"), "{e}");
}

// ---------------------------------------------------------------------------
// 8. Wrong number of rows panics with both dimensions in the message
// ---------------------------------------------------------------------------

#[test]
#[should_panic(
    expected = "StandardNormal::log_prob: input has dimension 3 (rows), expected dimension 2"
)]
fn standard_normal_panics_on_wrong_rows() {
    let _: DVector<f64> = StandardNormal::new(2)
        .unwrap()
        .log_prob(&DMatrix::zeros(3, 4));
}

#[test]
#[should_panic(expected = "Normal::log_prob: input has dimension 1 (rows), expected dimension 2")]
fn normal_panics_on_wrong_rows() {
    let d = Normal::new(dvec(&[0.0, 0.0]), dvec(&[1.0, 1.0])).unwrap();
    d.log_prob(&DMatrix::zeros(1, 4));
}

#[test]
#[should_panic(
    expected = "MultivariateNormal::log_prob: input has dimension 2 (rows), expected dimension 3"
)]
fn multivariate_normal_panics_on_wrong_rows() {
    let d = MultivariateNormal::new(dvec(&[0.0; 3]), DMatrix::identity(3, 3)).unwrap();
    d.log_prob(&DMatrix::zeros(2, 4));
}

#[test]
#[should_panic(expected = "Uniform::log_prob: input has dimension 3 (rows), expected dimension 1")]
fn uniform_panics_on_wrong_rows() {
    let d = Uniform::new(dvec(&[0.0]), dvec(&[1.0])).unwrap();
    d.log_prob(&DMatrix::zeros(3, 2));
}

#[test]
#[should_panic(expected = "Laplace::log_prob: input has dimension 2 (rows), expected dimension 1")]
fn laplace_panics_on_wrong_rows() {
    let d = Laplace::new(dvec(&[0.0]), dvec(&[1.0])).unwrap();
    d.log_prob(&DMatrix::zeros(2, 2));
}

#[test]
#[should_panic(expected = "Logistic::log_prob: input has dimension 2 (rows), expected dimension 1")]
fn logistic_panics_on_wrong_rows() {
    let d = Logistic::new(dvec(&[0.0]), dvec(&[1.0])).unwrap();
    d.log_prob(&DMatrix::zeros(2, 2));
}

#[test]
#[should_panic(
    expected = "GaussianMixture::log_prob: input has dimension 1 (rows), expected dimension 2"
)]
fn gaussian_mixture_panics_on_wrong_rows() {
    let d = GaussianMixture::new(
        dvec(&[1.0]),
        DMatrix::zeros(2, 1),
        DMatrix::from_element(2, 1, 1.0),
    )
    .unwrap();
    d.log_prob(&DMatrix::zeros(1, 2));
}

#[test]
#[should_panic(
    expected = "TransformedDistribution::log_prob: input has dimension 3 (rows), expected dimension 2"
)]
fn transformed_distribution_panics_on_wrong_rows() {
    let d =
        TransformedDistribution::<f64, _, _>::new(StandardNormal::new(2).unwrap(), Exp).unwrap();
    d.log_prob(&DMatrix::<f64>::zeros(3, 2));
}

#[test]
#[should_panic(expected = "input has dimension 1 (rows), expected dimension 2")]
fn boxed_distribution_panics_on_wrong_rows() {
    // Through a trait object the message is the same.
    let d: Box<dyn Distribution<f32>> = Box::new(StandardNormal::new(2).unwrap());
    d.log_prob(&DMatrix::zeros(1, 1));
}

/// A saved transformed distribution whose bijector's dimension does not match
/// its base is rejected on load, like `TransformedDistribution::new` rejects it.
#[test]
fn transformed_distribution_validates_dimensions_on_load() {
    let good = TransformedDistribution::<f64, _, _>::new(
        StandardNormal::new(3).unwrap(),
        Permute::reverse(3).unwrap(),
    )
    .unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&good).unwrap();
    json["base"]["dim"] = serde_json::json!(2);
    let err = serde_json::from_value::<TransformedDistribution<f64, StandardNormal, Permute>>(json)
        .unwrap_err();
    assert!(
        err.to_string().contains("TransformedDistribution::new"),
        "{err}"
    );
    let back: TransformedDistribution<f64, StandardNormal, Permute> =
        serde_json::from_str(&serde_json::to_string(&good).unwrap()).unwrap();
    let x = DMatrix::from_fn(3, 2, |i, j| (i + j) as f64);
    assert_eq!(back.log_prob(&x), good.log_prob(&x));
}
