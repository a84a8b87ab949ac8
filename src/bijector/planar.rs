use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use rand_distr::{Distribution as _, StandardNormal};
use serde::{Deserialize, Serialize};

use super::root::{tanh_root, tanh_sech2};
use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

mod gradients;

/// Planar flow layer (Rezende & Mohamed 2015, *Variational Inference with
/// Normalizing Flows*, §4.1 and appendix A.1).
///
/// Forward (base → data):
///
/// ```text
/// f(z) = z + û · tanh(wᵀz + b),     log|det ∂f/∂z| = log(1 + wᵀû · tanh'(wᵀz + b))
/// ```
///
/// (the paper's `log|1 + ûᵀψ(z)|` with `ψ = h'(wᵀz + b) w`, `h = tanh`).
///
/// **Invertibility.** The map is invertible if and only if `wᵀû ≥ −1`. The layer
/// stores an unconstrained `u` and uses the paper's reparametrisation
///
/// ```text
/// û = u + (m(wᵀu) − wᵀu) · w / ‖w‖²,     m(a) = −1 + softplus(a),
/// ```
///
/// so that `wᵀû = m(wᵀu) = softplus(wᵀu) − 1 ≥ −1` for every `u` and `w`. The
/// coefficient `m(a) − a = softplus(−a) − 1` is computed in that stable form, and
/// `1 + wᵀû·tanh'(x)` as `tanh²(x) + softplus(wᵀu)·sech²(x)` when `wᵀû < −½`
/// (a sum of non-negative terms, without the cancellation of `1 − 1`), so the
/// log-determinant is finite except where `wᵀû = −1` exactly and
/// `wᵀz + b = 0` (a set of measure zero, where the Jacobian is singular).
///
/// **`w = 0`.** Then `‖w‖² = 0` and the reparametrisation is undefined: the
/// layer uses `û = u` (no division), so `f(z) = z + u·tanh(b)` is a pure shift
/// with log-determinant 0. The same rule applies whenever the correction
/// `(m(wᵀu) − wᵀu)/‖w‖²` is not representable (`‖w‖` below about `1e-154` in
/// `f64`). Note that for small but representable `‖w‖`, `û` grows like
/// `1/‖w‖`: this is a property of the reparametrisation, not of the
/// implementation.
///
/// **Inverse.** With `α = wᵀz`, projecting `y = f(z)` on `w` gives the scalar
/// equation `wᵀy = α + wᵀû · tanh(α + b)`, whose left side is non-decreasing in
/// `α` (because `wᵀû ≥ −1`) and whose root lies in `[wᵀy − |wᵀû|, wᵀy + |wᵀû|]`
/// (because `|tanh| ≤ 1`). It is solved by Newton's method safeguarded by
/// bisection (the bracket is kept and never left; a Newton step that would
/// leave it, or that does not shrink fast enough, is replaced by bisection),
/// iterated until the residual is at the rounding level of its evaluation, the
/// step is at machine precision or the bracket holds no further float (at most
/// 200 iterations, fewer than 25 in practice, usually fewer than 10); then
/// `z = y − û tanh(α + b)`. Saturated `tanh` (e.g. `b = −1e8`), tiny `wᵀû` and
/// huge `|wᵀz|` are all handled by the same bracket. The round trip is accurate
/// to ~1e-15 relative in `f64` for well-conditioned layers; near the fold of a
/// layer with `wᵀû ≈ −1` (where `1 + wᵀû·tanh'` is small) the error grows with
/// the condition number of the map, as for any inverse.
///
/// **Costs.** Forward and log-det: `O(D)` per sample. Inverse: `O(D)` per sample
/// plus a scalar root finding (a few `tanh` evaluations).
///
/// **Training.** The layer is [`Differentiable`](super::Differentiable) in both
/// directions, by hand-written reverse mode through the reparametrisation
/// (`û` depends on `u` and `w`, `wᵀû` on `wᵀu`). The inverse is differentiated
/// implicitly: with `z = f⁻¹(y)`, `∂z/∂y = J⁻¹` and `∂z/∂θ = −J⁻¹ ∂f/∂θ`, where
/// `J = I + û ψᵀ` is inverted by Sherman–Morrison,
/// `J⁻ᵀ v = v − ψ (ûᵀv)/(1 + ψᵀû)`; the inverse log-det is differentiated both
/// directly in `θ` and through `z`. Backward passes cost `O(D)` per sample
/// (plus the root finding in the inverse direction). In the `w = 0` branch the
/// gradients are those of the function that branch computes,
/// `z + u tanh(wᵀz + b)` with log-det `log(1 + wᵀu·sech²(wᵀz + b))`; the layer
/// itself is discontinuous in `w` at `w = 0` (for `w ≠ 0`, `û − u` is of order
/// `1/‖w‖`), so no gradient can be consistent with both sides.
///
/// **Do not train from the identity initialisation.** At `u = w = 0`, `b = 0`
/// every parameter gradient vanishes exactly, in both directions and for any
/// loss: `∂f/∂u = tanh(b) = 0`, `∂f/∂w` and `∂f/∂b` are proportional to
/// `û = 0`, and the log-det `log(1 + wᵀu·sech²)` is flat to first order. It is
/// a saddle that gradient descent cannot leave, which is why the flow DSL's
/// `planar` defaults to `identity_init = false` (a random, well-conditioned
/// start; see [`Planar::new`]).
///
/// **Parameters.** One buffer of length `2D + 1`: `[u (D), w (D), b (1)]`
/// ([`Planar::params`]); `u` is the unconstrained vector (before the
/// reparametrisation). Every entry must stay finite.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let planar = Planar::<f64>::new(2, false, &mut rng)?;
/// assert_eq!(planar.num_params(), 5); // u (2), w (2), b
/// assert!(planar.w_dot_u_hat() >= -1.0); // invertible by construction
///
/// let z = DMatrix::from_row_slice(2, 3, &[-1.0, 0.2, 2.0, 0.5, -0.3, 1.0]);
/// let (y, ldj) = planar.forward_and_log_det(&z);
/// let (z_back, ildj) = planar.inverse_and_log_det(&y); // root finding, to ~1e-15
/// assert!((z_back - &z).amax() < 1e-12);
/// assert!((ldj + ildj).amax() < 1e-12);
///
/// // Training: the backward pass of the density direction (implicit
/// // differentiation of the root finding) for the loss Σ log-det.
/// let mut grad = vec![0.0; planar.num_params()];
/// let grad_y = planar.inverse_and_log_det_backward(
///     &y, &DMatrix::zeros(2, 3), &DVector::from_element(3, 1.0), &mut grad)?;
/// assert_eq!(grad_y.shape(), (2, 3));
/// assert!(grad.iter().any(|&g| g != 0.0));
///
/// // The identity initialisation (u = w = 0, b = 0) is exactly the identity,
/// // and a saddle: every parameter gradient is 0 there.
/// let id = Planar::<f64>::new(2, true, &mut rng)?;
/// assert_eq!(id.forward(&z), z);
/// let mut grad = vec![0.0; id.num_params()];
/// id.forward_and_log_det_backward(&z, &DMatrix::from_element(2, 3, 1.0), &DVector::from_element(3, 1.0), &mut grad)?;
/// assert!(grad.iter().all(|&g| g == 0.0));
///
/// // Hand-picked parameters: u = (1, 0), w = (0, 2), b = 0.5.
/// let p = Planar::from_params(
///     DVector::from_vec(vec![1.0, 0.0]),
///     DVector::from_vec(vec![0.0, 2.0]),
///     0.5,
/// )?;
/// assert_eq!(p.params(), &[1.0, 0.0, 0.0, 2.0, 0.5]);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PlanarRepr<T>", into = "PlanarRepr<T>")]
pub struct Planar<T: Real> {
    dim: usize,
    /// `[u (D), w (D), b]`.
    params: Vec<T>,
}

