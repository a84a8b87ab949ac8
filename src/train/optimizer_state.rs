//! An optimiser as the fitting loop keeps it across a checkpoint: the field
//! of the checkpoint that holds its state, and the checks of a state read
//! back from a file.
//!
//! The trainer is generic over [`FitOptimizer`]; [`Adam`] keeps the field
//! `adam` of the checkpoint format of earlier versions, [`Sgd`] writes the
//! field `sgd`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::validate::num;
use super::{Adam, Optimizer, Sgd};

/// What a checkpoint's check of an optimiser field says is wrong: the field
/// inside the optimiser's state (`"v[3]"`) and the reason.
pub(crate) type StateError = (String, String);

/// An optimiser the fitting loop can run and checkpoint.
pub(crate) trait FitOptimizer: Optimizer + Serialize + DeserializeOwned {
    /// The checkpoint's field that holds the state (`"adam"`).
    const FIELD: &'static str;
    /// What the field holds, for messages (`"an Adam optimiser state"`).
    const EXPECTED: &'static str;
    /// The optimiser's name in messages (`"Adam"`).
    const NAME: &'static str;

    /// Checks a state read from a file for `num_params` parameters after
    /// `steps` steps; the error names the field (`"v[3]"`) and says what is
    /// wrong.
    fn check_state(&self, num_params: usize, steps: u64) -> Result<(), StateError>;
}

/// The optimisers a checkpoint may hold: their field and name.
pub(crate) const KNOWN: [(&str, &str); 2] = [(Adam::FIELD, Adam::NAME), (Sgd::FIELD, Sgd::NAME)];

fn bad(field: &str, reason: String) -> Result<(), StateError> {
    Err((field.to_string(), reason))
}

/// A finite positive learning rate and a finite non-negative weight decay.
fn check_rates(learning_rate: f64, weight_decay: f64) -> Result<(), StateError> {
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return bad(
            "learning_rate",
            format!(
                "is {}, expected a finite positive number",
                num(learning_rate)
            ),
        );
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return bad(
            "weight_decay",
            format!("is {}, expected a finite number ≥ 0", num(weight_decay)),
        );
    }
    Ok(())
}

/// A per-parameter buffer's length: `num_params` entries, or none when
/// `fresh` (before the first step).
fn check_len(name: &str, values: &[f64], num_params: usize, fresh: bool) -> Result<(), StateError> {
    if values.len() != num_params && !(fresh && values.is_empty()) {
        return bad(
            name,
            format!(
                "has {} entries, expected {num_params} (one per parameter)",
                values.len()
            ),
        );
    }
    Ok(())
}

/// A per-parameter buffer's values: finite (and `≥ 0` when `non_negative`).
fn check_values(name: &str, values: &[f64], non_negative: bool) -> Result<(), StateError> {
    for (i, x) in values.iter().enumerate() {
        if !x.is_finite() || (non_negative && *x < 0.0) {
            let expected = if non_negative {
                "a finite number ≥ 0"
            } else {
                "a finite number"
            };
            return bad(
                &format!("{name}[{i}]"),
                format!("is {}, expected {expected}", num(*x)),
            );
        }
    }
    Ok(())
}

impl FitOptimizer for Adam {
    const FIELD: &'static str = "adam";
    const EXPECTED: &'static str = "an Adam optimiser state";
    const NAME: &'static str = "Adam";

    /// Hyperparameters in range (`0 ≤ β < 1`, `ε > 0`, a finite positive
    /// learning rate, a finite non-negative weight decay), the step counter
    /// equal to `steps`, the moments of length `num_params` (or empty before
    /// the first step), finite, and second moments `≥ 0`.
    fn check_state(&self, num_params: usize, steps: u64) -> Result<(), StateError> {
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(b.is_finite() && (0.0..1.0).contains(&b)) {
                return bad(name, format!("is {}, expected a number in [0, 1)", num(b)));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(
                "eps",
                format!("is {}, expected a finite positive number", num(self.eps)),
            );
        }
        check_rates(self.learning_rate, self.weight_decay)?;
        if self.steps() != steps {
            return bad(
                "t",
                format!(
                    "the optimiser has taken {} steps, but the report says {steps}",
                    self.steps()
                ),
            );
        }
        let (m, v) = self.moments();
        let fresh = self.steps() == 0;
        check_len("m", m, num_params, fresh)?;
        check_len("v", v, num_params, fresh)?;
        check_values("m", m, false)?;
        check_values("v", v, true)
    }
}

