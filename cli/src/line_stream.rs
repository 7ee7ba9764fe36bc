//! The line protocol of the `--stream` commands: one CSV record per stdin line, one reply line per
//! input line, in order and flushed; a bad record gets an `error: record N: …` line in its place and
//! the stream goes on; a closed output pipe ends the stream quietly.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};

/// Serves stdin: `parse` reads each line into a record, records of other than `d` values are refused,
/// and `answer(i, record)` (i counting lines from 0) gives the reply line of the others.
pub fn serve(
    d: usize,
    parse: fn(&str) -> vpfb_runtime::Result<Vec<f64>>,
    mut answer: impl FnMut(usize, &[f64]) -> vpfb_runtime::Result<String>,
) -> Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        let reply = match parse(&line) {
            Ok(rec) if rec.len() == d => {
                answer(i, &rec).unwrap_or_else(|e| format!("error: record {}: {e}", i + 1))
            }
            Ok(rec) => format!(
                "error: record {}: {} values, the model takes {d}",
                i + 1,
                rec.len()
            ),
            Err(e) => format!("error: record {}: {e}", i + 1),
        };
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}
