use std::sync::Arc;

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::Distribution;
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// A product of independent distributions side by side: the coordinates of
/// `x` are the concatenation of the components' coordinates (TFP's
/// `tfd.Blockwise`; the distribution-level counterpart of the bijector
/// [`Blockwise`](crate::Blockwise)).
///
/// With components `p₁, …, p_K` of dimensions `d₁, …, d_K`, the dimension is
/// `D = Σ dₖ` and, writing `x = (x⁽¹⁾, …, x⁽ᴷ⁾)` for the row blocks,
///
/// `log p(x) = Σₖ log pₖ(x⁽ᵏ⁾)`.
///
/// Sampling draws each component in turn and stacks the blocks. A point
/// outside any component's support gets `-inf`.
///
/// Build it from values with [`of`](BlockwiseDistribution::of) and
/// [`and`](BlockwiseDistribution::and), or from boxed components with
/// [`new`](BlockwiseDistribution::new):
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// // A Laplace (dim 1) and a 2-D Normal side by side: dim 3.
/// let lap = Laplace::<f64>::scalar(0.0, 1.0)?;
/// let nor = Normal::<f64>::from_slices(&[1.0, 2.0], &[0.5, 3.0])?;
/// let p = BlockwiseDistribution::of(lap.clone())?.and(nor.clone())?;
/// assert_eq!(p.dim(), 3);
///
/// let x = [0.4, 1.2, -1.0];
/// let want = lap.log_prob_one(&x[..1]) + nor.log_prob_one(&x[1..]);
/// assert!((p.log_prob_one(&x) - want).abs() < 1e-12);
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let s: DMatrix<f64> = p.sample(10, &mut rng);
/// assert_eq!(s.shape(), (3, 10));
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BlockwiseDistribution<T: Real> {
    components: Vec<Arc<dyn Distribution<T>>>,
    dim: usize,
}

impl<T: Real> BlockwiseDistribution<T> {
    /// The product of `components`, in order (the first owns the first rows).
    /// Errors if there are no components or a component has dimension 0.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let p = BlockwiseDistribution::<f64>::new(vec![
    ///     Box::new(Uniform::scalar(0.0, 1.0)?),
    ///     Box::new(StandardNormal::new(2)?),
    /// ])?;
    /// assert_eq!(p.dim(), 3);
    /// assert!(BlockwiseDistribution::<f64>::new(vec![]).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn new(components: Vec<Box<dyn Distribution<T>>>) -> Result<Self, Error> {
        const CTX: &str = "BlockwiseDistribution::new";
        check::dim_at_least_one(CTX, "components (number of components)", components.len())?;
        let mut out = Self {
            components: Vec::with_capacity(components.len()),
            dim: 0,
        };
        for (i, c) in components.into_iter().enumerate() {
            out.push(CTX, i, Arc::from(c))?;
        }
        Ok(out)
    }

    /// A product with one component, to be extended with
    /// [`and`](BlockwiseDistribution::and); takes the distribution by value,
    /// no boxing by hand. Errors if `first` has dimension 0.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let p = BlockwiseDistribution::of(Normal::<f64>::scalar(0.0, 1.0)?)?
    ///     .and(Laplace::scalar(0.0, 1.0)?)?
    ///     .and(Uniform::from_slices(&[0.0, 0.0], &[1.0, 1.0])?)?;
    /// assert_eq!((p.dim(), p.num_components()), (4, 3));
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn of<D: Distribution<T> + 'static>(first: D) -> Result<Self, Error> {
        let mut out = Self {
            components: Vec::new(),
            dim: 0,
        };
        out.push("BlockwiseDistribution::of", 0, Arc::new(first))?;
        Ok(out)
    }

    /// This product with `next` appended as the last block of rows. Errors if
    /// `next` has dimension 0.
    pub fn and<D: Distribution<T> + 'static>(mut self, next: D) -> Result<Self, Error> {
        let i = self.components.len();
        self.push("BlockwiseDistribution::and", i, Arc::new(next))?;
        Ok(self)
    }

    fn push(&mut self, context: &str, i: usize, c: Arc<dyn Distribution<T>>) -> Result<(), Error> {
        check::dim_at_least_one(context, &format!("components[{i}] dimension"), c.dim())?;
        self.dim += c.dim();
        self.components.push(c);
        Ok(())
    }

    /// The number of components (blocks).
    pub fn num_components(&self) -> usize {
        self.components.len()
    }

    /// The `i`-th component.
    ///
    /// # Panics
    /// If `i >= num_components()`.
    pub fn component(&self, i: usize) -> &dyn Distribution<T> {
        self.components[i].as_ref()
    }

    /// The first row of every block and the block sizes, in order.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize, &dyn Distribution<T>)> {
        let mut start = 0;
        self.components.iter().map(move |c| {
            let s = start;
            start += c.dim();
            (s, c.dim(), c.as_ref())
        })
    }
}

impl<T: Real> Distribution<T> for BlockwiseDistribution<T> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("BlockwiseDistribution::log_prob", self.dim, x);
        let mut lp = DVector::zeros(x.ncols());
        for (start, size, c) in self.blocks() {
            lp += c.log_prob(&x.rows(start, size).clone_owned());
        }
        // −∞ + finite stays −∞; a NaN from a component would be its own bug,
        // but the sum is kept NaN-free all the same.
        super::sanitize(lp)
    }

    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let mut out = DMatrix::zeros(self.dim, n);
        for (start, size, c) in self.blocks() {
            out.rows_mut(start, size).copy_from(&c.sample(n, rng));
        }
        out
    }

    fn sample_and_log_prob(&self, n: usize, rng: &mut dyn Rng) -> (DMatrix<T>, DVector<T>) {
        let mut out = DMatrix::zeros(self.dim, n);
        let mut lp = DVector::zeros(n);
        for (start, size, c) in self.blocks() {
            let (x, l) = c.sample_and_log_prob(n, rng);
            out.rows_mut(start, size).copy_from(&x);
            lp += l;
        }
        (out, super::sanitize(lp))
    }

    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("BlockwiseDistribution::log_prob_grad", self.dim, x);
        let mut g = DMatrix::zeros(self.dim, x.ncols());
        for (start, size, c) in self.blocks() {
            let gc = c.log_prob_grad(&x.rows(start, size).clone_owned())?;
            g.rows_mut(start, size).copy_from(&gc);
        }
        Some(g)
    }
}
