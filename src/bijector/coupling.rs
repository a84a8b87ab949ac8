//! The coupling structure: a [`CouplingMask`] splits the coordinates into an
//! identity half `A` and a transformed half `B`; a conditioner network reads
//! `x_A` (and, optionally, a context `c`, as `[x_A; c]`) and gives the raw
//! parameters of an elementwise [`Transformer`] of `x_B`. NICE, RealNVP and
//! the spline coupling are this structure with three transformers; one set
//! of passes serves all, with and without a context, in both directions.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::pass::Pass;
use super::transformer::Transformer;
use super::{CouplingMask, assert_pair};
use crate::batch::own_context;
use crate::nn::{ConditionerConfig, Mlp};
use crate::{Error, Real};

/// A coupling layer: `y_A = x_A` and each coordinate of `x_B` goes through
/// the transformer `Tr` with raw parameters from an [`Mlp`] of `x_A` (and of
/// a context, for a conditioned layer). Since `y_A = x_A`, both directions
/// see the same conditioner input, so **both cost one conditioner pass** and
/// both are differentiable; the Jacobian is block triangular and
/// `log|det ∂y/∂x|` is the sum of the transformer's log-derivatives over `B`.
///
/// The instances are [`AdditiveCoupling`](super::AdditiveCoupling) (NICE),
/// [`AffineCoupling`](super::AffineCoupling) (RealNVP),
/// [`SplineCoupling`](super::SplineCoupling) and
/// [`CircularSplineCoupling`](super::CircularSplineCoupling); their pages
/// give the constructors and the conditioner's output layout. The
/// conditioner of a [periodic](Transformer::PERIODIC) transformer (the
/// circular spline's) reads `[cos x_A; sin x_A; c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize, Tr: Serialize",
    deserialize = "T: Real + Deserialize<'de>, Tr: Deserialize<'de>"
))]
#[serde(try_from = "CouplingRepr<T, Tr>", into = "CouplingRepr<T, Tr>")]
pub struct Coupling<T: Real, Tr: Transformer<T>> {
    mask: CouplingMask,
    net: Mlp<T>,
    transformer: Tr,
}

/// The serialised form: the mask, the conditioner and the transformer's
/// own fields (none for the affine and additive transformers).
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize, Tr: Serialize",
    deserialize = "T: Real + Deserialize<'de>, Tr: Deserialize<'de>"
))]
struct CouplingRepr<T: Real, Tr: Transformer<T>> {
    mask: CouplingMask,
    #[serde(flatten)]
    transformer: Tr,
    net: Mlp<T>,
}

impl<T: Real, Tr: Transformer<T>> TryFrom<CouplingRepr<T, Tr>> for Coupling<T, Tr> {
    type Error = Error;
    fn try_from(r: CouplingRepr<T, Tr>) -> Result<Self, Error> {
        r.transformer.validate(Tr::COUPLING_NAME)?;
        check_net(
            Tr::COUPLING_NAME,
            &r.mask,
            &r.net,
            r.transformer.params_per_coord(),
            Tr::PERIODIC,
        )?;
        Ok(Self {
            mask: r.mask,
            net: r.net,
            transformer: r.transformer,
        })
    }
}

impl<T: Real, Tr: Transformer<T>> From<Coupling<T, Tr>> for CouplingRepr<T, Tr> {
    fn from(c: Coupling<T, Tr>) -> Self {
        CouplingRepr {
            mask: c.mask,
            transformer: c.transformer,
            net: c.net,
        }
    }
}

