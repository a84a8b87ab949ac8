//! Conditional layers under the verification kit: for random parameters
//! (perturbed away from their initialisation), random inputs and random
//! contexts, every layer passes the bijector contract at its fixed contexts
//! and its backward passes match finite differences in the parameters, the
//! input and the context.

use nalgebra::{DMatrix, DVector};
use normflow::conditional::ContextAffine;
use normflow::prelude::*;
use normflow::testing::{check_bijector_given, check_gradients_given, proptest, strategies};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const D: usize = 3;
const C: usize = 2;
const N: usize = 3;

/// tanh keeps the conditioners smooth (central differences across a ReLU
/// kink measure neither side's derivative).
fn cfg() -> ConditionerConfig {
    ConditionerConfig {
        hidden: 8,
        depth: 2,
        activation: Activation::Tanh,
        identity_init: false,
        residual: false,
    }
}

/// Moves every parameter by up to ±0.3, so checks do not only see the
/// initialisation.
fn perturb<B: Differentiable<f64>>(mut b: B, seed: u64) -> B {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let p: Vec<f64> = b
        .params_to_vec()
        .iter()
        .map(|v| v + rng.random_range(-0.3..0.3))
        .collect();
    b.set_params(&p).unwrap();
    b
}

fn check<B: Differentiable<f64> + Clone + 'static>(
    b: &B,
    x: &DMatrix<f64>,
    c: &DMatrix<f64>,
    directions: &[&str],
) -> Result<(), TestCaseError> {
    let r = check_bijector_given(b, x, c);
    prop_assert!(r.is_ok(), "{b:?}: {}", r.unwrap_err());
    let g = check_gradients_given(b, x, c);
    prop_assert!(g.is_ok(), "{}", g.unwrap_err());
    let g = g.unwrap();
    prop_assert_eq!(&g.directions, &directions);
    Ok(())
}

fn layers(seed: u64) -> (MaskedAutoregressiveFlow<f64>, SplineAutoregressive<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let order = vec![2, 0, 1];
    let maf =
        MaskedAutoregressiveFlow::conditional_with_order(D, C, order.clone(), &cfg(), &mut rng)
            .unwrap();
    let spline =
        SplineAutoregressive::conditional_with_order(D, C, order, 5, 3.0, &cfg(), &mut rng)
            .unwrap();
    (perturb(maf, seed), perturb(spline, seed + 1))
}

proptest! {
    // 24 cases × (one bijector check + one gradient check) per layer kind;
    // each gradient check differentiates ~200 parameters numerically.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conditional_autoregressive_layers(seed in 0u64..10_000,
                                         x in strategies::batch(D, N, 2.5),
                                         c in strategies::batch(C, N, 2.0)) {
        let (maf, spline) = layers(seed);
        check(&maf, &x, &c, &["inverse"])?;
        check(&InverseAutoregressiveFlow::from_maf(maf), &x, &c, &["forward"])?;
        check(&spline, &x, &c, &["inverse"])?;
        check(&Invert::new(spline), &x, &c, &["forward"])?;
    }

    #[test]
    fn conditional_couplings(seed in 0u64..10_000,
                             x in strategies::batch(D, N, 2.5),
                             c in strategies::batch(C, N, 2.0),
                             flip in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mask = CouplingMask::alternating(D, flip).unwrap();
        let affine = AffineCoupling::conditional(mask.clone(), C, &cfg(), &mut rng).unwrap();
        let spline = SplineCoupling::conditional(mask, C, 4, 2.5, &cfg(), &mut rng).unwrap();
        check(&perturb(affine, seed), &x, &c, &["forward", "inverse"])?;
        check(&perturb(spline, seed), &x, &c, &["forward", "inverse"])?;
    }

    #[test]
    fn context_affine_and_pass_through(seed in 0u64..10_000,
                                       x in strategies::batch(D, N, 2.5),
                                       c in strategies::batch(C, N, 2.0)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let affine = perturb(ContextAffine::new(D, C, &cfg(), &mut rng).unwrap(), seed);
        check(&affine, &x, &c, &["forward", "inverse"])?;
        // A layer without a conditioner has context dimension 0: the kit
        // checks it at the empty context, and any context it is given is
        // ignored, with a zero context gradient.
        let lu = LuLinear::<f64>::new(D, false, &mut rng).unwrap();
        prop_assert_eq!(lu.context_dim(), 0);
        check(&lu, &x, &DMatrix::zeros(0, N), &["forward", "inverse"])?;
        prop_assert_eq!(lu.forward_given(&x, &c), lu.forward(&x));
        prop_assert_eq!(lu.inverse_given(&x, &c), lu.inverse(&x));
        let (gx, gl) = (x.map(|v| 0.5 - v), DVector::from_element(N, 0.7));
        for inverse in [false, true] {
            let mut gp = vec![0.0; lu.num_params()];
            let mut gc = DMatrix::zeros(C, N);
            let r = if inverse {
                lu.inverse_and_log_det_backward_given(&x, &c, &gx, &gl, &mut gp, &mut gc)
            } else {
                lu.forward_and_log_det_backward_given(&x, &c, &gx, &gl, &mut gp, &mut gc)
            };
            prop_assert!(r.is_ok(), "{:?}", r.unwrap_err());
            prop_assert!(gc.iter().all(|&v| v == 0.0), "context gradient {gc}");
        }
    }
}

