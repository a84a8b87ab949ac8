//! Fitting on bad or extreme input: a diverging fit keeps a usable model
//! and says which parameters it holds, a finite divergence is flagged, a run
//! of no epoch reports nothing NaN, batch normalisation is never fitted on a
//! batch of one, standardisation cannot overflow, and every field of a
//! checkpoint is checked before a run resumes from it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::{DMatrix, DVector};
use normflow::bijector::DataStage;
use normflow::conditional::stack_context;
use normflow::prelude::*;
use normflow::spec::FlowLayer;
use normflow::train::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

fn data(n: usize, seed: u64) -> DMatrix<f64> {
    let d = Normal::new(
        DVector::from_vec(vec![3.0, -1.0]),
        DVector::from_vec(vec![0.5, 2.0]),
    )
    .unwrap();
    d.sample(n, &mut StdRng::seed_from_u64(seed))
}

/// A fresh folder for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "normflow-fit-reliability-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Options whose learning rate is multiplied by 10³⁰ after every epoch of
/// four batches: the first epoch trains normally, then the parameters run
/// off to infinity and the loss stops being finite.
fn exploding(validation: bool) -> FitOptions<f64> {
    FitOptions {
        epochs: 30,
        batch_size: 75,
        learning_rate: 1e-3,
        schedule: Schedule::Step {
            every: 4,
            gamma: 1e30,
        },
        validation: if validation {
            Validation::Fraction(0.25)
        } else {
            Validation::None
        },
        ..Default::default()
    }
}

fn params(model: &FlowModel<f64>) -> Vec<f64> {
    model.flow().params_to_vec()
}

#[test]
fn divergence_keeps_the_best_validation_parameters() {
    let dir = temp_dir("diverge");
    let ck = dir.join("run.ckpt");
    let train = data(400, 1);
    let mut model = FlowModel::<f64>::new(&flow!(maf(hidden = 8) >> batchnorm), 2, 0).unwrap();
    let opts = FitOptions {
        checkpoint: Some(ck.clone()),
        ..exploding(true)
    };
    let e = fit(&mut model, &train, &opts).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Training { .. }), "{msg}");
    assert!(
        msg.contains("the model holds the parameters of epoch"),
        "{msg}"
    );
    assert!(!msg.contains("NaN"), "{msg}");
    // The checkpoint of the last completed epoch holds the best parameters.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&ck).unwrap()).unwrap();
    let best: Vec<f64> = serde_json::from_value(saved["best_params"].clone()).unwrap();
    let best_epoch = saved["report"]["best_epoch"].as_u64().unwrap();
    assert!(best_epoch >= 1);
    assert!(
        msg.contains(&format!("epoch {best_epoch}, the best validation NLL")),
        "{msg}"
    );
    assert_eq!(params(&model), best);
    // Finalised as at a normal end: evaluation mode, finite densities, and
    // it saves and loads back the same.
    let FlowLayer::BatchNorm(bn) = &model.flow().layers()[1] else {
        panic!("layer 2 is batch norm")
    };
    assert!(!bn.is_training());
    let lp = model.log_prob(&train);
    assert!(lp.iter().all(|v| v.is_finite()), "{lp}");
    let path = dir.join("model.json");
    model.save(&path).unwrap();
    assert_eq!(FlowModel::<f64>::load(&path).unwrap().log_prob(&train), lp);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn divergence_without_validation_keeps_the_last_finite_parameters() {
    let train = data(300, 2);
    let mut model = FlowModel::<f64>::new(&flow!(maf(hidden = 8)), 2, 0).unwrap();
    let e = fit(&mut model, &train, &exploding(false)).unwrap_err();
    assert!(
        e.to_string()
            .contains("the model holds its last parameters with a finite loss"),
        "{e}"
    );
    assert!(params(&model).iter().all(|p| p.is_finite()));
    assert!(model.log_prob(&train).iter().all(|v| !v.is_nan()));
    assert!(FlowModel::<f64>::from_json(&model.to_json()).is_ok());
}

