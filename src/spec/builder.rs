use rand::Rng;

use super::FlowSpec;
use crate::bijector::{Bijector, Chain};
use crate::{Error, Real};

enum Part<T: Real> {
    Spec(FlowSpec),
    Layer(Box<dyn Bijector<T>>),
}

/// What `flow!` returns when the stack contains a `{ expr }` layer: spec
/// segments and user bijector values, in forward order.
///
/// A user value has no text form and one scalar type, so such a stack cannot
/// be a [`FlowSpec`]; [`FlowBuilder::build`] instantiates the spec segments
/// for a dimension and chains everything.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let shift = Shift::new(DVector::from_vec(vec![1.0_f64, -1.0]))?;
/// let builder = flow!(maf(2, hidden = 16) >> { shift } >> exp);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let chain = builder.build(2, &mut rng)?;
/// assert_eq!(chain.len(), 3); // maf(2) as one flow, the shift, exp
/// let y = chain.forward(&DMatrix::zeros(2, 1));
/// assert!(y.iter().all(|v| *v > 0.0));
/// # Ok::<(), normflow::Error>(())
/// ```
pub struct FlowBuilder<T: Real> {
    parts: Vec<Part<T>>,
}

impl<T: Real> Default for FlowBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> std::fmt::Debug for FlowBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for p in &self.parts {
            match p {
                Part::Spec(s) => l.entry(&format_args!("{s}")),
                Part::Layer(b) => l.entry(b),
            };
        }
        l.finish()
    }
}

impl<T: Real> FlowBuilder<T> {
    /// An empty builder.
    pub fn new() -> Self {
        Self { parts: Vec::new() }
    }

    /// Appends the layers of a spec.
    pub fn spec(mut self, spec: FlowSpec) -> Self {
        self.parts.push(Part::Spec(spec));
        self
    }

    /// Appends a user bijector.
    pub fn layer<B: Bijector<T> + 'static>(mut self, bijector: B) -> Self {
        self.parts.push(Part::Layer(Box::new(bijector)));
        self
    }

    /// Builds every spec segment for `dim` (drawing from `rng`, in order) and
    /// chains the segments and user values first to last. Errors if a segment
    /// cannot be built for `dim` or a user value has another fixed dimension.
    pub fn build(self, dim: usize, rng: &mut dyn Rng) -> Result<Chain<T>, Error> {
        let mut parts: Vec<Box<dyn Bijector<T>>> = Vec::with_capacity(self.parts.len());
        for p in self.parts {
            parts.push(match p {
                Part::Spec(s) => Box::new(s.build::<T>(dim, rng)?),
                Part::Layer(b) => b,
            });
        }
        let chain = Chain::new(parts)?;
        if let Some(d) = chain.dim()
            && d != dim
        {
            return Err(Error::DimensionMismatch {
                context: "FlowBuilder::build".into(),
                argument: "a `{ expr }` layer".into(),
                expected: dim,
                got: d,
            });
        }
        Ok(chain)
    }
}
