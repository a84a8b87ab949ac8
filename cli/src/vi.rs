//! `vi`: fits a flow to a built-in target by variational inference (reverse
//! KL), prints how far to trust the fit and saves the model.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use normflow::FlowSpec;
use normflow::train::{FlowModel, VariationalDiagnostics, VariationalOptions, fit_variational};

use crate::fit::Outcome;
use crate::output::Output;
use crate::targets::target;
use crate::{Result, errln, outln, signals};

/// The arguments of `vi`.
#[derive(clap::Args, Debug)]
pub struct ViArgs {
    /// The target: u1, u2, u3, u4, banana, funnel, eight-schools,
    /// eight-schools-noncentered or logistic (see docs/bayes.md).
    #[arg(long)]
    pub target: String,
    /// The dimension of `funnel` (default 10); must match the others.
    #[arg(long)]
    pub dim: Option<usize>,
    /// The flow, in the DSL; its forward (sampling) direction must be
    /// differentiable, e.g. "realnvp(4, hidden = 32)" or "iaf(4)".
    #[arg(long)]
    pub flow: String,
    /// Where to write the fitted model (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Gradient steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Draws of the flow per step.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true)]
    pub lr: f64,
    /// Draws of the fitted flow for the importance-sampling diagnostics.
    #[arg(long, default_value_t = 1000)]
    pub diagnostic_draws: usize,
    /// Seed of the initialisation and the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `vi`.
pub fn run(args: &ViArgs) -> Result<Outcome> {
    let out = Output::check(&args.out, args.force, &[])?;
    let target = target(&args.target, args.dim)?;
    let dim = target.density.dim();
    let spec = FlowSpec::parse(&args.flow).map_err(|e| format!("invalid --flow:\n{e}"))?;
    if args.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    if args.diagnostic_draws == 1 {
        return Err("--diagnostic-draws must be 0 (none) or at least 2".into());
    }
    let mut q = FlowModel::<f64>::new(&spec, dim, args.seed).map_err(|e| e.to_string())?;
    let options = VariationalOptions {
        batch_size: args.batch_size,
        steps: args.steps,
        learning_rate: args.lr,
        seed: args.seed,
        diagnostic_draws: args.diagnostic_draws,
        ..VariationalOptions::default()
    };
    signals::install();
    let graceful = signals::Graceful::enter();
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(args.steps);
        b.set_style(
            ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed} < {eta}]")
                .expect("a valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let result = fit_variational(&mut q, &*target.density, &options, &mut |step, elbo| {
        bar.set_position(step);
        bar.set_message(format!("elbo {elbo:.4}"));
        !signals::interrupted()
    });
    bar.finish_and_clear();
    drop(graceful);
    let report = result.map_err(|e| {
        let msg = e.to_string();
        if msg.contains("not supported") {
            format!(
                "{msg}\n(nothing was written; fit a flow whose sampling direction is differentiable: couplings, iaf, planar, radial, sylvester)"
            )
        } else if matches!(e, normflow::Error::Training { .. }) {
            format!("{msg}\n(nothing was written; a smaller --lr or --batch-size may help)")
        } else {
            // A setting was refused before any step.
            format!("{msg} (nothing was written)")
        }
    })?;
    out.write_bytes(q.to_json().as_bytes())?;
    // The ELBO of the last steps' batches, less noisy than the last one.
    let tail = &report.elbo_history[report.elbo_history.len().saturating_sub(100)..];
    let elbo = tail.iter().sum::<f64>() / tail.len() as f64;
    print_summary(args, elbo, report.steps, report.diagnostics.as_ref(), &out);
    if report.interrupted {
        errln!(
            "interrupted after {} steps; the model so far was saved",
            report.steps
        );
        return Ok(Outcome::Interrupted);
    }
    Ok(Outcome::Done)
}

fn print_summary(
    args: &ViArgs,
    elbo: f64,
    steps: u64,
    diagnostics: Option<&VariationalDiagnostics>,
    out: &Output,
) {
    if args.json {
        let d = diagnostics;
        // serde_json writes a non-finite number as null.
        let j = serde_json::json!({
            "target": args.target,
            "steps": steps,
            "elbo": elbo,
            "log_z": d.map(|d| d.log_z),
            "log_z_se": d.map(|d| d.log_z_se),
            "ess": d.map(|d| d.ess),
            "draws": d.map(|d| d.draws),
            "pareto_k": d.map(|d| d.pareto_k),
            "out": out.path().display().to_string(),
        });
        outln!("{j}");
        return;
    }
    outln!("ELBO (mean of the last steps)  {elbo:.4}");
    match diagnostics {
        Some(d) => {
            outln!(
                "log Z (importance sampling)    {:.4} ± {:.4}",
                d.log_z,
                d.log_z_se
            );
            outln!(
                "effective sample size         {:.1} of {} draws",
                d.ess,
                d.draws
            );
            let k = if d.pareto_k.is_finite() {
                format!("{:.3}", d.pareto_k)
            } else {
                "∞".to_string()
            };
            outln!("Pareto k̂                      {k} ({})", d.verdict());
        }
        None => outln!(
            "(no importance-sampling diagnostics: --diagnostic-draws 0, or a draw's weight was not finite)"
        ),
    }
    errln!("wrote {}", out.path().display());
}
