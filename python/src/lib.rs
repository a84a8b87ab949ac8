//! The compiled core of the `normflow` Python package: a flow model in
//! `float32` or `float64` with fitting, densities, sampling and JSON
//! round trips. The Python layer (`normflow/__init__.py`) checks and
//! converts the arrays and gives the scikit-learn-style API.
//!
//! Arrays cross the boundary as C-ordered `(n, D)` numpy arrays, whose
//! memory is exactly the library's column-major `D × n` batch: no transpose.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use normflow::nalgebra::{DMatrix, DVector};
use normflow::rand::SeedableRng;
use normflow::train::{
    FitEvent, FitOptions, FlowModel, LogDensity, Validation, VariationalOptions, fit_variational,
    fit_with_observer,
};
use normflow::{Distribution, FlowSpec, Real};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

create_exception!(
    normflow,
    SpecError,
    PyValueError,
    "A flow spec that does not parse; the message shows where, with a caret."
);

/// A library error as the Python exception that fits it.
fn py_err(e: normflow::Error) -> PyErr {
    match e {
        normflow::Error::Parse(p) => SpecError::new_err(p.to_string()),
        normflow::Error::Io { .. } => pyo3::exceptions::PyOSError::new_err(e.to_string()),
        normflow::Error::Training { .. } => PyRuntimeError::new_err(e.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// Checks a flow spec; raises `SpecError` with the caret message.
#[pyfunction]
fn parse_spec(text: &str) -> PyResult<String> {
    FlowSpec::parse(text)
        .map(|s| s.to_string())
        .map_err(|e| SpecError::new_err(e.to_string()))
}

/// The model in one of the two precisions.
enum Any {
    F32(FlowModel<f32>),
    F64(FlowModel<f64>),
}

/// Runs `$e` with `$m` bound to the model and `$t` to its scalar type.
macro_rules! with_model {
    ($self:expr, $m:ident, $t:ident => $e:expr) => {
        match $self {
            Any::F32($m) => {
                type $t = f32;
                $e
            }
            Any::F64($m) => {
                type $t = f64;
                $e
            }
        }
    };
}

/// A `(n, D)` C-ordered array as the library's `D × n` batch (one copy).
fn batch<T: Real + numpy::Element>(a: &PyReadonlyArray2<'_, T>) -> PyResult<DMatrix<T>> {
    let (n, d) = (a.shape()[0], a.shape()[1]);
    let s = a
        .as_slice()
        .map_err(|_| PyValueError::new_err("internal: the array is not C-contiguous"))?;
    Ok(DMatrix::from_column_slice(d, n, s))
}

/// A `D × n` batch as a `(n, D)` numpy array.
fn array<'py, T: Real + numpy::Element>(
    py: Python<'py>,
    m: DMatrix<T>,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let (d, n) = m.shape();
    PyArray1::from_vec(py, m.as_slice().to_vec()).reshape([n, d])
}

/// Batches of at most this many numbers are evaluated without releasing
/// the GIL (releasing and taking it back costs more than they do).
const SMALL: usize = 512;

/// Whether the time since `last` passed `every`; resets it if so.
fn due(last: &mut Instant, every: Duration) -> bool {
    if last.elapsed() >= every {
        *last = Instant::now();
        true
    } else {
        false
    }
}

/// `(log_z, log_z_se, ess, pareto_k)` of a variational fit.
type Diagnostics = (f64, f64, f64, f64);

/// The compiled model: build, fit, evaluate, sample, serialise.
#[pyclass(module = "normflow._normflow", name = "Model")]
struct Model {
    inner: Any,
}

#[pymethods]
impl Model {
    /// A fresh model of `spec` on `dim` coordinates (and a context of
    /// `context_dim`, 0 for none), in `dtype` ("float32" or "float64").
    #[new]
    fn new(spec: &str, dim: usize, context_dim: usize, seed: u64, dtype: &str) -> PyResult<Self> {
        let spec = FlowSpec::parse(spec).map_err(|e| SpecError::new_err(e.to_string()))?;
        let inner = match (dtype, context_dim) {
            ("float32", 0) => Any::F32(FlowModel::new(&spec, dim, seed).map_err(py_err)?),
            ("float32", c) => {
                Any::F32(FlowModel::conditional(&spec, dim, c, seed).map_err(py_err)?)
            }
            ("float64", 0) => Any::F64(FlowModel::new(&spec, dim, seed).map_err(py_err)?),
            ("float64", c) => {
                Any::F64(FlowModel::conditional(&spec, dim, c, seed).map_err(py_err)?)
            }
            (other, _) => {
                return Err(PyValueError::new_err(format!(
                    "dtype must be \"float32\" or \"float64\", got {other:?}"
                )));
            }
        };
        Ok(Self { inner })
    }

    /// The model read from JSON text (the CLI's model files).
    #[staticmethod]
    fn from_json(text: &str, dtype: &str) -> PyResult<Self> {
        let inner = match dtype {
            "float32" => Any::F32(FlowModel::from_json(text).map_err(py_err)?),
            "float64" => Any::F64(FlowModel::from_json(text).map_err(py_err)?),
            other => {
                return Err(PyValueError::new_err(format!(
                    "dtype must be \"float32\" or \"float64\", got {other:?}"
                )));
            }
        };
        Ok(Self { inner })
    }

    /// The model as JSON text.
    fn to_json(&self) -> String {
        with_model!(&self.inner, m, _T => m.to_json())
    }

    #[getter]
    fn dim(&self) -> usize {
        with_model!(&self.inner, m, _T => m.dim())
    }

    #[getter]
    fn context_dim(&self) -> usize {
        with_model!(&self.inner, m, _T => m.context_dim())
    }

    #[getter]
    fn spec(&self) -> String {
        with_model!(&self.inner, m, _T => m.spec().to_string())
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        match self.inner {
            Any::F32(_) => "float32",
            Any::F64(_) => "float64",
        }
    }

    #[getter]
    fn num_params(&self) -> usize {
        with_model!(&self.inner, m, _T => normflow::Parameters::num_params(m))
    }

    /// Fits by maximum likelihood, without the GIL. `x` (and `c`) are
    /// checked `(n, D)` (and `(n, C)`) arrays of the model's dtype.
    /// `observer(epoch, train_nll, valid_nll)` is called after each epoch
    /// and may stop the run by returning False; Ctrl-C stops it within a
    /// fraction of a second and raises KeyboardInterrupt, the model at its
    /// last good parameters. Returns the per-epoch history.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (x, c, epochs, batch_size, lr, validation, patience, seed, standardize, observer))]
    fn fit(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        c: Option<&Bound<'_, PyAny>>,
        epochs: usize,
        batch_size: usize,
        lr: f64,
        validation: f64,
        patience: Option<usize>,
        seed: u64,
        standardize: bool,
        observer: Option<Py<PyAny>>,
    ) -> PyResult<Vec<(usize, f64, Option<f64>)>> {
        with_model!(&mut self.inner, m, T => {
            let x: PyReadonlyArray2<'_, T> = x.extract()?;
            let x = batch(&x)?;
            let c = match c {
                Some(c) => {
                    let c: PyReadonlyArray2<'_, T> = c.extract()?;
                    Some(batch(&c)?)
                }
                None => None,
            };
            let options = FitOptions::<T> {
                epochs,
                batch_size,
                learning_rate: lr,
                seed,
                standardize,
                validation: if validation > 0.0 { Validation::Fraction(validation) } else { Validation::None },
                patience: if validation > 0.0 { patience } else { None },
                ..Default::default()
            };
            let interrupted = AtomicBool::new(false);
            let failure: Mutex<Option<PyErr>> = Mutex::new(None);
            let observer = observer.as_ref();
            let result = py.detach(|| {
                let mut last = Instant::now();
                let mut watch = |event: &FitEvent| -> bool {
                    let epoch_end = matches!(event, FitEvent::Epoch(_));
                    if !epoch_end && !due(&mut last, Duration::from_millis(100)) {
                        return true;
                    }
                    Python::attach(|py| {
                        if let Err(e) = py.check_signals() {
                            interrupted.store(true, Ordering::SeqCst);
                            *failure.lock().unwrap() = Some(e);
                            return false;
                        }
                        if let (FitEvent::Epoch(r), Some(f)) = (event, observer) {
                            match f.call1(py, (r.epoch, r.train_nll, r.valid_nll)) {
                                Ok(v) => return !v.bind(py).is(&*pyo3::types::PyBool::new(py, false)),
                                Err(e) => {
                                    *failure.lock().unwrap() = Some(e);
                                    return false;
                                }
                            }
                        }
                        true
                    })
                };
                match &c {
                    Some(c) => fit_with_observer(m, (&x, c), &options, &mut watch),
                    None => fit_with_observer(m, &x, &options, &mut watch),
                }
            });
            if let Some(e) = failure.lock().unwrap().take() {
                return Err(e);
            }
            if interrupted.load(Ordering::SeqCst) {
                return Err(PyKeyboardInterrupt::new_err("fit interrupted"));
            }
            let report = result.map_err(py_err)?;
            Ok(report.history.iter().map(|r| (r.epoch, r.train_nll, r.valid_nll)).collect())
        })
    }

    /// `log p(x)` (or `log p(x | c)`) of every row, without the GIL.
    #[pyo3(signature = (x, c=None))]
    fn log_prob<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        c: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_model!(&self.inner, m, T => {
            let x: PyReadonlyArray2<'_, T> = x.extract()?;
            let x = batch(&x)?;
            let c = match c {
                Some(c) => {
                    let c: PyReadonlyArray2<'_, T> = c.extract()?;
                    Some(batch(&c)?)
                }
                None => None,
            };
            let eval = || match &c {
                Some(c) => m.log_prob_given(&x, c),
                None => m.log_prob(&x),
            };
            // A small batch takes microseconds: not worth giving the GIL away.
            let lp: DVector<T> = if x.len() > SMALL { py.detach(eval) } else { eval() };
            Ok(PyArray1::from_vec(py, lp.as_slice().to_vec()).into_any())
        })
    }

    /// `n` samples (rows), or one per row of `c` for a conditional model.
    #[pyo3(signature = (n, c, seed))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        c: Option<&Bound<'py, PyAny>>,
        seed: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_model!(&self.inner, m, T => {
            let c = match c {
                Some(c) => {
                    let c: PyReadonlyArray2<'_, T> = c.extract()?;
                    Some(batch(&c)?)
                }
                None => None,
            };
            let x: DMatrix<T> = py.detach(|| {
                let mut rng = normflow::rand::rngs::StdRng::seed_from_u64(seed);
                match &c {
                    Some(c) => m.sample_given(c, &mut rng),
                    None => m.sample(n, &mut rng),
                }
            });
            Ok(array(py, x)?.into_any())
        })
    }

    /// Fits the model by reverse KL to a Python target: `target(x)` takes
    /// an `(n, D)` float64 array and returns `(log_p, grad)` arrays of
    /// shapes `(n,)` and `(n, D)`. Returns the ELBO per step and the
    /// diagnostics `(log_z, log_z_se, ess, pareto_k)` when drawn.
    fn fit_variational(
        &mut self,
        py: Python<'_>,
        target: Py<PyAny>,
        steps: u64,
        batch_size: usize,
        lr: f64,
        seed: u64,
    ) -> PyResult<(Vec<f64>, Option<Diagnostics>)> {
        let Any::F64(m) = &mut self.inner else {
            return Err(PyValueError::new_err(
                "fit_variational needs a float64 model (the target is evaluated in float64)",
            ));
        };
        let t = PyTarget {
            f: target,
            dim: m.dim(),
            failure: Mutex::new(None),
        };
        let options = VariationalOptions {
            steps,
            batch_size,
            learning_rate: lr,
            seed,
            ..Default::default()
        };
        let result = py.detach(|| {
            let mut last = Instant::now();
            fit_variational(m, &t, &options, &mut |_, _| {
                if !due(&mut last, Duration::from_millis(100)) {
                    return true;
                }
                Python::attach(|py| match py.check_signals() {
                    Ok(()) => true,
                    Err(e) => {
                        *t.failure.lock().unwrap() = Some(e);
                        false
                    }
                })
            })
        });
        if let Some(e) = t.failure.lock().unwrap().take() {
            return Err(e);
        }
        let report = result.map_err(py_err)?;
        let d = report
            .diagnostics
            .map(|d| (d.log_z, d.log_z_se, d.ess, d.pareto_k));
        Ok((report.elbo_history, d))
    }
}

