use serde::{Deserialize, Serialize};

use super::Activation;
use crate::Error;
use crate::error::check;

/// The shape and initialisation of a layer's conditioner network (MLP or MADE).
///
/// ```
/// use normflow::nn::{Activation, ConditionerConfig};
/// let cfg = ConditionerConfig { hidden: 32, activation: Activation::Tanh, ..Default::default() };
/// assert_eq!(cfg.depth, 2);
/// assert!(cfg.identity_init);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionerConfig {
    /// Width of every hidden layer (default 64).
    pub hidden: usize,
    /// Number of hidden layers (default 2); for a residual conditioner, the
    /// number of residual blocks (two layers each).
    pub depth: usize,
    /// Nonlinearity between layers (default ReLU).
    pub activation: Activation,
    /// Whether the last layer starts at zero, so that a fresh layer is exactly
    /// the identity map (the Glow/nflows convention; default `true`). With
    /// `false`, every layer gets the standard random initialisation.
    pub identity_init: bool,
    /// Whether the network is made of residual blocks (the `ResidualNet` and
    /// residual MADE of nflows; see [`Mlp`](super::Mlp)) instead of a plain
    /// stack of layers (default `false`).
    #[serde(default)]
    pub residual: bool,
}

impl Default for ConditionerConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            depth: 2,
            activation: Activation::Relu,
            identity_init: true,
            residual: false,
        }
    }
}

impl ConditionerConfig {
    /// Checks `hidden ≥ 1` (depth 0 is allowed for a plain network: a single,
    /// linear layer; a residual network needs at least one block).
    pub fn validate(&self, context: &str) -> Result<(), Error> {
        check::dim_at_least_one(context, "hidden", self.hidden)?;
        if self.residual {
            check::dim_at_least_one(context, "depth (residual blocks)", self.depth)?;
        }
        Ok(())
    }
}
