//! The built-in targets of `vi` and `nuts`, chosen by name.

use normflow::bayes::{EightSchools, LogisticRegression, NealFunnel, Parametrization};
use normflow::train::LogDensity;
use normflow::train::targets::{Banana, Energy};

use crate::Result;

/// A target with the names of its coordinates.
pub struct Target {
    /// The density.
    pub density: Box<dyn LogDensity<f64> + Sync>,
    /// Column names of the draws.
    pub names: Vec<String>,
}

/// The target names `--target` accepts, each with a line of description.
pub const TARGETS: [(&str, &str); 9] = [
    ("u1", "Rezende & Mohamed's U1 (a ring with two lobes), 2-D"),
    ("u2", "U2 (a sine wave), confined, 2-D"),
    ("u3", "U3 (a split sine), confined, 2-D"),
    ("u4", "U4 (a sine with a step), confined, 2-D"),
    ("banana", "a sheared Gaussian, 2-D"),
    (
        "funnel",
        "Neal's funnel: v ~ N(0, 3²), x_i ~ N(0, e^v), any --dim ≥ 2 (default 10)",
    ),
    (
        "eight-schools",
        "the 8-schools model, centred (μ, log τ, θ₁…θ₈), 10-D",
    ),
    (
        "eight-schools-noncentered",
        "the 8-schools model, non-centred (μ, log τ, θ̃₁…θ̃₈), 10-D",
    ),
    (
        "logistic",
        "logistic regression of O-ring distress on launch temperature (α, β), 2-D",
    ),
];

/// Builds the target `name`; `dim` is required to match a fixed-dimension
/// target and sets the funnel's dimension.
pub fn target(name: &str, dim: Option<usize>) -> Result<Target> {
    let numbered = |prefix: &str, d: usize| (1..=d).map(|i| format!("{prefix}{i}")).collect();
    let (density, names): (Box<dyn LogDensity<f64> + Sync>, Vec<String>) = match name {
        "u1" | "u2" | "u3" | "u4" => {
            let e = match name {
                "u1" => Energy::U1,
                "u2" => Energy::U2,
                "u3" => Energy::U3,
                _ => Energy::U4,
            };
            (Box::new(e), numbered("z", 2))
        }
        "banana" => (Box::new(Banana::default()), numbered("x", 2)),
        "funnel" => {
            let d = dim.unwrap_or(10);
            let f = NealFunnel::new(d).map_err(|e| format!("--dim: {e}"))?;
            let mut names = vec!["v".to_string()];
            names.extend(numbered("x", d - 1));
            return Ok(Target {
                density: Box::new(f),
                names,
            });
        }
        "eight-schools" | "eight-schools-noncentered" => {
            let (p, theta) = if name == "eight-schools" {
                (Parametrization::Centered, "theta")
            } else {
                (Parametrization::NonCentered, "theta_tilde")
            };
            let mut names = vec!["mu".to_string(), "log_tau".to_string()];
            names.extend(numbered(theta, 8));
            (Box::new(EightSchools { parametrization: p }), names)
        }
        "logistic" => (
            Box::new(LogisticRegression::challenger()),
            vec!["alpha".to_string(), "beta".to_string()],
        ),
        _ => {
            let names: Vec<String> = TARGETS
                .iter()
                .map(|(n, d)| format!("  {n:<26} {d}"))
                .collect();
            return Err(format!(
                "unknown --target `{name}`; expected one of:\n{}",
                names.join("\n")
            ));
        }
    };
    if let Some(d) = dim.filter(|d| *d != density.dim()) {
        return Err(format!(
            "--dim {d}: the target `{name}` is {}-dimensional (only `funnel` takes a --dim)",
            density.dim()
        ));
    }
    Ok(Target { density, names })
}
