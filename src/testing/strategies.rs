//! proptest strategies for inputs and for the parameters of the built-in bijectors.
//!
//! All strategies produce `f64` values (the type the kit verifies in); convert
//! with `x.map(|v| v as f32)` to test single precision (nalgebra's
//! `.cast::<f32>()` does the same but consumes the matrix).
//!
//! ```
//! use normflow::prelude::*;
//! use normflow::testing::{check_bijector, strategies};
//! use proptest::prelude::*;
//!
//! proptest!(ProptestConfig::with_cases(8), |(b in strategies::scale_tril(3),
//!                                            x in strategies::batch(3, 4, 5.0))| {
//!     prop_assert!(check_bijector(&b, &x).is_ok());
//! });
//! ```

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

use crate::bijector::{LeakyRelu, Permute, Scale, ScaleTriL, Shift};

/// A single value: uniform on `[-bound, bound]`.
pub fn value(bound: f64) -> impl Strategy<Value = f64> + Clone {
    -bound..=bound
}

/// A value whose magnitude is log-uniform on `[min_abs, max_abs]`, with a random sign.
/// Reaches both tiny and huge magnitudes, which plain uniform sampling never does.
pub fn log_uniform_signed(min_abs: f64, max_abs: f64) -> impl Strategy<Value = f64> + Clone {
    (min_abs.ln()..=max_abs.ln(), any::<bool>())
        .prop_map(|(l, neg)| if neg { -l.exp() } else { l.exp() })
}

/// A positive value log-uniform on `[min, max]` (e.g. `1e-300..1e3` for `Invert(Exp)`).
pub fn log_uniform_positive(min: f64, max: f64) -> impl Strategy<Value = f64> + Clone {
    (min.ln()..=max.ln()).prop_map(f64::exp)
}

/// A `dim × n` batch from an element strategy.
pub fn batch_of<S: Strategy<Value = f64> + Clone>(
    dim: usize,
    n: usize,
    element: S,
) -> impl Strategy<Value = DMatrix<f64>> {
    proptest::collection::vec(element, dim * n).prop_map(move |v| DMatrix::from_vec(dim, n, v))
}

/// A `dim × n` batch with entries uniform on `[-bound, bound]`.
pub fn batch(dim: usize, n: usize, bound: f64) -> impl Strategy<Value = DMatrix<f64>> {
    batch_of(dim, n, value(bound))
}

/// A `dim × n` batch that mixes moderate values (`|x| ≤ 3`) with near-boundary
/// ones: magnitudes log-uniform up to `max_abs` (large `|x|` for saturating maps
/// such as tanh and sigmoid) and down to `1e-12`.
pub fn batch_with_extremes(
    dim: usize,
    n: usize,
    max_abs: f64,
) -> impl Strategy<Value = DMatrix<f64>> {
    let element = prop_oneof![
        2 => value(3.0),
        1 => log_uniform_signed(1e-12, max_abs),
        1 => Just(0.0),
    ];
    batch_of(dim, n, element)
}

/// A `dim × n` batch of positive values log-uniform on `[min, max]`, for
/// bijectors defined on the positive orthant (`Invert(Exp)`, `Invert(Softplus)`).
pub fn positive_batch(
    dim: usize,
    n: usize,
    min: f64,
    max: f64,
) -> impl Strategy<Value = DMatrix<f64>> {
    batch_of(dim, n, log_uniform_positive(min, max))
}

/// A `dim × n` batch in the open interval `(0, 1)` for `Invert(Sigmoid)`:
/// points down to `1e-12` above 0, and up to `1e-3` below 1.
///
/// Why not closer to 1: doubles are spaced `1.1e-16` apart near 1, so a point
/// `1 − 1e-12` carries a relative error of `1e-4` in its distance to the
/// boundary, and no finite-difference step can resolve a singularity closer
/// than the step itself (`≈ 1e-5` at order-one inputs). Near 0 there is no
/// such limit, because the step is scaled to `|x|` there.
pub fn unit_interval_batch(dim: usize, n: usize) -> impl Strategy<Value = DMatrix<f64>> {
    let element = prop_oneof![
        2 => 0.01..0.99,
        1 => log_uniform_positive(1e-12, 0.01),
        1 => log_uniform_positive(1e-3, 0.01).prop_map(|e| 1.0 - e),
    ];
    batch_of(dim, n, element)
}

/// A `dim × n` batch in `(−1, 1)` for `Invert(Tanh)`, including points within
/// `1e-3` of ±1 (see [`unit_interval_batch`] for why not closer) and tiny ones.
pub fn symmetric_unit_batch(dim: usize, n: usize) -> impl Strategy<Value = DMatrix<f64>> {
    let element = prop_oneof![
        2 => -0.99..0.99,
        1 => log_uniform_signed(1e-12, 0.01),
        1 => log_uniform_positive(1e-3, 0.01).prop_map(|e| 1.0 - e),
        1 => log_uniform_positive(1e-3, 0.01).prop_map(|e| e - 1.0),
    ];
    batch_of(dim, n, element)
}

/// A vector of `dim` entries from an element strategy.
pub fn vector_of<S: Strategy<Value = f64> + Clone>(
    dim: usize,
    element: S,
) -> impl Strategy<Value = DVector<f64>> {
    proptest::collection::vec(element, dim).prop_map(DVector::from_vec)
}

/// A random [`Shift`] with entries in `[-5, 5]`.
pub fn shift(dim: usize) -> impl Strategy<Value = Shift<f64>> {
    vector_of(dim, value(5.0)).prop_map(|v| Shift::new(v).expect("finite shift"))
}

/// A random [`Scale`]: magnitudes log-uniform on `[0.05, 20]`, random signs, so
/// the log-determinant is nonzero and of either sign.
pub fn scale(dim: usize) -> impl Strategy<Value = Scale<f64>> {
    vector_of(dim, log_uniform_signed(0.05, 20.0))
        .prop_map(|v| Scale::new(v).expect("nonzero scale"))
}

/// A random [`LeakyRelu`] with slope log-uniform on `[0.01, 10]`.
pub fn leaky_relu() -> impl Strategy<Value = LeakyRelu<f64>> {
    log_uniform_positive(0.01, 10.0).prop_map(|s| LeakyRelu::new(s).expect("positive slope"))
}

/// A random [`ScaleTriL`]: diagonal magnitudes log-uniform on `[0.1, 10]` with
/// random signs, off-diagonal entries in `[-2, 2]`, shift in `[-3, 3]`.
pub fn scale_tril(dim: usize) -> impl Strategy<Value = ScaleTriL<f64>> {
    (
        vector_of(dim, log_uniform_signed(0.1, 10.0)),
        proptest::collection::vec(value(2.0), dim * dim),
        vector_of(dim, value(3.0)),
    )
        .prop_map(move |(diag, off, b)| {
            let l = DMatrix::from_fn(dim, dim, |i, j| {
                if i == j {
                    diag[i]
                } else if i > j {
                    off[i * dim + j]
                } else {
                    0.0
                }
            });
            ScaleTriL::new(l, b).expect("valid lower-triangular scale")
        })
}

/// A uniformly random [`Permute`] of `0..dim`.
pub fn permute(dim: usize) -> impl Strategy<Value = Permute> {
    Just((0..dim).collect::<Vec<usize>>())
        .prop_shuffle()
        .prop_map(|p| Permute::new(p).expect("a shuffle is a permutation"))
}
