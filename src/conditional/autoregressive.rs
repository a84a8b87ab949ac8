//! Conditional MADE layers: the MAF and the autoregressive spline with a
//! context input of degree 0.

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{ConditionalBijector, ConditionalDifferentiable, assert_pair};
use crate::bijector::{Continuation, MaskedAutoregressiveFlow, SplineAutoregressive};
use crate::error::check;
use crate::nn::{ConditionerConfig, Made, positive_scale};
use crate::{Error, Real};

/// What the shared conditional autoregressive passes need from a layer: its
/// MADE (with a context) and the elementwise transform given the MADE's output.
trait Kernel<T: Real> {
    const NAME: &'static str;
    fn made(&self) -> &Made<T>;
    /// `(u, log|det ∂u/∂x|)` given the MADE's output at `x`.
    fn invert_with(&self, x: &DMatrix<T>, out: &DMatrix<T>) -> (DMatrix<T>, DVector<T>);
    /// `(∂L/∂x` along the direct path, `∂L/∂out)`.
    fn density_cotangents(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>);
    /// Length of the per-coordinate scratch buffer of `generate_coordinate`.
    fn scratch(&self) -> usize;
    /// `(xᵢ, log dxᵢ/duᵢ)` of sample `s` given the MADE's output.
    fn generate_coordinate(
        &self,
        out: &DMatrix<T>,
        u: T,
        i: usize,
        s: usize,
        scratch: &mut [T],
    ) -> (T, T);
}

impl<T: Real> Kernel<T> for MaskedAutoregressiveFlow<T> {
    const NAME: &'static str = "ConditionalMaf";
    fn made(&self) -> &Made<T> {
        MaskedAutoregressiveFlow::made(self)
    }
    fn invert_with(&self, x: &DMatrix<T>, out: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        MaskedAutoregressiveFlow::invert_with(self, x, out)
    }
    fn density_cotangents(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        MaskedAutoregressiveFlow::density_cotangents(self, x, out, grad_u, grad_log_det)
    }
    fn scratch(&self) -> usize {
        0
    }
    fn generate_coordinate(
        &self,
        out: &DMatrix<T>,
        u: T,
        i: usize,
        s: usize,
        _: &mut [T],
    ) -> (T, T) {
        let d = self.made().dim();
        // The inverse is u = x·s + t (see MaskedAutoregressiveFlow).
        let (scale, log_scale) = positive_scale(out[(d + i, s)]);
        ((u - out[(i, s)]) / scale, -log_scale)
    }
}

impl<T: Real> Kernel<T> for SplineAutoregressive<T> {
    const NAME: &'static str = "ConditionalSplineAutoregressive";
    fn made(&self) -> &Made<T> {
        SplineAutoregressive::made(self)
    }
    fn invert_with(&self, x: &DMatrix<T>, out: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        SplineAutoregressive::invert_with(self, x, out)
    }
    fn density_cotangents(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_u: &DMatrix<T>,
        grad_log_det: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        SplineAutoregressive::density_cotangents(self, x, out, grad_u, grad_log_det)
    }
    fn scratch(&self) -> usize {
        self.made().params_per_dim()
    }
    fn generate_coordinate(
        &self,
        out: &DMatrix<T>,
        u: T,
        i: usize,
        s: usize,
        scratch: &mut [T],
    ) -> (T, T) {
        SplineAutoregressive::generate_coordinate(self, out, u, i, s, scratch)
    }
}

