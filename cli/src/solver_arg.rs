//! ODE solver options shared by the generating commands.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use vpfb_runtime::{FlowOptions, Solver};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SolverName {
    Euler,
    Heun,
    Rk4,
    Dopri5,
}

#[derive(Args, Clone, Debug)]
pub struct SolverOpts {
    /// ODE solver for dx/dt = ∇ₓψ(x, t) from t = 1e-5 to 1 − 1e-5.
    #[arg(long, value_enum, default_value_t = SolverName::Rk4)]
    pub solver: SolverName,
    /// Steps for the fixed-step solvers.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Relative tolerance (dopri5).
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
    /// Absolute tolerance (dopri5).
    #[arg(long, default_value_t = 1e-3)]
    pub atol: f64,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SolverOpts {
    pub fn solver(&self) -> Result<Solver> {
        if self.steps == 0 {
            bail!("--steps must be positive");
        }
        if !(self.rtol > 0.0 && self.atol > 0.0) {
            bail!("--rtol and --atol must be positive");
        }
        Ok(match self.solver {
            SolverName::Euler => Solver::Euler { steps: self.steps },
            SolverName::Heun => Solver::Heun { steps: self.steps },
            SolverName::Rk4 => Solver::Rk4 { steps: self.steps },
            SolverName::Dopri5 => Solver::Dopri5 {
                rtol: self.rtol,
                atol: self.atol,
            },
        })
    }
}

impl SolverOpts {
    /// The solver and the noise seed `seed` (commands with several runs derive one per run).
    pub fn flow_options(&self, seed: u64) -> Result<FlowOptions> {
        Ok(FlowOptions {
            solver: self.solver()?,
            seed,
        })
    }
}

/// `x0,x1,…` for `d` columns.
pub fn header(d: usize) -> String {
    (0..d)
        .map(|i| format!("x{i}"))
        .collect::<Vec<_>>()
        .join(",")
}
