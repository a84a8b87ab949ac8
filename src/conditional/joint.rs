//! A conditional bijector as an ordinary bijector of `[x; c]`.

use nalgebra::{DMatrix, DVector};

use super::{split_context, stack_context};
use crate::bijector::pass::Pass;
use crate::bijector::{Bijector, Differentiable};
use crate::{Error, Real};

/// The conditional bijector `f(·; c)` as an ordinary bijector of `R^{D + C}`:
/// `[x; c] ↦ [f(x; c); c]` (the context rides along, unchanged).
///
/// Its Jacobian is block triangular, `[[∂f/∂x, ∂f/∂c], [0, I]]`, so its
/// log-determinant is `log|det ∂f/∂x|`, the conditional bijector's own; and
/// its backward passes return `[∂L/∂x; ∂L/∂c]`. This is how the verification
/// kit checks conditional layers with the unconditional machinery: round
/// trips and the log-determinant against the numerical Jacobian
/// (`check_bijector`), and the gradients in the parameters, the input **and
/// the context** against finite differences (`check_gradients`).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::conditional::JointBijector;
/// use normflow::prelude::*;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
/// let maf = MaskedAutoregressiveFlow::<f64>::conditional(2, 1, &cfg, &mut rng)?;
/// let joint = JointBijector::new(maf)?;
/// assert_eq!((joint.dim(), joint.context_dim()), (Some(3), 0));
/// let xc = DMatrix::from_row_slice(3, 2, &[0.1, 0.2, -0.3, 0.4, 1.0, -1.0]);
/// let y = joint.forward(&xc);
/// assert_eq!(y.row(2), xc.row(2)); // the context passes through
/// # Ok::<(), normflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JointBijector<B> {
    inner: B,
    dim: usize,
}

impl<B> JointBijector<B> {
    /// Wraps a conditional bijector of fixed dimension (errors if its
    /// dimension is not fixed; use [`JointBijector::with_dim`] then).
    pub fn new<T: Real>(inner: B) -> Result<Self, Error>
    where
        B: Bijector<T>,
    {
        match inner.dim() {
            Some(dim) => Ok(Self { inner, dim }),
            None => Err(Error::Unsupported {
                context: "JointBijector::new".into(),
                reason: "the conditional bijector works for any dimension; give one with JointBijector::with_dim".into(),
            }),
        }
    }

    /// Wraps a conditional bijector for `dim`-dimensional `x`.
    pub fn with_dim(inner: B, dim: usize) -> Self {
        Self { inner, dim }
    }

    /// The wrapped conditional bijector.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn split<T: Real>(&self, xc: &DMatrix<T>, context_dim: usize) -> (DMatrix<T>, DMatrix<T>) {
        crate::bijector::assert_rows("JointBijector", self.dim + context_dim, xc);
        split_context(xc, self.dim)
    }
}

impl<T: Real, B: Bijector<T>> Bijector<T> for JointBijector<B> {
    fn forward(&self, xc: &DMatrix<T>) -> DMatrix<T> {
        self.forward_and_log_det(xc).0
    }
    fn inverse(&self, yc: &DMatrix<T>) -> DMatrix<T> {
        self.inverse_and_log_det(yc).0
    }
    fn forward_log_det_jacobian(&self, xc: &DMatrix<T>) -> DVector<T> {
        self.forward_and_log_det(xc).1
    }
    fn inverse_log_det_jacobian(&self, yc: &DMatrix<T>) -> DVector<T> {
        self.inverse_and_log_det(yc).1
    }
    fn forward_and_log_det(&self, xc: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let (x, c) = self.split(xc, self.inner.context_dim());
        let (y, l) = self.inner.forward_and_log_det_given(&x, &c);
        (stack_context(&y, &c), l)
    }
    fn inverse_and_log_det(&self, yc: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        let (y, c) = self.split(yc, self.inner.context_dim());
        let (x, l) = self.inner.inverse_and_log_det_given(&y, &c);
        (stack_context(&x, &c), l)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim + self.inner.context_dim())
    }
}

impl<B> JointBijector<B> {
    /// The fused pass of either direction on stacked `[x; c]`: the inner
    /// layer's pass under the contexts, its context cotangent stacked below
    /// the one the rest of the pass gives back. (The joint bijector takes no
    /// context of its own: `pass.c` is empty.)
    fn through_joint<T: Real>(&self, pass: Pass<'_, '_, T>) -> Result<DMatrix<T>, Error>
    where
        B: Differentiable<T>,
    {
        let (input, _, grad_params, _, rest, inverse) = pass.parts();
        let (x, c) = self.split(input, self.inner.context_dim());
        let mut grad_c = DMatrix::zeros(c.nrows(), c.ncols());
        let mut passed = None;
        let dim = self.dim;
        let gx = {
            let mut inner_rest = |z: &DMatrix<T>, l: &DVector<T>| {
                let (gzc, gl) = rest(&stack_context(z, &c), l)?;
                let (gz, gc) = split_context(&gzc, dim);
                passed = Some(gc);
                Ok((gz, gl))
            };
            if inverse {
                self.inner.inverse_and_log_det_through_given(
                    &x,
                    &c,
                    grad_params,
                    &mut grad_c,
                    &mut inner_rest,
                )?
            } else {
                self.inner.forward_and_log_det_through_given(
                    &x,
                    &c,
                    grad_params,
                    &mut grad_c,
                    &mut inner_rest,
                )?
            }
        };
        grad_c += passed.expect("a fused call runs its continuation");
        Ok(stack_context(&gx, &grad_c))
    }
}

impl<T: Real, B: Differentiable<T> + Clone + 'static> crate::Parameters<T> for JointBijector<B> {
    crate::params::parameters_by_delegate!(s => &s.inner, &mut s.inner);
}

impl<T: Real, B: Differentiable<T> + Clone + 'static> Differentiable<T> for JointBijector<B> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }
    crate::bijector::fused::training_from_through!(Self::through_joint);
}
