//! Backward passes against finite differences (`check_gradients`), with random
//! parameters, for the core bijectors, the combinators, MAF/IAF and couplings.

use nalgebra::{DMatrix, DVector};
use normflow::prelude::*;
use normflow::testing::{GradientReport, check_gradients, strategies};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const N: usize = 5;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// Smooth activations only: a finite difference across a ReLU kink measures
/// neither side's slope (ReLU is covered at fixed seeds below).
fn smooth() -> impl Strategy<Value = Activation> {
    prop_oneof![Just(Activation::Tanh), Just(Activation::Elu)]
}

fn cfg(activation: Activation) -> ConditionerConfig {
    ConditionerConfig {
        hidden: 8,
        depth: 2,
        activation,
        identity_init: false,
        residual: false,
    }
}

fn grads<B: Differentiable<f64> + Clone>(
    b: &B,
    x: &DMatrix<f64>,
) -> Result<GradientReport, TestCaseError> {
    check_gradients(b, x).map_err(|f| TestCaseError::fail(format!("{b:?}\n{f}")))
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn elementwise_bijectors(x in (1usize..=4).prop_flat_map(|d| strategies::batch(d, N, 3.0))) {
        for r in [grads(&Exp, &x)?, grads(&Sigmoid, &x)?, grads(&Tanh, &x)?, grads(&Softplus, &x)?, grads(&Identity, &x)?] {
            prop_assert_eq!(r.directions.len(), 2);
            prop_assert_eq!(r.params, 0);
        }
    }

    #[test]
    fn affine_bijectors_and_permutations(
        (s, sh, l, p, lr, x) in (1usize..=4).prop_flat_map(|d| (
            strategies::scale(d), strategies::shift(d), strategies::scale_tril(d), strategies::permute(d),
            strategies::leaky_relu(), strategies::batch_of(d, N, strategies::log_uniform_signed(1e-2, 5.0)),
        ))
    ) {
        grads(&s, &x)?;
        grads(&sh, &x)?;
        grads(&l, &x)?;
        grads(&p, &x)?;
        grads(&lr, &x)?;
        grads(&Invert::new(l), &x)?;
    }

    #[test]
    fn maf_inverse_direction(d in 1usize..=4, seed in any::<u64>(), act in smooth(), x in strategies::batch(4, N, 2.0)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let maf = MaskedAutoregressiveFlow::<f64>::new(d, &cfg(act), &mut rng).unwrap();
        let x = x.rows(0, d).clone_owned();
        let r = grads(&maf, &x)?;
        prop_assert_eq!(&r.directions, &["inverse"]);
        prop_assert_eq!(r.skipped.len(), 1);
        prop_assert!(r.skipped[0].contains("sequential"));
        // The IAF is the same layer with the directions swapped.
        let iaf = InverseAutoregressiveFlow::from_maf(maf);
        let r = grads(&iaf, &x)?;
        prop_assert_eq!(&r.directions, &["forward"]);
    }

    #[test]
    fn couplings(d in 2usize..=5, seed in any::<u64>(), act in smooth(), flip in any::<bool>(), x in strategies::batch(5, N, 2.0)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mask = CouplingMask::half(d, flip).unwrap();
        let x = x.rows(0, d).clone_owned();
        let affine = AffineCoupling::<f64>::new(mask.clone(), &cfg(act), &mut rng).unwrap();
        let r = grads(&affine, &x)?;
        prop_assert_eq!(r.directions.len(), 2);
        prop_assert!(r.params > 0);
        let additive = AdditiveCoupling::<f64>::new(mask, &cfg(act), &mut rng).unwrap();
        grads(&additive, &x)?;
    }

    /// Chains mixing trainable layers, permutations, elementwise maps and
    /// `Invert`, with the chain's flat parameter vector spanning several layers.
    #[test]
    fn chains_mixing_layers(d in 2usize..=4, seed in any::<u64>(), act in smooth(), x in strategies::batch(4, N, 1.5)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = x.rows(0, d).clone_owned();
        let chain = Chain::new(vec![
            Box::new(AffineCoupling::<f64>::new(CouplingMask::half(d, false).unwrap(), &cfg(act), &mut rng).unwrap()) as Box<dyn Bijector<f64>>,
            Box::new(Permute::random(d, &mut rng).unwrap()),
            Box::new(Invert::new(MaskedAutoregressiveFlow::<f64>::new(d, &cfg(act), &mut rng).unwrap())),
            Box::new(Sigmoid),
            Box::new(Invert::new(Tanh)),
            Box::new(AdditiveCoupling::<f64>::new(CouplingMask::half(d, true).unwrap(), &cfg(act), &mut rng).unwrap()),
        ]).unwrap();
        let r = grads(&chain, &x.map(|v| v * 0.5))?;
        // Invert(MAF) has only its forward (= MAF inverse) pass: the chain's
        // inverse direction is therefore skipped, its forward checked.
        prop_assert_eq!(&r.directions, &["forward"]);
        let n: usize = chain.num_params();
        prop_assert_eq!(r.params, n);
        prop_assert!(n > 0);
        // Without the inverted MAF both directions work.
        let chain2 = Chain::new(vec![
            Box::new(AffineCoupling::<f64>::new(CouplingMask::alternating(d, false).unwrap(), &cfg(act), &mut rng).unwrap()) as Box<dyn Bijector<f64>>,
            Box::new(Permute::reverse(d).unwrap()),
            Box::new(MaskedAutoregressiveFlow::<f64>::new(d, &cfg(act), &mut rng).unwrap()),
            Box::new(Invert::new(Permute::random(d, &mut rng).unwrap())),
            Box::new(AffineCoupling::<f64>::new(CouplingMask::alternating(d, true).unwrap(), &cfg(act), &mut rng).unwrap()),
        ]).unwrap();
        let r = grads(&chain2, &x)?;
        prop_assert_eq!(&r.directions, &["inverse"]); // the MAF's forward is sequential
    }

    #[test]
    fn blockwise(seed in any::<u64>(), act in smooth(), x in strategies::batch(5, N, 1.5)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let b = Blockwise::new(vec![
            (Box::new(AffineCoupling::<f64>::new(CouplingMask::half(3, false).unwrap(), &cfg(act), &mut rng).unwrap()) as Box<dyn Bijector<f64>>, 3),
            (Box::new(Sigmoid), 1),
            (Box::new(Scale::new(DVector::from_element(1, -2.5)).unwrap()), 1),
        ]).unwrap();
        let r = grads(&b, &x)?;
        prop_assert_eq!(r.directions.len(), 2);
    }
}

