//! The autoregressive structure: a [`Made`] conditioner (reading the data
//! and, optionally, a context of MADE degree 0) and an elementwise
//! [`Transformer`] of each coordinate given the MADE's outputs for it. The
//! MAF, the autoregressive spline and the neural autoregressive flow are
//! this structure with three transformers; one set of passes serves them
//! all, with and without a context.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::assert_pair;
use super::pass::Pass;
use super::transformer::{Layout, Transformer};
use crate::batch::own_context;
use crate::nn::Made;
use crate::{Error, Real};

/// An autoregressive layer: coordinate `i` goes through the transformer `Tr`
/// with raw parameters from a [`Made`] of the coordinates before it (in the
/// MADE's order) and of a context, for a conditioned layer. The density
/// direction (data → base) is one MADE pass and is differentiable; sampling
/// is `D` sequential steps (together about one pass) and has no backward
/// pass ([`InverseAutoregressiveFlow`](super::InverseAutoregressiveFlow)
/// swaps the two).
///
/// The instances are [`MaskedAutoregressiveFlow`](super::MaskedAutoregressiveFlow),
/// [`SplineAutoregressive`](super::SplineAutoregressive) and
/// [`NeuralAutoregressive`](super::NeuralAutoregressive); their pages
/// give the constructors and the MADE's output layout (parameter-major: row
/// `p·D + i` is raw parameter `p` of coordinate `i`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize, Tr: Serialize",
    deserialize = "T: Real + Deserialize<'de>, Tr: Deserialize<'de>"
))]
#[serde(
    try_from = "AutoregressiveRepr<T, Tr>",
    into = "AutoregressiveRepr<T, Tr>"
)]
pub struct Autoregressive<T: Real, Tr: Transformer<T>> {
    made: Made<T>,
    transformer: Tr,
}

/// The serialised form: the MADE and the transformer's own fields.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Real + Serialize, Tr: Serialize",
    deserialize = "T: Real + Deserialize<'de>, Tr: Deserialize<'de>"
))]
struct AutoregressiveRepr<T: Real, Tr: Transformer<T>> {
    made: Made<T>,
    #[serde(flatten)]
    transformer: Tr,
}

impl<T: Real, Tr: Transformer<T>> TryFrom<AutoregressiveRepr<T, Tr>> for Autoregressive<T, Tr> {
    type Error = Error;
    fn try_from(r: AutoregressiveRepr<T, Tr>) -> Result<Self, Error> {
        Self::from_parts(Tr::AUTOREGRESSIVE_NAME, r.made, r.transformer)
    }
}

impl<T: Real, Tr: Transformer<T>> From<Autoregressive<T, Tr>> for AutoregressiveRepr<T, Tr> {
    fn from(l: Autoregressive<T, Tr>) -> Self {
        AutoregressiveRepr {
            made: l.made,
            transformer: l.transformer,
        }
    }
}

impl<T: Real, Tr: Transformer<T>> Autoregressive<T, Tr> {
    /// The layer of `transformer` over an existing MADE, which must give as
    /// many outputs per dimension as the transformer has raw parameters.
    /// Errors name `caller`.
    pub(crate) fn from_parts(caller: &str, made: Made<T>, transformer: Tr) -> Result<Self, Error> {
        transformer.validate(caller)?;
        let p = transformer.params_per_coord();
        if made.params_per_dim() != p {
            return Err(crate::error::check::invalid(
                caller,
                "made",
                &format!("a MADE with {p} outputs per dimension"),
                format!("{} outputs per dimension", made.params_per_dim()),
            ));
        }
        Ok(Self { made, transformer })
    }

    /// The layer of any transformer with a fresh MADE of `config`'s shape
    /// over `dim` coordinates in natural order, conditioned on
    /// `context_dim` more inputs (0: none): how a transformer of your own
    /// becomes an autoregressive layer.
    pub fn with_transformer(
        dim: usize,
        context_dim: usize,
        transformer: Tr,
        config: &crate::nn::ConditionerConfig,
        rng: &mut dyn rand::Rng,
    ) -> Result<Self, Error> {
        let order = (0..dim).collect();
        Self::build(
            "Autoregressive::with_transformer",
            dim,
            context_dim,
            order,
            transformer,
            config,
            rng,
        )
    }

    /// The layer of `transformer` over an existing MADE, which must give as
    /// many outputs per dimension as the transformer has raw parameters.
    pub fn from_made_with(made: Made<T>, transformer: Tr) -> Result<Self, Error> {
        Self::from_parts("Autoregressive::from_made_with", made, transformer)
    }

    /// [`with_transformer`](Self::with_transformer) in `order`, errors
    /// naming `caller`.
    pub(crate) fn build(
        caller: &str,
        dim: usize,
        context_dim: usize,
        order: Vec<usize>,
        transformer: Tr,
        config: &crate::nn::ConditionerConfig,
        rng: &mut dyn rand::Rng,
    ) -> Result<Self, Error> {
        transformer.validate(caller)?;
        let p = transformer.params_per_coord();
        let made = Made::with_order(dim, context_dim, p, order, config, rng)
            .map_err(|e| crate::error::check::rename_context(e, caller))?;
        Ok(Self { made, transformer })
    }

    /// The MADE conditioner.
    pub fn made(&self) -> &Made<T> {
        &self.made
    }

    /// The transformer.
    pub fn transformer(&self) -> &Tr {
        &self.transformer
    }

    /// The autoregressive order (`order[k]` is the k-th coordinate).
    pub fn order(&self) -> &[usize] {
        self.made.order()
    }

    /// All parameters (the MADE's) in one buffer.
    pub fn params(&self) -> &[T] {
        self.made.params()
    }

