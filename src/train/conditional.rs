//! Maximum-likelihood fitting of conditional densities `p(x | c)` from
//! paired data.

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::density::mean_log_prob_and_grad_given;
use super::{FitEvent, FitOptions, FitReport, TrainableDensity, fit_with_observer};
use crate::bijector::DataStage;
use crate::bijector::Differentiable;
use crate::conditional::{split_context, stack_context};
use crate::distribution::{Distribution, TransformedDistribution};
use crate::{Error, Real};

/// A conditional density with trainable parameters, as
/// [`fit_conditional`] sees it: the conditional twin of
/// [`TrainableDensity`].
pub trait TrainableConditionalDensity<T: Real>: Distribution<T> {
    /// Number of trainable parameters.
    fn num_params(&self) -> usize;
    /// Visits the flat parameter vector slice by slice.
    fn visit_params(&self, f: &mut dyn FnMut(&[T]));
    /// Mutable version; call [`TrainableConditionalDensity::params_changed`] afterwards.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T]));
    /// Restores invariants after a parameter update (MADE masks).
    fn params_changed(&mut self);
    /// Training or evaluation behaviour (batch normalisation).
    fn set_training(&mut self, training: bool);
    /// Data-dependent set-up before (ActNorm) or after (batch norm) fitting.
    fn prepare_with_data(&mut self, x: &DMatrix<T>, c: &DMatrix<T>, stage: DataStage);
    /// The mean of `log p(x | c)` over the batch; **adds** its gradient with
    /// respect to the parameters into `grad`.
    fn mean_log_prob_and_grad(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad: &mut [T],
    ) -> Result<T, Error>;

    /// Folds per-dimension standardisations of the samples and of the
    /// contexts into the model. Default: unsupported.
    fn standardize_from(&mut self, _x: &DMatrix<T>, _c: &DMatrix<T>) -> Result<(), Error> {
        Err(Error::Unsupported {
            context: "TrainableConditionalDensity::standardize_from".into(),
            reason: "this model cannot fold a data standardisation into itself; use a ConditionalFlowModel".into(),
        })
    }

    /// The model's complete saved form (for checkpoints), if it has one.
    fn save_state(&self) -> Option<String> {
        None
    }

    /// Restores a form written by [`TrainableConditionalDensity::save_state`].
    fn restore_state(&mut self, _saved: &str) -> Result<(), Error> {
        Err(Error::Unsupported {
            context: "TrainableConditionalDensity::restore_state".into(),
            reason: "this model cannot be restored from a checkpoint; use a ConditionalFlowModel"
                .into(),
        })
    }

    /// [`TrainableConditionalDensity::restore_state`] from the field `model`
    /// of the checkpoint file `checkpoint`, with errors naming both (see
    /// [`TrainableDensity::restore_checkpoint_state`]).
    fn restore_checkpoint_state(&mut self, saved: &str, checkpoint: &str) -> Result<(), Error> {
        self.restore_state(saved).map_err(|e| Error::Format {
            location: format!("{checkpoint}, field `model`"),
            reason: e.to_string(),
        })
    }

    /// The smallest batch the model can be trained on (see
    /// [`TrainableDensity::min_batch_size`]). Default: 1.
    fn min_batch_size(&self) -> usize {
        1
    }
}

