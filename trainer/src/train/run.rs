//! The training loop: one path batch per step, the VPFB loss through the explicit gradient graph,
//! Adam + EMA, atomic checkpoints, a loss log, and a stop on the first non-finite loss.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{rngs::StdRng, SeedableRng};
use thiserror::Error;
use vpfb_runtime::Normalization;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::shards::{sharded_step, ShardedStep, StepInputs};
use super::RunConfig;
use crate::data::{to_model_space, DataError, Dataset};
use crate::graph::GraphError;
use crate::loss::PathBatch;
use crate::nn::{
    build_potential, init_params, param_gradient_graph, ParamGradientGraph, PotentialGraph,
};
use crate::optim::Optimizer;

/// The loss log in a run folder.
pub const LOSS_CSV: &str = "loss.csv";
const LOSS_HEADER: &str = "step,loss,corr,norm,temb,source,lr";

/// Training failures.
#[derive(Debug, Error)]
pub enum FitError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the loss became non-finite at step {step} (loss {loss}, corr {corr}, norm {norm}, temb {temb}, source {src}); the last good checkpoint ({checkpoint}) was left intact — lower --lr or check the data")]
    NonFinite {
        step: usize,
        loss: f64,
        corr: f64,
        norm: f64,
        temb: f64,
        src: f64,
        checkpoint: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One step's logged values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLog {
    /// Updates applied after this step (1-based).
    pub step: usize,
    /// total, corr, norm, temb, source.
    pub terms: [f64; 5],
    pub lr: f64,
}

/// Receives progress while training.
pub trait Progress {
    fn on_step(&mut self, log: &StepLog, total_steps: usize);
    fn on_checkpoint(&mut self, _step: usize) {}
}

/// A run in progress: model, optimiser state, data and its run folder.
pub struct Trainer {
    pub config: RunConfig,
    pub dir: PathBuf,
    pub pg: PotentialGraph,
    /// `pg` with the gradient of the loss in the parameters (what a step evaluates).
    grad_graph: ParamGradientGraph,
    pub varmap: VarMap,
    pub opt: Optimizer,
    pub dataset: Dataset,
    pub normalization: Normalization,
    pub device: Device,
    pending_log: Vec<StepLog>,
    last_checkpoint: Option<usize>,
}

