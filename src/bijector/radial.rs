use nalgebra::{DMatrix, DVector, DVectorView};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Bijector;
use super::planar::std_normal;
use crate::error::check;
use crate::{Error, Real};

mod gradients;

/// Radial flow layer (Rezende & Mohamed 2015, *Variational Inference with
/// Normalizing Flows*, §4.1 and appendix A.2): a contraction or expansion
/// around a reference point `z₀`.
///
/// Forward (base → data), with `r = ‖z − z₀‖` and `h = 1/(α + r)`:
///
/// ```text
/// f(z) = z + β h (z − z₀)
/// log|det ∂f/∂z| = (D − 1) log(1 + βh) + log(1 + βh + βh' r),    h' = −1/(α + r)²
/// ```
///
/// **Invertibility.** The map is invertible if and only if `β ≥ −α` (with
/// `α > 0`). The layer stores unconstrained `α̃`, `β̃` and uses
/// `α = softplus(α̃)`, `β = −α + softplus(β̃)`. The log-determinant is computed
/// from `1 + βh = (σ + r)/(α + r)` and
/// `1 + βh + βh'r = (r(r + 2α) + σα)/(α + r)²`, with `σ = α + β = softplus(β̃)`
/// taken directly from `β̃`, so that a strongly contracting layer (`β` near `−α`)
/// loses no accuracy to the cancellation in `α + β`. (For `|βh| ≤ ½` the
/// equivalent `log1p` forms are used.)
///
/// **Inverse.** `ρ = ‖y − z₀‖ = r (1 + β/(α + r))` is the quadratic
/// `r² + (σ − ρ) r − αρ = 0`, whose roots have opposite signs; the non-negative
/// one is taken as `(−B + √(B² + 4αρ))/2` when `B = σ − ρ ≤ 0` and as
/// `2αρ/(B + √(B² + 4αρ))` otherwise (no cancellation in either). Then
/// `z = z₀ + (y − z₀)·r/ρ`, with `r/ρ = (α + r)/(σ + r)` (`z = z₀` when
/// `ρ = 0`). Closed form, no iteration.
///
/// The Jacobian is continuous but not differentiable at `z = z₀` (`r = 0`).
///
/// **Costs.** `O(D)` per sample in both directions.
///
/// **Training.** The layer is [`Differentiable`](super::Differentiable) in both
/// directions, by hand-written reverse mode in the constrained `α` and
/// `σ = α + β` (then through the two softplus maps). The inverse is
/// differentiated through its closed form: the radius `r(ρ, α, σ)` solves
/// `ρ = r(σ + r)/(α + r)`, whose derivative in `r` is
/// `(r(r + 2α) + σα)/(α + r)² > 0`, so the implicit-function derivatives of `r`
/// need no Jacobian inversion. Backward passes cost `O(D)` per sample. At
/// `z = z₀` (`y = z₀`) the map is not differentiable; the backward passes drop
/// the radius path there.
///
/// **The identity initialisation trains.** Unlike the planar layer, whose
/// identity point is a saddle with vanishing gradients, the radial layer at
/// `β̃ = α̃` (`β = 0`, exactly the identity) has non-zero gradients: for
/// example `∂f/∂β̃ = sigmoid(β̃)(z − z₀)/(α + r)`. The flow DSL defaults
/// `radial` to `identity_init = false` as it does `planar`; for this layer
/// that is a choice of starting point, not a necessity.
///
/// **Parameters.** One buffer of length `D + 2`: `[z₀ (D), α̃, β̃]`
/// ([`Radial::params`]). `α̃` must keep `softplus(α̃) > 0` (above about `−745`
/// in `f64` and `−103` in `f32`); `β̃` may be any finite value.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(4);
/// let radial = Radial::<f64>::new(3, false, &mut rng)?;
/// assert_eq!(radial.num_params(), 5); // z₀ (3), α̃, β̃
/// assert!(radial.alpha() > 0.0 && radial.beta() >= -radial.alpha());
///
/// let z = DMatrix::from_row_slice(3, 2, &[1.0, -2.0, 0.5, 0.3, -1.0, 2.5]);
/// let (y, ldj) = radial.forward_and_log_det(&z);
/// let (z_back, ildj) = radial.inverse_and_log_det(&y); // closed form
/// assert!((z_back - &z).amax() < 1e-12);
/// assert!((ldj + ildj).amax() < 1e-12);
///
/// // β̃ = α̃ gives β = 0 exactly: the identity.
/// let id = Radial::from_params(DVector::from_vec(vec![1.0, 2.0, 3.0]), 0.7, 0.7)?;
/// assert_eq!(id.beta(), 0.0);
/// assert_eq!(id.forward(&z), z);
///
/// // ... from which training moves: the gradient of Σ log-det is not zero.
/// let mut grad = vec![0.0; id.num_params()];
/// id.forward_and_log_det_backward(&z, &DMatrix::zeros(3, 2), &DVector::from_element(2, 1.0), &mut grad)?;
/// assert!(grad[4] != 0.0); // ∂/∂β̃
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RadialRepr<T>", into = "RadialRepr<T>")]
pub struct Radial<T: Real> {
    dim: usize,
    /// `[z₀ (D), α̃, β̃]`.
    params: Vec<T>,
}

