//! The normalization of a density, by quadrature over a box.

use nalgebra::DMatrix;

use super::checks::exceeds;
use super::report::{CheckFailure, Property, fail};
use crate::Real;
use crate::distribution::Distribution;

/// Integrates `exp(log_prob)` over the box `[lower, upper]` (one or two
/// dimensions) with the composite Simpson rule on `points_per_axis` points per
/// axis (rounded up to an odd number), and checks `|∫ p − 1| ≤ tolerance`.
/// Returns the integral.
///
/// The box must hold essentially all the mass. Simpson's rule is accurate to
/// `O(h⁴)` for smooth densities; a density with a kink (Laplace) or a jump
/// (Uniform) converges as `O(h²)` or `O(h)`, so choose `points_per_axis` and
/// `tolerance` accordingly (e.g. 2001 points, `1e-3`, for a jump in 1-D).
///
/// ```
/// use normflow::prelude::*;
/// use normflow::testing::check_density_normalizes;
/// let d = StandardNormal::new(1)?;
/// let z = check_density_normalizes::<f64, _>(&d, &[-10.0], &[10.0], 401, 1e-8).unwrap();
/// assert!((z - 1.0).abs() < 1e-8);
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn check_density_normalizes<T: Real, D: Distribution<T> + ?Sized>(
    dist: &D,
    lower: &[f64],
    upper: &[f64],
    points_per_axis: usize,
    tolerance: f64,
) -> Result<f64, CheckFailure> {
    let d = dist.dim();
    if !(1..=2).contains(&d) || lower.len() != d || upper.len() != d {
        return Err(fail(
            Property::Input,
            None,
            None,
            d as f64,
            lower.len() as f64,
            0.0,
            0.0,
            format!(
                "quadrature needs a distribution of dimension 1 or 2 and bounds of that length (dimension {d}, {} lower and {} upper bounds)",
                lower.len(),
                upper.len()
            ),
        ));
    }
    let m = (points_per_axis.max(3) / 2) * 2 + 1;
    let nodes = |a: f64, b: f64| -> Vec<(f64, f64)> {
        let h = (b - a) / (m - 1) as f64;
        (0..m)
            .map(|k| {
                let w = if k == 0 || k == m - 1 {
                    1.0
                } else if k % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                (a + h * k as f64, w * h / 3.0)
            })
            .collect()
    };
    let axes: Vec<Vec<(f64, f64)>> = (0..d).map(|i| nodes(lower[i], upper[i])).collect();
    let total_points = axes.iter().map(|a| a.len()).product::<usize>();
    let mut integral = 0.0;
    let chunk = 4096;
    let mut start = 0;
    while start < total_points {
        let len = chunk.min(total_points - start);
        let mut pts = DMatrix::<T>::zeros(d, len);
        let mut weights = vec![0.0; len];
        for c in 0..len {
            let mut idx = start + c;
            let mut w = 1.0;
            for (i, axis) in axes.iter().enumerate() {
                let (p, wi) = axis[idx % axis.len()];
                idx /= axis.len();
                pts[(i, c)] = T::lit(p);
                w *= wi;
            }
            weights[c] = w;
        }
        let lp = dist.log_prob(&pts);
        for c in 0..len {
            integral += weights[c] * lp[c].to_f64().exp();
        }
        start += len;
    }
    let err = (integral - 1.0).abs();
    if exceeds(err, tolerance) {
        return Err(fail(
            Property::Normalization,
            None,
            None,
            1.0,
            integral,
            err,
            tolerance,
            "integral of the density over the given box",
        ));
    }
    Ok(integral)
}
