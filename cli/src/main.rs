//! `normflow`: fit, evaluate, sample, plot, check and benchmark normalizing
//! flows from the command line, and a demo. See `docs/cli.md`.

mod bench;
mod check;
mod data_io;
mod demo;
mod plot;
mod progress;
mod vae;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use nalgebra::DMatrix;
use normflow::Real;
use normflow::data::Dataset;
use normflow::prelude::*;
use normflow::train::{FitOptions, FlowModel, Validation, fit_with_observer};
use rand::SeedableRng;
use rand::rngs::StdRng;

use data_io::{read_data, write_column, write_data};
use progress::FitProgress;

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

/// Arithmetic precision.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Dtype {
    F32,
    F64,
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
    },
    /// Draw samples from a model.
    Sample {
        /// The model.
        #[arg(long)]
        model: PathBuf,
        /// Number of samples.
        #[arg(short = 'n', long = "n")]
        n: usize,
        /// Output file (CSV or NPY).
        #[arg(long)]
        out: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
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

/// Every command fails with a one-line message.
pub(crate) type Result<T> = std::result::Result<T, String>;

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
        } => {
            refuse_existing(&out, force)?;
            let spec = FlowSpec::parse(&flow).map_err(|e| format!("invalid --flow:\n{e}"))?;
            let train = read_data(&data).map_err(|e| e.to_string())?;
            let validation = match (valid, valid_fraction) {
                (Some(p), _) => Validation::Data(read_data(&p).map_err(|e| e.to_string())?),
                (None, Some(f)) => Validation::Fraction(f),
                (None, None) => Validation::None,
            };
            let job = FitJob {
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
        } => {
            if let Some(o) = &out {
                refuse_existing(o, force)?;
            }
            let model = load_model(&model)?;
            let x = read_data(&data).map_err(|e| e.to_string())?;
            check_dim(&model, &x, &data)?;
            let lp: Vec<f64> = model.log_prob(&x).iter().copied().collect();
            let n = lp.len() as f64;
            let mean = lp.iter().sum::<f64>() / n;
            let var = lp.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            let se = (var / n).sqrt();
            match &out {
                Some(o) => write_column(o, &lp, "log_prob", force).map_err(|e| e.to_string())?,
                None if !json => {
                    for v in &lp {
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
        Command::Sample {
            model,
            n,
            out,
            seed,
            force,
        } => {
            refuse_existing(&out, force)?;
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

struct FitJob {
    spec: FlowSpec,
    train: DMatrix<f64>,
    validation: Validation<f64>,
    epochs: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
    patience: Option<usize>,
    standardize: bool,
    checkpoint: Option<PathBuf>,
    resume: Option<PathBuf>,
    out: PathBuf,
    json: bool,
}

impl FitJob {
    fn run<T: Real>(self) -> Result<()> {
        let dim = self.train.nrows();
        let cast = |m: &DMatrix<f64>| m.map(T::lit);
        let train = cast(&self.train);
        let validation = match &self.validation {
            Validation::None => Validation::None,
            Validation::Fraction(f) => Validation::Fraction(*f),
            Validation::Data(v) => {
                if v.nrows() != dim {
                    return Err(format!(
                        "the validation data has {} columns but the training data has {dim}",
                        v.nrows()
                    ));
                }
                Validation::Data(cast(v))
            }
        };
        let mut model =
            FlowModel::<T>::new(&self.spec, dim, self.seed).map_err(|e| e.to_string())?;
        let options = FitOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            seed: self.seed,
            validation,
            patience: self.patience,
            standardize: self.standardize,
            checkpoint: self.checkpoint.clone(),
            resume: self.resume.clone(),
            ..Default::default()
        };
        let mut progress = FitProgress::new(self.epochs);
        let start = Instant::now();
        let report = fit_with_observer(&mut model, &train, &options, &mut |e| progress.observe(e))
            .map_err(|e| e.to_string())?;
        progress.finish();
        let wall = start.elapsed().as_secs_f64();
        // Saved in f64 whatever the training precision.
        let saved = FlowModel::<f64>::from_json(&model.to_json()).map_err(|e| e.to_string())?;
        saved.save(&self.out).map_err(|e| e.to_string())?;
        let last = report.history.last();
        let train_nll = last.map(|r| r.train_nll);
        if self.json {
            let mut j = serde_json::json!({
                "epochs_run": report.epochs_run,
                "best_epoch": report.best_epoch,
                "train_nll": train_nll,
                "wall_s": wall,
                "interrupted": report.interrupted,
                "stopped_early": report.stopped_early,
                "model": self.out.display().to_string(),
            });
            if let Some(v) = report.best_valid_nll {
                j["valid_nll"] = serde_json::json!(v);
            }
            println!("{j}");
        } else {
            eprintln!(
                "{} after {} epochs ({:.1} s){}: train NLL {:.4}{}; model written to {}",
                if report.interrupted {
                    "stopped"
                } else {
                    "done"
                },
                report.epochs_run,
                wall,
                if report.stopped_early {
                    ", early stopping"
                } else {
                    ""
                },
                train_nll.unwrap_or(f64::NAN),
                report
                    .best_valid_nll
                    .map(|v| format!(", best validation NLL {v:.4} (epoch {})", report.best_epoch))
                    .unwrap_or_default(),
                self.out.display()
            );
        }
        Ok(())
    }
}
