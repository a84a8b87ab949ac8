//! The fitting loop of [`fit`](super::fit), generic over the optimiser.
//!
//! A [`Trainer`] is set up once (data checks, the validation split, batch
//! sizes, data-dependent initialisation, resuming a checkpoint) and then runs
//! epochs of steps. The pieces it is made of each live in their own file:
//! [`Batcher`] (the shuffled batches), [`Rollback`] (what a non-finite step
//! leaves), [`EarlyStopping`] (the best epoch and the patience),
//! [`Checkpointer`] (when a checkpoint is written) and the optimiser, any
//! [`FitOptimizer`].

use std::path::Path;

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::batching::Batcher;
use super::checkpoint;
use super::checkpointer::Checkpointer;
use super::divergence::divergence_warning;
use super::early_stopping::{Best, EarlyStopping};
use super::fit::{check_data, check_options, split_validation};
use super::optimizer_state::FitOptimizer;
use super::report::{EpochRecord, FitEvent, FitReport};
use super::rollback::Rollback;
use super::{FitOptions, TrainableDensity, clip_grad_norm};
use crate::bijector::DataStage;
use crate::{Error, Real};

/// One fitting run of `model` with the optimiser `O`.
pub(crate) struct Trainer<'a, T: Real, M: TrainableDensity<T>, O> {
    model: &'a mut M,
    options: &'a FitOptions<T>,
    optimizer: O,
    train: DMatrix<T>,
    valid: Option<DMatrix<T>>,
    batcher: Batcher<T>,
    /// The gradient of a step: allocated once.
    grad: Vec<T>,
    rollback: Rollback<T>,
    stopping: EarlyStopping<T>,
    checkpointer: Option<Checkpointer>,
    report: FitReport,
    /// Whether the report already warns of a divergence (one warning a run).
    warned: bool,
    first_epoch: usize,
}

impl<'a, T: Real, M: TrainableDensity<T>, O: FitOptimizer> Trainer<'a, T, M, O> {
    /// Checks the data and the options, splits off the validation data,
    /// standardises and initialises the model with the training data, puts
    /// it in training mode, and restores the checkpoint of
    /// [`FitOptions::resume`] (model, optimiser, early stopping, report;
    /// the checkpoint's optimiser replaces `optimizer`).
    pub(crate) fn new(
        model: &'a mut M,
        data: &DMatrix<T>,
        options: &'a FitOptions<T>,
        optimizer: O,
    ) -> Result<Self, Error> {
        let d = model.data_dim();
        check_data("training data", data, d)?;
        check_options(options)?;
        let mut rng = StdRng::seed_from_u64(options.seed);
        model.check_support("training data", data)?;
        let (train, valid) = split_validation(data, options, d, &mut rng)?;
        if let super::Validation::Data(v) = &options.validation {
            model.check_support("validation data", v)?;
        }
        if options.patience.is_some() && valid.is_none() {
            return Err(crate::error::check::invalid(
                "fit",
                "patience",
                "validation data (early stopping compares validation NLL)",
                "no validation data",
            ));
        }
        let n = train.ncols();
        let min_batch = model.min_batch_size().max(1);
        if options.batch_size < min_batch {
            return Err(crate::error::check::invalid(
                "fit",
                "batch_size",
                &format!(
                    "at least {min_batch} for this model: it couples the samples of a batch (a batch-normalisation layer, `batchnorm`, estimates a variance from each batch, which one sample cannot give)"
                ),
                options.batch_size,
            ));
        }
        if n < min_batch {
            return Err(Error::Training {
                epoch: 0,
                batch: 0,
                reason: format!(
                    "the training data has {n} sample(s); this model needs at least {min_batch} (a batch-normalisation layer, `batchnorm`, estimates a variance from each batch)"
                ),
            });
        }
        let batcher = Batcher::new(d, n, options.batch_size, min_batch);
        let p = model.num_params();
        if options.standardize {
            model.standardize_from(&train)?;
        }
        model.prepare_with_data(&train, DataStage::Initialize);
        model.set_training(true);
        let mut initial = Vec::with_capacity(p);
        model.copy_params_into(&mut initial);
        let mut trainer = Self {
            model,
            options,
            optimizer,
            train,
            valid,
            batcher,
            grad: vec![T::zero(); p],
            rollback: Rollback::new(p),
            stopping: EarlyStopping::new(options.patience, initial),
            checkpointer: None,
            report: FitReport {
                epochs_run: 0,
                best_epoch: 0,
                best_valid_nll: None,
                history: Vec::new(),
                steps: 0,
                stopped_early: false,
                interrupted: false,
                warnings: Vec::new(),
            },
            warned: false,
            first_epoch: 1,
        };
        if let Some(path) = &options.resume {
            trainer.resume(path)?;
        }
        trainer.warned = !trainer.report.warnings.is_empty();
        trainer.checkpointer = options.checkpoint.as_deref().map(|path| {
            Checkpointer::new(
                path,
                options.overwrite_checkpoint,
                trainer.report.history.len(),
            )
        });
        Ok(trainer)
    }

