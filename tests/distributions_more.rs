//! LogNormal, StudentT, Beta and Mixture: every closed form (log-density,
//! mean, variance, entropy, CDF, quantile) against scipy 1.17.1 at fixed
//! points, quantile ∘ CDF round trips, densities integrating to one, Monte
//! Carlo moments within a few standard errors of the closed forms, `-inf`
//! (never NaN) outside the support, gradients against finite differences,
//! and refused parameters.
//!
//! The scipy values and the code that printed them are in
//! `distributions_more/scipy.rs`.

use nalgebra::{DMatrix, DVector};
use normflow::distribution::{
    Beta, Distribution, Estimate, GaussianMixture, Laplace, LogNormal, Marginals, Mixture, Normal,
    StudentT, Summary, estimate_entropy, estimate_mean, estimate_variance,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "distributions_more/scipy.rs"]
mod scipy;
use scipy::{BETA_CASES, LOG_NORMAL, T_CASES};

fn row(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_row_slice(1, v.len(), v)
}

/// `|got − want| ≤ rel · |want| + abs`: relative where values are tiny or huge.
fn close(got: f64, want: f64, rel: f64, abs: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs() + abs,
        "{got} vs {want} (difference {:e})",
        got - want
    );
}

fn boxed<D: Distribution<f64> + 'static>(d: D) -> Box<dyn Distribution<f64>> {
    Box::new(d)
}

/// The message of a refused construction.
fn refused<T: std::fmt::Debug>(r: Result<T, normflow::Error>) -> String {
    r.unwrap_err().to_string()
}

/// scipy's relative accuracy is near 1e-15 at these points; ours within 2e-13.
const REL: f64 = 2e-13;
const PS: [f64; 6] = [1e-10, 0.025, 0.3, 0.5, 0.9, 0.999];

/// A 1-D family's log-density, CDF and quantile against scipy's values,
/// each given as (points, values).
fn check_1d(
    d: &dyn Marginals<f64>,
    lp: (&[f64], &[f64]),
    cdf: (&[f64], &[f64]),
    ppf: (&[f64], &[f64]),
) {
    for (g, w) in d.log_prob(&row(lp.0)).iter().zip(lp.1) {
        close(*g, *w, REL, REL);
    }
    for (g, w) in d.cdf(&row(cdf.0)).iter().zip(cdf.1) {
        close(*g, *w, REL, 1e-15);
    }
    for (g, w) in d.quantile(&row(ppf.0)).iter().zip(ppf.1) {
        close(*g, *w, REL, 1e-15);
    }
}

#[test]
fn log_normal_matches_scipy() {
    let d = LogNormal::<f64>::scalar(0.3, 0.8).unwrap();
    let [lp, cdf, ppf] = LOG_NORMAL;
    check_1d(
        &d,
        (&[0.2, 2.0, 7.5], &lp),
        (&[0.05, 0.9, 2.0], &cdf),
        (&[1e-10, 0.025, 0.9], &ppf),
    );
    close(d.mean()[0], 1.8589280418463423, 1e-15, 0.0);
    close(d.variance()[0], 3.097891397428475, 1e-14, 0.0);
    close(d.entropy(), 1.495794981890463, 1e-15, 0.0);
    // A product: moments per coordinate, entropies add. lognorm(1.5,
    // scale=exp(-1)): entropy 0.824403641312837, mean 1.1331484530668265,
    // var 10.898468544015735.
    let d2 = LogNormal::<f64>::from_slices(&[0.3, -1.0], &[0.8, 1.5]).unwrap();
    let h = 1.495794981890463 + 0.824403641312837;
    close(d2.entropy(), h, 1e-15, 0.0);
    close(d2.mean()[1], 1.1331484530668265, 1e-15, 0.0);
    close(d2.variance()[1], 10.898468544015735, 1e-14, 0.0);
    // Edges of the quantile: 0 at p = 0, +∞ at p = 1, NaN outside [0, 1].
    let q = d.quantile(&row(&[0.0, 1.0, 1.5, f64::NAN]));
    assert_eq!((q[0], q[1]), (0.0, f64::INFINITY));
    assert!(q[2].is_nan() && q[3].is_nan());
    assert_eq!(d.cdf(&row(&[-1.0, 0.0])).as_slice(), &[0.0, 0.0]);
}

