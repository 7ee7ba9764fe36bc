//! A one-line progress count on stderr for long record-by-record work (only on a terminal, at most
//! once a second), so a Pi scoring a large file shows it is alive without filling logs.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    verb: &'static str,
    start: Instant,
    last: Instant,
    shown: bool,
    enabled: bool,
}

impl Progress {
    pub fn new(verb: &'static str) -> Self {
        let now = Instant::now();
        Self {
            verb,
            start: now,
            last: now,
            shown: false,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Reports `done` records so far.
    pub fn update(&mut self, done: usize) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        eprint!("\r{} {done} records ({rate:.0}/s)   ", self.verb);
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    /// Clears the line before the final message.
    pub fn finish(&self) {
        if self.shown {
            eprint!("\r{}\r", " ".repeat(60));
        }
    }
}
