use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::Bijector;
use super::planar::std_normal;
use super::root::tanh_sech2;
use crate::error::check;
use crate::{Error, Real};

mod gradients;
mod inverse;

/// Orthogonal (Householder) Sylvester flow layer (van den Berg, Hasenclever,
/// Tomczak & Welling 2018, *Sylvester Normalizing Flows for Variational
/// Inference*, UAI, §3–4), with directly learned parameters.
///
/// Forward (base → data):
///
/// ```text
/// f(z) = z + Q R h(R̃ Qᵀ z + b),     h = tanh,
/// log|det ∂f/∂z| = Σᵢ log(1 + rᵢᵢ r̃ᵢᵢ h′((R̃ Qᵀ z + b)ᵢ)),
/// ```
///
/// where `Q = H₁ ⋯ H_m` is a product of `m` Householder reflections
/// `Hₖ = I − 2 vₖvₖᵀ/‖vₖ‖²` (so `Q` is a `D × D` orthogonal matrix), `R` and
/// `R̃` are upper triangular `D × D` and `b ∈ R^D`. The determinant follows from
/// `det(I + Q R diag(h′) R̃ Qᵀ) = det(I + diag(h′) R̃ R)` and `R̃ R` being upper
/// triangular with diagonal `r̃ᵢᵢ rᵢᵢ`.
///
/// **Invertibility.** The map is invertible when `rᵢᵢ r̃ᵢᵢ > −1/‖h′‖_∞ = −1`
/// (the paper's Theorem 2). As in the paper's implementation, the diagonals
/// are stored unconstrained and passed through `tanh`: `rᵢᵢ = tanh(ρᵢ)`,
/// `r̃ᵢᵢ = tanh(ρ̃ᵢ)`, so `rᵢᵢ r̃ᵢᵢ ∈ (−1, 1)` for every finite `ρ` and `ρ̃`
/// (in floating point `≥ −1`, with `−1` only where both `tanh` round to `±1`,
/// `|ρ|, |ρ̃| ≳ 19` in `f64`; the Jacobian is then singular only where also
/// `h′ = 1`, a set of measure zero). The off-diagonal entries are free.
/// `1 + rᵢᵢ r̃ᵢᵢ h′(x)` is evaluated as `tanh²x + (1 + rᵢᵢ r̃ᵢᵢ) sech²x`, with
/// `1 + rᵢᵢ r̃ᵢᵢ` computed without cancellation, when `rᵢᵢ r̃ᵢᵢ < −½`.
///
/// **Householder vectors.** A reflection whose `vₖ` is `0` (or so small that
/// `2/‖vₖ‖²` is not representable) is taken to be the identity; its vector
/// then gets no gradient.
///
/// **Inverse.** With `ζ = Qᵀz` and `η = Qᵀy`, the equation `y = f(z)` reads
/// `η = ζ + R h(R̃ ζ + b)`, which is upper triangular: its `i`-th row involves
/// only `ζᵢ, …, ζ_D`. It is solved by back substitution, from `i = D` down to
/// `1`, each row being the scalar equation `ζᵢ + rᵢᵢ tanh(r̃ᵢᵢ ζᵢ + cᵢ) = eᵢ`
/// (`cᵢ`, `eᵢ` known from the rows below). Its left side is non-decreasing
/// (slope `1 + rᵢᵢ r̃ᵢᵢ sech² ≥ 0`) and its root lies in `[eᵢ − |rᵢᵢ|, eᵢ + |rᵢᵢ|]`;
/// it is found by Newton's method safeguarded by bisection (damped Newton: a
/// step that leaves the bracket or does not shrink fast enough is replaced by
/// bisection), until the residual is at the rounding level of its evaluation,
/// the step is below machine precision or the bracket holds no further float,
/// and at most 200 iterations (fewer than 25 in practice). The solve always
/// returns a finite point of the bracket for finite input (non-finite input
/// gives non-finite output, as for every layer); the round trip is accurate to
/// about `1e-14` relative in `f64` for well-conditioned layers. Then `z = Q ζ`.
///
/// **Costs.** Forward and log-det: `O(mD + D²)` per sample. Inverse: the same
/// plus `D` scalar root findings per sample.
///
/// **Training.** The layer is [`Differentiable`](super::Differentiable) in both
/// directions, by hand-written reverse mode. The inverse is differentiated
/// implicitly: `∂z/∂y = J⁻¹`, `∂z/∂θ = −J⁻¹ ∂f/∂θ`, with
/// `J⁻ᵀ = Q (I + R S R̃)⁻ᵀ Qᵀ` (`S = diag(h′)`) applied by an `O(D²)`
/// triangular substitution. Backward passes cost `O(mD + D²)` per sample (plus
/// the root finding in the inverse direction).
///
/// **Parameters.** One buffer of length `mD + D(D + 1) + D (+ D·C)`:
/// `[v₁, …, v_m (D each), R (upper triangle, row by row, D(D+1)/2),
/// R̃ (likewise), b (D), W (D × C, row by row)]`, where the diagonal entries
/// of `R` and `R̃` are the unconstrained `ρᵢ`, `ρ̃ᵢ` (before `tanh`). Every
/// entry must stay finite.
///
/// **Conditioning.** Built by [`Sylvester::conditional`] the layer reads a
/// context `c ∈ R^C` through its bias, `b(c) = b + W c`: the hidden units
/// shift with the context while `Q`, `R` and `R̃` (hence the invertibility
/// guarantee, which does not involve `b`) are shared. Unconditional layers
/// have `C = 0` and no `W`.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let layer = Sylvester::<f64>::new(3, 2, &mut rng)?;
/// assert_eq!(layer.num_params(), 2 * 3 + 3 * 4 + 3);
/// assert!(layer.diag_products().iter().all(|&d| d > -1.0)); // invertible
///
/// let z = DMatrix::from_fn(3, 4, |i, j| (i as f64 - j as f64) * 0.4);
/// let (y, ldj) = layer.forward_and_log_det(&z);
/// let (z_back, ildj) = layer.inverse_and_log_det(&y);
/// assert!((z_back - &z).amax() < 1e-12);
/// assert!((ldj + ildj).amax() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SylvesterRepr<T>", into = "SylvesterRepr<T>")]
pub struct Sylvester<T: Real> {
    dim: usize,
    reflections: usize,
    context_dim: usize,
    /// `[v (mD), R (packed), R̃ (packed), b (D), W (D·C)]`.
    params: Vec<T>,
}