#[test]
fn student_t_matches_scipy() {
    for ((df, loc, scale), logpdf, cdf, ppf, entropy) in T_CASES {
        let d = StudentT::<f64>::scalar(df, loc, scale).unwrap();
        check_1d(
            &d,
            (&[-3.0, 0.1, 40.0], &logpdf),
            (&[-100.0, -3.0, 0.1, 2.5], &cdf),
            (&PS, &ppf),
        );
        close(d.entropy(), entropy, 1e-13, 0.0);
    }
    // Moments: t.mean/var(3, 0.5, 2) = 0.5, 12; t.var(30) = 1.0714285714285714;
    // ν = 2: var +∞; ν ≤ 1: undefined (NaN). Entropies add.
    let d = StudentT::<f64>::from_slices(
        &[3.0, 30.0, 2.0, 1.0],
        &[0.5, 0.0, -1.0, 0.0],
        &[2.0, 1.0, 0.5, 1.0],
    )
    .unwrap();
    let (m, v) = (d.mean(), d.variance());
    assert_eq!(&m.as_slice()[..3], &[0.5, 0.0, -1.0]);
    assert!(m[3].is_nan() && v[3].is_nan());
    close(v[0], 12.0, 1e-15, 0.0);
    close(v[1], 1.0714285714285714, 1e-15, 0.0);
    assert_eq!(v[2], f64::INFINITY);
    let h: f64 = [0, 4, 2, 1].iter().map(|k| T_CASES[*k].4).sum();
    close(d.entropy(), h, 1e-14, 0.0);
    let s = StudentT::<f64>::scalar(5.0, 0.0, 1.0).unwrap();
    let q = s.quantile(&row(&[0.0, 1.0, -0.1, f64::NAN]));
    assert_eq!((q[0], q[1]), (f64::NEG_INFINITY, f64::INFINITY));
    assert!(q[2].is_nan() && q[3].is_nan());
    let c = s.cdf(&row(&[f64::NEG_INFINITY, f64::INFINITY]));
    assert_eq!(c.as_slice(), &[0.0, 1.0]);
}

#[test]
fn beta_matches_scipy() {
    let xs = [1e-6, 0.3, 0.75, 0.999];
    for ((a, b), logpdf, cdf, ppf, [entropy, mean, var]) in BETA_CASES {
        let d = Beta::<f64>::scalar(a, b).unwrap();
        check_1d(&d, (&xs, &logpdf), (&xs, &cdf), (&PS, &ppf));
        close(d.entropy(), entropy, 1e-13, 0.0);
        close(d.mean()[0], mean, 1e-15, 0.0);
        close(d.variance()[0], var, 1e-14, 0.0);
    }
    // Endpoints: beta.logpdf(0, 1, 3) = log 3; an unbounded (or zero)
    // density there gives -inf; the quantile's edges are 0 and 1.
    let d = Beta::<f64>::from_slices(&[1.0, 0.5], &[3.0, 0.5]).unwrap();
    let lp = d.log_prob(&DMatrix::from_column_slice(2, 2, &[0.0, 0.3, 0.3, 1.0]));
    assert!(lp[0].is_finite() && lp[1] == f64::NEG_INFINITY);
    let b13 = Beta::<f64>::scalar(1.0, 3.0).unwrap();
    close(b13.log_prob_one(&[0.0]), 1.0986122886681098, 1e-15, 0.0);
    let q = b13.quantile(&row(&[0.0, 1.0, 2.0]));
    assert_eq!((q[0], q[1]), (0.0, 1.0));
    assert!(q[2].is_nan());
    assert_eq!(b13.cdf(&row(&[-0.5, 1.5])).as_slice(), &[0.0, 1.0]);
}

