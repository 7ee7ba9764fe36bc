//! Reading and comparing the numeric tables the CLIs write.

use std::path::Path;

/// All numbers of a CSV file with a header line, row-major.
pub fn csv_numbers(path: &Path) -> Vec<f64> {
    vpfb_runtime::io::read_csv(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .values
}

/// Asserts `got` and `want` have the same length and agree within `tol`, relative to
/// max(|want|, 1).
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}[{i}]: {a} vs {b}"
        );
    }
}