/// The density direction in one MADE pass.
fn invert<T: Real, K: Kernel<T>>(
    k: &K,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> (DMatrix<T>, DVector<T>) {
    assert_pair(K::NAME, Some(k.made().dim()), k.made().context_dim(), x, c);
    k.invert_with(x, &k.made().forward_with_context(x, c))
}

/// The sampling direction in `D` sequential MADE passes.
fn generate<T: Real, K: Kernel<T>>(
    k: &K,
    u: &DMatrix<T>,
    c: &DMatrix<T>,
) -> (DMatrix<T>, DVector<T>) {
    let made = k.made();
    assert_pair(K::NAME, Some(made.dim()), made.context_dim(), u, c);
    let mut scratch = vec![T::zero(); k.scratch()];
    let mut x = DMatrix::zeros(made.dim(), u.ncols());
    let mut ldj = DVector::zeros(u.ncols());
    for &i in made.order() {
        // Coordinates not yet generated are 0; output i does not depend on them.
        let out = made.forward_with_context(&x, c);
        for s in 0..u.ncols() {
            let (v, l) = k.generate_coordinate(&out, u[(i, s)], i, s, &mut scratch);
            x[(i, s)] = v;
            ldj[s] += l;
        }
    }
    (x, ldj)
}

/// The fused density direction: one cached MADE pass serves the value and
/// the backward pass.
fn invert_through<T: Real, K: Kernel<T>>(
    k: &K,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    grad_params: &mut [T],
    grad_context: &mut DMatrix<T>,
    rest: &mut Continuation<'_, T>,
) -> Result<DMatrix<T>, Error> {
    let made = k.made();
    assert_pair(K::NAME, Some(made.dim()), made.context_dim(), x, c);
    let (out, cache) = made.forward_cached_with_context(x, c);
    let (u, ldj) = k.invert_with(x, &out);
    let (grad_u, grad_log_det) = rest(&u, &ldj)?;
    let (mut grad_x, grad_out) = k.density_cotangents(x, &out, &grad_u, &grad_log_det);
    let (gx, gc) = made.backward_with_context(&cache, &grad_out, grad_params);
    grad_x += gx;
    *grad_context += gc;
    Ok(grad_x)
}

fn sequential_unsupported(name: &str) -> Error {
    Error::Unsupported {
        context: format!("{name}::forward_and_log_det_backward"),
        reason: "the sampling direction of an autoregressive layer is D sequential passes and \
                 has no backward pass; train by maximum likelihood (the inverse direction), or \
                 use the inverse layer (a conditional IAF) when gradients must flow through samples"
            .into(),
    }
}

/// Implements the conditional traits for a wrapper `{ inner: K, context_dim }`
/// through the shared passes above.
macro_rules! conditional_autoregressive {
    ($ty:ident) => {
        impl<T: Real> ConditionalBijector<T> for $ty<T> {
            fn dim(&self) -> Option<usize> {
                Some(self.inner.made().dim())
            }
            fn context_dim(&self) -> usize {
                self.inner.made().context_dim()
            }
            fn forward_and_log_det(
                &self,
                u: &DMatrix<T>,
                c: &DMatrix<T>,
            ) -> (DMatrix<T>, DVector<T>) {
                generate(&self.inner, u, c)
            }
            fn inverse_and_log_det(
                &self,
                x: &DMatrix<T>,
                c: &DMatrix<T>,
            ) -> (DMatrix<T>, DVector<T>) {
                invert(&self.inner, x, c)
            }
        }

        /// Trainable through the density direction (one MADE pass); the
        /// sampling direction's backward pass returns [`Error::Unsupported`].
        impl<T: Real> ConditionalDifferentiable<T> for $ty<T> {
            fn num_params(&self) -> usize {
                self.inner.num_params()
            }
            fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
                f(self.inner.params())
            }
            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
                f(self.inner.params_mut())
            }
            fn params_changed(&mut self) {
                self.inner.enforce_masks();
            }
            fn inverse_and_log_det_backward(
                &self,
                x: &DMatrix<T>,
                c: &DMatrix<T>,
                grad_u: &DMatrix<T>,
                grad_log_det: &DVector<T>,
                grad_params: &mut [T],
                grad_context: &mut DMatrix<T>,
            ) -> Result<DMatrix<T>, Error> {
                let (gu, gl) = (grad_u.clone(), grad_log_det.clone());
                invert_through(&self.inner, x, c, grad_params, grad_context, &mut |_, _| {
                    Ok((gu.clone(), gl.clone()))
                })
            }
            fn inverse_and_log_det_through(
                &self,
                x: &DMatrix<T>,
                c: &DMatrix<T>,
                grad_params: &mut [T],
                grad_context: &mut DMatrix<T>,
                rest: &mut Continuation<'_, T>,
            ) -> Result<DMatrix<T>, Error> {
                invert_through(&self.inner, x, c, grad_params, grad_context, rest)
            }
            fn forward_and_log_det_backward(
                &self,
                _u: &DMatrix<T>,
                _c: &DMatrix<T>,
                _grad_x: &DMatrix<T>,
                _grad_log_det: &DVector<T>,
                _grad_params: &mut [T],
                _grad_context: &mut DMatrix<T>,
            ) -> Result<DMatrix<T>, Error> {
                Err(sequential_unsupported(stringify!($ty)))
            }
        }
    };
}

