//! Fitting of conditional densities `p(x | c)` from paired data: the checks
//! of paired data, and the former entry points (now [`fit`](super::fit) with
//! the pair `(&x, &c)`).

use nalgebra::DMatrix;

use super::{FitEvent, FitOptions, FitReport, TrainableDensity, fit_with_observer};
use crate::{Error, Real};

/// [`fit`](super::fit) of the pairs `(x, c)`.
#[deprecated(note = "use fit(model, (&x, &c), options)")]
pub fn fit_conditional<T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    options: &FitOptions<T>,
) -> Result<FitReport, Error> {
    fit_with_observer(model, (x, c), options, &mut |_| true)
}

/// [`fit_with_observer`] of the pairs `(x, c)`.
#[deprecated(note = "use fit_with_observer(model, (&x, &c), options, observer)")]
pub fn fit_conditional_with_observer<T: Real, M: TrainableDensity<T>>(
    model: &mut M,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    options: &FitOptions<T>,
    observer: &mut dyn FnMut(&FitEvent) -> bool,
) -> Result<FitReport, Error> {
    fit_with_observer(model, (x, c), options, observer)
}

/// Checks a paired data set: shapes and finite values, with messages that
/// say which of the two is wrong.
pub(crate) fn check_pairs<T: Real>(
    context: &str,
    what: &str,
    x: &DMatrix<T>,
    c: &DMatrix<T>,
    dim: usize,
    context_dim: usize,
) -> Result<(), Error> {
    use crate::error::check;
    check::same_dim(context, &format!("{what} (rows of x)"), dim, x.nrows())?;
    check::same_dim(
        context,
        &format!("{what} (rows of the context)"),
        context_dim,
        c.nrows(),
    )?;
    check::same_dim(
        context,
        &format!("{what} (contexts, one per sample)"),
        x.ncols(),
        c.ncols(),
    )?;
    for (name, m) in [("x", x), ("context", c)] {
        if let Some(k) = m.iter().position(|v| !v.is_finite()) {
            let (i, j) = (k % m.nrows(), k / m.nrows());
            return Err(check::invalid(
                context,
                &format!("{what}: {name}[({i}, {j})]"),
                "finite",
                m[(i, j)],
            ));
        }
    }
    Ok(())
}
