//! Progress bars on stderr (indicatif), so that stdout carries only the
//! report. indicatif draws nothing when stderr is not a terminal, which
//! keeps logs of scripted runs clean.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar for `len` items of work.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    b.set_style(style);
    b.set_message(what.to_string());
    b
}

/// A bar for a phase bounded by time: position is elapsed milliseconds.
pub fn timed(d: Duration, what: &str) -> ProgressBar {
    let b = ProgressBar::new(d.as_millis() as u64);
    let style = ProgressStyle::with_template("{msg:>24} [{bar:40}] {elapsed}/{duration}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    b.set_style(style);
    b.set_message(what.to_string());
    b
}
