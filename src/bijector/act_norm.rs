use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::batch_norm::{assert_backward_shapes, row_statistics};
use super::{Bijector, DataStage, assert_rows};
use crate::bijector::pass::Backward;
use crate::error::check;
use crate::{Error, Real};

/// Activation normalisation, "ActNorm" (Kingma & Dhariwal 2018, *Glow*,
/// section 3.1): a per-coordinate affine map with learnable log-scale `s` and
/// shift `t`, initialised from data.
///
/// ```text
/// forward (base → data):  x = u ⊙ exp(s) + t          log|det ∂x/∂u| = Σᵢ sᵢ
/// inverse (data → base):  u = (x − t) ⊙ exp(−s)       log|det ∂u/∂x| = −Σᵢ sᵢ
/// ```
///
/// The direction is chosen so that Glow's data-dependent initialisation reads
/// naturally: [`ActNorm::initialize_from_data`] sets `t` to the per-coordinate
/// mean of a batch of **data** and `exp(s)` to its standard deviation, so that
/// `inverse(data)` (the activations on the way to the base distribution) has
/// mean 0 and variance 1 in every coordinate. After that, `s` and `t` are
/// ordinary trainable parameters: unlike batch normalisation there are no
/// statistics and no train/eval modes.
///
/// Parameters, in one buffer: `[s (D), t (D)]` ([`ActNorm::params`]). The scale is
/// `exp(s)` (as in Glow): `s` is a free parameter, not a network output.
///
/// A fresh layer is not [initialised](ActNorm::is_initialized); the flag is
/// serialised with the layer, so a training loop resumed from a checkpoint does
/// not initialise it again. With `identity_init`, `s = t = 0` and the layer is
/// exactly the identity; otherwise `s` and `t` are drawn uniformly from
/// `[−0.1, 0.1]`.
///
/// **Costs.** Both directions are `O(D n)` for `n` samples.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut an = ActNorm::<f64>::new(2, true, &mut rng)?;
/// assert!(!an.is_initialized());
/// let data = DMatrix::from_row_slice(2, 4, &[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0]);
/// an.initialize_from_data(&data)?;
/// assert!(an.is_initialized());
/// let u = an.inverse(&data);
/// for i in 0..2 {
///     let row = u.row(i);
///     assert!(row.mean().abs() < 1e-12);
///     assert!((row.map(|v| v * v).mean() - 1.0).abs() < 1e-12); // variance 1
/// }
/// // log|det ∂x/∂u| = Σ s = log(std₀) + log(std₁), std = √1.25 and √125.
/// let ldj = an.forward_log_det_jacobian(&u);
/// assert!((ldj[0] - 0.5 * (1.25_f64 * 125.0).ln()).abs() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ActNormRepr<T>", into = "ActNormRepr<T>")]
pub struct ActNorm<T: Real> {
    /// `[s (D), t (D)]`.
    params: Vec<T>,
    initialized: bool,
}

crate::checked_serde::checked_serde!(ActNorm, ActNormRepr {
    params: Vec<T>,
    initialized: bool,
}, |r| {
        const CTX: &str = "ActNorm (deserialised)";
        if r.params.is_empty() || !r.params.len().is_multiple_of(2) {
            return Err(check::invalid(
                CTX,
                "params",
                "a non-empty buffer of even length [log_scale (D), shift (D)]",
                format!("{} entries", r.params.len()),
            ));
        }
        for (i, p) in r.params.iter().enumerate() {
            if !p.is_finite() {
                return Err(check::invalid(CTX, &format!("params[{i}]"), "finite", p));
            }
        }
        Ok(Self {
            params: r.params,
            initialized: r.initialized,
        })
    });

impl<T: Real> ActNorm<T> {
    /// The floor on the standard deviation in [`ActNorm::initialize_from_data`]:
    /// a coordinate whose data has (near) zero variance gets the scale `1e-6`
    /// instead of 0, so `s = log 1e-6` stays finite (Glow adds `1e-6` to the
    /// standard deviation; a floor leaves non-degenerate coordinates exact).
    pub const MIN_STD: f64 = 1e-6;

    /// An ActNorm layer over `dim` coordinates, not yet initialised from data.
    /// With `identity_init` it is exactly the identity; otherwise `s` and `t`
    /// are drawn uniformly from `[−0.1, 0.1]` using `rng`.
    pub fn new(dim: usize, identity_init: bool, rng: &mut dyn Rng) -> Result<Self, Error> {
        check::dim_at_least_one("ActNorm::new", "dim", dim)?;
        let params = if identity_init {
            vec![T::zero(); 2 * dim]
        } else {
            (0..2 * dim)
                .map(|_| T::lit(rng.random_range(-0.1..0.1)))
                .collect()
        };
        Ok(Self {
            params,
            initialized: false,
        })
    }