/// The serialised form: `{"u": [...], "w": [...], "b": ...}`, validated on load.
#[derive(Serialize, Deserialize)]
struct PlanarRepr<T: Real> {
    u: Vec<T>,
    w: Vec<T>,
    b: T,
}

impl<T: Real> From<Planar<T>> for PlanarRepr<T> {
    fn from(p: Planar<T>) -> Self {
        PlanarRepr {
            u: p.u().to_vec(),
            w: p.w().to_vec(),
            b: p.b(),
        }
    }
}

impl<T: Real> TryFrom<PlanarRepr<T>> for Planar<T> {
    type Error = Error;
    fn try_from(r: PlanarRepr<T>) -> Result<Self, Error> {
        Planar::from_params(DVector::from_vec(r.u), DVector::from_vec(r.w), r.b)
    }
}

/// Quantities derived from the parameters, recomputed at every call (`O(D)`),
/// so that writing to [`Planar::params_mut`] needs no cache invalidation.
struct Derived<T: Real> {
    /// The reparametrised `û`.
    u_hat: DVector<T>,
    /// `wᵀû` computed as the dot product of the stored `w` and `û` (clamped to
    /// `≥ −1`): the exact projection of the map that `forward` evaluates, used
    /// by the root finding so that forward and inverse are consistent.
    m_dot: T,
    /// `wᵀû` in closed form, `softplus(wᵀu) − 1` (or `wᵀu` when `w = 0`).
    m: T,
    /// `1 + m`, computed without cancellation (`softplus(wᵀu)`).
    one_plus_m: T,
    /// `wᵀu`.
    wtu: T,
    /// `‖w‖²`.
    wtw: T,
    /// The coefficient `k = (m(wᵀu) − wᵀu)/‖w‖²` of `û = u + k w`, or `None`
    /// in the `w = 0` branch (`û = u`, `m = wᵀu`).
    k: Option<T>,
}

