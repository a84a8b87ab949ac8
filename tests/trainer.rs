//! The fitting loop through the public API: the optimiser chosen in
//! `FitOptions` (Adam, AdamW, SGD with momentum), its checkpoints, and the
//! same loop under conditional fitting.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::{DMatrix, DVector};
use normflow::bijector::DataStage;
use normflow::prelude::*;
use normflow::train::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A fresh folder for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "normflow-trainer-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn normal_data(n: usize, seed: u64) -> DMatrix<f64> {
    let d = Normal::new(
        DVector::from_vec(vec![3.0, -1.0]),
        DVector::from_vec(vec![0.5, 2.0]),
    )
    .unwrap();
    d.sample(n, &mut StdRng::seed_from_u64(seed))
}

/// `log p(x) = −‖θ‖²` whatever `x`: the loss `‖θ‖²` has gradient `2θ`, so
/// the loop's updates can be written out by hand.
#[derive(Debug)]
struct Bowl {
    theta: Vec<f64>,
    calls: AtomicUsize,
}

impl Bowl {
    fn new(theta: &[f64]) -> Self {
        Self {
            theta: theta.to_vec(),
            calls: AtomicUsize::new(0),
        }
    }
}

impl Distribution<f64> for Bowl {
    fn dim(&self) -> usize {
        1
    }
    fn log_prob(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(x.ncols(), -self.theta.iter().map(|t| t * t).sum::<f64>())
    }
    fn sample(&self, n: usize, _: &mut dyn rand::Rng) -> DMatrix<f64> {
        DMatrix::zeros(1, n)
    }
}

impl normflow::Parameters<f64> for Bowl {
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
    fn set_training(&mut self, _: bool) {}
}

impl TrainableDensity<f64> for Bowl {
    fn prepare_with_data(&mut self, _: &DMatrix<f64>, _: DataStage) {}
    fn mean_log_prob_and_grad(&self, _: &DMatrix<f64>, grad: &mut [f64]) -> Result<f64, Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        for (g, t) in grad.iter_mut().zip(&self.theta) {
            *g += -2.0 * t;
        }
        Ok(-self.theta.iter().map(|t| t * t).sum::<f64>())
    }
}

/// `steps` updates of `opt` on the loss `‖θ‖²` with learning rate `lr`.
fn by_hand(mut opt: impl Optimizer, theta: &[f64], steps: usize, lr: f64) -> Vec<f64> {
    let mut theta = theta.to_vec();
    for _ in 0..steps {
        let g: Vec<f64> = theta.iter().map(|t| 2.0 * t).collect();
        opt.step(&mut theta, &g, lr);
    }
    theta
}

/// 12 samples in batches of 5: 3 steps an epoch (the last of 2).
fn bowl_options(optimizer: OptimizerKind, weight_decay: f64) -> FitOptions<f64> {
    FitOptions {
        epochs: 4,
        batch_size: 5,
        learning_rate: 0.05,
        weight_decay,
        optimizer,
        ..Default::default()
    }
}

#[test]
fn fit_runs_each_optimizer_as_written_out() {
    let data = DMatrix::zeros(1, 12);
    let start = [1.0, -2.0, 0.5];
    let run = |opts: &FitOptions<f64>| {
        let mut bowl = Bowl::new(&start);
        let r = fit(&mut bowl, &data, opts).unwrap();
        assert_eq!((r.steps, bowl.calls.load(Ordering::Relaxed)), (12, 12));
        bowl.theta
    };
    // Adam is the default: the same run with or without naming it.
    let adam = run(&bowl_options(OptimizerKind::Adam, 0.0));
    assert_eq!(adam, by_hand(Adam::new(0.05), &start, 12, 0.05));
    let default = FitOptions {
        optimizer: OptimizerKind::default(),
        ..bowl_options(OptimizerKind::Adam, 0.0)
    };
    assert_eq!(run(&default), adam);
    // AdamW: Adam with decoupled decay.
    let mut adamw = Adam::new(0.05);
    adamw.weight_decay = 0.1;
    assert_eq!(
        run(&bowl_options(OptimizerKind::Adam, 0.1)),
        by_hand(adamw, &start, 12, 0.05)
    );
    // SGD with momentum, with and without decay.
    let sgd = OptimizerKind::Sgd { momentum: 0.9 };
    assert_eq!(
        run(&bowl_options(sgd, 0.0)),
        by_hand(Sgd::new(0.05, 0.9), &start, 12, 0.05)
    );
    let mut sgdw = Sgd::new(0.05, 0.9);
    sgdw.weight_decay = 0.1;
    assert_eq!(
        run(&bowl_options(sgd, 0.1)),
        by_hand(sgdw, &start, 12, 0.05)
    );
    // Plain SGD.
    assert_eq!(
        run(&bowl_options(OptimizerKind::Sgd { momentum: 0.0 }, 0.0)),
        by_hand(Sgd::new(0.05, 0.0), &start, 12, 0.05)
    );
}

