//! The TFP-style conveniences (issue 16, item 3) through the public API:
//!
//! 1. scalar and slice constructors (`Normal::scalar(0.3, 0.8)`,
//!    `Normal::from_slices`) equal `new` on vectors, with the same checks;
//! 2. `log_prob_one` of one point equals the batch `log_prob`;
//! 3. `BlockwiseDistribution`, the product of independent blocks: log-density
//!    the sum of the blocks', sampling moments per block, normalisation by
//!    quadrature, `-inf` outside a block's support and never NaN;
//! 4. `Blockwise::of(..).and(..)` equals `Blockwise::new` with boxes;
//! 5. conditional `sample_at` / `log_prob_at` / `log_prob_one_at` at one context.

use nalgebra::{DMatrix, DVector};
use normflow::conditional::ContextAffine;
use normflow::prelude::*;
use normflow::testing::check_density_normalizes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn v(x: &[f64]) -> DVector<f64> {
    DVector::from_column_slice(x)
}

/// A `d × n` batch of uniform draws in `(−r, r)`.
fn points(d: usize, n: usize, r: f64, rng: &mut StdRng) -> DMatrix<f64> {
    DMatrix::from_fn(d, n, |_, _| rng.random_range(-r..r))
}

// ---------------------------------------------------------------------------
// 1. Constructors
// ---------------------------------------------------------------------------

#[test]
fn scalar_and_slice_constructors_equal_new() {
    assert_eq!(
        Normal::scalar(0.3, 0.8).unwrap(),
        Normal::new(v(&[0.3]), v(&[0.8])).unwrap()
    );
    assert_eq!(
        Laplace::scalar(0.3, 0.8).unwrap(),
        Laplace::new(v(&[0.3]), v(&[0.8])).unwrap()
    );
    assert_eq!(
        Logistic::scalar(0.3, 0.8).unwrap(),
        Logistic::new(v(&[0.3]), v(&[0.8])).unwrap()
    );
    assert_eq!(
        Uniform::scalar(0.3, 0.8).unwrap(),
        Uniform::new(v(&[0.3]), v(&[0.8])).unwrap()
    );

    let (a, b) = ([0.0, 1.0, -2.0], [1.0, 2.0, 0.5]);
    assert_eq!(
        Normal::from_slices(&a, &b).unwrap(),
        Normal::new(v(&a), v(&b)).unwrap()
    );
    assert_eq!(
        Laplace::from_slices(&a, &b).unwrap(),
        Laplace::new(v(&a), v(&b)).unwrap()
    );
    assert_eq!(
        Logistic::from_slices(&a, &b).unwrap(),
        Logistic::new(v(&a), v(&b)).unwrap()
    );
    assert_eq!(
        Uniform::from_slices(&a, &b).unwrap(),
        Uniform::new(v(&a), v(&b)).unwrap()
    );
    // f32 too.
    assert_eq!(Normal::<f32>::scalar(0.3, 0.8).unwrap().dim(), 1);
}

#[test]
fn scalar_and_slice_constructors_validate_like_new_and_name_themselves() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(Normal::scalar(0.0, bad).is_err(), "scale {bad}");
        assert!(Laplace::scalar(0.0, bad).is_err(), "scale {bad}");
        assert!(Logistic::scalar(0.0, bad).is_err(), "scale {bad}");
    }
    assert!(Normal::scalar(f64::NAN, 1.0).is_err());
    assert!(Uniform::scalar(1.0, 1.0).is_err());
    assert!(Uniform::scalar(2.0, 1.0).is_err());
    assert!(Uniform::scalar(0.0, f64::INFINITY).is_err());

    assert!(Normal::<f64>::from_slices(&[], &[]).is_err());
    assert!(Laplace::from_slices(&[0.0, 1.0], &[1.0]).is_err());
    assert!(Logistic::from_slices(&[0.0], &[1.0, 1.0]).is_err());
    assert!(Uniform::from_slices(&[0.0, 3.0], &[1.0, 2.0]).is_err());

    let e = Normal::scalar(0.0, -1.0).unwrap_err().to_string();
    assert!(e.contains("Normal::scalar") && e.contains("scale"), "{e}");
    let e = Uniform::from_slices(&[0.0, 3.0], &[1.0, 2.0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Uniform::from_slices") && e.contains("high[1]"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// 2. log_prob of one point
// ---------------------------------------------------------------------------

#[test]
fn log_prob_one_equals_the_batch_method() {
    let mut rng = StdRng::seed_from_u64(1);
    let dists: Vec<Box<dyn Distribution<f64>>> = vec![
        Box::new(Normal::from_slices(&[0.0, 1.0], &[1.0, 2.0]).unwrap()),
        Box::new(Laplace::from_slices(&[0.0, 1.0], &[1.0, 2.0]).unwrap()),
        Box::new(Logistic::from_slices(&[0.0, 1.0], &[1.0, 2.0]).unwrap()),
        Box::new(Uniform::from_slices(&[-1.0, -1.0], &[1.0, 1.0]).unwrap()),
        Box::new(StandardNormal::new(2).unwrap()),
    ];
    let x = points(2, 20, 2.0, &mut rng);
    for d in &dists {
        let lp = d.log_prob(&x);
        for j in 0..x.ncols() {
            let one = d.log_prob_one(x.column(j).as_slice());
            assert!(
                one == lp[j] || (one - lp[j]).abs() < 1e-15,
                "{d:?}: {one} vs {}",
                lp[j]
            );
        }
    }
}

#[test]
#[should_panic(
    expected = "Distribution::log_prob_one: the point has 3 coordinates, expected dimension 2"
)]
fn log_prob_one_panics_on_the_wrong_length() {
    let d: Box<dyn Distribution<f64>> = Box::new(StandardNormal::new(2).unwrap());
    d.log_prob_one(&[0.0, 0.0, 0.0]);
}

