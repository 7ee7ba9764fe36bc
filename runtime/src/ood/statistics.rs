//! Flow statistics of a record at several times: the model evaluated along the path
//! x_t = t·x + (1 − t)·z (z = 0 or one fixed seeded noise draw), one small vector per record.
//!
//! Per time t, with v = ∇ₓψ(x_t, t): ψ, ∂ψ/∂t, log‖v‖², log‖ε̂‖² with ε̂ = x_t − t·v (the noise the
//! flow predicts) and log‖x̂ − x‖² with x̂ = x_t + (1 − t)·v (the one-step denoised record; absent at
//! t = 1, where x̂ = x); and once per record the input statistic ‖x‖². All times of a chunk of records
//! go through the backend as one batch.

use std::fmt;
use std::str::FromStr;

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::Error;

/// What the path starts from besides the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anchor {
    /// z = 0: x_t = t·x.
    Zero,
    /// z = one draw of N(0, I) in model space, the same for every record: the first `record_len`
    /// standard normals (f32) of `StdRng::seed_from_u64(seed)` (rand 0.8, ChaCha12).
    Noise { seed: u64 },
}

impl Anchor {
    /// z for records of `d` values.
    pub fn draw(&self, d: usize) -> Vec<f32> {
        match self {
            Anchor::Zero => vec![0.0; d],
            Anchor::Noise { seed } => {
                let mut rng = StdRng::seed_from_u64(*seed);
                (0..d).map(|_| StandardNormal.sample(&mut rng)).collect()
            }
        }
    }
}

/// One statistic of one time (or of the input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Psi,
    DpsiDt,
    LogGrad2,
    LogNoise2,
    LogDenoise2,
    /// ‖x‖² of the model-space record (no time).
    XNorm2,
}

impl Kind {
    pub const PER_TIME: [Kind; 5] = [
        Kind::Psi,
        Kind::DpsiDt,
        Kind::LogGrad2,
        Kind::LogNoise2,
        Kind::LogDenoise2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Psi => "psi",
            Kind::DpsiDt => "dpsi_dt",
            Kind::LogGrad2 => "log_grad2",
            Kind::LogNoise2 => "log_noise2",
            Kind::LogDenoise2 => "log_denoise2",
            Kind::XNorm2 => "x_norm2",
        }
    }
}

/// A statistic with its time: written `psi@0.8`, `log_grad2@1` or `x_norm2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatId {
    pub kind: Kind,
    /// The path time (unused for [`Kind::XNorm2`]).
    pub t: f64,
}

impl fmt::Display for StatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::XNorm2 => f.write_str(self.kind.name()),
            k => write!(f, "{}@{}", k.name(), self.t),
        }
    }
}

impl FromStr for StatId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == Kind::XNorm2.name() {
            return Ok(StatId {
                kind: Kind::XNorm2,
                t: 1.0,
            });
        }
        let (name, t) = s
            .split_once('@')
            .ok_or_else(|| format!("statistic `{s}` is not NAME@TIME or x_norm2"))?;
        let kind = Kind::PER_TIME
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| format!("unknown statistic `{name}` in `{s}`"))?;
        let t: f64 = t
            .parse()
            .ok()
            .filter(|t: &f64| (0.0..=1.0).contains(t))
            .ok_or_else(|| format!("`{s}`: the time must be a number in [0, 1]"))?;
        Ok(StatId { kind, t })
    }
}

/// Every statistic the grid `times` yields, in table order: per time the five flow statistics
/// (without log_denoise2 at t = 1), then x_norm2.
pub fn all_statistics(times: &[f64]) -> Vec<StatId> {
    let mut out = Vec::new();
    for &t in times {
        for kind in Kind::PER_TIME {
            if !(kind == Kind::LogDenoise2 && t >= 1.0) {
                out.push(StatId { kind, t });
            }
        }
    }
    out.push(StatId {
        kind: Kind::XNorm2,
        t: 1.0,
    });
    out
}

/// Statistics of `n` records: `names.len()` values per record, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct StatTable {
    pub names: Vec<StatId>,
    pub values: Vec<f64>,
}

impl StatTable {
    pub fn rows(&self) -> usize {
        self.values.len() / self.names.len().max(1)
    }

    /// The column of `id`, if the table has it.
    pub fn column(&self, id: &StatId) -> Option<Vec<f64>> {
        let j = self.names.iter().position(|n| n == id)?;
        Some(
            self.values
                .iter()
                .skip(j)
                .step_by(self.names.len())
                .copied()
                .collect(),
        )
    }
}

/// log of a squared norm, floored so that an exact zero stays finite.
fn log_norm2(v: impl Iterator<Item = f64>) -> f64 {
    (v.map(|a| a * a).sum::<f64>() + 1e-30).ln()
}

/// The statistics of `times` × [`Kind::PER_TIME`] (+ x_norm2) for model-space records `x`, evaluated
/// by `model` with all times of a chunk of records in one batch.
pub fn compute(
    model: &dyn Backend,
    x: &[f32],
    times: &[f64],
    anchor: &Anchor,
) -> Result<StatTable, Error> {
    compute_with_progress(model, x, times, anchor, &mut |_, _| {})
}

/// [`compute`], calling `progress(records done, records in all)` after every chunk.
pub fn compute_with_progress(
    model: &dyn Backend,
    x: &[f32],
    times: &[f64],
    anchor: &Anchor,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<StatTable, Error> {
    let d = model.file().meta.record_len();
    let names = all_statistics(times);
    let k = times.len();
    let z = anchor.draw(d);
    let rows_per_chunk = (crate::backend::chunk_rows(d) / k.max(1)).max(1);
    let mut values = Vec::with_capacity(x.len() / d.max(1) * names.len());
    for chunk in x.chunks(rows_per_chunk * d) {
        let n = chunk.len() / d;
        // Record-major: record i at time j is batch row i·K + j.
        let mut xt = Vec::with_capacity(n * k * d);
        let mut tt = Vec::with_capacity(n * k);
        for rec in chunk.chunks(d) {
            for &t in times {
                let (a, b) = (t as f32, 1.0 - t as f32);
                xt.extend(rec.iter().zip(&z).map(|(&xi, &zi)| a * xi + b * zi));
                tt.push(t as f32);
            }
        }
        let e = model.evaluate(&xt, &tt)?;
        for (i, rec) in chunk.chunks(d).enumerate() {
            for (j, &t) in times.iter().enumerate() {
                let row = i * k + j;
                let (xr, vr) = (
                    &xt[row * d..(row + 1) * d],
                    &e.velocity[row * d..(row + 1) * d],
                );
                values.push(e.psi[row] as f64);
                values.push(e.dpsi_dt[row] as f64);
                values.push(log_norm2(vr.iter().map(|&v| v as f64)));
                values.push(log_norm2(
                    xr.iter().zip(vr).map(|(&a, &v)| a as f64 - t * v as f64),
                ));
                if t < 1.0 {
                    values.push(log_norm2(
                        xr.iter()
                            .zip(vr)
                            .zip(rec)
                            .map(|((&a, &v), &x0)| a as f64 + (1.0 - t) * v as f64 - x0 as f64),
                    ));
                }
            }
            values.push(rec.iter().map(|&v| (v as f64).powi(2)).sum());
        }
        progress(values.len() / names.len(), x.len() / d.max(1));
    }
    Ok(StatTable { names, values })
}
