//! `normflow`: fit, evaluate, sample, plot, check and benchmark normalizing
//! flows from the command line, and a demo. See `docs/cli.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use normflow::data::Dataset;
use normflow::prelude::*;
use normflow::train::Validation;
use rand::SeedableRng;
use rand::rngs::StdRng;

use normflow_cli::data_io::read_data;
use normflow_cli::fit::Outcome;
use normflow_cli::output::Output;
use normflow_cli::rows::{RowFormat, write_all_rows};
use normflow_cli::{
    Dtype, Result, bench, check, conditional, demo, errln, eval, fit, models, nuts, outln, plot,
    sample, signals, vae, vi,
};

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
        /// Hold out this fraction of the data for validation and keep the best
        /// epoch [default: 0.1 from 20 rows on; 0 trains on every row and keeps the last epoch].
        #[arg(long, allow_hyphen_values = true)]
        valid_fraction: Option<f64>,
        /// Passes over the data.
        #[arg(long, default_value_t = 100)]
        epochs: usize,
        /// Samples per step.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Adam's learning rate.
        #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true)]
        lr: f64,
        /// The optimiser.
        #[arg(long, value_enum, default_value = "adam")]
        optimizer: fit::OptimizerFlag,
        /// Momentum of `--optimizer sgd`, in [0, 1).
        #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
        momentum: f64,
        /// Decoupled weight decay (AdamW with Adam).
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        weight_decay: f64,
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
        /// Arithmetic precision of training (the model file holds f64 numbers either way).
        #[arg(long, value_enum, default_value = "f32")]
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
    /// Fit a flow to a built-in target by variational inference, print the
    /// importance-sampling diagnostics and save the model.
    Vi(vi::ViArgs),
    /// Sample a built-in target with NUTS, preconditioned by a flow fitted
    /// by `vi` (NeuTra) or plain, and print per-chain diagnostics.
    Nuts(nuts::NutsArgs),
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
    signals::install();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Interrupted) => ExitCode::from(signals::INTERRUPTED_STATUS),
        Err(msg) => {
            errln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand; every failure is a one-line message.
fn run(command: Command) -> Result<Outcome> {
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
            optimizer,
            momentum,
            weight_decay,
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
            let optimizer = fit::Optimizer::from_flags(optimizer, momentum, weight_decay)?;
            let inputs: Vec<&Path> = [
                Some(&data),
                valid.as_ref(),
                context.as_ref(),
                valid_context.as_ref(),
                resume.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect();
            let out = Output::check(&out, force, &inputs)?;
            if let Some(ck) = &checkpoint {
                if ck == out.path() {
                    return Err(format!(
                        "--checkpoint {} is the --out file; give the checkpoint its own name",
                        ck.display()
                    ));
                }
                Output::check(ck, force, &inputs)?;
            }
            if !(lr.is_finite() && lr > 0.0) {
                return Err(format!(
                    "--lr must be a finite positive learning rate, got {lr}"
                ));
            }
            if epochs == 0 {
                return Err("--epochs must be at least 1".into());
            }
            if batch_size == 0 {
                return Err("--batch-size must be at least 1".into());
            }
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
                    (None, f) => fit::valid_fraction(f, train.ncols()).map_or(
                        conditional::ValidationPairs::None,
                        conditional::ValidationPairs::Fraction,
                    ),
                };
                let job = conditional::FitJob {
                    spec,
                    train,
                    train_c,
                    validation,
                    epochs,
                    batch_size,
                    lr,
                    optimizer,
                    seed,
                    patience,
                    standardize,
                    checkpoint,
                    overwrite_checkpoint: force,
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
                (None, f) => fit::valid_fraction(f, train.ncols())
                    .map_or(Validation::None, Validation::Fraction),
            };
            let job = fit::FitJob {
                spec,
                train,
                validation,
                epochs,
                batch_size,
                lr,
                optimizer,
                seed,
                patience,
                standardize,
                checkpoint,
                overwrite_checkpoint: force,
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
            let context = conditional::ContextSource::from_flags(context_columns, context)?;
            eval::run(eval::EvalArgs {
                model,
                data,
                out,
                json,
                force,
                context,
            })?;
            Ok(Outcome::Done)
        }
        Command::Sample {
            model,
            n,
            out,
            seed,
            force,
            context,
        } => {
            sample::run(sample::SampleArgs {
                model,
                n,
                out,
                seed,
                force,
                context,
            })?;
            Ok(Outcome::Done)
        }
        Command::Check { flow, dim, seed } => check::run(&flow, dim, seed).map(|()| Outcome::Done),
        Command::Plot {
            model,
            data,
            out,
            width,
            height,
            force,
        } => {
            let inputs: Vec<&Path> = [Some(&model), data.as_ref()]
                .into_iter()
                .flatten()
                .map(PathBuf::as_path)
                .collect();
            let out = Output::check(&out, force, &inputs)?;
            let size = plot::Size { width, height }.validate()?;
            let path = model;
            if models::is_conditional(&path)? {
                return Err(format!(
                    "{}: is a conditional model p(x | c), and plot draws unconditional ones; draw samples at chosen contexts with `normflow sample --model {} --context FILE --out samples.csv` and plot those",
                    path.display(),
                    path.display()
                ));
            }
            let model = models::load(&path)?;
            let data = match &data {
                Some(p) => {
                    let x = read_data(p).map_err(|e| e.to_string())?;
                    models::check_dim(model.dim(), &x, p)?;
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
            errln!("wrote {}", out.path().display());
            Ok(Outcome::Done)
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
        })
        .map(|()| Outcome::Done),
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
        })
        .map(|()| Outcome::Done),
        Command::Vi(args) => vi::run(&args),
        Command::Nuts(args) => nuts::run(&args).map(|()| Outcome::Done),
        Command::Datasets {
            name,
            n,
            seed,
            out,
            force,
        } => match name {
            None => {
                for d in Dataset::ALL {
                    outln!("{:<14} {}", d.name(), d.description());
                }
                Ok(Outcome::Done)
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
                let out = Output::check(&out, force, &[])?;
                let format = RowFormat::of_output(&out)?;
                // Generated whole (16 bytes a sample), so bounded well below memory.
                const MAX_DATASET: usize = 10_000_000;
                if n == 0 || n > MAX_DATASET {
                    return Err(format!("--n must be between 1 and {MAX_DATASET}, got {n}"));
                }
                let x = set.generate(n, &mut StdRng::seed_from_u64(seed));
                let header = ["x".to_string(), "y".to_string()];
                out.write(|w| write_all_rows(w, format, &x, Some(&header)))?;
                errln!(
                    "wrote {n} samples of {} to {}",
                    set.name(),
                    out.path().display()
                );
                Ok(Outcome::Done)
            }
        },
    }
}
