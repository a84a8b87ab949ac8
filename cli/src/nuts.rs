//! `nuts`: samples a built-in target with NUTS, preconditioned by a flow
//! fitted by `vi` (NeuTra) or plain, and prints per-chain diagnostics.

use std::path::PathBuf;

use nalgebra::DMatrix;
use normflow::bayes::{NutsOptions, NutsResult, sample_neutra, sample_nuts};
use normflow::distribution::Distribution;

use crate::output::Output;
use crate::rows::{RowFormat, write_all_rows};
use crate::targets::target;
use crate::{Result, errln, outln};

/// The most chains one call runs.
pub const MAX_CHAINS: usize = 64;
/// The most values (chains × draws × dimension) one call keeps.
pub const MAX_VALUES: u64 = 100_000_000;

/// The arguments of `nuts`.
#[derive(clap::Args, Debug)]
pub struct NutsArgs {
    /// The target, as for `vi`.
    #[arg(long)]
    pub target: String,
    /// The dimension of `funnel` (default 10); must match the others.
    #[arg(long)]
    pub dim: Option<usize>,
    /// A flow fitted to the target by `vi`: sample in its base space
    /// (NeuTra). Without it, plain NUTS.
    #[arg(long, value_name = "FILE")]
    pub flow_model: Option<PathBuf>,
    /// Independent chains.
    #[arg(long, default_value_t = 4)]
    pub chains: usize,
    /// Warm-up iterations per chain (discarded).
    #[arg(long, default_value_t = 1000)]
    pub tune: u64,
    /// Draws kept per chain.
    #[arg(long, default_value_t = 1000)]
    pub draws: u64,
    /// Largest tree depth (at most 2^depth − 1 leapfrog steps a draw).
    #[arg(long, default_value_t = 10)]
    pub max_depth: u64,
    /// The acceptance rate the step size is tuned to, in (0, 1).
    #[arg(long, default_value_t = 0.8, allow_hyphen_values = true)]
    pub target_accept: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the draws here (CSV or NPY): one row per draw, chain by chain,
    /// the chain's number first and then the target's coordinates.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `nuts`.
pub fn run(args: &NutsArgs) -> Result<()> {
    let inputs: Vec<&std::path::Path> = args.flow_model.iter().map(|p| p.as_path()).collect();
    let out = match &args.out {
        Some(p) => {
            let o = Output::check(p, args.force, &inputs)?;
            RowFormat::of_output(&o)?;
            Some(o)
        }
        None => None,
    };
    let target = target(&args.target, args.dim)?;
    let dim = target.density.dim();
    if args.chains == 0 || args.chains > MAX_CHAINS {
        return Err(format!(
            "--chains must be between 1 and {MAX_CHAINS}, got {}",
            args.chains
        ));
    }
    let values = (args.chains as u64)
        .saturating_mul(args.draws)
        .saturating_mul(dim as u64 + 1);
    if values > MAX_VALUES {
        return Err(format!(
            "--chains {} × --draws {} × {} columns is over the limit of {MAX_VALUES} values kept in memory; take fewer draws",
            args.chains,
            args.draws,
            dim + 1
        ));
    }
    if args.tune > 10_000_000 {
        return Err(format!(
            "--tune must be at most 10000000, got {}",
            args.tune
        ));
    }
    let options = NutsOptions {
        chains: args.chains,
        tune: args.tune,
        draws: args.draws,
        seed: args.seed,
        max_depth: args.max_depth,
        target_accept: args.target_accept,
    };
    let result = match &args.flow_model {
        Some(path) => {
            let q = crate::models::load(path)?;
            if Distribution::<f64>::dim(&q) != dim {
                return Err(format!(
                    "{}: the model is {}-dimensional but the target `{}` is {dim}-dimensional",
                    path.display(),
                    Distribution::<f64>::dim(&q),
                    args.target
                ));
            }
            sample_neutra(&q, &*target.density, &options)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => sample_nuts(&*target.density, &options).map_err(|e| e.to_string())?,
    };
    if let Some(out) = &out {
        write_draws(out, &result, &target.names)?;
    }
    print_table(args, &result);
    Ok(())
}

/// Writes every chain's draws, a `chain` column first.
fn write_draws(out: &Output, result: &NutsResult, names: &[String]) -> Result<()> {
    let d = names.len();
    let n: usize = result.draws.iter().map(|m| m.ncols()).sum();
    let mut rows = DMatrix::zeros(d + 1, n);
    let mut j = 0;
    for (k, chain) in result.draws.iter().enumerate() {
        for c in chain.column_iter() {
            rows[(0, j)] = k as f64;
            rows.view_mut((1, j), (d, 1)).copy_from(&c);
            j += 1;
        }
    }
    let mut header = vec!["chain".to_string()];
    header.extend_from_slice(names);
    let format = RowFormat::of_output(out)?;
    out.write(|w| write_all_rows(w, format, &rows, Some(&header)))?;
    errln!("wrote {n} draws to {}", out.path().display());
    Ok(())
}

fn print_table(args: &NutsArgs, r: &NutsResult) {
    let sampler = if args.flow_model.is_some() {
        "neutra"
    } else {
        "nuts"
    };
    if args.json {
        // serde_json writes a non-finite number as null.
        let chains: Vec<_> = r
            .chains
            .iter()
            .enumerate()
            .map(|(k, c)| {
                serde_json::json!({
                    "chain": k,
                    "divergences": c.divergences,
                    "grad_evals": c.grad_evals,
                    "tune_grad_evals": c.tune_grad_evals,
                    "step_size": c.step_size,
                    "ess_bulk_min": c.ess_bulk_min,
                    "rhat_max": c.rhat_max,
                })
            })
            .collect();
        let j = serde_json::json!({
            "target": args.target,
            "sampler": sampler,
            "chains": chains,
            "divergences": r.divergences(),
            "grad_evals": r.grad_evals(),
            "ess_bulk_min": r.summary.ess_bulk_min(),
            "rhat_max": r.summary.rhat_max(),
            "ess_per_grad_eval": r.ess_per_grad_eval(),
        });
        outln!("{j}");
        return;
    }
    outln!(
        "{sampler} on {}: {} chains × {} draws",
        args.target,
        r.chains.len(),
        args.draws
    );
    outln!(
        "{:<6} {:>11} {:>11} {:>10} {:>15} {:>9}",
        "chain",
        "divergences",
        "grad evals",
        "step size",
        "ESS bulk (min)",
        "R̂ (max)"
    );
    for (k, c) in r.chains.iter().enumerate() {
        outln!(
            "{k:<6} {:>11} {:>11} {:>10.4} {:>15.1} {:>8.4}",
            c.divergences,
            c.grad_evals,
            c.step_size,
            c.ess_bulk_min,
            c.rhat_max
        );
    }
    outln!(
        "{:<6} {:>11} {:>11} {:>10} {:>15.1} {:>8.4}",
        "all",
        r.divergences(),
        r.grad_evals(),
        "",
        r.summary.ess_bulk_min(),
        r.summary.rhat_max()
    );
    outln!(
        "bulk ESS per gradient evaluation (smallest over coordinates): {:.4}",
        r.ess_per_grad_eval()
    );
}
