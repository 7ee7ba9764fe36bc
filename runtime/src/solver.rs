//! ODE solvers for the flow dx/dt = ∇ₓψ(x, t) from t = 1e-5 (noise) to t = 1 − 1e-5 (data):
//! fixed-step Euler, Heun and RK4, and adaptive Dormand–Prince 5(4).

use crate::Error;

/// Start of the flow (noise end).
pub const T_START: f64 = 1e-5;
/// End of the flow (data end).
pub const T_END: f64 = 1.0 - 1e-5;

/// Anything that gives the velocity of a batch of states at one time.
pub trait VelocityField {
    /// Values per record.
    fn record_len(&self) -> usize;
    /// v(x, t) for `x.len() / record_len` records, all at time `t`.
    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>, Error>;
}

impl<B: crate::backend::Backend + ?Sized> VelocityField for B {
    fn record_len(&self) -> usize {
        self.file().meta.record_len()
    }

    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>, Error> {
        let n = x.len() / self.record_len().max(1);
        self.evaluate_velocity(x, &vec![t; n])
    }
}

/// Integration method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Solver {
    Euler {
        steps: usize,
    },
    Heun {
        steps: usize,
    },
    Rk4 {
        steps: usize,
    },
    /// Adaptive Dormand–Prince 5(4) with per-element tolerance atol + rtol·|x|.
    Dopri5 {
        rtol: f64,
        atol: f64,
    },
}

/// What an integration cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SolveStats {
    /// Velocity evaluations (each over the whole batch).
    pub nfe: usize,
    /// Accepted steps.
    pub steps: usize,
    /// Rejected adaptive steps.
    pub rejected: usize,
}

impl std::ops::AddAssign for SolveStats {
    /// Totals over several solves (chunks, draws, rounds).
    fn add_assign(&mut self, other: Self) {
        self.nfe += other.nfe;
        self.steps += other.steps;
        self.rejected += other.rejected;
    }
}

fn axpy(out: &mut [f32], x: &[f32], terms: &[(f64, &[f32])], h: f64) {
    for i in 0..out.len() {
        let mut acc = x[i] as f64;
        for (c, k) in terms {
            acc += h * c * k[i] as f64;
        }
        out[i] = acc as f32;
    }
}

/// Integrates `x` in place from `t0` to `t1`.
pub fn integrate<F: VelocityField + ?Sized>(
    field: &F,
    x: &mut [f32],
    solver: Solver,
    t0: f64,
    t1: f64,
) -> Result<SolveStats, Error> {
    match solver {
        Solver::Euler { steps } | Solver::Heun { steps } | Solver::Rk4 { steps } => {
            fixed(field, x, solver, steps.max(1), t0, t1)
        }
        Solver::Dopri5 { rtol, atol } => dopri5(field, x, rtol, atol, t0, t1),
    }
}

fn fixed<F: VelocityField + ?Sized>(
    field: &F,
    x: &mut [f32],
    solver: Solver,
    steps: usize,
    t0: f64,
    t1: f64,
) -> Result<SolveStats, Error> {
    let h = (t1 - t0) / steps as f64;
    let mut stats = SolveStats::default();
    let mut tmp = vec![0f32; x.len()];
    for i in 0..steps {
        let t = t0 + i as f64 * h;
        let k1 = field.velocity(x, t as f32)?;
        match solver {
            Solver::Euler { .. } => {
                axpy(&mut tmp, x, &[(1.0, &k1)], h);
                stats.nfe += 1;
            }
            Solver::Heun { .. } => {
                axpy(&mut tmp, x, &[(1.0, &k1)], h);
                let k2 = field.velocity(&tmp, (t + h) as f32)?;
                axpy(&mut tmp, x, &[(0.5, &k1), (0.5, &k2)], h);
                stats.nfe += 2;
            }
            _ => {
                axpy(&mut tmp, x, &[(0.5, &k1)], h);
                let k2 = field.velocity(&tmp, (t + 0.5 * h) as f32)?;
                axpy(&mut tmp, x, &[(0.5, &k2)], h);
                let k3 = field.velocity(&tmp, (t + 0.5 * h) as f32)?;
                axpy(&mut tmp, x, &[(1.0, &k3)], h);
                let k4 = field.velocity(&tmp, (t + h) as f32)?;
                axpy(
                    &mut tmp,
                    x,
                    &[
                        (1.0 / 6.0, &k1),
                        (2.0 / 6.0, &k2),
                        (2.0 / 6.0, &k3),
                        (1.0 / 6.0, &k4),
                    ],
                    h,
                );
                stats.nfe += 4;
            }
        }
        x.copy_from_slice(&tmp);
        stats.steps += 1;
    }
    Ok(stats)
}

// Dormand–Prince 5(4) tableau.
const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [&[f64]; 7] = [
    &[],
    &[1.0 / 5.0],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
    ],
    &[
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
    &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// 5th-order weights (= last row of A: FSAL).
const B5: [f64; 7] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
    0.0,
];
/// 4th-order embedded weights.
const B4: [f64; 7] = [
    5179.0 / 57600.0,
    0.0,
    7571.0 / 16695.0,
    393.0 / 640.0,
    -92097.0 / 339200.0,
    187.0 / 2100.0,
    1.0 / 40.0,
];

fn dopri5<F: VelocityField + ?Sized>(
    field: &F,
    x: &mut [f32],
    rtol: f64,
    atol: f64,
    t0: f64,
    t1: f64,
) -> Result<SolveStats, Error> {
    let mut stats = SolveStats::default();
    let span = t1 - t0;
    let mut t = t0;
    let mut h = (0.01 * span).min(span);
    let mut k: Vec<Vec<f32>> = vec![field.velocity(x, t as f32)?];
    stats.nfe += 1;
    let mut stage = vec![0f32; x.len()];
    while t < t1 - 1e-12 * span.abs() {
        h = h.min(t1 - t);
        k.truncate(1);
        for s in 1..7 {
            let terms: Vec<(f64, &[f32])> = A[s]
                .iter()
                .zip(&k)
                .map(|(&a, ki)| (a, ki.as_slice()))
                .collect();
            axpy(&mut stage, x, &terms, h);
            let ks = field.velocity(&stage, (t + C[s] * h) as f32)?;
            stats.nfe += 1;
            k.push(ks);
        }
        // `stage` now holds the 5th-order solution (FSAL: A[6] = B5).
        let mut err_sq = 0.0;
        for i in 0..x.len() {
            let e: f64 = (0..7)
                .map(|s| (B5[s] - B4[s]) * k[s][i] as f64)
                .sum::<f64>()
                * h;
            let scale = atol + rtol * (x[i].abs().max(stage[i].abs()) as f64);
            err_sq += (e / scale).powi(2);
        }
        let err = (err_sq / x.len().max(1) as f64).sqrt();
        if !err.is_finite() {
            return Err(Error::Numeric(format!(
                "the flow diverged at t = {t:.5} (non-finite error estimate)"
            )));
        }
        if err <= 1.0 {
            t += h;
            x.copy_from_slice(&stage);
            let last = k.pop().expect("seven stages");
            k = vec![last];
            stats.steps += 1;
        } else {
            stats.rejected += 1;
        }
        let factor = if err == 0.0 {
            5.0
        } else {
            (0.9 * err.powf(-0.2)).clamp(0.2, 5.0)
        };
        h *= factor;
        if h < 1e-10 * span.abs() {
            return Err(Error::Numeric(format!("step size underflow at t = {t:.5}")));
        }
    }
    Ok(stats)
}
