//! The sequential evaluation of a MADE (used by MAF sampling) agrees with the
//! full pass: the outputs of coordinate `order[k]` depend only on the
//! coordinates before it, so a step on partially generated data must equal the
//! full pass on the complete data.

use nalgebra::DMatrix;
use normflow::nn::{Activation, ConditionerConfig, Made};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn check(made: &Made<f64>, context: Option<&DMatrix<f64>>, n: usize) {
    let d = made.dim();
    let x = DMatrix::from_fn(d, n, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.2 - 1.0);
    let full = match context {
        Some(c) => made.forward_with_context(&x, c),
        None => made.forward(&x),
    };
    let mut seq = match context {
        Some(c) => made.sequential_with_context(c),
        None => made.sequential(n),
    };
    // Only the coordinates generated so far are filled in.
    let mut partial = DMatrix::zeros(d, n);
    let mut seen = 0;
    while let Some(i) = seq.next_coordinate() {
        let out = seq.step(&partial);
        for p in 0..made.params_per_dim() {
            for s in 0..n {
                let (a, b) = (out[(p, s)], full[(p * d + i, s)]);
                assert!(
                    (a - b).abs() < 1e-12,
                    "coordinate {i}, param {p}: {a} vs {b}"
                );
            }
        }
        partial.row_mut(i).copy_from(&x.row(i));
        seen += 1;
    }
    assert_eq!(seen, d);
}

#[test]
// `..Default::default()` keeps the test building when fields are added.
#[allow(clippy::needless_update)]
fn sequential_matches_full_pass() {
    let mut rng = StdRng::seed_from_u64(5);
    for (dim, order) in [
        (1, vec![0]),
        (2, vec![1, 0]),
        (5, vec![3, 0, 4, 1, 2]),
        (7, (0..7).collect::<Vec<_>>()),
    ] {
        for residual in [false, true] {
            for (hidden, depth, act) in [
                (3, 1, Activation::Relu),
                (16, 2, Activation::Tanh),
                (9, 3, Activation::Elu),
            ] {
                let cfg = ConditionerConfig {
                    hidden,
                    depth,
                    activation: act,
                    residual,
                    identity_init: false,
                    ..Default::default()
                };
                let made =
                    Made::<f64>::with_order(dim, 0, 3, order.clone(), &cfg, &mut rng).unwrap();
                check(&made, None, 4);
                let made_c =
                    Made::<f64>::with_order(dim, 2, 2, order.clone(), &cfg, &mut rng).unwrap();
                let c = DMatrix::from_fn(2, 4, |i, j| (i as f64 - j as f64) * 0.3);
                check(&made_c, Some(&c), 4);
            }
        }
    }
}
