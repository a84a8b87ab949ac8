//! Trainable numbers: the one parameter trait shared by layers
//! ([`Differentiable`](crate::bijector::Differentiable)), bases
//! ([`TrainableBase`](crate::distribution::TrainableBase)) and models
//! ([`TrainableDensity`](crate::train::TrainableDensity)).

use crate::{Error, Real};

/// The trainable parameters of a layer, a base or a model, presented as a
/// sequence of flat slices, and the state and modes that go with them.
///
/// [`visit_params`](Parameters::visit_params) presents the parameters, in a
/// fixed order, as slices whose concatenation is "the" flat parameter vector
/// of length [`num_params`](Parameters::num_params); gradient buffers use
/// the same order. A combinator (a chain, a flow, a model) presents its
/// parts' slices one after the other. Every method has a default for a
/// parameter-free type (no parameters, no state, nothing to restore), so
/// such a type implements the trait with an empty block.
///
/// ```
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut flow = flow!(maf(2, hidden = 4) >> actnorm).build::<f64>(2, &mut rng)?;
/// let p = flow.params_to_vec();
/// assert_eq!(p.len(), flow.num_params());
/// flow.set_params(&vec![0.0; p.len()])?; // and the MADE masks are restored
/// assert!(flow.params_to_vec().iter().all(|v| *v == 0.0));
/// assert!(Parameters::<f64>::params_to_vec(&Exp).is_empty()); // parameter-free
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait Parameters<T: Real> {
    /// Total number of trainable parameters. Default: 0.
    fn num_params(&self) -> usize {
        0
    }

    /// Calls `f` on each contiguous parameter slice, in the fixed order that
    /// defines the flat parameter vector. Default: no slice.
    fn visit_params(&self, _f: &mut dyn FnMut(&[T])) {}

    /// Mutable version of [`visit_params`](Parameters::visit_params), same
    /// order. Call [`params_changed`](Parameters::params_changed) after
    /// writing (the provided [`set_params`](Parameters::set_params) does).
    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut [T])) {}

    /// Visits the non-parameter **state** (batch-normalisation statistics,
    /// ActNorm's initialised flag as 0/1), which a saved model stores beside
    /// the parameters. Default: none.
    fn visit_state(&self, _f: &mut dyn FnMut(&[T])) {}

    /// Mutable version of [`visit_state`](Parameters::visit_state).
    fn visit_state_mut(&mut self, _f: &mut dyn FnMut(&mut [T])) {}

    /// Restores invariants after the parameters were written from outside
    /// (a MADE re-zeroes its masked weights). Default: nothing.
    fn params_changed(&mut self) {}

    /// Switches between training and evaluation behaviour (batch
    /// normalisation uses batch statistics in training mode). Default: nothing.
    fn set_training(&mut self, _training: bool) {}

    /// The flat parameter vector (a copy).
    fn params_to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.num_params());
        self.copy_params_into(&mut out);
        out
    }

    /// The flat parameter vector into `out` (resized; no allocation once sized).
    fn copy_params_into(&self, out: &mut Vec<T>) {
        out.clear();
        self.visit_params(&mut |s| out.extend_from_slice(s));
    }

    /// Overwrites the flat parameter vector and calls
    /// [`params_changed`](Parameters::params_changed). Errors if `values`
    /// has the wrong length.
    fn set_params(&mut self, values: &[T]) -> Result<(), Error> {
        let n = self.num_params();
        if values.len() != n {
            return Err(Error::DimensionMismatch {
                context: "Parameters::set_params".into(),
                argument: "values".into(),
                expected: n,
                got: values.len(),
            });
        }
        let mut off = 0;
        self.visit_params_mut(&mut |s| {
            s.copy_from_slice(&values[off..off + s.len()]);
            off += s.len();
        });
        self.params_changed();
        Ok(())
    }

    /// [`set_params`](Parameters::set_params) for a vector known to have the
    /// right length.
    ///
    /// # Panics
    /// If `values` has the wrong length.
    fn load_params(&mut self, values: &[T]) {
        if let Err(e) = self.set_params(values) {
            panic!("load_params: {e}");
        }
    }
}

/// Every method of [`Parameters`] handed to another value that has them (a
/// wrapper's inner layer): `parameters_by_delegate!(s => target, target_mut)`
/// with `target` an expression in `s` (the receiver) giving `&impl
/// Parameters<T>` and `target_mut` one giving `&mut impl Parameters<T>`.
macro_rules! parameters_by_delegate {
    ($s:ident => $target:expr, $target_mut:expr) => {
        fn num_params(&self) -> usize {
            let $s = self;
            $crate::Parameters::<T>::num_params($target)
        }
        fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
            let $s = self;
            $crate::Parameters::<T>::visit_params($target, f)
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
            let $s = self;
            $crate::Parameters::<T>::visit_params_mut($target_mut, f)
        }
        fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
            let $s = self;
            $crate::Parameters::<T>::visit_state($target, f)
        }
        fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
            let $s = self;
            $crate::Parameters::<T>::visit_state_mut($target_mut, f)
        }
        fn params_changed(&mut self) {
            let $s = self;
            $crate::Parameters::<T>::params_changed($target_mut)
        }
        fn set_training(&mut self, training: bool) {
            let $s = self;
            $crate::Parameters::<T>::set_training($target_mut, training)
        }
    };
}
pub(crate) use parameters_by_delegate;

/// The methods of [`Parameters`] for a value whose parameters are one
/// buffer held elsewhere (a layer's conditioner network):
/// `parameters_of_buffer!(s => slice, slice_mut)` with `slice` and
/// `slice_mut` expressions in `s` (the receiver).
macro_rules! parameters_of_buffer {
    ($s:ident => $slice:expr, $slice_mut:expr) => {
        fn num_params(&self) -> usize {
            let $s = self;
            $slice.len()
        }
        fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
            let $s = self;
            f($slice)
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
            let $s = self;
            f($slice_mut)
        }
    };
}
pub(crate) use parameters_of_buffer;