/// Sets every parameter of `b` to a random value in `(−r, r)`.
fn randomize<B: Differentiable<f64>>(b: &mut B, r: f64, rng: &mut StdRng) {
    let v: Vec<f64> = (0..b.num_params())
        .map(|_| rng.random_range(-r..r))
        .collect();
    b.set_params(&v).unwrap();
}

proptest! {
    #![proptest_config(config(24))]

    /// Residual conditioners (the blocks' skip connections have their own
    /// backward path), with every parameter random — a fresh block's second
    /// layer starts near zero, which would hide an error in it.
    #[test]
    fn residual_conditioners(d in 2usize..=4, blocks in 1usize..=2, seed in any::<u64>(), act in smooth(), x in strategies::batch(4, N, 1.5)) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = x.rows(0, d).clone_owned();
        let cfg = ConditionerConfig { depth: blocks, residual: true, ..cfg(act) };
        let mut maf = MaskedAutoregressiveFlow::<f64>::new(d, &cfg, &mut rng).unwrap();
        randomize(&mut maf, 0.4, &mut rng);
        let r = grads(&maf, &x)?;
        prop_assert_eq!(r.params, maf.num_params());
        let mut affine = AffineCoupling::<f64>::new(CouplingMask::half(d, false).unwrap(), &cfg, &mut rng).unwrap();
        randomize(&mut affine, 0.4, &mut rng);
        let r = grads(&affine, &x)?;
        prop_assert_eq!(r.directions.len(), 2);
        let mut spline = SplineCoupling::<f64>::new(CouplingMask::half(d, true).unwrap(), 4, 3.0, &cfg, &mut rng).unwrap();
        randomize(&mut spline, 0.4, &mut rng);
        grads(&spline, &x)?;
        let mut ar = SplineAutoregressive::<f64>::new(d, 4, 3.0, &cfg, &mut rng).unwrap();
        randomize(&mut ar, 0.4, &mut rng);
        grads(&ar, &x)?;
    }
}

