//! Training data: built-in 2-D generators and CSV tables, standardised per feature, with a held-out
//! validation split. The standardisation is recorded in the exported model so the runtime takes and
//! returns raw units.

mod spec;
mod toy2d;

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use thiserror::Error;
use vpfb_runtime::Normalization;

pub use spec::DataSpec;
pub use toy2d::Toy2d;

/// Data loading failures.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("unknown data spec `{0}` (expected one of: moons, circles, 8gaussians, checkerboard, spirals, pinwheel, csv:PATH, idx:PATH, images:DIR)")]
    UnknownSpec(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Csv { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// A source of training records in raw units.
pub enum Dataset {
    /// An endless generator: every batch is fresh.
    Generator(Toy2d),
    /// A finite table, split into training and validation rows.
    Table {
        dim: usize,
        train: Vec<f64>,
        val: Vec<f64>,
        /// `[C, H, W]` when the records are images (pixel values 0–255).
        image: Option<[usize; 3]>,
    },
}

/// Size of a generator's validation sample.
pub const GENERATOR_VAL: usize = 5000;
/// Fraction of table rows held out for validation.
pub const TABLE_VAL_FRACTION: f64 = 0.1;

impl Dataset {
    /// Loads the data a spec names; `seed` fixes the train/validation split of tables.
    pub fn load(spec: &DataSpec, seed: u64) -> Result<Self, DataError> {
        match spec {
            DataSpec::Toy(t) => Ok(Dataset::Generator(*t)),
            DataSpec::Csv(path) => {
                let table = vpfb_runtime::io::read_csv(path).map_err(|e| match e {
                    vpfb_runtime::Error::Read { source, .. } => DataError::Io {
                        path: path.display().to_string(),
                        source,
                    },
                    vpfb_runtime::Error::Format { reason, .. } => DataError::Csv {
                        path: path.display().to_string(),
                        reason,
                    },
                    other => DataError::Csv {
                        path: path.display().to_string(),
                        reason: other.to_string(),
                    },
                })?;
                split(path, table.cols, table.values, None, seed)
            }
            DataSpec::Idx(path) | DataSpec::Images(path) => {
                let set = if matches!(spec, DataSpec::Idx(_)) {
                    vpfb_runtime::images::read_idx(path)
                } else {
                    vpfb_runtime::images::read_image_dir(path)
                }
                .map_err(|e| match e {
                    vpfb_runtime::Error::Read { path, source } => DataError::Io {
                        path: path.display().to_string(),
                        source,
                    },
                    other => DataError::Invalid(other.to_string()),
                })?;
                let (shape, dim) = (set.shape, set.record_len());
                split(path, dim, set.pixels, Some(shape), seed)
            }
        }
    }

    /// Shape of one record: `[D]`, or `[C, H, W]` for images.
    pub fn record_shape(&self) -> Vec<usize> {
        match self {
            Dataset::Table {
                image: Some(shape), ..
            } => shape.to_vec(),
            _ => vec![self.dim()],
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            Dataset::Generator(_) => 2,
            Dataset::Table { dim, .. } => *dim,
        }
    }

    /// `n` training records (raw units, row-major), drawn with `rng`.
    pub fn batch(&self, n: usize, rng: &mut impl Rng) -> Vec<f64> {
        match self {
            Dataset::Generator(t) => t.sample(n, rng),
            Dataset::Table { dim, train, .. } => {
                let rows = train.len() / dim;
                (0..n)
                    .flat_map(|_| {
                        let i = rng.gen_range(0..rows);
                        train[i * dim..(i + 1) * dim].iter().copied()
                    })
                    .collect()
            }
        }
    }

    /// The held-out validation records (raw units).
    pub fn validation(&self) -> Vec<f64> {
        match self {
            Dataset::Generator(t) => t.sample(GENERATOR_VAL, &mut StdRng::seed_from_u64(0x7a1d)),
            Dataset::Table { val, .. } => val.clone(),
        }
    }

    /// Per-feature standardisation from the training data (a large fixed sample for generators).
    pub fn normalization(&self) -> Result<Normalization, DataError> {
        let dim = self.dim();
        let data = match self {
            Dataset::Generator(t) => t.sample(100_000, &mut StdRng::seed_from_u64(0x57a7)),
            Dataset::Table { image: Some(_), .. } => {
                // Pixels 0–255 map to [-1, 1] (docs/method.md §1).
                return Ok(Normalization::Affine {
                    offset: 127.5,
                    scale: 127.5,
                });
            }
            Dataset::Table { train, .. } => train.clone(),
        };
        let n = (data.len() / dim) as f64;
        let mut mean = vec![0.0; dim];
        for row in data.chunks(dim) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n;
            }
        }
        let mut var = vec![0.0; dim];
        for row in data.chunks(dim) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m) / (n - 1.0).max(1.0);
            }
        }
        let std: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
        if let Some(d) = std.iter().position(|&s| !(s > 1e-12)) {
            return Err(DataError::Invalid(format!(
                "feature {d} is constant in the training data; drop that column"
            )));
        }
        Ok(Normalization::Standardize { mean, std })
    }
}

/// Shuffles `rows` (seeded) and holds out [`TABLE_VAL_FRACTION`] of them for validation.
fn split(
    path: &std::path::Path,
    dim: usize,
    rows: Vec<f64>,
    image: Option<[usize; 3]>,
    seed: u64,
) -> Result<Dataset, DataError> {
    let n = rows.len() / dim.max(1);
    if n < 10 {
        return Err(DataError::Csv {
            path: path.display().to_string(),
            reason: format!("only {n} records; need at least 10"),
        });
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5eed_5b11));
    let n_val = ((n as f64 * TABLE_VAL_FRACTION).round() as usize).max(1);
    let pick = |ids: &[usize]| {
        ids.iter()
            .flat_map(|&i| rows[i * dim..(i + 1) * dim].iter().copied())
            .collect()
    };
    Ok(Dataset::Table {
        dim,
        val: pick(&idx[..n_val]),
        train: pick(&idx[n_val..]),
        image,
    })
}

/// Maps raw rows to model space (the runtime's own mapping, so both halves agree by construction).
pub fn to_model_space(norm: &Normalization, raw: &[f64], dim: usize) -> Vec<f64> {
    norm.to_model(raw, dim)
}

/// Maps model-space rows back to raw units.
pub fn to_raw_space(norm: &Normalization, model: &[f64], dim: usize) -> Vec<f64> {
    norm.to_raw(model, dim)
}
