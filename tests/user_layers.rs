//! Users' own layers and targets: a layer written as its map, inverse and
//! log-derivative over a generic scalar passes the kit, trains inside a
//! `FlowModel`, saves and reloads by name; a target written per point gives
//! exact gradients and fits a `FlowModel` variationally.

use nalgebra::DMatrix;
use normflow::autodiff::Scalar;
use normflow::bijector::{Bijector, Elementwise, ScalarBijector};
use normflow::prelude::*;
use normflow::spec::{FlowLayer, register_layer};
use normflow::testing::{check_bijector, check_gradients};
use normflow::train::{
    FitOptions, FlowModel, LogDensity, PointTarget, VariationalOptions, fit, fit_variational,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// TFP's `SinhArcsinh` (Jones & Pewsey 2009):
/// `y = sinh((asinh x + skew)·τ)` with `τ = exp(log_tail)`; identity at 0.
#[derive(Debug, Clone, Default)]
struct SinhArcsinh;

impl ScalarBijector for SinhArcsinh {
    const NAME: &'static str = "sinh_arcsinh";
    const PARAMS: &'static [&'static str] = &["skew", "log_tail"];
    fn forward<S: Scalar>(&self, x: S, p: &[S]) -> S {
        ((x.asinh() + p[0]) * p[1].exp()).sinh()
    }
    fn inverse(&self, y: f64, p: &[f64]) -> f64 {
        (y.asinh() * (-p[1]).exp() - p[0]).sinh()
    }
    /// `log cosh u + log τ − ½ log(1 + x²)`, with `log cosh u` written as
    /// `|u| + log1p(e^{−2|u|}) − log 2` so it does not overflow.
    fn log_derivative<S: Scalar>(&self, x: S, p: &[S]) -> S {
        let u = ((x.asinh() + p[0]) * p[1].exp()).abs();
        u + (u * -2.0).exp().ln_1p() - std::f64::consts::LN_2 + p[1] - (x * x).ln_1p() * 0.5
    }
}

/// Another type claiming the same name.
#[derive(Debug, Clone, Default)]
struct Impostor;

impl ScalarBijector for Impostor {
    const NAME: &'static str = "sinh_arcsinh";
    const PARAMS: &'static [&'static str] = &[];
    fn forward<S: Scalar>(&self, x: S, _p: &[S]) -> S {
        x
    }
    fn inverse(&self, y: f64, _p: &[f64]) -> f64 {
        y
    }
    fn log_derivative<S: Scalar>(&self, _x: S, _p: &[S]) -> S {
        S::from(0.0)
    }
}

/// A built-in name.
#[derive(Debug, Clone, Default)]
struct NamedMaf;

impl ScalarBijector for NamedMaf {
    const NAME: &'static str = "maf";
    const PARAMS: &'static [&'static str] = &[];
    fn forward<S: Scalar>(&self, x: S, _p: &[S]) -> S {
        x
    }
    fn inverse(&self, y: f64, _p: &[f64]) -> f64 {
        y
    }
    fn log_derivative<S: Scalar>(&self, _x: S, _p: &[S]) -> S {
        S::from(0.0)
    }
}

fn random_matrix(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    normflow::StandardNormal::new(rows)
        .unwrap()
        .sample(cols, &mut rng)
}

fn layer_at_random_params(dim: usize, seed: u64) -> Elementwise<SinhArcsinh, f64> {
    let p = random_matrix(2 * dim, 1, seed) * 0.5;
    Elementwise::with_params(SinhArcsinh, dim, p.as_slice().to_vec()).unwrap()
}