/// The serialised form: `{"z0": [...], "raw_alpha": ..., "raw_beta": ...}`,
/// validated on load.
#[derive(Serialize, Deserialize)]
struct RadialRepr<T: Real> {
    z0: Vec<T>,
    raw_alpha: T,
    raw_beta: T,
}

impl<T: Real> From<Radial<T>> for RadialRepr<T> {
    fn from(r: Radial<T>) -> Self {
        RadialRepr {
            z0: r.center().to_vec(),
            raw_alpha: r.raw_alpha(),
            raw_beta: r.raw_beta(),
        }
    }
}

impl<T: Real> TryFrom<RadialRepr<T>> for Radial<T> {
    type Error = Error;
    fn try_from(r: RadialRepr<T>) -> Result<Self, Error> {
        Radial::from_params(DVector::from_vec(r.z0), r.raw_alpha, r.raw_beta)
    }
}

/// `α`, `β` and `σ = α + β`, recomputed at every call.
#[derive(Clone, Copy)]
struct Constrained<T> {
    alpha: T,
    beta: T,
    sigma: T,
}

impl<T: Real> Radial<T> {
    /// A radial layer on `R^dim`.
    ///
    /// With `identity_init`, `β̃ = α̃`, so `β = softplus(β̃) − softplus(α̃)` is
    /// exactly 0 and the layer is exactly the identity; `z₀ ~ N(0, I)` and
    /// `α̃ ~ N(0, 1)` are still drawn, so that stacked layers start from
    /// different centres. Without it, `z₀ ~ N(0, I)`, `α̃ ~ N(0, 1)` and
    /// `β̃ ~ N(0, 1)` independently (a contraction or an expansion of moderate
    /// strength).
    ///
    /// Errors if `dim == 0`.
    pub fn new(dim: usize, identity_init: bool, rng: &mut dyn Rng) -> Result<Self, Error> {
        check::dim_at_least_one("Radial::new", "dim", dim)?;
        let mut params: Vec<T> = (0..dim + 2).map(|_| T::lit(std_normal(rng))).collect();
        if identity_init {
            params[dim + 1] = params[dim];
        }
        Ok(Self { dim, params })
    }

    /// A radial layer with centre `z0` and unconstrained `raw_alpha` (`α̃`) and
    /// `raw_beta` (`β̃`): `α = softplus(α̃)`, `β = softplus(β̃) − α`.
    ///
    /// Errors if `z0` is empty or not finite, if `raw_beta` is not finite, or if
    /// `raw_alpha` is not finite or so negative that `softplus(raw_alpha)`
    /// underflows to 0.
    pub fn from_params(z0: DVector<T>, raw_alpha: T, raw_beta: T) -> Result<Self, Error> {
        const CTX: &str = "Radial::from_params";
        check::dim_at_least_one(CTX, "z0", z0.len())?;
        check::finite_vec(CTX, "z0", &z0)?;
        if !raw_alpha.is_finite() || raw_alpha.softplus() <= T::zero() {
            return Err(check::invalid(
                CTX,
                "raw_alpha",
                "finite with softplus(raw_alpha) > 0",
                raw_alpha,
            ));
        }
        if !raw_beta.is_finite() {
            return Err(check::invalid(CTX, "raw_beta", "finite", raw_beta));
        }
        let dim = z0.len();
        let mut params = Vec::with_capacity(dim + 2);
        params.extend(z0.iter().copied());
        params.push(raw_alpha);
        params.push(raw_beta);
        Ok(Self { dim, params })
    }

    /// The centre `z₀`.
    pub fn center(&self) -> &[T] {
        &self.params[..self.dim]
    }

    /// The unconstrained `α̃`.
    pub fn raw_alpha(&self) -> T {
        self.params[self.dim]
    }

    /// The unconstrained `β̃`.
    pub fn raw_beta(&self) -> T {
        self.params[self.dim + 1]
    }

    /// `α = softplus(α̃) > 0`.
    pub fn alpha(&self) -> T {
        self.constrained().alpha
    }

    /// `β = softplus(β̃) − α ≥ −α`.
    pub fn beta(&self) -> T {
        self.constrained().beta
    }

    /// All parameters in one buffer: `[z₀ (D), α̃, β̃]`.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Mutable parameter buffer (same layout as [`Radial::params`]); keep the
    /// values finite and `softplus(α̃) > 0`.
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Number of parameters, `D + 2`.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    fn constrained(&self) -> Constrained<T> {
        let alpha = self.raw_alpha().softplus();
        let sigma = self.raw_beta().softplus();
        Constrained {
            alpha,
            beta: sigma - alpha,
            sigma,
        }
    }

