//! `normflow`: fit, evaluate, sample, plot, check and benchmark normalizing
//! flows from the command line, and a demo. See `docs/cli.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nalgebra::DMatrix;
use normflow::data::Dataset;
use normflow::prelude::*;
use normflow::train::{FlowModel, Validation};
use rand::SeedableRng;
use rand::rngs::StdRng;

use normflow_cli::data_io::{read_data, write_column, write_data};
use normflow_cli::{Dtype, Result, bench, check, conditional, demo, fit, plot, vae};

#[derive(Parser)]
#[command(
    name = "normflow",
    version,
    about = "Fit, evaluate, sample, plot, check and benchmark normalizing flows."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a flow to a data file (one row per sample) by maximum likelihood.
    Fit {
        /// Training data: CSV/TSV/TXT (header optional) or NPY.
        #[arg(long)]
        data: PathBuf,
        /// The flow, in the DSL, e.g. "maf(5, hidden = 128)".
        #[arg(long)]
        flow: String,
        /// Where to write the model (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Validation data file (for the history and early stopping).
        #[arg(long, conflicts_with = "valid_fraction")]
        valid: Option<PathBuf>,
        /// Hold out this fraction of the data for validation.
        #[arg(long)]
        valid_fraction: Option<f64>,
        /// Passes over the data.
        #[arg(long, default_value_t = 100)]
        epochs: usize,
        /// Samples per step.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Adam's learning rate.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Seed of initialisation, shuffling and the validation split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop after this many epochs without validation improvement.
        #[arg(long)]
        patience: Option<usize>,
        /// Standardise the data (folded into the saved model).
        #[arg(long)]
        standardize: bool,
        /// Write a checkpoint after every epoch.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Resume from a checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Arithmetic precision of training.
        #[arg(long, value_enum, default_value = "f64")]
        dtype: Dtype,
        /// Print a JSON summary on stdout.
        #[arg(long)]
        json: bool,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
        /// Fit p(x | c): the last K columns of every data file are the context.
        #[arg(long, value_name = "K", conflicts_with = "context")]
        context_columns: Option<usize>,
        /// Fit p(x | c) with the contexts in this file (one row per data row).
        #[arg(long, value_name = "FILE")]
        context: Option<PathBuf>,
        /// The contexts of the --valid file (with --context).
        #[arg(long, value_name = "FILE", requires = "context")]
        valid_context: Option<PathBuf>,
    },
    /// Log-density of every row of a data file under a model.
    Eval {
        /// The model (JSON written by `fit`).
        #[arg(long)]
        model: PathBuf,
        /// The data file.
        #[arg(long)]
        data: PathBuf,
        /// Write the per-row log-densities to this file (else stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print a JSON summary on stdout.
        #[arg(long)]
        json: bool,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
        /// For a conditional model: the last K columns of the data are the context.
        #[arg(long, value_name = "K", conflicts_with = "context")]
        context_columns: Option<usize>,
        /// For a conditional model: the contexts, one row per data row.
        #[arg(long, value_name = "FILE")]
        context: Option<PathBuf>,
    },
    /// Draw samples from a model.
    Sample {
        /// The model.
        #[arg(long)]
        model: PathBuf,
        /// Number of samples (for a conditional model: per context row, default 1).
        #[arg(short = 'n', long = "n")]
        n: Option<usize>,
        /// Output file (CSV or NPY).
        #[arg(long)]
        out: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
        /// For a conditional model: draw for every row of this context file.
        #[arg(long, value_name = "FILE")]
        context: Option<PathBuf>,
    },
    /// Build a flow with random parameters and run the verification kit on it.
    Check {
        /// The flow, in the DSL.
        #[arg(long)]
        flow: String,
        /// Data dimension.
        #[arg(long)]
        dim: usize,
        /// Seed of parameters and test points.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Draw a model as a PNG: a density heat map for a 2-D model, a corner
    /// plot of model samples against the data otherwise.
    Plot {
        /// The model (JSON written by `fit`).
        #[arg(long)]
        model: PathBuf,
        /// Data to draw over the density (2-D) or beside the samples.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The picture to write (.png).
        #[arg(long)]
        out: PathBuf,
        /// Width in pixels.
        #[arg(long, default_value_t = 600)]
        width: u32,
        /// Height in pixels.
        #[arg(long, default_value_t = 500)]
        height: u32,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Fit a flow to two moons and write the model and three pictures.
    Demo {
        /// Output folder (created if missing; must be empty unless --force).
        #[arg(long, default_value = "normflow-demo")]
        out: PathBuf,
        /// Write into a non-empty folder, replacing files of the same names.
        #[arg(long)]
        force: bool,
        /// Seed of the data, the initialisation and the shuffling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Passes over the training data.
        #[arg(long, default_value_t = demo::EPOCHS)]
        epochs: usize,
    },
    /// Train a variational autoencoder on the 8×8 digits; report the test
    /// ELBO and log-likelihood and write three pictures.
    Vae {
        /// Output folder (created if missing; must be empty unless --force).
        #[arg(long, default_value = "normflow-vae")]
        out: PathBuf,
        /// Write into a non-empty folder, replacing files of the same names.
        #[arg(long)]
        force: bool,
        /// Passes over the training images.
        #[arg(long, default_value_t = vae::EPOCHS)]
        epochs: usize,
        /// Seed of the initialisation, the shuffling and the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Latent dimension.
        #[arg(long, default_value_t = vae::LATENT)]
        latent: usize,
    },
    /// Time one operation of a flow on random standard-normal data.
    Bench {
        /// The flow, in the DSL.
        #[arg(long)]
        flow: String,
        /// Data dimension.
        #[arg(long)]
        dim: usize,
        /// Samples per call.
        #[arg(long)]
        batch: usize,
        /// The operation to time.
        #[arg(long, value_enum)]
        op: bench::Op,
        /// Arithmetic precision.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: Dtype,
        /// Timed calls.
        #[arg(long, default_value_t = 30)]
        repeat: usize,
        /// Untimed calls before timing.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Seed of parameters and data.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the built-in toy data sets, or write one to a file.
    Datasets {
        /// The data set to write (omit to list them).
        name: Option<String>,
        /// Number of samples.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file (CSV or NPY).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand; every failure is a one-line message.
fn run(command: Command) -> Result<()> {
    match command {
        Command::Fit {
            data,
            flow,
            out,
            valid,
            valid_fraction,
            epochs,
            batch_size,
            lr,
            seed,
            patience,
            standardize,
            checkpoint,
            resume,
            dtype,
            json,
            force,
            context_columns,
            context,
            valid_context,
        } => {
            refuse_existing(&out, force)?;
            let spec = FlowSpec::parse(&flow).map_err(|e| format!("invalid --flow:\n{e}"))?;
            if valid_context.is_some() && valid.is_none() {
                return Err("--valid-context needs --valid FILE".into());
            }
            let source = conditional::ContextSource::from_flags(context_columns, context)?;
            let train = read_data(&data).map_err(|e| e.to_string())?;
            if let Some(source) = source {
                let (train, train_c) = source.split(train, &data)?;
                let validation = match (&valid, valid_fraction) {
                    (Some(p), _) => {
                        let v = read_data(p).map_err(|e| e.to_string())?;
                        let (v, vc) = match (&source, &valid_context) {
                            (conditional::ContextSource::File(_), None) => {
                                return Err("--valid with --context needs --valid-context FILE (the validation contexts)".into());
                            }
                            (conditional::ContextSource::File(_), Some(f)) => {
                                conditional::ContextSource::File(f.clone()).split(v, p)?
                            }
                            (columns, _) => columns.split(v, p)?,
                        };
                        conditional::ValidationPairs::Data(v, vc)
                    }
                    (None, Some(f)) => conditional::ValidationPairs::Fraction(f),
                    (None, None) => conditional::ValidationPairs::None,
                };
                let job = conditional::FitJob {
                    spec,
                    train,
                    train_c,
                    validation,
                    epochs,
                    batch_size,
                    lr,
                    seed,
                    patience,
                    standardize,
                    checkpoint,
                    resume,
                    out,
                    json,
                };
                return match dtype {
                    Dtype::F64 => job.run::<f64>(),
                    Dtype::F32 => job.run::<f32>(),
                };
            }
            let validation = match (valid, valid_fraction) {
                (Some(p), _) => Validation::Data(read_data(&p).map_err(|e| e.to_string())?),
                (None, Some(f)) => Validation::Fraction(f),
                (None, None) => Validation::None,
            };
            let job = fit::FitJob {
                spec,
                train,
                validation,
                epochs,
                batch_size,
                lr,
                seed,
                patience,
                standardize,
                checkpoint,
                resume,
                out,
                json,
            };
            match dtype {
                Dtype::F64 => job.run::<f64>(),
                Dtype::F32 => job.run::<f32>(),
            }
        }
        Command::Eval {
            model,
            data,
            out,
            json,
            force,
            context_columns,
            context,
        } => {
            if let Some(o) = &out {
                refuse_existing(o, force)?;
            }
            let source = conditional::ContextSource::from_flags(context_columns, context)?;
            if conditional::is_conditional(&model)? {
                let lp = conditional::eval(&model, &data, source)?;
                return report_log_probs(&lp, out.as_deref(), json, force);
            }
            if source.is_some() {
                return Err(format!(
                    "{}: the model takes no context; drop --context/--context-columns",
                    model.display()
                ));
            }
            let model = load_model(&model)?;
            let x = read_data(&data).map_err(|e| e.to_string())?;
            check_dim(&model, &x, &data)?;
            let lp: Vec<f64> = model.log_prob(&x).iter().copied().collect();
            report_log_probs(&lp, out.as_deref(), json, force)
        }
        Command::Sample {
            model,
            n,
            out,
            seed,
            force,
            context,
        } => {
            refuse_existing(&out, force)?;
            if conditional::is_conditional(&model)? {
                let context = context.ok_or_else(|| {
                    format!(
                        "{} is a conditional model: give the contexts with --context FILE (one sample per row, or -n per row)",
                        model.display()
                    )
                })?;
                return conditional::sample(&model, &context, n.unwrap_or(1), seed, &out, force);
            }
            if context.is_some() {
                return Err(format!(
                    "{}: the model takes no context; drop --context",
                    model.display()
                ));
            }
            let n = n.ok_or("sampling needs -n N")?;
            let model = load_model(&model)?;
            let x = model.sample(n, &mut StdRng::seed_from_u64(seed));
            write_data(&out, &x, None, force).map_err(|e| e.to_string())?;
            eprintln!("wrote {n} samples to {}", out.display());
            Ok(())
        }
        Command::Check { flow, dim, seed } => check::run(&flow, dim, seed),
        Command::Plot {
            model,
            data,
            out,
            width,
            height,
            force,
        } => {
            refuse_existing(&out, force)?;
            let size = plot::Size { width, height }.validate()?;
            let path = model;
            let model = load_model(&path)?;
            let data = match &data {
                Some(p) => {
                    let x = read_data(p).map_err(|e| e.to_string())?;
                    check_dim(&model, &x, p)?;
                    Some(x)
                }
                None => None,
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let title = match (model.dim(), data.is_some()) {
                (2, _) => format!("density of {name}"),
                (_, true) => format!("{name}: model samples and data"),
                (_, false) => format!("{name}: model samples"),
            };
            plot::model_png(&out, &model, data.as_ref(), size, &title)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::Demo {
            out,
            force,
            seed,
            epochs,
        } => demo::run(&out, force, seed, epochs),
        Command::Vae {
            out,
            force,
            epochs,
            seed,
            latent,
        } => vae::run(&vae::VaeArgs {
            out,
            force,
            epochs,
            seed,
            latent,
        }),
        Command::Bench {
            flow,
            dim,
            batch,
            op,
            dtype,
            repeat,
            warmup,
            seed,
            json,
        } => bench::run(&bench::BenchArgs {
            flow,
            dim,
            batch,
            op,
            dtype,
            repeat,
            warmup,
            seed,
            json,
        }),
        Command::Datasets {
            name,
            n,
            seed,
            out,
            force,
        } => match name {
            None => {
                for d in Dataset::ALL {
                    println!("{:<14} {}", d.name(), d.description());
                }
                Ok(())
            }
            Some(name) => {
                let set = Dataset::from_name(&name).ok_or_else(|| {
                    let names: Vec<&str> = Dataset::ALL.iter().map(|d| d.name()).collect();
                    format!(
                        "unknown data set `{name}`; expected one of {}",
                        names.join(", ")
                    )
                })?;
                let out = out.ok_or("writing a data set needs --out FILE")?;
                refuse_existing(&out, force)?;
                let x = set.generate(n, &mut StdRng::seed_from_u64(seed));
                write_data(&out, &x, Some(&["x".to_string(), "y".to_string()]), force)
                    .map_err(|e| e.to_string())?;
                eprintln!("wrote {n} samples of {} to {}", set.name(), out.display());
                Ok(())
            }
        },
    }
}

fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        ));
    }
    Ok(())
}

/// Writes (or prints) per-row log-densities, and their mean with its
/// standard error.
fn report_log_probs(lp: &[f64], out: Option<&Path>, json: bool, force: bool) -> Result<()> {
    let n = lp.len() as f64;
    let mean = lp.iter().sum::<f64>() / n;
    let var = lp.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let se = (var / n).sqrt();
    match out {
        Some(o) => write_column(o, lp, "log_prob", force).map_err(|e| e.to_string())?,
        None if !json => {
            for v in lp {
                println!("{v}");
            }
        }
        None => {}
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"n": lp.len(), "mean_log_prob": mean, "std_error": se})
        );
    } else {
        eprintln!(
            "mean log-density {mean:.6} ± {se:.6} (standard error) over {} rows",
            lp.len()
        );
    }
    Ok(())
}

fn load_model(path: &Path) -> Result<FlowModel<f64>> {
    FlowModel::<f64>::load(path).map_err(|e| e.to_string())
}

fn check_dim(model: &FlowModel<f64>, x: &DMatrix<f64>, path: &Path) -> Result<()> {
    if x.nrows() != model.dim() {
        return Err(format!(
            "{}: the data has {} columns but the model is {}-dimensional",
            path.display(),
            x.nrows(),
            model.dim()
        ));
    }
    Ok(())
}
