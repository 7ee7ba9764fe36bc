//! `vpfb bench`: throughput of each backend × thread count × batch size, single-record scoring
//! latency, and the wall time of a sampling run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use vpfb_runtime::{Backend, FlowOptions, Score, Solver};

use super::model_arg::{load, RunOpts};

#[derive(Args)]
pub struct BenchArgs {
    /// Model file (.onnx); without it, the built-in moons model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Backends to measure (tract needs the `tract` feature; ort the `ort` feature and ORT_DYLIB_PATH).
    #[arg(long, value_delimiter = ',', default_value = "native")]
    backends: Vec<String>,
    /// Thread counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,64,4096")]
    batches: Vec<usize>,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Samples for the sampling measurement (RK4, 100 steps; 0 skips it).
    #[arg(long, default_value_t = 10_000)]
    samples: usize,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn run(a: BenchArgs) -> Result<()> {
    println!(
        "{:<8} {:>7} {:>7} {:>14} {:>12}",
        "backend", "threads", "batch", "points/s", "ms/batch"
    );
    for backend in &a.backends {
        for &threads in &a.threads {
            let model = load(a.model.as_deref(), &RunOpts::with(backend, threads))
                .with_context(|| format!("backend {backend}"))?;
            let d = model.record_len();
            for &n in &a.batches {
                let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.37).sin()).collect();
                let t = vec![0.5f32; n];
                model.evaluate(&x, &t)?; // plan / session warm-up
                let (mut calls, start) = (0u64, Instant::now());
                while start.elapsed().as_secs_f64() < a.seconds || calls < 3 {
                    model.evaluate(&x, &t)?;
                    calls += 1;
                }
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{backend:<8} {threads:>7} {n:>7} {:>14.0} {:>12.3}",
                    (calls * n as u64) as f64 / secs,
                    secs * 1e3 / calls as f64
                );
            }
        }
    }
    // Latency and sampling use the first backend listed.
    let first = a.backends.first().map_or("native", String::as_str);
    let model = load(a.model.as_deref(), &RunOpts::with(first, 1))?;
    let d = model.record_len();
    let record: Vec<f64> = (0..d).map(|i| 0.1 * i as f64).collect();
    let mut scores = vec![Score::GradNorm];
    if model.meta().detector.is_some() {
        scores.insert(0, Score::Detector);
    }
    for score in scores {
        // Up to 2 000 records or about 3 s, whichever comes first (at least 20).
        let start = Instant::now();
        let mut lat = Vec::new();
        while lat.len() < 2000 && (lat.len() < 20 || start.elapsed().as_secs_f64() < 3.0) {
            let t = Instant::now();
            model.scores(&record, &[score])?;
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "single-record score `{score}` ({first}, 1 thread, {} records): p50 {:.1} µs, p99 {:.1} µs",
            lat.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e6,
            percentile(&lat, 0.99).as_secs_f64() * 1e6
        );
    }
    if a.samples > 0 {
        for &threads in &a.threads {
            let model = load(a.model.as_deref(), &RunOpts::with(first, threads))?;
            let t = Instant::now();
            let options = FlowOptions {
                solver: Solver::Rk4 { steps: 100 },
                seed: 0,
            };
            let stats = model.sample(a.samples, &options)?.stats;
            println!(
                "sample {} × RK4 100 steps ({first}, {threads} thread(s)): {:.2} s, {} evaluations",
                a.samples,
                t.elapsed().as_secs_f64(),
                stats.nfe
            );
        }
    }
    Ok(())
}
