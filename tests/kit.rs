//! The verification kit must be able to fail: deliberately wrong bijectors and
//! densities are rejected, with the property that is violated.

use nalgebra::{DMatrix, DVector};
use normflow::prelude::*;
use normflow::testing::{
    CheckFailure, Property, Tolerances, check_bijector, check_bijector_with,
    check_density_normalizes, check_equivalent, log_abs_det, numerical_jacobian, strategies,
};
use proptest::prelude::*;

/// `y = sinh(x)` elementwise, correct: log|dy/dx| = Σ log cosh(x).
#[derive(Debug, Clone)]
struct Sinh {
    /// Adds this constant to the log-det (0 for the correct bijector).
    ldj_offset: f64,
    /// Multiplies the log-det by this sign (1 for the correct bijector).
    ldj_sign: f64,
}

const CORRECT: Sinh = Sinh {
    ldj_offset: 0.0,
    ldj_sign: 1.0,
};

fn ln_cosh(x: f64) -> f64 {
    // log cosh x = |x| + log1p(e^{−2|x|}) − log 2, stable for large |x|.
    x.abs() + (-2.0 * x.abs()).exp().ln_1p() - std::f64::consts::LN_2
}

impl Bijector<f64> for Sinh {
    fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x.map(f64::sinh)
    }
    fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
        y.map(f64::asinh)
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_iterator(
            x.ncols(),
            x.column_iter().map(|c| {
                self.ldj_sign * c.iter().map(|v| ln_cosh(*v)).sum::<f64>() + self.ldj_offset
            }),
        )
    }
}

/// Correct forward and log-det, inverse off by a small amount.
#[derive(Debug)]
struct BadInverse;
impl Bijector<f64> for BadInverse {
    fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x * 2.0
    }
    fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
        y * 0.5000001
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(x.ncols(), x.nrows() as f64 * 2.0_f64.ln())
    }
}

/// Correct except that the overridden inverse log-det has the wrong sign.
#[derive(Debug)]
struct BadInverseLogDet;
impl Bijector<f64> for BadInverseLogDet {
    fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x * 3.0
    }
    fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
        y / 3.0
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(x.ncols(), x.nrows() as f64 * 3.0_f64.ln())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(y.ncols(), y.nrows() as f64 * 3.0_f64.ln())
    }
}

/// Separate calls are right; the fused forward call returns a stale log-det.
#[derive(Debug)]
struct BadFused;
impl Bijector<f64> for BadFused {
    fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x.map(f64::exp)
    }
    fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
        y.map(f64::ln)
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_iterator(x.ncols(), x.column_iter().map(|c| c.sum()))
    }
    fn forward_and_log_det(&self, x: &DMatrix<f64>) -> (DMatrix<f64>, DVector<f64>) {
        (self.forward(x), DVector::zeros(x.ncols()))
    }
}

/// Overflows to infinity for large inputs.
#[derive(Debug)]
struct Overflowing;
impl Bijector<f64> for Overflowing {
    fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x.map(|v| (v * 1000.0).exp())
    }
    fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
        y.map(|v| v.ln() / 1000.0)
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_iterator(
            x.ncols(),
            x.column_iter()
                .map(|c| c.iter().map(|v| 1000f64.ln() + 1000.0 * v).sum()),
        )
    }
}

fn sample_input() -> DMatrix<f64> {
    DMatrix::from_row_slice(2, 4, &[-1.5, -0.2, 0.4, 2.0, 0.7, 1.1, -2.5, 0.05])
}

#[test]
fn correct_user_bijector_passes() {
    let r = check_bijector(&CORRECT, &sample_input()).unwrap();
    assert_eq!(r.samples, 4);
    assert!(r.max_abs_log_det > 1.0);
    assert!(r.max_log_det_error < 1e-8, "{r}");
    assert!(r.max_round_trip_error < 1e-14, "{r}");
}

#[test]
fn wrong_sign_log_det_is_caught() {
    let wrong = Sinh {
        ldj_offset: 0.0,
        ldj_sign: -1.0,
    };
    let f = check_bijector(&wrong, &sample_input()).unwrap_err();
    assert_eq!(f.property, Property::LogDetVsNumerical);
    assert!(f.sample.is_some());
    // The failure reports the reference (numerical) and the wrong value: they
    // differ in sign.
    assert!(f.expected > 0.0 && f.got < 0.0, "{f}");
}

#[test]
fn log_det_off_by_a_constant_is_caught() {
    for offset in [1e-3, -0.5, std::f64::consts::LN_2] {
        let wrong = Sinh {
            ldj_offset: offset,
            ldj_sign: 1.0,
        };
        let f = check_bijector(&wrong, &sample_input()).unwrap_err();
        assert_eq!(
            f.property,
            Property::LogDetVsNumerical,
            "offset {offset}: {f}"
        );
        assert!((f.got - f.expected - offset).abs() < 1e-6, "{f}");
    }
}

