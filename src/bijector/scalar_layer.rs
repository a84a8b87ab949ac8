//! A user's own elementwise layer: its map, inverse and log-derivative
//! written once over a generic scalar; every gradient derived exactly by
//! dual numbers.

use std::fmt::Debug;

use nalgebra::{DMatrix, DVector};

use super::pass::Backward;
use super::{Bijector, Differentiable, assert_rows};
use nalgebra::{Const, U1};
use num_dual::DualSVec64;

use crate::autodiff::{Dual, Scalar};
use crate::{Error, Parameters, Real};

/// A strictly monotone map of one coordinate with a few parameters of its
/// own: what a user writes to make a trainable layer.
///
/// Write the map `y = f(x; p)` and `log|∂f/∂x|` once, generic over
/// [`Scalar`], and the inverse in `f64`. [`Elementwise`] applies it to every
/// coordinate of a `D`-dimensional batch, with its own parameters per
/// coordinate, and derives every gradient training needs exactly: the
/// forward direction by evaluating the two functions at dual numbers, the
/// inverse direction through the implicit-function theorem
/// (`∂x/∂y = 1/f'(x)`, `∂x/∂p = −(∂f/∂p)/f'(x)`), so the inverse may be any
/// numerical solver. Register the type with
/// [`register_layer`](crate::spec::register_layer) to name it in the flow
/// DSL and to save and load models that contain it.
///
/// ```
/// use normflow::autodiff::Scalar;
/// use normflow::bijector::{Bijector, Elementwise, ScalarBijector};
/// use nalgebra::DMatrix;
///
/// /// y = a·x + b with a = exp(log_a) (an affine map per coordinate).
/// #[derive(Debug, Clone, Default)]
/// struct Affine;
/// impl ScalarBijector for Affine {
///     const NAME: &'static str = "my_affine";
///     const PARAMS: &'static [&'static str] = &["log_a", "b"];
///     fn forward<S: Scalar>(&self, x: S, p: &[S]) -> S { x * p[0].exp() + p[1] }
///     fn inverse(&self, y: f64, p: &[f64]) -> f64 { (y - p[1]) * (-p[0]).exp() }
///     fn log_derivative<S: Scalar>(&self, _x: S, p: &[S]) -> S { p[0] }
/// }
///
/// let layer = Elementwise::<_, f64>::with_params(Affine, 2, vec![0.0, 2.0_f64.ln(), 1.0, 0.0])?;
/// let y = layer.forward(&DMatrix::from_column_slice(2, 1, &[1.0, 1.0]));
/// assert_eq!(y.as_slice(), [2.0, 2.0]); // (e⁰·1 + 1, 2·1 + 0)
/// # Ok::<(), normflow::Error>(())
/// ```
pub trait ScalarBijector: Clone + Debug + Send + Sync + 'static {
    /// The name the flow DSL and saved models know the layer by (a word:
    /// letters, digits, `_`).
    const NAME: &'static str;
    /// The names of one coordinate's parameters; each coordinate has this
    /// many.
    const PARAMS: &'static [&'static str];
    /// One line about the layer, for listings.
    const SUMMARY: &'static str = "a user-defined elementwise layer";

    /// The parameters a fresh layer starts from, one per name of
    /// [`PARAMS`](ScalarBijector::PARAMS) (default: all zero; choose values
    /// at which the map is the identity, so that a deep flow starts as one).
    fn initial_params(&self) -> Vec<f64> {
        vec![0.0; Self::PARAMS.len()]
    }

    /// `y = f(x; p)`, strictly increasing or decreasing in `x`.
    fn forward<S: Scalar>(&self, x: S, p: &[S]) -> S;

    /// `x = f⁻¹(y; p)`.
    fn inverse(&self, y: f64, p: &[f64]) -> f64;

    /// `log|∂f/∂x|` at `(x, p)`.
    fn log_derivative<S: Scalar>(&self, x: S, p: &[S]) -> S;
}

/// A [`ScalarBijector`] applied to each of `D` coordinates, with its own
/// parameters per coordinate: a trainable layer with exact gradients and no
/// backward pass written by hand.
///
/// Parameters are stored parameter-major: parameter `k` of coordinate `d`
/// at `k·D + d`. Values are computed in `f64` and rounded to `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Elementwise<L, T: Real> {
    layer: L,
    dim: usize,
    params: Vec<T>,
}

impl<L: ScalarBijector, T: Real> Elementwise<L, T> {
    /// The layer over `dim` coordinates at its initial parameters.
    ///
    /// # Panics
    /// If `initial_params` does not give one value per parameter name.
    pub fn new(layer: L, dim: usize) -> Self {
        let init = layer.initial_params();
        assert_eq!(
            init.len(),
            L::PARAMS.len(),
            "{}::initial_params gives {} values for {} parameter names",
            L::NAME,
            init.len(),
            L::PARAMS.len()
        );
        let params = init
            .iter()
            .flat_map(|&v| std::iter::repeat_n(T::lit(v), dim))
            .collect();
        Self { layer, dim, params }
    }

