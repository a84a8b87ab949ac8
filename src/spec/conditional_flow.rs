//! A conditional flow built from a [`FlowSpec`].

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::flow::{DEFAULT_BINS, DEFAULT_BOUND, conditioner, f64_opt, usize_opt};
use super::{Flow, FlowLayer, FlowSpec};
use crate::bijector::{Continuation, CouplingMask, DataStage, Permute};
use crate::conditional::{
    ConditionalAffineCoupling, ConditionalBijector, ConditionalDifferentiable, ConditionalIaf,
    ConditionalMaf, ConditionalSplineAutoregressive, ConditionalSplineCoupling, IgnoreContext,
    assert_pair, through_sequence,
};
use crate::{Error, Real};

/// The DSL layers that take a context in a conditional flow.
pub(crate) const CONDITIONED_LAYERS: &[&str] =
    &["maf", "iaf", "spline_ar", "realnvp", "spline_coupling"];

/// One built layer of a [`ConditionalFlow`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionalFlowLayer<T: Real> {
    /// `maf`: a conditional MAF layer.
    Maf(ConditionalMaf<T>),
    /// `iaf`: a conditional IAF layer.
    Iaf(ConditionalIaf<T>),
    /// `realnvp`: a conditional affine coupling.
    RealNvp(ConditionalAffineCoupling<T>),
    /// `spline_coupling`: a conditional spline coupling.
    SplineCoupling(ConditionalSplineCoupling<T>),
    /// `spline_ar`: a conditional autoregressive spline.
    SplineAr(ConditionalSplineAutoregressive<T>),
    /// Any other layer, which passes the context through.
    Unconditioned(IgnoreContext<FlowLayer<T>>),
}

impl<T: Real> ConditionalFlowLayer<T> {
    /// The layer as a trait object.
    pub fn as_conditional(&self) -> &dyn ConditionalDifferentiable<T> {
        match self {
            Self::Maf(b) => b,
            Self::Iaf(b) => b,
            Self::RealNvp(b) => b,
            Self::SplineCoupling(b) => b,
            Self::SplineAr(b) => b,
            Self::Unconditioned(b) => b,
        }
    }

    /// The layer as a mutable trait object.
    pub fn as_conditional_mut(&mut self) -> &mut dyn ConditionalDifferentiable<T> {
        match self {
            Self::Maf(b) => b,
            Self::Iaf(b) => b,
            Self::RealNvp(b) => b,
            Self::SplineCoupling(b) => b,
            Self::SplineAr(b) => b,
            Self::Unconditioned(b) => b,
        }
    }
}

/// A conditional flow built from a [`FlowSpec`] by
/// [`FlowSpec::build_conditional`]: its layers in forward (base → data)
/// order, counts expanded, every one under the same context.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalFlow<T: Real> {
    spec: FlowSpec,
    dim: usize,
    context_dim: usize,
    layers: Vec<ConditionalFlowLayer<T>>,
}

impl<T: Real> ConditionalFlow<T> {
    pub(crate) fn build(
        spec: FlowSpec,
        dim: usize,
        context_dim: usize,
        rng: &mut dyn Rng,
    ) -> Result<Self, Error> {
        const CTX: &str = "FlowSpec::build_conditional";
        crate::error::check::dim_at_least_one(CTX, "dim", dim)?;
        crate::error::check::dim_at_least_one(CTX, "context_dim", context_dim)?;
        let fp = spec.check_size(dim, context_dim, std::mem::size_of::<T>())?;
        let expanded = fp.layers().and_then(|l| usize::try_from(l).ok());
        let mut layers = Vec::with_capacity(expanded.unwrap_or(0).min(super::MAX_LAYERS));
        for (pos, l) in spec.layers().iter().enumerate() {
            let wrap = |e: Error| Error::Build {
                position: pos,
                layer: l.to_string(),
                dim,
                reason: e.to_string(),
            };
            if !CONDITIONED_LAYERS.contains(&l.name) {
                // Built exactly as in an unconditional flow.
                let single = FlowSpec {
                    inner: normflow_dsl::Spec {
                        layers: vec![l.clone()],
                    },
                };
                let flow = Flow::<T>::build_unchecked(single, dim, rng).map_err(|e| match e {
                    Error::Build { reason, .. } => wrap(Error::Unsupported {
                        context: CTX.into(),
                        reason,
                    }),
                    other => other,
                })?;
                layers.extend(flow.layers().iter().map(|layer| {
                    ConditionalFlowLayer::Unconditioned(IgnoreContext::new(
                        layer.clone(),
                        context_dim,
                    ))
                }));
                continue;
            }
            let cfg = conditioner(l);
            let bins = usize_opt(l, "bins", DEFAULT_BINS);
            let bound = T::lit(f64_opt(l, "bound", DEFAULT_BOUND));
            for copy in 0..l.count {
                let flip = copy % 2 == 1;
                if copy > 0 && l.def().repeat == normflow_dsl::Repeat::Reverse {
                    let reverse = Permute::reverse(dim).map_err(wrap)?;
                    layers.push(ConditionalFlowLayer::Unconditioned(IgnoreContext::new(
                        FlowLayer::Permute(reverse),
                        context_dim,
                    )));
                }
                let layer = match l.name {
                    "maf" => ConditionalMaf::new(dim, context_dim, &cfg, rng)
                        .map(ConditionalFlowLayer::Maf),
                    "iaf" => ConditionalMaf::new(dim, context_dim, &cfg, rng)
                        .map(|m| ConditionalFlowLayer::Iaf(ConditionalIaf::new(m))),
                    "spline_ar" => ConditionalSplineAutoregressive::new(
                        dim,
                        context_dim,
                        bins,
                        bound,
                        &cfg,
                        rng,
                    )
                    .map(ConditionalFlowLayer::SplineAr),
                    "realnvp" => CouplingMask::half(dim, flip)
                        .and_then(|m| ConditionalAffineCoupling::new(m, context_dim, &cfg, rng))
                        .map(ConditionalFlowLayer::RealNvp),
                    "spline_coupling" => CouplingMask::half(dim, flip)
                        .and_then(|m| {
                            ConditionalSplineCoupling::new(m, context_dim, bins, bound, &cfg, rng)
                        })
                        .map(ConditionalFlowLayer::SplineCoupling),
                    other => unreachable!("`{other}` is listed as conditioned but has no builder"),
                }
                .map_err(wrap)?;
                layers.push(layer);
            }
        }
        Ok(Self {
            spec,
            dim,
            context_dim,
            layers,
        })
    }

