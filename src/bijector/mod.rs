//! Bijectors: invertible, differentiable maps with tractable log-determinants.
//!
//! Conventions (see `docs/concepts.md`):
//! - **forward** is the generative direction, base → data (sampling);
//!   **inverse** is the density direction, data → base.
//! - A batch is a `D × n` matrix, one column per sample; per-sample log-dets
//!   are a length-`n` vector.
//! - `forward_log_det_jacobian(x) = log|det ∂f/∂x|` and
//!   `inverse_log_det_jacobian(y) = −forward_log_det_jacobian(f⁻¹(y))`.

use std::fmt::Debug;
use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use crate::{Error, Real};

mod act_norm;
mod additive_coupling;
mod affine_coupling;
mod autoregressive;
mod batch_norm;
mod blockwise;
mod bnaf;
mod chain;
mod circular_spline_coupling;
mod coupling;
mod coupling_mask;
mod differentiable;
mod exp;
pub(crate) mod fused;
mod iaf;
mod identity;
mod invert;
mod leaky_relu;
mod lu_linear;
mod maf;
mod naf;
mod ordered;
pub(crate) mod pass;
mod permute;
mod planar;
mod power;
mod radial;
mod reciprocal;
mod root;
mod rq_spline;
mod scalar_layer;
mod scale;
mod scale_tril;
mod shift;
mod sigmoid;
mod soft_clip;
mod softplus;
mod spline_autoregressive;
mod spline_coupling;
mod sylvester;
mod tanh;
pub mod transformer;

pub use act_norm::ActNorm;
pub use additive_coupling::AdditiveCoupling;
pub use affine_coupling::AffineCoupling;
pub use autoregressive::Autoregressive;
pub use batch_norm::BatchNormalization;
pub use blockwise::Blockwise;
pub use bnaf::BlockNeuralAutoregressive;
pub use chain::Chain;
pub(crate) use chain::{sequence_and_log_det, sequence_map, sequence_through};
pub use circular_spline_coupling::CircularSplineCoupling;
pub use coupling::Coupling;
pub use coupling_mask::CouplingMask;
pub use differentiable::{Continuation, DataStage, Differentiable};
pub(crate) use differentiable::{
    deep_copy_part, differentiable_hooks, each_trainable_mut, not_differentiable,
    parameter_free_differentiable, parameters_of_parts, single_buffer, through_sequence,
    unique_part, zip_elementwise,
};
pub use exp::Exp;
pub use iaf::InverseAutoregressiveFlow;
pub use identity::Identity;
pub use invert::Invert;
pub use leaky_relu::LeakyRelu;
pub use lu_linear::LuLinear;
pub use maf::MaskedAutoregressiveFlow;
pub use naf::NeuralAutoregressive;
pub use ordered::Ordered;
pub use permute::Permute;
pub use planar::Planar;
pub use power::Power;
pub use radial::Radial;
pub use reciprocal::Reciprocal;
pub use rq_spline::RationalQuadraticSpline;
pub use scalar_layer::{Elementwise, ScalarBijector};
pub use scale::Scale;
pub use scale_tril::ScaleTriL;
pub use shift::Shift;
pub use sigmoid::Sigmoid;
pub use soft_clip::SoftClip;
pub use softplus::Softplus;
pub use spline_autoregressive::SplineAutoregressive;
pub use spline_coupling::SplineCoupling;
pub use sylvester::Sylvester;
pub use tanh::Tanh;

