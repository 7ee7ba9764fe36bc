use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use vpfb_runtime::io::write_records;
use vpfb_runtime::sampling::sample;
use vpfb_runtime::solver::Solver;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SolverName {
    Euler,
    Heun,
    Rk4,
    Dopri5,
}

#[derive(Args)]
pub struct SampleArgs {
    /// Model file (.onnx); without it, the built-in moons model (models/moons.onnx).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    /// ODE solver.
    #[arg(long, value_enum, default_value_t = SolverName::Rk4)]
    solver: SolverName,
    /// Steps for the fixed-step solvers.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Relative tolerance (dopri5).
    #[arg(long, default_value_t = 1e-3)]
    rtol: f64,
    /// Absolute tolerance (dopri5).
    #[arg(long, default_value_t = 1e-3)]
    atol: f64,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output: .csv or .npy, raw units.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: super::model_arg::RunOpts,
}

pub fn run(a: SampleArgs) -> Result<()> {
    if a.n == 0 {
        bail!("-n must be positive");
    }
    if a.steps == 0 {
        bail!("--steps must be positive");
    }
    if !(a.rtol > 0.0 && a.atol > 0.0) {
        bail!("--rtol and --atol must be positive");
    }
    let model = super::model_arg::load(a.model.as_deref(), &a.run)?;
    let solver = match a.solver {
        SolverName::Euler => Solver::Euler { steps: a.steps },
        SolverName::Heun => Solver::Heun { steps: a.steps },
        SolverName::Rk4 => Solver::Rk4 { steps: a.steps },
        SolverName::Dopri5 => Solver::Dopri5 {
            rtol: a.rtol,
            atol: a.atol,
        },
    };
    let t0 = Instant::now();
    let (values, stats) = sample(model.as_ref(), a.n, solver, a.seed).context("sampling")?;
    let d = model.file().meta.record_len();
    let header: Vec<String> = (0..d).map(|i| format!("x{i}")).collect();
    write_records(&a.out, &header.join(","), d, &values)?;
    eprintln!(
        "wrote {} samples to {} ({:?}, {} function evaluations, {:.2} s)",
        a.n,
        a.out.display(),
        a.solver,
        stats.nfe,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