impl<T: Real> Planar<T> {
    /// A planar layer on `R^dim`.
    ///
    /// With `identity_init`, `u = 0`, `w = 0` and `b = 0`, so `f(z) = z + 0·tanh(0)`
    /// is exactly the identity (the `w = 0` rule: `û = u = 0`). Note that every
    /// parameter gradient vanishes there (a saddle: see "Training" in the
    /// type's docs), so training from this point needs a perturbation. Without it, `w` has a uniformly random direction
    /// and a norm uniform in `[0.5, 1.5]`, `u ~ N(0, I/D)` and
    /// `b ~ N(0, 0.5²)`: a clearly non-linear, well-conditioned layer
    /// (`‖w‖ ≥ 0.5` keeps `‖û‖` moderate).
    ///
    /// Errors if `dim == 0`.
    pub fn new(dim: usize, identity_init: bool, rng: &mut dyn Rng) -> Result<Self, Error> {
        check::dim_at_least_one("Planar::new", "dim", dim)?;
        let mut params = vec![T::zero(); 2 * dim + 1];
        if !identity_init {
            let scale = 1.0 / (dim as f64).sqrt();
            for p in params.iter_mut().take(dim) {
                *p = T::lit(std_normal(rng) * scale);
            }
            let (dir, norm) = loop {
                let dir: Vec<f64> = (0..dim).map(|_| std_normal(rng)).collect();
                let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
                if norm > 1e-6 {
                    break (dir, norm);
                }
            };
            let radius = 0.5 + rng.random_range(0.0..1.0);
            for (p, d) in params[dim..2 * dim].iter_mut().zip(&dir) {
                *p = T::lit(d / norm * radius);
            }
            params[2 * dim] = T::lit(0.5 * std_normal(rng));
        }
        Ok(Self { dim, params })
    }

    /// A planar layer with the given unconstrained `u`, `w` and `b` (the layer
    /// uses the reparametrised `û`, see the type's docs). Errors if the
    /// vectors are empty, of different lengths, or hold a non-finite value.
    pub fn from_params(u: DVector<T>, w: DVector<T>, b: T) -> Result<Self, Error> {
        const CTX: &str = "Planar::from_params";
        check::dim_at_least_one(CTX, "u", u.len())?;
        check::same_dim(CTX, "w", u.len(), w.len())?;
        check::finite_vec(CTX, "u", &u)?;
        check::finite_vec(CTX, "w", &w)?;
        if !b.is_finite() {
            return Err(check::invalid(CTX, "b", "finite", b));
        }
        let dim = u.len();
        let mut params = Vec::with_capacity(2 * dim + 1);
        params.extend(u.iter().copied());
        params.extend(w.iter().copied());
        params.push(b);
        Ok(Self { dim, params })
    }

    /// The unconstrained `u` (before the reparametrisation).
    pub fn u(&self) -> &[T] {
        &self.params[..self.dim]
    }

    /// `w`.
    pub fn w(&self) -> &[T] {
        &self.params[self.dim..2 * self.dim]
    }

    /// `b`.
    pub fn b(&self) -> T {
        self.params[2 * self.dim]
    }

    /// The reparametrised `û = u + (m(wᵀu) − wᵀu) w/‖w‖²` (`u` itself when
    /// `‖w‖² = 0`).
    pub fn u_hat(&self) -> DVector<T> {
        self.derived().u_hat
    }

    /// `wᵀû` in closed form: `softplus(wᵀu) − 1`, which is `≥ −1` exactly (in
    /// floating point too, since `softplus ≥ 0`); `wᵀu` (0 for `w = 0`) when
    /// `‖w‖² = 0`. The dot product of [`Planar::w`] and [`Planar::u_hat`] agrees
    /// with it up to rounding.
    pub fn w_dot_u_hat(&self) -> T {
        self.derived().m
    }

