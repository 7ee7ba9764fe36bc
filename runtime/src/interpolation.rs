//! Interpolation (docs/method.md §6): the flow from noise endpoints slerped between two draws.

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::backend::Backend;
use crate::solver::{integrate, SolveStats, Solver, T_END, T_START};
use crate::Error;

/// Spherical interpolation between `a` and `b` at `alpha`, with the norm interpolated linearly between
/// the endpoints' norms so every frame looks like a typical prior draw.
pub fn slerp(a: &[f32], b: &[f32], alpha: f64) -> Vec<f32> {
    let na = a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    let cos = (a
        .iter()
        .zip(b)
        .map(|(x, y)| *x as f64 * *y as f64)
        .sum::<f64>()
        / (na * nb).max(1e-12))
    .clamp(-1.0, 1.0);
    let omega = cos.acos();
    let (wa, wb) = if omega.abs() < 1e-6 {
        (1.0 - alpha, alpha)
    } else {
        (
            ((1.0 - alpha) * omega).sin() / omega.sin(),
            (alpha * omega).sin() / omega.sin(),
        )
    };
    let mixed: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| wa * *x as f64 + wb * *y as f64)
        .collect();
    let nm = mixed.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    let target = (1.0 - alpha) * na + alpha * nb;
    mixed.iter().map(|v| (v * target / nm) as f32).collect()
}

/// `frames` records (raw units) carried to data from slerped noise between two seeded draws.
pub fn interpolate(
    model: &dyn Backend,
    frames: usize,
    solver: Solver,
    seed: u64,
) -> Result<(Vec<f64>, SolveStats), Error> {
    let meta = &model.file().meta;
    let d = meta.record_len();
    let mut rng = StdRng::seed_from_u64(seed);
    let a: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
    let b: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
    let mut x: Vec<f32> = (0..frames)
        .flat_map(|k| {
            slerp(
                &a,
                &b,
                if frames > 1 {
                    k as f64 / (frames - 1) as f64
                } else {
                    0.0
                },
            )
        })
        .collect();
    let stats = integrate(model, &mut x, solver, T_START, T_END)?;
    Ok((
        meta.normalization
            .to_raw(&x.iter().map(|&v| v as f64).collect::<Vec<_>>(), d),
        stats,
    ))
}
