use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::batch_norm::assert_backward_shapes;
use super::{Bijector, Permute, assert_rows};
use crate::bijector::pass::Backward;
use crate::error::check;
use crate::nn::{positive_scale, positive_scale_derivative};
use crate::{Error, Real};

/// An invertible linear layer in LU form, `y = W x + b` with `W = P L U`
/// (Kingma & Dhariwal 2018, *Glow*, section 3.2: the LU-decomposed invertible
/// 1×1 convolution, which on vectors is a dense invertible linear map).
///
/// - `P` is a fixed permutation (state, not a parameter), with the same meaning
///   as [`Permute`]: `(P v)ᵢ = v[permutation[i]]`.
/// - `L` is unit lower triangular (ones on the diagonal).
/// - `U` is upper triangular with a positive diagonal
///   `uᵢᵢ = `[`positive_scale`]`(rawᵢ) = softplus(rawᵢ + c) + 10⁻³`, where `c` makes
///   `raw = 0` give `uᵢᵢ = 1` exactly; the diagonal never falls below `10⁻³`, so
///   `W` is always invertible and `log uᵢᵢ ≥ log 10⁻³` is finite.
///
/// `log|det ∂y/∂x| = log|det W| = Σᵢ log uᵢᵢ`, the same for every sample
/// (`det P = ±1`, `det L = 1`).
///
/// **Parameters**, in one buffer of `D(D + 1)` entries ([`LuLinear::params`]):
///
/// ```text
/// [ L strictly lower, D(D−1)/2 | U strictly upper, D(D−1)/2 | raw diagonal, D | bias b, D ]
/// ```
///
/// Both triangles are stored **row by row**: `L` as `(1,0), (2,0), (2,1), (3,0), …`
/// (for `i` in `1..D`, `j` in `0..i`), `U` as `(0,1), (0,2), …, (0,D−1), (1,2), …`
/// (for `i` in `0..D`, `j` in `i+1..D`).
///
/// **Costs.** Forward: two triangular matrix products, `O(D² n)` for `n`
/// samples. Inverse: undo the permutation, then two triangular solves,
/// `O(D² n)`; no matrix is ever inverted or factorised at run time. Both
/// directions assemble `L` and `U` from the buffer (`O(D²)`).
///
/// With `identity_init`, `P = L = U = I` and `b = 0`: exactly the identity. With
/// `identity_init = false`, `P` is a uniformly random permutation
/// (Fisher–Yates, as [`Permute::random`]), the off-diagonal entries and the bias
/// are uniform on `[−1/√D, 1/√D]` (the PyTorch default for a dense layer), and
/// the raw diagonal is uniform on `[−1, 1]` (so `uᵢᵢ ∈ [0.49, 1.74]`).
///
/// Pushing a standard normal through the layer gives `N(b, W Wᵀ)`.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let lu = LuLinear::<f64>::new(3, false, &mut rng)?;
/// assert_eq!(lu.num_params(), 3 * 4);
/// let x = DMatrix::from_fn(3, 5, |i, j| (i as f64) - 0.5 * j as f64);
/// let (y, ldj) = lu.forward_and_log_det(&x);
/// // y = W x + b, with W = P L U.
/// let w = lu.weight();
/// let b = DMatrix::from_fn(3, 5, |i, _| lu.bias()[i]);
/// assert!((&y - (&w * &x + b)).amax() < 1e-12);
/// // log|det W| = Σ log uᵢᵢ.
/// assert!((ldj[0] - w.determinant().abs().ln()).abs() < 1e-12);
/// assert!((lu.inverse(&y) - &x).amax() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LuLinearRepr<T>", into = "LuLinearRepr<T>")]
pub struct LuLinear<T: Real> {
    permutation: Permute,
    /// `[L strictly lower | U strictly upper | raw diagonal | bias]`.
    params: Vec<T>,
}

crate::checked_serde::checked_serde!(LuLinear, LuLinearRepr {
    permutation: Permute,
    params: Vec<T>,
}, |r| LuLinear::from_parts(r.permutation, r.params));