    /// Continues the run saved at `path`: after its last epoch, with its
    /// model, optimiser, early-stopping state and report.
    fn resume(&mut self, path: &Path) -> Result<(), Error> {
        let ck = checkpoint::read::<T, O>(path, self.grad.len())?;
        self.model
            .restore_checkpoint_state(&ck.model, &path.display().to_string())?;
        self.model.set_training(true);
        self.optimizer = ck.optimizer;
        self.stopping
            .resume(ck.best_params, ck.best_valid, ck.since_best);
        self.report = ck.report;
        self.report.interrupted = false;
        self.report.stopped_early = false;
        self.first_epoch = self.report.epochs_run + 1;
        Ok(())
    }

    /// Runs the epochs (see [`fit_with_observer`](super::fit_with_observer))
    /// and ends with the best parameters (with validation data), the model
    /// finalised with the training data and in evaluation mode.
    pub(crate) fn run(
        mut self,
        observer: &mut dyn FnMut(&FitEvent) -> bool,
    ) -> Result<FitReport, Error> {
        for epoch in self.first_epoch..=self.options.epochs {
            if self.out_of_steps() {
                break;
            }
            let Some(mean_loss) = self.epoch(epoch, observer)? else {
                self.report.interrupted = true;
                break;
            };
            if !self.end_epoch(epoch, mean_loss, observer)? {
                break;
            }
        }
        Ok(self.finish())
    }

    /// Whether the options' step budget is spent.
    fn out_of_steps(&self) -> bool {
        self.options
            .max_steps
            .is_some_and(|m| self.report.steps >= m)
    }

    /// The steps of `epoch`: the mean training NLL of its batches, or `None`
    /// if the observer asked to stop.
    fn epoch(
        &mut self,
        epoch: usize,
        observer: &mut dyn FnMut(&FitEvent) -> bool,
    ) -> Result<Option<f64>, Error> {
        self.batcher.shuffle_for_epoch(self.options.seed, epoch);
        self.report.epochs_run = epoch;
        // The running mean of the batches' losses, weighted by their sizes
        // (kept finite: each loss is).
        let mut mean_loss = 0.0_f64;
        let mut seen = 0usize;
        let batches = self.batcher.batches();
        for b in 0..batches {
            let (loss, len) = self.step(epoch, b)?;
            seen += len;
            mean_loss += (loss - mean_loss) * (len as f64 / seen as f64);
            mean_loss = mean_loss.clamp(-f64::MAX, f64::MAX);
            let go_on = observer(&FitEvent::Step {
                epoch,
                batch: b + 1,
                batches,
                loss,
            });
            if !go_on {
                return Ok(None);
            }
            if self.out_of_steps() {
                break;
            }
        }
        Ok(Some(mean_loss))
    }

    /// One gradient step on batch `b` (0-based) of `epoch`: its loss and
    /// size. A non-finite loss or gradient rolls the model back and is an
    /// error.
    fn step(&mut self, epoch: usize, b: usize) -> Result<(f64, usize), Error> {
        let batch = self.batcher.gather(b, &self.train);
        let len = batch.ncols();
        self.grad.iter_mut().for_each(|g| *g = T::zero());
        let result = self.model.mean_log_prob_and_grad(batch, &mut self.grad);
        if let Some(what) = Rollback::failure(&result, &self.grad) {
            let best = best_epoch(&self.stopping, self.valid.is_some(), &self.report);
            return Err(self.rollback.recover(
                &mut *self.model,
                &self.train,
                best,
                (epoch, b + 1),
                &what,
            ));
        }
        let loss = -result.map_or(0.0, |v| v.to_f64());
        // Ascend the log-likelihood: descend on −grad.
        self.grad.iter_mut().for_each(|g| *g = -*g);
        if let Some(c) = self.options.clip_norm {
            clip_grad_norm(&mut self.grad, c);
        }
        self.rollback.remember_from(&*self.model);
        let lr = self.options.learning_rate * self.options.schedule.factor(self.report.steps);
        // In place: the parameters are not copied out and back.
        self.optimizer.step_params(&mut *self.model, &self.grad, lr);
        self.report.steps = self.report.steps.saturating_add(1);
        Ok((loss, len))
    }

