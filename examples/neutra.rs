//! Plain NUTS against NeuTra (NUTS in the base space of a flow fitted by
//! variational inference) on Neal's funnel in 10 dimensions and on the
//! centred 8-schools model, three seeds each; prints the table of
//! docs/bayes.md.
//!
//! ```text
//! cargo run --release --example neutra
//! ```

use std::time::Instant;

use normflow::FlowSpec;
use normflow::bayes::{
    EightSchools, NealFunnel, NutsOptions, NutsResult, Parametrization, sample_neutra, sample_nuts,
};
use normflow::train::{FlowModel, LogDensity, VariationalOptions, fit_variational};

/// The flow fitted to each target, and the VI steps.
const FLOW: &str = "iaf(3, hidden = 32)";
const VI_STEPS: u64 = 12_000;
/// The acceptance rate both samplers tune their step to: 0.9, the usual
/// setting for hierarchical posteriors (PyMC and Stan users raise it from
/// the default 0.8 on funnels).
const TARGET_ACCEPT: f64 = 0.9;

fn row(target: &str, seed: u64, sampler: &str, r: &NutsResult, secs: f64, extra: &str) {
    println!(
        "| {target} | {seed} | {sampler} | {} | {} | {:.0} | {:.4} | {:.3} | {secs:.1} | {extra} |",
        r.divergences(),
        r.grad_evals(),
        r.summary.ess_bulk_min(),
        r.ess_per_grad_eval(),
        r.summary.rhat_max(),
    );
}

fn main() -> Result<(), normflow::Error> {
    let funnel = NealFunnel::new(10)?;
    let schools = EightSchools {
        parametrization: Parametrization::Centered,
    };
    let targets: [(&str, &(dyn LogDensity<f64> + Sync)); 2] = [
        ("funnel, D = 10", &funnel),
        ("8 schools, centred", &schools),
    ];
    println!(
        "4 chains × 1000 draws after 1000 warm-up iterations, target acceptance {TARGET_ACCEPT}; NeuTra's flow `{FLOW}` fitted by {VI_STEPS} VI steps of 256 draws."
    );
    println!();
    println!(
        "| target | seed | sampler | divergences | gradient evaluations | min bulk ESS | ESS per gradient | max R̂ | seconds | VI: Pareto k̂ |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for (name, target) in targets {
        for seed in 0..3 {
            let options = NutsOptions {
                seed,
                target_accept: TARGET_ACCEPT,
                ..NutsOptions::default()
            };
            let t = Instant::now();
            let plain = sample_nuts(target, &options)?;
            row(name, seed, "NUTS", &plain, t.elapsed().as_secs_f64(), "");

            let t = Instant::now();
            let spec = FlowSpec::parse(FLOW)?;
            let mut q = FlowModel::<f64>::new(&spec, target.dim(), seed)?;
            let vi = VariationalOptions {
                steps: VI_STEPS,
                seed,
                ..VariationalOptions::default()
            };
            let report = fit_variational(&mut q, target, &vi, &mut |_, _| true)?;
            let fit_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let neutra = sample_neutra(&q, target, &options)?;
            let k = report
                .diagnostics
                .map_or("—".to_string(), |d| format!("{:.2}", d.pareto_k));
            row(
                name,
                seed,
                "NeuTra",
                &neutra,
                t.elapsed().as_secs_f64(),
                &format!("{k} (fit {fit_secs:.1} s)"),
            );
            ratios.push((name, neutra.ess_per_grad_eval() / plain.ess_per_grad_eval()));
        }
    }
    println!();
    for (name, r) in ratios {
        println!("{name}: NeuTra's ESS per gradient evaluation is {r:.1}× plain NUTS's");
    }
    Ok(())
}
