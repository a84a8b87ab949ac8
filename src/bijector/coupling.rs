//! The coupling structure: a [`CouplingMask`] splits the coordinates into an
//! identity half `A` and a transformed half `B`; a conditioner network reads
//! `x_A` (and, optionally, a context `c`, as `[x_A; c]`) and gives the
//! parameters of an elementwise transform of `x_B`. RealNVP and the spline
//! coupling are this structure with two transforms; one set of passes serves
//! both, with and without a context, in both directions.

use nalgebra::{DMatrix, DVector};

use super::{Continuation, CouplingMask, assert_pair};
use crate::batch::own_context;
use crate::nn::Mlp;
use crate::{Error, Real};

/// What the shared coupling passes need from a layer: its mask, its
/// conditioner and the transform of the `B` half given the conditioner's
/// output.
pub(crate) trait CouplingKernel<T: Real> {
    /// The layer's name in messages.
    const NAME: &'static str;
    /// The split into the identity and transformed halves, and the
    /// conditioner (`|A| + C` inputs).
    fn parts(&self) -> (&CouplingMask, &Mlp<T>);
    /// The split into the identity and transformed halves.
    fn mask(&self) -> &CouplingMask {
        self.parts().0
    }
    /// The conditioner.
    fn net(&self) -> &Mlp<T> {
        self.parts().1
    }
    /// Either direction at `input` given the conditioner's output there.
    fn apply_with(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>);
    /// `(∂L/∂input` along the direct paths, `∂L/∂out)` of either direction.
    fn cotangents(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>);
}

/// The context dimension of a coupling whose conditioner reads `[x_A; c]`.
pub(crate) fn context_dim_of<T: Real>(mask: &CouplingMask, net: &Mlp<T>) -> usize {
    net.input_dim() - mask.identity_indices().len()
}

/// The conditioner input `[rows idx of x; c]` of a coupling.
pub(crate) fn gather_with_context<T: Real>(
    idx: &[usize],
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> DMatrix<T> {
    if c.nrows() == 0 {
        return CouplingMask::gather(idx, x);
    }
    let a = idx.len();
    DMatrix::from_fn(a + c.nrows(), x.ncols(), |r, j| {
        if r < a { x[(idx[r], j)] } else { c[(r - a, j)] }
    })
}

/// Either direction in one conditioner pass of `[x_A; c]`.
pub(crate) fn apply<T: Real, K: CouplingKernel<T>>(
    k: &K,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> (DMatrix<T>, DVector<T>) {
    let mask = k.mask();
    let context_dim = context_dim_of(mask, k.net());
    assert_pair(K::NAME, Some(mask.dim()), context_dim, input, c);
    let c = own_context(context_dim, c);
    let out = k
        .net()
        .forward(&gather_with_context(mask.identity_indices(), input, &c));
    k.apply_with(input, &out, inverse)
}

/// The fused pass of either direction: one cached conditioner pass; the
/// conditioner's input gradient splits into the identity half's (added to
/// its pass-through cotangent) and the context's.
pub(crate) fn through<T: Real, K: CouplingKernel<T>>(
    k: &K,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    grad_params: &mut [T],
    grad_context: &mut DMatrix<T>,
    rest: &mut Continuation<'_, T>,
    inverse: bool,
) -> Result<DMatrix<T>, Error> {
    let mask = k.mask();
    let context_dim = context_dim_of(mask, k.net());
    assert_pair(K::NAME, Some(mask.dim()), context_dim, input, c);
    let c = own_context(context_dim, c);
    let ia = mask.identity_indices();
    let (out, cache) = k.net().forward_cached(&gather_with_context(ia, input, &c));
    let (z, ldj) = k.apply_with(input, &out, inverse);
    let (grad_z, grad_log_det) = rest(&z, &ldj)?;
    let (mut grad_in, grad_net) = k.cotangents(input, &out, &grad_z, &grad_log_det, inverse);
    let g = k.net().backward(&cache, &grad_net, grad_params, None);
    for (r, &i) in ia.iter().enumerate() {
        for s in 0..input.ncols() {
            grad_in[(i, s)] += g[(r, s)];
        }
    }
    if context_dim > 0 {
        *grad_context += g.rows(ia.len(), context_dim);
    }
    Ok(grad_in)
}

/// Implements [`Bijector`](super::Bijector) and
/// [`Differentiable`](super::Differentiable) for a coupling layer through
/// the shared passes above: both directions are one conditioner pass, with
/// or without a context, and both are differentiable.
macro_rules! coupling_layer {
    ($ty:ident) => {
        impl<T: Real> $ty<T> {
            /// The mask.
            pub fn mask(&self) -> &CouplingMask {
                &self.mask
            }

            /// The conditioner network.
            pub fn net(&self) -> &Mlp<T> {
                &self.net
            }

            /// All parameters (the conditioner's) in one buffer.
            pub fn params(&self) -> &[T] {
                self.net.params()
            }

            /// Mutable parameter buffer.
            pub fn params_mut(&mut self) -> &mut [T] {
                self.net.params_mut()
            }

            /// Number of parameters.
            pub fn num_params(&self) -> usize {
                self.net.num_params()
            }
        }

        impl<T: Real> $crate::bijector::Bijector<T> for $ty<T> {
            $crate::bijector::fused::maps_from_apply!($crate::bijector::coupling::apply);
            fn dim(&self) -> Option<usize> {
                Some(self.mask().dim())
            }
            fn context_dim(&self) -> usize {
                $crate::bijector::coupling::context_dim_of(self.mask(), self.net())
            }
            $crate::bijector::differentiable_hooks!();
        }

        impl<T: Real> $crate::Parameters<T> for $ty<T> {
            fn num_params(&self) -> usize {
                self.net().num_params()
            }
            fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
                f(self.params())
            }
            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
                f(self.params_mut())
            }
        }

        /// Both directions are one conditioner pass, and both are differentiable.
        impl<T: Real> $crate::bijector::Differentiable<T> for $ty<T> {
            fn boxed_clone(&self) -> Box<dyn $crate::bijector::Bijector<T>> {
                Box::new(self.clone())
            }
            $crate::bijector::fused::training_from_through!($crate::bijector::coupling::through);
        }
    };
}
pub(crate) use coupling_layer;
