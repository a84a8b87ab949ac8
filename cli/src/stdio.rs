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
/// left to report them). A value that is not a number reads as
/// `not-a-number` (see [`spell_nan`]).
pub fn print_error(args: fmt::Arguments<'_>) {
    let line = spell_nan(&args.to_string());
    let mut err = io::stderr().lock();
    let _ = err
        .write_all(line.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// Messages quote values (a flag, a field of a file); a NaN among them, as
/// Rust writes it (`NaN`, `-NaN`), is spelled `not-a-number`, so that no
/// output of the tool reads `NaN`. Other words are left alone (a file may
/// be called `nan.csv`).
///
/// ```
/// use normflow_cli::stdio::spell_nan;
/// assert_eq!(spell_nan("--lr must be positive, got NaN"), "--lr must be positive, got not-a-number");
/// assert_eq!(spell_nan("got -NaN; expected"), "got not-a-number; expected");
/// assert_eq!(spell_nan("nan.csv: NaNo"), "nan.csv: NaNo");
/// ```
pub fn spell_nan(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let bare = word.trim_start_matches(['-', '+']);
        if bare == "NaN" {
            out.push_str("not-a-number");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || ((c == '-' || c == '+') && word.is_empty()) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
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
