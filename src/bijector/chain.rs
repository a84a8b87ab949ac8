use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use super::pass::Pass;
use super::{Bijector, Differentiable, assert_pair};
use crate::{Error, Real};

/// A composition of bijectors, applied **first to last** in the forward direction.
///
/// `Chain::new(vec![a, b, c])` is `y = c(b(a(x)))`: the same order as the DSL's
/// `a >> b >> c` and as [`BijectorExt::then`](super::BijectorExt::then). This is
/// the **opposite** of TensorFlow Probability's and distrax's `Chain`, which
/// apply their list right to left; it matches torch/nflows/zuko.
///
/// The inverse applies the inverses last to first, and the log-determinants add
/// up. An empty chain is the identity. Cloning a chain shares its (immutable)
/// components.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use normflow::prelude::*;
///
/// let chain = Chain::<f64>::new(vec![
///     Box::new(Exp),                                         // first: exp
///     Box::new(Shift::new(DVector::from_vec(vec![1.0]))?),  // then: + 1
/// ])?;
/// let y = chain.forward(&DMatrix::from_element(1, 1, 0.0));
/// assert_eq!(y[(0, 0)], 2.0); // exp(0) + 1, not exp(0 + 1)
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chain<T: Real> {
    parts: Vec<Arc<dyn Bijector<T>>>,
    dim: Option<usize>,
    context_dim: usize,
}

