//! Models of `circular_spline` flows on the torus: the uniform torus base
//! chosen by itself (and its density integrating to one), mixed specs and
//! misplaced bases refused, points off the torus at −∞ (never NaN) and
//! refused by fitting, saving and loading (old files unchanged), and a short
//! fit on the two-angle data set. The layer itself is tested in
//! `tests/circular_spline.rs`.

use std::f64::consts::PI;

use nalgebra::DMatrix;
use normflow::data::TorusMixture;
use normflow::prelude::*;
use normflow::train::{BaseSpec, FitOptions, FlowModel, Validation, fit};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Points of the torus in `[−3, 3]^D`, seeded.
fn angles(d: usize, n: usize, seed: u64) -> DMatrix<f64> {
    use rand::RngExt;
    let mut r = rng(seed);
    DMatrix::from_fn(d, n, |_, _| r.random_range(-3.0..3.0))
}

fn torus_model(text: &str, seed: u64) -> FlowModel<f64> {
    FlowModel::<f64>::new(&FlowSpec::parse(text).unwrap(), 2, seed).unwrap()
}

/// A flow of circular splines (and permutations) takes the uniform torus
/// base by itself and its density integrates to one on the torus; a flow
/// that mixes them with layers that leave the torus is refused, saying
/// which layer; the torus base and standardisation are refused where they
/// do not belong.
#[test]
fn the_torus_base_is_chosen_and_checked() {
    let m = torus_model(
        "circular_spline(2, hidden = 8, identity_init = false) >> permute >> circular_spline(hidden = 8, identity_init = false)",
        3,
    );
    assert_eq!(m.base_spec(), BaseSpec::UniformTorus);
    // Midpoint rule on a 600 × 600 grid (the density is C¹ and periodic;
    // its second derivative jumps at the knots: an error of order h²).
    let g = 600;
    let h = 2.0 * PI / g as f64;
    let grid = DMatrix::from_fn(2, g * g, |i, j| {
        let k = if i == 0 { j % g } else { j / g };
        -PI + (k as f64 + 0.5) * h
    });
    let mass: f64 = m.log_prob(&grid).iter().map(|v| v.exp()).sum::<f64>() * h * h;
    assert!((mass - 1.0).abs() < 1e-4, "mass {mass}");
    assert_eq!(
        torus_model("realnvp", 0).base_spec(),
        BaseSpec::StandardNormal
    );
    let e = FlowModel::<f64>::new(
        &FlowSpec::parse("circular_spline >> realnvp").unwrap(),
        2,
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("layer 1, `realnvp`") && e.contains("torus"),
        "{e}"
    );
    let spec = FlowSpec::parse("circular_spline").unwrap();
    let e = FlowModel::<f64>::conditional_with_base(&spec, 2, 1, BaseSpec::StandardNormal, 0);
    assert!(e.unwrap_err().to_string().contains("uniform_torus"));
    let c = FlowModel::<f64>::conditional(&spec, 2, 1, 0).unwrap();
    assert_eq!(c.base_spec(), BaseSpec::UniformTorus);
    let e = FlowModel::<f64>::conditional_with_base(
        &FlowSpec::parse("maf").unwrap(),
        2,
        1,
        BaseSpec::UniformTorus,
        0,
    );
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("needs a flow on the torus")
    );
    let mut m = torus_model("circular_spline", 0);
    let e = m
        .standardize_from(&angles(2, 10, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("torus"), "{e}");
}

