use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

mod training;
pub(crate) use training::assert_backward_shapes;

/// The invertible batch normalisation of masked autoregressive flows
/// (Papamakarios, Pavlakou & Murray 2017, appendix B, "Batch normalization").
///
/// Like MAF itself, the layer is defined on **data**, in the inverse (density)
/// direction:
///
/// ```text
/// inverse (data → base):  u = exp(γ) ⊙ (x − m) / √(v + ε) + β
/// forward (base → data):  x = (u − β) ⊙ exp(−γ) ⊙ √(v + ε) + m
/// log|det ∂u/∂x| = Σᵢ (γᵢ − ½ log(vᵢ + ε))   (the inverse log-det)
/// log|det ∂x/∂u| = −Σᵢ (γᵢ − ½ log(vᵢ + ε))  (the forward log-det)
/// ```
///
/// `γ` (log-scale) and `β` (shift) are the learnable **parameters**, kept in one
/// buffer `[γ (D), β (D)]` ([`BatchNormalization::params`]). The mean `m` and
/// variance `v` are **state**, not parameters: nothing should differentiate
/// with respect to them.
///
/// # Training and evaluation modes
///
/// The layer carries a mode flag ([`is_training`](BatchNormalization::is_training),
/// switched by [`Parameters::set_training`](crate::Parameters::set_training)(crate::Parameters::set_training)).
/// It is not a parameter and it is **not serialised**: a new or deserialised
/// layer is always in evaluation mode (a loaded model scores and samples with
/// its stored statistics; a training loop switches the mode on explicitly).
///
/// - **Evaluation mode** (the default): both directions of the [`Bijector`]
///   impl (`forward`, `inverse`, the log-dets, and therefore sampling and
///   `log_prob` of a [`TransformedDistribution`](crate::TransformedDistribution))
///   use the **stored** statistics
///   ([`running_mean`](BatchNormalization::running_mean),
///   [`running_var`](BatchNormalization::running_var)).
/// - **Training mode**: the **inverse** (density) direction of the [`Bijector`]
///   impl (`inverse`, `inverse_log_det_jacobian`, `inverse_and_log_det`, hence
///   `log_prob`) normalises a batch of data with **that batch's own** mean and
///   biased (divide-by-`n`) variance. It takes `&self` and leaves the stored
///   statistics untouched. The **forward** (sampling) direction uses the stored
///   statistics in both modes: a batch being generated from the base has no
///   data statistics. So in training mode `forward` and `inverse` are inverse
///   to each other only when the stored statistics equal the batch's, and each
///   sample's output depends on the whole batch it arrives in.
/// - [`BatchNormalization::inverse_and_log_det_training`] (`&mut self`, in
///   either mode) returns exactly what training-mode `inverse_and_log_det`
///   returns and, in addition, folds the batch statistics into the stored ones
///   by an exponential moving average with
///   [`momentum`](BatchNormalization::momentum):
///   `m ← (1 − momentum)·m + momentum·m_batch`, and the same for `v` (default
///   momentum `0.1`, the PyTorch convention). It serves training loops that
///   keep running averages; a loop that finalises with the full training set
///   (below) does not need it.
///
/// As in the MAF paper and in nflows, the training-mode log-det **value** is
/// the per-sample formula above with `(m, v) = (m_batch, v_batch)`, not the
/// log-det of the whole batch as a function of all its samples. Its backward
/// pass ([`Differentiable::inverse_and_log_det_backward`](super::Differentiable::inverse_and_log_det_backward))
/// differentiates exactly what was computed, as an autodiff framework would:
/// the input gradient includes the paths through the batch mean and variance
/// (the standard batch-norm backward), and the log-det depends on `v_batch`
/// and hence on every sample. (So, unlike for other layers, the gradient of a
/// batch is not the sum of the gradients of its halves.)
///
/// The two modes give different maps whenever the stored statistics differ from
/// the batch's: a model that looks good during training can score differently in
/// evaluation. The MAF paper's remedy, after training, is to set the stored
/// statistics to those of the **full training set**
/// ([`BatchNormalization::compute_statistics`], or
/// [`prepare_with_data`](super::Differentiable::prepare_with_data) with
/// [`DataStage::Finalize`](super::DataStage::Finalize)); then evaluation mode on the training set is
/// exactly training mode on it as one batch.
///
/// # Identity initialisation
///
/// With `identity_init`, `γ = β = 0`, `m = 0` and `v = 1 − ε`. For every
/// `ε ∈ (0, 1)` the floating-point sum `(1 − ε) + ε` rounds to exactly `1` (the
/// rounding error of `1 − ε` is at most half an ulp below 1, which rounds back
/// up, and for `ε ≥ ½` the subtraction is exact), so `√(v + ε) = 1`,
/// `log(v + ε) = 0`, and a fresh layer is **exactly** the identity; this is why
/// `ε` must lie in `(0, 1)`. With `identity_init = false`, `γ` and `β` are drawn
/// uniformly from `[−0.1, 0.1]` and the statistics are the same as above.
///
/// **Costs.** Both directions, in both modes, are `O(D n)` for a batch of `n`
/// samples (training mode makes two extra passes for the batch statistics).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut bn = BatchNormalization::<f64>::new(2, true, &mut rng)?;
/// let data = DMatrix::from_row_slice(2, 4, &[1.0, 2.0, 3.0, 4.0, -5.0, 0.0, 5.0, 10.0]);
/// // A fresh layer is the identity.
/// assert_eq!(bn.inverse(&data), data);
///
/// // Training mode: the batch's own statistics, so each row of u has mean β = 0.
/// let (u, ldj) = bn.inverse_and_log_det_training(&data);
/// assert!(u.row(0).mean().abs() < 1e-12 && u.row(1).mean().abs() < 1e-12);
/// // log|det ∂u/∂x| = Σ (γ − ½ log(v + ε)), v = biased batch variance (1.25 and 31.25).
/// let expected = -0.5 * ((1.25_f64 + 1e-5).ln() + (31.25_f64 + 1e-5).ln());
/// assert!((ldj[0] - expected).abs() < 1e-12);
///
/// // The Bijector impl in training mode computes the same, without updating
/// // the stored statistics.
/// let mut train = bn.clone();
/// train.set_training(true);
/// assert_eq!(train.inverse_and_log_det(&data), (u.clone(), ldj.clone()));
/// assert_eq!(train.running_mean(), bn.running_mean());
///
/// // Evaluation mode with the statistics of the full data set agrees with it.
/// bn.compute_statistics(&data)?;
/// assert!((bn.inverse(&data) - &u).amax() < 1e-15);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BatchNormRepr<T>", into = "BatchNormRepr<T>")]
pub struct BatchNormalization<T: Real> {
    /// `[γ (D), β (D)]`.
    params: Vec<T>,
    running_mean: DVector<T>,
    running_var: DVector<T>,
    epsilon: T,
    momentum: T,
    /// Training mode (not serialised; see the type's docs).
    training: bool,
}

