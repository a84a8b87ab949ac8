//! Benchmarks (divan): the operations of docs/benchmarks.md on
//! `maf(5, hidden = H)` in f32, every layer in both directions and its
//! training step, and a bare gemm of the same shapes as the flow's dense
//! layers. Names carry the shapes: `D` dimension, `H` hidden width, `B` batch.
//!
//! ```text
//! cargo bench --bench flows                 # everything
//! cargo bench --bench flows -- flow_log_prob # one group
//! ```

use std::fmt;

use divan::{Bencher, black_box};
use nalgebra::DMatrix;
use normflow::prelude::*;
use normflow::train::{Adam, FlowModel, Optimizer, TrainableDensity};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn main() {
    divan::main();
}

/// `D`, hidden width, batch.
#[derive(Clone, Copy, Debug)]
struct Shape(usize, usize, usize);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "D={} H={} B={}", self.0, self.1, self.2)
    }
}

/// The shapes of the table in docs/benchmarks.md.
const TABLE: &[Shape] = &[
    Shape(2, 64, 1),
    Shape(2, 64, 256),
    Shape(8, 64, 256),
    Shape(8, 256, 256),
    Shape(8, 256, 4096),
    Shape(64, 64, 256),
    Shape(64, 256, 256),
];

/// The shapes where training and sampling are in the table.
const TRAIN: &[Shape] = &[
    Shape(2, 64, 256),
    Shape(8, 64, 256),
    Shape(8, 256, 256),
    Shape(64, 64, 256),
    Shape(64, 256, 256),
];

fn data(d: usize, n: usize) -> DMatrix<f32> {
    let mut rng = StdRng::seed_from_u64(7);
    DMatrix::from_fn(d, n, |_, _| {
        rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng) as f32
    })
}

fn maf_model(s: Shape) -> FlowModel<f32> {
    let spec = FlowSpec::parse(&format!("maf(5, hidden = {})", s.1)).expect("valid spec");
    FlowModel::new(&spec, s.0, 0).expect("builds")
}

/// One training step as `fit` takes it: mean log-density and gradient, the
/// copy kept for a non-finite rollback, Adam on the parameters in place; or,
/// with `in_place = false`, Adam on a copy loaded back into the model (how
/// `fit` stepped before updating in place).
fn train_step_bench(bencher: Bencher, mut model: FlowModel<f32>, x: DMatrix<f32>, in_place: bool) {
    let p = model.num_params();
    let mut grad = vec![0.0f32; p];
    let (mut params, mut last_good) = (Vec::with_capacity(p), Vec::with_capacity(p));
    let mut adam = Adam::new(1e-3);
    bencher.bench_local(|| {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mean = model
            .mean_log_prob_and_grad(black_box(&x), &mut grad)
            .expect("differentiable");
        grad.iter_mut().for_each(|g| *g = -*g);
        model.copy_params_into(&mut last_good);
        if in_place {
            adam.step_params(&mut model, &grad, 1e-3);
        } else {
            params.clone_from(&last_good);
            adam.step(&mut params, &grad, 1e-3);
            model.load_params(&params);
        }
        mean
    });
}

/// `log_prob` of `maf(5, hidden = H)`.
#[divan::bench(args = TABLE)]
fn flow_log_prob(bencher: Bencher, s: Shape) {
    let model = maf_model(s);
    let x = data(s.0, s.2);
    bencher.bench_local(|| model.log_prob(black_box(&x)));
}

/// One maximum-likelihood step (log_prob, backward, Adam) of `maf(5, hidden = H)`.
#[divan::bench(args = TRAIN)]
fn flow_train_step(bencher: Bencher, s: Shape) {
    train_step_bench(bencher, maf_model(s), data(s.0, s.2), true);
}

/// [`flow_train_step`] copying the parameters out and back around Adam.
#[divan::bench(args = TRAIN)]
fn flow_train_step_copying(bencher: Bencher, s: Shape) {
    train_step_bench(bencher, maf_model(s), data(s.0, s.2), false);
}