#[test]
fn conditional_divergence_keeps_a_usable_model() {
    let x = data(400, 3);
    let c = DMatrix::from_fn(1, 400, |_, j| (j % 7) as f64);
    let mut model = FlowModel::<f64>::conditional(&flow!(maf(hidden = 8)), 2, 1, 0).unwrap();
    let e = fit(&mut model, (&x, &c), &exploding(true)).unwrap_err();
    assert!(
        e.to_string()
            .contains("the model holds the parameters of epoch"),
        "{e}"
    );
    let lp = model.log_prob_given(&x, &c);
    assert!(lp.iter().all(|v| v.is_finite()), "{lp}");
    assert!(FlowModel::<f64>::from_json(&model.to_json()).is_ok());
}

/// NLL `θ²` of one parameter (its log-density is `−θ²`, the same for every
/// sample), recording the size of every batch it is given.
#[derive(Debug)]
struct Quadratic {
    theta: Vec<f64>,
    min_batch: usize,
    batches: Mutex<Vec<usize>>,
}

impl Quadratic {
    fn new(theta: f64, min_batch: usize) -> Self {
        Self {
            theta: vec![theta],
            min_batch,
            batches: Mutex::new(Vec::new()),
        }
    }
}

impl Distribution<f64> for Quadratic {
    fn dim(&self) -> usize {
        1
    }
    fn log_prob(&self, x: &DMatrix<f64>) -> DVector<f64> {
        DVector::from_element(x.ncols(), -self.theta[0] * self.theta[0])
    }
    fn sample(&self, n: usize, _: &mut dyn rand::Rng) -> DMatrix<f64> {
        DMatrix::zeros(1, n)
    }
}

