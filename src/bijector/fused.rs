//! The methods of [`Bijector`](super::Bijector) and
//! [`Differentiable`](super::Differentiable) that follow from one function:
//! a type that evaluates both directions in one `apply` and differentiates
//! them in one fused `through` (a chain, a flow, a layer with a conditioner)
//! writes those two and gets every method, with and without a context, from
//! these macros. A context-free call passes the empty `0 × n` context.

use nalgebra::{DMatrix, DVector};

use crate::{Error, Real};

/// What a continuation returns: the cotangents of a layer's outputs.
type Cotangents<T> = Result<(DMatrix<T>, DVector<T>), Error>;

/// A continuation that hands back fixed cotangents: a backward pass is the
/// fused pass with it.
pub(crate) fn constant<'a, T: Real>(
    grad: &'a DMatrix<T>,
    grad_log_det: &'a DVector<T>,
) -> impl FnMut(&DMatrix<T>, &DVector<T>) -> Cotangents<T> + 'a {
    move |_, _| Ok((grad.clone(), grad_log_det.clone()))
}

/// The context-free methods of [`Bijector`](super::Bijector) through the
/// type's own `forward_given`, `inverse_given` and `*_and_log_det_given`.
macro_rules! context_free_maps {
    () => {
        fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
            self.forward_given(x, &$crate::bijector::no_context(x.ncols()))
        }
        fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
            self.inverse_given(y, &$crate::bijector::no_context(y.ncols()))
        }
        fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
            self.forward_and_log_det(x).1
        }
        fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
            self.inverse_and_log_det(y).1
        }
        fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
            self.forward_and_log_det_given(x, &$crate::bijector::no_context(x.ncols()))
        }
        fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
            self.inverse_and_log_det_given(y, &$crate::bijector::no_context(y.ncols()))
        }
    };
}
pub(crate) use context_free_maps;

/// Every map of [`Bijector`](super::Bijector) from one function
/// `apply(&self, input, c, inverse) -> (output, log-det)`.
macro_rules! maps_from_apply {
    ($apply:path) => {
        $crate::bijector::fused::context_free_maps!();
        fn forward_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
            $apply(self, x, c, false).0
        }
        fn inverse_given(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
            $apply(self, y, c, true).0
        }
        fn forward_and_log_det_given(
            &self,
            x: &DMatrix<T>,
            c: &DMatrix<T>,
        ) -> (DMatrix<T>, DVector<T>) {
            $apply(self, x, c, false)
        }
        fn inverse_and_log_det_given(
            &self,
            y: &DMatrix<T>,
            c: &DMatrix<T>,
        ) -> (DMatrix<T>, DVector<T>) {
            $apply(self, y, c, true)
        }
    };
}
pub(crate) use maps_from_apply;

/// Every backward and fused pass of [`Differentiable`](super::Differentiable),
/// with and without a context, from one fused pass
/// `through(&self, input, c, grad_params, grad_context, rest, inverse)`: a
/// backward pass is the fused pass with a continuation that
/// hands back the given cotangents.
macro_rules! training_from_through {
    ($through:path) => {
        $crate::bijector::fused::training_from_through!(@direction $through, true,
            inverse_and_log_det_backward, inverse_and_log_det_through,
            inverse_and_log_det_backward_given, inverse_and_log_det_through_given);
        $crate::bijector::fused::training_from_through!(@direction $through, false,
            forward_and_log_det_backward, forward_and_log_det_through,
            forward_and_log_det_backward_given, forward_and_log_det_through_given);
    };
    (@direction $through:path, $inverse:expr,
     $backward:ident, $fused:ident, $backward_given:ident, $fused_given:ident) => {
        fn $backward(
            &self,
            input: &DMatrix<T>,
            grad_out: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
        ) -> Result<DMatrix<T>, Error> {
            let mut rest = $crate::bijector::fused::constant(grad_out, grad_log_det);
            self.$fused(input, grad_params, &mut rest)
        }
        fn $fused(
            &self,
            input: &DMatrix<T>,
            grad_params: &mut [T],
            rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            let (c, mut gc) = (
                $crate::bijector::no_context(input.ncols()),
                $crate::bijector::no_context(input.ncols()),
            );
            $through(self, input, &c, grad_params, &mut gc, rest, $inverse)
        }
        fn $backward_given(
            &self,
            input: &DMatrix<T>,
            c: &DMatrix<T>,
            grad_out: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
            grad_context: &mut DMatrix<T>,
        ) -> Result<DMatrix<T>, Error> {
            let mut rest = $crate::bijector::fused::constant(grad_out, grad_log_det);
            $through(self, input, c, grad_params, grad_context, &mut rest, $inverse)
        }
        fn $fused_given(
            &self,
            input: &DMatrix<T>,
            c: &DMatrix<T>,
            grad_params: &mut [T],
            grad_context: &mut DMatrix<T>,
            rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            $through(self, input, c, grad_params, grad_context, rest, $inverse)
        }
    };
}
pub(crate) use training_from_through;

