//! Trainability: flat parameters and hand-written reverse-mode passes.

use nalgebra::{DMatrix, DVector};

use super::Bijector;
use super::pass::Pass;
use crate::Parameters;
use crate::{Error, Real};

/// When [`Differentiable::prepare_with_data`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStage {
    /// Before fitting: data-dependent initialisation (ActNorm sets its scale
    /// and shift so the data it sees comes out standardised, if it has not been
    /// initialised yet).
    Initialize,
    /// After fitting: statistics of the full training set (batch normalisation
    /// stores the mean and variance of the data it sees, as the MAF paper does).
    Finalize,
}

/// A bijector that can be trained: its parameters (the [`Parameters`] trait,
/// shared with bases and models) and the reverse-mode (backward) passes of
/// its two fused calls.
///
/// **Parameters.** Every built-in layer keeps its parameters in one contiguous
/// buffer; a combinator (`Chain`, `Invert`, `Blockwise`, a built flow) holds
/// several, presented in a fixed order by [`Parameters::visit_params`].
/// Gradient buffers use the same order. Parameter-free bijectors have
/// `num_params() == 0` and still pass gradients through.
///
/// **Backward passes.** For the map `y ↦ (x, l) = inverse_and_log_det(y)` and
/// a scalar loss `L(x, l)`, [`inverse_and_log_det_backward`](Differentiable::inverse_and_log_det_backward)
/// takes `y` and the cotangents `∂L/∂x` (`D × n`) and `∂L/∂l` (`n`), **adds**
/// `∂L/∂θ` into `grad_params`, and returns `∂L/∂y`. The forward direction is
/// the same with the roles of `x` and `y` swapped. Backward passes recompute
/// what they need from the input; nothing is cached between calls.
///
/// Autoregressive layers differentiate their parallel direction; their
/// sequential direction returns [`Error::Unsupported`].
///
/// Every implementation is checked against central finite differences by
/// `normflow::testing::check_gradients`.
pub trait Differentiable<T: Real>: Bijector<T> + Parameters<T> {
    /// Reverse mode of `inverse_and_log_det` at `y` (see the trait docs).
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error>;

    /// Reverse mode of `forward_and_log_det` at `x` (see the trait docs).
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error>;

