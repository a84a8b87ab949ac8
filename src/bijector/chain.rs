use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use super::{Bijector, assert_rows};
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
}