/// A Python callable as a variational target. An exception raised by it
/// (or a result of the wrong shape) is kept and re-raised after the fit,
/// which stops at once (the values become NaN).
struct PyTarget {
    f: Py<PyAny>,
    dim: usize,
    failure: Mutex<Option<PyErr>>,
}

impl PyTarget {
    fn call(&self, x: &DMatrix<f64>) -> PyResult<(DVector<f64>, DMatrix<f64>)> {
        let n = x.ncols();
        Python::attach(|py| {
            let arr = array(py, x.clone())?;
            let out = self.f.call1(py, (arr,))?;
            let out = out.bind(py);
            let tuple = out.cast::<PyTuple>().map_err(|_| {
                PyValueError::new_err(
                    "the target must return (log_prob, grad): arrays of shapes (n,) and (n, D); \
                     its gradient is needed for reparameterised gradients",
                )
            })?;
            if tuple.len() != 2 {
                return Err(PyValueError::new_err(
                    "the target must return a pair (log_prob, grad)",
                ));
            }
            let lp: Vec<f64> = tuple.get_item(0)?.extract()?;
            let g: PyReadonlyArray2<'_, f64> = tuple.get_item(1)?.extract()?;
            if lp.len() != n || g.shape() != [n, self.dim] {
                return Err(PyValueError::new_err(format!(
                    "the target returned log_prob of length {} and grad of shape {:?}, \
                     expected ({n},) and ({n}, {})",
                    lp.len(),
                    g.shape(),
                    self.dim
                )));
            }
            Ok((DVector::from_vec(lp), batch(&g)?))
        })
    }
}

impl LogDensity<f64> for PyTarget {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_density(&self, x: &DMatrix<f64>) -> DVector<f64> {
        self.log_density_and_grad(x).0
    }
    fn log_density_and_grad(&self, x: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
        if self.failure.lock().unwrap().is_none() {
            match self.call(x) {
                Ok(r) => return r,
                Err(e) => *self.failure.lock().unwrap() = Some(e),
            }
        }
        let (d, n) = x.shape();
        (
            DVector::from_element(n, f64::NAN),
            DMatrix::from_element(d, n, f64::NAN),
        )
    }
}

#[pymodule]
fn _normflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(parse_spec, m)?)?;
    m.add("SpecError", m.py().get_type::<SpecError>())?;
    Ok(())
}