    /// An ActNorm layer with the given log-scales `s` and shifts `t` (marked as
    /// initialised). Errors if they are empty, differ in length, or hold a
    /// non-finite value.
    pub fn from_params(log_scale: DVector<T>, shift: DVector<T>) -> Result<Self, Error> {
        const CTX: &str = "ActNorm::from_params";
        check::dim_at_least_one(CTX, "log_scale", log_scale.len())?;
        check::same_dim(CTX, "shift", log_scale.len(), shift.len())?;
        check::finite_vec(CTX, "log_scale", &log_scale)?;
        check::finite_vec(CTX, "shift", &shift)?;
        Ok(Self {
            params: log_scale.iter().chain(shift.iter()).copied().collect(),
            initialized: true,
        })
    }

    fn dim_(&self) -> usize {
        self.params.len() / 2
    }

    /// The log-scales `s` (the first `D` parameters).
    pub fn log_scale(&self) -> &[T] {
        &self.params[..self.dim_()]
    }

    /// The shifts `t` (the last `D` parameters).
    pub fn shift(&self) -> &[T] {
        &self.params[self.dim_()..]
    }

    /// All parameters in one buffer: `[s (D), t (D)]`.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameter buffer `[s (D), t (D)]`.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `2 D`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Whether the layer has been initialised from data (or built from given
    /// parameters, or marked so with [`ActNorm::set_initialized`]).
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Sets the initialisation flag (for example after loading parameters by
    /// hand into [`ActNorm::params_mut`], so a training loop skips the
    /// data-dependent initialisation).
    pub fn set_initialized(&mut self, initialized: bool) {
        self.initialized = initialized;
    }

    /// Glow's data-dependent initialisation: with the per-coordinate mean `μ`
    /// and biased (divide-by-`n`) standard deviation `σ` of `x_data`
    /// (`D × n`, one column per sample), sets `t = μ` and
    /// `s = log max(σ, MIN_STD)`, so that `inverse(x_data)` has mean 0 and
    /// variance 1 in every coordinate (up to rounding; a coordinate with
    /// `σ < `[`MIN_STD`](Self::MIN_STD) gets variance `σ²/MIN_STD²` instead).
    /// Marks the layer initialised.
    ///
    /// Errors if `x_data` has the wrong number of rows, no columns, or a
    /// non-finite entry (or a variance that overflows).
    pub fn initialize_from_data(&mut self, x_data: &DMatrix<T>) -> Result<(), Error> {
        const CTX: &str = "ActNorm::initialize_from_data";
        let d = self.dim_();
        check::same_dim(CTX, "x_data", d, x_data.nrows())?;
        if x_data.ncols() == 0 {
            return Err(Error::InvalidDimension {
                context: CTX.into(),
                argument: "x_data".into(),
                expected: "at least 1 sample (column)".into(),
                got: 0,
            });
        }
        check::finite_mat(CTX, "x_data", x_data)?;
        let (mean, var) = row_statistics(x_data);
        check::finite_vec(CTX, "variance of x_data", &var)?;
        let min_std = T::lit(Self::MIN_STD);
        for i in 0..d {
            self.params[i] = var[i].sqrt().max(min_std).ln();
            self.params[d + i] = mean[i];
        }
        self.initialized = true;
        Ok(())
    }

    fn log_det(&self) -> T {
        self.log_scale().iter().fold(T::zero(), |a, &s| a + s)
    }
}

impl<T: Real> Bijector<T> for ActNorm<T> {
    fn forward(&self, u: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("ActNorm::forward", self.dim_(), u);
        let (s, t) = (self.log_scale(), self.shift());
        let scale: Vec<T> = s.iter().map(|v| v.exp()).collect();
        DMatrix::from_fn(self.dim_(), u.ncols(), |i, j| u[(i, j)] * scale[i] + t[i])
    }
    fn inverse(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("ActNorm::inverse", self.dim_(), x);
        let (s, t) = (self.log_scale(), self.shift());
        let inv_scale: Vec<T> = s.iter().map(|v| (-*v).exp()).collect();
        DMatrix::from_fn(self.dim_(), x.ncols(), |i, j| {
            (x[(i, j)] - t[i]) * inv_scale[i]
        })
    }
    fn forward_log_det_jacobian(&self, u: &DMatrix<T>) -> DVector<T> {
        assert_rows("ActNorm::forward_log_det_jacobian", self.dim_(), u);
        DVector::from_element(u.ncols(), self.log_det())
    }
    fn inverse_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("ActNorm::inverse_log_det_jacobian", self.dim_(), x);
        DVector::from_element(x.ncols(), -self.log_det())
    }
    fn inverse_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        (self.inverse(x), self.inverse_log_det_jacobian(x))
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim_())
    }
    super::differentiable_hooks!();
}

