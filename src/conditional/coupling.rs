//! Conditional coupling layers: the conditioner sees `[x_A; c]`.

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::{ConditionalBijector, ConditionalDifferentiable, assert_pair, gather_with_context};
use crate::bijector::{AffineCoupling, Continuation, CouplingMask, SplineCoupling};
use crate::error::check;
use crate::nn::{ConditionerConfig, Mlp};
use crate::{Error, Real};

/// What the shared conditional coupling passes need from a layer.
trait Kernel<T: Real> {
    const NAME: &'static str;
    fn mask(&self) -> &CouplingMask;
    fn net(&self) -> &Mlp<T>;
    fn net_params_mut(&mut self) -> &mut [T];
    fn apply(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>);
    fn cotangents(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>);
}

impl<T: Real> Kernel<T> for AffineCoupling<T> {
    const NAME: &'static str = "ConditionalAffineCoupling";
    fn mask(&self) -> &CouplingMask {
        AffineCoupling::mask(self)
    }
    fn net(&self) -> &Mlp<T> {
        AffineCoupling::net(self)
    }
    fn net_params_mut(&mut self) -> &mut [T] {
        self.params_mut()
    }
    fn apply(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        self.apply_with(input, out, inverse)
    }
    fn cotangents(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>) {
        AffineCoupling::cotangents(self, input, out, grad_out, grad_log_det, inverse)
    }
}

impl<T: Real> Kernel<T> for SplineCoupling<T> {
    const NAME: &'static str = "ConditionalSplineCoupling";
    fn mask(&self) -> &CouplingMask {
        SplineCoupling::mask(self)
    }
    fn net(&self) -> &Mlp<T> {
        SplineCoupling::net(self)
    }
    fn net_params_mut(&mut self) -> &mut [T] {
        self.params_mut()
    }
    fn apply(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        self.apply_direction(input, out, inverse)
    }
    fn cotangents(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>) {
        SplineCoupling::cotangents(self, input, out, grad_out, grad_log_det, inverse)
    }
}

/// Either direction in one conditioner pass of `[x_A; c]`.
fn apply<T: Real, K: Kernel<T>>(
    k: &K,
    context_dim: usize,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> (DMatrix<T>, DVector<T>) {
    assert_pair(K::NAME, Some(k.mask().dim()), context_dim, input, c);
    let out = k
        .net()
        .forward(&gather_with_context(k.mask().identity_indices(), input, c));
    k.apply(input, &out, inverse)
}

/// The fused pass of either direction: one cached conditioner pass; the
/// conditioner's input gradient splits into the identity half's (added to
/// its pass-through cotangent) and the context's.
#[allow(clippy::too_many_arguments)]
fn through<T: Real, K: Kernel<T>>(
    k: &K,
    context_dim: usize,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    grad_params: &mut [T],
    grad_context: &mut DMatrix<T>,
    rest: &mut Continuation<'_, T>,
    inverse: bool,
) -> Result<DMatrix<T>, Error> {
    assert_pair(K::NAME, Some(k.mask().dim()), context_dim, input, c);
    let ia = k.mask().identity_indices();
    let (out, cache) = k.net().forward_cached(&gather_with_context(ia, input, c));
    let (z, ldj) = k.apply(input, &out, inverse);
    let (grad_z, grad_log_det) = rest(&z, &ldj)?;
    let (mut grad_in, grad_net) = k.cotangents(input, &out, &grad_z, &grad_log_det, inverse);
    let g = k.net().backward(&cache, &grad_net, grad_params, None);
    for (r, &i) in ia.iter().enumerate() {
        for s in 0..input.ncols() {
            grad_in[(i, s)] += g[(r, s)];
        }
    }
    *grad_context += g.rows(ia.len(), context_dim);
    Ok(grad_in)
}

macro_rules! conditional_coupling {
    ($ty:ident) => {
        impl<T: Real> ConditionalBijector<T> for $ty<T> {
            fn dim(&self) -> Option<usize> {
                Some(self.inner.mask().dim())
            }
            fn context_dim(&self) -> usize {
                self.context_dim
            }
            fn forward_and_log_det(
                &self,
                x: &DMatrix<T>,
                c: &DMatrix<T>,
            ) -> (DMatrix<T>, DVector<T>) {
                apply(&self.inner, self.context_dim, x, c, false)
            }
            fn inverse_and_log_det(
                &self,
                y: &DMatrix<T>,
                c: &DMatrix<T>,
            ) -> (DMatrix<T>, DVector<T>) {
                apply(&self.inner, self.context_dim, y, c, true)
            }
        }

        /// Both directions are one conditioner pass, and both are differentiable.
        impl<T: Real> ConditionalDifferentiable<T> for $ty<T> {
            fn num_params(&self) -> usize {
                self.inner.net().num_params()
            }
            fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
                f(self.inner.net().params())
            }
            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
                f(self.inner.net_params_mut())
            }
            fn inverse_and_log_det_backward(
                &self,
                y: &DMatrix<T>,
                c: &DMatrix<T>,
                grad_x: &DMatrix<T>,
                grad_log_det: &DVector<T>,
                grad_params: &mut [T],
                grad_context: &mut DMatrix<T>,
            ) -> Result<DMatrix<T>, Error> {
                let (g, gl) = (grad_x.clone(), grad_log_det.clone());
                let mut rest = |_: &DMatrix<T>, _: &DVector<T>| Ok((g.clone(), gl.clone()));
                through(
                    &self.inner,
                    self.context_dim,
                    y,
                    c,
                    grad_params,
                    grad_context,
                    &mut rest,
                    true,
                )
            }
            fn forward_and_log_det_backward(
                &self,
                x: &DMatrix<T>,
                c: &DMatrix<T>,
                grad_y: &DMatrix<T>,
                grad_log_det: &DVector<T>,
                grad_params: &mut [T],
                grad_context: &mut DMatrix<T>,
            ) -> Result<DMatrix<T>, Error> {
                let (g, gl) = (grad_y.clone(), grad_log_det.clone());
                let mut rest = |_: &DMatrix<T>, _: &DVector<T>| Ok((g.clone(), gl.clone()));
                through(
                    &self.inner,
                    self.context_dim,
                    x,
                    c,
                    grad_params,
                    grad_context,
                    &mut rest,
                    false,
                )
            }
            fn inverse_and_log_det_through(
                &self,
                y: &DMatrix<T>,
                c: &DMatrix<T>,
                grad_params: &mut [T],
                grad_context: &mut DMatrix<T>,
                rest: &mut Continuation<'_, T>,
            ) -> Result<DMatrix<T>, Error> {
                through(
                    &self.inner,
                    self.context_dim,
                    y,
                    c,
                    grad_params,
                    grad_context,
                    rest,
                    true,
                )
            }
            fn forward_and_log_det_through(
                &self,
                x: &DMatrix<T>,
                c: &DMatrix<T>,
                grad_params: &mut [T],
                grad_context: &mut DMatrix<T>,
                rest: &mut Continuation<'_, T>,
            ) -> Result<DMatrix<T>, Error> {
                through(
                    &self.inner,
                    self.context_dim,
                    x,
                    c,
                    grad_params,
                    grad_context,
                    rest,
                    false,
                )
            }
        }
    };
}