#[derive(Serialize, Deserialize)]
struct BatchNormRepr<T: Real> {
    params: Vec<T>,
    running_mean: Vec<T>,
    running_var: Vec<T>,
    epsilon: T,
    momentum: T,
}

impl<T: Real> From<BatchNormalization<T>> for BatchNormRepr<T> {
    fn from(b: BatchNormalization<T>) -> Self {
        BatchNormRepr {
            params: b.params,
            running_mean: b.running_mean.as_slice().to_vec(),
            running_var: b.running_var.as_slice().to_vec(),
            epsilon: b.epsilon,
            momentum: b.momentum,
        }
    }
}

impl<T: Real> TryFrom<BatchNormRepr<T>> for BatchNormalization<T> {
    type Error = Error;
    fn try_from(r: BatchNormRepr<T>) -> Result<Self, Error> {
        const CTX: &str = "BatchNormalization (deserialised)";
        let running_mean = DVector::from_vec(r.running_mean);
        let running_var = DVector::from_vec(r.running_var);
        let d = running_mean.len();
        check::dim_at_least_one(CTX, "running_mean", d)?;
        check::same_dim(CTX, "params", 2 * d, r.params.len())?;
        for (i, p) in r.params.iter().enumerate() {
            if !p.is_finite() {
                return Err(check::invalid(CTX, &format!("params[{i}]"), "finite", p));
            }
        }
        check_epsilon(CTX, r.epsilon)?;
        check_momentum(CTX, r.momentum)?;
        check_statistics(CTX, d, &running_mean, &running_var)?;
        Ok(Self {
            params: r.params,
            running_mean,
            running_var,
            epsilon: r.epsilon,
            momentum: r.momentum,
            training: false,
        })
    }
}