/// The random stream of one step, derived from (seed, step) so a resumed run draws exactly what an
/// uninterrupted one would.
fn step_rng(seed: u64, step: usize) -> StdRng {
    let mut z = seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> FitError + '_ {
    move |source| FitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a given normalisation that does not fit records of `dim` values.
fn check_normalization(n: &Normalization, dim: usize) -> Result<(), FitError> {
    let (offset, scale) = n.per_feature(dim);
    if offset.len() != dim {
        return Err(FitError::Invalid(format!(
            "the given normalisation is for records of {} values, the data has {dim}",
            offset.len()
        )));
    }
    if scale.iter().chain(&offset).any(|v| !v.is_finite()) || scale.iter().any(|&s| !(s > 0.0)) {
        return Err(FitError::Invalid(
            "the given normalisation needs finite offsets and positive scales".into(),
        ));
    }
    Ok(())
}

impl Trainer {
    fn assemble(
        config: RunConfig,
        device: Device,
    ) -> Result<(PotentialGraph, ParamGradientGraph, Dataset, VarMap), FitError> {
        if config.batch < 2 {
            return Err(FitError::Invalid(format!(
                "--batch must be at least 2 (got {})",
                config.batch
            )));
        }
        if config.shards == 0 {
            return Err(FitError::Invalid("--shards must be at least 1".into()));
        }
        if config.shards > 1 && !config.loss.per_record() {
            return Err(FitError::Invalid(format!(
                "--shards {} needs a loss that is a mean over records; the correlation term and the gauge time term use statistics of the whole batch (use --shards 1)",
                config.shards
            )));
        }
        let dataset = Dataset::load(&config.data, config.seed)?;
        let net = config.arch.network();
        if net.data_shape().iter().product::<usize>() != dataset.dim() {
            return Err(FitError::Invalid(format!(
                "the network expects {:?} values per record, the data has {}",
                net.data_shape(),
                dataset.dim()
            )));
        }
        let pg = build_potential(net)?;
        let grad_graph = param_gradient_graph(&pg)?;
        let varmap = VarMap::new();
        init_params(&pg.params, &varmap, config.seed, DType::F32, &device)?;
        Ok((pg, grad_graph, dataset, varmap))
    }

    fn vars(varmap: &VarMap) -> Vec<(String, Var)> {
        varmap
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Starts a new run in `dir` (created if needed). Refuses a folder that already holds a checkpoint.
    pub fn create(config: RunConfig, dir: &Path, device: Device) -> Result<Self, FitError> {
        if config.steps == 0 {
            return Err(FitError::Invalid("--steps must be positive".into()));
        }
        if Checkpoint::exists(dir) {
            return Err(FitError::Invalid(format!(
                "{} already holds a run; pass --resume to continue it, or choose another --out",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (pg, grad_graph, dataset, varmap) = Self::assemble(config.clone(), device.clone())?;
        let normalization = match &config.normalization {
            Some(given) => {
                check_normalization(given, dataset.dim())?;
                given.clone()
            }
            None => dataset.normalization()?,
        };
        let opt = Optimizer::new(config.optim.clone(), Self::vars(&varmap), config.steps)?;
        let csv = dir.join(LOSS_CSV);
        crate::export::write_atomic(&csv, format!("{LOSS_HEADER}\n").as_bytes())
            .map_err(|e| FitError::Invalid(e.to_string()))?;
        Ok(Self {
            config,
            dir: dir.to_path_buf(),
            pg,
            grad_graph,
            varmap,
            opt,
            dataset,
            normalization,
            device,
            pending_log: vec![],
            last_checkpoint: None,
        })
    }

    /// Continues the run in `dir` from its checkpoint; `steps` may raise the run's total.
    pub fn resume(dir: &Path, steps: Option<usize>, device: Device) -> Result<Self, FitError> {
        let (ck, tensors) = Checkpoint::load(dir, &device)?;
        let mut config = ck.config.clone();
        if let Some(s) = steps {
            if s < ck.step {
                return Err(FitError::Invalid(format!(
                    "--steps {s} is below the checkpoint's step {}",
                    ck.step
                )));
            }
            config.steps = s;
        }
        let (pg, grad_graph, dataset, varmap) = Self::assemble(config.clone(), device.clone())?;
        let mut opt = Optimizer::new(config.optim.clone(), Self::vars(&varmap), config.steps)?;
        let get = |key: String| -> Result<Tensor, FitError> {
            tensors.get(&key).cloned().ok_or_else(|| {
                FitError::Checkpoint(CheckpointError::Corrupt {
                    path: dir.join(super::CHECKPOINT_TENSORS),
                    reason: format!("tensor `{key}` is missing"),
                })
            })
        };
        for (name, var) in opt.params().to_vec() {
            let p = get(format!("param.{name}"))?;
            if p.dims() != var.as_tensor().dims() {
                return Err(FitError::Invalid(format!(
                    "checkpoint tensor param.{name} has shape {:?}, the model {:?}",
                    p.dims(),
                    var.as_tensor().dims()
                )));
            }
            var.set(&p)?;
            opt.ema.insert(name.clone(), get(format!("ema.{name}"))?);
            opt.m.insert(name.clone(), get(format!("adam_m.{name}"))?);
            opt.v.insert(name.clone(), get(format!("adam_v.{name}"))?);
        }
        opt.step = ck.step;
        // Drop loss-log rows written after the checkpoint: they will be recomputed identically.
        let csv = dir.join(LOSS_CSV);
        let kept: String = match std::fs::read_to_string(&csv) {
            Ok(text) => text
                .lines()
                .filter(|l| {
                    l.starts_with("step")
                        || l.split(',')
                            .next()
                            .and_then(|s| s.parse::<usize>().ok())
                            .is_some_and(|s| s <= ck.step)
                })
                .map(|l| format!("{l}\n"))
                .collect(),
            Err(_) => format!("{LOSS_HEADER}\n"),
        };
        crate::export::write_atomic(&csv, kept.as_bytes())
            .map_err(|e| FitError::Invalid(e.to_string()))?;
        Ok(Self {
            config,
            dir: dir.to_path_buf(),
            pg,
            grad_graph,
            varmap,
            opt,
            dataset,
            normalization: ck.normalization,
            device,
            pending_log: vec![],
            last_checkpoint: Some(ck.step),
        })
    }

    /// Parameter tensors by name (the live weights).
    pub fn params(&self) -> HashMap<String, Tensor> {
        self.opt
            .params()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// EMA weights by name (what export and sampling use).
    pub fn ema_params(&self) -> HashMap<String, Tensor> {
        self.opt.ema.clone()
    }

    /// Runs one optimisation step.
    pub fn step(&mut self) -> Result<StepLog, FitError> {
        let step = self.opt.step;
        let mut rng = step_rng(self.config.seed, step);
        let dim = self.dataset.dim();
        let b = self.config.batch;
        let raw = self.dataset.batch(b, &mut rng);
        let xbar: Vec<f32> = to_model_space(&self.normalization, &raw, dim)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let xbar = Tensor::from_vec(xbar, (b, dim), &self.device)?;
        let loss_cfg = &self.config.loss;
        let batch = PathBatch::sample_with(
            xbar,
            &loss_cfg.time_sampling,
            loss_cfg.time_group(),
            &mut rng,
        )?;
        // Plain tensors: the gradient is part of the graph, so Candle need not record the step.
        let params: HashMap<String, Tensor> = self
            .params()
            .into_iter()
            .map(|(name, p)| (name, p.detach()))
            .collect();
        let ShardedStep {
            terms: values,
            grads,
        } = sharded_step(
            &StepInputs {
                graph: &self.grad_graph,
                loss: loss_cfg,
                params: &params,
                dtype: DType::F32,
                device: &self.device,
            },
            &batch,
            self.config.shards,
        )?;
        let log = StepLog {
            step: step + 1,
            terms: values,
            lr: self.opt.lr_at(step),
        };
        if values.iter().any(|v| !v.is_finite()) {
            self.pending_log.push(log);
            let _ = self.flush_log();
            let [loss, corr, norm, temb, src] = values;
            return Err(FitError::NonFinite {
                step: step + 1,
                loss,
                corr,
                norm,
                temb,
                src,
                checkpoint: match self.last_checkpoint {
                    Some(s) => format!("step {s} in {}", self.dir.display()),
                    None => "none written yet".into(),
                },
            });
        }
        self.opt.step(&grads)?;
        if log.step.is_multiple_of(self.config.log_every.max(1)) || log.step == self.config.steps {
            self.pending_log.push(log);
        }
        Ok(log)
    }

    fn flush_log(&mut self) -> Result<(), FitError> {
        if self.pending_log.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(LOSS_CSV);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut text = String::new();
        for l in self.pending_log.drain(..) {
            let [a, b, c, d, e] = l.terms;
            text.push_str(&format!(
                "{},{a:.8e},{b:.8e},{c:.8e},{d:.8e},{e:.8e},{:.6e}\n",
                l.step, l.lr
            ));
        }
        f.write_all(text.as_bytes()).map_err(io_err(&path))
    }

    /// Writes the loss rows so far and a checkpoint at the current step.
    pub fn checkpoint(&mut self) -> Result<(), FitError> {
        self.flush_log()?;
        let mut tensors = HashMap::new();
        for (name, var) in self.opt.params() {
            tensors.insert(format!("param.{name}"), var.as_tensor().clone());
            tensors.insert(format!("ema.{name}"), self.opt.ema[name].clone());
            tensors.insert(format!("adam_m.{name}"), self.opt.m[name].clone());
            tensors.insert(format!("adam_v.{name}"), self.opt.v[name].clone());
        }
        let ck = Checkpoint {
            format: 0,
            step: self.opt.step,
            config: self.config.clone(),
            normalization: self.normalization.clone(),
            rng: format!(
                "derived per step from seed {} and the step number",
                self.config.seed
            ),
            tensors_fnv1a64: String::new(),
            tensors_bytes: 0,
        };
        ck.save(&self.dir, &tensors)?;
        self.last_checkpoint = Some(self.opt.step);
        Ok(())
    }

    /// Trains until the configured number of steps, checkpointing every `checkpoint_every` steps and at
    /// the end.
    pub fn run(&mut self, progress: &mut dyn Progress) -> Result<(), FitError> {
        while self.opt.step < self.config.steps {
            let log = self.step()?;
            progress.on_step(&log, self.config.steps);
            if log.step % self.config.checkpoint_every.max(1) == 0 || log.step == self.config.steps
            {
                self.checkpoint()?;
                progress.on_checkpoint(log.step);
            }
        }
        if self.last_checkpoint != Some(self.opt.step) {
            self.checkpoint()?;
        }
        Ok(())
    }
}