/// Points with an angle off `[−π, π)` (π itself, beyond, infinite, NaN),
/// in the transformed half or in the identity half, have log-density −∞,
/// never NaN; fitting refuses them, naming the entry.
#[test]
fn points_off_the_torus_are_minus_infinity_and_refused_by_fit() {
    let m = torus_model("circular_spline(3, hidden = 8, identity_init = false)", 4);
    let bad = [PI, -3.5, 7.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    for (i, v) in bad.iter().enumerate() {
        for row in 0..2 {
            let mut x = DMatrix::from_row_slice(2, 1, &[0.3, -1.0 + i as f64 * 0.1]);
            x[(row, 0)] = *v;
            assert_eq!(m.log_prob(&x)[0], f64::NEG_INFINITY, "{v} in row {row}");
        }
    }
    assert!(m.log_prob(&DMatrix::from_row_slice(2, 1, &[-PI, 0.0]))[0].is_finite());
    let mut data = angles(2, 50, 6);
    data[(1, 17)] = 3.5;
    let mut m2 = m.clone();
    let e = fit(
        &mut m2,
        &data,
        &FitOptions {
            epochs: 1,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("training data[(1, 17)]") && e.contains("[-pi, pi)"),
        "{e}"
    );
}

/// A torus model saves and loads with identical log-densities, its file
/// names the base; other models' files have no `base` field, as before.
#[test]
fn torus_models_save_and_load() {
    let m = torus_model(
        "circular_spline(2, hidden = 8, bins = 5, identity_init = false)",
        8,
    );
    let json = m.to_json();
    assert!(json.contains("\"base\": \"uniform_torus\""), "{json}");
    let back = FlowModel::<f64>::from_json(&json).unwrap();
    let x = angles(2, 30, 9);
    assert_eq!(back.log_prob(&x), m.log_prob(&x));
    assert_eq!(back.base_spec(), BaseSpec::UniformTorus);
    let path = std::env::temp_dir().join(format!("normflow-torus-{}.json", std::process::id()));
    m.save(&path).unwrap();
    let loaded = FlowModel::<f64>::load(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.log_prob(&x), m.log_prob(&x));
    // A wrong base or a standardisation in a torus file is refused.
    let wrong = json.replace("\"uniform_torus\"", "\"standard_normal\"");
    let e = FlowModel::<f64>::from_json(&wrong).unwrap_err().to_string();
    assert!(e.contains("base"), "{e}");
    let with_std = json.replace(
        "\"standardization\": null",
        "\"standardization\": {\"mean\": [0.0, 0.0], \"std\": [1.0, 1.0]}",
    );
    assert_ne!(with_std, json);
    assert!(FlowModel::<f64>::from_json(&with_std).is_err());
    // A conditional torus model too.
    let spec = FlowSpec::parse("circular_spline(2, hidden = 8, identity_init = false)").unwrap();
    let c = FlowModel::<f64>::conditional(&spec, 2, 1, 5).unwrap();
    let cj = c.to_json();
    assert!(cj.contains("uniform_torus"));
    let ctx = DMatrix::from_fn(1, 30, |_, j| j as f64 * 0.1);
    let cb = FlowModel::<f64>::from_json(&cj).unwrap();
    assert_eq!(cb.log_prob_given(&x, &ctx), c.log_prob_given(&x, &ctx));
    // The standard-normal models' files are unchanged: no base field.
    assert!(!torus_model("realnvp", 0).to_json().contains("\"base\""));
}

/// A short fit on the two-angle set (well under a second in release): the
/// test log-likelihood comes within 0.1 nats of the true density's (it
/// reaches about 0.03; the untrained flow, uniform on the torus, is 0.85
/// below; the full fit of `examples/torus.rs` reaches 0.01, see
/// docs/training.md).
#[test]
fn a_short_fit_learns_the_two_angle_set() {
    let mix = TorusMixture::two_angles();
    let train = mix.sample(4000, &mut rng(11));
    let test = mix.sample(4000, &mut rng(12));
    let truth = mix.log_density(&test).iter().sum::<f64>() / 4000.0;
    let spec = FlowSpec::parse("circular_spline(4, hidden = 32)").unwrap();
    let mut m = FlowModel::<f32>::new(&spec, 2, 0).unwrap();
    let options = FitOptions {
        epochs: 15,
        batch_size: 128,
        learning_rate: 3e-3,
        validation: Validation::None,
        ..Default::default()
    };
    fit(&mut m, &train.cast::<f32>(), &options).unwrap();
    let ll = m
        .log_prob(&test.cast::<f32>())
        .iter()
        .map(|v| *v as f64)
        .sum::<f64>()
        / 4000.0;
    eprintln!("short fit: test log-likelihood {ll:.4}, truth {truth:.4}");
    assert!(truth - ll < 0.1, "test log-likelihood {ll}, truth {truth}");
}
