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

fn one_shard() -> usize {
    1
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
    /// Shards each batch is split into for data-parallel gradients (1: the whole batch at once). Part
    /// of the run, not of the machine, so the numbers do not depend on the thread count; runs written
    /// before this setting existed load as 1.
    #[serde(default = "one_shard")]
    pub shards: usize,
    /// The normalisation to train in instead of the one computed from the data (taken from another
    /// model with `--normalization-from`, so the two share one model space and compose exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{LossPreset, TimeSampling, TimeTerm};
    use crate::optim::LrSchedule;

    #[test]
    fn a_run_config_written_before_the_recipe_settings_loads_with_the_old_behaviour() {
        let mut cfg = RunConfig {
            data: "moons".parse().unwrap(),
            arch: ArchConfig::Mlp(MlpConfig {
                time_scale: 1000.0,
                ..MlpConfig::new(2, 16, 2)
            }),
            loss: LossConfig {
                time_term: TimeTerm::Gauge,
                time_sampling: TimeSampling::Late { power: 2.0 },
                ..LossConfig::preset(LossPreset::Ritz)
            },
            optim: OptimConfig {
                schedule: LrSchedule::Cosine,
                ..OptimConfig::default()
            },
            batch: 8,
            steps: 10,
            seed: 0,
            checkpoint_every: 5,
            log_every: 1,
            shards: 3,
            normalization: None,
        };
        let mut json = serde_json::to_value(&cfg).unwrap();
        for (section, key) in [
            ("arch", "time_scale"),
            ("loss", "time_term"),
            ("loss", "time_sampling"),
            ("optim", "schedule"),
        ] {
            assert!(
                json[section].as_object_mut().unwrap().remove(key).is_some(),
                "{key}"
            );
        }
        assert!(json.as_object_mut().unwrap().remove("shards").is_some());
        let old: RunConfig = serde_json::from_value(json).unwrap();
        cfg.shards = 1;
        cfg.arch = ArchConfig::Mlp(MlpConfig {
            time_scale: 1.0,
            ..MlpConfig::new(2, 16, 2)
        });
        cfg.loss.time_term = TimeTerm::PerRecord;
        cfg.loss.time_sampling = TimeSampling::Uniform;
        cfg.optim.schedule = LrSchedule::Constant;
        assert_eq!(old, cfg);
    }
}