#[test]
fn quantile_inverts_cdf_for_the_new_families() {
    let p = DMatrix::from_fn(2, 41, |_, j| (j as f64 + 0.5) / 41.0);
    let ln = LogNormal::<f64>::from_slices(&[0.3, -2.0], &[0.8, 2.5]).unwrap();
    let st = StudentT::<f64>::from_slices(&[0.4, 6.5], &[1.0, -2.0], &[0.3, 4.0]).unwrap();
    let be = Beta::<f64>::from_slices(&[0.2, 7.0], &[0.9, 300.0]).unwrap();
    let fams: [&dyn Marginals<f64>; 3] = [&ln, &st, &be];
    for d in fams {
        let back = d.cdf(&d.quantile(&p));
        assert!((back - &p).amax() < 1e-13, "{d:?}");
    }
    // And the other way round, from draws (relative in x).
    let mut rng = StdRng::seed_from_u64(3);
    for d in fams {
        let x = d.sample(200, &mut rng);
        let back = d.quantile(&d.cdf(&x));
        for (g, w) in back.iter().zip(x.iter()) {
            close(*g, *w, 1e-12, 1e-15);
        }
    }
}

/// `∫ f(t) dt` over `[a, b]` by the midpoint rule on `n` cells (spectrally
/// accurate for smooth integrands that vanish with their derivatives at the
/// ends). `f` maps the `1 × n` nodes to the integrand's values.
fn midpoint(a: f64, b: f64, n: usize, f: impl Fn(&DMatrix<f64>) -> Vec<f64>) -> f64 {
    let h = (b - a) / n as f64;
    let nodes = DMatrix::from_fn(1, n, |_, j| a + (j as f64 + 0.5) * h);
    f(&nodes).iter().sum::<f64>() * h
}

/// `p(g(t)) g'(t)` at the nodes, for the substitution `x = g(t)`.
fn pushed(d: &dyn Distribution<f64>, t: &DMatrix<f64>, g: impl Fn(f64) -> (f64, f64)) -> Vec<f64> {
    let (x, dx): (Vec<f64>, Vec<f64>) = t.iter().map(|t| g(*t)).unzip();
    let lp = d.log_prob(&row(&x));
    lp.iter().zip(dx).map(|(lp, dx)| lp.exp() * dx).collect()
}

#[test]
fn densities_integrate_to_one() {
    // Log-normal: x = e^u.
    let ln = LogNormal::<f64>::scalar(0.3, 0.8).unwrap();
    let total = midpoint(-10.0, 10.0, 4000, |u| {
        pushed(&ln, u, |u| (u.exp(), u.exp()))
    });
    close(total, 1.0, 1e-12, 0.0);
    // Student t: x = μ + σ tan θ on (−π/2, π/2).
    let half_pi = std::f64::consts::FRAC_PI_2;
    for df in [1.0, 2.5, 7.0] {
        let d = StudentT::<f64>::scalar(df, 0.5, 2.0).unwrap();
        let g = |t: f64| (0.5 + 2.0 * t.tan(), 2.0 / (t.cos() * t.cos()));
        let total = midpoint(-half_pi, half_pi, 20_000, |t| pushed(&d, t, g));
        close(total, 1.0, 1e-10, 0.0);
    }
    // Beta: x = σ(s) on the real line.
    for (a, b) in [(0.5, 3.0), (2.0, 5.0), (0.7, 0.7)] {
        let d = Beta::<f64>::scalar(a, b).unwrap();
        let g = |s: f64| {
            let x = 1.0 / (1.0 + (-s).exp());
            (x, x * (1.0 - x))
        };
        let total = midpoint(-90.0, 90.0, 20_000, |s| pushed(&d, s, g));
        close(total, 1.0, 1e-10, 0.0);
    }
}

#[test]
fn mixture_integrates_to_one_in_two_dimensions() {
    // Light tails (the box holds all but ~1e-12 of the mass), and beta
    // densities flat to fourth order at the ends of [0, 1], so that the
    // midpoint rule stays accurate across those kinks.
    let parts = vec![
        boxed(Normal::from_slices(&[-1.0, 0.5], &[0.6, 0.8]).unwrap()),
        boxed(Beta::from_slices(&[5.0, 5.0], &[5.0, 6.0]).unwrap()),
        boxed(LogNormal::from_slices(&[0.0, 0.3], &[0.3, 0.25]).unwrap()),
    ];
    let m = Mixture::new(&[2.0, 5.0, 3.0], parts).unwrap();
    let (lo, hi, n) = (-8.0, 8.0, 1024);
    let h = (hi - lo) / n as f64;
    let x = DMatrix::from_fn(2, n * n, |i, j| {
        let k = if i == 0 { j % n } else { j / n };
        lo + (k as f64 + 0.5) * h
    });
    let total = m.log_prob(&x).map(f64::exp).sum() * h * h;
    close(total, 1.0, 1e-9, 0.0);
}