crate::checked_serde::checked_serde!(Sylvester, SylvesterRepr {
    dim: usize,
    reflections: usize,
    #[serde(default)]
    context_dim: usize,
    params: Vec<T>,
}, |r| Sylvester::from_params_conditional(r.dim, r.reflections, r.context_dim, r.params));

/// Quantities derived from the parameters, recomputed at every call
/// (`O(mD + D²)`), so that writing to [`Sylvester::params_mut`] needs no cache
/// invalidation.
struct Derived<T: Real> {
    /// `R` (dense, upper triangular, diagonal `tanh ρ`).
    r: DMatrix<T>,
    /// `R̃` (dense, upper triangular, diagonal `tanh ρ̃`).
    rt: DMatrix<T>,
    /// `dᵢ = rᵢᵢ r̃ᵢᵢ`.
    d: Vec<T>,
    /// `1 + dᵢ`, without cancellation.
    opd: Vec<T>,
    /// `2/‖vₖ‖²`, or 0 for a reflection taken to be the identity.
    beta: Vec<T>,
}

/// Number of entries of a packed `D × D` upper triangle.
pub(super) fn tri_len(dim: usize) -> usize {
    dim * (dim + 1) / 2
}

/// Index of `(i, j)`, `i ≤ j`, in a packed upper triangle, row by row.
#[inline]
fn tri(dim: usize, i: usize, j: usize) -> usize {
    i * (2 * dim - i + 1) / 2 + (j - i)
}

