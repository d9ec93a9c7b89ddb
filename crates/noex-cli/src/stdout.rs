//! Lines on standard output, which is usually a pipe read line by line.

use std::io::Write;

/// Print one line on stdout and flush. A closed stdout is not an error worth dying for.
pub(crate) fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
