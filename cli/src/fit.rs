//! `fit` of an unconditional model, and the summary every fit prints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nalgebra::DMatrix;
use normflow::Real;
use normflow::prelude::*;
use normflow::train::{FitOptions, FlowModel, Validation, fit_with_observer};

use crate::Result;
use crate::progress::FitProgress;

/// `fit` of an unconditional model.
pub struct FitJob {
    pub spec: FlowSpec,
    pub train: DMatrix<f64>,
    pub validation: Validation<f64>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub patience: Option<usize>,
    pub standardize: bool,
    pub checkpoint: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub out: PathBuf,
    pub json: bool,
}

impl FitJob {
    pub fn run<T: Real>(self) -> Result<()> {
        let dim = self.train.nrows();
        let cast = |m: &DMatrix<f64>| m.map(T::lit);
        let train = cast(&self.train);
        let validation = match &self.validation {
            Validation::None => Validation::None,
            Validation::Fraction(f) => Validation::Fraction(*f),
            Validation::Data(v) => {
                if v.nrows() != dim {
                    return Err(format!(
                        "the validation data has {} columns but the training data has {dim}",
                        v.nrows()
                    ));
                }
                Validation::Data(cast(v))
            }
        };
        let mut model =
            FlowModel::<T>::new(&self.spec, dim, self.seed).map_err(|e| e.to_string())?;
        let options = FitOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            seed: self.seed,
            validation,
            patience: self.patience,
            standardize: self.standardize,
            checkpoint: self.checkpoint.clone(),
            resume: self.resume.clone(),
            ..Default::default()
        };
        let mut progress = FitProgress::new(self.epochs);
        let start = Instant::now();
        let report = fit_with_observer(&mut model, &train, &options, &mut |e| progress.observe(e))
            .map_err(|e| e.to_string())?;
        progress.finish();
        let wall = start.elapsed().as_secs_f64();
        // Saved in f64 whatever the training precision.
        let saved = FlowModel::<f64>::from_json(&model.to_json()).map_err(|e| e.to_string())?;
        saved.save(&self.out).map_err(|e| e.to_string())?;
        print_fit_summary(&report, wall, &self.out, self.json);
        Ok(())
    }
}

/// The summary line (or JSON object) of a finished fit.
pub fn print_fit_summary(report: &normflow::train::FitReport, wall: f64, out: &Path, json: bool) {
    let last = report.history.last();
    let train_nll = last.map(|r| r.train_nll);
    if json {
        let mut j = serde_json::json!({
            "epochs_run": report.epochs_run,
            "best_epoch": report.best_epoch,
            "train_nll": train_nll,
            "wall_s": wall,
            "interrupted": report.interrupted,
            "stopped_early": report.stopped_early,
            "model": out.display().to_string(),
        });
        if let Some(v) = report.best_valid_nll {
            j["valid_nll"] = serde_json::json!(v);
        }
        println!("{j}");
    } else {
        eprintln!(
            "{} after {} epochs ({:.1} s){}: train NLL {:.4}{}; model written to {}",
            if report.interrupted {
                "stopped"
            } else {
                "done"
            },
            report.epochs_run,
            wall,
            if report.stopped_early {
                ", early stopping"
            } else {
                ""
            },
            train_nll.unwrap_or(f64::NAN),
            report
                .best_valid_nll
                .map(|v| format!(", best validation NLL {v:.4} (epoch {})", report.best_epoch))
                .unwrap_or_default(),
            out.display()
        );
    }
}
