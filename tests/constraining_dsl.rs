//! The constraining bijectors by their DSL names: `soft_clip`, `power`,
//! `reciprocal` and `ordered` build the library types with the keys given,
//! constrain what a flow samples, save and load, and refuse bad keys with a
//! message that names the key.

use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::train::FlowModel;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn build(text: &str, dim: usize) -> Result<Flow<f64>, Error> {
    let spec = FlowSpec::parse(text).map_err(|e| Error::Unsupported {
        context: "parse".into(),
        reason: e.to_string(),
    })?;
    spec.build::<f64>(dim, &mut StdRng::seed_from_u64(0))
}

fn points() -> DMatrix<f64> {
    DMatrix::from_row_slice(2, 4, &[0.3, 1.7, 0.05, 4.0, 2.5, 0.9, 3.1, 0.2])
}

/// Each name builds the library type with the keys (and defaults) the DSL
/// table documents: the same values and log-dets at the same points.
#[test]
fn each_name_is_the_library_type() {
    let x = points();
    let same = |text: &str, b: &dyn Bijector<f64>| {
        let flow = build(text, 2).unwrap();
        assert_eq!(flow.num_params(), 0, "{text}");
        let (fy, fl) = flow.forward_and_log_det(&x);
        let (by, bl) = b.forward_and_log_det(&x);
        assert_eq!(fy, by, "{text}");
        assert_eq!(fl, bl, "{text}");
        let (fx, fli) = flow.inverse_and_log_det(&fy);
        let (bx, bli) = b.inverse_and_log_det(&by);
        assert_eq!(fx, bx, "{text}");
        assert_eq!(fli, bli, "{text}");
    };
    same("soft_clip", &SoftClip::new(-1.0, 1.0, 0.1).unwrap());
    same(
        "soft_clip(low = 0, high = 10, hinge = 0.5)",
        &SoftClip::new(0.0, 10.0, 0.5).unwrap(),
    );
    same(
        "soft_clip(low = -3.5)",
        &SoftClip::new(-3.5, 1.0, 0.1).unwrap(),
    );
    same("power", &Power::new(2.0).unwrap());
    same("power(p = -0.5)", &Power::new(-0.5).unwrap());
    same("reciprocal", &Reciprocal);
    same("ordered", &Ordered);
}

/// A trained-shape flow ending in a constraint samples inside its image,
/// has finite log-densities there, and saves and loads exactly.
#[test]
fn a_model_ending_in_a_constraint_samples_inside_it_and_round_trips() {
    type Inside = fn(&[f64]) -> bool;
    let cases: [(&str, Inside); 3] = [
        ("realnvp(2) >> soft_clip(low = 0, high = 10)", |c| {
            c.iter().all(|v| 0.0 < *v && *v < 10.0)
        }),
        ("maf(2) >> ordered", |c| c.windows(2).all(|w| w[0] < w[1])),
        ("maf(2) >> exp >> power(p = 3)", |c| {
            c.iter().all(|v| *v > 0.0)
        }),
    ];
    for (text, inside) in cases {
        let spec = FlowSpec::parse(text).unwrap();
        let model = FlowModel::<f64>::new(&spec, 3, 11).unwrap();
        let x = model.sample(200, &mut StdRng::seed_from_u64(1));
        for c in x.column_iter() {
            assert!(inside(c.as_slice()), "{text}: {c:?}");
        }
        let lp = model.log_prob(&x);
        assert!(lp.iter().all(|v| v.is_finite()), "{text}");
        let loaded = FlowModel::<f64>::from_json(&model.to_json()).unwrap();
        assert_eq!(loaded.log_prob(&x), lp, "{text}");
    }
}

/// Points outside a constraint's image have density zero: `−∞`, never NaN.
#[test]
fn outside_the_image_the_log_density_is_minus_infinity() {
    let cases = [
        ("realnvp(1) >> soft_clip(low = 0, high = 1)", [0.5, 1.5]),
        ("realnvp(1) >> ordered", [1.0, 0.5]),
        ("realnvp(1) >> exp >> power(p = 2)", [1.0, -2.0]),
    ];
    for (text, point) in cases {
        let model = FlowModel::<f64>::new(&FlowSpec::parse(text).unwrap(), 2, 3).unwrap();
        let lp = model.log_prob(&DMatrix::from_column_slice(2, 1, &point));
        assert_eq!(lp[0], f64::NEG_INFINITY, "{text}");
    }
}

/// Bad values are refused with the key and what was expected.
#[test]
fn bad_keys_are_refused_with_the_key_named() {
    let e = build("soft_clip(low = 2, high = 1)", 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("high") && e.contains("above low"), "{e}");
    let e = build("power(p = 0)", 2).unwrap_err().to_string();
    assert!(e.contains("p") && e.contains("0"), "{e}");
    let e = build("soft_clip(hinge = -1)", 2).unwrap_err().to_string();
    assert!(e.contains("hinge"), "{e}");
    let e = build("power(p = 1e999)", 2).unwrap_err().to_string();
    assert!(e.contains("p"), "{e}");
    let e = build("power(p = true)", 2).unwrap_err().to_string();
    assert!(
        e.contains("wrong type") || e.contains("finite number"),
        "{e}"
    );
    // In f32 an exponent that rounds to 0 is refused, not divided by.
    let spec = FlowSpec::parse("power(p = 1e-60)").unwrap();
    assert!(spec.build::<f32>(2, &mut StdRng::seed_from_u64(0)).is_err());
}

/// The parameter count of the footprint agrees (no parameters).
#[test]
fn footprint_counts_no_parameters() {
    for text in ["soft_clip", "power(p = 0.5)", "reciprocal", "ordered"] {
        let fp = FlowSpec::parse(text).unwrap().footprint(4, 0).unwrap();
        assert_eq!(fp.params(), Some(0), "{text}");
    }
}
