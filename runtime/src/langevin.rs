//! Annealed Langevin dynamics on a model's noised density (docs/method.md §6): the sampler behind
//! `langevin` imputation and Langevin composition.
//!
//! On the path x_t = t·x + (1 − t)·ε the velocity gives E[ε | x_t] = x_t − t·v(x_t, t), so the score
//! of the noised density is ∇ log p_t(x) = (t·v(x, t) − x)/(1 − t). The chain runs in y = x_t / t,
//! whose noise level is σ = (1 − t)/t, through levels from t = 0.3 to 0.98, five steps each, with
//! step size σ²; a last step without noise is Tweedie's denoiser.

use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::backend::Backend;
use crate::solver::{SolveStats, VelocityField};
use crate::Result;

/// Langevin steps per noise level.
const SWEEPS: usize = 5;
/// The noise levels run from this t ...
const T0: f64 = 0.3;
/// ... to this one.
const T1: f64 = 0.98;
/// How far (in standard deviations of the noised, normalised data) the chain may wander.
const BOUND: f32 = 8.0;

/// ∇ₓ log p_t at a batch of states x and level t.
pub(crate) type ScoreFn<'a> = dyn Fn(&[f32], f32) -> Result<Vec<f32>> + 'a;

/// ∇ₓ log p_t(x) of one model's noised density, from its velocity.
pub(crate) fn model_score(model: &dyn Backend, x: &[f32], t: f32) -> Result<Vec<f32>> {
    let v = model.velocity(x, t)?;
    Ok(v.iter()
        .zip(x)
        .map(|(vi, xi)| (t * vi - xi) / (1.0 - t))
        .collect())
}

/// Runs the chain on the places of `data` (records in model space, one generator per record in
/// `rngs`) where `unknown` is true; the others are re-noised from `data` to each level. `score(x, t)`
/// is ∇ log p_t at states x. About `evaluations` score evaluations (levels of five steps, at least
/// two levels). Returns the states (known places as in `data`).
pub(crate) fn annealed(
    score: &ScoreFn,
    data: &[f32],
    unknown: &[bool],
    rngs: &mut [StdRng],
    evaluations: usize,
) -> Result<(Vec<f32>, SolveStats)> {
    let d = data.len() / rngs.len().max(1);
    let levels = (evaluations / SWEEPS).max(2);
    let normal = |rng: &mut StdRng| -> f32 { StandardNormal.sample(rng) };
    let sigma0 = ((1.0 - T0) / T0) as f32;
    let mut y: Vec<f32> = Vec::with_capacity(data.len());
    for (r, rng) in rngs.iter_mut().enumerate() {
        for j in 0..d {
            let i = r * d + j;
            y.push(if unknown[i] {
                normal(rng) * (1.0 + sigma0 * sigma0).sqrt()
            } else {
                data[i]
            });
        }
    }
    let mut stats = SolveStats::default();
    let mut x = vec![0f32; data.len()];
    for level in 0..levels {
        let t = (T0 + (T1 - T0) * level as f64 / (levels - 1) as f64) as f32;
        let sigma = (1.0 - t) / t;
        let last = level + 1 == levels;
        // A learned velocity can grow faster than the state far from the data, where it was never
        // trained, and the chain would run away: keep it within BOUND standard deviations of the
        // noised data.
        let bound = BOUND * (1.0 + sigma * sigma).sqrt();
        let sweeps = if last { SWEEPS + 1 } else { SWEEPS };
        for sweep in 0..sweeps {
            let denoise = last && sweep + 1 == sweeps;
            for (r, rng) in rngs.iter_mut().enumerate() {
                for j in 0..d {
                    let i = r * d + j;
                    let yi = if unknown[i] {
                        y[i]
                    } else {
                        data[i] + sigma * normal(rng)
                    };
                    x[i] = t * yi;
                }
            }
            let g = score(&x, t)?;
            stats.nfe += 1;
            stats.steps += 1;
            for (r, rng) in rngs.iter_mut().enumerate() {
                for j in 0..d {
                    let i = r * d + j;
                    if unknown[i] {
                        // In y the score is t·g and the step σ².
                        let mut next = x[i] / t + sigma * sigma * t * g[i];
                        if !denoise {
                            next += std::f32::consts::SQRT_2 * sigma * normal(rng);
                        }
                        y[i] = next.clamp(-bound, bound);
                    }
                }
            }
        }
    }
    Ok((y, stats))
}