#[test]
fn mixture_log_prob_matches_scipy_and_gaussian_mixture() {
    // scipy: np.log(0.2 N(x; [-1, .5], [.6, .8]) + 0.5 t5(x; [1, -1], [.7, 1.2])
    //        + 0.3 Beta(x; [2, 3], [3, 2])), each a product over the coordinates
    let parts = vec![
        boxed(Normal::from_slices(&[-1.0, 0.5], &[0.6, 0.8]).unwrap()),
        boxed(StudentT::from_slices(&[5.0, 5.0], &[1.0, -1.0], &[0.7, 1.2]).unwrap()),
        boxed(Beta::from_slices(&[2.0, 3.0], &[3.0, 2.0]).unwrap()),
    ];
    let m = Mixture::new(&[0.2, 0.5, 0.3], parts).unwrap();
    let x = DMatrix::from_column_slice(2, 3, &[0.3, 0.6, -1.0, 0.0, 4.0, -3.0]);
    let want = [-0.06115421970502035, -2.851959034306783, -8.407236344692572];
    for (g, w) in m.log_prob(&x).iter().zip(want) {
        close(*g, w, 1e-13, 0.0);
    }
    // A mixture of diagonal normals is a GaussianMixture, in the far tail too
    // (every component's density underflows there; log-sum-exp does not).
    let (w, locs, scales) = ([0.25, 0.75], [-2.0, 1.0, 2.0, -0.5], [0.5, 1.0, 1.5, 0.3]);
    let gm = GaussianMixture::new(
        DVector::from_row_slice(&w),
        DMatrix::from_column_slice(2, 2, &locs),
        DMatrix::from_column_slice(2, 2, &scales),
    )
    .unwrap();
    let parts = vec![
        boxed(Normal::from_slices(&locs[..2], &scales[..2]).unwrap()),
        boxed(Normal::from_slices(&locs[2..], &scales[2..]).unwrap()),
    ];
    let mx = Mixture::new(&w, parts).unwrap();
    let x = DMatrix::from_column_slice(2, 3, &[0.1, 0.2, 60.0, -45.0, -3.0, 9.0]);
    let (a, b) = (mx.log_prob(&x), gm.log_prob(&x));
    assert!(a[1] < -1000.0 && a[1].is_finite());
    for (g, w) in a.iter().zip(b.iter()) {
        close(*g, *w, 1e-13, 1e-13);
    }
}

#[test]
fn outside_the_support_is_neg_inf_never_nan() {
    let ninf = f64::NEG_INFINITY;
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    let ln = LogNormal::<f64>::from_slices(&[0.0, 1.0], &[1.0, 0.5]).unwrap();
    let x = DMatrix::from_column_slice(2, 4, &[1.0, -1.0, 0.0, 1.0, nan, 1.0, 1.0, inf]);
    assert_eq!(ln.log_prob(&x).as_slice(), &[ninf; 4]);
    let be = Beta::<f64>::from_slices(&[2.0, 0.5], &[2.0, 0.5]).unwrap();
    let x = DMatrix::from_column_slice(2, 4, &[-0.1, 0.5, 0.5, 1.2, 0.5, 0.0, nan, 0.5]);
    assert_eq!(be.log_prob(&x).as_slice(), &[ninf; 4]);
    // The t's tails: -inf at ±∞ and NaN, finite where z² would overflow.
    let st = StudentT::<f64>::scalar(0.5, 0.0, 1.0).unwrap();
    let lp = st.log_prob(&row(&[inf, ninf, nan, 1e300]));
    assert_eq!(&lp.as_slice()[..3], &[ninf; 3]);
    // scipy.special: gammaln(0.75) - gammaln(0.25) - 0.5 log(pi/2)
    // - 0.75 (600 log 10 + log 2) = -1037.9936851586522 (stats.t.logpdf
    // overflows to -inf there).
    close(lp[3], -1037.9936851586522, 1e-15, 0.0);
    // A mixture is -inf only where every component is.
    let parts = vec![
        boxed(Beta::scalar(2.0, 2.0).unwrap()),
        boxed(Beta::scalar(0.5, 3.0).unwrap()),
    ];
    let m = Mixture::new(&[0.5, 0.5], parts).unwrap();
    let lp = m.log_prob(&row(&[2.0, -1.0, nan, 0.5]));
    assert_eq!(&lp.as_slice()[..3], &[ninf; 3]);
    assert!(lp[3].is_finite());
    let parts = vec![
        boxed(Beta::scalar(2.0, 2.0).unwrap()),
        boxed(Normal::scalar(0.0, 1.0).unwrap()),
    ];
    let m = Mixture::new(&[0.5, 0.5], parts).unwrap();
    // Outside the beta's support only the normal counts: log ½ + log φ(2).
    let want = 0.5f64.ln() - 2.0 - 0.5 * (2.0 * std::f64::consts::PI).ln();
    close(m.log_prob_one(&[2.0]), want, 1e-15, 0.0);
    // f32 too.
    let b32 = Beta::<f32>::scalar(2.0, 2.0).unwrap();
    assert_eq!(b32.log_prob_one(&[1.5]), f32::NEG_INFINITY);
    let l32 = LogNormal::<f32>::scalar(0.0, 1.0).unwrap();
    assert_eq!(l32.log_prob_one(&[-0.5]), f32::NEG_INFINITY);
}

