//! What maximum-likelihood and variational fitting need from a model.

use nalgebra::{DMatrix, DVector};

use crate::bijector::{Bijector, DataStage, Differentiable, no_context};
use crate::conditional::split_context;
use crate::distribution::{Distribution, TransformedDistribution};
use crate::{Error, Parameters, Real};

/// A density with trainable parameters, as [`fit`](super::fit) sees it.
///
/// For a conditional density (`context_dim() = C > 0`), every batch handed
/// to these methods is the stacked `[x; c]`, `(D + C) × n` (the samples above
/// their contexts, see [`stack_context`](crate::conditional::stack_context)):
/// `fit` keeps the pairs together through shuffling, batching and the
/// validation split.
pub trait TrainableDensity<T: Real>: Distribution<T> + Parameters<T> {
    /// Data-dependent set-up before (ActNorm) or after (batch norm) fitting.
    fn prepare_with_data(&mut self, data: &DMatrix<T>, stage: DataStage);
    /// Whether [`prepare_with_data`](Self::prepare_with_data) with
    /// [`DataStage::Finalize`] can change the model (batch normalisation takes
    /// its statistics over the training data before an evaluation). `fit`
    /// skips that pass over the training data before each validation when
    /// it cannot. Default: `true`, which is always correct.
    fn finalizes_with_data(&self) -> bool {
        true
    }
    /// The mean log-density of the batch; **adds** its gradient with respect
    /// to the parameters into `grad` (length [`Parameters::num_params`](crate::Parameters::num_params)).
    fn mean_log_prob_and_grad(&self, x: &DMatrix<T>, grad: &mut [T]) -> Result<T, Error>;

    /// Folds a per-dimension standardisation of `data` into the model (used by
    /// [`FitOptions::standardize`](super::FitOptions::standardize)). Default:
    /// unsupported.
    fn standardize_from(&mut self, _data: &DMatrix<T>) -> Result<(), Error> {
        Err(Error::Unsupported {
            context: "TrainableDensity::standardize_from".into(),
            reason: "this model cannot fold a data standardisation into itself; use a FlowModel"
                .into(),
        })
    }

    /// The model's complete saved form (for checkpoints), or `None` if it
    /// cannot save itself. Default: `None`.
    fn save_state(&self) -> Option<String> {
        None
    }

    /// Restores a form written by [`TrainableDensity::save_state`].
    fn restore_state(&mut self, _saved: &str) -> Result<(), Error> {
        Err(Error::Unsupported {
            context: "TrainableDensity::restore_state".into(),
            reason: "this model cannot be restored from a checkpoint; use a FlowModel".into(),
        })
    }

    /// Restores the model saved in the checkpoint file `checkpoint` (its
    /// field `model`, written by [`TrainableDensity::save_state`]), with
    /// errors that name the checkpoint and the model's field (an error in the
    /// model's parameters is about the field `model.params` of the file).
    /// Default: [`TrainableDensity::restore_state`], its errors reported as
    /// about the field `model`.
    fn restore_checkpoint_state(&mut self, saved: &str, checkpoint: &str) -> Result<(), Error> {
        self.restore_state(saved).map_err(|e| Error::Format {
            location: format!("{checkpoint}, field `model`"),
            reason: e.to_string(),
        })
    }

    /// The smallest batch the model can be trained on: 1, or 2 for a model
    /// with a layer that estimates statistics from each batch (batch
    /// normalisation estimates a variance, which one sample cannot give).
    /// [`fit`](super::fit) refuses a smaller `batch_size` and never uses a
    /// smaller final batch on its own. Default: 1.
    fn min_batch_size(&self) -> usize {
        1
    }

    /// An error (naming the entry of `what`, "training data" or "validation
    /// data") if a batch of `data` lies outside the model's support, checked
    /// by [`fit`](super::fit) before training: a flow on the torus takes
    /// angles in `[−π, π)` only. Default: every finite batch is fine.
    fn check_support(&self, what: &str, data: &DMatrix<T>) -> Result<(), Error> {
        let _ = (what, data);
        Ok(())
    }

    /// The rows of a batch: `D`, or `D + C` for a conditional density.
    fn data_dim(&self) -> usize {
        self.dim() + self.context_dim()
    }

    /// `log p` of every column of a batch: `log p(x)`, or `log p(x | c)`
    /// of the stacked `[x; c]` for a conditional density.
    fn log_prob_of_data(&self, data: &DMatrix<T>) -> DVector<T> {
        if self.context_dim() == 0 {
            return self.log_prob(data);
        }
        let (x, c) = split_context(data, self.dim());
        self.log_prob_given(&x, &c)
    }
}