// ---------------------------------------------------------------------------
// 3. BlockwiseDistribution
// ---------------------------------------------------------------------------

fn laplace_normal() -> (Laplace<f64>, Normal<f64>, BlockwiseDistribution<f64>) {
    let lap = Laplace::scalar(0.5, 1.5).unwrap();
    let nor = Normal::from_slices(&[1.0, -2.0], &[0.5, 3.0]).unwrap();
    let p = BlockwiseDistribution::of(lap.clone())
        .unwrap()
        .and(nor.clone())
        .unwrap();
    (lap, nor, p)
}

#[test]
fn product_log_prob_is_the_sum_of_the_blocks() {
    let (lap, nor, p) = laplace_normal();
    assert_eq!((p.dim(), p.num_components()), (3, 2));
    assert_eq!(p.component(1).dim(), 2);
    let mut rng = StdRng::seed_from_u64(2);
    let x = points(3, 50, 4.0, &mut rng);
    let want =
        lap.log_prob(&x.rows(0, 1).clone_owned()) + nor.log_prob(&x.rows(1, 2).clone_owned());
    assert!((p.log_prob(&x) - &want).amax() < 1e-13);

    // The boxed constructor gives the same distribution.
    let boxed =
        BlockwiseDistribution::new(vec![Box::new(lap.clone()), Box::new(nor.clone())]).unwrap();
    assert!((boxed.log_prob(&x) - &want).amax() < 1e-13);

    // Gradients are the blocks' gradients stacked.
    let g = p.log_prob_grad(&x).unwrap();
    assert_eq!(
        g.rows(0, 1),
        lap.log_prob_grad(&x.rows(0, 1).clone_owned()).unwrap()
    );
    assert_eq!(
        g.rows(1, 2),
        nor.log_prob_grad(&x.rows(1, 2).clone_owned()).unwrap()
    );

    // sample_and_log_prob agrees with log_prob.
    let (s, lp) = p.sample_and_log_prob(100, &mut rng);
    assert!((p.log_prob(&s) - lp).amax() < 1e-12);
}

#[test]
fn product_samples_have_the_blocks_moments() {
    // Closed forms: Laplace(μ, b) has mean μ, variance 2b² and kurtosis 6;
    // N(μ, σ²) has mean μ, variance σ² and kurtosis 3. The standard error of
    // the sample mean is σ/√n, of the sample variance σ²√((κ − 1)/n).
    let (_, _, p) = laplace_normal();
    let n = 20_000;
    let mut rng = StdRng::seed_from_u64(3);
    let s = p.sample(n, &mut rng);
    assert_eq!(s.shape(), (3, n));
    let expect = [
        (0.5, 2.0 * 1.5 * 1.5, 6.0),
        (1.0, 0.25, 3.0),
        (-2.0, 9.0, 3.0),
    ];
    let nf = n as f64;
    for (i, (mean, var, kurt)) in expect.into_iter().enumerate() {
        let row = s.row(i);
        let m = row.mean();
        let sv = row.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (nf - 1.0);
        let se_m = (var / nf).sqrt();
        let se_v = var * ((kurt - 1.0) / nf).sqrt();
        assert!(
            (m - mean).abs() < 5.0 * se_m,
            "row {i}: mean {m}, want {mean} ± {se_m}"
        );
        assert!(
            (sv - var).abs() < 5.0 * se_v,
            "row {i}: variance {sv}, want {var} ± {se_v}"
        );
    }
}

