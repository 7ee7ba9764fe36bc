//! Exact log-likelihood by the instantaneous change of variables: the flow dx/dt = ∇ₓψ carries
//! N(0, I) at t = 0 to the model's density at t = 1, and along a trajectory
//! d log p(x(t), t)/dt = −∇ₓ·v = −Δψ. So
//!
//!   log p₁(x) = log N(x(0); 0, I) − ∫₀¹ Δψ(x(t), t) dt,
//!
//! integrated backwards from the record at t = 1 to t = 0 with RK4, the divergence Δψ = tr ∇ₓ²ψ
//! read from the file's Hessian-vector-product output: exactly (one HVP per coordinate) or by
//! Hutchinson's estimator (seeded Rademacher probes, fixed along each trajectory). Results are in
//! raw units: the normalisation's log-Jacobian is added.

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::backend::Backend;
use crate::solver::{T_END, T_START};
use crate::Error;

/// How Δψ = tr ∇ₓ²ψ is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trace {
    /// D Hessian-vector products with the unit vectors: exact, for small D.
    Exact,
    /// Mean of εᵀ(∇ₓ²ψ)ε over `probes` Rademacher vectors per record, drawn from `seed`.
    Hutchinson { probes: usize, seed: u64 },
}

impl Trace {
    /// Exact for records of at most 32 values, else Hutchinson with one probe.
    pub fn default_for(record_len: usize) -> Self {
        if record_len <= 32 {
            Trace::Exact
        } else {
            Trace::Hutchinson { probes: 1, seed: 0 }
        }
    }
}

/// Log-likelihoods of a batch of records.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLikelihood {
    /// log p(x) in nats, raw units (the density of the records as given).
    pub log_likelihood: Vec<f64>,
    /// Model evaluations (velocity) and Hessian-vector products (per record) spent.
    pub evaluations: usize,
    pub hvps: usize,
}

/// The probes of one chunk: `k` per record (unit vectors for the exact trace), `d` values each,
/// record-major; and the weight of each probe's εᵀHε in the trace (1 for the exact sum, 1/k for
/// Hutchinson's mean).
fn probes(trace: Trace, n: usize, d: usize, first_record: usize) -> (usize, f64, Vec<f32>) {
    match trace {
        Trace::Exact => {
            let mut p = vec![0.0f32; n * d * d];
            for i in 0..n {
                for j in 0..d {
                    p[(i * d + j) * d + j] = 1.0;
                }
            }
            (d, 1.0, p)
        }
        Trace::Hutchinson { probes, seed } => {
            let k = probes.max(1);
            let mut p = Vec::with_capacity(n * k * d);
            for i in 0..n {
                // Per-record streams: the same record gets the same probes however it is chunked.
                let mut rng =
                    StdRng::seed_from_u64(seed ^ ((first_record + i) as u64 * 0x9e37_79b9));
                p.extend((0..k * d).map(|_| if rng.gen::<bool>() { 1.0f32 } else { -1.0 }));
            }
            (k, 1.0 / k as f64, p)
        }
    }
}

/// Δψ estimates at `x` (`n` records), time `t`.
fn divergence(
    model: &dyn Backend,
    x: &[f32],
    t: f32,
    k: usize,
    weight: f64,
    probe: &[f32],
) -> Result<Vec<f64>, Error> {
    let d = model.file().meta.record_len();
    let n = x.len() / d;
    let xs: Vec<f32> = x
        .chunks(d)
        .flat_map(|r| (0..k).flat_map(move |_| r.iter().copied()))
        .collect();
    let hv = model.hvp(&xs, &vec![t; n * k], probe)?;
    Ok((0..n)
        .map(|i| {
            let rows = i * k * d..(i + 1) * k * d;
            hv[rows.clone()]
                .iter()
                .zip(&probe[rows])
                .map(|(&h, &p)| h as f64 * p as f64)
                .sum::<f64>()
                * weight
        })
        .collect())
}

