use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use super::pass::Backward;
use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

/// Applies each bijector to its own consecutive block of coordinates.
///
/// `Blockwise::new(vec![(a, 2), (b, 1)])` maps `(x₀, x₁, x₂)` to
/// `(a(x₀, x₁), b(x₂))`. The Jacobian is block diagonal, so the log-dets add.
/// [`Blockwise::of`] and [`Blockwise::and`] build the same from values,
/// without boxing by hand. (For independent *distributions* side by side, see
/// [`BlockwiseDistribution`](crate::BlockwiseDistribution).)
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// let b = Blockwise::<f64>::new(vec![(Box::new(Exp), 1), (Box::new(Identity), 1)])?;
/// let y = b.forward(&DMatrix::from_column_slice(2, 1, &[0.0, 5.0]));
/// assert_eq!(y.as_slice(), &[1.0, 5.0]);
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Blockwise<T: Real> {
    blocks: Vec<(Arc<dyn Bijector<T>>, usize)>,
    dim: usize,
}

impl<T: Real> Blockwise<T> {
    /// Blocks of the given sizes, in order. Errors if there are no blocks, a
    /// block has size 0, or a bijector's fixed dimension differs from its block size.
    pub fn new(blocks: Vec<(Box<dyn Bijector<T>>, usize)>) -> Result<Self, Error> {
        const CTX: &str = "Blockwise::new";
        check::dim_at_least_one(CTX, "blocks (number of blocks)", blocks.len())?;
        let mut out = Self {
            blocks: Vec::with_capacity(blocks.len()),
            dim: 0,
        };
        for (i, (b, size)) in blocks.into_iter().enumerate() {
            out.push(CTX, i, Arc::from(b), size)?;
        }
        Ok(out)
    }

    /// One block: `bijector` on `size` coordinates, taken by value (no
    /// boxing by hand). Extend it with [`Blockwise::and`]. Errors as
    /// [`Blockwise::new`] does: `size` is 0, or the bijector's fixed
    /// dimension differs from `size`.
    ///
    /// ```
    /// use nalgebra::{DMatrix, DVector};
    /// use normflow::prelude::*;
    /// // exp on x₀, a shift by (1, 2) on (x₁, x₂).
    /// let b = Blockwise::<f64>::of(Exp, 1)?
    ///     .and(Shift::new(DVector::from_vec(vec![1.0, 2.0]))?, 2)?;
    /// assert_eq!(b.dim(), Some(3));
    /// let y = b.forward(&DMatrix::from_column_slice(3, 1, &[0.0, 0.0, 0.0]));
    /// assert_eq!(y.as_slice(), &[1.0, 1.0, 2.0]);
    /// // A shift of dimension 2 on a block of 1 is refused.
    /// assert!(Blockwise::<f64>::of(Exp, 1)?
    ///     .and(Shift::new(DVector::from_vec(vec![1.0, 2.0]))?, 1)
    ///     .is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn of<B: Bijector<T> + 'static>(bijector: B, size: usize) -> Result<Self, Error> {
        let mut out = Self {
            blocks: Vec::new(),
            dim: 0,
        };
        out.push("Blockwise::of", 0, Arc::new(bijector), size)?;
        Ok(out)
    }

    /// This blockwise map with one more block, `bijector` on the next `size`
    /// coordinates (after all existing blocks). Errors as [`Blockwise::of`].
    /// A trainable block keeps its parameters (they follow the earlier
    /// blocks' in the flat parameter vector).
    pub fn and<B: Bijector<T> + 'static>(
        mut self,
        bijector: B,
        size: usize,
    ) -> Result<Self, Error> {
        let i = self.blocks.len();
        self.push("Blockwise::and", i, Arc::new(bijector), size)?;
        Ok(self)
    }

    fn push(
        &mut self,
        context: &str,
        i: usize,
        b: Arc<dyn Bijector<T>>,
        size: usize,
    ) -> Result<(), Error> {
        check::dim_at_least_one(context, &format!("blocks[{i}] size"), size)?;
        if let Some(d) = b.dim() {
            check::same_dim(context, &format!("blocks[{i}] bijector"), size, d)?;
        }
        self.dim += size;
        self.blocks.push((b, size));
        Ok(())
    }

    fn map(
        &self,
        context: &str,
        x: &DMatrix<T>,
        f: impl Fn(&dyn Bijector<T>, &DMatrix<T>) -> (DMatrix<T>, DVector<T>),
    ) -> (DMatrix<T>, DVector<T>) {
        assert_rows(context, self.dim, x);
        let mut out = DMatrix::zeros(self.dim, x.ncols());
        let mut ldj = DVector::zeros(x.ncols());
        let mut start = 0;
        for (b, size) in &self.blocks {
            let block = x.rows(start, *size).clone_owned();
            let (y, l) = f(b.as_ref(), &block);
            out.rows_mut(start, *size).copy_from(&y);
            ldj += l;
            start += size;
        }
        (out, ldj)
    }
}