    /// All parameters in one buffer: `[u (D), w (D), b]`.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameter buffer (same layout as [`Planar::params`]). Any finite
    /// values give an invertible layer.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `2D + 1`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    fn derived(&self) -> Derived<T> {
        let (u, w) = (self.u(), self.w());
        let wtw = w.iter().fold(T::zero(), |acc, &v| acc + v * v);
        let wtu = w.iter().zip(u).fold(T::zero(), |acc, (&a, &c)| acc + a * c);
        // m(a) − a = −1 + softplus(a) − a = softplus(−a) − 1, without cancellation.
        let k = ((-wtu).softplus() - T::one()) / wtw;
        let (u_hat, m, one_plus_m, k) = if wtw > T::zero() && k.is_finite() {
            let u_hat =
                DVector::from_iterator(self.dim, u.iter().zip(w).map(|(&ui, &wi)| ui + k * wi));
            let s = wtu.softplus();
            (u_hat, s - T::one(), s, Some(k))
        } else {
            // w = 0 (or ‖w‖ so small that the correction is not representable):
            // û = u, and wᵀû = wᵀu.
            (DVector::from_column_slice(u), wtu, T::one() + wtu, None)
        };
        let dot = w
            .iter()
            .zip(u_hat.iter())
            .fold(T::zero(), |acc, (&a, &c)| acc + a * c);
        Derived {
            m_dot: dot.max(-T::one()),
            u_hat,
            m,
            one_plus_m,
            wtu,
            wtw,
            k,
        }
    }

    /// `1 + wᵀû · sech²(x)` from `t = tanh x` and `s2 = sech² x`, in the same
    /// stable form as [`Planar::log_det_at`].
    fn det_at(d: &Derived<T>, t: T, s2: T) -> T {
        if d.m >= T::lit(-0.5) {
            T::one() + d.m * s2
        } else {
            t * t + d.one_plus_m * s2
        }
    }

    /// `log(1 + wᵀû · sech²(x))` at `x = wᵀz + b`.
    fn log_det_at(d: &Derived<T>, x: T) -> T {
        let (t, s2) = tanh_sech2(x);
        if d.m >= T::lit(-0.5) {
            // 1 + m·sech² ≥ ½: log1p is accurate (and exactly 0 when m = 0).
            (d.m * s2).ln_1p()
        } else {
            // 1 + m·sech² = tanh² + (1 + m)·sech², both terms ≥ 0.
            (t * t + d.one_plus_m * s2).ln()
        }
    }

    fn forward_impl(&self, z: &DMatrix<T>, want_y: bool) -> (DMatrix<T>, DVector<T>) {
        let d = self.derived();
        let (w, b) = (self.w(), self.b());
        let n = z.ncols();
        let mut y = super::copy_if(z, want_y);
        let mut ldj = DVector::zeros(n);
        for s in 0..n {
            let col = z.column(s);
            let alpha = w
                .iter()
                .zip(col.iter())
                .fold(T::zero(), |acc, (&a, &c)| acc + a * c);
            let x = alpha + b;
            if want_y {
                let t = x.tanh();
                for i in 0..self.dim {
                    y[(i, s)] += d.u_hat[i] * t;
                }
            }
            ldj[s] = Self::log_det_at(&d, x);
        }
        (y, ldj)
    }

    /// `(f⁻¹(y), log|det ∂f⁻¹/∂y|)`.
    fn inverse_impl(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let d = self.derived();
        let (w, b) = (self.w(), self.b());
        let n = y.ncols();
        let mut z = y.clone();
        let mut ildj = DVector::zeros(n);
        for s in 0..n {
            let c = w
                .iter()
                .zip(y.column(s).iter())
                .fold(T::zero(), |acc, (&a, &v)| acc + a * v);
            let alpha = solve_alpha(c, d.m_dot, b);
            let x = alpha + b;
            let t = x.tanh();
            for i in 0..self.dim {
                z[(i, s)] -= d.u_hat[i] * t;
            }
            ildj[s] = -Self::log_det_at(&d, x);
        }
        (z, ildj)
    }
}

/// One draw from `N(0, 1)`.
pub(crate) fn std_normal(rng: &mut dyn Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Panics unless the arguments of a backward pass have matching shapes: `input`
/// and `grad_out` are `dim × n`, `grad_log_det` has length `n` and
/// `grad_params` has length `num_params`.
pub(crate) fn assert_backward_shapes<T: Real>(
    context: &str,
    dim: usize,
    num_params: usize,
    input: &DMatrix<T>,
    grad_out: &DMatrix<T>,
    grad_log_det: &DVector<T>,
    grad_params: &[T],
) {
    assert_rows(context, dim, input);
    let n = input.ncols();
    assert!(
        grad_out.shape() == (dim, n),
        "{context}: output cotangent has shape {:?}, expected ({dim}, {n})",
        grad_out.shape()
    );
    assert!(
        grad_log_det.len() == n,
        "{context}: log-det cotangent has length {}, expected {n}",
        grad_log_det.len()
    );
    assert!(
        grad_params.len() == num_params,
        "{context}: parameter gradient has length {}, expected {num_params}",
        grad_params.len()
    );
}

/// The root `α` of `g(α) = α + m·tanh(α + b) − c` for `m ≥ −1`: the
/// shared [`tanh_root`] with `r̃ = 1`.
fn solve_alpha<T: Real>(c: T, m: T, b: T) -> T {
    tanh_root(c, m, T::one(), b)
}

impl<T: Real> Bijector<T> for Planar<T> {
    super::fused::maps_from_impls!("Planar");
    super::differentiable_hooks!();
}