    /// Fused evaluation and reverse mode of `inverse_and_log_det` (one
    /// training step's worth of work for this layer): computes `(x, l)` at
    /// `y`, asks `rest(x, l)` — everything downstream of this layer, up to
    /// the loss — for the cotangents `(∂L/∂x, ∂L/∂l)`, **adds** `∂L/∂θ` into
    /// `grad_params` and returns `∂L/∂y`.
    ///
    /// The result equals [`inverse_and_log_det`](Bijector::inverse_and_log_det)
    /// followed by [`inverse_and_log_det_backward`](Differentiable::inverse_and_log_det_backward)
    /// (the default does exactly that); layers with a conditioner network
    /// override it to evaluate the network once and keep its activations for
    /// the backward pass, and combinators chain their parts' fused calls, so a
    /// whole flow's gradient costs one forward and one backward pass.
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        let (x, l) = self.inverse_and_log_det(y);
        let (gx, gl) = rest(&x, &l)?;
        self.inverse_and_log_det_backward(y, &gx, &gl, grad_params)
    }

    /// Fused evaluation and reverse mode of `forward_and_log_det`; see
    /// [`inverse_and_log_det_through`](Differentiable::inverse_and_log_det_through).
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        let (y, l) = self.forward_and_log_det(x);
        let (gy, gl) = rest(&y, &l)?;
        self.forward_and_log_det_backward(x, &gy, &gl, grad_params)
    }

    /// Reverse mode of [`inverse_and_log_det_given`](Bijector::inverse_and_log_det_given)
    /// at `(y, c)`: as [`inverse_and_log_det_backward`](Differentiable::inverse_and_log_det_backward),
    /// and also **adds** `∂L/∂c` into `grad_context` (`C × n`; an encoder
    /// upstream of the context needs it). Default (an unconditional layer):
    /// the context-free pass; the context gets no gradient.
    fn inverse_and_log_det_backward_given(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        let _ = (c, grad_context);
        self.inverse_and_log_det_backward(y, grad_x, grad_log_det, grad_params)
    }

    /// Reverse mode of [`forward_and_log_det_given`](Bijector::forward_and_log_det_given);
    /// see [`inverse_and_log_det_backward_given`](Differentiable::inverse_and_log_det_backward_given).
    fn forward_and_log_det_backward_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
    ) -> Result<DMatrix<T>, Error> {
        let _ = (c, grad_context);
        self.forward_and_log_det_backward(x, grad_y, grad_log_det, grad_params)
    }

    /// The fused pass [`inverse_and_log_det_through`](Differentiable::inverse_and_log_det_through)
    /// under the contexts `c`, adding `∂L/∂c` into `grad_context`. Default:
    /// the context-free fused pass for an unconditional layer, else
    /// evaluation followed by
    /// [`inverse_and_log_det_backward_given`](Differentiable::inverse_and_log_det_backward_given).
    fn inverse_and_log_det_through_given(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        through_given_by_parts(
            self,
            Pass {
                input: y,
                c,
                grad_params,
                grad_context,
                rest,
                inverse: true,
            },
        )
    }

    /// The fused pass of the forward direction under the contexts `c`; see
    /// [`inverse_and_log_det_through_given`](Differentiable::inverse_and_log_det_through_given).
    fn forward_and_log_det_through_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        through_given_by_parts(
            self,
            Pass {
                input: x,
                c,
                grad_params,
                grad_context,
                rest,
                inverse: false,
            },
        )
    }

    /// [`prepare_with_data`](Differentiable::prepare_with_data) with the data's
    /// contexts: returns `inverse_given(y, c)`. Default: the context-free
    /// set-up for an unconditional layer, else no adaptation.
    fn prepare_with_data_given(
        &mut self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        stage: DataStage,
    ) -> DMatrix<T> {
        if self.context_dim() == 0 {
            self.prepare_with_data(y, stage)
        } else {
            self.inverse_given(y, c)
        }
    }

    /// A boxed deep copy (every trainable type is `Clone`; implement as
    /// `Box::new(self.clone())`). Combinators that share parts between clones
    /// use it to copy a part before its parameters are written.
    fn boxed_clone(&self) -> Box<dyn Bijector<T>>;

    /// Data-dependent set-up: `y` is data as it arrives at this layer's output
    /// side (the data side); the layer adapts to it (see [`DataStage`]) and
    /// returns `inverse(y)` so that a chain can pass the data on. Default: no
    /// adaptation.
    fn prepare_with_data(&mut self, y: &DMatrix<T>, _stage: DataStage) -> DMatrix<T> {
        self.inverse(y)
    }
}

/// Everything downstream of a layer in a fused pass
/// ([`Differentiable::inverse_and_log_det_through`]): given the layer's
/// outputs `(z, l)` (`D × n` values and their `n` log-determinants), it
/// returns the cotangents `(∂L/∂z, ∂L/∂l)` of the loss.
pub type Continuation<'a, T> =
    dyn FnMut(&DMatrix<T>, &DVector<T>) -> Result<(DMatrix<T>, DVector<T>), Error> + 'a;