    /// The layer over `dim` coordinates with the given parameters
    /// (parameter-major, `PARAMS.len() · dim` values, all finite).
    pub fn with_params(layer: L, dim: usize, params: Vec<T>) -> Result<Self, Error> {
        let want = L::PARAMS.len() * dim;
        if params.len() != want {
            return Err(Error::InvalidParameter {
                context: format!("Elementwise<{}>::with_params", L::NAME),
                argument: "params".into(),
                expected: format!(
                    "{want} values ({} per coordinate × {dim} coordinates)",
                    L::PARAMS.len()
                ),
                got: format!("{} values", params.len()),
            });
        }
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidParameter {
                context: format!("Elementwise<{}>::with_params", L::NAME),
                argument: format!("params[{i}]"),
                expected: "a finite number".into(),
                got: format!("{}", params[i]),
            });
        }
        Ok(Self { layer, dim, params })
    }

    /// The user's map.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// The parameters, parameter-major.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Coordinate `d`'s parameters in `f64`.
    fn coord_params(&self, d: usize, out: &mut [f64]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.params[k * self.dim + d].to_f64();
        }
    }

    /// Applies `f(d, value, params)` to every entry of `m`, also summing
    /// `g(d, value, params)` per column.
    fn map(
        &self,
        caller: &str,
        m: &DMatrix<T>,
        f: impl Fn(f64, &[f64]) -> f64,
        g: impl Fn(f64, f64, &[f64]) -> f64,
    ) -> (DMatrix<T>, DVector<T>) {
        assert_rows(caller, self.dim, m);
        let (dim, n) = m.shape();
        let mut out = DMatrix::zeros(dim, n);
        let mut ld = DVector::zeros(n);
        let mut p = vec![0.0; L::PARAMS.len()];
        for d in 0..dim {
            self.coord_params(d, &mut p);
            for j in 0..n {
                let v = m[(d, j)].to_f64();
                let r = f(v, &p);
                out[(d, j)] = T::lit(r);
                ld[j] += T::lit(g(v, r, &p));
            }
        }
        (out, ld)
    }

    /// Exact partials at `(x, p)`: `(∂f/∂x, ∂f/∂pₖ…)` into `df` and
    /// `(∂ℓ/∂x, ∂ℓ/∂pₖ…)` into `dl`, of the map and its log-derivative.
    /// Up to 7 parameters per coordinate: one evaluation of each at a vector
    /// dual number carrying all the partials; more: one evaluation per input.
    fn partials(&self, x: f64, p: &[f64], df: &mut [f64], dl: &mut [f64]) {
        match p.len() {
            0 => self.partials_n::<1>(x, p, df, dl),
            1 => self.partials_n::<2>(x, p, df, dl),
            2 => self.partials_n::<3>(x, p, df, dl),
            3 => self.partials_n::<4>(x, p, df, dl),
            4..=7 => self.partials_n::<8>(x, p, df, dl),
            _ => self.partials_one_by_one(x, p, df, dl),
        }
    }

    /// [`partials`](Self::partials) at one vector dual number of `N ≥ 1 + k`
    /// components (input 0 is `x`, input `1 + k` is `pₖ`).
    fn partials_n<const N: usize>(&self, x: f64, p: &[f64], df: &mut [f64], dl: &mut [f64]) {
        let seed = |i: usize, v: f64| DualSVec64::<N>::from_re(v).derivative(i);
        let inputs: [DualSVec64<N>; N] = std::array::from_fn(|i| {
            if i == 0 {
                seed(0, x)
            } else {
                seed(i, *p.get(i - 1).unwrap_or(&0.0))
            }
        });
        let args = &inputs[1..=p.len()];
        let y = self
            .layer
            .forward(inputs[0], args)
            .eps
            .unwrap_generic(Const::<N>, U1);
        let l = self
            .layer
            .log_derivative(inputs[0], args)
            .eps
            .unwrap_generic(Const::<N>, U1);
        df.copy_from_slice(&y.as_slice()[..=p.len()]);
        dl.copy_from_slice(&l.as_slice()[..=p.len()]);
    }

    /// [`partials`](Self::partials) by one scalar dual evaluation per input.
    fn partials_one_by_one(&self, x: f64, p: &[f64], df: &mut [f64], dl: &mut [f64]) {
        let mut xd = Dual::from_re(x).derivative();
        let mut pd: Vec<Dual> = p.iter().map(|&v| Dual::from_re(v)).collect();
        df[0] = self.layer.forward(xd, &pd).eps;
        dl[0] = self.layer.log_derivative(xd, &pd).eps;
        xd = Dual::from_re(x);
        for k in 0..p.len() {
            pd[k] = pd[k].derivative();
            df[k + 1] = self.layer.forward(xd, &pd).eps;
            dl[k + 1] = self.layer.log_derivative(xd, &pd).eps;
            pd[k] = Dual::from_re(p[k]);
        }
    }

    fn check_grad(&self, caller: &str, grad_params: &[T]) -> Result<(), Error> {
        if grad_params.len() != self.params.len() {
            return Err(Error::DimensionMismatch {
                context: caller.into(),
                argument: "grad_params".into(),
                expected: self.params.len(),
                got: grad_params.len(),
            });
        }
        Ok(())
    }
}