fn check_epsilon<T: Real>(ctx: &str, epsilon: T) -> Result<(), Error> {
    if !(epsilon.is_finite() && epsilon > T::zero() && epsilon < T::one()) {
        return Err(check::invalid(
            ctx,
            "epsilon",
            "in the open interval (0, 1)",
            epsilon,
        ));
    }
    Ok(())
}

fn check_momentum<T: Real>(ctx: &str, momentum: T) -> Result<(), Error> {
    if !(momentum.is_finite() && momentum >= T::zero() && momentum <= T::one()) {
        return Err(check::invalid(ctx, "momentum", "in [0, 1]", momentum));
    }
    Ok(())
}

fn check_statistics<T: Real>(
    ctx: &str,
    dim: usize,
    mean: &DVector<T>,
    var: &DVector<T>,
) -> Result<(), Error> {
    check::same_dim(ctx, "mean", dim, mean.len())?;
    check::same_dim(ctx, "var", dim, var.len())?;
    check::finite_vec(ctx, "mean", mean)?;
    for (i, v) in var.iter().enumerate() {
        if !(v.is_finite() && *v >= T::zero()) {
            return Err(check::invalid(
                ctx,
                &format!("var[{i}]"),
                "finite and non-negative",
                v,
            ));
        }
    }
    Ok(())
}

/// Per-row mean and biased (divide-by-`n`) variance of a `D × n` batch, by two
/// passes (mean first, then the mean squared deviation), which avoids the
/// cancellation of `E[x²] − E[x]²`. `n` must be at least 1.
pub(crate) fn row_statistics<T: Real>(x: &DMatrix<T>) -> (DVector<T>, DVector<T>) {
    let (d, n) = x.shape();
    let inv_n = T::one() / T::lit(n as f64);
    let mut mean = DVector::zeros(d);
    let mut var = DVector::zeros(d);
    for i in 0..d {
        let row = x.row(i);
        let m = row.iter().fold(T::zero(), |a, &v| a + v) * inv_n;
        let s = row.iter().fold(T::zero(), |a, &v| {
            let dv = v - m;
            a + dv * dv
        });
        mean[i] = m;
        var[i] = s * inv_n;
    }
    (mean, var)
}

impl<T: Real> BatchNormalization<T> {
    /// The default `ε` added to the variance, `1e-5` (PyTorch, nflows).
    pub const DEFAULT_EPSILON: f64 = 1e-5;
    /// The default momentum of the running statistics, `0.1` (PyTorch, nflows).
    pub const DEFAULT_MOMENTUM: f64 = 0.1;

    /// A batch normalisation layer over `dim` coordinates with the default `ε`
    /// ([`Self::DEFAULT_EPSILON`]) and momentum ([`Self::DEFAULT_MOMENTUM`]).
    /// With `identity_init` the layer is exactly the identity; otherwise `γ` and
    /// `β` are drawn uniformly from `[−0.1, 0.1]` using `rng`.
    pub fn new(dim: usize, identity_init: bool, rng: &mut dyn Rng) -> Result<Self, Error> {
        Self::with_options(
            dim,
            T::lit(Self::DEFAULT_EPSILON),
            T::lit(Self::DEFAULT_MOMENTUM),
            identity_init,
            rng,
        )
    }

    /// As [`BatchNormalization::new`] with a chosen `epsilon ∈ (0, 1)` and
    /// `momentum ∈ [0, 1]` (0 freezes the stored statistics during training, 1
    /// replaces them by each batch's).
    pub fn with_options(
        dim: usize,
        epsilon: T,
        momentum: T,
        identity_init: bool,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "BatchNormalization::new";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check_epsilon(CTX, epsilon)?;
        check_momentum(CTX, momentum)?;
        let params = if identity_init {
            vec![T::zero(); 2 * dim]
        } else {
            (0..2 * dim)
                .map(|_| T::lit(rng.random_range(-0.1..0.1)))
                .collect()
        };
        Ok(Self {
            params,
            running_mean: DVector::zeros(dim),
            // (1 − ε) + ε == 1 exactly for ε ∈ (0, 1): see the type's docs.
            running_var: DVector::from_element(dim, T::one() - epsilon),
            epsilon,
            momentum,
            training: false,
        })
    }

