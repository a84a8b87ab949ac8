//! Batch-parallel evaluation (features `threads` and `fast-gemm`, which the
//! workspace build turns on through the command-line crate): a large batch is
//! split into column blocks evaluated on several threads. Samples are
//! independent, so the result must be what evaluating small batches (too
//! small to be split) gives, up to the rounding of a different summation
//! order in the products.

use nalgebra::DMatrix;
use normflow::Parameters;
use normflow::distribution::Distribution;
use normflow::flow;
use normflow::train::{FlowModel, TrainableDensity};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A batch large enough to be split (work = parameters × batch ≥ 2²³).
const N: usize = 2048;
/// Blocks of this many columns are too small to be split.
const SMALL: usize = 64;

fn data(d: usize, n: usize) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    DMatrix::from_fn(d, n, |_, _| {
        rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng)
    })
}

fn model() -> FlowModel<f64> {
    let mut m = FlowModel::<f64>::new(&flow!(maf(3, hidden = 64)), 8, 11).unwrap();
    // Away from the identity initialisation, so every parameter matters.
    let mut p = Vec::new();
    m.copy_params_into(&mut p);
    for (i, v) in p.iter_mut().enumerate() {
        *v += 0.05 * ((i as f64) * 0.7).sin();
    }
    m.load_params(&p);
    m
}

#[test]
fn log_prob_of_a_large_batch_matches_small_batches() {
    let m = model();
    let x = data(8, N);
    let whole = m.log_prob(&x);
    for start in (0..N).step_by(SMALL) {
        let part = m.log_prob(&x.columns(start, SMALL).clone_owned());
        for j in 0..SMALL {
            let (a, b) = (whole[start + j], part[j]);
            assert!(
                a.is_finite() && (a - b).abs() <= 1e-10 * (1.0 + b.abs()),
                "column {}: {a} in the whole batch, {b} alone",
                start + j
            );
        }
    }
}

#[test]
fn mean_log_prob_and_gradient_of_a_large_batch_match_small_batches() {
    let m = model();
    let x = data(8, N);
    let p = m.num_params();
    let mut whole = vec![0.0; p];
    // The gradient is added to what the buffer holds.
    whole[0] = 1.0;
    let mean = m.mean_log_prob_and_grad(&x, &mut whole).unwrap();
    whole[0] -= 1.0;
    let mut parts = vec![0.0; p];
    let mut part_mean = 0.0;
    let blocks = N / SMALL;
    for start in (0..N).step_by(SMALL) {
        let mut g = vec![0.0; p];
        part_mean += m
            .mean_log_prob_and_grad(&x.columns(start, SMALL).clone_owned(), &mut g)
            .unwrap()
            / blocks as f64;
        for (a, b) in parts.iter_mut().zip(&g) {
            *a += b / blocks as f64;
        }
    }
    assert!(
        (mean - part_mean).abs() <= 1e-10 * (1.0 + mean.abs()),
        "mean {mean} against {part_mean}"
    );
    let scale = parts.iter().fold(0.0_f64, |s, v| s.max(v.abs()));
    assert!(scale > 0.0);
    for (i, (a, b)) in whole.iter().zip(&parts).enumerate() {
        assert!(
            (a - b).abs() <= 1e-10 * scale,
            "parameter {i}: {a} in the whole batch, {b} from small ones"
        );
    }
}