/// Every backward and fused pass of [`Differentiable`](super::Differentiable)
/// handed to another trainable bijector: `training_by_delegate!(s => target)`
/// where `target` (an expression in `s`, the receiver) is a
/// `Result<&dyn Differentiable<T>, Error>`; `swapped` hands the inverse
/// direction's passes to the target's forward ones and back (an inverse).
macro_rules! training_by_delegate {
    ($s:ident => $target:expr) => {
        $crate::bijector::fused::training_by_delegate!(@passes $s => $target,
            [inverse_and_log_det_backward, inverse_and_log_det_through,
             inverse_and_log_det_backward_given, inverse_and_log_det_through_given],
            [forward_and_log_det_backward, forward_and_log_det_through,
             forward_and_log_det_backward_given, forward_and_log_det_through_given]);
    };
    (swapped $s:ident => $target:expr) => {
        $crate::bijector::fused::training_by_delegate!(@passes $s => $target,
            [forward_and_log_det_backward, forward_and_log_det_through,
             forward_and_log_det_backward_given, forward_and_log_det_through_given],
            [inverse_and_log_det_backward, inverse_and_log_det_through,
             inverse_and_log_det_backward_given, inverse_and_log_det_through_given]);
    };
    (@passes $s:ident => $target:expr, [$ib:ident, $it:ident, $ibg:ident, $itg:ident],
        [$fb:ident, $ft:ident, $fbg:ident, $ftg:ident]) => {
        fn inverse_and_log_det_backward(
            &self,
            y: &DMatrix<T>,
            grad_x: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$ib(y, grad_x, grad_log_det, grad_params)
        }
        fn forward_and_log_det_backward(
            &self,
            x: &DMatrix<T>,
            grad_y: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$fb(x, grad_y, grad_log_det, grad_params)
        }
        fn inverse_and_log_det_through(
            &self,
            y: &DMatrix<T>,
            grad_params: &mut [T],
            rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$it(y, grad_params, rest)
        }
        fn forward_and_log_det_through(
            &self,
            x: &DMatrix<T>,
            grad_params: &mut [T],
            rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$ft(x, grad_params, rest)
        }
        fn inverse_and_log_det_backward_given(
            &self,
            y: &DMatrix<T>,
            c: &DMatrix<T>,
            grad_x: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
            grad_context: &mut DMatrix<T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$ibg(y, c, grad_x, grad_log_det, grad_params, grad_context)
        }
        fn forward_and_log_det_backward_given(
            &self,
            x: &DMatrix<T>,
            c: &DMatrix<T>,
            grad_y: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
            grad_context: &mut DMatrix<T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$fbg(x, c, grad_y, grad_log_det, grad_params, grad_context)
        }
        fn inverse_and_log_det_through_given(
            &self,
            y: &DMatrix<T>,
            c: &DMatrix<T>,
            grad_params: &mut [T],
            grad_context: &mut DMatrix<T>,
            rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$itg(y, c, grad_params, grad_context, rest)
        }
        fn forward_and_log_det_through_given(
            &self,
            x: &DMatrix<T>,
            c: &DMatrix<T>,
            grad_params: &mut [T],
            grad_context: &mut DMatrix<T>,
            rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $target?.$ftg(x, c, grad_params, grad_context, rest)
        }
    };
}
pub(crate) use training_by_delegate;