#[test]
fn relu_conditioners_at_fixed_seeds() {
    for seed in 0..8 {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = DMatrix::from_fn(3, N, |i, j| {
            ((i * 5 + j * 3 + seed as usize) as f64 * 0.71).sin() * 1.7
        });
        let maf =
            MaskedAutoregressiveFlow::<f64>::new(3, &cfg(Activation::Relu), &mut rng).unwrap();
        check_gradients(&maf, &x).unwrap();
        let affine = AffineCoupling::<f64>::new(
            CouplingMask::half(3, false).unwrap(),
            &cfg(Activation::Relu),
            &mut rng,
        )
        .unwrap();
        check_gradients(&affine, &x).unwrap();
    }
}

/// Backward passes add into the gradient buffer: two half-batches sum to the
/// gradient of the whole batch.
#[test]
fn backward_passes_accumulate() {
    let mut rng = StdRng::seed_from_u64(1);
    let maf = MaskedAutoregressiveFlow::<f64>::new(3, &cfg(Activation::Tanh), &mut rng).unwrap();
    let x = DMatrix::from_fn(3, 6, |i, j| (i as f64 - j as f64) * 0.3);
    let gx = DMatrix::from_fn(3, 6, |i, j| ((i + 2 * j) as f64).cos());
    let gl = DVector::from_fn(6, |j, _| j as f64 * 0.1 - 0.2);
    let mut full = vec![0.0; maf.num_params()];
    maf.inverse_and_log_det_backward(&x, &gx, &gl, &mut full)
        .unwrap();
    let mut halves = vec![0.0; maf.num_params()];
    for (start, len) in [(0, 3), (3, 3)] {
        let xs = x.columns(start, len).clone_owned();
        let gs = gx.columns(start, len).clone_owned();
        let ls = gl.rows(start, len).clone_owned();
        maf.inverse_and_log_det_backward(&xs, &gs, &ls, &mut halves)
            .unwrap();
    }
    for (a, b) in full.iter().zip(&halves) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
    }
}

/// Writing a chain's parameters through `set_params` does not touch a clone
/// that shared its layers.
#[test]
fn chain_clones_are_copied_on_write() {
    let mut rng = StdRng::seed_from_u64(2);
    let chain = Chain::new(vec![
        Box::new(
            AffineCoupling::<f64>::new(
                CouplingMask::half(2, false).unwrap(),
                &cfg(Activation::Tanh),
                &mut rng,
            )
            .unwrap(),
        ) as Box<dyn Bijector<f64>>,
        Box::new(Exp),
    ])
    .unwrap();
    let original = chain.params_to_vec();
    let mut trained = chain.clone();
    let zeros = vec![0.0; trained.num_params()];
    trained.set_params(&zeros).unwrap();
    assert_eq!(chain.params_to_vec(), original);
    assert_eq!(trained.params_to_vec(), zeros);
    assert!(matches!(
        trained.set_params(&[1.0]).unwrap_err(),
        Error::DimensionMismatch { .. }
    ));
}

/// A user bijector that does not implement `Differentiable` makes a chain's
/// backward pass fail with a clear error instead of a wrong gradient.
#[test]
fn non_differentiable_parts_are_reported() {
    #[derive(Debug)]
    struct Opaque;
    impl Bijector<f64> for Opaque {
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
    let chain = Chain::new(vec![
        Box::new(Exp) as Box<dyn Bijector<f64>>,
        Box::new(Opaque),
    ])
    .unwrap();
    let x = DMatrix::from_element(1, 2, 0.5);
    let e = chain
        .forward_and_log_det_backward(&x, &x, &DVector::zeros(2), &mut [])
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }));
    assert!(e.to_string().contains("part 1"), "{e}");
}