impl<T: Real> Sylvester<T> {
    /// A Sylvester layer on `R^dim` with `reflections` Householder
    /// reflections, at a random, well-conditioned point: `vₖ ~ N(0, I)`,
    /// off-diagonal entries of `R` and `R̃` `~ N(0, 0.1²/D)`, diagonal raw
    /// values `ρᵢ, ρ̃ᵢ ~ U(−1, 1)` and `b ~ N(0, 0.5²)`. (All-zero
    /// parameters would be the identity map but a saddle where every
    /// parameter gradient vanishes, as for a planar flow.)
    ///
    /// Errors if `dim == 0` or `reflections == 0`.
    pub fn new(dim: usize, reflections: usize, rng: &mut dyn Rng) -> Result<Self, Error> {
        const CTX: &str = "Sylvester::new";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check::dim_at_least_one(CTX, "reflections", reflections)?;
        let t = tri_len(dim);
        let mut params = Vec::with_capacity(reflections * dim + 2 * t + dim);
        for _ in 0..reflections * dim {
            params.push(T::lit(std_normal(rng)));
        }
        let off = 0.1 / (dim as f64).sqrt();
        for _ in 0..2 {
            for i in 0..dim {
                for j in i..dim {
                    let v = if i == j {
                        rng.random_range(-1.0..1.0)
                    } else {
                        off * std_normal(rng)
                    };
                    params.push(T::lit(v));
                }
            }
        }
        for _ in 0..dim {
            params.push(T::lit(0.5 * std_normal(rng)));
        }
        Self::from_params(dim, reflections, params)
    }

    /// A layer conditioned on a context of `context_dim ≥ 1` dimensions:
    /// [`Sylvester::new`]'s parameters and `W ~ N(0, 0.5²/C)`, so that the
    /// bias `b + W c` has the spread of `b` for a standardised context.
    pub fn conditional(
        dim: usize,
        reflections: usize,
        context_dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        check::dim_at_least_one("Sylvester::conditional", "context_dim", context_dim)?;
        let mut params = Self::new(dim, reflections, rng)?.params;
        let scale = 0.5 / (context_dim as f64).sqrt();
        params.extend((0..dim * context_dim).map(|_| T::lit(scale * std_normal(rng))));
        Self::from_params_conditional(dim, reflections, context_dim, params)
    }

    /// A layer from its parameter buffer (layout in the type's docs). Errors
    /// if `dim` or `reflections` is 0, if the buffer's length is not
    /// `mD + D(D + 1) + D`, or if it holds a non-finite value.
    pub fn from_params(dim: usize, reflections: usize, params: Vec<T>) -> Result<Self, Error> {
        Self::from_params_conditional(dim, reflections, 0, params)
    }

    /// A layer conditioned on a context of `context_dim` dimensions (0:
    /// unconditional) from its parameter buffer, whose length must be
    /// `mD + D(D + 1) + D + D·C`; otherwise as [`Sylvester::from_params`].
    pub fn from_params_conditional(
        dim: usize,
        reflections: usize,
        context_dim: usize,
        params: Vec<T>,
    ) -> Result<Self, Error> {
        const CTX: &str = "Sylvester::from_params";
        check::dim_at_least_one(CTX, "dim", dim)?;
        check::dim_at_least_one(CTX, "reflections", reflections)?;
        let want = reflections
            .checked_mul(dim)
            .and_then(|v| v.checked_add(dim.checked_mul(context_dim)?))
            .and_then(|v| v.checked_add(2 * tri_len(dim) + dim));
        if want != Some(params.len()) {
            return Err(check::invalid(
                CTX,
                "params",
                "a buffer of length m·D + D(D + 1) + D + D·C",
                format!("length {}", params.len()),
            ));
        }
        if let Some(bad) = params.iter().find(|v| !v.is_finite()) {
            return Err(check::invalid(CTX, "params", "finite values", *bad));
        }
        Ok(Self {
            dim,
            reflections,
            context_dim,
            params,
        })
    }

    /// The number `m` of Householder reflections.
    pub fn reflections(&self) -> usize {
        self.reflections
    }

    /// All parameters in one buffer (layout in the type's docs).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameter buffer. Any finite values give an invertible layer.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `mD + D(D + 1) + D (+ D·C)`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The products `rᵢᵢ r̃ᵢᵢ = tanh(ρᵢ) tanh(ρ̃ᵢ)`, each `≥ −1` (and `> −1`
    /// unless both `tanh` saturate to `±1`).
    pub fn diag_products(&self) -> Vec<T> {
        self.derived().d
    }

