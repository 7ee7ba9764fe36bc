//! Filling unknown values of records with the flow (docs/method.md §6): every record has its own
//! set of unknown places; they start from seeded noise and follow the model's velocity while the
//! known places steer the flow, and come back exactly as given.
//!
//! Two ways of letting the known values steer ([`Conditioning`]), optionally followed by resampling
//! rounds that re-noise the completed record part way and run the flow again, so the filled values
//! are pulled towards agreement with the known ones.

use std::str::FromStr;

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::backend::{chunk_rows, Backend};
use crate::model::FlowOptions;
use crate::solver::{integrate, SolveStats, VelocityField, T_END, T_START};
use crate::{Error, Result, Solver};

/// How the known values of a record steer the flow while the unknown ones are generated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Conditioning {
    /// Known values follow their own noising path t·x + (1 − t)·ε (with the record's noise ε),
    /// so the model sees at every t a state like those it was trained on; they reach exactly x at
    /// the end.
    Path,
    /// Known values sit at their data values from the start and the velocity is zeroed there (the
    /// authors' inpainting); early on, the model sees data next to noise, which it never saw.
    Masked,
    /// Annealed Langevin dynamics on the model's own conditional density: at noise levels from
    /// t = 0.3 to 0.98, the unknown values take noisy gradient steps along the score of the
    /// noised data density, which the velocity gives as (t·v − x)/(1 − t), with the known values
    /// re-noised to the same level at each step. Unlike the one-pass flows it keeps correcting the
    /// unknown values against the known ones until the end. The solver's step count is the number
    /// of evaluations (levels of five steps each); resampling rounds do not apply. The default: it
    /// conditions best on the moons and has the lowest single-draw error on the tables of
    /// docs/imputation.md.
    #[default]
    Langevin,
}

impl Conditioning {
    /// The names [`Conditioning::from_str`] accepts.
    pub const NAMES: [&'static str; 3] = ["path", "masked", "langevin"];
}

impl FromStr for Conditioning {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "path" => Ok(Self::Path),
            "masked" => Ok(Self::Masked),
            "langevin" => Ok(Self::Langevin),
            other => Err(Error::InvalidArgument(format!(
                "`{other}` is not a conditioning scheme ({})",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

impl std::fmt::Display for Conditioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Path => "path",
            Self::Masked => "masked",
            Self::Langevin => "langevin",
        })
    }
}

/// How unknown values are filled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImputeOptions {
    /// Solver and seed. Record `i`'s noise comes from `seed + i` alone, so a record gets the same
    /// noise in a batch as on its own with seed `seed + i` (a stream).
    pub flow: FlowOptions,
    /// How known values steer the flow.
    pub conditioning: Conditioning,
    /// Extra rounds: re-noise the completed record to t = [`ImputeOptions::restart`] with fresh
    /// noise and run the flow from there again (0 = a single pass).
    pub resample: usize,
    /// Where resampling rounds restart, in (0, 1).
    pub restart: f64,
    /// Independent completions averaged into the result: 1 gives one draw from the model's
    /// conditional distribution; more give an estimate of its mean (lower squared error, less
    /// spread), at that many times the cost.
    pub draws: usize,
}

impl Default for ImputeOptions {
    fn default() -> Self {
        Self {
            flow: FlowOptions::default(),
            conditioning: Conditioning::default(),
            resample: 0,
            restart: 0.5,
            draws: 1,
        }
    }
}

/// The noise generator of record `index` under `seed` (SplitMix64 of their sum).
pub(crate) fn record_rng(seed: u64, index: usize) -> StdRng {
    let mut z = seed.wrapping_add(index as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// The model's velocity on unknown places; on known ones a fixed velocity (zero for
/// [`Conditioning::Masked`], `x − ε` for [`Conditioning::Path`]).
struct Conditioned<'a> {
    model: &'a dyn Backend,
    unknown: &'a [bool],
    known_velocity: Vec<f32>,
}

impl VelocityField for Conditioned<'_> {
    fn record_len(&self) -> usize {
        self.model.file().meta.record_len()
    }

    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>> {
        let mut v = self.model.velocity(x, t)?;
        for ((vi, &u), &k) in v.iter_mut().zip(self.unknown).zip(&self.known_velocity) {
            if !u {
                *vi = k;
            }
        }
        Ok(v)
    }
}

/// One flow run over records in model space from `t0` to the end: unknown places start at
/// `start`, known ones at their conditioning's value at `t0`.
fn run_flow(
    model: &dyn Backend,
    data: &[f32],
    unknown: &[bool],
    start: &[f32],
    noise: &[f32],
    t0: f64,
    options: &ImputeOptions,
) -> Result<(Vec<f32>, SolveStats)> {
    let path = options.conditioning == Conditioning::Path;
    let t = t0 as f32;
    let mut x: Vec<f32> = (0..data.len())
        .map(|i| match (unknown[i], path) {
            (true, _) => start[i],
            (false, true) => t * data[i] + (1.0 - t) * noise[i],
            (false, false) => data[i],
        })
        .collect();
    let known_velocity = (0..data.len())
        .map(|i| {
            if path && !unknown[i] {
                data[i] - noise[i]
            } else {
                0.0
            }
        })
        .collect();
    let field = Conditioned {
        model,
        unknown,
        known_velocity,
    };
    let stats = integrate(&field, &mut x, options.flow.solver, t0, T_END)?;
    Ok((x, stats))
}

/// Score evaluations when the solver gives no step count (dopri5).
const LANGEVIN_DEFAULT_EVALUATIONS: usize = 100;