    /// After `epoch`: its record (with the validation NLL), early stopping,
    /// the divergence warning, the checkpoint and the observer. Returns
    /// whether to go on.
    fn end_epoch(
        &mut self,
        epoch: usize,
        mean_loss: f64,
        observer: &mut dyn FnMut(&FitEvent) -> bool,
    ) -> Result<bool, Error> {
        let mut record = EpochRecord {
            epoch,
            train_nll: mean_loss,
            valid_nll: None,
        };
        if let Some(v) = &self.valid {
            let nll = evaluate_nll(&mut *self.model, &self.train, v);
            record.valid_nll = Some(nll);
            let model = &*self.model;
            if self
                .stopping
                .observe(nll, |best| model.copy_params_into(best))
            {
                self.report.best_epoch = epoch;
            }
        } else {
            self.report.best_epoch = epoch;
        }
        if !self.warned
            && let Some(w) = divergence_warning(&self.report.history, &record)
        {
            self.report.warnings.push(w);
            self.warned = true;
        }
        self.report.history.push(record);
        if let Some(c) = &self.checkpointer {
            c.save(&*self.model, &self.optimizer, &self.stopping, &self.report)?;
        }
        if !observer(&FitEvent::Epoch(record)) {
            self.report.interrupted = true;
            return Ok(false);
        }
        if self.stopping.should_stop() {
            self.report.stopped_early = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Restores the best epoch's parameters (with validation data), then
    /// finalises the model with the training data, in evaluation mode.
    fn finish(mut self) -> FitReport {
        if let Some(best) = best_epoch(&self.stopping, self.valid.is_some(), &self.report) {
            self.model.load_params(best.params);
            self.report.best_valid_nll = Some(best.nll);
        }
        self.model
            .prepare_with_data(&self.train, DataStage::Finalize);
        self.model.set_training(false);
        self.report
    }
}

/// The best epoch by validation NLL, if there is validation data and an
/// epoch had a finite one.
fn best_epoch<'s, T: Real>(
    stopping: &'s EarlyStopping<T>,
    has_validation: bool,
    report: &FitReport,
) -> Option<Best<'s, T>> {
    has_validation
        .then(|| stopping.best(report.best_epoch))
        .flatten()
}

