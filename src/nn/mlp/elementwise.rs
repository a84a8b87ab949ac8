//! The elementwise passes between a network's products, over column-major
//! `rows × n` batches: the bias, the activation and its derivative, fused
//! where one pass over memory can do two things.

use crate::Real;
use crate::nn::Activation;

/// `z ← z + b` for every column `z` of the column-major `data`.
pub(super) fn add_bias<T: Real>(b: &[T], data: &mut [T]) {
    if b.is_empty() {
        return;
    }
    for col in data.chunks_exact_mut(b.len()) {
        for (v, bi) in col.iter_mut().zip(b) {
            *v += *bi;
        }
    }
}

/// `z ← act(z + b)` for every column `z` of the column-major `data`: the
/// bias and the activation in one pass over memory.
pub(super) fn bias_activate_in_place<T: Real>(act: Activation, b: &[T], data: &mut [T]) {
    if b.is_empty() {
        return;
    }
    match act {
        Activation::Relu => {
            for col in data.chunks_exact_mut(b.len()) {
                for (v, bi) in col.iter_mut().zip(b) {
                    let z = *v + *bi;
                    // An unconditional select (no branch to mispredict), vectorised.
                    *v = if z > T::zero() { z } else { T::zero() };
                }
            }
        }
        _ => {
            for col in data.chunks_exact_mut(b.len()) {
                for (v, bi) in col.iter_mut().zip(b) {
                    *v = act.apply(*v + *bi);
                }
            }
        }
    }
}

/// `z ← z + b` and `a ← act(z)` for every column (`z` the pre-activation the
/// backward pass keeps, `a` the next layer's input), in one pass.
pub(super) fn bias_activate_into<T: Real>(act: Activation, b: &[T], z: &mut [T], a: &mut [T]) {
    let rows = b.len();
    if rows == 0 {
        return;
    }
    match act {
        Activation::Relu => {
            for (zc, ac) in z.chunks_exact_mut(rows).zip(a.chunks_exact_mut(rows)) {
                for ((zv, av), bi) in zc.iter_mut().zip(ac.iter_mut()).zip(b) {
                    let v = *zv + *bi;
                    *zv = v;
                    *av = if v > T::zero() { v } else { T::zero() };
                }
            }
        }
        _ => {
            for (zc, ac) in z.chunks_exact_mut(rows).zip(a.chunks_exact_mut(rows)) {
                for ((zv, av), bi) in zc.iter_mut().zip(ac.iter_mut()).zip(b) {
                    let v = *zv + *bi;
                    *zv = v;
                    *av = act.apply(v);
                }
            }
        }
    }
}

/// `dst ← act(src)`, elementwise (the activation chosen once, outside the loop).
pub(super) fn apply_activation<T: Real>(act: Activation, src: &[T], dst: &mut [T]) {
    match act {
        Activation::Relu => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = if *s > T::zero() { *s } else { T::zero() };
            }
        }
        _ => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = act.apply(*s);
            }
        }
    }
}

/// `z ← act(z)`, elementwise.
pub(crate) fn activate_in_place<T: Real>(act: Activation, z: &mut [T]) {
    match act {
        Activation::Relu => {
            // An unconditional select (no branch to mispredict), vectorised.
            for v in z.iter_mut() {
                *v = if *v > T::zero() { *v } else { T::zero() };
            }
        }
        _ => {
            for v in z.iter_mut() {
                *v = act.apply(*v);
            }
        }
    }
}

/// `g ← g ⊙ act'(z)`, elementwise.
pub(super) fn mul_derivative<T: Real>(act: Activation, g: &mut [T], z: &[T]) {
    match act {
        Activation::Relu => {
            for (gv, zv) in g.iter_mut().zip(z) {
                *gv = if *zv > T::zero() { *gv } else { T::zero() };
            }
        }
        _ => {
            for (gv, zv) in g.iter_mut().zip(z) {
                *gv *= act.derivative(*zv);
            }
        }
    }
}