#[test]
fn a_schedule_and_clipping_apply_to_sgd_too() {
    let data = DMatrix::zeros(1, 10);
    let opts = FitOptions {
        epochs: 2,
        batch_size: 10,
        learning_rate: 0.1,
        clip_norm: Some(1.0),
        schedule: Schedule::Step {
            every: 1,
            gamma: 0.5,
        },
        optimizer: OptimizerKind::Sgd { momentum: 0.0 },
        ..Default::default()
    };
    let mut bowl = Bowl::new(&[3.0]);
    fit(&mut bowl, &data, &opts).unwrap();
    // Gradient 6, clipped to 1: θ = 3 − 0.1·1, then − 0.05·1.
    assert!((bowl.theta[0] - (3.0 - 0.1 - 0.05)).abs() < 1e-15);
}

#[test]
fn a_bad_momentum_is_refused_before_fitting() {
    let data = DMatrix::zeros(1, 10);
    for momentum in [-0.1, 1.0, f64::NAN] {
        let mut bowl = Bowl::new(&[1.0]);
        let e = fit(
            &mut bowl,
            &data,
            &bowl_options(OptimizerKind::Sgd { momentum }, 0.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("momentum"), "{e}");
        assert_eq!(bowl.calls.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn sgd_fits_a_flow() {
    let data = normal_data(1000, 3);
    let mut model = FlowModel::<f64>::new(&flow!(maf(2, hidden = 8)), 2, 1).unwrap();
    let before = -model.log_prob(&data).mean();
    let r = fit(
        &mut model,
        &data,
        &FitOptions {
            epochs: 10,
            batch_size: 100,
            learning_rate: 1e-2,
            standardize: true,
            optimizer: OptimizerKind::Sgd { momentum: 0.9 },
            ..Default::default()
        },
    )
    .unwrap();
    let after = -model.log_prob(&data).mean();
    // The entropy of N(μ, diag(0.5², 2²)), Σ ½ log(2πe σᵢ²) ≈ 2.81 nats, is
    // the best possible NLL; SGD gets well below the start towards it.
    assert!(
        after < before - 1.0 && after < 3.0,
        "{before} → {after}, {r:?}"
    );
}

/// An SGD run resumed from its checkpoint ends exactly where the
/// uninterrupted run ends; the checkpoint holds the SGD state, and Adam
/// cannot continue it.
#[test]
fn an_sgd_run_resumes_from_its_checkpoint() {
    let dir = temp_dir("sgd-resume");
    let ck = dir.join("run.ckpt");
    let data = normal_data(600, 12);
    let spec = flow!(actnorm >> maf(2, hidden = 8) >> batchnorm);
    let base = FitOptions {
        epochs: 4,
        batch_size: 64,
        learning_rate: 3e-3,
        weight_decay: 1e-3,
        standardize: true,
        validation: Validation::Fraction(0.2),
        seed: 9,
        optimizer: OptimizerKind::Sgd { momentum: 0.8 },
        ..Default::default()
    };
    let mut straight = FlowModel::<f64>::new(&spec, 2, 1).unwrap();
    let r_straight = fit(&mut straight, &data, &base).unwrap();

    let mut first = FlowModel::<f64>::new(&spec, 2, 1).unwrap();
    let r1 = fit_with_observer(
        &mut first,
        &data,
        &FitOptions {
            checkpoint: Some(ck.clone()),
            ..base.clone()
        },
        &mut |e| !matches!(e, FitEvent::Epoch(r) if r.epoch == 2),
    )
    .unwrap();
    assert!(r1.interrupted);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ck).unwrap()).unwrap();
    assert!(saved.get("sgd").is_some() && saved.get("adam").is_none());
    assert_eq!(saved["sgd"]["momentum"], 0.8);

    let resume = FitOptions {
        resume: Some(ck.clone()),
        ..base.clone()
    };
    let mut resumed = FlowModel::<f64>::new(&spec, 2, 1).unwrap();
    let r2 = fit(&mut resumed, &data, &resume).unwrap();
    assert_eq!(r2, r_straight);
    assert_eq!(
        resumed.flow().params_to_vec(),
        straight.flow().params_to_vec()
    );

    let mut other = FlowModel::<f64>::new(&spec, 2, 1).unwrap();
    let e = fit(
        &mut other,
        &data,
        &FitOptions {
            optimizer: OptimizerKind::Adam,
            ..resume
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("field `adam`") && e.contains("the checkpoint holds the state of SGD"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A checkpoint of an Adam run keeps the format of earlier versions: the
/// optimiser under `adam`, no other optimiser field.
#[test]
fn an_adam_checkpoint_keeps_its_format() {
    let dir = temp_dir("adam-format");
    let ck = dir.join("run.ckpt");
    let data = normal_data(200, 1);
    let mut model = FlowModel::<f64>::new(&flow!(maf(hidden = 4)), 2, 0).unwrap();
    fit(
        &mut model,
        &data,
        &FitOptions {
            epochs: 1,
            batch_size: 100,
            checkpoint: Some(ck.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let text = std::fs::read_to_string(&ck).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut expect = vec![
        "format",
        "version",
        "num_params",
        "model",
        "adam",
        "best_params",
        "best_valid",
        "since_best",
        "report",
    ];
    expect.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expect);
    assert_eq!(v["version"], 1);
    assert!(text.find("\"adam\"").unwrap() < text.find("\"best_params\"").unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Conditional fitting runs the same loop, so SGD serves it too.
#[test]
fn conditional_fitting_uses_the_chosen_optimizer() {
    let mut rng = StdRng::seed_from_u64(4);
    let c = DMatrix::from_fn(1, 400, |_, j| (j % 4) as f64 - 1.5);
    let noise: DMatrix<f64> = StandardNormal::new(2).unwrap().sample(400, &mut rng);
    let x = DMatrix::from_fn(2, 400, |i, j| 2.0 * c[(0, j)] + 0.3 * noise[(i, j)]);
    let spec = flow!(maf(2, hidden = 8));
    let opts = FitOptions {
        epochs: 20,
        batch_size: 50,
        learning_rate: 1e-2,
        optimizer: OptimizerKind::Sgd { momentum: 0.9 },
        ..Default::default()
    };
    let mut model = FlowModel::<f64>::conditional(&spec, 2, 1, 3).unwrap();
    let before = -model.log_prob_given(&x, &c).mean();
    let r = fit(&mut model, (&x, &c), &opts).unwrap();
    let after = -model.log_prob_given(&x, &c).mean();
    assert!(after < before - 1.0, "{before} → {after}, {:?}", r.history);
    // A different optimiser gives a different run.
    let mut adam = FlowModel::<f64>::conditional(&spec, 2, 1, 3).unwrap();
    fit(
        &mut adam,
        (&x, &c),
        &FitOptions {
            optimizer: OptimizerKind::Adam,
            ..opts
        },
    )
    .unwrap();
    assert_ne!(adam.log_prob_given(&x, &c), model.log_prob_given(&x, &c));
}

/// `fit_variational` takes the optimiser of its options: SGD with momentum
/// fits a shifted, scaled Gaussian target with an affine flow (log Z = 0, so
/// the ELBO approaches 0 from below), and a bad momentum is refused.
#[test]
fn variational_fitting_takes_the_chosen_optimizer() {
    let target = DistributionTarget(
        Normal::new(
            DVector::from_vec(vec![1.0, -2.0]),
            DVector::from_vec(vec![0.5, 2.0]),
        )
        .unwrap(),
    );
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let fit_with = |optimizer: OptimizerKind, rng: &mut rand::rngs::StdRng| {
        let mut q = flow!(actnorm).build_distribution::<f64>(2, rng).unwrap();
        let opts = VariationalOptions {
            steps: 400,
            batch_size: 128,
            learning_rate: 2e-2,
            optimizer,
            seed: 5,
            ..Default::default()
        };
        fit_variational(&mut q, &target, &opts, &mut |_, _| true).map(|r| r.elbo_history)
    };
    let sgd = fit_with(OptimizerKind::Sgd { momentum: 0.9 }, &mut rng).unwrap();
    let adam = fit_with(OptimizerKind::Adam, &mut rng).unwrap();
    // The Gaussian ELBO is ≤ log Z = 0; both fits end close to it, by
    // different paths.
    let tail = |h: &[f64]| h[h.len() - 50..].iter().sum::<f64>() / 50.0;
    assert!(
        tail(&sgd) > -0.05 && tail(&sgd) < 0.05,
        "SGD ends at {}",
        tail(&sgd)
    );
    assert!(
        tail(&adam) > -0.05 && tail(&adam) < 0.05,
        "Adam ends at {}",
        tail(&adam)
    );
    assert!(sgd[..10] != adam[..10]);
    let e = fit_with(OptimizerKind::Sgd { momentum: 1.0 }, &mut rng).unwrap_err();
    assert!(e.to_string().contains("momentum"), "{e}");
}

/// Only a model whose layers keep training-data statistics (batch
/// normalisation) is finalised with the training data before each
/// validation; the others skip that pass over the data, and batch
/// normalisation still validates with the statistics of the parameters it is
/// evaluated at.
#[test]
fn validation_finalises_only_models_with_training_statistics() {
    let plain = FlowModel::<f64>::new(&flow!(maf(2, hidden = 8)), 2, 0).unwrap();
    assert!(!plain.finalizes_with_data());
    let mut bn = FlowModel::<f64>::new(&flow!(batchnorm >> maf(2, hidden = 8)), 2, 0).unwrap();
    assert!(bn.finalizes_with_data());

    let data = normal_data(400, 1);
    let valid = normal_data(100, 2);
    let options = FitOptions {
        epochs: 4,
        batch_size: 64,
        validation: Validation::Data(valid.clone()),
        ..Default::default()
    };
    let report = fit(&mut bn, &data, &options).unwrap();
    // The model comes back at its best epoch, finalised with the training
    // data; the validation NLL recorded for that epoch is the one it gives
    // now, which it would not be with stale statistics.
    let best = report.history[report.best_epoch - 1].valid_nll.unwrap();
    bn.set_training(false);
    let now = -bn.log_prob(&valid).mean();
    assert!(
        (best - now).abs() <= 1e-12 * (1.0 + now.abs()),
        "{best} vs {now}"
    );
}