/// An invertible map `f: R^D → R^D` with a tractable log-determinant.
///
/// Method names and meanings follow TensorFlow Probability. Inputs are `D × n`
/// batches (one column per sample). Implementors provide `forward`, `inverse`
/// and `forward_log_det_jacobian`; the other three have defaults derived from
/// those, which implementors override when a fused or direct form is cheaper
/// or more accurate. `dim` defaults to `None` ("works for any dimension").
///
/// The trait is object safe: `Box<dyn Bijector<T>>` is itself a bijector.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
///
/// // y = exp(x), then y + 1: a chain applies its parts first to last.
/// let b = Exp.then(Shift::new(DVector::from_vec(vec![1.0_f64]))?);
/// let x = DMatrix::from_row_slice(1, 2, &[0.0, 1.0]);
/// let y = b.forward(&x);
/// assert!((y[(0, 1)] - (1.0_f64.exp() + 1.0)).abs() < 1e-12);
/// // log|dy/dx| = x for exp; the shift adds nothing.
/// assert!((b.forward_log_det_jacobian(&x)[1] - 1.0).abs() < 1e-12);
/// assert!((b.inverse(&y) - x).amax() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait Bijector<T: Real>: Debug + Send + Sync {
    /// Applies `f` column by column: base → data.
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T>;

    /// Applies `f⁻¹` column by column: data → base. Points outside the image of
    /// `f` give non-finite coordinates (which `TransformedDistribution` turns
    /// into a log-density of `-inf`).
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T>;

    /// `log|det ∂f/∂x|` for every column of `x`.
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T>;

    /// `log|det ∂f⁻¹/∂y| = −forward_log_det_jacobian(f⁻¹(y))` for every column of `y`.
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        -self.forward_log_det_jacobian(&self.inverse(y))
    }

    /// `(f(x), log|det ∂f/∂x|)` in one call.
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        (self.forward(x), self.forward_log_det_jacobian(x))
    }

    /// `(f⁻¹(y), log|det ∂f⁻¹/∂y|)` in one call.
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let x = self.inverse(y);
        let ldj = -self.forward_log_det_jacobian(&x);
        (x, ldj)
    }

    /// The event dimension this bijector requires, or `None` if it acts on any
    /// dimension (elementwise maps, permutations are fixed-size and say so).
    fn dim(&self) -> Option<usize> {
        None
    }

    /// The dimension `C` of the context this map is conditioned on: `0` (the
    /// default) for an unconditional map, which ignores any context it is
    /// given. A conditioned map `x ↦ f(x; c)` (a MAF whose MADE also reads
    /// `c`) returns `C ≥ 1` and implements the `_given` methods; its
    /// context-free methods then panic with a message naming them.
    fn context_dim(&self) -> usize {
        0
    }

    /// `(f(x; c), log|det ∂f/∂x|)` under the contexts `c` (`C × n`, column
    /// `j` the context of sample `j`). The log-determinant is in `x` at fixed
    /// `c`: the context is not transformed. Default (an unconditional map):
    /// [`forward_and_log_det`](Bijector::forward_and_log_det), ignoring `c`.
    fn forward_and_log_det_given(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
    ) -> (DMatrix<T>, DVector<T>) {
        let _ = c;
        self.forward_and_log_det(x)
    }

    /// `(f⁻¹(y; c), log|det ∂f⁻¹/∂y|)` under the contexts `c`. Default:
    /// [`inverse_and_log_det`](Bijector::inverse_and_log_det), ignoring `c`.
    fn inverse_and_log_det_given(
        &self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
    ) -> (DMatrix<T>, DVector<T>) {
        let _ = c;
        self.inverse_and_log_det(y)
    }

    /// `f(x; c)`. Default: [`forward`](Bijector::forward) for an
    /// unconditional map, else the first half of
    /// [`forward_and_log_det_given`](Bijector::forward_and_log_det_given).
    fn forward_given(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        if self.context_dim() == 0 {
            self.forward(x)
        } else {
            self.forward_and_log_det_given(x, c).0
        }
    }

    /// `f⁻¹(y; c)`. Default: [`inverse`](Bijector::inverse) for an
    /// unconditional map, else the first half of
    /// [`inverse_and_log_det_given`](Bijector::inverse_and_log_det_given).
    fn inverse_given(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        if self.context_dim() == 0 {
            self.inverse(y)
        } else {
            self.inverse_and_log_det_given(y, c).0
        }
    }

    /// This bijector as a [`Differentiable`] one, if it is trainable (every
    /// built-in is). A type that implements [`Differentiable`] says so with
    /// [`trainable!`](crate::trainable) in its `impl Bijector`, which writes
    /// this method and [`as_differentiable_mut`](Bijector::as_differentiable_mut);
    /// `testing::check_gradients` catches a type that leaves it out.
    fn as_differentiable(&self) -> Option<&dyn Differentiable<T>> {
        None
    }

    /// Mutable version of [`Bijector::as_differentiable`].
    fn as_differentiable_mut(&mut self) -> Option<&mut dyn Differentiable<T>> {
        None
    }
}

macro_rules! forward_bijector_impl {
    ($ptr:ty $(, $extra:item)*) => {
        impl<T: Real, B: Bijector<T> + ?Sized> Bijector<T> for $ptr {
            fused::maps_by_delegate!(s => (**s));
            fn as_differentiable(&self) -> Option<&dyn Differentiable<T>> {
                (**self).as_differentiable()
            }
            $($extra)*
        }
    };
}

forward_bijector_impl!(
    Box<B>,
    fn as_differentiable_mut(&mut self) -> Option<&mut dyn Differentiable<T>> {
        (**self).as_differentiable_mut()
    }
);

