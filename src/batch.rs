//! Shape checks and batch helpers: the bottom layer every module may use
//! (networks, bijectors, distributions, flows, training), depending on
//! nothing in the crate but [`Real`].
//!
//! A batch is a `D × n` matrix, one column per sample (see the crate's
//! documentation).

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution as _, StandardNormal};

use crate::Real;

/// Panics with a clear message when a batch has the wrong number of rows:
/// `"{context}: input has dimension {rows} (rows), expected dimension {expected}"`
/// (evaluation with the wrong dimension panics, the nalgebra convention).
#[inline]
#[track_caller]
pub(crate) fn assert_rows<T: Real>(context: &str, expected: usize, m: &DMatrix<T>) {
    assert!(
        m.nrows() == expected,
        "{context}: input has dimension {} (rows), expected dimension {expected}",
        m.nrows()
    );
}

/// Panics with a clear message unless `x` has `dim` rows (when fixed) and,
/// for a map conditioned on a context (`context_dim > 0`), `c` has
/// `context_dim` rows and as many columns as `x`: the shape check of every
/// call that takes a context. A conditioned map called without a context
/// gets a message that says which method to call instead. An unconditional
/// map (`context_dim = 0`) accepts, and ignores, any context.
#[track_caller]
pub(crate) fn assert_pair<T: Real>(
    caller: &str,
    dim: Option<usize>,
    context_dim: usize,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
) {
    if let Some(d) = dim {
        assert_rows(caller, d, x);
    }
    if context_dim == 0 {
        return;
    }
    assert!(
        c.nrows() == context_dim,
        "{caller}: context has dimension {} (rows), expected dimension {context_dim}{}",
        c.nrows(),
        if c.nrows() == 0 {
            " (this map is conditioned on a context: call the `_given` method with one, \
             e.g. `forward_given(x, c)` or `log_prob_given(x, c)`)"
        } else {
            ""
        }
    );
    assert!(
        x.ncols() == c.ncols(),
        "{caller}: {} samples but {} contexts (one context column per sample)",
        x.ncols(),
        c.ncols()
    );
}

/// The context a map with `context_dim` context rows reads: `c` itself, or
/// the empty context when the map takes none (it ignores what it is given).
pub(crate) fn own_context<T: Real>(
    context_dim: usize,
    c: &DMatrix<T>,
) -> std::borrow::Cow<'_, DMatrix<T>> {
    if context_dim == 0 && c.nrows() > 0 {
        std::borrow::Cow::Owned(DMatrix::zeros(0, c.ncols()))
    } else {
        std::borrow::Cow::Borrowed(c)
    }
}

/// The empty `0 × n` context of `n` samples: what the context-free methods
/// pass to the `_given` ones.
#[inline]
pub fn no_context<T: Real>(n: usize) -> DMatrix<T> {
    DMatrix::zeros(0, n)
}

/// A `D × n` matrix of independent standard-normal draws (drawn in `f64`,
/// column by column, then rounded to `T`).
pub(crate) fn standard_normal_matrix<T: Real>(d: usize, n: usize, rng: &mut dyn Rng) -> DMatrix<T> {
    DMatrix::from_fn(d, n, |_, _| {
        let z: f64 = StandardNormal.sample(rng);
        T::lit(z)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn assert_rows_accepts_the_expected_dimension() {
        assert_rows("test", 3, &DMatrix::<f64>::zeros(3, 2));
        assert_rows("test", 0, &DMatrix::<f32>::zeros(0, 5));
    }

    #[test]
    #[should_panic(expected = "Thing::forward: input has dimension 2 (rows), expected dimension 3")]
    fn assert_rows_names_the_caller_and_both_dimensions() {
        assert_rows("Thing::forward", 3, &DMatrix::<f64>::zeros(2, 4));
    }

    #[test]
    fn standard_normal_matrix_has_the_shape_and_the_stream_of_f64_draws() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let m = standard_normal_matrix::<f64>(2, 3, &mut rng);
        assert_eq!(m.shape(), (2, 3));
        // The same draws, in column-major order, as sampling f64 directly.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for v in m.iter() {
            let z: f64 = StandardNormal.sample(&mut rng);
            assert_eq!(*v, z);
        }
    }
}
