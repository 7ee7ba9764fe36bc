//! Checkpoints: `checkpoint.safetensors` (parameters, EMA, Adam moments) and `checkpoint.json` (config,
//! step, data normalisation, and a hash of the tensor file). Both are written to temporary files and
//! renamed, the JSON last, so a crash at any moment leaves the previous checkpoint usable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use vpfb_runtime::Normalization;

use super::RunConfig;

pub const CHECKPOINT_JSON: &str = "checkpoint.json";
pub const CHECKPOINT_TENSORS: &str = "checkpoint.safetensors";
const FORMAT: u32 = 1;

/// Checkpoint failures.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("no checkpoint in {0} (expected {CHECKPOINT_JSON} and {CHECKPOINT_TENSORS})")]
    Missing(PathBuf),
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The JSON half of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// Updates applied.
    pub step: usize,
    pub config: RunConfig,
    pub normalization: Normalization,
    /// The per-step random streams are derived from (seed, step), so this is the whole RNG state.
    pub rng: String,
    /// FNV-1a 64 of the tensor file, hex.
    pub tensors_fnv1a64: String,
    pub tensors_bytes: u64,
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    crate::export::write_atomic(path, bytes).map_err(|e| match e {
        crate::export::ExportError::Io { path, source } => CheckpointError::Io { path, source },
        other => CheckpointError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

impl Checkpoint {
    /// Writes the tensors and this JSON into `dir`.
    pub fn save(
        mut self,
        dir: &Path,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<(), CheckpointError> {
        let tpath = dir.join(CHECKPOINT_TENSORS);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io {
                path: path.clone(),
                source,
            }
        };
        let bytes = safetensors_bytes(tensors).map_err(|e| CheckpointError::Io {
            path: tpath.clone(),
            source: std::io::Error::other(e),
        })?;
        self.format = FORMAT;
        self.tensors_fnv1a64 = format!("{:016x}", fnv1a64(&bytes));
        self.tensors_bytes = bytes.len() as u64;
        write_atomic(&tpath, &bytes)?;
        let json = serde_json::to_vec_pretty(&self)
            .map_err(|e| io(&dir.join(CHECKPOINT_JSON))(std::io::Error::other(e)))?;
        write_atomic(&dir.join(CHECKPOINT_JSON), &json)
    }

    /// Whether `dir` holds a checkpoint.
    pub fn exists(dir: &Path) -> bool {
        dir.join(CHECKPOINT_JSON).exists()
    }

    /// Reads the JSON half of the checkpoint in `dir` (the run's config and step) without its tensors.
    pub fn read_json(dir: &Path) -> Result<Self, CheckpointError> {
        let jpath = dir.join(CHECKPOINT_JSON);
        if !jpath.exists() {
            return Err(CheckpointError::Missing(dir.to_path_buf()));
        }
        let text = std::fs::read(&jpath).map_err(|source| CheckpointError::Io {
            path: jpath.clone(),
            source,
        })?;
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: jpath.clone(),
            reason,
        };
        let ck: Checkpoint = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if ck.format != FORMAT {
            return Err(corrupt(format!(
                "format {} (this build reads {FORMAT})",
                ck.format
            )));
        }
        Ok(ck)
    }

    /// Reads and verifies the checkpoint in `dir`.
    pub fn load(
        dir: &Path,
        device: &Device,
    ) -> Result<(Self, HashMap<String, Tensor>), CheckpointError> {
        let tpath = dir.join(CHECKPOINT_TENSORS);
        if !tpath.exists() {
            return Err(CheckpointError::Missing(dir.to_path_buf()));
        }
        let ck = Self::read_json(dir)?;
        let corrupt = |path: &Path, reason: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(&tpath).map_err(|source| CheckpointError::Io {
            path: tpath.clone(),
            source,
        })?;
        if bytes.len() as u64 != ck.tensors_bytes
            || format!("{:016x}", fnv1a64(&bytes)) != ck.tensors_fnv1a64
        {
            return Err(corrupt(
                &tpath,
                format!("{} bytes with a hash that does not match {CHECKPOINT_JSON} (truncated or modified)", bytes.len()),
            ));
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| corrupt(&tpath, e.to_string()))?;
        Ok((ck, tensors))
    }
}

fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>, String> {
    // Sorted keys give byte-stable files for identical states.
    let mut items: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    safetensors::serialize(items, None).map_err(|e| e.to_string())
}
