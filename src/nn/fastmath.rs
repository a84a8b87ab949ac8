//! Branch-free single-precision `exp` and `ln` for the scale computations of
//! the affine autoregressive layers, evaluated over a whole batch at once so
//! that the loop vectorises (8 lanes with AVX2 and FMA, selected at run time;
//! 4 lanes with the baseline SSE2). The C library's `expf`/`log1pf`/`logf`
//! run one value per call, and took about 40 % of an f32 `log_prob` of
//! `maf(5, hidden = 64)` at 64 dimensions.
//!
//! Both are textbook expansions, not fitted coefficients:
//! - `exp(x) = 2ⁿ · exp(r)` with `n = round(x / ln 2)`, `|r| ≤ ln 2 / 2`, and
//!   `exp(r)` by its Taylor polynomial of degree 7 (remainder below
//!   `0.35⁸ / 8! ≈ 6.5·10⁻⁹`, under one unit in the last place of f32);
//! - `ln(x) = k ln 2 + ln(m)` with `m ∈ [√½, √2)`, and
//!   `ln(m) = 2 atanh(f)` with `f = (m − 1)/(m + 1)`, `|f| ≤ 0.172`;
//! - `log1p(e) = 2 atanh(e/(2 + e))` for `e ∈ [0, 1]` (softplus), so
//!   `|f| ≤ 1/3`;
//! - `2 atanh(f) = 2(f + f³/3 + … + f¹³/13)`, whose first omitted term is
//!   below `1.4·10⁻⁸` of the sum at `|f| = 1/3`; for `ln` the series stops
//!   at `f⁹/9` (first omitted term below `2.1·10⁻⁹` of the sum at
//!   `|f| = 0.172`).
//!
//! The polynomials are evaluated by Horner's rule with fused multiply-adds on
//! the AVX2 and FMA path, with separate multiplications and additions on the
//! baseline one; the two agree to a few units in the last place.
//!
//! The unit tests compare them with f64 `exp`/`ln` over the ranges used.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that n·LN2_HI is exact for |n| < 2⁹ (Cody and Waite).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// `a·b + c`: one fused instruction where the caller is compiled for FMA
/// (`FMA = true`), two roundings otherwise (a library call for `mul_add`
/// on baseline x86-64 would cost far more than it saves).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `exp(x)` for `x ≤ 0` (below `−87` the result is about `10⁻³⁸` instead of
/// a subnormal or zero); NaN stays NaN.
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    // Round to nearest by adding and subtracting 1.5·2²³ (valid for
    // |x·log₂e| < 2²²): plain arithmetic, where `round` is a library call on
    // baseline x86-64.
    const ROUND: f32 = 12_582_912.0;
    let n = madd::<FMA>(x, LOG2E, ROUND) - ROUND;
    let r = madd::<FMA>(-n, LN2_LO, madd::<FMA>(-n, LN2_HI, x));
    // Horner's rule for 1 + r + r²/2! + … + r⁷/7!.
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = madd::<FMA>(r, p, c);
    }
    // 2ⁿ from its exponent bits (n ∈ [−126, 0]; NaN casts to 0).
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * two_n
}

/// `2 atanh(f) = 2(f + f³/3 + … + f¹³/13)` for `|f| ≤ 1/3` (the first term
/// left out, `f¹⁵/15`, is below `1.4·10⁻⁸` of the sum).
#[inline(always)]
fn two_atanh<const FMA: bool>(f: f32) -> f32 {
    let f2 = f * f;
    let p = madd::<FMA>(f2, 1.0 / 13.0, 1.0 / 11.0);
    let p = madd::<FMA>(f2, p, 1.0 / 9.0);
    2.0 * f * two_atanh_tail::<FMA>(f2, p)
}

/// `2 atanh(f) = 2(f + f³/3 + … + f⁹/9)` for `|f| ≤ 0.172` (the first term
/// left out, `f¹¹/11`, is below `2.1·10⁻⁹` of the sum).
#[inline(always)]
fn two_atanh_small<const FMA: bool>(f: f32) -> f32 {
    2.0 * f * two_atanh_tail::<FMA>(f * f, 1.0 / 9.0)
}

/// The common end of both series by Horner's rule: `p·f⁸ + f⁶/7 + f⁴/5 +
/// f²/3 + 1` given `f2 = f²` and the higher terms' sum `p`.
#[inline(always)]
fn two_atanh_tail<const FMA: bool>(f2: f32, mut p: f32) -> f32 {
    for c in [1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = madd::<FMA>(f2, p, c);
    }
    p
}

/// `ln(x)` to a few units in the last place for positive normal `x`; `+∞` and
/// NaN are returned unchanged, 0 gives `−∞` and negative `x` NaN.
#[inline(always)]
fn ln<const FMA: bool>(x: f32) -> f32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let k = (if big { exponent + 1 } else { exponent }) as f32;
    // ln(m) = 2 atanh((m − 1)/(m + 1)), |f| ≤ 0.172.
    let ln_m = two_atanh_small::<FMA>((m - 1.0) / (m + 1.0));
    let r = madd::<FMA>(k, LN2_HI, madd::<FMA>(k, LN2_LO, ln_m));
    // Selects for the values outside the formula's range.
    let r = if x > 0.0 && x < f32::INFINITY { r } else { x };
    let r = if x == 0.0 { f32::NEG_INFINITY } else { r };
    if x < 0.0 { f32::NAN } else { r }
}