impl<T: Real, D: Distribution<T>, B: Differentiable<T>> crate::Parameters<T>
    for TransformedDistribution<T, D, B>
{
    fn num_params(&self) -> usize {
        self.bijector().num_params()
            + self
                .base()
                .as_trainable_base()
                .map_or(0, |b| b.num_params())
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        self.bijector().visit_params(f);
        if let Some(b) = self.base().as_trainable_base() {
            b.visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        self.bijector_mut().visit_params_mut(f);
        if let Some(b) = self.base_mut().as_trainable_base_mut() {
            b.visit_params_mut(f);
        }
    }
    fn params_changed(&mut self) {
        self.bijector_mut().params_changed()
    }
    fn set_training(&mut self, training: bool) {
        self.bijector_mut().set_training(training)
    }
}

/// `log p(y) = log p_base(u) + ildj(y)` with `u = f⁻¹(y)`. The flat parameter
/// vector is the bijector's, followed by the base's when the base is trainable
/// (a `GaussianMixture`: the MAF paper's MAF-MoG).
impl<T: Real, D: Distribution<T>, B: Differentiable<T>> TrainableDensity<T>
    for TransformedDistribution<T, D, B>
{
    fn prepare_with_data(&mut self, data: &DMatrix<T>, stage: DataStage) {
        let (x, c) = split_context(data, self.dim());
        let _ = self.bijector_mut().prepare_with_data_given(&x, &c, stage);
    }
    fn mean_log_prob_and_grad(&self, data: &DMatrix<T>, grad: &mut [T]) -> Result<T, Error> {
        if self.context_dim() == 0 {
            return mean_log_prob_and_grad(self.base(), self.bijector(), data, grad);
        }
        let (x, c) = split_context(data, self.dim());
        let mut gc = DMatrix::zeros(c.nrows(), c.ncols());
        mean_log_prob_and_grad_given(self.base(), self.bijector(), &x, &c, grad, &mut gc)
    }
}

/// The shared computation of [`TrainableDensity::mean_log_prob_and_grad`]
/// for a base pushed through a differentiable bijector. `grad` holds the
/// bijector's gradient, then the base's if the base is trainable.
pub(crate) fn mean_log_prob_and_grad<T: Real>(
    base: &dyn Distribution<T>,
    bijector: &dyn Differentiable<T>,
    x: &DMatrix<T>,
    grad: &mut [T],
) -> Result<T, Error> {
    let (c, mut gc) = (no_context(x.ncols()), no_context(x.ncols()));
    mean_log_prob_and_grad_given(base, bijector, x, &c, grad, &mut gc)
}

/// [`mean_log_prob_and_grad`] of `log p(x | c)` under the contexts `c`
/// (`0 × n` for an unconditional density), also **adding** the gradient with
/// respect to the contexts into `grad_context` (`C × n`).
pub(crate) fn mean_log_prob_and_grad_given<T: Real>(
    base: &dyn Distribution<T>,
    bijector: &dyn Differentiable<T>,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    grad: &mut [T],
    grad_context: &mut DMatrix<T>,
) -> Result<T, Error> {
    let n = x.ncols();
    let inv_n = T::one() / T::lit(n as f64);
    let nb = bijector.num_params();
    let (grad_bij, grad_base) = grad.split_at_mut(nb);
    let mut mean = T::zero();
    let mut gc_base = DMatrix::zeros(c.nrows(), c.ncols());
    // One fused pass: the flow's value, the base's log-density and gradient
    // at its output, and the flow's backward pass, evaluating every network once.
    bijector.inverse_and_log_det_through_given(x, c, grad_bij, grad_context, &mut |u, ildj| {
        let lp = base.log_prob_given(u, c);
        mean = (lp + ildj).sum() * inv_n;
        let weights = DVector::from_element(n, inv_n);
        let g_base = match base.as_trainable_base() {
            Some(b) => b.log_prob_backward_given(u, c, &weights, grad_base, &mut gc_base),
            None if base.context_dim() == 0 => {
                base.log_prob_grad(u).ok_or_else(|| Error::Unsupported {
                    context: "mean_log_prob_and_grad".into(),
                    reason: "the base distribution does not provide ∇ log p".into(),
                })? * inv_n
            }
            None => {
                return Err(Error::Unsupported {
                    context: "mean_log_prob_and_grad".into(),
                    reason: "the conditional base distribution is not trainable, so it gives no \
                             gradient of its log-density; implement TrainableBase"
                        .into(),
                });
            }
        };
        Ok((g_base, weights))
    })?;
    if c.nrows() > 0 {
        *grad_context += gc_base;
    }
    Ok(mean)
}

impl<T: Real, D: Distribution<T>, B: Bijector<T>> TransformedDistribution<T, D, B> {
    /// Mutable access to the bijector (for training).
    pub fn bijector_mut(&mut self) -> &mut B {
        self.bijector_mut_internal()
    }

    /// Mutable access to the base (for training a trainable base).
    pub fn base_mut(&mut self) -> &mut D {
        self.base_mut_internal()
    }
}