#[test]
fn wrong_inverse_is_caught() {
    let f = check_bijector(&BadInverse, &sample_input()).unwrap_err();
    assert_eq!(f.property, Property::RoundTrip);
    assert!(f.coordinate.is_some());
}

#[test]
fn inconsistent_inverse_log_det_is_caught() {
    let f = check_bijector(&BadInverseLogDet, &sample_input()).unwrap_err();
    assert_eq!(f.property, Property::InverseLogDet);
}

#[test]
fn stale_fused_call_is_caught() {
    let f = check_bijector(&BadFused, &sample_input()).unwrap_err();
    assert_eq!(f.property, Property::FusedForward);
}

#[test]
fn non_finite_output_is_caught() {
    let f = check_bijector(&Overflowing, &sample_input()).unwrap_err();
    assert_eq!(f.property, Property::Finite);
    assert!(f.detail.contains("forward(x)"), "{f}");
}

#[test]
fn wrong_dimension_input_is_reported() {
    let p = Permute::reverse(3).unwrap();
    let f = check_bijector(&p, &DMatrix::<f64>::zeros(2, 3)).unwrap_err();
    assert_eq!(f.property, Property::Input);
}

#[test]
fn failure_message_names_property_sample_and_values() {
    let wrong = Sinh {
        ldj_offset: 0.25,
        ldj_sign: 1.0,
    };
    let f: CheckFailure = check_bijector(&wrong, &sample_input()).unwrap_err();
    let msg = f.to_string();
    assert!(
        msg.contains("forward log-det vs numerical Jacobian"),
        "{msg}"
    );
    assert!(msg.contains("at sample 0"), "{msg}");
    assert!(msg.contains("tolerance"), "{msg}");
}

/// A bijector with a large log-det (scale e^100 in 3-D: log-det 300) passes
/// the default relative tolerances; an absolute tolerance would reject it.
#[test]
fn relative_tolerances_accept_large_log_dets() {
    let s = Scale::new(DVector::from_element(3, 100f64.exp())).unwrap();
    let x = DMatrix::from_fn(3, 4, |i, j| (i + j) as f64 - 2.0);
    let r = check_bijector(&s, &x).unwrap();
    assert!((r.max_abs_log_det - 300.0).abs() < 1e-9);
    // And the tolerances are honoured: a 10× tighter log-det bound than the
    // error seen on the sinh check fails, a looser one passes.
    let seen = check_bijector(&CORRECT, &sample_input())
        .unwrap()
        .max_log_det_error;
    let tight = Tolerances {
        log_det: seen / 10.0,
        ..Tolerances::F64
    };
    if seen > 0.0 {
        assert_eq!(
            check_bijector_with(&CORRECT, &sample_input(), &tight)
                .unwrap_err()
                .property,
            Property::LogDetVsNumerical
        );
    }
}

#[test]
fn numerical_jacobian_matches_analytic() {
    // f(x, y) = (x y, sin x + y²): J = [[y, x], [cos x, 2y]].
    let f = |v: &DVector<f64>| DVector::from_vec(vec![v[0] * v[1], v[0].sin() + v[1] * v[1]]);
    let p = DVector::from_vec(vec![0.7, -1.3]);
    let j = numerical_jacobian(f, &p);
    let exact = DMatrix::from_row_slice(2, 2, &[-1.3, 0.7, 0.7_f64.cos(), -2.6]);
    assert!((j - &exact).amax() < 1e-9);
    // log|det| by LU against the 2×2 formula ad − bc.
    let det: f64 = exact[(0, 0)] * exact[(1, 1)] - exact[(0, 1)] * exact[(1, 0)];
    assert!((log_abs_det(&exact) - det.abs().ln()).abs() < 1e-13);
    assert_eq!(log_abs_det(&DMatrix::<f64>::zeros(2, 2)), f64::NEG_INFINITY);
}

#[test]
fn equivalence_check_detects_a_different_map() {
    let x = sample_input();
    let a = Scale::new(DVector::from_vec(vec![2.0, 3.0])).unwrap();
    let b = Scale::new(DVector::from_vec(vec![2.0, 3.0000001])).unwrap();
    let f = check_equivalent(&a, &b, &x, 1e-10).unwrap_err();
    assert_eq!(f.property, Property::Equivalence);
    check_equivalent(&a, &a.clone(), &x, 0.0).unwrap();
}

/// The identity map, claiming a log-det of −∞ (a map that collapses space).
#[derive(Debug)]
struct Collapsing;
impl Bijector<f64> for Collapsing {
    fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x.clone()
    }
    fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
        y.clone()
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(x.ncols(), f64::NEG_INFINITY)
    }
}

/// A finite log-det is not equivalent to an infinite one, whichever side of
/// the comparison holds the infinity (the relative error against an
/// infinite reference is ∞/∞, NaN, which must count as a failure).
#[test]
fn equivalence_check_detects_a_finite_against_an_infinite_log_det() {
    let x = sample_input();
    let identity = normflow::bijector::Identity;
    for (a, b) in [
        (
            &identity as &dyn Bijector<f64>,
            &Collapsing as &dyn Bijector<f64>,
        ),
        (&Collapsing, &identity),
    ] {
        let f = check_equivalent(a, b, &x, 1e-6).unwrap_err();
        assert_eq!(f.property, Property::Equivalence, "{f}");
    }
    check_equivalent(&Collapsing, &Collapsing, &x, 0.0).unwrap();
}