#[test]
fn product_density_integrates_to_one_in_2d() {
    // ∫∫ Laplace(x; 0.3, 0.7) · N(y; −0.5, 1.2²) dx dy = 1 (each factor is a
    // normalised density). Bounds: ±14 around the Laplace median leaves
    // mass e^(−14/0.7) = e^(−20) ≈ 2e-9 outside; ±12 = 10σ around the normal
    // mean leaves ≈ 1.5e-23. The bounds are centred so the Laplace kink falls
    // on a quadrature node.
    let p = BlockwiseDistribution::of(Laplace::scalar(0.3, 0.7).unwrap())
        .unwrap()
        .and(Normal::scalar(-0.5, 1.2).unwrap())
        .unwrap();
    let total = check_density_normalizes(
        &p,
        &[0.3 - 14.0, -0.5 - 12.0],
        &[0.3 + 14.0, -0.5 + 12.0],
        801,
        1e-3,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!((total - 1.0).abs() < 1e-3, "{total}");
}

#[test]
fn product_is_minus_infinity_outside_a_block_support_and_never_nan() {
    let p = BlockwiseDistribution::of(Uniform::<f64>::scalar(0.0, 1.0).unwrap())
        .unwrap()
        .and(Normal::from_slices(&[0.0, 0.0], &[1.0, 1.0]).unwrap())
        .unwrap();
    assert!(p.log_prob_one(&[0.5, 0.0, 0.0]).is_finite());
    assert_eq!(p.log_prob_one(&[1.5, 0.0, 0.0]), f64::NEG_INFINITY);
    assert_eq!(p.log_prob_one(&[-0.1, 1e300, 0.0]), f64::NEG_INFINITY);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for i in 0..3 {
            let mut x = [0.5, 0.0, 0.0];
            x[i] = bad;
            let lp = p.log_prob_one(&x);
            assert!(!lp.is_nan(), "x = {x:?} gave NaN");
            assert_eq!(lp, f64::NEG_INFINITY, "x = {x:?}");
        }
    }
}

#[test]
fn product_constructors_validate() {
    let e = BlockwiseDistribution::<f64>::new(vec![])
        .unwrap_err()
        .to_string();
    assert!(e.contains("BlockwiseDistribution::new"), "{e}");
}

#[test]
#[should_panic(
    expected = "BlockwiseDistribution::log_prob: input has dimension 2 (rows), expected dimension 3"
)]
fn product_panics_on_the_wrong_number_of_rows() {
    let (_, _, p) = laplace_normal();
    p.log_prob(&DMatrix::zeros(2, 1));
}

// ---------------------------------------------------------------------------
// 4. Blockwise without boxing
// ---------------------------------------------------------------------------

#[test]
fn blockwise_of_and_equals_new_with_boxes() {
    let shift = Shift::new(v(&[1.0, -2.0])).unwrap();
    let scale = Scale::new(v(&[-2.5])).unwrap();
    let built = Blockwise::of(Exp, 1)
        .unwrap()
        .and(shift.clone(), 2)
        .unwrap()
        .and(scale.clone(), 1)
        .unwrap();
    let boxed = Blockwise::new(vec![
        (Box::new(Exp) as Box<dyn Bijector<f64>>, 1),
        (Box::new(shift), 2),
        (Box::new(scale), 1),
    ])
    .unwrap();
    assert_eq!(built.dim(), Some(4));
    let mut rng = StdRng::seed_from_u64(4);
    let x = points(4, 30, 2.0, &mut rng);
    let (y1, l1) = built.forward_and_log_det(&x);
    let (y2, l2) = boxed.forward_and_log_det(&x);
    assert_eq!((&y1, &l1), (&y2, &l2));
    assert_eq!(
        built.inverse_and_log_det(&y1),
        boxed.inverse_and_log_det(&y2)
    );
    // The trainable block's parameters are visible through the combinator.
    assert_eq!(built.num_params(), boxed.num_params());
    assert_eq!(built.params_to_vec(), boxed.params_to_vec());
}