impl<T: Real, D: Distribution<T>, B: Differentiable<T>> TrainableConditionalDensity<T>
    for TransformedDistribution<T, D, B>
{
    fn num_params(&self) -> usize {
        TrainableDensity::num_params(self)
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        TrainableDensity::visit_params(self, f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        TrainableDensity::visit_params_mut(self, f)
    }
    fn params_changed(&mut self) {
        self.bijector_mut().params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.bijector_mut().set_training(training)
    }
    fn prepare_with_data(&mut self, x: &DMatrix<T>, c: &DMatrix<T>, stage: DataStage) {
        let _ = self.bijector_mut().prepare_with_data_given(x, c, stage);
    }
    fn mean_log_prob_and_grad(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad: &mut [T],
    ) -> Result<T, Error> {
        let mut gc = DMatrix::zeros(c.nrows(), c.ncols());
        mean_log_prob_and_grad_given(self.base(), self.bijector(), x, c, grad, &mut gc)
    }
}

/// [`fit_conditional_with_observer`] without an observer.
pub fn fit_conditional<T: Real, M: TrainableConditionalDensity<T>>(
    model: &mut M,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    options: &FitOptions<T>,
) -> Result<FitReport, Error> {
    fit_conditional_with_observer(model, x, c, options, &mut |_| true)
}

/// Fits `p(x | c)` to the pairs `(x_j, c_j)` (column `j` of `x`, `D × n`, and
/// of `c`, `C × n`) by maximum likelihood, with everything
/// [`fit`](super::fit) offers (it runs the same loop on the stacked pairs
/// `[x; c]`): the optimiser of [`FitOptions::optimizer`], mini-batches (pairs
/// stay together), epochs, validation and early stopping, checkpoints,
/// standardisation, the observer, and the same errors.
///
/// [`Validation::Data`](super::Validation::Data) holds the validation
/// samples **with their contexts stacked below** (`(D + C) × m`, see
/// [`stack_context`]); [`Validation::Fraction`](super::Validation::Fraction)
/// holds out whole pairs. With `options.standardize`, both the samples and
/// the contexts are standardised per dimension (the context's
/// standardisation is a change of the conditioner's input and leaves the
/// density of `x` as it is).
///
/// Errors if `x` and `c` have different numbers of columns, `c` has the
/// wrong number of rows, or either holds a non-finite value.
pub fn fit_conditional_with_observer<T: Real, M: TrainableConditionalDensity<T>>(
    model: &mut M,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    options: &FitOptions<T>,
    observer: &mut dyn FnMut(&FitEvent) -> bool,
) -> Result<FitReport, Error> {
    let (dim, context_dim) = (model.dim(), model.context_dim());
    check_pairs("fit_conditional", "training data", x, c, dim, context_dim)?;
    let stacked = stack_context(x, c);
    let mut paired = Paired {
        model,
        dim,
        context_dim,
        scalar: std::marker::PhantomData,
    };
    fit_with_observer(&mut paired, &stacked, options, observer)
}

/// Checks a paired data set: shapes and finite values, with messages that
/// say which of the two is wrong.
pub(crate) fn check_pairs<T: Real>(
    context: &str,
    what: &str,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    dim: usize,
    context_dim: usize,
) -> Result<(), Error> {
    use crate::error::check;
    check::same_dim(context, &format!("{what} (rows of x)"), dim, x.nrows())?;
    check::same_dim(
        context,
        &format!("{what} (rows of the context)"),
        context_dim,
        c.nrows(),
    )?;
    check::same_dim(
        context,
        &format!("{what} (contexts, one per sample)"),
        x.ncols(),
        c.ncols(),
    )?;
    for (name, m) in [("x", x), ("context", c)] {
        if let Some(k) = m.iter().position(|v| !v.is_finite()) {
            let (i, j) = (k % m.nrows(), k / m.nrows());
            return Err(check::invalid(
                context,
                &format!("{what}: {name}[({i}, {j})]"),
                "finite",
                m[(i, j)],
            ));
        }
    }
    Ok(())
}

/// A conditional model seen by `fit` as a density of the stacked `[x; c]`
/// (its `log_prob` is `log p(x | c)`; `fit` never samples it).
struct Paired<'a, T: Real, M: TrainableConditionalDensity<T>> {
    model: &'a mut M,
    dim: usize,
    context_dim: usize,
    scalar: std::marker::PhantomData<fn() -> T>,
}

impl<T: Real, M: TrainableConditionalDensity<T>> std::fmt::Debug for Paired<'_, T, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paired")
            .field("model", &self.model)
            .finish()
    }
}

impl<T: Real, M: TrainableConditionalDensity<T>> Paired<'_, T, M> {
    fn split(&self, xc: &DMatrix<T>) -> (DMatrix<T>, DMatrix<T>) {
        split_context(xc, self.dim)
    }
}

impl<T: Real, M: TrainableConditionalDensity<T>> Distribution<T> for Paired<'_, T, M> {
    fn dim(&self) -> usize {
        self.dim + self.context_dim
    }
    fn log_prob(&self, xc: &DMatrix<T>) -> DVector<T> {
        let (x, c) = self.split(xc);
        self.model.log_prob_given(&x, &c)
    }
    fn sample(&self, _n: usize, _rng: &mut dyn Rng) -> DMatrix<T> {
        unreachable!("fitting never samples the model")
    }
}

impl<T: Real, M: TrainableConditionalDensity<T>> TrainableDensity<T> for Paired<'_, T, M> {
    fn num_params(&self) -> usize {
        self.model.num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.model.visit_params(f)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.model.visit_params_mut(f)
    }
    fn params_changed(&mut self) {
        self.model.params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.model.set_training(training)
    }
    fn prepare_with_data(&mut self, xc: &DMatrix<T>, stage: DataStage) {
        let (x, c) = self.split(xc);
        self.model.prepare_with_data(&x, &c, stage)
    }
    fn mean_log_prob_and_grad(&self, xc: &DMatrix<T>, grad: &mut [T]) -> Result<T, Error> {
        let (x, c) = self.split(xc);
        self.model.mean_log_prob_and_grad(&x, &c, grad)
    }
    fn standardize_from(&mut self, xc: &DMatrix<T>) -> Result<(), Error> {
        let (x, c) = self.split(xc);
        self.model.standardize_from(&x, &c)
    }
    fn save_state(&self) -> Option<String> {
        self.model.save_state()
    }
    fn restore_state(&mut self, saved: &str) -> Result<(), Error> {
        self.model.restore_state(saved)
    }
    fn restore_checkpoint_state(&mut self, saved: &str, checkpoint: &str) -> Result<(), Error> {
        self.model.restore_checkpoint_state(saved, checkpoint)
    }
    fn min_batch_size(&self) -> usize {
        self.model.min_batch_size()
    }
}
