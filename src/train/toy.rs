//! A toy model for the unit tests of the fitting loop's parts: the "density"
//! `log p(x) = −‖θ‖²` whatever `x` (gradient `−2θ`), which records how the
//! loop drives it and can fail on a chosen call.

use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::{DMatrix, DVector};

use super::TrainableDensity;
use crate::Error;
use crate::bijector::DataStage;
use crate::distribution::Distribution;

#[derive(Debug)]
pub(crate) struct Toy {
    pub(crate) theta: Vec<f64>,
    pub(crate) training: bool,
    /// How often the model was finalised with the training data.
    pub(crate) finalized: usize,
    /// Calls of `mean_log_prob_and_grad` so far.
    pub(crate) calls: AtomicUsize,
    /// The call (1-based) whose loss is NaN.
    pub(crate) nan_at: Option<usize>,
    /// Whether the model can save itself (for checkpoints).
    pub(crate) saves: bool,
}

impl Toy {
    pub(crate) fn new(theta: &[f64]) -> Self {
        Self {
            theta: theta.to_vec(),
            training: false,
            finalized: 0,
            calls: AtomicUsize::new(0),
            nan_at: None,
            saves: false,
        }
    }
}

impl Distribution<f64> for Toy {
    fn dim(&self) -> usize {
        1
    }
    fn log_prob(&self, x: &DMatrix<f64>) -> DVector<f64> {
        let sq: f64 = self.theta.iter().map(|t| t * t).sum();
        DVector::from_element(x.ncols(), -sq)
    }
    fn sample(&self, n: usize, _: &mut dyn rand::Rng) -> DMatrix<f64> {
        DMatrix::zeros(1, n)
    }
}

impl crate::Parameters<f64> for Toy {
    fn num_params(&self) -> usize {
        self.theta.len()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[f64])) {
        f(&self.theta)
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [f64])) {
        f(&mut self.theta)
    }
    fn params_changed(&mut self) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl TrainableDensity<f64> for Toy {
    fn prepare_with_data(&mut self, _: &DMatrix<f64>, stage: DataStage) {
        if stage == DataStage::Finalize {
            self.finalized += 1;
        }
    }
    fn mean_log_prob_and_grad(&self, _: &DMatrix<f64>, grad: &mut [f64]) -> Result<f64, Error> {
        let k = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        for (g, t) in grad.iter_mut().zip(&self.theta) {
            *g += -2.0 * t;
        }
        let lp = -self.theta.iter().map(|t| t * t).sum::<f64>();
        Ok(if self.nan_at == Some(k) { f64::NAN } else { lp })
    }
    fn save_state(&self) -> Option<String> {
        self.saves
            .then(|| serde_json::to_string(&self.theta).expect("numbers serialise"))
    }
    fn restore_state(&mut self, saved: &str) -> Result<(), Error> {
        self.theta = serde_json::from_str(saved).map_err(|e| Error::Format {
            location: "toy".into(),
            reason: e.to_string(),
        })?;
        Ok(())
    }
}