    /// `R` as a dense upper-triangular matrix (diagonal `tanh ρ`).
    pub fn r(&self) -> DMatrix<T> {
        self.derived().r
    }

    /// `R̃` as a dense upper-triangular matrix (diagonal `tanh ρ̃`).
    pub fn r_tilde(&self) -> DMatrix<T> {
        self.derived().rt
    }

    /// `b`.
    pub fn b(&self) -> &[T] {
        &self.params[self.b_offset()..self.w_offset()]
    }

    /// `W`, `D × C` row by row (empty for an unconditional layer).
    pub fn context_weights(&self) -> &[T] {
        &self.params[self.w_offset()..]
    }

    /// The bias `b + W c` for the context `c` (`C` entries), into `out`.
    fn bias_into(&self, c: &[T], out: &mut [T]) {
        let cd = self.context_dim;
        let w = self.context_weights();
        for (i, (o, &bi)) in out.iter_mut().zip(self.b()).enumerate() {
            *o = bi + dot(&w[i * cd..(i + 1) * cd], c);
        }
    }

    /// The orthogonal `Q = H₁ ⋯ H_m` as a dense matrix.
    pub fn q(&self) -> DMatrix<T> {
        let d = self.derived();
        let mut q = DMatrix::identity(self.dim, self.dim);
        for mut col in q.column_iter_mut() {
            self.apply_q(&d, col.as_mut_slice());
        }
        q
    }

    fn v(&self, k: usize) -> &[T] {
        &self.params[k * self.dim..(k + 1) * self.dim]
    }

    fn r_offset(&self) -> usize {
        self.reflections * self.dim
    }

    fn rt_offset(&self) -> usize {
        self.r_offset() + tri_len(self.dim)
    }

    fn b_offset(&self) -> usize {
        self.rt_offset() + tri_len(self.dim)
    }

    fn w_offset(&self) -> usize {
        self.b_offset() + self.dim
    }

    fn derived(&self) -> Derived<T> {
        let dim = self.dim;
        let unpack = |off: usize| {
            let p = &self.params[off..off + tri_len(dim)];
            DMatrix::from_fn(dim, dim, |i, j| {
                if i > j {
                    T::zero()
                } else if i == j {
                    p[tri(dim, i, i)].tanh()
                } else {
                    p[tri(dim, i, j)]
                }
            })
        };
        let r = unpack(self.r_offset());
        let rt = unpack(self.rt_offset());
        let mut d = Vec::with_capacity(dim);
        let mut opd = Vec::with_capacity(dim);
        for i in 0..dim {
            let (a, c) = (r[(i, i)], rt[(i, i)]);
            let di = a * c;
            d.push(di);
            opd.push(if di >= T::zero() {
                T::one() + di
            } else {
                // 1 − |a||c| = (1 − |a|) + |a|(1 − |c|), with 1 − tanh|ρ| exact.
                let rho = self.params[self.r_offset() + tri(dim, i, i)];
                let rho_t = self.params[self.rt_offset() + tri(dim, i, i)];
                one_minus_tanh_abs(rho) + a.abs() * one_minus_tanh_abs(rho_t)
            });
        }
        let beta = (0..self.reflections)
            .map(|k| {
                let n2 = dot(self.v(k), self.v(k));
                let beta = T::lit(2.0) / n2;
                if n2 > T::zero() && beta.is_finite() {
                    beta
                } else {
                    T::zero()
                }
            })
            .collect();
        Derived {
            r,
            rt,
            d,
            opd,
            beta,
        }
    }

    /// `a ← Qᵀ a = H_m ⋯ H₁ a`.
    fn apply_qt(&self, d: &Derived<T>, a: &mut [T]) {
        for k in 0..self.reflections {
            reflect(self.v(k), d.beta[k], a);
        }
    }

    /// `a ← Q a = H₁ ⋯ H_m a`.
    fn apply_q(&self, d: &Derived<T>, a: &mut [T]) {
        for k in (0..self.reflections).rev() {
            reflect(self.v(k), d.beta[k], a);
        }
    }

