use serde::{Deserialize, Serialize};

use crate::Real;

/// The nonlinearity between the layers of a conditioner network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `x` for `x > 0`, `exp(x) − 1` otherwise.
    Elu,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply<T: Real>(self, x: T) -> T {
        match self {
            Activation::Relu => {
                if x > T::zero() {
                    x
                } else {
                    T::zero()
                }
            }
            Activation::Tanh => x.tanh(),
            Activation::Elu => {
                if x > T::zero() {
                    x
                } else {
                    x.exp_m1()
                }
            }
        }
    }

    /// The derivative at the pre-activation `x`.
    #[inline]
    pub fn derivative<T: Real>(self, x: T) -> T {
        match self {
            Activation::Relu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Tanh => {
                let t = x.tanh();
                T::one() - t * t
            }
            Activation::Elu => {
                if x > T::zero() {
                    T::one()
                } else {
                    x.exp()
                }
            }
        }
    }

    /// The lowercase name used by the flow DSL (`relu`, `tanh`, `elu`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Elu => "elu",
        }
    }

    /// Parses a DSL name; `None` if unknown.
    pub fn from_name(name: &str) -> Option<Activation> {
        match name {
            "relu" => Some(Activation::Relu),
            "tanh" => Some(Activation::Tanh),
            "elu" => Some(Activation::Elu),
            _ => None,
        }
    }
}
