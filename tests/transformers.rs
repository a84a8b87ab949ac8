//! A transformer of one's own, written once (both directions, their
//! log-derivatives and backward passes), serves both structures: as a
//! coupling and as an autoregressive layer, with and without a context,
//! it passes the kit's round-trip, log-det and gradient checks.

use nalgebra::DMatrix;
use normflow::bijector::transformer::Transformer;
use normflow::bijector::{Autoregressive, Bijector, Coupling, CouplingMask};
use normflow::nn::{Activation, ConditionerConfig};
use normflow::testing::{check_bijector, check_bijector_given, check_gradients, probe_contexts};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// `u = x·e^a + t` (the original RealNVP scale, exponential rather than
/// softplus): `log du/dx = a`; sample direction `x = (u − t)·e^{−a}`.
#[derive(Debug, Clone, PartialEq)]
struct ExpAffine;

impl Transformer<f64> for ExpAffine {
    const NAME: &'static str = "exp_affine";
    fn params_per_coord(&self) -> usize {
        2
    }
    fn density_one(&self, x: f64, th: &[f64]) -> (f64, f64) {
        (x * th[1].exp() + th[0], th[1])
    }
    fn sample_one(&self, u: f64, th: &[f64]) -> (f64, f64) {
        ((u - th[0]) * (-th[1]).exp(), -th[1])
    }
    fn density_one_backward(&self, x: f64, th: &[f64], g_u: f64, g_ld: f64, g: &mut [f64]) -> f64 {
        let s = th[1].exp();
        g[0] += g_u;
        g[1] += g_u * x * s + g_ld;
        g_u * s
    }
    fn sample_one_backward(&self, u: f64, th: &[f64], g_x: f64, g_ld: f64, g: &mut [f64]) -> f64 {
        let inv = (-th[1]).exp();
        g[0] -= g_x * inv;
        g[1] -= g_x * (u - th[0]) * inv + g_ld;
        g_x * inv
    }
}

fn config() -> ConditionerConfig {
    ConditionerConfig {
        hidden: 8,
        activation: Activation::Tanh,
        identity_init: false,
        ..Default::default()
    }
}

fn points(d: usize, n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    normflow::StandardNormal::new(d)
        .unwrap()
        .sample(n, &mut rng)
        * 0.8
}

use normflow::Distribution;

#[test]
fn a_new_transformer_is_a_coupling_layer() {
    let mut rng = StdRng::seed_from_u64(1);
    let mask = CouplingMask::half(3, false).unwrap();
    let layer = Coupling::with_transformer(mask, 0, ExpAffine, &config(), &mut rng).unwrap();
    let x = points(3, 12, 2);
    check_bijector(&layer, &x).unwrap();
    let report = check_gradients(&layer, &x).unwrap();
    assert_eq!(report.directions, ["forward", "inverse"]);
    assert!(report.warnings.is_empty());
}

#[test]
fn a_new_transformer_is_an_autoregressive_layer() {
    let mut rng = StdRng::seed_from_u64(3);
    let layer = Autoregressive::with_transformer(3, 0, ExpAffine, &config(), &mut rng).unwrap();
    let x = points(3, 12, 4);
    check_bijector(&layer, &x).unwrap();
    let report = check_gradients(&layer, &x).unwrap();
    // The density direction is trained; sampling is sequential.
    assert_eq!(report.directions, ["inverse"]);
}

#[test]
fn a_new_transformer_takes_a_context_in_both_structures() {
    let mut rng = StdRng::seed_from_u64(5);
    let mask = CouplingMask::half(2, true).unwrap();
    let coupling = Coupling::with_transformer(mask, 2, ExpAffine, &config(), &mut rng).unwrap();
    let ar = Autoregressive::with_transformer(2, 2, ExpAffine, &config(), &mut rng).unwrap();
    assert_eq!((coupling.context_dim(), ar.context_dim()), (2, 2));
    let x = points(2, 10, 6);
    let c = probe_contexts(2, 10);
    check_bijector_given(&coupling, &x, &c).unwrap();
    check_bijector_given(&ar, &x, &c).unwrap();
}

#[test]
fn the_wrong_conditioner_for_a_transformer_is_refused() {
    let mut rng = StdRng::seed_from_u64(7);
    // A MADE with 3 outputs per dimension for a transformer of 2.
    let made = normflow::nn::Made::<f64>::new(2, 0, 3, &config(), &mut rng).unwrap();
    let e = Autoregressive::from_made_with(made, ExpAffine).unwrap_err();
    assert!(e.to_string().contains("2 outputs per dimension"), "{e}");
}