/// The fused pass of a sequence of parts, in the order they are applied
/// (each with its own gradient slice), all under the contexts `c` (`0 × n`
/// for an unconditional sequence): part 0 runs on `input`, its fused call's
/// continuation runs the remaining parts and finally `rest` on the last
/// output, with the log-determinants summed along the way (`acc` is the sum
/// so far). Returns `(∂L/∂input, ∂L/∂l)` and adds every part's context
/// gradient into `grad_context`.
pub(crate) fn through_sequence<T: Real>(
    steps: &mut [(&dyn Differentiable<T>, &mut [T])],
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    acc: &DVector<T>,
    inverse: bool,
    grad_context: &mut DMatrix<T>,
    rest: &mut Continuation<'_, T>,
) -> Result<(DMatrix<T>, DVector<T>), Error> {
    let Some(((part, grads), later)) = steps.split_first_mut() else {
        return rest(input, acc);
    };
    let mut mine = DMatrix::zeros(c.nrows(), c.ncols());
    let mut grad_log_det = None;
    let g = {
        let mut next = |z: &DMatrix<T>, l: &DVector<T>| {
            let total = acc + l;
            // One level of recursion per part: keep it off the end of the stack.
            let (gz, gl) = crate::resources::grow_stack(|| {
                through_sequence(later, z, c, &total, inverse, grad_context, rest)
            })?;
            grad_log_det = Some(gl.clone());
            Ok((gz, gl))
        };
        if inverse {
            part.inverse_and_log_det_through_given(input, c, grads, &mut mine, &mut next)?
        } else {
            part.forward_and_log_det_through_given(input, c, grads, &mut mine, &mut next)?
        }
    };
    if c.nrows() > 0 {
        *grad_context += mine;
    }
    let gl = grad_log_det.expect("a fused call runs its continuation");
    Ok((g, gl))
}

/// The default fused pass under contexts of either direction: the
/// context-free fused pass for an unconditional layer, else evaluation then
/// the backward pass under the contexts.
fn through_given_by_parts<T: Real, B: Differentiable<T> + ?Sized>(
    b: &B,
    pass: Pass<'_, '_, T>,
) -> Result<DMatrix<T>, Error> {
    let (input, c, grad_params, grad_context, rest, inverse) = pass.parts();
    match (b.context_dim(), inverse) {
        (0, true) => b.inverse_and_log_det_through(input, grad_params, rest),
        (0, false) => b.forward_and_log_det_through(input, grad_params, rest),
        (_, true) => {
            let (x, l) = b.inverse_and_log_det_given(input, c);
            let (gx, gl) = rest(&x, &l)?;
            b.inverse_and_log_det_backward_given(input, c, &gx, &gl, grad_params, grad_context)
        }
        (_, false) => {
            let (y, l) = b.forward_and_log_det_given(input, c);
            let (gy, gl) = rest(&y, &l)?;
            b.forward_and_log_det_backward_given(input, c, &gy, &gl, grad_params, grad_context)
        }
    }
}

/// A part shared between clones of a combinator (`Chain`, `Blockwise`),
/// made unique before its parameters are written: copied through
/// [`Differentiable::boxed_clone`] if a clone still shares it (copy on write).
///
/// # Panics
/// If the part is shared and not trainable (nothing writes to such a part).
pub(crate) fn unique_part<T: Real>(
    part: &mut std::sync::Arc<dyn Bijector<T>>,
) -> &mut dyn Bijector<T> {
    if std::sync::Arc::get_mut(part).is_none() {
        let fresh = part
            .as_differentiable()
            .expect("only trainable parts are written to")
            .boxed_clone();
        *part = std::sync::Arc::from(fresh);
    }
    std::sync::Arc::get_mut(part).expect("the part was just made unique")
}

/// A deep copy of a shared part when it is trainable (its parameters may be
/// written later), else another reference to it (it is immutable).
pub(crate) fn deep_copy_part<T: Real>(
    part: &std::sync::Arc<dyn Bijector<T>>,
) -> std::sync::Arc<dyn Bijector<T>> {
    match part.as_differentiable() {
        Some(d) => std::sync::Arc::from(d.boxed_clone()),
        None => std::sync::Arc::clone(part),
    }
}