impl FitOptimizer for Sgd {
    const FIELD: &'static str = "sgd";
    const EXPECTED: &'static str = "an SGD optimiser state";
    const NAME: &'static str = "SGD";

    /// A finite positive learning rate, a momentum in `[0, 1)`, a finite
    /// non-negative weight decay, and a momentum buffer of `num_params`
    /// finite entries (or none before the first step).
    fn check_state(&self, num_params: usize, steps: u64) -> Result<(), StateError> {
        check_rates(self.learning_rate, self.weight_decay)?;
        check_momentum(self.momentum).or_else(|reason| bad("momentum", reason))?;
        check_len("buf", self.buffer(), num_params, steps == 0)?;
        check_values("buf", self.buffer(), false)
    }
}

/// A momentum `μ` in `[0, 1)` (at 1 or above the heavy ball never slows
/// down); the error says what it is.
pub(crate) fn check_momentum(momentum: f64) -> Result<(), String> {
    if momentum.is_finite() && (0.0..1.0).contains(&momentum) {
        Ok(())
    } else {
        Err(format!("is {}, expected a number in [0, 1)", num(momentum)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<(), StateError>) -> String {
        r.unwrap_err().0
    }

    #[test]
    fn a_fresh_and_a_stepped_adam_pass() {
        let mut adam = Adam::new(1e-3);
        adam.check_state(3, 0).unwrap();
        adam.step(&mut [1.0_f64, 2.0, 3.0], &[0.1, 0.2, 0.3], 1e-3);
        adam.check_state(3, 1).unwrap();
        assert_eq!(field(adam.check_state(3, 2)), "t");
        assert_eq!(field(adam.check_state(4, 1)), "m");
    }

    #[test]
    fn adam_names_the_bad_field() {
        let mut adam = Adam::new(1e-3);
        adam.beta2 = 1.0;
        assert_eq!(field(adam.check_state(0, 0)), "beta2");
        let mut adam = Adam::new(1e-3);
        adam.eps = 0.0;
        assert_eq!(field(adam.check_state(0, 0)), "eps");
        let mut adam = Adam::new(1e-3);
        adam.weight_decay = -1.0;
        assert_eq!(field(adam.check_state(0, 0)), "weight_decay");
        let mut v = serde_json::to_value(Adam::new(1e-3)).unwrap();
        v["t"] = 1.into();
        v["m"] = serde_json::json!([0.5, f64::MAX]);
        v["v"] = serde_json::json!([0.5, -0.0001]);
        let adam: Adam = serde_json::from_value(v).unwrap();
        assert_eq!(field(adam.check_state(2, 1)), "v[1]");
    }

    #[test]
    fn sgd_checks_its_hyperparameters_and_buffer() {
        let mut sgd = Sgd::new(0.1, 0.9);
        sgd.check_state(2, 0).unwrap();
        // The buffer is sized by the first step; a run with steps has one.
        assert_eq!(field(sgd.check_state(2, 1)), "buf");
        sgd.step(&mut [1.0_f64, 2.0], &[0.5, 0.5], 0.1);
        sgd.check_state(2, 1).unwrap();
        assert_eq!(field(sgd.check_state(3, 1)), "buf");
        sgd.momentum = 1.0;
        assert_eq!(field(sgd.check_state(2, 1)), "momentum");
        let mut sgd = Sgd::new(f64::INFINITY, 0.0);
        assert_eq!(field(sgd.check_state(0, 0)), "learning_rate");
        sgd.learning_rate = 1.0;
        sgd.weight_decay = f64::NAN;
        assert_eq!(field(sgd.check_state(0, 0)), "weight_decay");
    }

    #[test]
    fn the_known_fields_are_distinct() {
        assert_ne!(KNOWN[0].0, KNOWN[1].0);
        assert_eq!(KNOWN[0], ("adam", "Adam"));
    }
}
