//! The arguments of one training pass, bundled: the layers that write one
//! pass for both directions take a [`Pass`] (a fused pass under contexts) or
//! a [`Backward`] (a backward pass) instead of repeating the same six
//! arguments, and the generators in `fused.rs` build them from the trait
//! methods' arguments.

use nalgebra::{DMatrix, DVector};

use super::Continuation;
use crate::Real;

/// A fused pass of either direction under contexts: the layer maps `input`
/// (under the contexts `c`, `0 × n` for none), hands its outputs to `rest`,
/// **adds** the parameter gradient into `grad_params` and the context
/// gradient into `grad_context`, and returns the input gradient.
pub(crate) struct Pass<'a, 'r, T: Real> {
    /// The layer's input (`y` in the density direction, `x` when sampling).
    pub(crate) input: &'a DMatrix<T>,
    /// The contexts, one column per sample (`0 × n` for none).
    pub(crate) c: &'a DMatrix<T>,
    /// Where the parameter gradient is added.
    pub(crate) grad_params: &'a mut [T],
    /// Where the context gradient is added (`C × n`).
    pub(crate) grad_context: &'a mut DMatrix<T>,
    /// Everything downstream of the layer.
    pub(crate) rest: &'a mut Continuation<'r, T>,
    /// The density direction (`inverse_and_log_det_*`) or the sampling one.
    pub(crate) inverse: bool,
}

/// A pass's fields in order: `(input, c, grad_params, grad_context, rest, inverse)`.
type PassParts<'a, 'r, T> = (
    &'a DMatrix<T>,
    &'a DMatrix<T>,
    &'a mut [T],
    &'a mut DMatrix<T>,
    &'a mut Continuation<'r, T>,
    bool,
);

impl<'a, 'r, T: Real> Pass<'a, 'r, T> {
    /// The fields in order, for destructuring in one line.
    pub(crate) fn parts(self) -> PassParts<'a, 'r, T> {
        let Pass {
            input,
            c,
            grad_params,
            grad_context,
            rest,
            inverse,
        } = self;
        (input, c, grad_params, grad_context, rest, inverse)
    }
}

/// A backward pass of either direction: the cotangents of the layer's output
/// (`grad_out`) and log-determinant (`grad_log_det`) at `input`; the pass
/// **adds** the parameter gradient into `grad_params` and returns the input
/// gradient.
pub(crate) struct Backward<'a, T: Real> {
    /// The layer's input.
    pub(crate) input: &'a DMatrix<T>,
    /// `∂L/∂output` (`D × n`).
    pub(crate) grad_out: &'a DMatrix<T>,
    /// `∂L/∂log-det` (`n`).
    pub(crate) grad_log_det: &'a DVector<T>,
    /// Where the parameter gradient is added.
    pub(crate) grad_params: &'a mut [T],
    /// The density direction or the sampling one.
    pub(crate) inverse: bool,
}

/// A backward pass's fields in order: `(input, grad_out, grad_log_det, grad_params, inverse)`.
type BackwardParts<'a, T> = (
    &'a DMatrix<T>,
    &'a DMatrix<T>,
    &'a DVector<T>,
    &'a mut [T],
    bool,
);

impl<'a, T: Real> Backward<'a, T> {
    /// The fields in order, for destructuring in one line.
    pub(crate) fn parts(self) -> BackwardParts<'a, T> {
        let Backward {
            input,
            grad_out,
            grad_log_det,
            grad_params,
            inverse,
        } = self;
        (input, grad_out, grad_log_det, grad_params, inverse)
    }

    /// The name of the trait method this pass runs for.
    pub(crate) fn method(&self) -> &'static str {
        if self.inverse {
            "inverse_and_log_det_backward"
        } else {
            "forward_and_log_det_backward"
        }
    }
}

/// The name of the trait method a pass of the type `$ty` runs for, for
/// messages: `method_name!("Chain", inverse, "through")` is
/// `"Chain::inverse_and_log_det_through"` when `inverse` holds. A
/// `&'static str`, so the passes allocate nothing to name themselves.
macro_rules! method_name {
    ($ty:literal, $inverse:expr, $kind:literal) => {
        if $inverse {
            concat!($ty, "::inverse_and_log_det_", $kind)
        } else {
            concat!($ty, "::forward_and_log_det_", $kind)
        }
    };
}
pub(crate) use method_name;