/// Checks that a conditioner maps `|A|` inputs (`2|A|` for a `periodic`
/// transformer's `(cos, sin)` features; plus a context's, if any) to
/// `per_coord · |B|` outputs.
fn check_net<T: Real>(
    context: &str,
    mask: &CouplingMask,
    net: &Mlp<T>,
    per_coord: usize,
    periodic: bool,
) -> Result<(), Error> {
    net.validate(context)?;
    let (a, b) = (
        mask.identity_indices().len() * if periodic { 2 } else { 1 },
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

impl<T: Real, Tr: Transformer<T>> Coupling<T, Tr> {
    /// A coupling of any transformer with a fresh conditioner of `config`'s
    /// shape reading `[x_A; c]` (`context_dim = 0`: `x_A` only): how a
    /// transformer of your own becomes a coupling layer.
    pub fn with_transformer(
        mask: CouplingMask,
        context_dim: usize,
        transformer: Tr,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        Self::build(
            "Coupling::with_transformer",
            mask,
            context_dim,
            transformer,
            config,
            rng,
        )
    }

    /// [`with_transformer`](Self::with_transformer), errors naming `caller`.
    pub(crate) fn build(
        caller: &str,
        mask: CouplingMask,
        context_dim: usize,
        transformer: Tr,
        config: &ConditionerConfig,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        transformer.validate(caller)?;
        config.validate(caller)?;
        let net = Mlp::from_config(
            Self::features(mask.identity_indices().len()) + context_dim,
            transformer.params_per_coord() * mask.transformed_indices().len(),
            config,
            rng,
        )
        .map_err(|e| crate::error::check::rename_context(e, caller))?;
        Ok(Self {
            mask,
            net,
            transformer,
        })
    }

    /// A coupling from an existing conditioner, which must map `|A|` inputs
    /// (`2|A|` for a [periodic](Transformer::PERIODIC) transformer; plus a
    /// context's) to `|B|·P` outputs (`P` the transformer's raw
    /// parameters per coordinate, in the layout of the instance's docs).
    pub fn from_net(mask: CouplingMask, transformer: Tr, net: Mlp<T>) -> Result<Self, Error> {
        transformer.validate(Tr::COUPLING_NAME)?;
        check_net(
            Tr::COUPLING_NAME,
            &mask,
            &net,
            transformer.params_per_coord(),
            Tr::PERIODIC,
        )?;
        Ok(Self {
            mask,
            net,
            transformer,
        })
    }

    /// The mask.
    pub fn mask(&self) -> &CouplingMask {
        &self.mask
    }

    /// The conditioner network.
    pub fn net(&self) -> &Mlp<T> {
        &self.net
    }

    /// The transformer.
    pub fn transformer(&self) -> &Tr {
        &self.transformer
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

    /// The conditioner's features of `a` identity coordinates: `a`, or `2a`
    /// (`cos` and `sin`) for a [periodic](Transformer::PERIODIC) transformer.
    fn features(a: usize) -> usize {
        if Tr::PERIODIC { 2 * a } else { a }
    }

    /// The conditioner's context dimension: its inputs beyond the features of `x_A`.
    fn context_dim_(&self) -> usize {
        self.net.input_dim() - Self::features(self.mask.identity_indices().len())
    }

    /// The conditioner input `[x_A; c]`, or `[cos x_A; sin x_A; c]` for a
    /// periodic transformer.
    fn conditioner_input(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> DMatrix<T> {
        let idx = self.mask.identity_indices();
        if c.nrows() == 0 && !Tr::PERIODIC {
            return CouplingMask::gather(idx, x);
        }
        let (a, f) = (idx.len(), Self::features(idx.len()));
        DMatrix::from_fn(f + c.nrows(), x.ncols(), |r, j| {
            if r >= f {
                c[(r - f, j)]
            } else if !Tr::PERIODIC {
                x[(idx[r], j)]
            } else if r < a {
                x[(idx[r], j)].cos()
            } else {
                x[(idx[r - a], j)].sin()
            }
        })
    }

    /// Either direction at `input` given the conditioner's output there:
    /// the transformer on the `B` rows, the `A` rows passed through.
    fn apply_with(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DVector<T>) {
        let ib = self.mask.transformed_indices();
        let xb = CouplingMask::gather(ib, input);
        let (zb, ldj) = if inverse {
            self.transformer.density(&xb, out, Tr::COUPLING_LAYOUT)
        } else {
            self.transformer.sample(&xb, out, Tr::COUPLING_LAYOUT)
        };
        let mut z = input.clone();
        for (r, &i) in ib.iter().enumerate() {
            z.row_mut(i).copy_from(&zb.row(r));
        }
        (z, ldj)
    }

    /// `(∂L/∂input` along the direct paths, `∂L/∂out)` of either direction.
    fn cotangents(
        &self,
        input: &DMatrix<T>,
        out: &DMatrix<T>,
        grad_z: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        inverse: bool,
    ) -> (DMatrix<T>, DMatrix<T>) {
        let ib = self.mask.transformed_indices();
        let layout = Tr::COUPLING_LAYOUT;
        let xb = CouplingMask::gather(ib, input);
        let gb = CouplingMask::gather(ib, grad_z);
        let (g_xb, g_raw) = if inverse {
            self.transformer
                .density_backward(&xb, out, layout, &gb, grad_log_det)
        } else {
            self.transformer
                .sample_backward(&xb, out, layout, &gb, grad_log_det)
        };
        let mut grad_in = grad_z.clone();
        for (r, &i) in ib.iter().enumerate() {
            grad_in.row_mut(i).copy_from(&g_xb.row(r));
        }
        (grad_in, g_raw)
    }
}

/// Either direction in one conditioner pass of `[x_A; c]`.
fn apply<T: Real, Tr: Transformer<T>>(
    k: &Coupling<T, Tr>,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> (DMatrix<T>, DVector<T>) {
    let context_dim = k.context_dim_();
    assert_pair(Tr::COUPLING_NAME, Some(k.mask.dim()), context_dim, input, c);
    let c = own_context(context_dim, c);
    let out = k.net.forward(&k.conditioner_input(input, &c));
    k.apply_with(input, &out, inverse)
}

/// The fused pass of either direction: one cached conditioner pass; the
/// conditioner's input gradient splits into the identity half's (added to
/// its pass-through cotangent) and the context's.
fn through<T: Real, Tr: Transformer<T>>(
    k: &Coupling<T, Tr>,
    pass: Pass<'_, '_, T>,
) -> Result<DMatrix<T>, Error> {
    let (input, c, grad_params, grad_context, rest, inverse) = pass.parts();
    let context_dim = k.context_dim_();
    assert_pair(Tr::COUPLING_NAME, Some(k.mask.dim()), context_dim, input, c);
    let c = own_context(context_dim, c);
    let ia = k.mask.identity_indices();
    let (out, cache) = k.net.forward_cached(&k.conditioner_input(input, &c));
    let (z, ldj) = k.apply_with(input, &out, inverse);
    let (grad_z, grad_log_det) = rest(&z, &ldj)?;
    let (mut grad_in, grad_net) = k.cotangents(input, &out, &grad_z, &grad_log_det, inverse);
    let g = k.net.backward(&cache, &grad_net, grad_params, None);
    let a = ia.len();
    for (r, &i) in ia.iter().enumerate() {
        for s in 0..input.ncols() {
            grad_in[(i, s)] += if Tr::PERIODIC {
                // d cos/dx = −sin, d sin/dx = cos.
                let (sin, cos) = input[(i, s)].sin_cos();
                cos * g[(a + r, s)] - sin * g[(r, s)]
            } else {
                g[(r, s)]
            };
        }
    }
    if context_dim > 0 {
        *grad_context += g.rows(Coupling::<T, Tr>::features(a), context_dim);
    }
    Ok(grad_in)
}

impl<T: Real, Tr: Transformer<T>> super::Bijector<T> for Coupling<T, Tr> {
    super::fused::maps_from_apply!(apply);
    fn dim(&self) -> Option<usize> {
        Some(self.mask.dim())
    }
    fn context_dim(&self) -> usize {
        self.context_dim_()
    }
    super::differentiable_hooks!();
}

impl<T: Real, Tr: Transformer<T>> crate::Parameters<T> for Coupling<T, Tr> {
    crate::params::parameters_of_buffer!(s => s.net.params(), s.net.params_mut());
}

/// Both directions are one conditioner pass, and both are differentiable.
impl<T: Real, Tr: Transformer<T>> super::Differentiable<T> for Coupling<T, Tr> {
    fn boxed_clone(&self) -> Box<dyn super::Bijector<T>> {
        Box::new(self.clone())
    }
    super::fused::training_from_through!(through);
}