/// Fills the places of raw `records` where `unknown` (one flag per value, all records) is true.
/// Known values must be finite and come back bit-exact; records with nothing unknown are not run
/// through the flow; a record with everything unknown is a plain sample. Returns raw records.
pub fn fill(
    model: &dyn Backend,
    records: &[f64],
    unknown: &[bool],
    options: &ImputeOptions,
) -> Result<(Vec<f64>, SolveStats)> {
    let meta = &model.file().meta;
    let d = meta.record_len();
    meta.records_in(records.len())?;
    if unknown.len() != records.len() {
        return Err(Error::InvalidArgument(format!(
            "the mask has {} flags for {} values",
            unknown.len(),
            records.len()
        )));
    }
    if options.draws == 0 {
        return Err(Error::InvalidArgument(
            "imputation needs at least one draw".into(),
        ));
    }
    if !(options.restart > 0.0 && options.restart < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "the resampling restart time must lie in (0, 1), got {}",
            options.restart
        )));
    }
    for (i, v) in records.iter().enumerate() {
        if !unknown[i] && !v.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "record {}, value {}: {v} is a known value but not a finite number",
                i / d + 1,
                i % d + 1
            )));
        }
    }
    let mut out = records.to_vec();
    let (mut partial, mut empty) = (vec![], vec![]);
    for r in 0..records.len() / d.max(1) {
        let gaps = &unknown[r * d..(r + 1) * d];
        if gaps.iter().all(|&u| u) {
            empty.push(r);
        } else if gaps.iter().any(|&u| u) {
            partial.push(r);
        }
    }
    // With nothing known there is nothing to condition on: such records are plain flow samples
    // whatever the scheme.
    let plain = ImputeOptions {
        conditioning: match options.conditioning {
            Conditioning::Langevin => Conditioning::Path,
            other => other,
        },
        ..*options
    };
    let mut total = SolveStats::default();
    for (todo, opts) in [(partial, options), (empty, &plain)] {
        for rows in todo.chunks(chunk_rows(d)) {
            let (filled, stats) = fill_rows(model, records, unknown, rows, opts)?;
            total += stats;
            for (k, &r) in rows.iter().enumerate() {
                for j in 0..d {
                    if unknown[r * d + j] {
                        out[r * d + j] = filled[k * d + j];
                    }
                }
            }
        }
    }
    Ok((out, total))
}

/// The completed records `rows` of `records` (raw units, all values of those records).
fn fill_rows(
    model: &dyn Backend,
    records: &[f64],
    unknown: &[bool],
    rows: &[usize],
    options: &ImputeOptions,
) -> Result<(Vec<f64>, SolveStats)> {
    let meta = &model.file().meta;
    let d = meta.record_len();
    // Unknown places hold anything (NaN); give the map a finite stand-in.
    let raw: Vec<f64> = rows
        .iter()
        .flat_map(|&r| (r * d..(r + 1) * d).map(|i| if unknown[i] { 0.0 } else { records[i] }))
        .collect();
    let data: Vec<f32> = meta
        .normalization
        .to_model(&raw, d)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let mask: Vec<bool> = rows
        .iter()
        .flat_map(|&r| unknown[r * d..(r + 1) * d].iter().copied())
        .collect();
    let mut rngs: Vec<StdRng> = rows
        .iter()
        .map(|&r| record_rng(options.flow.seed, r))
        .collect();
    let draw = |rngs: &mut [StdRng]| -> Vec<f32> {
        rngs.iter_mut()
            .flat_map(|rng| {
                (0..d)
                    .map(|_| StandardNormal.sample(rng))
                    .collect::<Vec<f32>>()
            })
            .collect()
    };
    let mut total = SolveStats::default();
    let mut mean = vec![0f32; data.len()];
    for _ in 0..options.draws {
        let x = if options.conditioning == Conditioning::Langevin {
            let evaluations = match options.flow.solver {
                Solver::Euler { steps } | Solver::Heun { steps } | Solver::Rk4 { steps } => steps,
                Solver::Dopri5 { .. } => LANGEVIN_DEFAULT_EVALUATIONS,
            };
            let score = |x: &[f32], t: f32| crate::langevin::model_score(model, x, t);
            let (x, stats) =
                crate::langevin::annealed(&score, &data, &mask, &mut rngs, evaluations)?;
            total += stats;
            x
        } else {
            let noise = draw(&mut rngs);
            let (mut x, stats) = run_flow(model, &data, &mask, &noise, &noise, T_START, options)?;
            total += stats;
            let t = options.restart as f32;
            for _ in 0..options.resample {
                let fresh = draw(&mut rngs);
                let start: Vec<f32> = x
                    .iter()
                    .zip(&fresh)
                    .map(|(&xi, &e)| t * xi + (1.0 - t) * e)
                    .collect();
                let (next, stats) = run_flow(
                    model,
                    &data,
                    &mask,
                    &start,
                    &fresh,
                    options.restart,
                    options,
                )?;
                total += stats;
                x = next;
            }
            x
        };
        for (m, v) in mean.iter_mut().zip(&x) {
            *m += v / options.draws as f32;
        }
    }
    if mean.iter().zip(&mask).any(|(v, &u)| u && !v.is_finite()) {
        return Err(Error::Numeric("the flow produced non-finite values".into()));
    }
    let filled = meta
        .normalization
        .to_raw(&mean.iter().map(|&v| v as f64).collect::<Vec<_>>(), d);
    Ok((filled, total))
}
