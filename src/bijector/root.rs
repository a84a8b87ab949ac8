//! The one-dimensional root finder of the layers whose inverse has no
//! closed form (planar, Sylvester, the deep sigmoidal transformer), and the
//! `tanh`/`sech²` pair their slopes need.

use crate::Real;

/// One evaluation of a non-decreasing function `g` for [`safeguarded_newton`].
pub(crate) struct Eval<T> {
    /// `g(x)`.
    pub value: T,
    /// `g'(x)`.
    pub slope: T,
    /// The rounding level of `value`: a residual at or below it is noise,
    /// and no later step could be trusted.
    pub noise: T,
}

/// The root of a non-decreasing `g` inside the bracket `[lo, hi]`
/// (`g(lo) < 0 < g(hi)`), from `start` (the bracket's midpoint if `start`
/// is outside it).
///
/// Safeguarded Newton in the manner of Numerical Recipes' `rtsafe`: the
/// bracket shrinks at every iteration, and a Newton step is replaced by
/// bisection when it would leave the bracket, when the slope is not
/// positive, or when it is not at most half the step before last (plain
/// Newton can cycle on S-shaped functions). Stops when the residual is at
/// its rounding level ([`Eval::noise`]), when a step is at most
/// `step_tolerance(next)`, when no float lies strictly inside the bracket,
/// or after `max_iterations` (then the last iterate, a point of the
/// bracket).
pub(crate) fn safeguarded_newton<T: Real>(
    mut lo: T,
    mut hi: T,
    start: T,
    max_iterations: usize,
    step_tolerance: impl Fn(T) -> T,
    mut eval: impl FnMut(T) -> Eval<T>,
) -> T {
    let two = T::lit(2.0);
    let mut x = if start > lo && start < hi {
        start
    } else {
        lo + (hi - lo) / two
    };
    let mut step = hi - lo;
    let mut step_before = step;
    for _ in 0..max_iterations {
        let g = eval(x);
        if g.value.abs() <= g.noise {
            return x;
        }
        if g.value < T::zero() {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x - g.value / g.slope;
        let newton_ok = g.slope > T::zero()
            && newton > lo
            && newton < hi
            && (two * g.value).abs() <= (step_before * g.slope).abs();
        step_before = step;
        let next = if newton_ok {
            step = g.value / g.slope;
            newton
        } else {
            step = (hi - lo) / two;
            let mid = lo + step;
            if !(mid > lo && mid < hi) {
                // The bracket is two adjacent floats.
                return mid;
            }
            mid
        };
        if step.abs() <= step_tolerance(next) {
            return next;
        }
        x = next;
    }
    x
}

/// `(tanh x, sech² x)`, with `sech² x = 4e/(1 + e)²`, `e = exp(−2|x|)`.
#[inline]
pub(crate) fn tanh_sech2<T: Real>(x: T) -> (T, T) {
    let a = x.abs();
    let e = (-(a + a)).exp();
    let ope = T::one() + e;
    (x.tanh(), T::lit(4.0) * e / (ope * ope))
}

/// [`safeguarded_newton`] run to machine precision: at most 200 iterations,
/// stopping once a step is below `ε|x|`.
pub(crate) fn newton_to_precision<T: Real>(
    lo: T,
    hi: T,
    start: T,
    eval: impl FnMut(T) -> Eval<T>,
) -> T {
    let eps = T::machine_epsilon();
    safeguarded_newton(lo, hi, start, 200, |next| eps * next.abs(), eval)
}

/// The root `ζ` of `g(ζ) = ζ + r tanh(r̃ ζ + c) − e` for `r r̃ ≥ −1`, the
/// scalar equation of the planar (`r̃ = 1`) and Sylvester inverses: `g` is
/// non-decreasing (`g' = 1 + r r̃ sech² ≥ 0`) and, since `|tanh| ≤ 1`,
/// `g(e − |r|) ≤ 0 ≤ g(e + |r|)`. [`safeguarded_newton`] from one
/// fixed-point step from `ζ = e` (exact when `tanh` saturates), stopping when
/// the residual is at the rounding level of its own evaluation
/// (`ε(|ζ| + |r tanh| + |e|)`), when a step is below `ε|ζ|`, when no float
/// lies strictly inside the bracket, or after 200 iterations.
pub(crate) fn tanh_root<T: Real>(e: T, r: T, rt: T, c: T) -> T {
    if r == T::zero() || !e.is_finite() || !c.is_finite() {
        return e;
    }
    let ar = r.abs();
    let lo = e - ar;
    let hi = e + ar;
    if lo >= hi || !(hi - lo).is_finite() {
        return e;
    }
    let g = |z: T| z + r * (rt * z + c).tanh() - e;
    if g(lo) >= T::zero() {
        return lo;
    }
    if g(hi) <= T::zero() {
        return hi;
    }
    let eps = T::machine_epsilon();
    let start = e - r * (rt * e + c).tanh();
    newton_to_precision(lo, hi, start, |z| {
        let (t, s2) = tanh_sech2(rt * z + c);
        Eval {
            value: z + r * t - e,
            slope: T::one() + r * rt * s2,
            noise: eps * (z.abs() + (r * t).abs() + e.abs()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_root_of_an_s_shaped_function() {
        // g(x) = x + 20 tanh(x − 1) − 3: steep near 1, flat elsewhere, where
        // plain Newton cycles.
        let g = |x: f64| x + 20.0 * (x - 1.0).tanh() - 3.0;
        let root = safeguarded_newton(
            -17.0,
            23.0,
            -10.0,
            200,
            |n: f64| f64::EPSILON * n.abs(),
            |x| {
                let (t, s2) = tanh_sech2(x - 1.0);
                Eval {
                    value: x + 20.0 * t - 3.0,
                    slope: 1.0 + 20.0 * s2,
                    noise: f64::EPSILON * (x.abs() + (20.0 * t).abs() + 3.0),
                }
            },
        );
        assert!(g(root).abs() < 1e-13, "g({root}) = {}", g(root));
    }

    #[test]
    fn tanh_sech2_is_tanh_and_its_derivative() {
        for x in [-30.0_f64, -2.0, -1e-3, 0.0, 0.7, 19.0] {
            let (t, s2) = tanh_sech2(x);
            assert_eq!(t, x.tanh());
            // sech² = 1 − tanh², accurate where tanh is not near ±1.
            let c = x.cosh();
            assert!((s2 - 1.0 / (c * c)).abs() <= 1e-13 * (1.0 / (c * c)));
        }
    }
}
