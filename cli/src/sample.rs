//! `sample`: draws samples chunk by chunk and writes each chunk as it is
//! drawn, so memory is bounded by the chunk and not by `-n`.
//!
//! Drawing in chunks from one generator gives the same samples as one draw
//! of all of them: the base draws its values in sample order, and every
//! layer of a saved model treats samples independently.

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use normflow::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::conditional;
use crate::output::Output;
use crate::rows::{RowFormat, RowWriter};
use crate::{Result, errln};

/// Samples drawn at a time.
pub const CHUNK: usize = 16_384;

/// The most samples one call writes (`sample -n`, or contexts × `-n`):
/// 10⁸ rows is gigabytes of output; write several files with different
/// seeds for more.
pub const MAX_SAMPLES: usize = 100_000_000;

/// The arguments of `sample`.
pub struct SampleArgs {
    /// The model file.
    pub model: PathBuf,
    /// Samples (per context row, for a conditional model).
    pub n: Option<usize>,
    /// The output file.
    pub out: PathBuf,
    /// Seed.
    pub seed: u64,
    /// Replace an existing output.
    pub force: bool,
    /// Contexts of a conditional model.
    pub context: Option<PathBuf>,
}

/// Runs `sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    let mut inputs: Vec<&Path> = vec![&args.model];
    if let Some(c) = &args.context {
        inputs.push(c);
    }
    let out = Output::check(&args.out, args.force, &inputs)?;
    RowFormat::of_output(&out)?;
    if let Some(0) = args.n {
        return Err("-n must be at least 1 (there is nothing to write for 0 samples)".into());
    }
    if crate::models::is_conditional(&args.model)? {
        let context = args.context.ok_or_else(|| {
            format!(
                "{} is a conditional model: give the contexts with --context FILE (one sample per row, or -n per row)",
                args.model.display()
            )
        })?;
        return conditional::sample(&args.model, &context, args.n.unwrap_or(1), args.seed, &out);
    }
    if args.context.is_some() {
        return Err(format!(
            "{}: the model takes no context; drop --context",
            args.model.display()
        ));
    }
    let n = args.n.ok_or("sampling needs -n N")?;
    if n > MAX_SAMPLES {
        return Err(format!(
            "-n {n} is over the limit of {MAX_SAMPLES} samples per call; write several files with different --seed values"
        ));
    }
    let model = crate::models::load(&args.model)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let chunk = crate::models::chunk_for(model.spec(), model.dim(), 0, CHUNK);
    write_samples(
        &out,
        n,
        model.dim(),
        |_, len| model.sample(len, &mut rng),
        chunk,
    )?;
    errln!("wrote {n} samples to {}", out.path().display());
    Ok(())
}

/// Writes `total` samples of dimension `dim` to `out`, drawing `chunk` at a
/// time with `draw(start, len)`. A chunk with a non-finite value stops the
/// write (nothing is left behind): a model whose parameters are out of range
/// can produce them, and NaN is never written.
pub fn write_samples(
    out: &Output,
    total: usize,
    dim: usize,
    mut draw: impl FnMut(usize, usize) -> DMatrix<f64>,
    chunk: usize,
) -> Result<()> {
    let format = RowFormat::of_output(out)?;
    let mut failure = None;
    out.write(|w| {
        let mut rows = RowWriter::begin(w, format, total, dim, None)?;
        let mut start = 0;
        while start < total {
            let len = chunk.min(total - start);
            let x = draw(start, len);
            if let Some(k) = x.iter().position(|v| !v.is_finite()) {
                let e = format!(
                    "{}: sample {}, column {} is not a finite number: the model's parameters are out of range; nothing was written",
                    out.path().display(),
                    start + k / dim + 1,
                    k % dim + 1
                );
                failure = Some(e.clone());
                return Err(std::io::Error::other(e));
            }
            rows.columns(&x)?;
            start += len;
        }
        rows.finish()
    })
    .map_err(|e| failure.unwrap_or(e))
}