impl normflow::Parameters<f64> for Quadratic {
    fn num_params(&self) -> usize {
        1
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

impl TrainableDensity<f64> for Quadratic {
    fn prepare_with_data(&mut self, _: &DMatrix<f64>, _: DataStage) {}
    fn mean_log_prob_and_grad(&self, x: &DMatrix<f64>, grad: &mut [f64]) -> Result<f64, Error> {
        self.batches.lock().unwrap().push(x.ncols());
        grad[0] += -2.0 * self.theta[0];
        Ok(-self.theta[0] * self.theta[0])
    }
    fn min_batch_size(&self) -> usize {
        self.min_batch
    }
}

#[test]
fn a_finite_divergence_is_flagged() {
    // One batch per epoch. Adam's first step has size lr·m̂/(√v̂ + ε) = lr·g/(|g| + ε)
    // (Kingma & Ba 2015, Algorithm 1), so with lr = 1000, θ goes from 1 to
    // 1 − 1000·2/(2 + 1e-8) ≈ −999: the NLL rises from θ² = 1 to ≈ 9.98e5.
    let mut q = Quadratic::new(1.0, 1);
    let opts = FitOptions {
        epochs: 3,
        batch_size: 8,
        learning_rate: 1e3,
        ..Default::default()
    };
    let r = fit(&mut q, &DMatrix::zeros(1, 8), &opts).unwrap();
    assert_eq!(r.history[0].train_nll, 1.0);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("rose from 1 (epoch 1) to 9.98e5 (epoch 2)")
            && r.warnings[0].contains("diverged"),
        "{}",
        r.warnings[0]
    );
    // A healthy run has none.
    let mut q = Quadratic::new(1.0, 1);
    let r = fit(
        &mut q,
        &DMatrix::zeros(1, 8),
        &FitOptions {
            learning_rate: 1e-2,
            ..opts
        },
    )
    .unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // Reports of older versions, without the field, still read.
    let mut v = serde_json::to_value(&r).unwrap();
    v.as_object_mut().unwrap().remove("warnings");
    let back: FitReport = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

#[test]
fn runs_without_a_completed_epoch_report_nothing_nan() {
    let train = data(100, 4);
    let mut model = FlowModel::<f64>::new(&flow!(maf(hidden = 4)), 2, 0).unwrap();
    let r = fit(
        &mut model,
        &train,
        &FitOptions {
            epochs: 0,
            validation: Validation::Fraction(0.2),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.epochs_run, r.best_epoch, r.steps), (0, 0, 0));
    assert!(r.history.is_empty() && r.best_valid_nll.is_none());
    assert_eq!(r.last_train_nll(), None);
    assert!(model.log_prob(&train).iter().all(|v| v.is_finite()));
    // Interrupted at the first step: no epoch completed.
    let r = fit_with_observer(
        &mut model,
        &train,
        &FitOptions {
            validation: Validation::Fraction(0.2),
            ..Default::default()
        },
        &mut |_| false,
    )
    .unwrap();
    assert!(r.interrupted && r.history.is_empty());
    assert_eq!((r.best_epoch, r.steps, r.best_valid_nll), (0, 1, None));
    assert_eq!(r.last_train_nll(), None);
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("NaN"), "{text}");
    // No step at all when the step budget is 0.
    let r = fit(
        &mut model,
        &train,
        &FitOptions {
            max_steps: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.epochs_run, r.steps), (0, 0));
}

#[test]
fn batch_norm_is_never_fitted_on_one_sample() {
    let train = data(50, 5);
    let spec = flow!(maf(hidden = 4) >> batchnorm);
    let mut model = FlowModel::<f64>::new(&spec, 2, 0).unwrap();
    assert_eq!(model.min_batch_size(), 2);
    let e = fit(
        &mut model,
        &train,
        &FitOptions {
            batch_size: 1,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("batch_size") && e.to_string().contains("batchnorm"),
        "{e}"
    );
    let e = fit(
        &mut model,
        &train.columns(0, 1).into_owned(),
        &FitOptions {
            batch_size: 2,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("batchnorm"), "{e}");
    // The conditional model too.
    let mut cm = FlowModel::<f64>::conditional(&spec, 2, 1, 0).unwrap();
    let c = DMatrix::zeros(1, 50);
    let e = fit(
        &mut cm,
        (&train, &c),
        &FitOptions {
            batch_size: 1,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("batch_size"), "{e}");
    // Without batch norm, a batch of one is fine.
    let mut plain = FlowModel::<f64>::new(&flow!(maf(hidden = 4)), 2, 0).unwrap();
    assert_eq!(plain.min_batch_size(), 1);
    let opts = FitOptions {
        epochs: 1,
        batch_size: 1,
        ..Default::default()
    };
    assert!(fit(&mut plain, &train, &opts).is_ok());
    // 11 samples in batches of 5: a model that needs 2 per batch gets 5 and 6
    // (the lone last sample joins the batch before it); one that does not
    // gets 5, 5 and 1.
    for (min, want) in [(2, vec![5, 6, 5, 6]), (1, vec![5, 5, 1, 5, 5, 1])] {
        let mut q = Quadratic::new(1.0, min);
        let opts = FitOptions {
            epochs: 2,
            batch_size: 5,
            ..Default::default()
        };
        fit(&mut q, &DMatrix::zeros(1, 11), &opts).unwrap();
        assert_eq!(*q.batches.lock().unwrap(), want);
    }
    // A fitted batch-norm model stores a positive variance.
    let opts = FitOptions {
        epochs: 1,
        batch_size: 7, // 50 = 7·7 + 1
        ..Default::default()
    };
    fit(&mut model, &train, &opts).unwrap();
    let FlowLayer::BatchNorm(bn) = &model.flow().layers()[1] else {
        panic!("layer 2 is batch norm")
    };
    assert!(bn.running_var().iter().all(|v| *v > 0.0));
}

/// The per-row mean and standard deviation of `m` by the textbook two-pass
/// formula (the reference, on data where it cannot overflow).
fn row_stats(m: &DMatrix<f64>) -> Vec<(f64, f64)> {
    m.row_iter()
        .map(|r| {
            let mean = r.mean();
            let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / r.len() as f64;
            (mean, var.sqrt())
        })
        .collect()
}

#[test]
fn standardization_cannot_overflow() {
    let base = data(500, 6);
    // Scaling the data by 10^160 scales its mean and deviation by 10^160
    // exactly (up to rounding); the textbook variance would overflow.
    let big = &base * 1e160;
    let mut model = FlowModel::<f64>::new(&flow!(maf(hidden = 4)), 2, 0).unwrap();
    model.standardize_from(&big).unwrap();
    let s = model.standardization().unwrap();
    for (i, (m, sd)) in row_stats(&base).into_iter().enumerate() {
        assert!(
            (s.mean[i] / 1e160 - m).abs() < 1e-12 * m.abs().max(1.0),
            "{s:?}"
        );
        assert!((s.std[i] / 1e160 - sd).abs() < 1e-12 * sd, "{s:?}");
    }
    assert!(model.log_prob(&big).iter().all(|v| v.is_finite()));
    let opts = FitOptions {
        epochs: 2,
        batch_size: 100,
        standardize: true,
        ..Default::default()
    };
    fit(&mut model, &big, &opts).unwrap();
    assert!(model.log_prob(&big).iter().all(|v| v.is_finite()));

    // Near the largest finite numbers, with both signs.
    let extreme = DMatrix::from_fn(2, 6, |i, j| {
        if i == 0 {
            [1.7e308, -1.7e308][j % 2]
        } else {
            5e307 * (j as f64 - 2.5)
        }
    });
    let mut model = FlowModel::<f64>::new(&flow!(maf(hidden = 4)), 2, 0).unwrap();
    model.standardize_from(&extreme).unwrap();
    let s = model.standardization().unwrap();
    assert!(s.std.iter().all(|v| v.is_finite() && *v > 0.0), "{s:?}");
    assert!(model.log_prob(&extreme).iter().all(|v| !v.is_nan()));

    // Contexts of a conditional model likewise.
    let mut cm = FlowModel::<f64>::conditional(&flow!(maf(hidden = 4)), 2, 1, 0).unwrap();
    let c = DMatrix::from_fn(1, 500, |_, j| 1e160 * (j as f64));
    cm.standardize_from_given(&big, &c).unwrap();
    let cs = cm.context_standardization().unwrap();
    assert!(cs.std[0].is_finite() && cs.std[0] > 0.0);
    assert!(cm.log_prob_given(&big, &c).iter().all(|v| v.is_finite()));

    // A spread too small for f32: refused, naming the dimension.
    let tiny = DMatrix::from_fn(2, 100, |i, j| {
        if i == 0 && j == 0 {
            f32::from_bits(1) // the smallest positive f32, 1.4e-45
        } else if i == 0 {
            0.0
        } else {
            j as f32
        }
    });
    let mut m32 = FlowModel::<f32>::new(&flow!(maf(hidden = 4)), 2, 0).unwrap();
    let e = m32.standardize_from(&tiny).unwrap_err();
    assert!(e.to_string().contains("dimension 0"), "{e}");
}

#[test]
fn a_negative_learning_rate_names_the_option_and_the_value() {
    let mut model = FlowModel::<f64>::new(&flow!(maf(hidden = 4)), 2, 0).unwrap();
    let e = fit(
        &mut model,
        &data(20, 7),
        &FitOptions {
            learning_rate: -1e-3,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("`learning_rate`") && e.to_string().contains("-0.001"),
        "{e}"
    );
}

// ---- checkpoints ----

fn ck_spec() -> FlowSpec {
    flow!(actnorm >> maf(hidden = 4) >> batchnorm)
}

fn ck_options() -> FitOptions<f64> {
    FitOptions {
        epochs: 3,
        batch_size: 30,
        validation: Validation::Fraction(0.25),
        seed: 4,
        ..Default::default()
    }
}

/// A checkpoint after two epochs of a small run, as JSON.
fn checkpoint() -> &'static Value {
    static CK: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    CK.get_or_init(|| {
        let dir = temp_dir("ck");
        let path = dir.join("run.ckpt");
        let mut model = FlowModel::<f64>::new(&ck_spec(), 2, 1).unwrap();
        let opts = FitOptions {
            epochs: 2,
            checkpoint: Some(path.clone()),
            ..ck_options()
        };
        fit(&mut model, &data(120, 8), &opts).unwrap();
        let v = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        v
    })
}

/// Resumes `ck_options` from the checkpoint `v` (written to `dir`).
fn resume(v: &Value, dir: &Path) -> Result<FitReport, Error> {
    let path = dir.join("run.ckpt");
    std::fs::write(&path, v.to_string()).unwrap();
    let mut model = FlowModel::<f64>::new(&ck_spec(), 2, 1).unwrap();
    let opts = FitOptions {
        resume: Some(path),
        ..ck_options()
    };
    fit(&mut model, &data(120, 8), &opts)
}

/// `v` with the value at `path` (keys and indices) replaced, or removed
/// (the key, or the last entry of the array) when `x` is `None`; unchanged
/// when the path does not lead anywhere.
fn set(v: &Value, path: &[Value], x: Option<Value>) -> Value {
    let mut out = v.clone();
    let Some((last, parents)) = path.split_last() else {
        return out;
    };
    let pointer: String = parents
        .iter()
        .map(|step| match step {
            Value::String(k) => format!("/{k}"),
            other => format!("/{other}"),
        })
        .collect();
    if let Some(cur) = out.pointer_mut(&pointer) {
        match (last, x) {
            (Value::String(k), Some(x)) => {
                if let Some(o) = cur.as_object_mut() {
                    o.insert(k.clone(), x);
                }
            }
            (Value::String(k), None) => {
                if let Some(o) = cur.as_object_mut() {
                    o.remove(k);
                }
            }
            (Value::Number(i), Some(x)) => {
                if let Some(slot) = cur.get_mut(i.as_u64().unwrap_or(0) as usize) {
                    *slot = x;
                }
            }
            (_, None) => {
                if let Some(a) = cur.as_array_mut() {
                    a.pop();
                }
            }
            _ => {}
        }
    }
    out
}

/// The saved model inside a checkpoint, edited.
fn with_model(v: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut model: Value = serde_json::from_str(v["model"].as_str().unwrap()).unwrap();
    edit(&mut model);
    set(v, &[json!("model")], Some(json!(model.to_string())))
}

#[test]
fn a_valid_checkpoint_resumes_and_an_old_one_too() {
    let dir = temp_dir("resume");
    let v = checkpoint();
    let r = resume(v, &dir).unwrap();
    assert_eq!(r.epochs_run, 3);
    // Checkpoints written before the report had warnings.
    let old = set(v, &[json!("report"), json!("warnings")], None);
    assert_eq!(resume(&old, &dir).unwrap(), r);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupted_checkpoints_name_the_field() {
    let dir = temp_dir("corrupt");
    let v = checkpoint();
    assert!(v["best_valid"].is_number(), "{}", v["best_valid"]);
    let k = |s: &str| json!(s);
    let cases: Vec<(Value, &str)> = vec![
        (
            set(v, &[k("adam"), k("v"), json!(0)], Some(json!(-1.0))),
            "field `adam.v[0]`",
        ),
        (
            set(v, &[k("adam"), k("m"), json!(0)], None),
            "field `adam.m`",
        ),
        (
            set(v, &[k("adam"), k("t")], Some(json!(999))),
            "field `adam.t`",
        ),
        (
            set(v, &[k("adam"), k("beta1")], Some(json!(1.5))),
            "field `adam.beta1`",
        ),
        (
            set(v, &[k("adam"), k("m")], Some(json!("zeros"))),
            "field `adam`",
        ),
        (
            set(v, &[k("best_params"), json!(0)], None),
            "field `best_params`",
        ),
        (
            set(v, &[k("best_params"), json!(0)], Some(json!("NaN"))),
            "field `best_params`",
        ),
        (
            set(v, &[k("best_valid")], Some(json!(123.0))),
            "field `best_valid`",
        ),
        (
            set(v, &[k("since_best")], Some(json!(99))),
            "field `since_best`",
        ),
        (
            set(v, &[k("report"), k("epochs_run")], Some(json!(99))),
            "field `report.epochs_run`",
        ),
        (
            set(v, &[k("report"), k("best_epoch")], Some(json!(5))),
            "field `report.best_epoch`",
        ),
        (
            set(
                v,
                &[k("report"), k("history"), json!(0), k("epoch")],
                Some(json!(7)),
            ),
            "field `report.history[0]`",
        ),
        (
            set(
                v,
                &[k("report"), k("history"), json!(0), k("train_nll")],
                Some(json!("NaN")),
            ),
            "field `report`",
        ),
        (
            set(v, &[k("num_params")], Some(json!(3))),
            "field `num_params`",
        ),
        (
            set(v, &[k("format")], Some(json!("normflow-model"))),
            "not a checkpoint",
        ),
        (set(v, &[k("version")], Some(json!(99))), "field `version`"),
        (
            with_model(v, |m| m["state"][4] = json!(-2.0)),
            "field `model.state`: layer 3 (batchnorm): running variance[1] is -2, expected ≥ 0",
        ),
        (
            with_model(v, |m| {
                m["params"].as_array_mut().unwrap().pop();
            }),
            "field `model.params`",
        ),
        (
            // The same parameters, another spec.
            with_model(v, |m| {
                m["spec"] = json!("actnorm >> maf(hidden = 4, activation = tanh) >> batchnorm")
            }),
            "field `model`: the checkpoint holds a model of",
        ),
        (
            set(v, &[k("model")], Some(json!("{ not json"))),
            "field `model`: not valid JSON",
        ),
    ];
    for (bad, want) in cases {
        let e = resume(&bad, &dir).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Format { .. }), "{msg}");
        assert!(msg.contains(want), "expected {want:?} in: {msg}");
        assert!(msg.contains("run.ckpt"), "{msg}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A JSON value of any kind, including the awkward ones.
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        (0u64..8).prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
        prop::sample::select(vec!["NaN", "inf", "-1", "", "{}", "[]"]).prop_map(|s| json!(s)),
        prop::collection::vec(any::<f64>(), 0..4).prop_map(|v| json!(v)),
    ]
}

/// Where a mutation of a checkpoint lands.
fn any_path() -> impl Strategy<Value = Vec<Value>> {
    prop::sample::select(vec![
        vec![json!("format")],
        vec![json!("version")],
        vec![json!("num_params")],
        vec![json!("model")],
        vec![json!("best_params")],
        vec![json!("best_params"), json!(0)],
        vec![json!("best_valid")],
        vec![json!("since_best")],
        vec![json!("adam")],
        vec![json!("adam"), json!("t")],
        vec![json!("adam"), json!("m")],
        vec![json!("adam"), json!("v"), json!(1)],
        vec![json!("adam"), json!("learning_rate")],
        vec![json!("adam"), json!("eps")],
        vec![json!("report"), json!("epochs_run")],
        vec![json!("report"), json!("best_epoch")],
        vec![json!("report"), json!("steps")],
        vec![json!("report"), json!("warnings")],
        vec![json!("report"), json!("history")],
        vec![
            json!("report"),
            json!("history"),
            json!(1),
            json!("valid_nll"),
        ],
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(32) })]

    /// Random mutations of a checkpoint: resuming returns a report or an
    /// error, never panics, and a report it returns has finite NLLs.
    #[test]
    fn mutated_checkpoints_never_panic(
        edits in prop::collection::vec((any_path(), prop::option::weighted(0.9, any_json())), 1..3)
    ) {
        let mut v = checkpoint().clone();
        for (path, x) in edits {
            v = set(&v, &path, x);
        }
        let dir = temp_dir("fuzz");
        if let Ok(r) = resume(&v, &dir) {
            prop_assert!(r.history.iter().all(|h| h.train_nll.is_finite()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn conditional_checkpoints_are_checked_too() {
    let dir = temp_dir("cond");
    let path = dir.join("run.ckpt");
    let x = data(80, 9);
    let c = DMatrix::from_fn(1, 80, |_, j| (j % 5) as f64);
    let spec = flow!(maf(hidden = 4) >> batchnorm);
    let opts = FitOptions {
        epochs: 1,
        batch_size: 20,
        validation: Validation::Data(stack_context(&x, &c)),
        checkpoint: Some(path.clone()),
        ..Default::default()
    };
    let mut m = FlowModel::<f64>::conditional(&spec, 2, 1, 0).unwrap();
    fit(&mut m, (&x, &c), &opts).unwrap();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let bad = with_model(&v, |m| m["state"][3] = json!(-1.0));
    std::fs::write(&path, bad.to_string()).unwrap();
    let mut fresh = FlowModel::<f64>::conditional(&spec, 2, 1, 0).unwrap();
    let resume = FitOptions {
        epochs: 2,
        checkpoint: None,
        resume: Some(path.clone()),
        ..opts
    };
    let e = fit(&mut fresh, (&x, &c), &resume).unwrap_err();
    assert!(
        e.to_string()
            .contains("field `model.state`: layer 2 (batchnorm): running variance[1] is -1"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
