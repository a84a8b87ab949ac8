//! Printing that never panics.
//!
//! `println!` panics when standard output is a closed pipe (`normflow eval
//! … | head -1`) or a full device. Here a closed pipe is a quiet exit with
//! status 0 (the reader has what it wanted), any other failed write is a
//! one-line error and status 1; messages on standard error are best effort.
//! Every command prints through [`outln!`](crate::outln) and
//! [`errln!`](crate::errln).

use std::fmt;
use std::io::{self, Write};

/// Writes one line to standard output (see the module docs for failures).
pub fn print_line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        stdout_failed(&e);
    }
}

/// Flushes standard output (see the module docs for failures).
pub fn flush() {
    if let Err(e) = io::stdout().lock().flush() {
        stdout_failed(&e);
    }
}

/// A failed write to standard output: a closed pipe exits quietly (0),
/// anything else with a one-line error (1). Temporary files are removed.
pub fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        crate::signals::cleanup_and_exit(0);
    }
    print_error(format_args!("error: cannot write to standard output: {e}"));
    crate::signals::cleanup_and_exit(1);
}

/// Writes one line to standard error, ignoring failures (there is nowhere
/// left to report them).
pub fn print_error(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` that never panics: see [`crate::stdio`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdio::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdio::print_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: see [`crate::stdio`].
#[macro_export]
macro_rules! errln {
    () => {
        $crate::stdio::print_error(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdio::print_error(format_args!($($arg)*))
    };
}