fn check_context_dim(context: &str, context_dim: usize) -> Result<(), Error> {
    check::dim_at_least_one(context, "context_dim", context_dim)
}

/// A conditional masked autoregressive flow layer: the
/// [`MaskedAutoregressiveFlow`] whose MADE also takes the context, as an input
/// of degree 0 that every hidden unit sees (Papamakarios et al. 2017, §3.4;
/// the autoregressive property in `x` is kept).
///
/// Inverse (data → base, the density direction): `uᵢ = xᵢ sᵢ(x_{<i}, c) + tᵢ(x_{<i}, c)`,
/// one MADE pass; forward (sampling) `xᵢ = (uᵢ − tᵢ) / sᵢ`, `D` passes.
/// Parameters are the MADE's, in one buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalMaf<T: Real> {
    inner: MaskedAutoregressiveFlow<T>,
}

impl<T: Real> ConditionalMaf<T> {
    /// A layer over `dim` coordinates in natural order, with a context of
    /// `context_dim ≥ 1` dimensions.
    pub fn new(
        dim: usize,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::with_order(dim, context_dim, (0..dim).collect(), config, rng)
    }

    /// A layer whose autoregressive order is `order`.
    pub fn with_order(
        dim: usize,
        context_dim: usize,
        order: Vec<usize>,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "ConditionalMaf::new";
        check_context_dim(CTX, context_dim)?;
        let made = Made::with_order(dim, context_dim, 2, order, config, rng)
            .map_err(|e| crate::bijector::rename_context(e, CTX))?;
        Ok(Self {
            inner: MaskedAutoregressiveFlow::from_made_with_context(made),
        })
    }

    /// The conditioner (a MADE with a context input).
    pub fn made(&self) -> &Made<T> {
        self.inner.made()
    }
}

conditional_autoregressive!(ConditionalMaf);

/// A conditional autoregressive rational-quadratic spline layer: the
/// [`SplineAutoregressive`] whose MADE also takes the context (degree 0).
///
/// Forward: `xᵢ = spline(uᵢ; θᵢ(x_{<i}, c))`; the inverse is one MADE pass,
/// the forward `D` passes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalSplineAutoregressive<T: Real> {
    inner: SplineAutoregressive<T>,
}

impl<T: Real> ConditionalSplineAutoregressive<T> {
    /// A layer over `dim` coordinates in natural order with `bins` bins on
    /// `[−bound, bound]` and a context of `context_dim ≥ 1` dimensions.
    pub fn new(
        dim: usize,
        context_dim: usize,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::with_order(
            dim,
            context_dim,
            (0..dim).collect(),
            bins,
            bound,
            config,
            rng,
        )
    }

    /// A layer whose autoregressive order is `order`.
    pub fn with_order(
        dim: usize,
        context_dim: usize,
        order: Vec<usize>,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "ConditionalSplineAutoregressive::new";
        check_context_dim(CTX, context_dim)?;
        crate::bijector::check_spline_shape(CTX, bins, bound)?;
        let made = Made::with_order(dim, context_dim, 3 * bins - 1, order, config, rng)
            .map_err(|e| crate::bijector::rename_context(e, CTX))?;
        Ok(Self {
            inner: SplineAutoregressive::from_made_with_context(made, bins, bound),
        })
    }

    /// The conditioner (a MADE with a context input).
    pub fn made(&self) -> &Made<T> {
        self.inner.made()
    }

    /// Number of bins of every spline.
    pub fn bins(&self) -> usize {
        self.inner.bins()
    }
}

conditional_autoregressive!(ConditionalSplineAutoregressive);