    /// The spec this flow was built from.
    pub fn spec(&self) -> &FlowSpec {
        &self.spec
    }

    /// The built layers in forward order.
    pub fn layers(&self) -> &[ConditionalFlowLayer<T>] {
        &self.layers
    }

    /// Mutable access to the layers.
    pub fn layers_mut(&mut self) -> &mut [ConditionalFlowLayer<T>] {
        &mut self.layers
    }

    fn check(&self, caller: &str, x: &DMatrix<T>, c: &DMatrix<T>) {
        assert_pair(caller, Some(self.dim), self.context_dim, x, c);
    }

    fn through(
        &self,
        input: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
        inverse: bool,
    ) -> Result<DMatrix<T>, Error> {
        let mut steps: Vec<(&dyn ConditionalDifferentiable<T>, &mut [T])> =
            Vec::with_capacity(self.layers.len());
        let mut remaining = grad_params;
        for l in &self.layers {
            let part = l.as_conditional();
            let (mine, others) = remaining.split_at_mut(part.num_params());
            steps.push((part, mine));
            remaining = others;
        }
        if inverse {
            steps.reverse();
        }
        let acc = DVector::zeros(input.ncols());
        Ok(through_sequence(&mut steps, input, c, &acc, inverse, grad_context, rest)?.0)
    }
}

impl<T: Real> ConditionalBijector<T> for ConditionalFlow<T> {
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.check("ConditionalFlow::forward", x, c);
        let mut cur = x.clone();
        let mut ldj = DVector::zeros(x.ncols());
        for l in &self.layers {
            let (next, d) = l.as_conditional().forward_and_log_det(&cur, c);
            ldj += d;
            cur = next;
        }
        (cur, ldj)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>, c: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.check("ConditionalFlow::inverse", y, c);
        let mut cur = y.clone();
        let mut ldj = DVector::zeros(y.ncols());
        for l in self.layers.iter().rev() {
            let (next, d) = l.as_conditional().inverse_and_log_det(&cur, c);
            ldj += d;
            cur = next;
        }
        (cur, ldj)
    }
}

impl<T: Real> ConditionalDifferentiable<T> for ConditionalFlow<T> {
    fn num_params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.as_conditional().num_params())
            .sum()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        for l in &self.layers {
            l.as_conditional().visit_params(f);
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        for l in &mut self.layers {
            l.as_conditional_mut().visit_params_mut(f);
        }
    }
    fn visit_state(&self, f: &mut dyn FnMut(&[T])) {
        for l in &self.layers {
            l.as_conditional().visit_state(f);
        }
    }
    fn visit_state_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        for l in &mut self.layers {
            l.as_conditional_mut().visit_state_mut(f);
        }
    }
    fn params_changed(&mut self) {
        for l in &mut self.layers {
            l.as_conditional_mut().params_changed();
        }
    }
    fn set_training(&mut self, training: bool) {
        for l in &mut self.layers {
            l.as_conditional_mut().set_training(training);
        }
    }
    fn prepare_with_data(
        &mut self,
        y: &DMatrix<T>,
        c: &DMatrix<T>,
        stage: DataStage,
    ) -> DMatrix<T> {
        let mut cur = y.clone();
        for l in self.layers.iter_mut().rev() {
            cur = l.as_conditional_mut().prepare_with_data(&cur, c, stage);
        }
        cur
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
        self.check("ConditionalFlow::inverse_and_log_det_backward", y, c);
        let (g, gl) = (grad_x.clone(), grad_log_det.clone());
        self.through(
            y,
            c,
            grad_params,
            grad_context,
            &mut |_, _| Ok((g.clone(), gl.clone())),
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
        self.check("ConditionalFlow::forward_and_log_det_backward", x, c);
        let (g, gl) = (grad_y.clone(), grad_log_det.clone());
        self.through(
            x,
            c,
            grad_params,
            grad_context,
            &mut |_, _| Ok((g.clone(), gl.clone())),
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
        self.check("ConditionalFlow::inverse_and_log_det_through", y, c);
        self.through(y, c, grad_params, grad_context, rest, true)
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        c: &DMatrix<T>,
        grad_params: &mut [T],
        grad_context: &mut DMatrix<T>,
        rest: &mut Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.check("ConditionalFlow::forward_and_log_det_through", x, c);
        self.through(x, c, grad_params, grad_context, rest, false)
    }
}