/// Monte Carlo mean, variance and (when given) entropy of `d` within four
/// standard errors of the closed forms.
fn agrees(
    d: &dyn Distribution<f64>,
    mean: &[f64],
    var: &[f64],
    entropy: Option<f64>,
    rng: &mut StdRng,
) {
    let n = 40_000;
    let within = |e: &Estimate, want: f64, what: &str| {
        assert!(
            (e.value - want).abs() < 4.0 * e.standard_error,
            "{d:?} {what}: {e:?} vs {want}"
        );
    };
    for (i, e) in estimate_mean(d, n, rng).unwrap().iter().enumerate() {
        within(e, mean[i], "mean");
    }
    for (i, e) in estimate_variance(d, n, rng).unwrap().iter().enumerate() {
        within(e, var[i], "variance");
    }
    if let Some(h) = entropy {
        within(&estimate_entropy(d, n, rng).unwrap(), h, "entropy");
    }
}

#[test]
fn monte_carlo_moments_agree_with_the_closed_forms() {
    let mut rng = StdRng::seed_from_u64(11);
    let ln = LogNormal::<f64>::from_slices(&[0.3, -1.0], &[0.5, 0.25]).unwrap();
    let st = StudentT::<f64>::from_slices(&[9.0, 30.0], &[0.5, -1.0], &[2.0, 0.5]).unwrap();
    let be = Beta::<f64>::from_slices(&[0.5, 2.0], &[0.5, 5.0]).unwrap();
    agrees(
        &ln,
        ln.mean().as_slice(),
        ln.variance().as_slice(),
        Some(ln.entropy()),
        &mut rng,
    );
    agrees(
        &st,
        st.mean().as_slice(),
        st.variance().as_slice(),
        Some(st.entropy()),
        &mut rng,
    );
    agrees(
        &be,
        be.mean().as_slice(),
        be.variance().as_slice(),
        Some(be.entropy()),
        &mut rng,
    );
    // A mixture's moments from its components': E = Σ wₖ μₖ,
    // Var = Σ wₖ (σₖ² + μₖ²) − E².
    let normal = Normal::<f64>::scalar(-2.0, 0.5).unwrap();
    let t6 = StudentT::<f64>::scalar(6.0, 1.0, 0.8).unwrap();
    let beta = Beta::<f64>::scalar(2.0, 2.0).unwrap();
    let w = [0.3, 0.5, 0.2];
    let parts: [&dyn Summary<f64>; 3] = [&normal, &t6, &beta];
    let mean: f64 = parts.iter().zip(w).map(|(d, w)| w * d.mean()[0]).sum();
    let second: f64 = parts
        .iter()
        .zip(w)
        .map(|(d, w)| w * (d.variance()[0] + d.mean()[0].powi(2)))
        .sum();
    let mix = Mixture::new(&w, vec![boxed(normal), boxed(t6), boxed(beta)]).unwrap();
    agrees(&mix, &[mean], &[second - mean * mean], None, &mut rng);
    // Draws come from the components in proportion to the weights (the
    // disjoint supports are counted apart), never from one of zero weight.
    let parts = vec![
        boxed(Beta::scalar(2.0, 2.0).unwrap()),
        boxed(Normal::scalar(100.0, 1.0).unwrap()),
        boxed(LogNormal::scalar(2.0, 0.1).unwrap()),
    ];
    let m = Mixture::new(&[0.25, 0.0, 0.75], parts).unwrap();
    let n = 40_000;
    let x = m.sample(n, &mut rng);
    let low = x.iter().filter(|v| **v < 1.0).count() as f64 / n as f64;
    assert!(
        (low - 0.25).abs() < 4.0 * (0.25f64 * 0.75 / n as f64).sqrt(),
        "{low}"
    );
    assert!(
        x.iter().all(|v| *v < 50.0),
        "a zero-weight component was drawn"
    );
}

