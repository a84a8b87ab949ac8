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

/// The four passes of one direction of [`Differentiable`](super::Differentiable)
/// (backward, fused, and both under a context), named by the list and
/// written by the caller's bodies: `passes!([b, t, bg, tg], |s, input, c,
/// grad_out, grad_log_det, grad_params, grad_context, rest| { backward },
/// { fused }, { backward given }, { fused given })`, where `s` is the
/// receiver and the other names are the methods' arguments (each body uses
/// those its method has). The single arm `@backward` writes one backward
/// pass.
macro_rules! passes {
    ([$b:ident, $t:ident, $bg:ident, $tg:ident],
     |$s:ident, $input:ident, $c:ident, $go:ident, $gl:ident, $gp:ident, $gc:ident, $rest:ident|
     $backward:block, $through:block, $backward_given:block, $through_given:block) => {
        $crate::bijector::fused::passes!(@backward $b, |$s, $input, $go, $gl, $gp| $backward);
        #[allow(unused_variables)]
        fn $t(
            &self,
            $input: &DMatrix<T>,
            $gp: &mut [T],
            $rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $through
        }
        #[allow(unused_variables)]
        fn $bg(
            &self,
            $input: &DMatrix<T>,
            $c: &DMatrix<T>,
            $go: &DMatrix<T>,
            $gl: &DVector<T>,
            $gp: &mut [T],
            $gc: &mut DMatrix<T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $backward_given
        }
        #[allow(unused_variables)]
        fn $tg(
            &self,
            $input: &DMatrix<T>,
            $c: &DMatrix<T>,
            $gp: &mut [T],
            $gc: &mut DMatrix<T>,
            $rest: &mut $crate::bijector::Continuation<'_, T>,
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $through_given
        }
    };
    (@backward $b:ident, |$s:ident, $input:ident, $go:ident, $gl:ident, $gp:ident| $body:block) => {
        #[allow(unused_variables)]
        fn $b(
            &self,
            $input: &DMatrix<T>,
            $go: &DMatrix<T>,
            $gl: &DVector<T>,
            $gp: &mut [T],
        ) -> Result<DMatrix<T>, Error> {
            let $s = self;
            $body
        }
    };
}
pub(crate) use passes;

/// The method names of the inverse direction's passes, in the order
/// [`passes!`] takes them.
macro_rules! inverse_names {
    ($m:ident, $($rest:tt)*) => {
        $crate::bijector::fused::$m!([inverse_and_log_det_backward, inverse_and_log_det_through,
             inverse_and_log_det_backward_given, inverse_and_log_det_through_given], $($rest)*);
    };
}
pub(crate) use inverse_names;

/// The method names of the forward direction's passes, in the order
/// [`passes!`] takes them.
macro_rules! forward_names {
    ($m:ident, $($rest:tt)*) => {
        $crate::bijector::fused::$m!([forward_and_log_det_backward, forward_and_log_det_through,
             forward_and_log_det_backward_given, forward_and_log_det_through_given], $($rest)*);
    };
}
pub(crate) use forward_names;

/// Every backward and fused pass of [`Differentiable`](super::Differentiable),
/// with and without a context, from one fused pass
/// `through(&self, pass: Pass<'_, '_, T>)` (see [`Pass`](super::pass::Pass)):
/// a backward pass is the fused pass with a continuation that hands back the
/// given cotangents.
macro_rules! training_from_through {
    ($through:path) => {
        $crate::bijector::fused::inverse_names!(training_from_through,
            @direction $through, true);
        $crate::bijector::fused::forward_names!(training_from_through,
            @direction $through, false);
    };
    ($names:tt, @direction $through:path, $inverse:expr) => {
        $crate::bijector::fused::passes!($names, |s, input, c, go, gl, gp, gc, rest| {
            let mut rest = $crate::bijector::fused::constant(go, gl);
            $crate::bijector::fused::training_from_through!(@free $through, s, input, gp,
                &mut rest, $inverse)
        }, {
            $crate::bijector::fused::training_from_through!(@free $through, s, input, gp, rest,
                $inverse)
        }, {
            let mut rest = $crate::bijector::fused::constant(go, gl);
            $through(s, $crate::bijector::pass::Pass { input, c, grad_params: gp,
                grad_context: gc, rest: &mut rest, inverse: $inverse })
        }, {
            $through(s, $crate::bijector::pass::Pass { input, c, grad_params: gp,
                grad_context: gc, rest, inverse: $inverse })
        });
    };
    (@free $through:path, $s:ident, $input:ident, $gp:ident, $rest:expr, $inverse:expr) => {{
        let none = $crate::bijector::no_context($input.ncols());
        $through($s, $crate::bijector::pass::Pass { input: $input, c: &none, grad_params: $gp,
            grad_context: &mut none.clone(), rest: $rest, inverse: $inverse })
    }};
}
pub(crate) use training_from_through;

