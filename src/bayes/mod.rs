//! The Bayesian workflow: posterior targets and convergence diagnostics of
//! MCMC draws (rank-normalised R̂ and bulk effective sample size).

mod convergence;
mod eight_schools;
mod funnel;
mod logistic_regression;

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
