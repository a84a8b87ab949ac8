use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Bijector, CouplingMask, assert_rows};
use crate::nn::{ConditionerConfig, Mlp, MlpCache, positive_scale};
use crate::{Error, Real};

/// Affine coupling layer (RealNVP; Dinh, Sohl-Dickstein & Bengio 2016).
///
/// With `A` the coordinates the [`CouplingMask`] leaves unchanged and `B` the
/// transformed ones: `y_A = x_A` and, in the density direction (data → base),
/// `x_B = y_B ⊙ s(a(y_A)) + t(y_A)`, so the forward (sampling) map is
/// `y_B = (x_B − t(x_A)) ⊘ s(a(x_A))`. An [`Mlp`] maps the unchanged half to
/// `2|B|` outputs — rows `0..|B|` are the shifts `t`, rows `|B|..2|B|` the raw
/// scales `a` — and `s = `[`positive_scale`] (softplus with a floor of `1e-3`,
/// equal to 1 at `a = 0`). `log|det ∂y/∂x| = −Σ_B log s`.
///
/// The scale multiplies in the density direction (as in nflows): fitting by
/// maximum likelihood usually has to *expand* thin data, and an expansion that
/// grows linearly in the network output trains stably, where one that grows
/// like `1/softplus` (exponentially as the output falls) produced loss spikes.
///
/// **Costs.** Both directions are one conditioner pass (the inverse
/// conditions on `y_A = x_A`), which is why couplings sample and evaluate
/// densities equally fast. Alternate the mask between consecutive layers
/// ([`CouplingMask::complement`]) so every coordinate gets transformed.
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let layer = AffineCoupling::<f64>::new(CouplingMask::half(4, false)?, &cfg, &mut rng)?;
/// let x = DMatrix::from_fn(4, 5, |i, j| (i as f64) - (j as f64) * 0.5);
/// let y = layer.forward(&x);
/// assert_eq!(y.rows(0, 2), x.rows(0, 2)); // the first half passes through
/// assert!((layer.inverse(&y) - &x).amax() < 1e-12);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
#[serde(try_from = "CouplingRepr<T>", into = "CouplingRepr<T>")]
pub struct AffineCoupling<T: Real> {
    mask: CouplingMask,
    net: Mlp<T>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize",
    deserialize = "T: Real + Deserialize<'de>"
))]
pub(crate) struct CouplingRepr<T: Real> {
    pub(crate) mask: CouplingMask,
    pub(crate) net: Mlp<T>,
}

impl<T: Real> TryFrom<CouplingRepr<T>> for AffineCoupling<T> {
    type Error = Error;
    fn try_from(r: CouplingRepr<T>) -> Result<Self, Error> {
        check_net("AffineCoupling", &r.mask, &r.net, 2)?;
        Ok(Self {
            mask: r.mask,
            net: r.net,
        })
    }
}

impl<T: Real> From<AffineCoupling<T>> for CouplingRepr<T> {
    fn from(c: AffineCoupling<T>) -> Self {
        CouplingRepr {
            mask: c.mask,
            net: c.net,
        }
    }
}

/// Checks that a conditioner maps `|A|` inputs to `per_coord · |B|` outputs.
pub(crate) fn check_net<T: Real>(
    context: &str,
    mask: &CouplingMask,
    net: &Mlp<T>,
    per_coord: usize,
) -> Result<(), Error> {
    net.validate(context)?;
    let (a, b) = (
        mask.identity_indices().len(),
        mask.transformed_indices().len(),
    );
    if net.input_dim() != a || net.output_dim() != per_coord * b {
        return Err(crate::error::check::invalid(
            context,
            "net",
            &format!("a network from {a} inputs to {} outputs", per_coord * b),
            format!(
                "a network from {} inputs to {} outputs",
                net.input_dim(),
                net.output_dim()
            ),
        ));
    }
    Ok(())
}

impl<T: Real> AffineCoupling<T> {
    /// An affine coupling with the given mask and conditioner shape.
    pub fn new(
        mask: CouplingMask,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        config.validate("AffineCoupling::new")?;
        let net = Mlp::from_config(
            mask.identity_indices().len(),
            2 * mask.transformed_indices().len(),
            config,
            rng,
        )?;
        Ok(Self { mask, net })
    }

    /// The mask.
    pub fn mask(&self) -> &CouplingMask {
        &self.mask
    }

    /// The conditioner network.
    pub fn net(&self) -> &Mlp<T> {
        &self.net
    }

    /// All parameters (the conditioner's) in one buffer.
    pub fn params(&self) -> &[T] {
        self.net.params()
    }