impl<L: ScalarBijector, T: Real> Bijector<T> for Elementwise<L, T> {
    fn forward(&self, x: &DMatrix<T>) -> DMatrix<T> {
        self.map(
            "Elementwise::forward",
            x,
            |v, p| self.layer.forward(v, p),
            |_, _, _| 0.0,
        )
        .0
    }
    fn inverse(&self, y: &DMatrix<T>) -> DMatrix<T> {
        self.map(
            "Elementwise::inverse",
            y,
            |v, p| self.layer.inverse(v, p),
            |_, _, _| 0.0,
        )
        .0
    }
    fn forward_log_det_jacobian(&self, x: &DMatrix<T>) -> DVector<T> {
        self.forward_and_log_det(x).1
    }
    fn forward_and_log_det(&self, x: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.map(
            "Elementwise::forward",
            x,
            |v, p| self.layer.forward(v, p),
            |v, _, p| self.layer.log_derivative(v, p),
        )
    }
    fn inverse_and_log_det(&self, y: &DMatrix<T>) -> (DMatrix<T>, DVector<T>) {
        self.map(
            "Elementwise::inverse",
            y,
            |v, p| self.layer.inverse(v, p),
            |_, x, p| -self.layer.log_derivative(x, p),
        )
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
    super::differentiable_hooks!();
}

impl<L: ScalarBijector, T: Real> Parameters<T> for Elementwise<L, T> {
    super::single_buffer!(params);
}

impl<L: ScalarBijector, T: Real> Differentiable<T> for Elementwise<L, T> {
    fn boxed_clone(&self) -> Box<dyn Bijector<T>> {
        Box::new(self.clone())
    }

    // Forward: with `ℓ = log|f'|`, `∂L/∂x = ḡ_y·∂f/∂x + ḡ_l·∂ℓ/∂x` and
    // `∂L/∂pₖ += ḡ_y·∂f/∂pₖ + ḡ_l·∂ℓ/∂pₖ`, each partial exact. Inverse:
    // `x = f⁻¹(y)` and `l = −ℓ(x)`, differentiated through the
    // implicit-function theorem at `x`: with `u = ḡ_x − ḡ_l·∂ℓ/∂x`,
    // `∂L/∂y = u / f'(x)` and `∂L/∂pₖ += −u·(∂f/∂pₖ)/f'(x) − ḡ_l·∂ℓ/∂pₖ`.
    super::fused::backward_from!(backward);
}

impl<L: ScalarBijector, T: Real> Elementwise<L, T> {
    /// The backward pass of either direction: for every entry, the exact
    /// partials of `f` and `ℓ` at the point `x` (the input, or its inverse
    /// image for the inverse direction), chained as the comment in the
    /// `Differentiable` impl says.
    fn backward(&self, pass: Backward<'_, T>) -> Result<DMatrix<T>, Error> {
        let caller = format!("Elementwise<{}>::{}", L::NAME, pass.method());
        let (input, grad_out, grad_log_det, grad_params, inverse) = pass.parts();
        assert_rows(&caller, self.dim, input);
        self.check_grad(&caller, grad_params)?;
        let k = L::PARAMS.len();
        let (mut p, mut df, mut dl) = (vec![0.0; k], vec![0.0; k + 1], vec![0.0; k + 1]);
        let mut g_in = DMatrix::zeros(self.dim, input.ncols());
        for d in 0..self.dim {
            self.coord_params(d, &mut p);
            let mut acc = vec![0.0; k];
            for j in 0..input.ncols() {
                let v = input[(d, j)].to_f64();
                let x = if inverse {
                    self.layer.inverse(v, &p)
                } else {
                    v
                };
                self.partials(x, &p, &mut df, &mut dl);
                let (go, gl) = (grad_out[(d, j)].to_f64(), grad_log_det[j].to_f64());
                // Forward: ḡ_y and ḡ_l straight; inverse: through u = ḡ_x − ḡ_l·∂ℓ/∂x.
                let (u, scale, sign) = if inverse {
                    (go - gl * dl[0], 1.0 / df[0], -1.0)
                } else {
                    (go, 1.0, 1.0)
                };
                for (q, a) in acc.iter_mut().enumerate() {
                    *a += sign * u * df[q + 1] * scale + gl * dl[q + 1] * sign;
                }
                g_in[(d, j)] = T::lit(if inverse {
                    u * scale
                } else {
                    u * df[0] + gl * dl[0]
                });
            }
            for (q, a) in acc.iter().enumerate() {
                grad_params[q * self.dim + d] += T::lit(*a);
            }
        }
        Ok(g_in)
    }
}
