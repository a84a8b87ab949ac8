//! Interruption and the temporary files to remove when it comes.
//!
//! One handler, installed once by the binary, serves Ctrl-C (SIGINT), SIGTERM
//! and SIGHUP:
//! - while a [`Graceful`] guard is alive (a fit is training), the first
//!   signal only sets the flag [`interrupted`]: the fit stops after the
//!   current batch and the command still writes its model;
//! - otherwise (or at a second signal) every temporary file registered by
//!   [`crate::output`] is removed and the process exits with status 130, the
//!   status shells expect after Ctrl-C.
//!
//! A write commits its temporary file (the final rename) while holding the
//! same lock the handler takes, so a signal never removes a file that has
//! been committed, and never leaves a temporary file behind.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static GRACEFUL: AtomicUsize = AtomicUsize::new(0);
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// The exit status of a command stopped by a signal (128 + SIGINT), as
/// shells report Ctrl-C.
pub const INTERRUPTED_STATUS: u8 = 130;

/// Installs the handler (once; later calls do nothing). If the handler
/// cannot be installed the default behaviour of the signals stays, and the
/// command still works.
pub fn install() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if GRACEFUL.load(Ordering::SeqCst) > 0 && !INTERRUPTED.swap(true, Ordering::SeqCst) {
                return;
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            cleanup_and_exit(i32::from(INTERRUPTED_STATUS));
        });
    });
}

/// Whether a signal has arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// While alive, the first signal only sets [`interrupted`] instead of
/// ending the process: the holder polls the flag and stops cleanly.
pub struct Graceful(());

impl Graceful {
    /// Enters graceful mode until the guard drops.
    pub fn enter() -> Self {
        GRACEFUL.fetch_add(1, Ordering::SeqCst);
        Graceful(())
    }
}

impl Drop for Graceful {
    fn drop(&mut self) {
        GRACEFUL.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes every registered temporary file and exits with `code`, without
/// running destructors (nothing else is written).
pub fn cleanup_and_exit(code: i32) -> ! {
    let temps = lock_temps();
    for path in temps.iter() {
        let _ = std::fs::remove_file(path);
    }
    std::process::exit(code)
}

/// The registry of temporary files; held while a write commits.
pub(crate) fn lock_temps() -> MutexGuard<'static, Vec<PathBuf>> {
    TEMPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a temporary file for removal on a signal.
pub(crate) fn register_temp(path: PathBuf) {
    lock_temps().push(path);
}

/// Forgets a temporary file (committed or removed), with the lock held.
pub(crate) fn forget_temp(temps: &mut Vec<PathBuf>, path: &std::path::Path) {
    temps.retain(|p| p != path);
}
