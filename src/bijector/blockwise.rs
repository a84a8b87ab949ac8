use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use super::{Bijector, assert_rows};
use crate::error::check;
use crate::{Error, Real};

/// Applies each bijector to its own consecutive block of coordinates.
///
/// `Blockwise::new(vec![(a, 2), (b, 1)])` maps `(x₀, x₁, x₂)` to
/// `(a(x₀, x₁), b(x₂))`. The Jacobian is block diagonal, so the log-dets add.
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
        let mut dim = 0;
        for (i, (b, size)) in blocks.iter().enumerate() {
            check::dim_at_least_one(CTX, &format!("blocks[{i}] size"), *size)?;
            if let Some(d) = b.dim() {
                check::same_dim(CTX, &format!("blocks[{i}] bijector"), *size, d)?;
            }
            dim += size;
        }
        Ok(Self {
            blocks: blocks.into_iter().map(|(b, s)| (Arc::from(b), s)).collect(),
            dim,
        })
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
}
