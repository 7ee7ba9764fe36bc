//! The training run: configuration, the step loop, checkpoints, logs and plots.

mod checkpoint;
mod config;
mod report;
mod run;
mod shards;

pub use checkpoint::{Checkpoint, CheckpointError, CHECKPOINT_JSON, CHECKPOINT_TENSORS};
pub use config::{ArchConfig, RunConfig};
pub use report::{draw_samples, sample_quality, write_plots, SampleQuality};
pub use run::{FitError, Progress, StepLog, Trainer, LOSS_CSV};
pub use shards::{shard_ranges, sharded_step, ShardedStep, StepInputs};