impl<T: Real> LuLinear<T> {
    /// An LU linear layer over `dim` coordinates: exactly the identity with
    /// `identity_init`, otherwise randomly initialised from `rng` (see the
    /// type's docs).
    pub fn new(dim: usize, identity_init: bool, rng: &mut dyn Rng) -> Result<Self, Error> {
        check::dim_at_least_one("LuLinear::new", "dim", dim)?;
        if identity_init {
            return Ok(Self {
                permutation: Permute::new((0..dim).collect())?,
                params: vec![T::zero(); dim * (dim + 1)],
            });
        }
        let permutation = Permute::random(dim, rng)?;
        let n_off = dim * (dim - 1) / 2;
        let bound = 1.0 / (dim as f64).sqrt();
        let mut params = Vec::with_capacity(dim * (dim + 1));
        for _ in 0..2 * n_off {
            params.push(T::lit(rng.random_range(-bound..bound)));
        }
        for _ in 0..dim {
            params.push(T::lit(rng.random_range(-1.0..1.0)));
        }
        for _ in 0..dim {
            params.push(T::lit(rng.random_range(-bound..bound)));
        }
        Ok(Self {
            permutation,
            params,
        })
    }

    /// A layer from a permutation `P` and a parameter buffer in the documented
    /// layout (`D(D + 1)` entries for `D = permutation` length). Errors, naming
    /// `params`, if the buffer has the wrong length or a non-finite entry.
    pub fn from_parts(permutation: Permute, params: Vec<T>) -> Result<Self, Error> {
        const CTX: &str = "LuLinear::from_parts";
        let d = permutation.permutation().len();
        check::same_dim(CTX, "params", d * (d + 1), params.len())?;
        for (i, p) in params.iter().enumerate() {
            if !p.is_finite() {
                return Err(check::invalid(CTX, &format!("params[{i}]"), "finite", p));
            }
        }
        Ok(Self {
            permutation,
            params,
        })
    }

    fn dim_(&self) -> usize {
        self.permutation.permutation().len()
    }

    fn n_off(&self) -> usize {
        let d = self.dim_();
        d * (d - 1) / 2
    }

    /// The fixed permutation `P` (not a parameter).
    pub fn permutation(&self) -> &Permute {
        &self.permutation
    }

    /// All parameters in one buffer (layout in the type's docs).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameter buffer (layout in the type's docs). Every finite value
    /// gives an invertible layer.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `D(D + 1)`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The raw (unconstrained) diagonal of `U`.
    pub fn raw_diagonal(&self) -> &[T] {
        let o = 2 * self.n_off();
        &self.params[o..o + self.dim_()]
    }

    /// The bias `b`.
    pub fn bias(&self) -> &[T] {
        let o = 2 * self.n_off() + self.dim_();
        &self.params[o..]
    }

    /// The unit lower-triangular factor `L`.
    pub fn lower(&self) -> DMatrix<T> {
        let d = self.dim_();
        let mut l = DMatrix::identity(d, d);
        let mut k = 0;
        for i in 1..d {
            for j in 0..i {
                l[(i, j)] = self.params[k];
                k += 1;
            }
        }
        l
    }

    /// The upper-triangular factor `U`, with diagonal `positive_scale(raw)`.
    pub fn upper(&self) -> DMatrix<T> {
        let d = self.dim_();
        let mut u = DMatrix::zeros(d, d);
        let mut k = self.n_off();
        for i in 0..d {
            for j in i + 1..d {
                u[(i, j)] = self.params[k];
                k += 1;
            }
        }
        for (i, &r) in self.raw_diagonal().iter().enumerate() {
            u[(i, i)] = positive_scale(r).0;
        }
        u
    }

    /// The weight matrix `W = P L U`.
    pub fn weight(&self) -> DMatrix<T> {
        let lu = self.lower() * self.upper();
        let p = self.permutation.permutation();
        DMatrix::from_fn(lu.nrows(), lu.ncols(), |i, j| lu[(p[i], j)])
    }

    /// `log|det W| = Σ log uᵢᵢ`.
    fn log_det(&self) -> T {
        self.raw_diagonal()
            .iter()
            .fold(T::zero(), |a, &r| a + positive_scale(r).1)
    }
}

