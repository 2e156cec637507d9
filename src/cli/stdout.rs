//! Standard output that a closed pipe does not crash.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader is gone (`gradscope theory | head -1`)
//! fails with `BrokenPipe`, and `println!` turns that into a panic (exit 101). Every line the
//! commands print goes through [`print`](fn@print) (the [`outln!`](crate::outln) macro) instead: once the
//! reader is gone, nothing more is printed and the command carries on, so the files it writes
//! are the same whoever reads its output; it exits with its usual code (0 when all went well).
//! Commands that only print (`theory`, `bench`) call [`quit_when_closed`] first: they end at once,
//! with exit 0, as ripgrep does.
//!
//! Output goes through `anstream`, which drops colour codes unless stdout is a terminal and
//! `NO_COLOR` is unset (`CLICOLOR_FORCE` forces them).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);
static QUIT: AtomicBool = AtomicBool::new(false);

/// Prints one line (the macro [`outln!`](crate::outln) formats it).
///
/// A closed pipe stops all later output quietly (or ends the process with exit 0 after
/// [`quit_when_closed`]); any other write error ends the process with exit 2 and a message, as
/// an unwritable output file would.
pub fn print(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = anstream::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            if QUIT.load(Ordering::Relaxed) {
                std::process::exit(0);
            }
        }
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(2);
        }
    }
}

/// From now on a closed stdout ends the process with exit 0: for commands whose only product
/// is what they print.
pub fn quit_when_closed() {
    QUIT.store(true, Ordering::Relaxed);
}

/// `println!` for the commands: through [`stdout::print`](crate::cli::stdout::print), which
/// survives a closed pipe.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::stdout::print(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::print(format_args!($($arg)*))
    };
}
