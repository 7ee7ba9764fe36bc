use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use vpfb_runtime::io::write_records;
use vpfb_runtime::sampling::sample;

use super::model_arg::{load, RunOpts};
use super::solver_arg::{header, SolverOpts};

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
    /// Output: .csv or .npy, raw units.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunOpts,
}

pub fn run(a: SampleArgs) -> Result<()> {
    if a.n == 0 {
        bail!("-n must be positive");
    }
    let solver = a.solver.solver()?;
    let model = load(a.model.as_deref(), &a.run)?;
    let t0 = Instant::now();
    let (values, stats) = sample(model.as_ref(), a.n, solver, a.solver.seed).context("sampling")?;
    let d = model.file().meta.record_len();
    write_records(&a.out, &header(d), d, &values)?;
    eprintln!(
        "wrote {} samples to {} ({:?}, {} function evaluations, {:.2} s)",
        a.n,
        a.out.display(),
        a.solver.solver,
        stats.nfe,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
