use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::CouplingMask;
use crate::nn::{ConditionerConfig, Mlp, positive_scale};
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

/// Checks that a conditioner maps `|A|` inputs (plus a context's, if any) to
/// `per_coord · |B|` outputs.
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
    if net.input_dim() < a || net.output_dim() != per_coord * b {
        return Err(crate::error::check::invalid(
            context,
            "net",
            &format!(
                "a network from {a} inputs (and as many more as the context has) to {} outputs",
                per_coord * b
            ),
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

    /// A conditional affine coupling `x ↦ f(x; c)`: [`AffineCoupling::new`]
    /// whose conditioner reads `[x_A; c]` (the identity half, then a context
    /// of `context_dim ≥ 1` dimensions). Call it through the `_given` methods.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::prelude::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    /// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
    /// let mask = CouplingMask::half(2, false)?;
    /// let layer = AffineCoupling::<f64>::conditional(mask, 1, &cfg, &mut rng)?;
    /// let x = DMatrix::from_row_slice(2, 2, &[0.5, -1.0, 2.0, 0.0]);
    /// let c = DMatrix::from_row_slice(1, 2, &[3.0, -3.0]);
    /// let y = layer.forward_given(&x, &c);
    /// assert_eq!(y.row(0), x.row(0)); // the identity half passes through
    /// assert!((layer.inverse_given(&y, &c) - &x).amax() < 1e-12);
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn conditional(
        mask: CouplingMask,
        context_dim: usize,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "AffineCoupling::conditional";
        crate::error::check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        config.validate(CTX)?;
        let net = Mlp::from_config(
            mask.identity_indices().len() + context_dim,
            2 * mask.transformed_indices().len(),
            config,
            rng,
        )
        .map_err(|e| super::maf::rename_context(e, CTX))?;
        Ok(Self { mask, net })
    }
}

/// `x_B = y_B ⊙ s + t` in the density direction (`inverse`), its inverse in
/// the sampling direction; the conditioner's output rows `0..|B|` are the
/// shifts, rows `|B|..2|B|` the raw scales.
impl<T: Real> super::coupling::CouplingKernel<T> for AffineCoupling<T> {
    const NAME: &'static str = "AffineCoupling";
    fn parts(&self) -> (&CouplingMask, &Mlp<T>) {
        (&self.mask, &self.net)
    }
    fn apply_with(
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
    fn cotangents(
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
}

super::coupling::coupling_layer!(AffineCoupling);
