//! The subcommands of the `normflow` command-line tool as a library: the
//! binary (`src/main.rs`) parses the command line and calls into these
//! modules, and the examples (`cargo run --release -p normflow-cli --example
//! vae`) call them directly. See `docs/cli.md`.

pub mod bench;
pub mod check;
pub mod conditional;
pub mod data_io;
pub mod demo;
pub mod eval;
pub mod fit;
pub mod models;
pub mod nuts;
pub mod output;
pub mod plot;
pub mod progress;
pub mod rows;
pub mod sample;
pub mod signals;
pub mod stdio;
pub mod targets;
pub mod vae;
pub mod vi;

/// What a subcommand returns: the error is the one-line message printed
/// before the tool exits with status 1.
pub type Result<T> = std::result::Result<T, String>;

/// Arithmetic precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}