/// Drawing `B` samples from `maf(5, hidden = H)` (`D` sequential steps per layer).
#[divan::bench(args = TRAIN)]
fn flow_sample(bencher: Bencher, s: Shape) {
    let model = maf_model(s);
    let mut rng = StdRng::seed_from_u64(1);
    bencher.bench_local(|| model.sample(s.2, &mut rng));
}

/// The bare gemms of the dense layers of `maf(5, hidden = H)`'s `log_prob`:
/// per MAF layer `(H×D)(D×B)`, `(H×H)(H×B)`, `(2D×H)(H×B)`, five times, with
/// the library's kernel (`normflow::nn::matmul`) and no other work. Dividing its
/// time by `flow_log_prob`'s gives the flow's efficiency relative to gemm.
#[divan::bench(args = TABLE)]
fn gemm_dense_products(bencher: Bencher, s: Shape) {
    let (d, h, n) = (s.0, s.1, s.2);
    let shapes = [(h, d), (h, h), (2 * d, h)];
    let ws: Vec<DMatrix<f32>> = shapes.iter().map(|&(o, i)| data(o, i)).collect();
    let xs: Vec<DMatrix<f32>> = shapes.iter().map(|&(_, i)| data(i, n)).collect();
    let mut zs: Vec<DMatrix<f32>> = shapes.iter().map(|&(o, _)| DMatrix::zeros(o, n)).collect();
    bencher.bench_local(|| {
        for _ in 0..5 {
            for ((w, x), z) in ws.iter().zip(&xs).zip(zs.iter_mut()) {
                normflow::nn::matmul(w, x, z);
            }
        }
        black_box(&zs);
    });
}

/// Layers one at a time, `D = 8`, hidden 64, batch 256.
const LAYERS: &[&str] = &[
    "maf",
    "iaf",
    "realnvp",
    "nice",
    "spline_coupling",
    "spline_ar",
];
const LAYER_SHAPE: Shape = Shape(8, 64, 256);

fn layer(name: &str) -> Flow<f32> {
    let spec = FlowSpec::parse(&format!(
        "{name}(1, hidden = {}, identity_init = false)",
        LAYER_SHAPE.1
    ))
    .expect("valid spec");
    spec.build(LAYER_SHAPE.0, &mut StdRng::seed_from_u64(0))
        .expect("builds")
}

/// A layer's forward (sampling) direction with its log-determinant, `D = 8, H = 64, B = 256`.
#[divan::bench(args = LAYERS)]
fn layer_forward(bencher: Bencher, name: &str) {
    let f = layer(name);
    let u = data(LAYER_SHAPE.0, LAYER_SHAPE.2) * 0.5;
    bencher.bench_local(|| f.forward_and_log_det(black_box(&u)));
}

/// A layer's inverse (density) direction with its log-determinant, `D = 8, H = 64, B = 256`.
#[divan::bench(args = LAYERS)]
fn layer_inverse(bencher: Bencher, name: &str) {
    let f = layer(name);
    let x = data(LAYER_SHAPE.0, LAYER_SHAPE.2) * 0.5;
    bencher.bench_local(|| f.inverse_and_log_det(black_box(&x)));
}

/// A one-layer flow's training step (the layer's fused value and backward
/// pass, then Adam), `D = 8, H = 64, B = 256`.
#[divan::bench(args = LAYERS)]
fn layer_train_step(bencher: Bencher, name: &str) {
    let spec = FlowSpec::parse(&format!(
        "{name}(1, hidden = {}, identity_init = false)",
        LAYER_SHAPE.1
    ))
    .expect("valid spec");
    let model = FlowModel::new(&spec, LAYER_SHAPE.0, 0).expect("builds");
    let x = data(LAYER_SHAPE.0, LAYER_SHAPE.2) * 0.5;
    train_step_bench(bencher, model, x, true);
}