impl<T: Real> Bijector<T> for LuLinear<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("LuLinear::forward", self.dim_(), x);
        let lux = self.lower() * (self.upper() * x);
        let (p, b) = (self.permutation.permutation(), self.bias());
        DMatrix::from_fn(lux.nrows(), lux.ncols(), |i, j| lux[(p[i], j)] + b[i])
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("LuLinear::inverse", self.dim_(), y);
        let (p, b) = (self.permutation.permutation(), self.bias());
        // z = Pᵀ (y − b): z[p[i]] = y[i] − b[i].
        let mut z = DMatrix::zeros(y.nrows(), y.ncols());
        for j in 0..y.ncols() {
            for i in 0..y.nrows() {
                z[(p[i], j)] = y[(i, j)] - b[i];
            }
        }
        // Both solves succeed: L has a unit diagonal and U's diagonal is ≥ 1e-3.
        self.lower().solve_lower_triangular_mut(&mut z);
        self.upper().solve_upper_triangular_mut(&mut z);
        z
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("LuLinear::forward_log_det_jacobian", self.dim_(), x);
        DVector::from_element(x.ncols(), self.log_det())
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows("LuLinear::inverse_log_det_jacobian", self.dim_(), y);
        DVector::from_element(y.ncols(), -self.log_det())
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        (self.inverse(y), self.inverse_log_det_jacobian(y))
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim_())
    }
    super::differentiable_hooks!();
}

impl<T: Real> LuLinear<T> {
    /// Adds `∂L/∂L` (strictly lower part of `gl`), `∂L/∂U` (strictly upper part
    /// of `gu`, its diagonal through the raw map) and `∂L/∂(Σ log uᵢᵢ)·sign`
    /// into the parameter gradient (the bias is handled by the caller).
    fn add_factor_grads(
        &self,
        grad_lower: &DMatrix<T>,
        grad_upper: &DMatrix<T>,
        grad_log_det: T,
        grad_params: &mut [T],
    ) {
        let d = self.dim_();
        let n_off = self.n_off();
        let mut k = 0;
        for i in 1..d {
            for j in 0..i {
                grad_params[k] += grad_lower[(i, j)];
                k += 1;
            }
        }
        for i in 0..d {
            for j in i + 1..d {
                grad_params[k] += grad_upper[(i, j)];
                k += 1;
            }
        }
        for (i, &r) in self.raw_diagonal().iter().enumerate() {
            // u = σ(r): ∂u/∂r = σ'(r); ∂ log u/∂r = σ'(r)/u.
            let (u, _) = positive_scale(r);
            let du = positive_scale_derivative(r);
            grad_params[2 * n_off + i] += du * (grad_upper[(i, i)] + grad_log_det / u);
        }
    }
}

impl<T: Real> crate::Parameters<T> for LuLinear<T> {
    crate::bijector::single_buffer!(params);
}

/// Training: the flat parameter vector is the buffer of [`LuLinear::params`]
/// (`[L strictly lower | U strictly upper | raw diagonal | b]`).
///
/// Backward passes (cotangent `g` of the output, `gₗ` of the log-det, `Gₗ = Σⱼ gₗⱼ`):
///
/// ```text
/// forward  z = U x, w = L z, y = P w + b,  ld = Σ log uᵢᵢ:
///     ∂w = Pᵀ g,  ∂L = ∂w zᵀ,  ∂z = Lᵀ ∂w,  ∂U = ∂z xᵀ,  ∂x = Uᵀ ∂z,  ∂b = Σⱼ gⱼ,
///     ∂rawᵢ = σ'(rawᵢ) (∂Uᵢᵢ + Gₗ / uᵢᵢ)
/// inverse  z = Pᵀ (y − b), w = L⁻¹ z, x = U⁻¹ w,  ld = −Σ log uᵢᵢ
///     (d(A⁻¹) = −A⁻¹ dA A⁻¹ for each triangular solve):
///     ∂w = U⁻ᵀ g,  ∂U = −∂w xᵀ,  ∂z = L⁻ᵀ ∂w,  ∂L = −∂z wᵀ,  ∂y = P ∂z,  ∂b = −Σⱼ ∂yⱼ,
///     ∂rawᵢ = σ'(rawᵢ) (∂Uᵢᵢ − Gₗ / uᵢᵢ)
/// ```
///
/// Only the strictly triangular parts of `∂L` and `∂U` are parameters (the
/// diagonal of `L` is fixed at 1, that of `U` goes through
/// [`positive_scale`]). Both passes cost `O(D² n)` (products and solves with
/// the triangular factors; nothing is inverted).
impl<T: Real> super::Differentiable<T> for LuLinear<T> {
    fn boxed_clone(&self) -> Box<dyn crate::bijector::Bijector<T>> {
        Box::new(self.clone())
    }
    super::fused::backward_from!(inverse: inverse_backward, forward: forward_backward);
}