/// `∇ log p` by central differences, one coordinate at a time.
fn numerical_grad(d: &dyn Distribution<f64>, x: &DMatrix<f64>) -> DMatrix<f64> {
    let h = 1e-6;
    DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
        let mut col = x.column(j).into_owned();
        col[i] += h;
        let up = d.log_prob_one(col.as_slice());
        col[i] -= 2.0 * h;
        let down = d.log_prob_one(col.as_slice());
        (up - down) / (2.0 * h)
    })
}

/// A density without a gradient (the trait's default).
#[derive(Debug)]
struct NoGradient;

impl Distribution<f64> for NoGradient {
    fn dim(&self) -> usize {
        1
    }
    fn log_prob(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(x.ncols(), -0.5)
    }
    fn sample(&self, n: usize, _rng: &mut dyn rand::Rng) -> DMatrix<f64> {
        DMatrix::zeros(1, n)
    }
}

#[test]
fn gradients_match_finite_differences() {
    let ln = LogNormal::<f64>::from_slices(&[0.3, -1.0], &[0.8, 0.4]).unwrap();
    let st = StudentT::<f64>::from_slices(&[0.8, 7.0], &[0.3, -1.0], &[1.5, 0.4]).unwrap();
    let be = Beta::<f64>::from_slices(&[0.5, 3.0], &[2.0, 1.5]).unwrap();
    let normal = Normal::from_slices(&[0.0, 0.0], &[1.0, 2.0]).unwrap();
    let parts = vec![boxed(st.clone()), boxed(normal), boxed(ln.clone())];
    let mix = Mixture::new(&[0.4, 0.6, 0.0], parts).unwrap();
    let x = DMatrix::from_column_slice(2, 3, &[0.2, 0.3, 0.7, 0.9, 0.6, 0.05]);
    let fams: [&dyn Distribution<f64>; 4] = [&ln, &st, &be, &mix];
    for d in fams {
        let g = d.log_prob_grad(&x).expect("a gradient");
        for (a, b) in g.iter().zip(numerical_grad(d, &x).iter()) {
            close(*a, *b, 1e-7, 1e-7);
        }
    }
    // Outside the support the gradient is zero, not NaN.
    let out = DMatrix::from_column_slice(2, 1, &[-1.0, 2.0]);
    assert_eq!(ln.log_prob_grad(&out).unwrap()[0], 0.0);
    assert_eq!(be.log_prob_grad(&out).unwrap().as_slice(), &[0.0, 0.0]);
    // A component without a gradient: the mixture has none either.
    let parts = vec![boxed(NoGradient), boxed(Normal::scalar(0.0, 1.0).unwrap())];
    let m = Mixture::new(&[0.5, 0.5], parts).unwrap();
    assert!(m.log_prob_grad(&row(&[0.3])).is_none());
}