/// Every backward and fused pass of [`Differentiable`](super::Differentiable)
/// handed to another trainable bijector: `training_by_delegate!(s => target)`
/// where `target` (an expression in `s`, the receiver) is a
/// `Result<&dyn Differentiable<T>, Error>`; `swapped` hands the inverse
/// direction's passes to the target's forward ones and back (an inverse);
/// `s => target; inverse errors f` maps the errors of the inverse
/// direction's passes through `f`.
macro_rules! training_by_delegate {
    ($s:ident => $target:expr) => {
        $crate::bijector::fused::training_by_delegate!($s => $target; inverse errors |e| e);
    };
    ($s:ident => $target:expr; inverse errors $f:expr) => {
        $crate::bijector::fused::inverse_names!(training_by_delegate,
            @to inverse_names, $s => $target, $f);
        $crate::bijector::fused::forward_names!(training_by_delegate,
            @to forward_names, $s => $target, |e| e);
    };
    (swapped $s:ident => $target:expr) => {
        $crate::bijector::fused::inverse_names!(training_by_delegate,
            @to forward_names, $s => $target, |e| e);
        $crate::bijector::fused::forward_names!(training_by_delegate,
            @to inverse_names, $s => $target, |e| e);
    };
    ($own:tt, @to $theirs:ident, $s:ident => $target:expr, $f:expr) => {
        $crate::bijector::fused::$theirs!(training_by_delegate,
            @call $own, $s => $target, $f);
    };
    ([$tb:ident, $tt:ident, $tbg:ident, $ttg:ident], @call $own:tt, $s:ident => $target:expr,
        $f:expr) => {
        $crate::bijector::fused::passes!($own, |$s, input, c, go, gl, gp, gc, rest| {
            $target?.$tb(input, go, gl, gp).map_err($f)
        }, {
            $target?.$tt(input, gp, rest).map_err($f)
        }, {
            $target?.$tbg(input, c, go, gl, gp, gc).map_err($f)
        }, {
            $target?.$ttg(input, c, gp, gc, rest).map_err($f)
        });
    };
}
pub(crate) use training_by_delegate;

/// Every context-free map of [`Bijector`](super::Bijector) (and `dim`) from
/// the type's `forward_impl(&self, z, with_values) -> (values, log-dets)`
/// (values skipped when not asked for) and `inverse_impl(&self, y)`, with
/// the rows checked against `self.dim` in messages naming `$name`.
macro_rules! maps_from_impls {
    ($name:literal) => {
        fn forward(&self, z: &DMatrix<T>) -> DMatrix<T> {
            $crate::batch::assert_rows(concat!($name, "::forward"), self.dim, z);
            self.forward_impl(z, true).0
        }
        fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
            $crate::batch::assert_rows(concat!($name, "::inverse"), self.dim, y);
            self.inverse_impl(y).0
        }
        fn forward_log_det_jacobian(&self, z: &DMatrix<T>) -> DVector<T> {
            let context = concat!($name, "::forward_log_det_jacobian");
            $crate::batch::assert_rows(context, self.dim, z);
            self.forward_impl(z, false).1
        }
        fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
            let context = concat!($name, "::inverse_log_det_jacobian");
            $crate::batch::assert_rows(context, self.dim, y);
            self.inverse_impl(y).1
        }
        fn forward_and_log_det(&self, z: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
            $crate::batch::assert_rows(concat!($name, "::forward_and_log_det"), self.dim, z);
            self.forward_impl(z, true)
        }
        fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
            $crate::batch::assert_rows(concat!($name, "::inverse_and_log_det"), self.dim, y);
            self.inverse_impl(y)
        }
        fn dim(&self) -> Option<usize> {
            Some(self.dim)
        }
    };
}
pub(crate) use maps_from_impls;

