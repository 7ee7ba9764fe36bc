//! Running a CLI and checking the promise every vpfb command makes on bad input: a non-zero exit
//! and exactly one `error: …` line on stderr, never a panic.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `program` with `args` and collects its output.
pub fn run<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Asserts success and returns stdout followed by stderr (results and the summary lines).
pub fn output_ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "command failed: {err}");
    format!("{}{err}", String::from_utf8_lossy(&out.stdout))
}

/// Asserts a failure reported as one `error:` line that contains `needle`, with no panic.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure, got success: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one error line, got:\n{err}"
    );
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "not a clean error line: {err}"
    );
    assert!(err.contains(needle), "error lacks {needle:?}: {err}");
}

/// Asserts a command-line usage error as clap reports it: exit status 2, a first line
/// `error: …` that contains `needle`, and no panic.
pub fn assert_usage_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected a usage error: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && !err.contains("panicked"),
        "not a clean usage error: {err}"
    );
    assert!(err.contains(needle), "error lacks {needle:?}: {err}");
}