    fn dim_(&self) -> usize {
        self.running_mean.len()
    }

    /// The log-scales `γ` (the first `D` parameters).
    pub fn log_scale(&self) -> &[T] {
        &self.params[..self.dim_()]
    }

    /// The shifts `β` (the last `D` parameters).
    pub fn shift(&self) -> &[T] {
        &self.params[self.dim_()..]
    }

    /// All parameters in one buffer: `[γ (D), β (D)]`. The statistics are not
    /// parameters.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameter buffer `[γ (D), β (D)]`.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `2 D`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The stored mean `m` used in evaluation mode.
    pub fn running_mean(&self) -> &DVector<T> {
        &self.running_mean
    }

    /// The stored (biased) variance `v` used in evaluation mode.
    pub fn running_var(&self) -> &DVector<T> {
        &self.running_var
    }

    /// The `ε` added to every variance.
    pub fn epsilon(&self) -> T {
        self.epsilon
    }

    /// The momentum of the running statistics.
    pub fn momentum(&self) -> T {
        self.momentum
    }

    /// Whether the layer is in training mode (see the type's docs); set it with
    /// [`Parameters::set_training`](crate::Parameters::set_training)(crate::Parameters::set_training).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Sets the evaluation-mode statistics. Errors (naming `mean` or `var[i]`)
    /// unless both have length `D`, every entry is finite and every variance is
    /// non-negative.
    pub fn set_statistics(&mut self, mean: DVector<T>, var: DVector<T>) -> Result<(), Error> {
        check_statistics(
            "BatchNormalization::set_statistics",
            self.dim_(),
            &mean,
            &var,
        )?;
        self.running_mean = mean;
        self.running_var = var;
        Ok(())
    }

    /// Sets the evaluation-mode statistics to the mean and biased variance of
    /// `data` (`D × n`, one column per sample), typically the **full training
    /// set** after training (the MAF paper's choice). Afterwards, evaluation mode
    /// on `data` equals training mode on `data` as one batch.
    ///
    /// Errors if `data` has the wrong number of rows, no columns, a non-finite
    /// entry, or a variance that overflows.
    pub fn compute_statistics(&mut self, data: &DMatrix<T>) -> Result<(), Error> {
        const CTX: &str = "BatchNormalization::compute_statistics";
        check::same_dim(CTX, "data", self.dim_(), data.nrows())?;
        if data.ncols() == 0 {
            return Err(Error::InvalidDimension {
                context: CTX.into(),
                argument: "data".into(),
                expected: "at least 1 sample (column)".into(),
                got: 0,
            });
        }
        check::finite_mat(CTX, "data", data)?;
        let (mean, var) = row_statistics(data);
        check_statistics(CTX, self.dim_(), &mean, &var)?;
        self.running_mean = mean;
        self.running_var = var;
        Ok(())
    }

    /// The per-coordinate mean and biased variance of a batch, as training
    /// mode computes them.
    ///
    /// # Panics
    /// If `x` has the wrong number of rows or no columns.
    pub fn batch_statistics(&self, x: &DMatrix<T>) -> (DVector<T>, DVector<T>) {
        assert_rows("BatchNormalization::batch_statistics", self.dim_(), x);
        assert!(
            x.ncols() > 0,
            "BatchNormalization::batch_statistics: the batch has no samples (columns)"
        );
        row_statistics(x)
    }

    /// Training mode with running averages: `(u, log|det ∂u/∂x|)` for a batch
    /// of **data** `x`, normalised with the batch's own mean and biased
    /// variance, which are then folded into the stored statistics
    /// (`m ← (1 − momentum) m + momentum m_batch`, likewise `v`). Whatever the
    /// mode flag, the result equals what `inverse_and_log_det` returns in
    /// training mode (which takes `&self` and does not update the statistics);
    /// the backward pass of that call is the gradient of this one. The log-det
    /// is the per-sample formula with the batch statistics (see the type's docs). A batch with a non-finite entry gives non-finite
    /// outputs and leaves the stored statistics unchanged.
    ///
    /// # Panics
    /// If `x` has the wrong number of rows or no columns.
    pub fn inverse_and_log_det_training(&mut self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows(
            "BatchNormalization::inverse_and_log_det_training",
            self.dim_(),
            x,
        );
        assert!(
            x.ncols() > 0,
            "BatchNormalization::inverse_and_log_det_training: the batch has no samples (columns)"
        );
        let (mean, var) = row_statistics(x);
        let out = self.normalize(x, &mean, &var);
        if mean.iter().chain(var.iter()).all(|v| v.is_finite()) {
            let keep = T::one() - self.momentum;
            self.running_mean = &self.running_mean * keep + &mean * self.momentum;
            self.running_var = &self.running_var * keep + &var * self.momentum;
        }
        out
    }