impl<T: Real> Bijector<T> for Blockwise<T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        self.map("Blockwise::forward", x, |b, m| {
            (b.forward(m), DVector::zeros(m.ncols()))
        })
        .0
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        self.map("Blockwise::inverse", y, |b, m| {
            (b.inverse(m), DVector::zeros(m.ncols()))
        })
        .0
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        self.map("Blockwise::forward_log_det_jacobian", x, |b, m| {
            (
                DMatrix::zeros(m.nrows(), m.ncols()),
                b.forward_log_det_jacobian(m),
            )
        })
        .1
    }
    fn inverse_log_det_jacobian(&self, y: &DMatrix<T>) -> DVector<T> {
        self.map("Blockwise::inverse_log_det_jacobian", y, |b, m| {
            (
                DMatrix::zeros(m.nrows(), m.ncols()),
                b.inverse_log_det_jacobian(m),
            )
        })
        .1
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.map("Blockwise::forward_and_log_det", x, |b, m| {
            b.forward_and_log_det(m)
        })
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.map("Blockwise::inverse_and_log_det", y, |b, m| {
            b.inverse_and_log_det(m)
        })
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    super::differentiable_hooks!();
}

impl<T: Real> Blockwise<T> {
    fn block_params(&self, i: usize) -> usize {
        self.blocks[i]
            .0
            .as_differentiable()
            .map_or(0, |d| d.num_params())
    }

    fn backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let (input, grad_out, grad_log_det, grad_params, inverse) = pass.parts();
        assert_rows("Blockwise backward pass", self.dim, input);
        let mut grad_in = DMatrix::zeros(self.dim, input.ncols());
        let (mut start, mut off) = (0, 0);
        for (i, (b, size)) in self.blocks.iter().enumerate() {
            let n = self.block_params(i);
            let d = b.as_differentiable().ok_or_else(|| {
                super::not_differentiable("Blockwise backward pass", &format!("block {i} ({b:?})"))
            })?;
            let inp = input.rows(start, *size).clone_owned();
            let g = grad_out.rows(start, *size).clone_owned();
            let gp = &mut grad_params[off..off + n];
            let gi = if inverse {
                d.inverse_and_log_det_backward(&inp, &g, grad_log_det, gp)?
            } else {
                d.forward_and_log_det_backward(&inp, &g, grad_log_det, gp)?
            };
            grad_in.rows_mut(start, *size).copy_from(&gi);
            start += size;
            off += n;
        }
        Ok(grad_in)
    }
}

impl<T: Real> crate::Parameters<T> for Blockwise<T> {
    super::parameters_of_parts!(s => s.blocks.iter().map(|(b, _)| b), s.blocks.iter_mut().map(|(b, _)| b));
}

impl<T: Real> super::Differentiable<T> for Blockwise<T> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        let blocks = self
            .blocks
            .iter()
            .map(|(b, s)| (super::deep_copy_part(b), *s))
            .collect();
        Box::new(Blockwise {
            blocks,
            dim: self.dim,
        })
    }
    super::fused::backward_from!(backward);
}