    /// `log|det ∂f/∂z|` at radius `r`.
    fn log_det_at(&self, c: Constrained<T>, r: T) -> T {
        let half = T::lit(0.5);
        let ar = c.alpha + r;
        // 1 + βh = (σ + r)/(α + r).
        let bh = c.beta / ar;
        let l1 = if bh >= -half {
            bh.ln_1p()
        } else {
            ((c.sigma + r) / ar).ln()
        };
        // 1 + βh + βh'r = 1 + βα/(α + r)² = (r(r + 2α) + σα)/(α + r)².
        let k = bh * (c.alpha / ar);
        let l2 = if k >= -half {
            k.ln_1p()
        } else {
            ((r / ar) * ((r + c.alpha + c.alpha) / ar) + (c.sigma / ar) * (c.alpha / ar)).ln()
        };
        T::lit((self.dim - 1) as f64) * l1 + l2
    }

    fn forward_impl(&self, z: &DMatrix<T>, want_y: bool) -> (DMatrix<T>, DVector<T>) {
        let c = self.constrained();
        let z0 = DVectorView::from_slice(self.center(), self.dim);
        let n = z.ncols();
        let mut y = super::copy_if(z, want_y);
        let mut ldj = DVector::zeros(n);
        for s in 0..n {
            let diff = z.column(s) - z0;
            let r = norm(&diff);
            if want_y {
                let ar = c.alpha + r;
                let bh = c.beta / ar;
                if bh >= T::lit(-0.5) {
                    // y = z + βh (z − z₀): exactly z when β = 0.
                    for i in 0..self.dim {
                        y[(i, s)] += bh * diff[i];
                    }
                } else {
                    // Strong contraction: y = z₀ + (z − z₀)(σ + r)/(α + r),
                    // without the cancellation of z + βh(z − z₀).
                    let q = (c.sigma + r) / ar;
                    for i in 0..self.dim {
                        y[(i, s)] = z0[i] + diff[i] * q;
                    }
                }
            }
            ldj[s] = self.log_det_at(c, r);
        }
        (y, ldj)
    }

    fn inverse_impl(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let c = self.constrained();
        let z0 = DVectorView::from_slice(self.center(), self.dim);
        let n = y.ncols();
        let mut z = y.clone();
        let mut ildj = DVector::zeros(n);
        for s in 0..n {
            let dy = y.column(s) - z0;
            let rho = norm(&dy);
            let r = radius(c, rho);
            if rho > T::zero() {
                // z − z₀ = (y − z₀)(α + r)/(σ + r); equivalently z = y − k (y − z₀)
                // with k = β/(σ + r), exact when β = 0.
                let sr = c.sigma + r;
                let k = c.beta / sr;
                if k.abs() <= T::lit(0.5) {
                    for i in 0..self.dim {
                        z[(i, s)] -= k * dy[i];
                    }
                } else {
                    let q = (c.alpha + r) / sr;
                    for i in 0..self.dim {
                        z[(i, s)] = z0[i] + dy[i] * q;
                    }
                }
            }
            ildj[s] = -self.log_det_at(c, r);
        }
        (z, ildj)
    }
}

/// The radius `r ≥ 0` with `r (1 + β/(α + r)) = ρ`: the non-negative root of
/// `r² + B r − αρ = 0`, `B = σ − ρ`, in the form without cancellation.
fn radius<T: Real>(c: Constrained<T>, rho: T) -> T {
    if rho == T::zero() {
        return T::zero();
    }
    let two = T::lit(2.0);
    // √(B² + 4αρ) via hypot.
    let bq = c.sigma - rho;
    let root = bq.hypot(two * (c.alpha * rho).sqrt());
    if bq <= T::zero() {
        (root - bq) / two
    } else {
        two * c.alpha * rho / (bq + root)
    }
}

/// Euclidean norm, rescaled when plain squaring could overflow or underflow.
fn norm<T: Real>(v: &DVector<T>) -> T {
    let amax = v.iter().fold(T::zero(), |m, x| m.max(x.abs()));
    if amax == T::zero() || !amax.is_finite() {
        return amax;
    }
    if amax > T::lit(1e-15) && amax < T::lit(1e15) {
        v.iter().fold(T::zero(), |acc, &x| acc + x * x).sqrt()
    } else {
        amax * v
            .iter()
            .fold(T::zero(), |acc, &x| {
                let q = x / amax;
                acc + q * q
            })
            .sqrt()
    }
}

impl<T: Real> Bijector<T> for Radial<T> {
    super::fused::maps_from_impls!("Radial");
    super::differentiable_hooks!();
}