/// `(softplus(z), sigmoid(z))` from one `e = exp(−|z|)`:
/// `softplus(z) = max(z, 0) + log1p(e)`, `sigmoid(z) = 1/(1 + e)` for
/// `z ≥ 0` and `e/(1 + e)` otherwise. `log1p(e) = 2 atanh(e/(2 + e))`
/// keeps its relative accuracy for tiny `e`, and `e ≤ 1` keeps the
/// argument at most 1/3.
#[inline(always)]
fn softplus_sigmoid<const FMA: bool>(z: f32) -> (f32, f32) {
    let e = exp_nonpositive::<FMA>(-z.abs());
    let log1p = two_atanh::<FMA>(e / (2.0 + e));
    // `z.max(0.0)` would turn a NaN into 0; this select keeps it.
    let pos = if z > 0.0 { z } else { 0.0 * z };
    let inv = 1.0 / (1.0 + e);
    let sig = if z >= 0.0 { inv } else { e * inv };
    (pos + log1p, sig)
}

/// One value of [`super::positive_scale_with_derivative`] in this module's
/// arithmetic: `(σ, log σ, dσ/da)` with `σ(0) = 1`, `log σ(0) = 0` exactly.
/// Without `LOG`, `log σ` is not computed (returned as 0).
#[inline(always)]
fn scale<const LOG: bool, const FMA: bool>(a: f32, offset: f32, min: f32) -> (f32, f32, f32) {
    let (sp, sig) = softplus_sigmoid::<FMA>(a + offset);
    let s = sp + min;
    let log_s = if LOG { ln::<FMA>(s) } else { 0.0 };
    if a == 0.0 {
        (1.0, 0.0, sig)
    } else {
        (s, log_s, sig)
    }
}

