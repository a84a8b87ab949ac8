//! The Bayesian workflow: posterior targets, NUTS on a target (plain, or
//! preconditioned by a fitted flow: NeuTra), and convergence diagnostics of
//! the draws (rank-normalised R̂ and bulk effective sample size).

mod convergence;
mod eight_schools;
mod funnel;
mod logistic_regression;
#[cfg(feature = "nuts")]
mod nuts;

#[cfg(feature = "nuts")]
pub use nuts::{ChainReport, NutsOptions, NutsResult, sample_neutra, sample_nuts};

pub use convergence::{
    ConvergenceSummary, ess_basic, ess_bulk, ess_tail, rank_normalize, rhat, rhat_basic,
    split_chains, summarize_draws,
};
pub use eight_schools::{EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, EightSchools, Parametrization};
pub use funnel::NealFunnel;
pub use logistic_regression::{
    CHALLENGER_TEMPERATURE_CENTER, CHALLENGER_TEMPERATURE_SCALE, ChallengerLaunch,
    LogisticRegression, challenger_launches,
};
