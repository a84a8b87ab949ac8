use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::gaussian_mixture::log_sum_exp;
use super::{Distribution, open01, sanitize};
use crate::bijector::assert_rows;
use crate::error::check;
use crate::{Error, Real};

/// A finite mixture of any distributions of the same dimension:
/// `p(x) = Σₖ wₖ pₖ(x)` (TFP's `tfd.Mixture`), with the components boxed so
/// that they may be of different families (a [`Normal`](super::Normal), a
/// [`StudentT`](super::StudentT), a trained flow, another mixture, …).
///
/// `log_prob` is the log-sum-exp of `log wₖ + log pₖ(x)`, stable in the
/// tails and when some components have no mass at `x` (`-inf` terms drop
/// out; `-inf` only where every component gives `-inf`). Sampling picks a
/// component per sample from the weights, then draws each component's
/// samples in one batch. The gradient, when every component with positive
/// weight has one, is `Σₖ rₖ(x) ∇ log pₖ(x)` with the responsibilities
/// `rₖ = wₖ pₖ(x)/p(x)`. For a mixture of diagonal Gaussians that can be
/// trained, see [`GaussianMixture`](super::GaussianMixture).
///
/// ```
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let m = Mixture::new(
///     &[1.0, 3.0], // normalised to 0.25, 0.75
///     vec![
///         Box::new(Normal::<f64>::scalar(-2.0, 0.5)?) as Box<dyn Distribution<f64>>,
///         Box::new(StudentT::<f64>::scalar(4.0, 2.0, 1.0)?),
///     ],
/// )?;
/// assert!((m.weights()[1] - 0.75).abs() < 1e-15);
/// // scipy: log(0.25 norm.pdf(0.5, -2, 0.5) + 0.75 t.pdf(0.5, 4, 2, 1)) = -2.384221016097496
/// assert!((m.log_prob_one(&[0.5]) + 2.384221016097496).abs() < 1e-13);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// assert_eq!(m.sample(10, &mut rng).shape(), (1, 10));
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug)]
pub struct Mixture<T: Real> {
    dim: usize,
    log_weights: Vec<T>,
    components: Vec<Box<dyn Distribution<T>>>,
}

impl<T: Real> Mixture<T> {
    /// A mixture with the given weights (one per component; finite,
    /// non-negative, with a positive sum; normalised to sum to one) and
    /// components (unconditional, of one dimension). Errors name the
    /// offending weight or component.
    ///
    /// ```
    /// use normflow::prelude::*;
    /// let parts = || -> Vec<Box<dyn Distribution<f64>>> {
    ///     vec![
    ///         Box::new(Normal::scalar(0.0, 1.0).unwrap()),
    ///         Box::new(Laplace::scalar(1.0, 2.0).unwrap()),
    ///     ]
    /// };
    /// let err = Mixture::new(&[0.5, -0.1], parts()).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "Mixture::new: argument `weights[1]` must be finite and non-negative, got -0.1"
    /// );
    /// assert!(Mixture::new(&[0.0, 0.0], parts()).is_err());
    /// assert!(Mixture::new(&[1.0], parts()).is_err());
    /// # Ok::<(), normflow::Error>(())
    /// ```
    pub fn new(weights: &[T], components: Vec<Box<dyn Distribution<T>>>) -> Result<Self, Error> {
        const CTX: &str = "Mixture::new";
        check::dim_at_least_one(CTX, "components", components.len())?;
        check::same_dim(CTX, "weights", components.len(), weights.len())?;
        for (k, w) in weights.iter().enumerate() {
            if !w.is_finite() || *w < T::zero() {
                return Err(check::invalid(
                    CTX,
                    &format!("weights[{k}]"),
                    "finite and non-negative",
                    w,
                ));
            }
        }
        let total = weights.iter().fold(T::zero(), |a, w| a + *w);
        if total <= T::zero() || !total.is_finite() {
            return Err(check::invalid(
                CTX,
                "weights",
                "weights with a positive, finite sum",
                total,
            ));
        }
        let dim = components[0].dim();
        for (k, c) in components.iter().enumerate() {
            check::same_dim(CTX, &format!("components[{k}]"), dim, c.dim())?;
            if c.context_dim() != 0 {
                return Err(check::invalid(
                    CTX,
                    &format!("components[{k}]"),
                    "an unconditional distribution (context dimension 0)",
                    format!("context dimension {}", c.context_dim()),
                ));
            }
        }
        let log_weights = weights.iter().map(|w| (*w / total).ln()).collect();
        Ok(Self {
            dim,
            log_weights,
            components,
        })
    }

