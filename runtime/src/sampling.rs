//! Generation: noise → data by integrating the flow, in bounded chunks, returned in raw units.

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::backend::Backend;
use crate::solver::{integrate, SolveStats, Solver, VelocityField, T_END, T_START};
use crate::Error;
use crate::Normalization;

/// `n` samples in raw units (row-major) and the total cost. Noise is drawn from `seed`, so the same
/// seed gives the same samples whatever the chunking.
pub fn sample(
    model: &dyn Backend,
    n: usize,
    solver: Solver,
    seed: u64,
) -> Result<(Vec<f64>, SolveStats), Error> {
    sample_field(model, &model.file().meta.normalization, n, solver, seed)
}

/// [`sample`] for any velocity field whose model space `normalization` maps back to raw units (a
/// single model, or a composition of models sharing one normalisation).
pub fn sample_field<F: VelocityField + ?Sized>(
    field: &F,
    normalization: &Normalization,
    n: usize,
    solver: Solver,
    seed: u64,
) -> Result<(Vec<f64>, SolveStats), Error> {
    let d = field.record_len();
    let mut rng = StdRng::seed_from_u64(seed);
    let noise: Vec<f32> = (0..n * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let mut out = Vec::with_capacity(n * d);
    let mut total = SolveStats::default();
    for chunk in noise.chunks(crate::backend::chunk_rows(d) * d) {
        let mut x = chunk.to_vec();
        let s = integrate(field, &mut x, solver, T_START, T_END)?;
        total += s;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numeric(
                "the flow produced non-finite samples".into(),
            ));
        }
        out.extend(normalization.to_raw(&x.iter().map(|&v| v as f64).collect::<Vec<_>>(), d));
    }
    Ok((out, total))
}