impl<T: Real> Chain<T> {
    /// The chain `parts[0], then parts[1], …` (forward direction).
    ///
    /// Errors with [`Error::DimensionMismatch`] if two parts have different
    /// fixed dimensions.
    pub fn new(parts: Vec<Box<dyn Bijector<T>>>) -> Result<Self, Error> {
        let mut dim: Option<(usize, usize)> = None;
        for (i, p) in parts.iter().enumerate() {
            if let Some(d) = p.dim() {
                match dim {
                    None => dim = Some((d, i)),
                    Some((d0, i0)) if d0 != d => {
                        return Err(Error::DimensionMismatch {
                            context: "Chain::new".into(),
                            argument: format!("parts[{i}] (after parts[{i0}] of dimension {d0})"),
                            expected: d0,
                            got: d,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        let context_dim = common_context_dim("Chain::new", parts.iter().map(|p| &**p), 0)?;
        Ok(Self {
            parts: parts.into_iter().map(Arc::from).collect(),
            dim: dim.map(|(d, _)| d),
            context_dim,
        })
    }

    /// Appends `next` after the current last part (flattening, not nesting).
    ///
    /// # Panics
    /// If `next` has a fixed dimension different from the chain's; see
    /// [`Chain::try_then`].
    pub fn then<B: Bijector<T> + 'static>(self, next: B) -> Chain<T> {
        match self.try_then(next) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// Appends `next`, or errors if its fixed dimension differs from the chain's.
    pub fn try_then<B: Bijector<T> + 'static>(mut self, next: B) -> Result<Chain<T>, Error> {
        if let (Some(d0), Some(d)) = (self.dim, next.dim())
            && d0 != d
        {
            return Err(Error::DimensionMismatch {
                context: "Chain::then".into(),
                argument: format!("parts[{}]", self.parts.len()),
                expected: d0,
                got: d,
            });
        }
        self.context_dim = common_context_dim(
            "Chain::then",
            std::iter::once(&next as &dyn Bijector<T>),
            self.context_dim,
        )?;
        self.dim = self.dim.or(next.dim());
        self.parts.push(Arc::new(next));
        Ok(self)
    }

    /// Number of parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the chain has no parts (it is then the identity).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The parts in forward order.
    pub fn parts(&self) -> impl ExactSizeIterator<Item = &dyn Bijector<T>> {
        self.parts.iter().map(|p| p.as_ref())
    }

    fn check(&self, caller: &str, m: &DMatrix<T>, c: &DMatrix<T>) {
        assert_pair(caller, self.dim, self.context_dim, m, c);
    }
}

/// The one context dimension of parts that may each be conditioned (`C`) or
/// not (`0`), starting from `first`; an error names the first part whose
/// context dimension differs.
fn common_context_dim<'a, T: Real + 'a>(
    caller: &str,
    parts: impl Iterator<Item = &'a dyn Bijector<T>>,
    first: usize,
) -> Result<usize, Error> {
    let mut common = first;
    for (i, p) in parts.enumerate() {
        let c = p.context_dim();
        if c == 0 {
            continue;
        }
        if common != 0 && common != c {
            return Err(Error::DimensionMismatch {
                context: caller.into(),
                argument: format!("the context dimension of part {i}"),
                expected: common,
                got: c,
            });
        }
        common = c;
    }
    Ok(common)
}

impl<T: Real> Bijector<T> for Chain<T> {
    super::fused::maps_of_sequence!("Chain", s => s.parts.iter().map(|p| &**p));
    fn context_dim(&self) -> usize {
        self.context_dim
    }
    fn dim(&self) -> Option<usize> {
        self.dim
    }
    super::differentiable_hooks!();
}

impl<T: Real> Chain<T> {
    /// Part `i`, made unique (copied if a clone of this chain shares it) so
    /// that its parameters can be written.
    fn part_mut(&mut self, i: usize) -> &mut dyn Bijector<T> {
        super::unique_part(&mut self.parts[i])
    }

    fn part_params(&self, i: usize) -> usize {
        self.parts[i]
            .as_differentiable()
            .map_or(0, |d| d.num_params())
    }

    fn differentiable_part(
        &self,
        i: usize,
        context: &str,
    ) -> Result<&dyn Differentiable<T>, Error> {
        self.parts[i].as_differentiable().ok_or_else(|| {
            super::not_differentiable(
                context,
                &format!("part {i} of the chain ({:?})", self.parts[i]),
            )
        })
    }
}

impl<T: Real> crate::Parameters<T> for Chain<T> {
    super::parameters_of_parts!(s => s.parts.iter(), s.parts.iter_mut());
}

impl<T: Real> Differentiable<T> for Chain<T> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        let parts = self.parts.iter().map(super::deep_copy_part).collect();
        Box::new(Chain {
            parts,
            dim: self.dim,
            context_dim: self.context_dim,
        })
    }
    super::fused::prepare_from_given!(|s, y, c, stage| {
        let mut cur = y.clone();
        for i in (0..s.parts.len()).rev() {
            cur = if s.part_params(i) > 0 {
                s.part_mut(i)
                    .as_differentiable_mut()
                    .expect("trainable")
                    .prepare_with_data_given(&cur, c, stage)
            } else {
                s.parts[i].inverse_given(&cur, c)
            };
        }
        cur
    });
    super::fused::training_from_through!(Chain::through);
}

impl<T: Real> Chain<T> {
    /// The fused pass of the whole chain under the contexts `c`: parts first
    /// to last (forward) or last to first (inverse), each with its slice of
    /// `grad_params`. The backward passes are this pass with a continuation
    /// that returns the given cotangents, so there is one implementation.
    fn through(&self, pass: Pass<'_, '_, T>) -> Result<DMatrix<T>, Error> {
        let caller = super::pass::method_name!("Chain", pass.inverse, "through");
        self.check(caller, pass.input, pass.c);
        let parts = (0..self.parts.len())
            .map(|i| self.differentiable_part(i, caller))
            .collect::<Result<Vec<_>, _>>()?;
        sequence_through(&parts, pass)
    }
}

/// `parts` applied first to last (forward) or their inverses last to first,
/// under the contexts `c`: the one implementation behind [`Chain`] and
/// [`Flow`](crate::Flow).
pub(crate) fn sequence_map<'a, T: Real + 'a>(
    parts: impl DoubleEndedIterator<Item = &'a dyn Bijector<T>>,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> DMatrix<T> {
    let mut cur = input.clone();
    if inverse {
        for p in parts.rev() {
            cur = p.inverse_given(&cur, c);
        }
    } else {
        for p in parts {
            cur = p.forward_given(&cur, c);
        }
    }
    cur
}

/// [`sequence_map`] with the summed log-determinants.
pub(crate) fn sequence_and_log_det<'a, T: Real + 'a>(
    parts: impl DoubleEndedIterator<Item = &'a dyn Bijector<T>>,
    input: &DMatrix<T>,
    c: &DMatrix<T>,
    inverse: bool,
) -> (DMatrix<T>, DVector<T>) {
    let mut cur = input.clone();
    let mut ldj = DVector::zeros(input.ncols());
    let mut step = |p: &dyn Bijector<T>| {
        let (next, l) = if inverse {
            p.inverse_and_log_det_given(&cur, c)
        } else {
            p.forward_and_log_det_given(&cur, c)
        };
        ldj += l;
        cur = next;
    };
    if inverse {
        parts.rev().for_each(&mut step);
    } else {
        parts.for_each(&mut step);
    }
    (cur, ldj)
}

/// The fused pass of a sequence of trainable parts (in forward order), each
/// with its consecutive slice of `grad_params`: first to last (forward) or
/// last to first (inverse), under the contexts `c`.
pub(crate) fn sequence_through<T: Real>(
    parts: &[&dyn Differentiable<T>],
    pass: Pass<'_, '_, T>,
) -> Result<DMatrix<T>, Error> {
    let (input, c, grad_params, grad_context, rest, inverse) = pass.parts();
    let mut steps = Vec::with_capacity(parts.len());
    let mut remaining = grad_params;
    for &p in parts {
        let (mine, others) = remaining.split_at_mut(p.num_params());
        steps.push((p, mine));
        remaining = others;
    }
    if inverse {
        steps.reverse();
    }
    let acc = DVector::zeros(input.ncols());
    Ok(super::through_sequence(&mut steps, input, c, &acc, inverse, grad_context, rest)?.0)
}