/// The [`Parameters`] of a combinator whose parts are shared trait objects
/// (`Chain`, `Blockwise`): `parameters_of_parts!(s => parts, parts_mut)`
/// with `parts` iterating `&Arc<dyn Bijector<T>>` and `parts_mut` iterating
/// `&mut Arc<dyn Bijector<T>>` (expressions in the receiver `s`). Parts that
/// are not trainable hold no parameters; a part shared with a clone is made
/// unique before it is written.
macro_rules! parameters_of_parts {
    ($s:ident => $parts:expr, $parts_mut:expr) => {
        fn num_params(&self) -> usize {
            let $s = self;
            $parts
                .filter_map(|p| p.as_differentiable())
                .map(|d| d.num_params())
                .sum()
        }
        fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
            let $s = self;
            for d in $parts.filter_map(|p| p.as_differentiable()) {
                d.visit_params(f);
            }
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
            let $s = self;
            $crate::bijector::each_trainable_mut($parts_mut, |d| d.visit_params_mut(f));
        }
        fn params_changed(&mut self) {
            let $s = self;
            $crate::bijector::each_trainable_mut($parts_mut, |d| d.params_changed());
        }
        fn set_training(&mut self, training: bool) {
            let $s = self;
            $crate::bijector::each_trainable_mut($parts_mut, |d| d.set_training(training));
        }
    };
}
pub(crate) use parameters_of_parts;

/// `f` on every part with parameters, each made unique first.
pub(crate) fn each_trainable_mut<'a, T: Real>(
    parts: impl Iterator<Item = &'a mut std::sync::Arc<dyn Bijector<T>>>,
    mut f: impl FnMut(&mut dyn Differentiable<T>),
) {
    for p in parts {
        if p.as_differentiable().is_some_and(|d| d.num_params() > 0) {
            f(unique_part(p)
                .as_differentiable_mut()
                .expect("a part with parameters is trainable"));
        }
    }
}

/// The error of a bijector that cannot take part in training.
pub(crate) fn not_differentiable(context: &str, what: &str) -> Error {
    Error::Unsupported {
        context: context.into(),
        reason: format!(
            "{what} is not trainable, so no gradient can pass through it: implement \
             `Differentiable` for it and put `normflow::trainable!(T);` in its `impl Bijector`, \
             or write it as a `ScalarBijector` (docs/extending.md), whose gradients are derived \
             for it"
        ),
    }
}

/// Inside an `impl Bijector<T> for X` of a type that also implements
/// [`Differentiable`]: tells the trait objects that hold it (`Chain`,
/// `Invert`, `Blockwise`, a `Box<dyn Bijector>`) that it is trainable.
/// `trainable!(f64)` names the scalar type of the impl (`trainable!(T)` in
/// a generic one). `normflow::testing::check_gradients` fails, naming this
/// macro, when a `Differentiable` type leaves it out.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::bijector::{Bijector, Chain, Differentiable};
/// use normflow::{Error, Parameters};
///
/// /// y = 2x, parameter-free, with its backward passes.
/// #[derive(Debug, Clone)]
/// struct Double;
/// impl Bijector<f64> for Double {
///     fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> { x * 2.0 }
///     fn inverse(&self, y: &DMatrix<f64>) -> DMatrix<f64> { y / 2.0 }
///     fn forward_log_det_jacobian(&self, x: &DMatrix<f64>) -> DVector<f64> {
///         DVector::from_element(x.ncols(), x.nrows() as f64 * 2f64.ln())
///     }
///     normflow::trainable!(f64);
/// }
/// impl Parameters<f64> for Double {}
/// impl Differentiable<f64> for Double {
///     fn boxed_clone(&self) -> Box<dyn Bijector<f64>> { Box::new(self.clone()) }
///     fn forward_and_log_det_backward(&self, _x: &DMatrix<f64>, gy: &DMatrix<f64>,
///         _gl: &DVector<f64>, _gp: &mut [f64]) -> Result<DMatrix<f64>, Error> { Ok(gy * 2.0) }
///     fn inverse_and_log_det_backward(&self, _y: &DMatrix<f64>, gx: &DMatrix<f64>,
///         _gl: &DVector<f64>, _gp: &mut [f64]) -> Result<DMatrix<f64>, Error> { Ok(gx / 2.0) }
/// }
///
/// let chain = Chain::new(vec![Box::new(Double) as Box<dyn Bijector<f64>>])?;
/// let x = DMatrix::from_element(1, 3, 1.0);
/// let g = chain.forward_and_log_det_backward(&x, &x, &DVector::zeros(3), &mut [])?;
/// assert_eq!(g, x * 2.0);
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! trainable {
    ($t:ty) => {
        fn as_differentiable(&self) -> Option<&dyn $crate::bijector::Differentiable<$t>> {
            Some(self)
        }
        fn as_differentiable_mut(
            &mut self,
        ) -> Option<&mut dyn $crate::bijector::Differentiable<$t>> {
            Some(self)
        }
    };
}