#[test]
fn the_kit_passes_a_user_layer_at_random_parameters() {
    for seed in 0..4 {
        let layer = layer_at_random_params(3, seed);
        let x = random_matrix(3, 16, 100 + seed);
        check_bijector(&layer, &x).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check_gradients(&layer, &x).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn the_log_derivative_matches_the_closed_form_of_tfp() {
    // TFP's SinhArcsinh: log dy/dx = log cosh(u) + log τ − ½ log(1 + x²).
    let layer = Elementwise::<_, f64>::with_params(SinhArcsinh, 1, vec![0.3, -0.2]).unwrap();
    for x in [-3.0, -0.5, 0.0, 0.7, 4.0] {
        let tau = (-0.2_f64).exp();
        let u = (f64::asinh(x) + 0.3) * tau;
        let want = u.cosh().ln() + tau.ln() - 0.5 * (1.0 + x * x).ln();
        let got = layer.forward_log_det_jacobian(&DMatrix::from_element(1, 1, x))[0];
        assert!((got - want).abs() < 1e-13, "x = {x}: {got} vs {want}");
    }
}

#[test]
fn a_fresh_user_layer_is_the_identity_and_parameters_are_checked() {
    let layer = Elementwise::<_, f64>::new(SinhArcsinh, 2);
    let x = random_matrix(2, 5, 1);
    let (y, ld) = layer.forward_and_log_det(&x);
    assert!((y - &x).amax() < 1e-14);
    assert!(ld.amax() < 1e-14);
    let e = Elementwise::<_, f64>::with_params(SinhArcsinh, 2, vec![0.0; 3]).unwrap_err();
    assert!(e.to_string().contains("4 values"), "{e}");
    let e = Elementwise::<_, f64>::with_params(SinhArcsinh, 1, vec![0.0, f64::NAN]).unwrap_err();
    assert!(e.to_string().contains("params[1]"), "{e}");
}

#[test]
fn registration_refuses_built_in_and_taken_names() {
    register_layer::<SinhArcsinh>().unwrap();
    register_layer::<SinhArcsinh>().unwrap(); // the same type again: no change
    let e = register_layer::<Impostor>().unwrap_err().to_string();
    assert!(
        e.contains("sinh_arcsinh") && e.contains("registered already"),
        "{e}"
    );
    let e = register_layer::<NamedMaf>().unwrap_err().to_string();
    assert!(e.contains("`maf` is a built-in"), "{e}");
    assert!(normflow::spec::registered_layers().contains(&"sinh_arcsinh"));
}

/// Skewed, heavy-tailed data a Gaussian fits badly: `sinh(z + 0.8)`.
fn skewed_data(n: usize, seed: u64) -> DMatrix<f64> {
    random_matrix(2, n, seed).map(|z| (z + 0.8).sinh())
}

#[test]
fn a_registered_layer_trains_in_a_model_and_reloads_by_name() {
    register_layer::<SinhArcsinh>().unwrap();
    let spec = FlowSpec::parse("sinh_arcsinh >> realnvp(2, hidden = 8) >> sinh_arcsinh").unwrap();
    let mut model = FlowModel::<f64>::new(&spec, 2, 7).unwrap();
    assert!(matches!(model.flow().layers()[0], FlowLayer::User(_)));
    let data = skewed_data(512, 3);
    let before = model.log_prob(&data).mean();
    let opts = FitOptions {
        epochs: 15,
        batch_size: 64,
        learning_rate: 1e-2,
        ..Default::default()
    };
    fit(&mut model, &data, &opts).unwrap();
    let after = model.log_prob(&data).mean();
    assert!(
        after > before + 0.2,
        "mean log-likelihood {before} → {after}"
    );
    // The user layers' own parameters moved.
    let FlowLayer::User(first) = &model.flow().layers()[0] else {
        unreachable!()
    };
    assert!(first.params_to_vec().iter().any(|p| p.abs() > 1e-3));

    let dir = tempdir();
    let path = dir.join("model.json");
    model.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("sinh_arcsinh"), "the file names the layer");
    let loaded = FlowModel::<f64>::load(&path).unwrap();
    assert_eq!(loaded.log_prob(&data), model.log_prob(&data));
    assert_eq!(loaded, model);

    // A model naming a layer nobody registered: an error naming it.
    let renamed = dir.join("renamed.json");
    std::fs::write(&renamed, text.replace("sinh_arcsinh", "sinh_arcsinh_v2")).unwrap();
    let e = FlowModel::<f64>::load(&renamed).unwrap_err().to_string();
    assert!(e.contains("unknown layer `sinh_arcsinh_v2`"), "{e}");
    assert!(e.contains("register_layer"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_registered_layer_builds_in_single_precision() {
    register_layer::<SinhArcsinh>().unwrap();
    let spec = FlowSpec::parse("sinh_arcsinh(2) >> maf(1, hidden = 4)").unwrap();
    let model = FlowModel::<f32>::new(&spec, 3, 0).unwrap();
    let x = random_matrix(3, 8, 5).map(|v| v as f32);
    let lp = model.log_prob(&x);
    // A fresh flow is the identity: the standard normal's density.
    let want = normflow::StandardNormal::new(3).unwrap().log_prob(&x);
    assert!((lp - want).amax() < 1e-5);
}

#[test]
fn a_user_layer_in_flow_macro_trains_through_the_chain() {
    let layer = Elementwise::<_, f64>::new(SinhArcsinh, 2);
    let chain = flow!(realnvp(1, hidden = 4) >> { layer })
        .build(2, &mut StdRng::seed_from_u64(0))
        .unwrap();
    let mut q =
        TransformedDistribution::new(normflow::StandardNormal::new(2).unwrap(), chain).unwrap();
    let data = skewed_data(256, 4);
    let before = q.log_prob(&data).mean();
    let opts = FitOptions {
        epochs: 10,
        batch_size: 64,
        learning_rate: 1e-2,
        ..Default::default()
    };
    fit(&mut q, &data, &opts).unwrap();
    assert!(q.log_prob(&data).mean() > before);
}

/// `N(μ, diag σ²)` written per point, with its normaliser, so that the
/// best ELBO is 0 (the KL divergence vanishes).
struct Gaussian {
    mu: [f64; 2],
    sigma: [f64; 2],
}

impl PointTarget for Gaussian {
    fn dim(&self) -> usize {
        2
    }
    fn log_density<S: Scalar>(&self, x: &[S]) -> S {
        let mut s = S::from(0.0);
        for ((xi, mu), sigma) in x.iter().zip(self.mu).zip(self.sigma) {
            let z = (*xi - mu) / sigma;
            s -= z * z * 0.5 + (sigma * (2.0 * std::f64::consts::PI).sqrt()).ln();
        }
        s
    }
}

#[test]
fn a_point_target_gradient_matches_central_differences() {
    let t = Gaussian {
        mu: [1.0, -2.0],
        sigma: [0.5, 3.0],
    };
    let x = random_matrix(2, 6, 9);
    let (lp, g) = LogDensity::<f64>::log_density_and_grad(&t, &x);
    assert_eq!(lp, LogDensity::<f64>::log_density(&t, &x));
    let h = 1e-6;
    for j in 0..x.ncols() {
        for i in 0..2 {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[(i, j)] += h;
            b[(i, j)] -= h;
            let fd = (LogDensity::<f64>::log_density(&t, &a)[j]
                - LogDensity::<f64>::log_density(&t, &b)[j])
                / (2.0 * h);
            // Exact: ∂/∂xᵢ = −(xᵢ − μᵢ)/σᵢ².
            let exact = -(x[(i, j)] - t.mu[i]) / (t.sigma[i] * t.sigma[i]);
            assert!((g[(i, j)] - exact).abs() < 1e-12);
            assert!((g[(i, j)] - fd).abs() < 1e-6, "{} vs {fd}", g[(i, j)]);
        }
    }
}

#[test]
fn a_model_with_a_user_layer_fits_a_point_target_variationally_and_saves() {
    register_layer::<SinhArcsinh>().unwrap();
    let target = Gaussian {
        mu: [1.0, -2.0],
        sigma: [0.5, 3.0],
    };
    let spec = FlowSpec::parse("sinh_arcsinh >> actnorm").unwrap();
    let mut q = FlowModel::<f64>::new(&spec, 2, 1).unwrap();
    let opts = VariationalOptions {
        steps: 600,
        batch_size: 64,
        learning_rate: 2e-2,
        ..Default::default()
    };
    let report = fit_variational(&mut q, &target, &opts, &mut |_, _| true).unwrap();
    let h = &report.elbo_history;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&h[..20]), mean(&h[h.len() - 50..]));
    // The ELBO is −KL(q‖p) ≤ 0 for a normalised target; it starts far below.
    assert!(
        first < -1.0 && last > -0.05 && last < 0.05,
        "ELBO {first} → {last}"
    );
    let dir = tempdir();
    q.save(dir.join("vi.json")).unwrap();
    let back = FlowModel::<f64>::load(dir.join("vi.json")).unwrap();
    assert_eq!(back, q);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn variational_fitting_refuses_a_conditional_model() {
    let spec = FlowSpec::parse("realnvp(1, hidden = 4)").unwrap();
    let mut q = FlowModel::<f64>::conditional(&spec, 2, 1, 0).unwrap();
    let t = Gaussian {
        mu: [0.0, 0.0],
        sigma: [1.0, 1.0],
    };
    let e = fit_variational(&mut q, &t, &VariationalOptions::default(), &mut |_, _| true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conditional"), "{e}");
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "normflow-user-layers-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
