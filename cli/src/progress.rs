//! The progress bar of a fit and its Ctrl-C flag, shared by `fit` and `demo`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use normflow::train::FitEvent;

use crate::signals;

/// Observes a fit: draws a progress bar on stderr (epoch, batch, training
/// and validation NLL, ETA; hidden when stderr is not a terminal) and asks
/// the fit to stop after the current batch once Ctrl-C (or SIGTERM) came:
/// while it lives, the first signal does not end the process
/// ([`signals::Graceful`]).
pub struct FitProgress {
    bar: ProgressBar,
    last_valid: Option<f64>,
    steps: u64,
    _graceful: signals::Graceful,
}

impl FitProgress {
    /// A bar over `epochs` epochs; a signal now stops the fit cleanly.
    pub fn new(epochs: usize) -> Self {
        signals::install();
        let graceful = signals::Graceful::enter();
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(epochs as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30} epoch {pos}/{len} {msg} [{elapsed} < {eta}]",
                )
                .expect("a valid template"),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            last_valid: None,
            steps: 0,
            _graceful: graceful,
        }
    }

    /// The observer of `fit_with_observer`: updates the bar and returns
    /// `false` once Ctrl-C was pressed.
    pub fn observe(&mut self, event: &FitEvent) -> bool {
        match event {
            FitEvent::Step {
                batch,
                batches,
                loss,
                ..
            } => {
                self.steps += 1;
                self.bar.set_message(format!(
                    "batch {batch}/{batches} nll {loss:.4}{}",
                    self.last_valid
                        .map(|v| format!(" valid {v:.4}"))
                        .unwrap_or_default()
                ));
            }
            FitEvent::Epoch(r) => {
                self.last_valid = r.valid_nll;
                self.bar.set_position(r.epoch as u64);
            }
        }
        !signals::interrupted()
    }

    /// Training steps seen so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Removes the bar from the terminal; from now on a signal ends the
    /// process (removing temporary files).
    pub fn finish(self) -> u64 {
        self.bar.finish_and_clear();
        self.steps
    }
}