    /// Mutable parameter buffer.
    pub fn params_mut(&mut self) -> &mut [T] {
        self.net.params_mut()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    /// Applies the coupling in either direction; returns the output and
    /// `Σ log σ` (forward) or `−Σ log σ` (inverse).
    fn apply(&self, x: &DMatrix<T>, inverse: bool) -> (DMatrix<T>, DVector<T>) {
        let out = self
            .net
            .forward(&CouplingMask::gather(self.mask.identity_indices(), x));
        self.apply_with(x, &out, inverse)
    }

    /// [`AffineCoupling::apply`] given the conditioner's output at `x`.
    pub(crate) fn apply_with(
        &self,
        x: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        let ib = self.mask.transformed_indices();
        let nb = ib.len();
        let mut y = x.clone();
        let mut ldj = DVector::zeros(x.ncols());
        for s in 0..x.ncols() {
            let mut acc = T::zero();
            for (r, &i) in ib.iter().enumerate() {
                let (scale, log_scale) = positive_scale(out[(nb + r, s)]);
                let t = out[(r, s)];
                // The density direction (inverse) multiplies: x_B = y_B s + t.
                y[(i, s)] = if inverse {
                    x[(i, s)] * scale + t
                } else {
                    (x[(i, s)] - t) / scale
                };
                acc += log_scale;
            }
            ldj[s] = if inverse { acc } else { -acc };
        }
        (y, ldj)
    }
}

impl<T: Real> Bijector<T> for AffineCoupling<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("AffineCoupling::forward", self.mask.dim(), x);
        self.apply(x, false).0
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        assert_rows("AffineCoupling::inverse", self.mask.dim(), y);
        self.apply(y, true).0
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "AffineCoupling::forward_log_det_jacobian",
            self.mask.dim(),
            x,
        );
        self.apply(x, false).1
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        assert_rows(
            "AffineCoupling::inverse_log_det_jacobian",
            self.mask.dim(),
            y,
        );
        self.apply(y, true).1
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("AffineCoupling::forward_and_log_det", self.mask.dim(), x);
        self.apply(x, false)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        assert_rows("AffineCoupling::inverse_and_log_det", self.mask.dim(), y);
        self.apply(y, true)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.mask.dim())
    }
    super::differentiable_hooks!();
}

impl<T: Real> AffineCoupling<T> {
    /// Shared backward pass of both directions at `input` (`x` forward, `y`
    /// inverse): returns `∂L/∂input` and adds `∂L/∂θ` into `grad_params`.
    fn backward(
        &self,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        inverse: bool,
    ) -> DMatrix<T> {
        let ia = self.mask.identity_indices();
        let (out, cache) = self.net.forward_cached(&CouplingMask::gather(ia, input));
        self.backward_with(
            input,
            &out,
            &cache,
            grad_out,
            grad_log_det,
            grad_params,
            inverse,
        )
    }

    /// The fused pass of either direction: one conditioner evaluation.
    fn through(
        &self,
        input: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
        inverse: bool,
    ) -> Result<DMatrix<T>, Error> {
        assert_rows("AffineCoupling::through", self.mask.dim(), input);
        let ia = self.mask.identity_indices();
        let (out, cache) = self.net.forward_cached(&CouplingMask::gather(ia, input));
        let (z, ldj) = self.apply_with(input, &out, inverse);
        let (grad_z, grad_log_det) = rest(&z, &ldj)?;
        Ok(self.backward_with(
            input,
            &out,
            &cache,
            &grad_z,
            &grad_log_det,
            grad_params,
            inverse,
        ))
    }

    /// [`AffineCoupling::backward`] given the conditioner's output and cache.
    #[allow(clippy::too_many_arguments)]
    fn backward_with(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        cache: &MlpCache<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
        inverse: bool,
    ) -> DMatrix<T> {
        let (mut grad_in, grad_net) = self.cotangents(input, out, grad_out, grad_log_det, inverse);
        let grad_a = self.net.backward(cache, &grad_net, grad_params, None);
        for (r, &i) in self.mask.identity_indices().iter().enumerate() {
            for s in 0..input.ncols() {
                grad_in[(i, s)] += grad_a[(r, s)];
            }
        }
        grad_in
    }

    /// The cotangents of either direction at `input` given the conditioner's
    /// output `out` there: `(∂L/∂input` along the direct paths (the identity
    /// half passes its cotangent through, the transformed half gets the
    /// affine map's), `∂L/∂out)`. The conditioner's backward pass adds the
    /// rest.
    pub(crate) fn cotangents(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let ib = self.mask.transformed_indices();
        let nb = ib.len();
        let n = input.ncols();
        let mut grad_in = grad_out.clone();
        let mut grad_net = DMatrix::zeros(2 * nb, n);
        for s in 0..n {
            for (r, &i) in ib.iter().enumerate() {
                let a = out[(nb + r, s)];
                let (scale, _) = positive_scale(a);
                let dscale_da = crate::nn::positive_scale_derivative(a);
                let g = grad_out[(i, s)];
                let (g_input, g_t, g_scale) = if inverse {
                    // x_B = y_B s + t, log-det log s.
                    (g * scale, g, g * input[(i, s)] + grad_log_det[s] / scale)
                } else {
                    // y_B = (x_B − t)/s, log-det −log s.
                    let yb = (input[(i, s)] - out[(r, s)]) / scale;
                    (g / scale, -g / scale, -(g * yb + grad_log_det[s]) / scale)
                };
                grad_in[(i, s)] = g_input;
                grad_net[(r, s)] = g_t;
                grad_net[(nb + r, s)] = g_scale * dscale_da;
            }
        }
        (grad_in, grad_net)
    }

    /// An affine coupling whose conditioner takes `|A| + C` inputs (`x_A`,
    /// then a `C`-dimensional context); the conditional layer drives it, its
    /// unconditional `Bijector` methods are never called.
    pub(crate) fn from_parts_with_context(mask: CouplingMask, net: Mlp<T>) -> Self {
        Self { mask, net }
    }
}

impl<T: Real> super::Differentiable<T> for AffineCoupling<T> {
    fn num_params(&self) -> usize {
        self.net.num_params()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        f(self.net.params())
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        f(self.net.params_mut())
    }
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        assert_rows(
            "AffineCoupling::inverse_and_log_det_backward",
            self.mask.dim(),
            y,
        );
        Ok(self.backward(y, grad_x, grad_log_det, grad_params, true))
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        assert_rows(
            "AffineCoupling::forward_and_log_det_backward",
            self.mask.dim(),
            x,
        );
        Ok(self.backward(x, grad_y, grad_log_det, grad_params, false))
    }
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.through(y, grad_params, rest, true)
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.through(x, grad_params, rest, false)
    }
}
