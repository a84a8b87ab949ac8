//! The progress bar of a fit and its Ctrl-C flag, shared by `fit` and `demo`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use normflow::train::FitEvent;

/// Observes a fit: draws a progress bar on stderr (epoch, batch, training
/// and validation NLL, ETA; hidden when stderr is not a terminal) and asks
/// the fit to stop after the current batch once Ctrl-C was pressed.
pub struct FitProgress {
    bar: ProgressBar,
    last_valid: Option<f64>,
    stop: Arc<AtomicBool>,
}

impl FitProgress {
    /// A bar over `epochs` epochs; installs the Ctrl-C handler.
    pub fn new(epochs: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = Arc::clone(&stop);
            // Ctrl-C: stop after the current batch, keep the best model.
            let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
        }
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
            stop,
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
        !self.stop.load(Ordering::SeqCst)
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