/// The parameters `[s (D), t (D)]` are the flat parameter vector; the
/// initialised flag is the state.
impl<T: Real> crate::Parameters<T> for ActNorm<T> {
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        f(&[if self.initialized {
            T::one()
        } else {
            T::zero()
        }]);
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        let mut flag = [if self.initialized {
            T::one()
        } else {
            T::zero()
        }];
        f(&mut flag);
        self.initialized = flag[0] != T::zero();
    }
    crate::bijector::single_buffer!(params);
}

/// Backward passes, per coordinate `i` and sample `j`, with output cotangent
/// `g` and log-det cotangent `gₗ`:
///
/// ```text
/// forward  x = u eˢ + t,      ld = Σ s:   ∂u = g eˢ,   ∂s = Σⱼ g u eˢ + Σⱼ gₗ,   ∂t = Σⱼ g
/// inverse  u = (x − t) e⁻ˢ,   ld = −Σ s:  ∂x = g e⁻ˢ,  ∂s = −Σⱼ g u − Σⱼ gₗ,     ∂t = −Σⱼ g e⁻ˢ
/// ```
///
/// [`prepare_with_data`](super::Differentiable::prepare_with_data) with
/// [`DataStage::Initialize`] runs [`ActNorm::initialize_from_data`] on the data
/// if the layer is not yet [initialised](ActNorm::is_initialized) (a second
/// call, or a layer loaded from a checkpoint, keeps its parameters); data with
/// no columns or a non-finite entry leaves the layer uninitialised (the
/// returned `inverse(y)` carries any non-finite value on to the caller).
/// [`DataStage::Finalize`] changes nothing. Both return `inverse(y)`.
impl<T: Real> super::Differentiable<T> for ActNorm<T> {
    fn boxed_clone(&self) -> Box<dyn crate::bijector::Bijector<T>> {
        Box::new(self.clone())
    }
    fn prepare_with_data(&mut self, y: &DMatrix<T>, stage: DataStage) -> DMatrix<T> {
        if stage == DataStage::Initialize && !self.initialized {
            // An error (no columns, non-finite data) leaves the layer
            // uninitialised; see the impl's docs.
            let _ = self.initialize_from_data(y);
        }
        self.inverse(y)
    }
    crate::bijector::fused::backward_from!(inverse: inverse_backward, forward: forward_backward);
}

impl<T: Real> ActNorm<T> {
    fn inverse_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (x, grad_u, grad_log_det, grad_params, _) = pass.parts();
        let d = self.dim_();
        assert_rows("ActNorm::inverse_and_log_det_backward", d, x);
        assert_backward_shapes(
            "ActNorm::inverse_and_log_det_backward",
            x,
            grad_u,
            grad_log_det,
            grad_params,
            2 * d,
        );
        let (s, t) = (self.log_scale(), self.shift());
        let gl_sum = grad_log_det.iter().fold(T::zero(), |a, &v| a + v);
        let mut grad_x = DMatrix::zeros(d, x.ncols());
        for i in 0..d {
            let inv_scale = (-s[i]).exp();
            let (mut gs, mut gt) = (T::zero(), T::zero());
            for j in 0..x.ncols() {
                let g = grad_u[(i, j)] * inv_scale;
                let u = (x[(i, j)] - t[i]) * inv_scale;
                grad_x[(i, j)] = g;
                gt -= g;
                gs -= grad_u[(i, j)] * u;
            }
            grad_params[i] += gs - gl_sum;
            grad_params[d + i] += gt;
        }
        Ok(grad_x)
    }
    fn forward_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (u, grad_x, grad_log_det, grad_params, _) = pass.parts();
        let d = self.dim_();
        assert_rows("ActNorm::forward_and_log_det_backward", d, u);
        assert_backward_shapes(
            "ActNorm::forward_and_log_det_backward",
            u,
            grad_x,
            grad_log_det,
            grad_params,
            2 * d,
        );
        let s = self.log_scale();
        let gl_sum = grad_log_det.iter().fold(T::zero(), |a, &v| a + v);
        let mut grad_u = DMatrix::zeros(d, u.ncols());
        for i in 0..d {
            let scale = s[i].exp();
            let (mut gs, mut gt) = (T::zero(), T::zero());
            for j in 0..u.ncols() {
                let g = grad_x[(i, j)];
                grad_u[(i, j)] = g * scale;
                gt += g;
                gs += g * u[(i, j)] * scale;
            }
            grad_params[i] += gs + gl_sum;
            grad_params[d + i] += gt;
        }
        Ok(grad_u)
    }
}