#[inline(always)]
fn scales_body<const LOG: bool, const FMA: bool>(
    a: &[f32],
    s: &mut [f32],
    log_s: &mut [f32],
    ds: &mut [f32],
) {
    let offset = super::SCALE_OFFSET as f32;
    let min = super::MIN_SCALE as f32;
    if LOG {
        for (((a, s), l), d) in a.iter().zip(s).zip(log_s).zip(ds) {
            (*s, *l, *d) = scale::<true, FMA>(*a, offset, min);
        }
    } else {
        for ((a, s), d) in a.iter().zip(s).zip(ds) {
            (*s, _, *d) = scale::<false, FMA>(*a, offset, min);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scales_avx2<const LOG: bool>(a: &[f32], s: &mut [f32], log_s: &mut [f32], ds: &mut [f32]) {
    scales_body::<LOG, true>(a, s, log_s, ds)
}

/// Whether this CPU takes the AVX2 and FMA path.
#[cfg(target_arch = "x86_64")]
fn fma_path() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_path() -> bool {
    false
}

/// For every `a[i]`: `s[i] = σ(a[i])`, `ds[i] = dσ/da` and, when `log_s` is
/// given, `log_s[i] = log σ(a[i])`, with `σ` the positive scale map (all
/// slices the same length).
pub(crate) fn positive_scales(a: &[f32], s: &mut [f32], log_s: Option<&mut [f32]>, ds: &mut [f32]) {
    // Lengths checked by the caller (`nn::positive_scales`).
    debug_assert!(s.len() == a.len() && ds.len() == a.len());
    #[cfg(target_arch = "x86_64")]
    if fma_path() {
        // SAFETY: the CPU has the features the functions are compiled for.
        unsafe {
            match log_s {
                Some(l) => scales_avx2::<true>(a, s, l, ds),
                None => scales_avx2::<false>(a, s, &mut [], ds),
            }
        }
        return;
    }
    match log_s {
        Some(l) => scales_body::<true, false>(a, s, l, ds),
        None => scales_body::<false, false>(a, s, &mut [], ds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error in units of f32's epsilon.
    fn ulps(got: f32, want: f64) -> f64 {
        ((got as f64 - want) / want.abs().max(f32::MIN_POSITIVE as f64)).abs() / f32::EPSILON as f64
    }

    #[test]
    fn exp_matches_f64_on_its_range() {
        let mut worst = 0.0_f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            worst = worst.max(ulps(exp_nonpositive::<false>(x), want));
            worst = worst.max(ulps(exp_nonpositive::<true>(x), want));
        }
        assert!(worst < 4.0, "exp: {worst} ulp");
        for exp in [exp_nonpositive::<false>, exp_nonpositive::<true>] {
            assert_eq!(exp(0.0), 1.0);
            assert!(exp(f32::NAN).is_nan());
            let tiny = exp(-1e30);
            assert!(tiny > 0.0 && tiny < 1e-37);
        }
    }

    #[test]
    fn ln_matches_f64_from_tiny_to_huge() {
        ln_matches_f64::<false>();
        ln_matches_f64::<true>();
    }

    fn ln_matches_f64<const FMA: bool>() {
        let ln = ln::<FMA>;
        let mut worst = 0.0_f64;
        // A geometric grid over every binade of normal f32.
        let mut x = f32::MIN_POSITIVE;
        while x < 1e38 {
            let want = (x as f64).ln();
            // Near 1 the result is tiny: compare absolutely there.
            let err = if want.abs() < 1e-3 {
                (ln(x) as f64 - want).abs() / f32::EPSILON as f64
            } else {
                ulps(ln(x), want)
            };
            worst = worst.max(err);
            x *= 1.000_37;
        }
        for i in 1..20_000 {
            let x = 1.0 + (i as f32 - 10_000.0) * 1e-5;
            worst = worst.max((ln(x) as f64 - (x as f64).ln()).abs() / f32::EPSILON as f64);
        }
        assert!(worst < 4.0, "ln: {worst} ulp");
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(f32::NAN).is_nan() && ln(-1.0).is_nan());
    }

    #[test]
    fn softplus_and_sigmoid_match_f64() {
        softplus_and_sigmoid::<false>();
        softplus_and_sigmoid::<true>();
    }

    fn softplus_and_sigmoid<const FMA: bool>() {
        let softplus_sigmoid = softplus_sigmoid::<FMA>;
        let mut worst = (0.0_f64, 0.0_f64);
        for i in 0..=400_000 {
            let z = -87.0 + 187.0 * i as f32 / 400_000.0;
            let zd = z as f64;
            let sp = zd.max(0.0) + (-zd.abs()).exp().ln_1p();
            let sig = 1.0 / (1.0 + (-zd).exp());
            let (a, b) = softplus_sigmoid(z);
            worst.0 = worst.0.max(ulps(a, sp));
            worst.1 = worst.1.max(ulps(b, sig));
        }
        assert!(
            worst.0 < 4.0 && worst.1 < 4.0,
            "softplus, sigmoid: {worst:?} ulp"
        );
        // Below −87 both are about e^z, under 10⁻³⁷: returned as ~10⁻³⁸.
        for z in [-88.0_f32, -100.0, -1e30] {
            let (a, b) = softplus_sigmoid(z);
            assert!(
                (0.0..1e-37).contains(&a) && (0.0..1e-37).contains(&b),
                "{z}: {a}, {b}"
            );
        }
        assert_eq!(softplus_sigmoid(1e30).0, 1e30);
        let (a, b) = softplus_sigmoid(f32::NAN);
        assert!(a.is_nan() && b.is_nan());
    }

    /// The batch form (on whichever path this CPU takes) against the f64
    /// scale map, over the range of network outputs.
    #[test]
    fn batch_scales_match_the_f64_map() {
        let a: Vec<f32> = (0..=20_000)
            .map(|i| -40.0 + 80.0 * i as f32 / 20_000.0)
            .collect();
        let n = a.len();
        let (mut s, mut l, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        positive_scales(&a, &mut s, Some(&mut l), &mut d);
        let mut portable = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        // The arithmetic `positive_scales` chose for this CPU.
        let body = if fma_path() {
            scales_body::<true, true>
        } else {
            scales_body::<true, false>
        };
        body(&a, &mut portable.0, &mut portable.1, &mut portable.2);
        // Without the logarithm: the same scales and derivatives.
        let (mut s2, mut d2) = (vec![0.0; n], vec![0.0; n]);
        positive_scales(&a, &mut s2, None, &mut d2);
        assert!(s2 == s && d2 == d);
        for i in 0..n {
            // The exact map at the f32 argument z = a + c that both paths
            // see (rounding z to f32 alone moves e^z by up to |z|·ε/2).
            let z = (a[i] + super::super::SCALE_OFFSET as f32) as f64;
            let sp = z.max(0.0) + (-z.abs()).exp().ln_1p();
            let s64 = sp + super::super::MIN_SCALE;
            let (l64, d64) = (s64.ln(), 1.0 / (1.0 + (-z).exp()));
            // σ = softplus + 10⁻³ adds one more rounding.
            assert!(ulps(s[i], s64) < 5.0, "σ({}): {} vs {s64}", a[i], s[i]);
            assert!(
                (l[i] as f64 - l64).abs() < 5.0 * f32::EPSILON as f64 * l64.abs().max(1.0),
                "log σ({}): {} vs {l64}",
                a[i],
                l[i]
            );
            assert!(ulps(d[i], d64) < 4.0, "σ'({}): {} vs {d64}", a[i], d[i]);
            // The vectorised path computes exactly what its scalar form does.
            assert_eq!(
                (s[i], l[i], d[i]),
                (portable.0[i], portable.1[i], portable.2[i])
            );
        }
        positive_scales(&[0.0], &mut s[..1], Some(&mut l[..1]), &mut d[..1]);
        assert_eq!((s[0], l[0]), (1.0, 0.0));
    }
}