#[test]
fn blockwise_of_and_validate() {
    let e = Blockwise::<f64>::of(Exp, 0).unwrap_err().to_string();
    assert!(e.contains("Blockwise::of"), "{e}");
    let e = Blockwise::<f64>::of(Exp, 1)
        .unwrap()
        .and(Shift::new(v(&[1.0, 2.0])).unwrap(), 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Blockwise::and") && e.contains("blocks[1]"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// 5. Conditional: n samples at one context
// ---------------------------------------------------------------------------

#[test]
fn sample_at_repeats_the_context() {
    let mut rng = StdRng::seed_from_u64(5);
    let cfg = ConditionerConfig {
        hidden: 8,
        identity_init: false,
        ..Default::default()
    };
    let maf = MaskedAutoregressiveFlow::<f64>::conditional(2, 2, &cfg, &mut rng).unwrap();
    let base = StandardNormal::new(2).unwrap();
    let flow = TransformedDistribution::new(base, maf).unwrap();
    assert_eq!(flow.context_dim(), 2);
    let ctx = [0.7, -1.3];
    let c = DMatrix::from_fn(2, 25, |i, _| ctx[i]);

    let a = flow.sample_at(25, &ctx, &mut StdRng::seed_from_u64(6));
    let b = flow.sample_given(&c, &mut StdRng::seed_from_u64(6));
    assert_eq!(a, b);
    assert_eq!(a.shape(), (2, 25));

    let lp = flow.log_prob_given(&a, &c);
    assert_eq!(flow.log_prob_at(&a, &ctx), lp);
    for j in 0..a.ncols() {
        assert!((flow.log_prob_one_at(a.column(j).as_slice(), &ctx) - lp[j]).abs() < 1e-12);
    }
}

/// `N(μ, diag σ²)` at every context `c ∈ R¹`: the base pushed through a
/// [`ContextAffine`] map that starts as the identity (`identity_init`), so
/// the density has context dimension 1 but does not depend on the context.
fn normal_at_every_context(
    mu: &[f64],
    sd: &[f64],
) -> TransformedDistribution<f64, Normal<f64>, ContextAffine<f64>> {
    let mut rng = StdRng::seed_from_u64(9);
    let cfg = ConditionerConfig {
        hidden: 4,
        identity_init: true,
        ..Default::default()
    };
    let identity = ContextAffine::new(mu.len(), 1, &cfg, &mut rng).unwrap();
    let base = Normal::<f64>::from_slices(mu, sd).unwrap();
    let d = TransformedDistribution::new(base, identity).unwrap();
    assert_eq!(d.context_dim(), 1);
    d
}

#[test]
fn sample_at_has_the_moments_of_the_distribution_at_that_context() {
    // N(μ, σ²) at every context: 20 000 samples, means within 5 standard
    // errors σ/√n.
    let d = normal_at_every_context(&[1.0, -3.0], &[2.0, 0.5]);
    let n = 20_000;
    let s = d.sample_at(n, &[4.0], &mut StdRng::seed_from_u64(7));
    for (i, (mu, sd)) in [(1.0, 2.0), (-3.0, 0.5)].into_iter().enumerate() {
        let m = s.row(i).mean();
        assert!(
            (m - mu).abs() < 5.0 * sd / (n as f64).sqrt(),
            "row {i}: {m}"
        );
    }
}

#[test]
#[should_panic(
    expected = "Distribution::sample_at: the context has 2 coordinates, expected context dimension 1"
)]
fn sample_at_panics_on_the_wrong_context_length() {
    let d = normal_at_every_context(&[0.0, 0.0], &[1.0, 1.0]);
    let _: DMatrix<f64> = d.sample_at(3, &[0.0, 0.0], &mut StdRng::seed_from_u64(8));
}

#[test]
#[should_panic(
    expected = "Distribution::sample_at: the context has 1 coordinates, expected context dimension 0"
)]
fn sample_at_of_an_unconditional_density_takes_the_empty_context() {
    let d = StandardNormal::new(2).unwrap();
    // The empty context works; any other panics.
    let x: DMatrix<f64> = d.sample_at(3, &[], &mut StdRng::seed_from_u64(8));
    assert_eq!(x.shape(), (2, 3));
    let _: DMatrix<f64> = d.sample_at(3, &[0.0], &mut StdRng::seed_from_u64(8));
}

#[test]
#[should_panic(
    expected = "Distribution::log_prob_one_at: the point has 1 coordinates, expected dimension 2"
)]
fn conditional_log_prob_one_panics_on_the_wrong_point_length() {
    let d = normal_at_every_context(&[0.0, 0.0], &[1.0, 1.0]);
    let _: f64 = d.log_prob_one_at(&[0.0], &[0.0]);
}