/// Every map of [`Bijector`](super::Bijector) handed to another bijector:
/// `maps_by_delegate!(s => target)` with `target` an expression in `s` (the
/// receiver) giving the bijector; `swapped` exchanges the directions (an
/// inverse).
macro_rules! maps_by_delegate {
    ($s:ident => $target:expr) => {
        $crate::bijector::fused::maps_by_delegate!(@maps $s => $target,
            [forward, forward_log_det_jacobian, forward_and_log_det, forward_given,
             forward_and_log_det_given],
            [inverse, inverse_log_det_jacobian, inverse_and_log_det, inverse_given,
             inverse_and_log_det_given]);
    };
    (swapped $s:ident => $target:expr) => {
        $crate::bijector::fused::maps_by_delegate!(@maps $s => $target,
            [inverse, inverse_log_det_jacobian, inverse_and_log_det, inverse_given,
             inverse_and_log_det_given],
            [forward, forward_log_det_jacobian, forward_and_log_det, forward_given,
             forward_and_log_det_given]);
    };
    (@maps $s:ident => $target:expr, [$f:ident, $fl:ident, $fa:ident, $fg:ident, $fag:ident],
        [$i:ident, $il:ident, $ia:ident, $ig:ident, $iag:ident]) => {
        fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
            let $s = self;
            $target.$f(x)
        }
        fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
            let $s = self;
            $target.$i(y)
        }
        fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
            let $s = self;
            $target.$fl(x)
        }
        fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
            let $s = self;
            $target.$il(y)
        }
        fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
            let $s = self;
            $target.$fa(x)
        }
        fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
            let $s = self;
            $target.$ia(y)
        }
        fn forward_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
            let $s = self;
            $target.$fg(x, c)
        }
        fn inverse_given(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
            let $s = self;
            $target.$ig(y, c)
        }
        fn forward_and_log_det_given(
            &self,
            x: &DMatrix<T>,
            c: &DMatrix<T>,
        ) -> (DMatrix<T>, DVector<T>) {
            let $s = self;
            $target.$fag(x, c)
        }
        fn inverse_and_log_det_given(
            &self,
            y: &DMatrix<T>,
            c: &DMatrix<T>,
        ) -> (DMatrix<T>, DVector<T>) {
            let $s = self;
            $target.$iag(y, c)
        }
        fn dim(&self) -> Option<usize> {
            let $s = self;
            $target.dim()
        }
        fn context_dim(&self) -> usize {
            let $s = self;
            $target.context_dim()
        }
    };
}
pub(crate) use maps_by_delegate;

/// Both backward passes of [`Differentiable`](super::Differentiable) from
/// one method of the type, `backward!(name)` for
/// `fn name(&self, input, grad_out, grad_log_det, grad_params, inverse: bool)`.
macro_rules! backward_from {
    ($method:ident) => {
        fn inverse_and_log_det_backward(
            &self,
            y: &DMatrix<T>,
            grad_x: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
        ) -> Result<DMatrix<T>, Error> {
            self.$method(y, grad_x, grad_log_det, grad_params, true)
        }
        fn forward_and_log_det_backward(
            &self,
            x: &DMatrix<T>,
            grad_y: &DMatrix<T>,
            grad_log_det: &DVector<T>,
            grad_params: &mut [T],
        ) -> Result<DMatrix<T>, Error> {
            self.$method(x, grad_y, grad_log_det, grad_params, false)
        }
    };
}
pub(crate) use backward_from;