fn conditioner<T: Real>(
    context: &str,
    mask: &CouplingMask,
    context_dim: usize,
    outputs: usize,
    config: &ConditionerConfig,
    rng: &mut dyn Rng,
) -> Result<Mlp<T>, Error> {
    check::dim_at_least_one(context, "context_dim", context_dim)?;
    config.validate(context)?;
    Mlp::from_config(
        mask.identity_indices().len() + context_dim,
        outputs,
        config,
        rng,
    )
    .map_err(|e| crate::bijector::rename_context(e, context))
}

/// A conditional affine coupling (RealNVP with a context): `y_A = x_A`,
/// `x_B = y_B ⊙ s(a) + t` in the density direction (so `y_B = (x_B − t) ⊘ s`)
/// where an [`Mlp`] maps `[x_A; c]` (the identity half,
/// then the context) to `(t, a)`, exactly as in [`AffineCoupling`], whose
/// documentation gives the layout. Both directions are one conditioner pass.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::*;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let layer = ConditionalAffineCoupling::<f64>::new(CouplingMask::half(2, false)?, 1, &cfg, &mut rng)?;
/// let x = DMatrix::from_row_slice(2, 2, &[0.5, -1.0, 2.0, 0.0]);
/// let c = DMatrix::from_row_slice(1, 2, &[3.0, -3.0]);
/// let y = layer.forward(&x, &c);
/// assert_eq!(y.row(0), x.row(0)); // the identity half passes through
/// assert!((layer.inverse(&y, &c) - &x).amax() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalAffineCoupling<T: Real> {
    inner: AffineCoupling<T>,
    context_dim: usize,
}

impl<T: Real> ConditionalAffineCoupling<T> {
    /// A conditional affine coupling with the given mask, context dimension
    /// (≥ 1) and conditioner shape.
    pub fn new(
        mask: CouplingMask,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        let outputs = 2 * mask.transformed_indices().len();
        let net = conditioner(
            "ConditionalAffineCoupling::new",
            &mask,
            context_dim,
            outputs,
            config,
            rng,
        )?;
        Ok(Self {
            inner: AffineCoupling::from_parts_with_context(mask, net),
            context_dim,
        })
    }

    /// The mask.
    pub fn mask(&self) -> &CouplingMask {
        self.inner.mask()
    }

    /// The conditioner network (`|A| + C` inputs).
    pub fn net(&self) -> &Mlp<T> {
        self.inner.net()
    }
}

conditional_coupling!(ConditionalAffineCoupling);

/// A conditional rational-quadratic spline coupling (Neural Spline Flows with
/// a context): the [`SplineCoupling`] whose conditioner maps `[x_A; c]` to
/// the raw spline parameters of the transformed half. Both directions are
/// one conditioner pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalSplineCoupling<T: Real> {
    inner: SplineCoupling<T>,
    context_dim: usize,
}

impl<T: Real> ConditionalSplineCoupling<T> {
    /// A conditional spline coupling with the given mask, context dimension
    /// (≥ 1), `bins` bins on `[−bound, bound]` and conditioner shape.
    pub fn new(
        mask: CouplingMask,
        context_dim: usize,
        bins: usize,
        bound: T,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "ConditionalSplineCoupling::new";
        crate::bijector::check_spline_shape(CTX, bins, bound)?;
        let outputs = mask.transformed_indices().len() * (3 * bins - 1);
        let net = conditioner(CTX, &mask, context_dim, outputs, config, rng)?;
        Ok(Self {
            inner: SplineCoupling::from_parts_with_context(mask, bins, bound, net),
            context_dim,
        })
    }

    /// The mask.
    pub fn mask(&self) -> &CouplingMask {
        self.inner.mask()
    }

    /// The conditioner network (`|A| + C` inputs).
    pub fn net(&self) -> &Mlp<T> {
        self.inner.net()
    }
}

conditional_coupling!(ConditionalSplineCoupling);