impl<T: Real, B: Bijector<T> + ?Sized> crate::Parameters<T> for Box<B> {
    fn num_params(&self) -> usize {
        (**self).as_differentiable().map_or(0, |d| d.num_params())
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        if let Some(d) = (**self).as_differentiable() {
            d.visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        if let Some(d) = (**self).as_differentiable_mut() {
            d.visit_params_mut(f);
        }
    }
    fn params_changed(&mut self) {
        if let Some(d) = (**self).as_differentiable_mut() {
            d.params_changed();
        }
    }
    fn set_training(&mut self, training: bool) {
        if let Some(d) = (**self).as_differentiable_mut() {
            d.set_training(training);
        }
    }
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        if let Some(d) = (**self).as_differentiable() {
            d.visit_state(f);
        }
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        if let Some(d) = (**self).as_differentiable_mut() {
            d.visit_state_mut(f);
        }
    }
}

impl<T: Real, B: Bijector<T> + ?Sized> Differentiable<T> for Box<B> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        (**self)
            .as_differentiable()
            .expect("Box::boxed_clone: the boxed bijector is not trainable")
            .boxed_clone()
    }
    fused::prepare_from_given!(|s, y, c, stage| match (**s).as_differentiable_mut() {
        Some(d) => d.prepare_with_data_given(y, c, stage),
        None => (**s).inverse_given(y, c),
    });
    fused::training_by_delegate!(s => boxed_part(&**s, "Box"));
}

/// The boxed bijector as a trainable one, or the error naming it.
fn boxed_part<'a, T: Real, B: Bijector<T> + ?Sized>(
    b: &'a B,
    context: &str,
) -> Result<&'a dyn Differentiable<T>, Error> {
    b.as_differentiable()
        .ok_or_else(|| not_differentiable(context, &format!("the boxed bijector ({b:?})")))
}

forward_bijector_impl!(Arc<B>);
forward_bijector_impl!(&B);

/// Composition in code: `a.then(b)` is the chain "a, then b" (forward
/// direction), the same as `a >> b` in the flow DSL.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
///
/// let b = Scale::new(DVector::from_vec(vec![2.0_f64]))?
///     .then(Shift::new(DVector::from_vec(vec![3.0]))?);
/// let y = b.forward(&DMatrix::from_element(1, 1, 1.0));
/// assert_eq!(y[(0, 0)], 5.0); // 2·1, then + 3
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait BijectorExt<T: Real>: Bijector<T> + Sized + 'static {
    /// The chain `self, then next`.
    ///
    /// # Panics
    /// If both have a fixed dimension and the dimensions differ; use
    /// [`BijectorExt::try_then`] or [`Chain::new`] to get an [`Error`] instead.
    fn then<B: Bijector<T> + 'static>(self, next: B) -> Chain<T> {
        match self.try_then(next) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// The chain `self, then next`, or an error if their dimensions differ.
    fn try_then<B: Bijector<T> + 'static>(self, next: B) -> Result<Chain<T>, Error> {
        Chain::new(vec![Box::new(self), Box::new(next)])
    }
}

impl<T: Real, B: Bijector<T> + Sized + 'static> BijectorExt<T> for B {}

pub use crate::batch::no_context;
/// The row check of every bijector, from the bottom layer (`crate::batch`).
pub(crate) use crate::batch::{assert_pair, assert_rows};

/// Per-column sum of `g` applied to every entry: the log-det of an elementwise map.
#[inline]
pub(crate) fn elementwise_log_det<T: Real>(x: &DMatrix<T>, g: impl Fn(T) -> T) -> DVector<T> {
    DVector::from_iterator(
        x.ncols(),
        x.column_iter()
            .map(|c| c.iter().fold(T::zero(), |acc, &v| acc + g(v))),
    )
}

/// A copy of `m` to write the outputs into, or an empty matrix when only
/// the log-determinants are wanted.
pub(crate) fn copy_if<T: Real>(m: &DMatrix<T>, wanted: bool) -> DMatrix<T> {
    if wanted {
        m.clone()
    } else {
        DMatrix::zeros(0, 0)
    }
}

/// The four maps of [`Bijector`] for a parameter-free elementwise bijector,
/// from its scalar forward map, inverse and log-derivatives:
/// `elementwise_maps!(forward: |v| …, inverse: |v| …, forward_log_det: |v| …,
/// inverse_log_det: |v| …)` inside the `impl Bijector<T>`.
macro_rules! elementwise_maps {
    (forward: |$a:ident| $f:expr, inverse: |$b:ident| $i:expr,
     forward_log_det: |$c:ident| $fl:expr, inverse_log_det: |$d:ident| $il:expr $(,)?) => {
        fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
            x.map(|$a| $f)
        }
        fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
            y.map(|$b| $i)
        }
        fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
            $crate::bijector::elementwise_log_det(x, |$c| $fl)
        }
        fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
            $crate::bijector::elementwise_log_det(y, |$d| $il)
        }
    };
}
pub(crate) use elementwise_maps;
