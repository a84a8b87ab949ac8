//! `eval`: the log-density of every row of a data file, evaluated in chunks
//! and written as it comes, with a summary that never prints NaN.

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use normflow::prelude::*;

use crate::conditional::{self, ContextSource};
use crate::data_io::read_data;
use crate::output::Output;
use crate::rows::{RowFormat, RowWriter};
use crate::{Result, errln, outln};

/// The most columns evaluated at a time (fewer for large flows, see
/// [`crate::models::chunk_for`]): bounds the memory of the layers'
/// intermediate values whatever the number of rows.
pub const CHUNK: usize = 8192;

/// The arguments of `eval`.
pub struct EvalArgs {
    /// The model file.
    pub model: PathBuf,
    /// The data file.
    pub data: PathBuf,
    /// Where to write the per-row values (else standard output).
    pub out: Option<PathBuf>,
    /// Print a JSON summary.
    pub json: bool,
    /// Replace an existing output.
    pub force: bool,
    /// Contexts of a conditional model.
    pub context: Option<ContextSource>,
}

/// Runs `eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let mut inputs: Vec<&Path> = vec![&args.model, &args.data];
    if let Some(ContextSource::File(f)) = &args.context {
        inputs.push(f);
    }
    let out = match &args.out {
        Some(o) => Some(Output::check(o, args.force, &inputs)?),
        None => None,
    };
    let format = out.as_ref().map(RowFormat::of_output).transpose()?;
    let source = args.context.clone();
    let evaluator: Box<dyn Fn(usize, usize) -> Vec<f64>>;
    let (n, chunk);
    if crate::models::is_conditional(&args.model)? {
        let (model, x, c) = conditional::eval_inputs(&args.model, &args.data, source)?;
        n = x.ncols();
        chunk = crate::models::chunk_for(model.spec(), model.dim(), model.context_dim(), CHUNK);
        evaluator = Box::new(move |start, len| {
            let xs = x.columns(start, len).clone_owned();
            let cs = c.columns(start, len).clone_owned();
            model.log_prob_given(&xs, &cs).iter().copied().collect()
        });
    } else {
        if source.is_some() {
            return Err(format!(
                "{}: the model takes no context; drop --context/--context-columns",
                args.model.display()
            ));
        }
        let model = crate::models::load(&args.model)?;
        let x = read_data(&args.data).map_err(|e| e.to_string())?;
        crate::models::check_dim(model.dim(), &x, &args.data)?;
        n = x.ncols();
        chunk = crate::models::chunk_for(model.spec(), model.dim(), 0, CHUNK);
        evaluator = Box::new(move |start, len| {
            let xs = x.columns(start, len).clone_owned();
            Distribution::log_prob(&model, &xs)
                .iter()
                .copied()
                .collect()
        });
    }
    let mut summary = Summary::default();
    let mut each = |write: &mut dyn FnMut(&[f64]) -> Result<()>| -> Result<()> {
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let lp: Vec<f64> = evaluator(start, len)
                .into_iter()
                .map(|v| if v.is_nan() { f64::NEG_INFINITY } else { v })
                .collect();
            summary.add(&lp);
            write(&lp)?;
            start += len;
        }
        Ok(())
    };
    match (&out, format) {
        (Some(out), Some(format)) => {
            let mut failure = None;
            out.write(|w| {
                let mut rows = RowWriter::begin_column(w, format, n, "log_prob")?;
                let result = each(&mut |lp| {
                    let chunk = DMatrix::from_row_slice(1, lp.len(), lp);
                    rows.columns(&chunk).map_err(|e| e.to_string())
                });
                if let Err(e) = result {
                    failure = Some(e.clone());
                    return Err(std::io::Error::other(e));
                }
                rows.finish()
            })
            .map_err(|e| failure.unwrap_or(e))?;
        }
        _ if args.json => each(&mut |_| Ok(()))?,
        _ => each(&mut |lp| {
            for v in lp {
                outln!("{v}");
            }
            Ok(())
        })?,
    }
    if args.json {
        outln!("{}", summary.json());
    } else {
        errln!("{}", summary.sentence());
    }
    Ok(())
}

/// Values are scaled by this power of two (exactly) before they are
/// accumulated, so that differences and squares of finite `f64`s cannot
/// overflow.
const SCALE: f64 = 3.432_398_830_065_305e156; // 2^520, exactly

/// Running summary of log-densities: the finite ones by Welford's
/// algorithm on scaled values (no overflow, no cancellation), the infinite
/// ones counted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Rows seen.
    pub n: usize,
    /// Rows with log-density −∞ (outside the support).
    pub outside: usize,
    /// Rows with log-density +∞.
    pub infinite: usize,
    finite: usize,
    mean: f64,
    m2: f64,
}

