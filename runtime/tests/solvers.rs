//! Each solver converges at its order on a flow with a known exact solution, and Dormand–Prince meets
//! its tolerance.
//!
//! The field v(x, t) = x·cos(πt)·a, whose flow is x(t) = x₀·exp(a·(sin πt − sin πt₀)/π), is smooth and
//! time-dependent, so a solver that mistimed its stages would show the wrong order.

use std::f64::consts::PI;

use vpfb_runtime::solver::{integrate, Solver, VelocityField};
use vpfb_runtime::Error;

struct Known {
    a: f64,
}

impl VelocityField for Known {
    fn record_len(&self) -> usize {
        2
    }
    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>, Error> {
        let c = self.a * (PI * t as f64).cos();
        Ok(x.iter().map(|&v| (v as f64 * c) as f32).collect())
    }
}

const X0: [f32; 4] = [1.0, -0.5, 0.25, 2.0];
const T0: f64 = 0.0;
const T1: f64 = 0.5;

/// The exact state at t = T1 (sin πt grows monotonically on [0, ½], so the end state is non-trivial).
fn exact(a: f64) -> Vec<f64> {
    let g = (a * ((PI * T1).sin() - (PI * T0).sin()) / PI).exp();
    X0.iter().map(|&v| v as f64 * g).collect()
}

fn error(solver: Solver, a: f64) -> f64 {
    let mut x = X0.to_vec();
    integrate(&Known { a }, &mut x, solver, T0, T1).unwrap();
    x.iter()
        .zip(exact(a))
        .map(|(&v, e)| (v as f64 - e).abs())
        .fold(0.0, f64::max)
}

fn observed_order(make: fn(usize) -> Solver, coarse: usize, a: f64) -> f64 {
    (error(make(coarse), a) / error(make(2 * coarse), a)).log2()
}

#[test]
fn euler_is_first_order() {
    let p = observed_order(|s| Solver::Euler { steps: s }, 64, 2.0);
    assert!((p - 1.0).abs() < 0.15, "Euler order {p:.3}");
}

#[test]
fn heun_is_second_order() {
    let p = observed_order(|s| Solver::Heun { steps: s }, 32, 2.0);
    assert!((p - 2.0).abs() < 0.2, "Heun order {p:.3}");
}

#[test]
fn rk4_is_fourth_order() {
    let p = observed_order(|s| Solver::Rk4 { steps: s }, 4, 3.0);
    assert!((p - 4.0).abs() < 0.4, "RK4 order {p:.3}");
}

#[test]
fn dopri5_meets_its_tolerance_and_counts_evaluations() {
    for tol in [1e-3, 1e-5] {
        let mut x = X0.to_vec();
        let stats = integrate(
            &Known { a: 3.0 },
            &mut x,
            Solver::Dopri5 {
                rtol: tol,
                atol: tol,
            },
            T0,
            T1,
        )
        .unwrap();
        let err = x
            .iter()
            .zip(exact(3.0))
            .map(|(&v, e)| (v as f64 - e).abs() / (tol + tol * e.abs()))
            .fold(0.0, f64::max);
        assert!(err <= 1.0, "tolerance {tol}: error is {err:.2} tolerances");
        assert_eq!(
            stats.nfe,
            1 + 6 * (stats.steps + stats.rejected),
            "{stats:?}"
        );
        assert!(stats.steps >= 2);
    }
}