/// Validation NLL in evaluation mode, with batch-norm statistics of the
/// training set; the model is returned to training mode.
fn evaluate_nll<T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    train: &DMatrix<T>,
    valid: &DMatrix<T>,
) -> f64 {
    if model.finalizes_with_data() {
        model.prepare_with_data(train, DataStage::Finalize);
    }
    model.set_training(false);
    let lp = model.log_prob_of_data(valid);
    model.set_training(true);
    let mean = lp.iter().map(|v| v.to_f64()).sum::<f64>() / lp.len() as f64;
    if mean.is_finite() {
        -mean
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::super::toy::Toy;
    use super::super::{Adam, Optimizer, OptimizerKind, Sgd};
    use super::*;

    fn options(epochs: usize, batch_size: usize) -> FitOptions<f64> {
        FitOptions {
            epochs,
            batch_size,
            learning_rate: 0.1,
            ..Default::default()
        }
    }

    /// `steps` updates of `opt` on the toy's loss `‖θ‖²` (gradient `2θ`).
    fn by_hand(mut opt: impl Optimizer, theta: &[f64], steps: usize, lr: f64) -> Vec<f64> {
        let mut theta = theta.to_vec();
        for _ in 0..steps {
            let g: Vec<f64> = theta.iter().map(|t| 2.0 * t).collect();
            opt.step(&mut theta, &g, lr);
        }
        theta
    }

    #[test]
    fn the_loop_runs_any_optimizer() {
        // 10 samples in batches of 4: 3 steps an epoch, 6 in all.
        let data = DMatrix::zeros(1, 10);
        let opts = options(2, 4);
        let start = [1.0, -2.0];
        let mut sgd = Sgd::new(0.1, 0.9);
        sgd.weight_decay = 0.01;
        let mut toy = Toy::new(&start);
        let r = Trainer::new(&mut toy, &data, &opts, sgd.clone())
            .unwrap()
            .run(&mut |_| true)
            .unwrap();
        assert_eq!(r.steps, 6);
        assert_eq!(toy.theta, by_hand(sgd, &start, 6, 0.1));
        let mut toy = Toy::new(&start);
        Trainer::new(&mut toy, &data, &opts, Adam::new(0.1))
            .unwrap()
            .run(&mut |_| true)
            .unwrap();
        assert_eq!(toy.theta, by_hand(Adam::new(0.1), &start, 6, 0.1));
        assert!(!toy.training && toy.finalized == 1);
    }

    #[test]
    fn the_step_budget_ends_an_epoch_early() {
        let data = DMatrix::zeros(1, 10);
        let opts = FitOptions {
            max_steps: Some(4),
            ..options(5, 4)
        };
        let mut toy = Toy::new(&[1.0]);
        let mut epochs = Vec::new();
        let r = Trainer::new(&mut toy, &data, &opts, Adam::new(0.1))
            .unwrap()
            .run(&mut |e| {
                if let FitEvent::Epoch(rec) = e {
                    epochs.push(rec.epoch);
                }
                true
            })
            .unwrap();
        // Epoch 2 stops after its first step but is recorded.
        assert_eq!((r.steps, r.epochs_run, epochs), (4, 2, vec![1, 2]));
        assert_eq!(r.history.len(), 2);
        assert_eq!(r.best_epoch, 2);
    }

    #[test]
    fn a_nan_rolls_back_and_reports_where() {
        let data = DMatrix::zeros(1, 10);
        let mut toy = Toy::new(&[1.0]);
        // Call 5 is epoch 2, batch 2.
        toy.nan_at = Some(5);
        let e = Trainer::new(&mut toy, &data, &options(3, 4), Sgd::new(0.1, 0.0))
            .unwrap()
            .run(&mut |_| true)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Training {
                    epoch: 2,
                    batch: 2,
                    ..
                }
            ),
            "{e}"
        );
        // The parameters of call 4, the last whose loss was finite: those
        // after 3 steps (the 4th step's result was never evaluated).
        assert_eq!(toy.theta, by_hand(Sgd::new(0.1, 0.0), &[1.0], 3, 0.1));
        assert!(!toy.training && toy.finalized == 1);
    }

    #[test]
    fn the_observer_interrupts_after_a_step() {
        let data = DMatrix::zeros(1, 10);
        let mut toy = Toy::new(&[1.0]);
        let mut steps = 0;
        let r = Trainer::new(&mut toy, &data, &options(3, 4), Adam::new(0.1))
            .unwrap()
            .run(&mut |e| {
                steps += matches!(e, FitEvent::Step { .. }) as usize;
                steps < 5
            })
            .unwrap();
        assert!(r.interrupted && !r.stopped_early);
        assert_eq!((r.steps, r.epochs_run, r.history.len()), (5, 2, 1));
    }

    #[test]
    fn a_checkpointed_sgd_run_resumes_exactly() {
        let dir = std::env::temp_dir().join(format!("normflow-trainer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sgd.ckpt");
        let data = DMatrix::zeros(1, 10);
        let opts = FitOptions {
            optimizer: OptimizerKind::Sgd { momentum: 0.5 },
            ..options(4, 4)
        };
        let sgd = || Sgd::new(0.1, 0.5);
        let mut whole = Toy::new(&[1.0, 3.0]);
        Trainer::new(&mut whole, &data, &opts, sgd())
            .unwrap()
            .run(&mut |_| true)
            .unwrap();
        let mut first = Toy::new(&[1.0, 3.0]);
        first.saves = true;
        let with_ck = FitOptions {
            checkpoint: Some(path.clone()),
            ..opts.clone()
        };
        Trainer::new(&mut first, &data, &with_ck, sgd())
            .unwrap()
            .run(&mut |e| !matches!(e, FitEvent::Epoch(r) if r.epoch == 2))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(r#""sgd":{"#) && !text.contains("adam"),
            "{text}"
        );
        let mut resumed = Toy::new(&[0.0, 0.0]);
        let resume = FitOptions {
            resume: Some(path.clone()),
            ..opts.clone()
        };
        // A fresh optimiser is replaced by the checkpoint's state.
        let r = Trainer::new(&mut resumed, &data, &resume, sgd())
            .unwrap()
            .run(&mut |_| true)
            .unwrap();
        assert_eq!(r.steps, 12);
        assert_eq!(resumed.theta, whole.theta);
        // Adam cannot continue an SGD run.
        let mut other = Toy::new(&[0.0, 0.0]);
        let e = Trainer::new(&mut other, &data, &resume, Adam::new(0.1))
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("field `adam`")
                && e.to_string()
                    .contains("the checkpoint holds the state of SGD"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
