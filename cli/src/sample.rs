use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::model_arg::{load, RunOpts};
use super::records_arg::{output_kind, parse_grid, write_output};
use super::solver_arg::SolverOpts;

#[derive(Args)]
pub struct SampleArgs {
    /// Model file (.onnx); without it, the built-in moons model (models/moons.onnx).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    #[command(flatten)]
    solver: SolverOpts,
    /// Output: .csv or .npy (raw units); for image models also a .png grid or a folder of PNGs
    /// (a path ending in `/` or without an extension).
    #[arg(long)]
    out: PathBuf,
    /// Tile layout of a .png grid, ROWSxCOLS (default: near-square).
    #[arg(long, value_parser = parse_grid)]
    grid: Option<(usize, usize)>,
    #[command(flatten)]
    run: RunOpts,
}

pub fn run(a: SampleArgs) -> Result<()> {
    if a.n == 0 {
        bail!("-n must be positive");
    }
    let options = a.solver.flow_options(a.solver.seed)?;
    let model = load(a.model.as_deref(), &a.run)?;
    // Refuse an unusable output path before spending the sampling time.
    output_kind(&a.out, model.meta())?;
    let t0 = Instant::now();
    let samples = model.sample(a.n, &options).context("sampling")?;
    let stats = samples.stats;
    let written = write_output(&a.out, model.meta(), &samples.records.values, a.grid)?;
    eprintln!(
        "wrote {} samples to {written} ({:?}, {} function evaluations, {:.2} s)",
        a.n,
        a.solver.solver,
        stats.nfe,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