#[test]
fn bad_parameters_are_refused_naming_the_argument() {
    assert_eq!(
        refused(LogNormal::<f64>::scalar(0.0, 0.0)),
        "LogNormal::scalar: argument `scale[0]` must be finite and positive, got 0"
    );
    assert_eq!(
        refused(StudentT::<f64>::from_slices(
            &[1.0, -2.0],
            &[0.0, 0.0],
            &[1.0, 1.0]
        )),
        "StudentT::from_slices: argument `df[1]` must be finite and positive, got -2"
    );
    assert!(refused(StudentT::<f64>::scalar(f64::INFINITY, 0.0, 1.0)).contains("`df[0]`"));
    assert!(refused(StudentT::<f64>::scalar(2.0, f64::NAN, 1.0)).contains("`loc[0]`"));
    assert!(
        refused(StudentT::<f64>::from_slices(
            &[2.0],
            &[0.0, 0.0],
            &[1.0, 1.0]
        ))
        .contains("`df`")
    );
    assert_eq!(
        refused(Beta::<f64>::from_slices(&[1.0, 2.0], &[1.0])),
        "Beta::from_slices: `beta` has dimension 1, expected dimension 2"
    );
    assert!(refused(Beta::<f64>::scalar(0.0, 1.0)).contains("`alpha[0]`"));
    assert!(refused(Beta::<f64>::scalar(1.0, f64::NAN)).contains("`beta[0]`"));
    assert!(refused(Beta::<f64>::from_slices(&[], &[])).contains("`alpha`"));
    let parts = || {
        vec![
            boxed(Normal::scalar(0.0, 1.0).unwrap()),
            boxed(Laplace::scalar(0.0, 1.0).unwrap()),
        ]
    };
    assert!(refused(Mixture::new(&[0.5, f64::NAN], parts())).contains("`weights[1]`"));
    assert!(refused(Mixture::new(&[-1.0, 2.0], parts())).contains("`weights[0]`"));
    assert_eq!(
        refused(Mixture::new(&[0.0, 0.0], parts())),
        "Mixture::new: argument `weights` must be weights with a positive, finite sum, got 0"
    );
    assert!(refused(Mixture::new(&[1.0, 1.0, 1.0], parts())).contains("`weights`"));
    assert!(refused(Mixture::<f64>::new(&[], vec![])).contains("`components`"));
    let two_d = boxed(Normal::from_slices(&[0.0, 0.0], &[1.0, 1.0]).unwrap());
    assert_eq!(
        refused(Mixture::new(
            &[1.0, 1.0],
            vec![boxed(Normal::scalar(0.0, 1.0).unwrap()), two_d]
        )),
        "Mixture::new: `components[1]` has dimension 2, expected dimension 1"
    );
    // Saved parameters go through the same checks.
    let json = serde_json::to_string(&Beta::<f64>::scalar(2.5, 3.5).unwrap()).unwrap();
    let back: Beta<f64> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, Beta::scalar(2.5, 3.5).unwrap());
    assert!(serde_json::from_str::<Beta<f64>>(&json.replace("2.5", "-2.5")).is_err());
    let json = serde_json::to_string(&StudentT::<f64>::scalar(4.5, 0.0, 1.0).unwrap()).unwrap();
    assert!(serde_json::from_str::<StudentT<f64>>(&json).is_ok());
    assert!(serde_json::from_str::<StudentT<f64>>(&json.replace("4.5", "0.0")).is_err());
    let json = serde_json::to_string(&LogNormal::<f64>::scalar(0.5, 1.5).unwrap()).unwrap();
    assert!(serde_json::from_str::<LogNormal<f64>>(&json.replace("1.5", "-1.5")).is_err());
}

#[test]
fn the_families_are_send_sync_and_work_in_f32() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LogNormal<f32>>();
    send_sync::<StudentT<f64>>();
    send_sync::<Beta<f64>>();
    send_sync::<Mixture<f64>>();
    let t = StudentT::<f32>::scalar(3.0, 0.5, 2.0).unwrap();
    assert!((t.log_prob_one(&[1.7]) + 1.920_693_4).abs() < 1e-5);
    assert!((t.cdf(&DMatrix::from_element(1, 1, 1.7f32))[(0, 0)] - 0.704_599_4).abs() < 1e-6);
    let b = Beta::<f32>::scalar(2.0, 5.0).unwrap();
    assert!((b.log_prob_one(&[0.3]) - 0.770_524_8).abs() < 1e-5);
    let mut rng = StdRng::seed_from_u64(0);
    let parts: Vec<Box<dyn Distribution<f32>>> =
        vec![Box::new(t), Box::new(LogNormal::scalar(0.0, 1.0).unwrap())];
    let m = Mixture::new(&[1.0, 1.0], parts).unwrap();
    let (x, lp) = m.sample_and_log_prob(100, &mut rng);
    assert_eq!(x.shape(), (1, 100));
    assert!(lp.iter().all(|v| v.is_finite()));
}