    /// The normalised weights.
    pub fn weights(&self) -> DVector<T> {
        DVector::from_iterator(
            self.log_weights.len(),
            self.log_weights.iter().map(|l| l.exp()),
        )
    }

    /// The components, in the order given.
    pub fn components(&self) -> &[Box<dyn Distribution<T>>] {
        &self.components
    }

    /// Number of components `K`.
    pub fn num_components(&self) -> usize {
        self.components.len()
    }

    /// `log wₖ + log pₖ(x_j)` for every component `k` (row) and column `j`
    /// of `x`; `-inf` rows for components of zero weight, which are not
    /// evaluated, and `-inf` for a NaN a component might return.
    fn weighted_terms(&self, x: &DMatrix<T>) -> DMatrix<T> {
        let mut terms = DMatrix::from_element(self.components.len(), x.ncols(), T::neg_infinity());
        for (k, (c, lw)) in self.components.iter().zip(&self.log_weights).enumerate() {
            if *lw == T::neg_infinity() {
                continue;
            }
            let lp = c.log_prob(x);
            for (j, v) in lp.iter().enumerate() {
                if !v.is_nan_() {
                    terms[(k, j)] = *lw + *v;
                }
            }
        }
        terms
    }

    /// The component of each of `n` draws (categorical on the weights).
    fn choose(&self, n: usize, rng: &mut dyn Rng) -> Vec<usize> {
        let mut cumulative = Vec::with_capacity(self.log_weights.len());
        let mut acc = 0.0;
        for lw in &self.log_weights {
            acc += lw.to_f64().exp();
            cumulative.push(acc);
        }
        // Rounding can leave the total just below 1: the last component
        // with positive weight takes what is left.
        let last = self
            .log_weights
            .iter()
            .rposition(|lw| *lw > T::neg_infinity())
            .expect("a mixture has a component of positive weight");
        (0..n)
            .map(|_| {
                let u = open01(rng) * acc;
                cumulative
                    .iter()
                    .position(|c| u < *c)
                    .unwrap_or(last)
                    .min(last)
            })
            .collect()
    }
}

impl<T: Real> Distribution<T> for Mixture<T> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_prob(&self, x: &DMatrix<T>) -> DVector<T> {
        assert_rows("Mixture::log_prob", self.dim, x);
        let terms = self.weighted_terms(x);
        sanitize(DVector::from_iterator(
            x.ncols(),
            terms.column_iter().map(|c| log_sum_exp(c.as_slice())),
        ))
    }
    fn sample(&self, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
        let which = self.choose(n, rng);
        let mut counts = vec![0; self.components.len()];
        for k in &which {
            counts[*k] += 1;
        }
        // One batch per component, scattered to the columns that chose it.
        let draws: Vec<Option<DMatrix<T>>> = self
            .components
            .iter()
            .zip(&counts)
            .map(|(c, &m)| (m > 0).then(|| c.sample(m, rng)))
            .collect();
        let mut next = vec![0; self.components.len()];
        let mut x = DMatrix::zeros(self.dim, n);
        for (j, &k) in which.iter().enumerate() {
            let batch = draws[k].as_ref().expect("a component that was chosen");
            x.set_column(j, &batch.column(next[k]));
            next[k] += 1;
        }
        x
    }
    /// `Σₖ rₖ(x) ∇ log pₖ(x)`, or `None` if a component of positive weight
    /// has no gradient; `0` where every component has zero density.
    fn log_prob_grad(&self, x: &DMatrix<T>) -> Option<DMatrix<T>> {
        assert_rows("Mixture::log_prob_grad", self.dim, x);
        let mut grads = Vec::with_capacity(self.components.len());
        for (c, lw) in self.components.iter().zip(&self.log_weights) {
            grads.push(if *lw == T::neg_infinity() {
                None
            } else {
                Some(c.log_prob_grad(x)?)
            });
        }
        let terms = self.weighted_terms(x);
        let mut g = DMatrix::zeros(self.dim, x.ncols());
        for j in 0..x.ncols() {
            let lse = log_sum_exp(terms.column(j).as_slice());
            if lse == T::neg_infinity() {
                continue;
            }
            for (k, gk) in grads.iter().enumerate() {
                let r = (terms[(k, j)] - lse).exp();
                if let Some(gk) = gk.as_ref().filter(|_| r > T::zero()) {
                    g.column_mut(j).axpy(r, &gk.column(j), T::one());
                }
            }
        }
        Some(g)
    }
}