/// The context-taking maps of [`Bijector`](super::Bijector) (and the
/// context-free ones through them) of a sequence of parts, a chain or a
/// flow: `maps_of_sequence!("Name", s => parts)` with `parts` (an
/// expression in the receiver `s`) iterating `&dyn Bijector<T>` in forward
/// order, and the type's `check(caller, m, c)` asserting the shapes.
macro_rules! maps_of_sequence {
    ($name:literal, $s:ident => $parts:expr) => {
        $crate::bijector::fused::context_free_maps!();
        fn forward_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
            self.check(concat!($name, "::forward"), x, c);
            let $s = self;
            $crate::bijector::sequence_map($parts, x, c, false)
        }
        fn inverse_given(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
            self.check(concat!($name, "::inverse"), y, c);
            let $s = self;
            $crate::bijector::sequence_map($parts, y, c, true)
        }
        fn forward_and_log_det_given(
            &self,
            x: &DMatrix<T>,
            c: &DMatrix<T>,
        ) -> (DMatrix<T>, DVector<T>) {
            self.check(concat!($name, "::forward_and_log_det"), x, c);
            let $s = self;
            $crate::bijector::sequence_and_log_det($parts, x, c, false)
        }
        fn inverse_and_log_det_given(
            &self,
            y: &DMatrix<T>,
            c: &DMatrix<T>,
        ) -> (DMatrix<T>, DVector<T>) {
            self.check(concat!($name, "::inverse_and_log_det"), y, c);
            let $s = self;
            $crate::bijector::sequence_and_log_det($parts, y, c, true)
        }
    };
}
pub(crate) use maps_of_sequence;

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
/// one method of the type, `backward_from!(name)` for
/// `fn name(&self, pass: Backward<'_, T>)` (see [`Backward`](super::pass::Backward)),
/// or from one method a direction, `backward_from!(inverse: a, forward: b)`.
macro_rules! backward_from {
    ($method:ident) => {
        $crate::bijector::fused::backward_from!(inverse: $method, forward: $method);
    };
    (inverse: $inv:ident, forward: $fwd:ident) => {
        $crate::bijector::fused::backward_from!(@one $inv, inverse_and_log_det_backward, true);
        $crate::bijector::fused::backward_from!(@one $fwd, forward_and_log_det_backward, false);
    };
    (@one $method:ident, $name:ident, $inverse:expr) => {
        $crate::bijector::fused::passes!(@backward $name, |s, input, grad_out, grad_log_det,
            grad_params| {
            s.$method($crate::bijector::pass::Backward { input, grad_out, grad_log_det,
                grad_params, inverse: $inverse })
        });
    };
}
pub(crate) use backward_from;

/// Both context-free backward passes of [`Differentiable`](super::Differentiable)
/// through the type's own `_given` ones with the empty `0 × n` context (a
/// layer written for contexts).
macro_rules! backward_through_given {
    () => {
        $crate::bijector::fused::passes!(@backward inverse_and_log_det_backward,
            |s, y, go, gl, gp| {
                let c = $crate::bijector::no_context(y.ncols());
                s.inverse_and_log_det_backward_given(y, &c, go, gl, gp, &mut c.clone())
            });
        $crate::bijector::fused::passes!(@backward forward_and_log_det_backward,
            |s, x, go, gl, gp| {
                let c = $crate::bijector::no_context(x.ncols());
                s.forward_and_log_det_backward_given(x, &c, go, gl, gp, &mut c.clone())
            });
    };
}
pub(crate) use backward_through_given;

/// Both data set-up methods of [`Differentiable`](super::Differentiable)
/// from the one under contexts, `prepare_from_given!(|s, y, c, stage| body)`
/// (`s` the receiver): the context-free one passes the empty `0 × n`
/// context.
macro_rules! prepare_from_given {
    (|$s:ident, $y:ident, $c:ident, $stage:ident| $body:expr) => {
        fn prepare_with_data(
            &mut self,
            y: &DMatrix<T>,
            stage: $crate::bijector::DataStage,
        ) -> DMatrix<T> {
            self.prepare_with_data_given(y, &$crate::bijector::no_context(y.ncols()), stage)
        }
        fn prepare_with_data_given(
            &mut self,
            $y: &DMatrix<T>,
            $c: &DMatrix<T>,
            $stage: $crate::bijector::DataStage,
        ) -> DMatrix<T> {
            let $s = self;
            $body
        }
    };
}
pub(crate) use prepare_from_given;