/// [`trainable!`](crate::trainable) for the crate's own impls, generic in `T`.
macro_rules! differentiable_hooks {
    () => {
        $crate::trainable!(T);
    };
}
pub(crate) use differentiable_hooks;

/// The methods of [`Parameters`] for a layer whose parameters are one
/// buffer (`single_buffer!(params)` names the field).
macro_rules! single_buffer {
    ($field:ident) => {
        fn num_params(&self) -> usize {
            self.$field.len()
        }
        fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
            f(&self.$field)
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
            f(&mut self.$field)
        }
    };
}
pub(crate) use single_buffer;

/// `Differentiable` for a parameter-free bijector given the input gradients of
/// both directions as closures over `(input, grad_out, grad_log_det)`.
macro_rules! parameter_free_differentiable {
    ($ty:ty, forward: |$s1:ident, $x:ident, $gy:ident, $gl:ident| $fwd:expr, inverse: |$s2:ident, $y:ident, $gx:ident, $gl2:ident| $inv:expr) => {
        impl<T: $crate::Real> $crate::Parameters<T> for $ty {
            fn num_params(&self) -> usize {
                0
            }
            fn visit_params(&self, _f: &mut dyn FnMut(&[T])) {}
            fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut [T])) {}
        }

        impl<T: $crate::Real> $crate::bijector::Differentiable<T> for $ty {
            fn boxed_clone(&self) -> Box<dyn $crate::bijector::Bijector<T>> {
                Box::new(self.clone())
            }
            fn inverse_and_log_det_backward(
                &self,
                $y: &nalgebra::DMatrix<T>,
                $gx: &nalgebra::DMatrix<T>,
                $gl2: &nalgebra::DVector<T>,
                _grad_params: &mut [T],
            ) -> Result<nalgebra::DMatrix<T>, $crate::Error> {
                #[allow(unused_variables)]
                let $s2 = self;
                Ok($inv)
            }
            fn forward_and_log_det_backward(
                &self,
                $x: &nalgebra::DMatrix<T>,
                $gy: &nalgebra::DMatrix<T>,
                $gl: &nalgebra::DVector<T>,
                _grad_params: &mut [T],
            ) -> Result<nalgebra::DMatrix<T>, $crate::Error> {
                #[allow(unused_variables)]
                let $s1 = self;
                Ok($fwd)
            }
        }
    };
}
pub(crate) use parameter_free_differentiable;

/// `out[(i, j)] = f(a[(i, j)], b[(i, j)], c[j])`: the shape of every
/// elementwise backward pass (input, output cotangent, log-det cotangent).
pub(crate) fn zip_elementwise<T: Real>(
    a: &DMatrix<T>,
    g: &DMatrix<T>,
    gl: &DVector<T>,
    f: impl Fn(T, T, T) -> T,
) -> DMatrix<T> {
    DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| f(a[(i, j)], g[(i, j)], gl[j]))
}
