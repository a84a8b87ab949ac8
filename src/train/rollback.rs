//! The non-finite rollback: a step whose loss or gradient is not finite
//! stops fitting, and the model is left holding good parameters (the best
//! validation epoch's, else the last with a finite loss), finalised as at a
//! normal end, with an error that says which.

use nalgebra::DMatrix;

use super::TrainableDensity;
use super::divergence::{describe, fmt_nll};
use super::early_stopping::Best;
use crate::bijector::DataStage;
use crate::{Error, Real};

/// The last parameters whose loss was finite.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rollback<T> {
    last_good: Vec<T>,
    have: bool,
}

impl<T: Real> Rollback<T> {
    /// Nothing remembered yet; room for `num_params` parameters.
    pub(crate) fn new(num_params: usize) -> Self {
        Self {
            last_good: Vec::with_capacity(num_params),
            have: false,
        }
    }

    /// Why a step's result (the mean log-density, or an error) and its
    /// gradient cannot be used, or `None` when both are finite.
    pub(crate) fn failure(result: &Result<T, Error>, grad: &[T]) -> Option<String> {
        match result {
            Err(e) => Some(e.to_string()),
            Ok(v) if !v.is_finite() => Some(format!("the loss is {}", describe(-v.to_f64()))),
            Ok(v) if grad.iter().any(|g| !g.is_finite()) => Some(format!(
                "a gradient is not finite (the loss was {})",
                fmt_nll(-v.to_f64())
            )),
            Ok(_) => None,
        }
    }

    /// Remembers the parameters of `model`, whose loss was finite, before a
    /// step changes them.
    pub(crate) fn remember_from<P: crate::Parameters<T> + ?Sized>(&mut self, model: &P) {
        model.copy_params_into(&mut self.last_good);
        self.have = true;
    }

    /// Remembers `params` as the last good parameters.
    #[cfg(test)]
    pub(crate) fn remember(&mut self, params: &[T]) {
        self.last_good.clear();
        self.last_good.extend_from_slice(params);
        self.have = true;
    }

    /// The last parameters remembered, if any.
    pub(crate) fn last_good(&self) -> Option<&[T]> {
        self.have.then_some(self.last_good.as_slice())
    }

    /// After the failure `what` at `epoch` and `batch` (1-based): loads
    /// `best` (the best validation epoch, if any) or else the last good
    /// parameters into `model` (a model that never took a step keeps the
    /// parameters it started with), finalises it with the training data and
    /// leaves it in evaluation mode, and returns the error that says which
    /// parameters it holds.
    pub(crate) fn recover<M: TrainableDensity<T>>(
        &self,
        model: &mut M,
        train: &DMatrix<T>,
        best: Option<Best<'_, T>>,
        (epoch, batch): (usize, usize),
        what: &str,
    ) -> Error {
        let p = model.num_params();
        let holds = if let Some(best) = best.filter(|b| b.params.len() == p) {
            model.load_params(best.params);
            format!(
                "the model holds the parameters of epoch {}, the best validation NLL {}",
                best.epoch,
                fmt_nll(best.nll)
            )
        } else if let Some(last) = self.last_good().filter(|l| l.len() == p) {
            model.load_params(last);
            "the model holds its last parameters with a finite loss".to_string()
        } else {
            "the model holds the parameters it started with".to_string()
        };
        model.prepare_with_data(train, DataStage::Finalize);
        model.set_training(false);
        Error::Training {
            epoch,
            batch,
            reason: format!("{what}; {holds}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::toy::Toy;
    use super::*;
    use crate::Parameters;

    #[test]
    fn finite_results_are_no_failure() {
        assert_eq!(Rollback::failure(&Ok(-1.5_f64), &[0.0, 2.0]), None);
    }

    #[test]
    fn failures_say_what_was_not_finite() {
        let f = |r: Result<f64, Error>, g: &[f64]| Rollback::failure(&r, g).unwrap();
        assert_eq!(f(Ok(f64::NAN), &[0.0]), "the loss is not a number");
        // The loss is the negated mean log-density.
        assert_eq!(f(Ok(f64::NEG_INFINITY), &[0.0]), "the loss is +infinity");
        assert_eq!(
            f(Ok(-1.25), &[0.0, f64::INFINITY]),
            "a gradient is not finite (the loss was 1.25)"
        );
        let e = Error::Training {
            epoch: 0,
            batch: 0,
            reason: "inner".into(),
        };
        assert_eq!(f(Err(e.clone()), &[0.0]), e.to_string());
    }

    #[test]
    fn the_best_epoch_wins_over_the_last_good_parameters() {
        let mut toy = Toy::new(&[9.0, 9.0]);
        toy.set_training(true);
        let mut r = Rollback::new(2);
        r.remember(&[1.0, 2.0]);
        let best = Best {
            epoch: 3,
            nll: 1.23456,
            params: &[5.0, 6.0][..],
        };
        let e = r.recover(&mut toy, &DMatrix::zeros(1, 4), Some(best), (4, 2), "boom");
        assert_eq!(toy.theta, [5.0, 6.0]);
        assert!(!toy.training && toy.finalized == 1);
        match e {
            Error::Training {
                epoch: 4,
                batch: 2,
                reason,
            } => assert_eq!(
                reason,
                "boom; the model holds the parameters of epoch 3, the best validation NLL 1.235"
            ),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn without_a_best_epoch_the_last_good_parameters_return() {
        let mut toy = Toy::new(&[9.0, 9.0]);
        let mut r = Rollback::new(2);
        r.remember(&[1.0, 2.0]);
        r.remember(&[3.0, 4.0]);
        assert_eq!(r.last_good(), Some(&[3.0, 4.0][..]));
        let e = r.recover(&mut toy, &DMatrix::zeros(1, 4), None, (1, 7), "x");
        assert_eq!(toy.theta, [3.0, 4.0]);
        assert!(
            e.to_string()
                .contains("x; the model holds its last parameters with a finite loss"),
            "{e}"
        );
        // A best epoch of another model's size is ignored.
        let wrong = Best {
            epoch: 1,
            nll: 0.0,
            params: &[1.0][..],
        };
        let e = r.recover(&mut toy, &DMatrix::zeros(1, 4), Some(wrong), (1, 1), "x");
        assert!(e.to_string().contains("last parameters"), "{e}");
    }

    #[test]
    fn a_model_that_never_stepped_keeps_its_parameters() {
        let mut toy = Toy::new(&[9.0]);
        let r = Rollback::new(1);
        assert_eq!(r.last_good(), None);
        let e = r.recover(&mut toy, &DMatrix::zeros(1, 4), None, (1, 1), "x");
        assert_eq!(toy.theta, [9.0]);
        assert_eq!(toy.finalized, 1);
        assert!(
            e.to_string()
                .contains("the model holds the parameters it started with"),
            "{e}"
        );
    }
}
