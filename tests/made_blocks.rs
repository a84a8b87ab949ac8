//! MADE products over row blocks: with the hidden units in increasing degree,
//! each masked weight matrix is block-triangular and the layers multiply only
//! the blocks the masks reach. Every pass must equal the dense computation
//! `act(W h + b)` with the masked weights (written out here with nalgebra),
//! and models saved with the older cyclic layout must still load.

use nalgebra::DMatrix;
use normflow::nn::{ConditionerConfig, Made};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

fn relu(m: &DMatrix<f64>) -> DMatrix<f64> {
    m.map(|v| v.max(0.0))
}

/// Dense forward pass of a plain (non-residual) ReLU MADE: the output and,
/// per layer, its input and pre-activation.
fn dense_forward(made: &Made<f64>, input: &DMatrix<f64>) -> (DMatrix<f64>, Vec<DMatrix<f64>>) {
    let layers = made.masks().len();
    let mut h = input.clone();
    let mut inputs = Vec::new();
    for l in 0..layers {
        inputs.push(h.clone());
        let (w, b) = made.net().layer(l);
        let mut z = w * &h;
        for mut col in z.column_iter_mut() {
            col += b;
        }
        h = if l + 1 < layers { relu(&z) } else { z };
    }
    (h, inputs)
}

/// Dense backward pass for `L = Σ out ⊙ g`: the (masked) parameter gradient
/// in the network's layout, and `∂L/∂input`.
fn dense_backward(
    made: &Made<f64>,
    inputs: &[DMatrix<f64>],
    g: &DMatrix<f64>,
) -> (Vec<f64>, DMatrix<f64>) {
    let layers = made.masks().len();
    let mut grads: Vec<Vec<f64>> = vec![Vec::new(); layers];
    let mut delta = g.clone();
    for l in (0..layers).rev() {
        let (w, _) = made.net().layer(l);
        let gw = (&delta * inputs[l].transpose()).component_mul(&made.masks()[l]);
        let gb: Vec<f64> = delta.row_iter().map(|r| r.sum()).collect();
        grads[l] = gw.as_slice().iter().copied().chain(gb).collect();
        let below = w.transpose() * &delta;
        delta = if l > 0 {
            // ReLU'(pre-activation) = [input of this layer > 0].
            below.zip_map(&inputs[l], |d, a| if a > 0.0 { d } else { 0.0 })
        } else {
            below
        };
    }
    (grads.concat(), delta)
}

fn data(rows: usize, cols: usize, rng: &mut StdRng) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| {
        rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng)
    })
}

fn close(a: &DMatrix<f64>, b: &DMatrix<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    let scale = b.amax().max(1.0);
    let err = (a - b).amax();
    assert!(
        err <= 1e-12 * scale,
        "{what}: max difference {err} (scale {scale})"
    );
}

/// Shapes where the blocks are used (hidden 128 or 256, `D` from 3 to 64),
/// natural and shuffled orders, with and without a context.
#[test]
fn blocked_passes_equal_the_dense_passes() {
    let mut rng = StdRng::seed_from_u64(5);
    for &(d, hidden, ctx, shuffle) in &[
        (8, 256, 0, false),
        (64, 256, 0, false),
        (64, 128, 0, true),
        (3, 128, 0, false),
        (8, 256, 4, false),
        (16, 256, 3, true),
        // Narrow layers: finer blocks forward than backward.
        (8, 64, 0, false),
        (8, 64, 2, true),
        (2, 64, 0, false),
    ] {
        let cfg = ConditionerConfig {
            hidden,
            identity_init: false,
            ..Default::default()
        };
        let mut order: Vec<usize> = (0..d).collect();
        if shuffle {
            order.shuffle(&mut rng);
        }
        let made = Made::<f64>::with_order(d, ctx, 2, order, &cfg, &mut rng).unwrap();
        let what = format!("D = {d}, hidden {hidden}, context {ctx}, shuffled {shuffle}");
        let n = 37;
        let x = data(d, n, &mut rng);
        let c = data(ctx, n, &mut rng);
        let input = DMatrix::from_fn(
            d + ctx,
            n,
            |i, j| if i < d { x[(i, j)] } else { c[(i - d, j)] },
        );
        let (want, inputs) = dense_forward(&made, &input);
        let g = data(2 * d, n, &mut rng);
        let (want_grad, want_gin) = dense_backward(&made, &inputs, &g);
        let mut grad = vec![0.0; made.num_params()];
        if ctx == 0 {
            close(&made.forward(&x), &want, &format!("{what}: forward"));
            let (out, cache) = made.forward_cached(&x);
            close(&out, &want, &format!("{what}: forward_cached"));
            let gx = made.backward(&cache, &g, &mut grad);
            close(&gx, &want_gin, &format!("{what}: ∂L/∂x"));
        } else {
            close(
                &made.forward_with_context(&x, &c),
                &want,
                &format!("{what}: forward"),
            );
            let (out, cache) = made.forward_cached_with_context(&x, &c);
            close(&out, &want, &format!("{what}: forward_cached"));
            let (gx, gc) = made.backward_with_context(&cache, &g, &mut grad);
            close(
                &gx,
                &want_gin.rows(0, d).clone_owned(),
                &format!("{what}: ∂L/∂x"),
            );
            close(
                &gc,
                &want_gin.rows(d, ctx).clone_owned(),
                &format!("{what}: ∂L/∂c"),
            );
        }
        let grad = DMatrix::from_vec(grad.len(), 1, grad);
        let want_grad = DMatrix::from_vec(want_grad.len(), 1, want_grad);
        close(&grad, &want_grad, &format!("{what}: ∂L/∂θ"));
    }
}

/// A MADE saved with the cyclic layout (no `hidden_order` in the file) loads
/// with that layout: the same masks as before, an autoregressive network, and
/// passes equal to the dense ones.
#[test]
fn models_saved_with_the_cyclic_layout_still_load() {
    let mut rng = StdRng::seed_from_u64(9);
    let cfg = ConditionerConfig {
        hidden: 128,
        identity_init: false,
        ..Default::default()
    };
    let d = 8;
    let made = Made::<f64>::new(d, 0, 2, &cfg, &mut rng).unwrap();
    let json = serde_json::to_string(&made).unwrap();
    assert!(
        json.contains("\"hidden_order\":\"sorted\""),
        "{}",
        &json[..200]
    );
    let old = json.replace("\"hidden_order\":\"sorted\",", "");
    assert!(!old.contains("hidden_order"));
    let legacy: Made<f64> = serde_json::from_str(&old).unwrap();
    // Cyclic degrees 1, 2, …, 7, 1, 2, …: unit k of the first hidden layer
    // sees input j exactly when j < 1 + k mod 7.
    let m0 = &legacy.masks()[0];
    for k in 0..128 {
        for j in 0..d {
            let want = if j < 1 + k % (d - 1) { 1.0 } else { 0.0 };
            assert_eq!(m0[(k, j)], want, "mask entry ({k}, {j})");
        }
    }
    let conn = legacy.connectivity();
    for i in 0..d {
        for j in i..d {
            for p in 0..2 {
                assert_eq!(conn[(p * d + i, j)], 0.0, "output {i} sees input {j}");
            }
        }
    }
    let x = data(d, 11, &mut rng);
    let (want, _) = dense_forward(&legacy, &x);
    close(&legacy.forward(&x), &want, "cyclic layout: forward");
    let again = serde_json::to_string(&legacy).unwrap();
    assert!(again.contains("\"hidden_order\":\"cyclic\""));
}
