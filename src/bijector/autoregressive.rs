//! The autoregressive structure: a [`Made`] conditioner (reading the data
//! and, optionally, a context of MADE degree 0) and an elementwise transform
//! of each coordinate given the MADE's outputs for it. The MAF and the
//! autoregressive spline are this structure with two transforms; one set of
//! passes serves both, with and without a context.

use nalgebra::{DMatrix, DVector};

use super::{Continuation, assert_pair};
use crate::batch::own_context;
use crate::nn::Made;
use crate::{Error, Real};

/// What the shared autoregressive passes need from a layer: its MADE and the
/// elementwise transform given the MADE's output. The density direction
/// (data → base) is one MADE pass; sampling is `D` sequential steps.
pub(crate) trait AutoregressiveKernel<T: Real> {
    /// The layer's name in messages.
    const NAME: &'static str;
    /// Why the sampling direction has no backward pass (and what to do).
    const SEQUENTIAL: &'static str;
    /// The conditioner.
    fn made(&self) -> &Made<T>;
    /// `(u, log|det ∂u/∂x|)` given the MADE's output at `x`.
    fn invert_with(&self, x: &DMatrix<T>, out: &DMatrix<T>) -> (DMatrix<T>, DVector<T>);
    /// `(∂L/∂x` along the direct path, `∂L/∂out)` of the density direction.
    fn density_cotangents(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>);
    /// Length of the scratch buffer of [`AutoregressiveKernel::generate_step`].
    fn scratch(&self) -> usize;
    /// `(xᵢ, log dxᵢ/duᵢ)` of sample `s`, given one sequential MADE step's
    /// output (row `p` is raw parameter `p` of the coordinate).
    fn generate_step(&self, step: &DMatrix<T>, u: T, s: usize, scratch: &mut [T]) -> (T, T);
}

/// The density direction in one MADE pass.
pub(crate) fn invert<T: Real, K: AutoregressiveKernel<T>>(
    k: &K,
    caller: &str,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> (DMatrix<T>, DVector<T>) {
    let made = k.made();
    assert_pair(caller, Some(made.dim()), made.context_dim(), x, c);
    let c = own_context(made.context_dim(), c);
    k.invert_with(x, &made.forward_with_context(x, &c))
}

/// The sampling direction in `D` sequential steps; each evaluates only the
/// MADE units that its coordinate needs and that are not known yet
/// ([`Made::sequential`]), so the steps add up to about one pass.
pub(crate) fn generate<T: Real, K: AutoregressiveKernel<T>>(
    k: &K,
    caller: &str,
    u: &DMatrix<T>,
    c: &DMatrix<T>,
) -> (DMatrix<T>, DVector<T>) {
    let made = k.made();
    assert_pair(caller, Some(made.dim()), made.context_dim(), u, c);
    let c = own_context(made.context_dim(), c);
    let mut scratch = vec![T::zero(); k.scratch()];
    let mut x = DMatrix::zeros(made.dim(), u.ncols());
    let mut ldj = DVector::zeros(u.ncols());
    let mut seq = if made.context_dim() == 0 {
        made.sequential(u.ncols())
    } else {
        made.sequential_with_context(&c)
    };
    while let Some(i) = seq.next_coordinate() {
        // Coordinates not yet generated are 0; output i does not depend on them.
        let step = seq.step(&x);
        for s in 0..u.ncols() {
            let (v, l) = k.generate_step(step, u[(i, s)], s, &mut scratch);
            x[(i, s)] = v;
            ldj[s] += l;
        }
    }
    (x, ldj)
}

/// The fused density direction: one cached MADE pass serves the value and
/// the backward pass; adds `∂L/∂θ` and `∂L/∂c`, returns `∂L/∂x`.
pub(crate) fn invert_through<T: Real, K: AutoregressiveKernel<T>>(
    k: &K,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    grad_params: &mut [T],
    grad_context: &mut DMatrix<T>,
    rest: &mut Continuation<'_, T>,
) -> Result<DMatrix<T>, Error> {
    let made = k.made();
    assert_pair(K::NAME, Some(made.dim()), made.context_dim(), x, c);
    let c = own_context(made.context_dim(), c);
    let (out, cache) = made.forward_cached_with_context(x, &c);
    let (u, ldj) = k.invert_with(x, &out);
    let (grad_u, grad_log_det) = rest(&u, &ldj)?;
    let (mut grad_x, grad_out) = k.density_cotangents(x, &out, &grad_u, &grad_log_det);
    let (gx, gc) = made.backward_with_context(&cache, &grad_out, grad_params);
    grad_x += gx;
    if gc.nrows() > 0 {
        *grad_context += gc;
    }
    Ok(grad_x)
}

/// Either direction: the density direction (`inverse`) in one MADE pass,
/// sampling in `D` steps.
pub(crate) fn apply<T: Real, K: AutoregressiveKernel<T>>(
    k: &K,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> (DMatrix<T>, DVector<T>) {
    if inverse {
        invert(k, K::NAME, input, c)
    } else {
        generate(k, K::NAME, input, c)
    }
}

/// The fused pass of either direction: the density direction's (one cached
/// MADE pass); the sampling direction has none and is an
/// [`Error::Unsupported`] that says why and what to do.
pub(crate) fn through<T: Real, K: AutoregressiveKernel<T>>(
    k: &K,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    grad_params: &mut [T],
    grad_context: &mut DMatrix<T>,
    rest: &mut Continuation<'_, T>,
    inverse: bool,
) -> Result<DMatrix<T>, Error> {
    if !inverse {
        return Err(Error::Unsupported {
            context: format!("{}::forward_and_log_det_backward", K::NAME),
            reason: K::SEQUENTIAL.into(),
        });
    }
    invert_through(k, input, c, grad_params, grad_context, rest)
}

/// Implements [`Bijector`](super::Bijector) and
/// [`Differentiable`](super::Differentiable) for an autoregressive layer
/// through the shared passes above: both directions with and without a
/// context; trainable through the density direction (one MADE pass); the
/// sampling direction's backward pass returns [`Error::Unsupported`].
macro_rules! autoregressive_layer {
    ($ty:ident) => {
        impl<T: Real> $crate::bijector::Bijector<T> for $ty<T> {
            $crate::bijector::fused::maps_from_apply!($crate::bijector::autoregressive::apply);
            fn dim(&self) -> Option<usize> {
                Some(self.made().dim())
            }
            fn context_dim(&self) -> usize {
                self.made().context_dim()
            }
            $crate::bijector::differentiable_hooks!();
        }

        impl<T: Real> $crate::Parameters<T> for $ty<T> {
            fn num_params(&self) -> usize {
                self.made().num_params()
            }
            fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
                f(self.params())
            }
            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
                f(self.params_mut())
            }
            fn params_changed(&mut self) {
                self.enforce_masks();
            }
        }

        /// Trainable through the density direction (data → base, one MADE
        /// pass), the direction of maximum-likelihood training; the sampling
        /// direction's backward pass returns [`Error::Unsupported`].
        impl<T: Real> $crate::bijector::Differentiable<T> for $ty<T> {
            fn boxed_clone(&self) -> Box<dyn $crate::bijector::Bijector<T>> {
                Box::new(self.clone())
            }
            $crate::bijector::fused::training_from_through!(
                $crate::bijector::autoregressive::through
            );
        }
    };
}
pub(crate) use autoregressive_layer;