/// A density that is off by a constant factor does not normalise.
#[derive(Debug)]
struct Unnormalised;
impl Distribution<f64> for Unnormalised {
    fn dim(&self) -> usize {
        1
    }
    fn log_prob(&self, x: &DMatrix<f64>) -> DVector<f64> {
        // N(0, 1) density times 1.01.
        DVector::from_iterator(
            x.ncols(),
            x.iter()
                .map(|v| -0.5 * v * v - 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.01_f64.ln()),
        )
    }
    fn sample(&self, _n: usize, _rng: &mut dyn rand::Rng) -> DMatrix<f64> {
        unimplemented!("not needed for the quadrature")
    }
}

#[test]
fn density_check_detects_a_missing_normaliser() {
    let f = check_density_normalizes(&Unnormalised, &[-12.0], &[12.0], 801, 1e-4).unwrap_err();
    assert_eq!(f.property, Property::Normalization);
    // Simpson's rule on a smooth Gaussian is accurate far below the 1% error.
    assert!((f.got - 1.01).abs() < 1e-8, "{f}");
    // 2-D quadrature of a correct density.
    let d = StandardNormal::new(2).unwrap();
    let z = check_density_normalizes::<f64, _>(&d, &[-9.0, -9.0], &[9.0, 9.0], 201, 1e-6).unwrap();
    assert!((z - 1.0).abs() < 1e-6);
    // More than two dimensions is refused, not silently wrong.
    let d3 = StandardNormal::new(3).unwrap();
    let f = check_density_normalizes::<f64, _>(&d3, &[-1.0; 3], &[1.0; 3], 11, 1e-3).unwrap_err();
    assert_eq!(f.property, Property::Input);
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    /// A constant offset anywhere in [1e-4, 10] is always detected, whatever the input.
    #[test]
    fn any_constant_offset_is_caught(
        offset in strategies::log_uniform_signed(1e-4, 10.0),
        x in strategies::batch(3, 5, 4.0),
    ) {
        let wrong = Sinh { ldj_offset: offset, ldj_sign: 1.0 };
        let f = check_bijector(&wrong, &x).unwrap_err();
        prop_assert_eq!(f.property, Property::LogDetVsNumerical);
    }

    /// The correct sinh passes on inputs with large magnitudes too.
    #[test]
    fn correct_sinh_passes_on_wide_inputs(x in strategies::batch_with_extremes(3, 5, 300.0)) {
        check_bijector(&CORRECT, &x).map_err(|f| TestCaseError::fail(f.to_string()))?;
    }
}

/// A type that implements `Differentiable` but leaves `trainable!` out of
/// its `impl Bijector` would not be trained inside a chain; the gradient
/// check's report warns and names the macro, and a chain holding it says
/// what to implement.
#[test]
fn check_gradients_catches_a_forgotten_trainable_marker() {
    use nalgebra::DVector;
    use normflow::bijector::{Bijector, Differentiable};
    use normflow::{Error, Parameters};

    #[derive(Debug, Clone)]
    struct Forgetful;
    impl Bijector<f64> for Forgetful {
        fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
            x * 2.0
        }
        fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> {
            y / 2.0
        }
        fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
            DVector::from_element(x.ncols(), x.nrows() as f64 * 2f64.ln())
        }
    }
    impl Parameters<f64> for Forgetful {}
    impl Differentiable<f64> for Forgetful {
        fn boxed_clone(&self) -> Box<dyn Bijector<f64>> {
            Box::new(self.clone())
        }
        fn forward_and_log_det_backward(
            &self,
            _x: &DMatrix<f64>,
            gy: &DMatrix<f64>,
            _gl: &DVector<f64>,
            _gp: &mut [f64],
        ) -> Result<DMatrix<f64>, Error> {
            Ok(gy * 2.0)
        }
        fn inverse_and_log_det_backward(
            &self,
            _y: &DMatrix<f64>,
            gx: &DMatrix<f64>,
            _gl: &DVector<f64>,
            _gp: &mut [f64],
        ) -> Result<DMatrix<f64>, Error> {
            Ok(gx / 2.0)
        }
    }
    let x = DMatrix::from_element(2, 3, 0.5);
    let report = normflow::testing::check_gradients(&Forgetful, &x).unwrap();
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].contains("normflow::trainable!"),
        "{:?}",
        report.warnings
    );
    let chain = Chain::new(vec![Box::new(Forgetful) as Box<dyn Bijector<f64>>]).unwrap();
    let e = chain
        .forward_and_log_det_backward(&x, &x, &DVector::zeros(3), &mut [])
        .unwrap_err()
        .to_string();
    assert!(e.contains("part 0") && e.contains("trainable!"), "{e}");
}
