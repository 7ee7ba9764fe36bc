//! Interpolation, composition and inpainting (docs/method.md §6): the flow with other starting points or
//! other velocity fields.

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::backend::Backend;
use crate::io::Records;
use crate::model::{FlowOptions, Generated};
use crate::solver::{integrate, SolveStats, Solver, VelocityField, T_END, T_START};
use crate::{Error, Model};

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

/// Product of experts: v = Σₖ wₖ ∇ψₖ over models of one data space.
pub struct Composition<'a> {
    parts: Vec<(&'a dyn Backend, f64)>,
}

impl<'a> Composition<'a> {
    /// Refuses an empty list, non-finite weights, and models whose data shapes or normalisations
    /// differ (their velocities live in different spaces and cannot be added).
    pub fn new(parts: &[(&'a Model, f64)]) -> Result<Self, Error> {
        Self::of_backends(parts.iter().map(|&(m, w)| (m as &dyn Backend, w)).collect())
    }

    /// [`Composition::new`] over any backends.
    pub fn of_backends(parts: Vec<(&'a dyn Backend, f64)>) -> Result<Self, Error> {
        let invalid = |m: String| Err(Error::InvalidArgument(m));
        let Some((first, _)) = parts.first() else {
            return invalid("a composition needs at least one model".into());
        };
        let m0 = &first.file().meta;
        for (m, w) in &parts {
            let meta = &m.file().meta;
            if meta.data_shape != m0.data_shape {
                return invalid(format!(
                    "{} has data shape {:?}, {} has {:?}",
                    m.file().path.display(),
                    meta.data_shape,
                    first.file().path.display(),
                    m0.data_shape
                ));
            }
            if meta.normalization != m0.normalization {
                return invalid(format!(
                    "{} and {} normalise data differently, so their velocities are in different units",
                    m.file().path.display(),
                    first.file().path.display()
                ));
            }
            if !w.is_finite() {
                return invalid(format!("weight {w} is not finite"));
            }
        }
        Ok(Self { parts })
    }

    /// `n` samples (raw units) from the composed flow.
    pub fn sample(&self, n: usize, options: &FlowOptions) -> Result<Generated, Error> {
        // Chunked like single-model sampling, so large n stays memory-bounded and non-finite
        // results are caught.
        let norm = &self.parts[0].0.file().meta.normalization;
        let (values, stats) =
            crate::sampling::sample_field(self, norm, n, options.solver, options.seed)?;
        Ok(Generated {
            records: Records {
                cols: self.record_len(),
                values,
            },
            stats,
        })
    }
}

impl VelocityField for Composition<'_> {
    fn record_len(&self) -> usize {
        self.parts[0].0.file().meta.record_len()
    }

    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>, Error> {
        let mut v = vec![0f32; x.len()];
        for (m, w) in &self.parts {
            for (acc, vi) in v.iter_mut().zip(m.velocity(x, t)?) {
                *acc += (*w as f32) * vi;
            }
        }
        Ok(v)
    }
}

/// The flow with the velocity zeroed on known coordinates (`unknown[j]` false), so only unknown ones move.
struct Masked<'a> {
    model: &'a dyn Backend,
    unknown: Vec<bool>,
}

impl VelocityField for Masked<'_> {
    fn record_len(&self) -> usize {
        self.unknown.len()
    }

    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>, Error> {
        let d = self.unknown.len();
        let mut v = self.model.velocity(x, t)?;
        for (i, vi) in v.iter_mut().enumerate() {
            if !self.unknown[i % d] {
                *vi = 0.0;
            }
        }
        Ok(v)
    }
}

/// Fills the `unknown` coordinates of raw `records`: they start from seeded noise and follow the flow
/// while the known coordinates stay as given (the authors' inpainting). Returns raw-unit records.
pub fn inpaint(
    model: &dyn Backend,
    records: &[f64],
    unknown: &[bool],
    solver: Solver,
    seed: u64,
) -> Result<(Vec<f64>, SolveStats), Error> {
    let meta = &model.file().meta;
    let d = meta.record_len();
    meta.records_in(records.len())?;
    if unknown.len() != d {
        return Err(Error::InvalidArgument(format!(
            "the mask has {} flags, the model's records have {d} values",
            unknown.len()
        )));
    }
    // Unknown places may hold anything (NaN marks a missing value); known ones must be numbers.
    meta.check_finite(records, |j| !unknown[j])?;
    let mut rng = StdRng::seed_from_u64(seed);
    let model_space = meta.normalization.to_model(records, d);
    let mut x: Vec<f32> = model_space
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if unknown[i % d] {
                StandardNormal.sample(&mut rng)
            } else {
                v as f32
            }
        })
        .collect();
    let stats = integrate(
        &Masked {
            model,
            unknown: unknown.to_vec(),
        },
        &mut x,
        solver,
        T_START,
        T_END,
    )?;
    let mut out = meta
        .normalization
        .to_raw(&x.iter().map(|&v| v as f64).collect::<Vec<_>>(), d);
    // Known coordinates come back exactly as given (no float round trip).
    for (i, v) in out.iter_mut().enumerate() {
        if !unknown[i % d] {
            *v = records[i];
        }
    }
    Ok((out, stats))
}