/// Log-likelihoods (nats, model space) of model-space records `x`, by RK4 with `steps` steps from
/// t = 1 to t = 0.
pub fn log_likelihood_model(
    model: &dyn Backend,
    x: &[f32],
    steps: usize,
    trace: Trace,
) -> Result<LogLikelihood, Error> {
    let d = model.file().meta.record_len();
    crate::backend::require_hvp(model.file())?;
    let steps = steps.max(1);
    let per_record = match trace {
        Trace::Exact => d,
        Trace::Hutchinson { probes, .. } => probes.max(1),
    };
    let rows = (crate::backend::chunk_rows(d) / per_record).max(1);
    let mut out = Vec::with_capacity(x.len() / d.max(1));
    let (mut evaluations, mut hvps) = (0, 0);
    let h = (T_START - T_END) / steps as f64;
    let ln_2pi = (2.0 * std::f64::consts::PI).ln();
    for (c, chunk) in x.chunks(rows * d).enumerate() {
        let n = chunk.len() / d;
        let (k, weight, probe) = probes(trace, n, d, c * rows);
        let mut state = chunk.to_vec();
        let mut acc = vec![0.0f64; n];
        let f = |s: &[f32], t: f64| -> Result<(Vec<f32>, Vec<f64>), Error> {
            let v = model.evaluate_velocity(s, &vec![t as f32; n])?;
            Ok((v, divergence(model, s, t as f32, k, weight, &probe)?))
        };
        for i in 0..steps {
            let t = T_END + i as f64 * h;
            let (k1, a1) = f(&state, t)?;
            let shifted = |k: &[f32], c: f64| -> Vec<f32> {
                state
                    .iter()
                    .zip(k)
                    .map(|(&s, &v)| (s as f64 + c * v as f64) as f32)
                    .collect()
            };
            let (k2, a2) = f(&shifted(&k1, h / 2.0), t + h / 2.0)?;
            let (k3, a3) = f(&shifted(&k2, h / 2.0), t + h / 2.0)?;
            let (k4, a4) = f(&shifted(&k3, h), t + h)?;
            for j in 0..state.len() {
                let dv = k1[j] as f64 + 2.0 * k2[j] as f64 + 2.0 * k3[j] as f64 + k4[j] as f64;
                state[j] = (state[j] as f64 + h / 6.0 * dv) as f32;
            }
            for r in 0..n {
                acc[r] += h / 6.0 * (a1[r] + 2.0 * a2[r] + 2.0 * a3[r] + a4[r]);
            }
            evaluations += 4 * n;
            hvps += 4 * n * k;
        }
        if state.iter().any(|v| !v.is_finite()) || acc.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numeric(
                "the reverse flow produced non-finite values".into(),
            ));
        }
        for (r, a) in state.chunks(d).zip(&acc) {
            let norm2: f64 = r.iter().map(|&v| (v as f64).powi(2)).sum();
            // acc = ∫₁⁰ Δψ dt = −∫₀¹ Δψ dt.
            out.push(-0.5 * norm2 - 0.5 * d as f64 * ln_2pi + a);
        }
    }
    Ok(LogLikelihood {
        log_likelihood: out,
        evaluations,
        hvps,
    })
}

/// Log-likelihoods (nats) of raw records `values`: model space plus the normalisation's
/// log-Jacobian, so the density is that of the records in their own units.
pub fn log_likelihood_raw(
    model: &dyn Backend,
    values: &[f64],
    steps: usize,
    trace: Trace,
) -> Result<LogLikelihood, Error> {
    let meta = &model.file().meta;
    let x = meta.raw_to_model(values)?;
    let mut ll = log_likelihood_model(model, &x, steps, trace)?;
    let jac = meta.normalization.log_abs_det_to_model(meta.record_len());
    ll.log_likelihood.iter_mut().for_each(|v| *v += jac);
    Ok(ll)
}

/// Bits per dimension of a log-likelihood over `d` values: −log p / (d·ln 2).
pub fn bits_per_dim(log_likelihood: f64, d: usize) -> f64 {
    -log_likelihood / (d as f64 * std::f64::consts::LN_2)
}