impl Summary {
    /// Adds values.
    pub fn add(&mut self, values: &[f64]) {
        for &v in values {
            self.n += 1;
            if v == f64::NEG_INFINITY || v.is_nan() {
                self.outside += 1;
            } else if v == f64::INFINITY {
                self.infinite += 1;
            } else {
                self.finite += 1;
                let v = v / SCALE;
                let delta = v - self.mean;
                self.mean += delta / self.finite as f64;
                self.m2 += delta * (v - self.mean);
            }
        }
    }

    /// Mean and standard error of the finite values (`None` if there are
    /// none; the error is 0 for one value).
    pub fn finite_mean(&self) -> Option<(f64, f64)> {
        if self.finite == 0 {
            return None;
        }
        let k = self.finite as f64;
        let var = if self.finite > 1 {
            self.m2 / (k - 1.0)
        } else {
            0.0
        };
        Some((self.mean * SCALE, (var / k).sqrt() * SCALE))
    }

    /// The summary in words.
    pub fn sentence(&self) -> String {
        let finite = self.finite_mean();
        match (self.outside, self.infinite, finite) {
            (0, 0, Some((m, se))) => format!(
                "mean log-density {m:.6} ± {se:.6} (standard error) over {} rows",
                self.n
            ),
            (0, 0, None) => "no rows".into(),
            (out, inf, finite) => {
                let mut parts = Vec::new();
                if out > 0 {
                    parts.push(format!(
                        "{out} of {} rows are outside the model's support (log-density -inf)",
                        self.n
                    ));
                }
                if inf > 0 {
                    parts.push(format!(
                        "{inf} of {} rows have an infinite log-density (the model is degenerate there)",
                        self.n
                    ));
                }
                let head = if out > 0 {
                    "mean log-density -inf"
                } else {
                    "mean log-density +inf"
                };
                let rest = match finite {
                    Some((m, se)) => format!(
                        "; over the other {} rows: {m:.6} ± {se:.6} (standard error)",
                        self.finite
                    ),
                    None => String::new(),
                };
                format!("{head}: {}{rest}", parts.join(", "))
            }
        }
    }

    /// The summary as one JSON object: `n`, `outside_support` and
    /// `infinite` counts always; `mean_log_prob` a number when every row is
    /// finite, else the string `"-inf"` (or `"+inf"`); `std_error` only when
    /// every row is finite; the mean and standard error of the finite rows
    /// as `finite_rows`, `mean_log_prob_finite`, `std_error_finite`.
    pub fn json(&self) -> serde_json::Value {
        let mut j = serde_json::json!({
            "n": self.n,
            "outside_support": self.outside,
            "infinite": self.infinite,
            "finite_rows": self.finite,
        });
        let finite = self.finite_mean();
        if let Some((m, se)) = finite {
            j["mean_log_prob_finite"] = serde_json::json!(m);
            j["std_error_finite"] = serde_json::json!(se);
        }
        if self.outside > 0 {
            j["mean_log_prob"] = serde_json::json!("-inf");
        } else if self.infinite > 0 {
            j["mean_log_prob"] = serde_json::json!("+inf");
        } else if let Some((m, se)) = finite {
            j["mean_log_prob"] = serde_json::json!(m);
            j["std_error"] = serde_json::json!(se);
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_finite_values_match_the_textbook_formulas() {
        let v = [1.0, 2.0, 4.0, 7.0];
        let mut s = Summary::default();
        s.add(&v[..2]);
        s.add(&v[2..]);
        // mean 3.5, sample variance ((2.5² + 1.5² + 0.5² + 3.5²)/3) = 7, se = √(7/4).
        let (m, se) = s.finite_mean().unwrap();
        assert!((m - 3.5).abs() < 1e-12);
        assert!((se - (7.0f64 / 4.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.json()["mean_log_prob"], serde_json::json!(3.5));
    }

    #[test]
    fn minus_infinity_is_said_in_words_and_in_json() {
        let mut s = Summary::default();
        s.add(&[f64::NEG_INFINITY, -1.0, -3.0]);
        let text = s.sentence();
        assert!(!text.contains("NaN"), "{text}");
        assert!(text.contains("1 of 3 rows are outside"), "{text}");
        let j = s.json();
        assert_eq!(j["mean_log_prob"], "-inf");
        assert_eq!(j["outside_support"], 1);
        assert_eq!(j["mean_log_prob_finite"], serde_json::json!(-2.0));
        assert!(!j.to_string().contains("null"));
        let mut all = Summary::default();
        all.add(&[f64::NEG_INFINITY]);
        assert!(!all.sentence().contains("NaN"));
        assert!(!all.json().to_string().contains("null"));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut s = Summary::default();
        s.add(&[1e308, -1e308, 1e308]);
        let (m, se) = s.finite_mean().unwrap();
        assert!(m.is_finite() && se.is_finite(), "{m} {se}");
    }
}
