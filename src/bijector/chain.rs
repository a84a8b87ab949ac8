use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use super::{Bijector, Differentiable, assert_rows};
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
        Ok(Self {
            parts: parts.into_iter().map(Arc::from).collect(),
            dim: dim.map(|(d, _)| d),
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

    fn check(&self, context: &str, m: &DMatrix<T>) {
        if let Some(d) = self.dim {
            assert_rows(context, d, m);
        }
    }
}

impl<T: Real> Bijector<T> for Chain<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        self.check("Chain::forward", x);
        let mut cur = x.clone();
        for p in &self.parts {
            cur = p.forward(&cur);
        }
        cur
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        self.check("Chain::inverse", y);
        let mut cur = y.clone();
        for p in self.parts.iter().rev() {
            cur = p.inverse(&cur);
        }
        cur
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        self.forward_and_log_det(x).1
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        self.inverse_and_log_det(y).1
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.check("Chain::forward_and_log_det", x);
        let mut cur = x.clone();
        let mut ldj = DVector::zeros(x.ncols());
        for p in &self.parts {
            let (next, l) = p.forward_and_log_det(&cur);
            ldj += l;
            cur = next;
        }
        (cur, ldj)
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.check("Chain::inverse_and_log_det", y);
        let mut cur = y.clone();
        let mut ldj = DVector::zeros(y.ncols());
        for p in self.parts.iter().rev() {
            let (next, l) = p.inverse_and_log_det(&cur);
            ldj += l;
            cur = next;
        }
        (cur, ldj)
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

impl<T: Real> Differentiable<T> for Chain<T> {
    fn num_params(&self) -> usize {
        (0..self.parts.len()).map(|i| self.part_params(i)).sum()
    }
    fn visit_params(&self, f: &mut dyn FnMut(&[T])) {
        for p in &self.parts {
            if let Some(d) = p.as_differentiable() {
                d.visit_params(f);
            }
        }
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut [T])) {
        for i in 0..self.parts.len() {
            if self.part_params(i) > 0 {
                self.part_mut(i)
                    .as_differentiable_mut()
                    .expect("trainable")
                    .visit_params_mut(f);
            }
        }
    }
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        let parts = self.parts.iter().map(super::deep_copy_part).collect();
        Box::new(Chain {
            parts,
            dim: self.dim,
        })
    }
    fn params_changed(&mut self) {
        for i in 0..self.parts.len() {
            if self.part_params(i) > 0 {
                self.part_mut(i)
                    .as_differentiable_mut()
                    .expect("trainable")
                    .params_changed();
            }
        }
    }
    fn set_training(&mut self, training: bool) {
        for i in 0..self.parts.len() {
            if self.part_params(i) > 0 {
                self.part_mut(i)
                    .as_differentiable_mut()
                    .expect("trainable")
                    .set_training(training);
            }
        }
    }
    fn prepare_with_data(&mut self, y: &DMatrix<T>, stage: super::DataStage) -> DMatrix<T> {
        let mut cur = y.clone();
        for i in (0..self.parts.len()).rev() {
            cur = if self.part_params(i) > 0 {
                self.part_mut(i)
                    .as_differentiable_mut()
                    .expect("trainable")
                    .prepare_with_data(&cur, stage)
            } else {
                self.parts[i].inverse(&cur)
            };
        }
        cur
    }
    fn forward_and_log_det_through(
        &self,
        x: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.through(x, grad_params, rest, false)
    }
    fn inverse_and_log_det_through(
        &self,
        y: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
    ) -> Result<DMatrix<T>, Error> {
        self.through(y, grad_params, rest, true)
    }
    fn forward_and_log_det_backward(
        &self,
        x: &DMatrix<T>,
        grad_y: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        self.check("Chain::forward_and_log_det_backward", x);
        // Inputs of every part, first to last.
        let mut inputs = Vec::with_capacity(self.parts.len());
        let mut cur = x.clone();
        for p in &self.parts {
            let next = p.forward(&cur);
            inputs.push(cur);
            cur = next;
        }
        let offsets = self.offsets();
        let mut g = grad_y.clone();
        for i in (0..self.parts.len()).rev() {
            let d = self.differentiable_part(i, "Chain::forward_and_log_det_backward")?;
            g = d.forward_and_log_det_backward(
                &inputs[i],
                &g,
                grad_log_det,
                &mut grad_params[offsets[i]..offsets[i + 1]],
            )?;
        }
        Ok(g)
    }
    fn inverse_and_log_det_backward(
        &self,
        y: &DMatrix<T>,
        grad_x: &DMatrix<T>,
        grad_log_det: &DVector<T>,
        grad_params: &mut [T],
    ) -> Result<DMatrix<T>, Error> {
        self.check("Chain::inverse_and_log_det_backward", y);
        // The inverse runs last to first; record each part's input.
        let mut inputs: Vec<DMatrix<T>> = vec![DMatrix::zeros(0, 0); self.parts.len()];
        let mut cur = y.clone();
        for i in (0..self.parts.len()).rev() {
            let next = self.parts[i].inverse(&cur);
            inputs[i] = cur;
            cur = next;
        }
        let offsets = self.offsets();
        let mut g = grad_x.clone();
        for i in 0..self.parts.len() {
            let d = self.differentiable_part(i, "Chain::inverse_and_log_det_backward")?;
            g = d.inverse_and_log_det_backward(
                &inputs[i],
                &g,
                grad_log_det,
                &mut grad_params[offsets[i]..offsets[i + 1]],
            )?;
        }
        Ok(g)
    }
}

impl<T: Real> Chain<T> {
    /// The fused pass of the whole chain: parts first to last (`forward`)
    /// or last to first (inverse), each with its slice of `grad_params`.
    fn through(
        &self,
        input: &DMatrix<T>,
        grad_params: &mut [T],
        rest: &mut super::Continuation<'_, T>,
        inverse: bool,
    ) -> Result<DMatrix<T>, Error> {
        let context = if inverse {
            "Chain::inverse_and_log_det_through"
        } else {
            "Chain::forward_and_log_det_through"
        };
        self.check(context, input);
        let offsets = self.offsets();
        let mut steps = Vec::with_capacity(self.parts.len());
        let mut remaining = grad_params;
        for i in 0..self.parts.len() {
            let (mine, others) = remaining.split_at_mut(offsets[i + 1] - offsets[i]);
            steps.push((self.differentiable_part(i, context)?, mine));
            remaining = others;
        }
        if inverse {
            steps.reverse();
        }
        let acc = DVector::zeros(input.ncols());
        Ok(super::through_sequence(&mut steps, input, &acc, inverse, rest)?.0)
    }

    /// Start of each part's parameters in the flat vector, and the total at the end.
    fn offsets(&self) -> Vec<usize> {
        let mut off = vec![0];
        for i in 0..self.parts.len() {
            off.push(off[i] + self.part_params(i));
        }
        off
    }
}