    /// `Σᵢ (γᵢ − ½ log(vᵢ + ε))`: the inverse log-det for statistics `var`.
    fn inverse_log_det(&self, var: &DVector<T>) -> T {
        let half = T::lit(0.5);
        self.log_scale()
            .iter()
            .zip(var.iter())
            .fold(T::zero(), |a, (&g, &v)| {
                a + g - half * (v + self.epsilon).ln()
            })
    }

    /// `u = exp(γ)(x − m)/√(v + ε) + β` and its log-det, for given statistics.
    fn normalize(
        &self,
        x: &DMatrix<T>,
        mean: &DVector<T>,
        var: &DVector<T>,
    ) -> (DMatrix<T>, DVector<T>) {
        let d = self.dim_();
        let (gamma, beta) = (self.log_scale(), self.shift());
        let scale: Vec<T> = (0..d)
            .map(|i| gamma[i].exp() / (var[i] + self.epsilon).sqrt())
            .collect();
        let u = DMatrix::from_fn(d, x.ncols(), |i, s| {
            (x[(i, s)] - mean[i]) * scale[i] + beta[i]
        });
        let ldj = DVector::from_element(x.ncols(), self.inverse_log_det(var));
        (u, ldj)
    }

    /// `x = (u − β) exp(−γ) √(v + ε) + m` with the stored statistics, and its log-det.
    fn denormalize(&self, u: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let d = self.dim_();
        let (gamma, beta) = (self.log_scale(), self.shift());
        let (mean, var) = (&self.running_mean, &self.running_var);
        let scale: Vec<T> = (0..d)
            .map(|i| (-gamma[i]).exp() * (var[i] + self.epsilon).sqrt())
            .collect();
        let x = DMatrix::from_fn(d, u.ncols(), |i, s| {
            (u[(i, s)] - beta[i]) * scale[i] + mean[i]
        });
        let ldj = DVector::from_element(u.ncols(), -self.inverse_log_det(var));
        (x, ldj)
    }
}

impl<T: Real> BatchNormalization<T> {
    /// The statistics the inverse direction normalises `x` with: the batch's in
    /// training mode, the stored ones in evaluation mode.
    fn inverse_statistics(&self, x: &DMatrix<T>) -> (DVector<T>, DVector<T>) {
        if self.training {
            row_statistics(x)
        } else {
            (self.running_mean.clone(), self.running_var.clone())
        }
    }
}

/// Evaluation mode: both directions with the stored statistics. Training mode:
/// the inverse direction with the statistics of the batch `x` it is given, the
/// forward direction with the stored statistics (see the type's docs).
impl<T: Real> Bijector<T> for BatchNormalization<T> {
    fn forward(&self, u: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("BatchNormalization::forward", self.dim_(), u);
        self.denormalize(u).0
    }
    fn inverse(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("BatchNormalization::inverse", self.dim_(), x);
        let (mean, var) = self.inverse_statistics(x);
        self.normalize(x, &mean, &var).0
    }
    fn forward_log_det_jacobian(&self, u: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "BatchNormalization::forward_log_det_jacobian",
            self.dim_(),
            u,
        );
        DVector::from_element(u.ncols(), -self.inverse_log_det(&self.running_var))
    }
    fn inverse_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "BatchNormalization::inverse_log_det_jacobian",
            self.dim_(),
            x,
        );
        let var = if self.training {
            row_statistics(x).1
        } else {
            self.running_var.clone()
        };
        DVector::from_element(x.ncols(), self.inverse_log_det(&var))
    }
    fn forward_and_log_det(&self, u: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("BatchNormalization::forward_and_log_det", self.dim_(), u);
        self.denormalize(u)
    }
    fn inverse_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("BatchNormalization::inverse_and_log_det", self.dim_(), x);
        let (mean, var) = self.inverse_statistics(x);
        self.normalize(x, &mean, &var)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim_())
    }
    super::differentiable_hooks!();
}