    /// `1 + dᵢ sech²(x)` from `t = tanh x` and `s2 = sech² x`.
    fn det_at(d: &Derived<T>, i: usize, t: T, s2: T) -> T {
        if d.d[i] >= T::lit(-0.5) {
            T::one() + d.d[i] * s2
        } else {
            t * t + d.opd[i] * s2
        }
    }

    /// `log(1 + dᵢ sech²(x))` from `t = tanh x` and `s2 = sech² x`.
    fn log_det_at(d: &Derived<T>, i: usize, t: T, s2: T) -> T {
        if d.d[i] >= T::lit(-0.5) {
            (d.d[i] * s2).ln_1p()
        } else {
            (t * t + d.opd[i] * s2).ln()
        }
    }

    /// `x = R̃ ζ + b` for `ζ = Qᵀz` in `q` and the bias `b` (`b + W c`).
    fn pre_activation(&self, d: &Derived<T>, q: &[T], b: &[T], x: &mut [T]) {
        for i in 0..self.dim {
            let mut s = b[i];
            for (j, &qj) in q.iter().enumerate().skip(i) {
                s += d.rt[(i, j)] * qj;
            }
            x[i] = s;
        }
    }

    fn forward_impl(
        &self,
        z: &DMatrix<T>,
        c: &DMatrix<T>,
        want_y: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        let d = self.derived();
        let (dim, n) = (self.dim, z.ncols());
        let mut y = super::copy_if(z, want_y);
        let mut ldj = DVector::zeros(n);
        let zeros = || vec![T::zero(); dim];
        let (mut q, mut x, mut u, mut t) = (zeros(), zeros(), zeros(), zeros());
        let mut b = zeros();
        for s in 0..n {
            q.copy_from_slice(&z.as_slice()[s * dim..(s + 1) * dim]);
            self.apply_qt(&d, &mut q);
            self.bias_into(c.column(s).as_slice(), &mut b);
            self.pre_activation(&d, &q, &b, &mut x);
            let mut l = T::zero();
            for i in 0..dim {
                let (ti, s2) = tanh_sech2(x[i]);
                t[i] = ti;
                l += Self::log_det_at(&d, i, ti, s2);
            }
            ldj[s] = l;
            if want_y {
                for (i, ui) in u.iter_mut().enumerate() {
                    *ui = (i..dim).fold(T::zero(), |acc, j| acc + d.r[(i, j)] * t[j]);
                }
                self.apply_q(&d, &mut u);
                for (i, &ui) in u.iter().enumerate() {
                    y[(i, s)] += ui;
                }
            }
        }
        (y, ldj)
    }
}

/// `a ← (I − β v vᵀ) a`; nothing when `β = 0`.
#[inline]
fn reflect<T: Real>(v: &[T], beta: T, a: &mut [T]) {
    if beta == T::zero() {
        return;
    }
    let c = beta * dot(v, a);
    for (ai, &vi) in a.iter_mut().zip(v) {
        *ai -= c * vi;
    }
}

#[inline]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y)
}

/// `1 − tanh|x| = 2e/(1 + e)`, `e = exp(−2|x|)`, without cancellation.
#[inline]
fn one_minus_tanh_abs<T: Real>(x: T) -> T {
    let e = (-(x.abs() + x.abs())).exp();
    (e + e) / (T::one() + e)
}

impl<T: Real> Sylvester<T> {
    /// Both directions under the contexts `c` (`C × n`), shapes checked.
    fn apply(&self, input: &DMatrix<T>, c: &DMatrix<T>, inverse: bool) -> (DMatrix<T>, DVector<T>) {
        let caller = if inverse {
            "Sylvester::inverse"
        } else {
            "Sylvester::forward"
        };
        super::assert_pair(caller, Some(self.dim), self.context_dim, input, c);
        if inverse {
            self.inverse_impl(input, c)
        } else {
            self.forward_impl(input, c, true)
        }
    }
}

impl<T: Real> Bijector<T> for Sylvester<T> {
    super::fused::maps_from_apply!(Sylvester::apply);
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    super::differentiable_hooks!();
}
