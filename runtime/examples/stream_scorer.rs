//! A streaming anomaly scorer: one CSV record per line on stdin (raw units, the model's columns),
//! one `score,outlier` line per record on stdout — what a sensor pipeline on a Raspberry Pi runs.
//! A malformed line gets an `error:` line of its own and the stream goes on.
//!
//!     cargo run --release -p vpfb-runtime --example stream_scorer -- models/moons.onnx < records.csv

use std::io::{BufRead, Write};

use vpfb_runtime::io::parse_record;
use vpfb_runtime::{Model, Result};

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or("models/moons.onnx".into());
    let model = Model::load(&path)?;
    let threshold = model.threshold(model.default_score(), None)?;
    eprintln!(
        "{path}: `{}` score, threshold {threshold:.4}",
        model.default_score()
    );
    let mut out = std::io::stdout().lock();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| vpfb_runtime::Error::Record(format!("stdin: {e}")))?;
        let d = model.record_len();
        let reply = match parse_record(&line) {
            Ok(record) if record.len() != d => format!(
                "error: record {}: {} values, the model takes {d}",
                i + 1,
                record.len()
            ),
            Ok(record) => match model.score(&record) {
                Ok(r) => format!("{},{}", r.scores[0], u8::from(r.outliers[0])),
                Err(e) => format!("error: record {}: {e}", i + 1),
            },
            Err(e) => format!("error: record {}: {e}", i + 1),
        };
        if writeln!(out, "{reply}").is_err() {
            break; // the reader went away
        }
    }
    Ok(())
}
