//! The scalar trait every numeric type in normflow is generic over.

use std::fmt::{Debug, Display, LowerExp};

use nalgebra::RealField;

/// A real floating-point scalar: implemented for `f32` and `f64`.
///
/// Mathematical functions (`exp`, `ln`, `ln_1p`, `sqrt`, `tanh`, …) come from
/// nalgebra's [`RealField`] (through simba's `ComplexField`), so generic code
/// reads `x.exp()` without ambiguity. `num_traits::Float` is deliberately *not*
/// a supertrait: it defines the same method names and would make every call
/// ambiguous.
///
/// The extra methods here are the handful of stable building blocks that flows
/// need everywhere (softplus, log-sigmoid) and conversions to and from `f64`.
///
/// ```
/// use normflow::Real;
/// // softplus(x) = log(1 + e^x), computed without overflow.
/// assert!((1000.0_f64.softplus() - 1000.0).abs() < 1e-12);
/// assert!((0.0_f64.softplus() - 2.0_f64.ln()).abs() < 1e-15);
/// assert_eq!(f32::lit(0.5), 0.5_f32);
/// ```
pub trait Real:
    RealField + Copy + Default + Debug + Display + LowerExp + Send + Sync + 'static
{
    /// Converts an `f64` literal or value to this type (rounding for `f32`).
    fn lit(x: f64) -> Self;
    /// Converts to `f64` (exact for both implementations).
    fn to_f64(self) -> f64;
    /// Positive infinity.
    fn infinity() -> Self;
    /// Negative infinity.
    fn neg_infinity() -> Self;
    /// A quiet NaN.
    fn nan() -> Self;
    /// Machine epsilon of this type.
    fn machine_epsilon() -> Self;
    /// Whether the value is NaN.
    fn is_nan_(self) -> bool;

    /// `log(1 + exp(x))` in the stable form `max(x, 0) + log1p(exp(−|x|))`.
    #[inline]
    fn softplus(self) -> Self {
        self.max(Self::zero()) + (-self.abs()).exp().ln_1p()
    }

    /// The logistic sigmoid `1 / (1 + exp(−x))`, evaluated without overflow.
    #[inline]
    fn sigmoid(self) -> Self {
        if self >= Self::zero() {
            Self::one() / (Self::one() + (-self).exp())
        } else {
            let e = self.exp();
            e / (Self::one() + e)
        }
    }

    /// `log σ(x) = −softplus(−x)`, finite for every finite `x`.
    #[inline]
    fn log_sigmoid(self) -> Self {
        -(-self).softplus()
    }
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            #[inline]
            fn lit(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn infinity() -> Self {
                <$t>::INFINITY
            }
            #[inline]
            fn neg_infinity() -> Self {
                <$t>::NEG_INFINITY
            }
            #[inline]
            fn nan() -> Self {
                <$t>::NAN
            }
            #[inline]
            fn machine_epsilon() -> Self {
                <$t>::EPSILON
            }
            #[inline]
            fn is_nan_(self) -> bool {
                self.is_nan()
            }
        }
    };
}

impl_real!(f32);
impl_real!(f64);

/// Replaces NaN (and `+inf`, which no density here can reach) by `-inf`.
///
/// A log-density is NaN only when its input lies outside the support (for
/// example `log(y)` of a negative `y` inside a transformed distribution), so
/// the right value is `-inf`, "zero density". Every public `log_prob` goes
/// through this so that NaN never leaks out.
#[inline]
pub(crate) fn sanitize_log_prob<T: Real>(lp: T) -> T {
    if lp.is_nan_() || lp == T::infinity() {
        T::neg_infinity()
    } else {
        lp
    }
}