impl<T: Real> LuLinear<T> {
    fn inverse_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (y, grad_x, grad_log_det, grad_params, _) = pass.parts();
        const CTX: &str = "LuLinear::inverse_and_log_det_backward";
        let (d, n) = y.shape();
        assert_rows(CTX, self.dim_(), y);
        assert_backward_shapes(CTX, y, grad_x, grad_log_det, grad_params, self.params.len());
        let (lower, upper) = (self.lower(), self.upper());
        let (p, b) = (self.permutation.permutation(), self.bias());
        // Recompute w = L⁻¹ Pᵀ (y − b) and x = U⁻¹ w.
        let mut w = DMatrix::zeros(d, n);
        for j in 0..n {
            for i in 0..d {
                w[(p[i], j)] = y[(i, j)] - b[i];
            }
        }
        lower.solve_lower_triangular_mut(&mut w);
        let mut x = w.clone();
        upper.solve_upper_triangular_mut(&mut x);
        // ∂w = U⁻ᵀ ∂x, then ∂z = L⁻ᵀ ∂w (solves with the transposes).
        let mut grad_w = grad_x.clone();
        upper.tr_solve_upper_triangular_mut(&mut grad_w);
        let mut grad_z = grad_w.clone();
        lower.tr_solve_lower_triangular_mut(&mut grad_z);
        let grad_upper = -(&grad_w * x.transpose());
        let grad_lower = -(&grad_z * w.transpose());
        let gl_sum = grad_log_det.iter().fold(T::zero(), |a, &v| a + v);
        self.add_factor_grads(&grad_lower, &grad_upper, -gl_sum, grad_params);
        // ∂y = P ∂z: ∂y[i] = ∂z[p[i]]; ∂b = −Σⱼ ∂yⱼ.
        let grad_y = DMatrix::from_fn(d, n, |i, j| grad_z[(p[i], j)]);
        let bias_off = 2 * self.n_off() + d;
        for i in 0..d {
            grad_params[bias_off + i] -= grad_y.row(i).iter().fold(T::zero(), |a, &v| a + v);
        }
        Ok(grad_y)
    }
    fn forward_backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (x, grad_y, grad_log_det, grad_params, _) = pass.parts();
        const CTX: &str = "LuLinear::forward_and_log_det_backward";
        let (d, n) = x.shape();
        assert_rows(CTX, self.dim_(), x);
        assert_backward_shapes(CTX, x, grad_y, grad_log_det, grad_params, self.params.len());
        let (lower, upper) = (self.lower(), self.upper());
        let p = self.permutation.permutation();
        let z = &upper * x;
        // y[i] = w[p[i]] + b[i]  ⇒  ∂w[p[i]] = ∂y[i].
        let mut grad_w = DMatrix::zeros(d, n);
        for j in 0..n {
            for i in 0..d {
                grad_w[(p[i], j)] = grad_y[(i, j)];
            }
        }
        let grad_lower = &grad_w * z.transpose();
        let grad_z = lower.tr_mul(&grad_w);
        let grad_upper = &grad_z * x.transpose();
        let grad_input = upper.tr_mul(&grad_z);
        let gl_sum = grad_log_det.iter().fold(T::zero(), |a, &v| a + v);
        self.add_factor_grads(&grad_lower, &grad_upper, gl_sum, grad_params);
        let bias_off = 2 * self.n_off() + d;
        for i in 0..d {
            grad_params[bias_off + i] += grad_y.row(i).iter().fold(T::zero(), |a, &v| a + v);
        }
        Ok(grad_input)
    }
}