    /// Mutable parameter buffer. After writing, call
    /// [`enforce_masks`](Self::enforce_masks) (the trainers do), so that
    /// masked-out weights stay exactly zero.
    pub fn params_mut(&mut self) -> &mut [T] {
        self.made.params_mut()
    }

    /// Re-zeroes the masked-out weights.
    pub fn enforce_masks(&mut self) {
        self.made.enforce_masks()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.made.num_params()
    }
}

/// The density direction in one MADE pass.
fn invert<T: Real, Tr: Transformer<T>>(
    k: &Autoregressive<T, Tr>,
    caller: &str,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) -> (DMatrix<T>, DVector<T>) {
    let made = k.made();
    assert_pair(caller, Some(made.dim()), made.context_dim(), x, c);
    let c = own_context(made.context_dim(), c);
    k.transformer
        .density(x, &made.forward_with_context(x, &c), Layout::ParamMajor)
}

/// The sampling direction in `D` sequential steps; each evaluates only the
/// MADE units that its coordinate needs and that are not known yet
/// ([`Made::sequential`]), so the steps add up to about one pass.
fn generate<T: Real, Tr: Transformer<T>>(
    k: &Autoregressive<T, Tr>,
    caller: &str,
    u: &DMatrix<T>,
    c: &DMatrix<T>,
) -> (DMatrix<T>, DVector<T>) {
    let made = k.made();
    assert_pair(caller, Some(made.dim()), made.context_dim(), u, c);
    let c = own_context(made.context_dim(), c);
    let p = k.transformer.params_per_coord();
    let mut x = DMatrix::zeros(made.dim(), u.ncols());
    let mut ldj = DVector::zeros(u.ncols());
    let mut seq = if made.context_dim() == 0 {
        made.sequential(u.ncols())
    } else {
        made.sequential_with_context(&c)
    };
    while let Some(i) = seq.next_coordinate() {
        // Coordinates not yet generated are 0; output i does not depend on them.
        let step = seq.step(&x);
        // Row q of a step's output is raw parameter q of the coordinate, so
        // sample s's parameters are column s, contiguous.
        for (s, theta) in step.as_slice().chunks_exact(p).enumerate() {
            let (v, l) = k.transformer.sample_one(u[(i, s)], theta);
            x[(i, s)] = v;
            ldj[s] += l;
        }
    }
    (x, ldj)
}

/// The fused density direction: one cached MADE pass serves the value and
/// the backward pass; adds `∂L/∂θ` and `∂L/∂c`, returns `∂L/∂x`.
fn invert_through<T: Real, Tr: Transformer<T>>(
    k: &Autoregressive<T, Tr>,
    pass: Pass<'_, '_, T>,
) -> Result<DMatrix<T>, Error> {
    let (x, c, grad_params, grad_context, rest, _) = pass.parts();
    let made = k.made();
    assert_pair(
        Tr::AUTOREGRESSIVE_NAME,
        Some(made.dim()),
        made.context_dim(),
        x,
        c,
    );
    let c = own_context(made.context_dim(), c);
    let (out, cache) = made.forward_cached_with_context(x, &c);
    let (u, ldj) = k.transformer.density(x, &out, Layout::ParamMajor);
    let (grad_u, grad_log_det) = rest(&u, &ldj)?;
    let (mut grad_x, grad_out) =
        k.transformer
            .density_backward(x, &out, Layout::ParamMajor, &grad_u, &grad_log_det);
    let (gx, gc) = made.backward_with_context(&cache, &grad_out, grad_params);
    grad_x += gx;
    if gc.nrows() > 0 {
        *grad_context += gc;
    }
    Ok(grad_x)
}

/// Either direction: the density direction (`inverse`) in one MADE pass,
/// sampling in `D` steps.
fn apply<T: Real, Tr: Transformer<T>>(
    k: &Autoregressive<T, Tr>,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> (DMatrix<T>, DVector<T>) {
    if inverse {
        invert(k, Tr::AUTOREGRESSIVE_NAME, input, c)
    } else {
        generate(k, Tr::AUTOREGRESSIVE_NAME, input, c)
    }
}

/// The fused pass of either direction: the density direction's (one cached
/// MADE pass); the sampling direction has none and is an
/// [`Error::Unsupported`] that says why and what to do.
fn through<T: Real, Tr: Transformer<T>>(
    k: &Autoregressive<T, Tr>,
    pass: Pass<'_, '_, T>,
) -> Result<DMatrix<T>, Error> {
    if !pass.inverse {
        return Err(Error::Unsupported {
            context: format!("{}::forward_and_log_det_backward", Tr::AUTOREGRESSIVE_NAME),
            reason: Tr::SEQUENTIAL.into(),
        });
    }
    invert_through(k, pass)
}

impl<T: Real, Tr: Transformer<T>> super::Bijector<T> for Autoregressive<T, Tr> {
    super::fused::maps_from_apply!(apply);
    fn dim(&self) -> Option<usize> {
        Some(self.made.dim())
    }
    fn context_dim(&self) -> usize {
        self.made.context_dim()
    }
    super::differentiable_hooks!();
}

impl<T: Real, Tr: Transformer<T>> crate::Parameters<T> for Autoregressive<T, Tr> {
    crate::params::parameters_of_buffer!(s => s.made.params(), s.made.params_mut());
    fn params_changed(&mut self) {
        self.made.enforce_masks();
    }
}

/// Trainable through the density direction (data → base, one MADE pass),
/// the direction of maximum-likelihood training; the sampling direction's
/// backward pass returns [`Error::Unsupported`].
impl<T: Real, Tr: Transformer<T>> super::Differentiable<T> for Autoregressive<T, Tr> {
    fn boxed_clone(&self) -> Box<dyn super::Bijector<T>> {
        Box::new(self.clone())
    }
    super::fused::training_from_through!(through);
}