#[test]
fn the_context_changes_the_map_and_keeps_the_autoregressive_property() {
    let (maf, spline) = layers(7);
    let x = DMatrix::from_fn(D, 2, |i, j| 0.3 * i as f64 - 0.5 * j as f64);
    let c = DMatrix::from_fn(C, 2, |i, j| (i + j) as f64 * 0.5);
    let c2 = c.map(|v| v - 1.5);
    for (name, u, u2, moved) in [
        (
            "maf",
            maf.inverse_given(&x, &c),
            maf.inverse_given(&x, &c2),
            {
                let mut m = x.clone();
                m[(1, 0)] += 0.7; // order [2, 0, 1]: coordinate 1 is last
                maf.inverse_given(&m, &c)
            },
        ),
        (
            "spline_ar",
            spline.inverse_given(&x, &c),
            spline.inverse_given(&x, &c2),
            {
                let mut m = x.clone();
                m[(1, 0)] += 0.7;
                spline.inverse_given(&m, &c)
            },
        ),
    ] {
        // Every coordinate, the first in the order included, depends on c.
        for i in 0..D {
            assert!(
                (u[(i, 0)] - u2[(i, 0)]).abs() > 1e-6,
                "{name}: u[{i}] ignores the context"
            );
        }
        // Moving the last coordinate of the order changes only itself.
        assert_eq!(u[(2, 0)], moved[(2, 0)], "{name}");
        assert_eq!(u[(0, 0)], moved[(0, 0)], "{name}");
        assert!((u[(1, 0)] - moved[(1, 0)]).abs() > 1e-6, "{name}");
    }
}

#[test]
fn wrong_shapes_panic_with_a_message() {
    let (maf, _) = layers(1);
    let x = DMatrix::<f64>::zeros(D, 4);
    for (c, needle) in [
        (
            DMatrix::<f64>::zeros(C + 1, 4),
            "context has dimension 3 (rows), expected dimension 2",
        ),
        (DMatrix::<f64>::zeros(C, 3), "4 samples but 3 contexts"),
    ] {
        let panic = std::panic::catch_unwind(|| maf.inverse_given(&x, &c)).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn constructors_reject_a_missing_context() {
    let mut rng = StdRng::seed_from_u64(0);
    let e = MaskedAutoregressiveFlow::<f64>::conditional(2, 0, &cfg(), &mut rng).unwrap_err();
    assert!(e.to_string().contains("context_dim"), "{e}");
    let e = AffineCoupling::<f64>::conditional(
        CouplingMask::half(2, false).unwrap(),
        0,
        &cfg(),
        &mut rng,
    )
    .unwrap_err();
    assert!(e.to_string().contains("context_dim"), "{e}");
}

/// A flow of every kind of layer: conditioned ones and ones that pass the
/// context through.
const MIXED: &str = "maf(2, hidden = 8, activation = tanh, identity_init = false) >> \
     actnorm(identity_init = false) >> realnvp(hidden = 8, activation = tanh, identity_init = false) >> \
     lu(identity_init = false) >> spline_coupling(hidden = 8, bins = 4, activation = tanh, identity_init = false) >> \
     permute >> spline_ar(hidden = 8, bins = 4, activation = tanh, identity_init = false)";

proptest! {
    // Whole flows: 12 cases, each checking ~1 000 parameters numerically.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn built_conditional_flows(seed in 0u64..10_000,
                               x in strategies::batch(D, N, 2.0),
                               c in strategies::batch(C, N, 2.0)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let flow = FlowSpec::parse(MIXED).unwrap().build_conditional::<f64>(D, C, &mut rng).unwrap();
        let flow = perturb(flow, seed);
        // The sampling direction of maf and spline_ar has no backward pass.
        check(&flow, &x, &c, &["inverse"])?;
        let iaf = flow!(iaf(2, hidden = 8, activation = tanh, identity_init = false) >> reverse)
            .build_conditional::<f64>(D, C, &mut rng).unwrap();
        check(&perturb(iaf, seed), &x, &c, &["forward"])?;
    }
}

#[test]
fn build_conditional_reports_what_it_cannot_build() {
    let mut rng = StdRng::seed_from_u64(0);
    let spec = flow!(maf >> realnvp);
    let e = spec.build_conditional::<f64>(2, 0, &mut rng).unwrap_err();
    assert!(e.to_string().contains("context_dim"), "{e}");
    // A coupling needs two coordinates; the error names the layer.
    let e = spec.build_conditional::<f64>(1, 2, &mut rng).unwrap_err();
    assert!(matches!(e, Error::Build { position: 1, .. }), "{e}");
    let e = flow!(maf >> lu)
        .build_conditional::<f64>(0, 2, &mut rng)
        .unwrap_err();
    assert!(e.to_string().contains("dim"), "{e}");
}

#[test]
fn which_layers_take_a_context() {
    let mut rng = StdRng::seed_from_u64(0);
    let flow = flow!(maf(2) >> nice >> planar >> spline_coupling >> exp)
        .build_conditional::<f64>(2, 1, &mut rng)
        .unwrap();
    let kinds: Vec<bool> = flow.layers().iter().map(|l| l.context_dim() > 0).collect();
    // maf, reverse, maf, nice, planar, spline_coupling, exp
    assert_eq!(kinds, [true, false, true, false, false, true, false]);
    for name in ["maf", "iaf", "spline_ar", "realnvp", "spline_coupling"] {
        assert!(FlowSpec::layer_takes_context(name));
    }
    for name in [
        "nice",
        "planar",
        "radial",
        "batchnorm",
        "actnorm",
        "lu",
        "permute",
        "reverse",
        "exp",
    ] {
        assert!(!FlowSpec::layer_takes_context(name));
    }
}
