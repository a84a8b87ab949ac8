//! A variational auto-encoder on scikit-learn's 8×8 digits, trained twice
//! with the same encoder, decoder, budget and seed: with a diagonal-Gaussian
//! posterior, and with that Gaussian followed by conditional IAF steps that
//! read an encoder output (Kingma et al. 2016). Prints the test ELBO and the
//! importance-sampled log-likelihood of both and the IAF's improvement, and
//! writes `reconstructions.png`, `samples.png` and `elbo.png`.
//!
//! ```sh
//! cargo run --release -p normflow-cli --example vae            # into normflow-vae/
//! cargo run --release -p normflow-cli --example vae -- --force # overwrite it
//! ```
//!
//! The same run as `normflow vae` (see docs/vae.md for the model, the data
//! and the measured numbers).

use std::process::ExitCode;

use normflow_cli::vae::{EPOCHS, LATENT, VaeArgs, run};

fn main() -> ExitCode {
    let force = std::env::args().skip(1).any(|a| a == "--force");
    let args = VaeArgs {
        out: "normflow-vae".into(),
        force,
        epochs: EPOCHS,
        seed: 0,
        latent: LATENT,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
