//! Everything that defines a run; stored in the checkpoint JSON so `--resume` and `export` need no flags.

use serde::{Deserialize, Serialize};
use vpfb_runtime::Normalization;

use crate::data::DataSpec;
use crate::loss::LossConfig;
use crate::nn::{MlpConfig, Network, UnetConfig};
use crate::optim::OptimConfig;

/// The network architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum ArchConfig {
    Mlp(MlpConfig),
    Unet(UnetConfig),
}

impl ArchConfig {
    pub fn network(&self) -> &dyn Network {
        match self {
            ArchConfig::Mlp(m) => m,
            ArchConfig::Unet(u) => u,
        }
    }
}

/// A run's full configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub data: DataSpec,
    pub arch: ArchConfig,
    pub loss: LossConfig,
    pub optim: OptimConfig,
    pub batch: usize,
    /// Total steps the run trains for.
    pub steps: usize,
    pub seed: u64,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Write a loss-log row every this many steps.
    pub log_every: usize,
    /// The normalisation to train in instead of the one computed from the data (taken from another
    /// model with `--normalization-from`, so the two share one model space and compose exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
}
