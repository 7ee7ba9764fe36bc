use candle_core::Device;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use vpfb_trainer::data::DataSpec;
use vpfb_trainer::loss::{
    CovMode, LossConfig, LossPreset, Reduce, SourceTerm, TimeSampling, TimeTerm,
};
use vpfb_trainer::nn::{MlpConfig, UnetConfig, UnetPreset};
use vpfb_trainer::optim::{LrSchedule, OptimConfig};
use vpfb_trainer::train::{
    sample_quality, write_plots, ArchConfig, Checkpoint, RunConfig, Trainer,
};

use vpfb_runtime::{ModelFile, Normalization};

use crate::progress::Reporter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// Time-embedded MLP for vectors (2-D toys, tables).
    Mlp,
    /// Convolutional UNet for images (idx: and images: data).
    Unet,
}

#[derive(Args)]
pub struct FitArgs {
    /// Training data: moons, circles, 8gaussians, checkerboard, spirals, pinwheel, csv:PATH,
    /// idx:PATH (MNIST-format images, .gz or not) or images:DIR (same-sized PNG/JPEG files).
    #[arg(long, required_unless_present = "resume")]
    data: Option<String>,
    /// Total optimisation steps (with --resume: the new total, at least the checkpoint's step).
    #[arg(long)]
    steps: Option<usize>,
    /// Batch size [default: 1024 for the MLP (docs/training.md: the study behind it), 512 for the
    /// UNet].
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate, after the warm-up [default: 2e-3 for the MLP, 1e-3 for the UNet].
    #[arg(long)]
    lr: Option<f64>,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Learning rate after the warm-up: held (constant) or decayed to zero at the last step
    /// [default: cosine for the MLP, constant for the UNet].
    #[arg(long, value_enum)]
    lr_schedule: Option<LrSchedule>,
    /// Per-element gradient clip multiple c in ±(c·√v̂ + 0.1); negative disables.
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    grad_clip: f64,
    /// Upper bound of the EMA decay (the decay is min(this, (1+n)/(10+n))).
    #[arg(long, default_value_t = 0.999)]
    ema_decay: f64,
    /// Seed for weights, batches and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Network architecture.
    #[arg(long, value_enum, default_value_t = Arch::Mlp)]
    arch: Arch,
    /// UNet size preset; --base, --levels and --blocks override single settings of it.
    #[arg(long, value_enum, default_value_t = UnetPreset::Cpu)]
    preset: UnetPreset,
    /// UNet channels at the first level.
    #[arg(long)]
    base: Option<usize>,
    /// UNet resolution levels (each halves the image; the extent must stay even).
    #[arg(long)]
    levels: Option<usize>,
    /// UNet residual blocks per level.
    #[arg(long)]
    blocks: Option<usize>,
    /// UNet levels with self-attention, comma-separated (0 = full resolution); `none` for none.
    #[arg(long)]
    attention: Option<String>,
    /// MLP hidden width.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// MLP hidden layers.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// MLP sinusoidal time features (even).
    #[arg(long, default_value_t = 32)]
    time_features: usize,
    /// MLP time-embedding width.
    #[arg(long, default_value_t = 32)]
    time_dim: usize,
    /// MLP multiplier of t before the sinusoidal time features.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Loss preset; the flags below override single switches of it.
    #[arg(long, value_enum, default_value_t = LossPreset::Ritz)]
    loss: LossPreset,
    /// Path-wise source term (the authors' cvf_mode).
    #[arg(long, value_enum)]
    source: Option<SourceTerm>,
    #[arg(long)]
    source_weight: Option<f64>,
    /// (1 − t) exponent of the source term (std_power_lap).
    #[arg(long)]
    source_power: Option<f64>,
    /// Correlation term normalisation (cov_mode); `off` removes it.
    #[arg(long, value_enum)]
    cov: Option<CovMode>,
    /// Weight of the correlation term (turns it on as `corr` for presets without it).
    #[arg(long)]
    corr_weight: Option<f64>,
    /// (1 − t) exponent inside Γ (std_power_cov).
    #[arg(long)]
    cov_power: Option<f64>,
    #[arg(long)]
    norm_weight: Option<f64>,
    /// (1 − t) exponent of the norm term (std_power_norm).
    #[arg(long)]
    norm_power: Option<f64>,
    #[arg(long)]
    temb_weight: Option<f64>,
    /// (1 − t) exponent of the time term (std_power_temb).
    #[arg(long)]
    temb_power: Option<f64>,
    /// What the time term constrains: every record's ∂ψ/∂t, or only its per-t mean (gauge).
    #[arg(long, value_enum)]
    time_term: Option<TimeTerm>,
    /// Distribution of training times: `uniform` (the default), `logit-normal:MEAN,STD` (plain
    /// `logit-normal` is 0,1) or `late:POWER` (t = 1 − v^POWER, more training near the data; plain
    /// `late` is 2).
    #[arg(long)]
    time_sampling: Option<TimeSampling>,
    /// Average or sum per-sample terms over data dimensions.
    #[arg(long, value_enum)]
    reduce: Option<Reduce>,
    /// Checkpoint every K steps (and at the end).
    #[arg(long, default_value_t = 1000)]
    checkpoint_every: usize,
    /// Loss-log row every K steps.
    #[arg(long, default_value_t = 10)]
    log_every: usize,
    /// Skip the end-of-run sample-quality evaluation (up to 5 000 flow samples, RK4 100 steps, against
    /// fresh true samples or the held-out rows of a table).
    #[arg(long)]
    no_eval: bool,
    /// Run folder: checkpoints, loss.csv, plots, metrics.json.
    #[arg(long)]
    out: PathBuf,
    /// Train in the normalised space of this model file (its per-feature offsets and scales) instead
    /// of standardising the data: models meant to be composed with `vpfb compose` then share one
    /// space exactly. The model's records must have the data's shape.
    #[arg(long, conflicts_with = "resume")]
    normalization_from: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (bit-identical to an uninterrupted run).
    #[arg(long)]
    resume: bool,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads [default: RAYON_NUM_THREADS when set, else every core; 1 for an MLP trained
    /// without shards]. With more than one, each batch is split into shards that train side by side
    /// (see --shards).
    #[arg(long)]
    threads: Option<usize>,
    /// Split each batch into this many shards whose gradients are computed in parallel and summed
    /// [default: the thread count on the CPU, at most the batch; 1 for `--loss paper`, whose
    /// correlation term needs the whole batch, and on a GPU]. Recorded in the run: its numbers depend
    /// on the shard count, not on the threads that run the shards.
    #[arg(long, conflicts_with = "resume")]
    shards: Option<usize>,
}

/// With shards running side by side, each shard's matrix products run on its own thread: Candle splits
/// a product over RAYON_NUM_THREADS threads, and those splits waited on threads busy with the other
/// shard (a UNet step at batch 32 took 1.07 s with two shards on two threads against 0.67 s with one
/// shard on one). rayon's pool keeps `threads` workers for the shards.
fn shards_own_the_threads(threads: usize) {
    // The pool may already exist (built from RAYON_NUM_THREADS by data loading); it then has `threads`
    // workers already.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    // No other thread runs now: rayon's workers are idle until the first training step, and
    // Candle reads the variable only inside tensor operations.
    std::env::set_var("RAYON_NUM_THREADS", "1");
}

/// The MLP's default batch, peak learning rate and schedule: the best of the recipe study (every
/// built-in 2-D set at 1.71 or better and no table worse, against 3.18 with batch 512 at a constant
/// 1e-3; docs/training.md).
const MLP_BATCH: usize = 1024;
const MLP_LR: f64 = 2e-3;
const MLP_SCHEDULE: LrSchedule = LrSchedule::Cosine;

/// The shard count of a new run: `--shards`, else one shard per CPU thread where the loss allows it.
fn shard_count(a: &FitArgs, loss: &LossConfig, device: &Device, batch: usize) -> usize {
    a.shards.unwrap_or(if loss.per_record() && device.is_cpu() {
        candle_core::utils::get_num_threads().clamp(1, batch.max(1))
    } else {
        1
    })
}

/// The CPU thread count for this run: `--threads`, else RAYON_NUM_THREADS, else every core, except 1
/// for an MLP whose loss cannot be split into shards: its small matrix products gain nothing from
/// splitting them instead (on 2 cores one thread took 0.86× the time of two, with 0.44× the CPU). A
/// resumed run's settings are read from its checkpoint.
fn thread_count(a: &FitArgs) -> Result<Option<usize>> {
    if let Some(n) = a.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        return Ok(Some(n));
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return Ok(None);
    }
    let unsplit_mlp = if a.resume {
        // A missing or broken checkpoint is reported by the resume itself.
        Checkpoint::read_json(&a.out)
            .is_ok_and(|ck| matches!(ck.config.arch, ArchConfig::Mlp(_)) && ck.config.shards == 1)
    } else {
        a.arch == Arch::Mlp && (a.shards == Some(1) || !loss_config(a).per_record())
    };
    Ok(if unsplit_mlp { Some(1) } else { None })
}

fn unet_config(a: &FitArgs, image: [usize; 3]) -> Result<UnetConfig> {
    let mut c = UnetConfig::preset(a.preset, image);
    if let Some(levels) = a.levels {
        if levels == 0 {
            bail!("--levels must be at least 1");
        }
        c = c.with_levels(levels);
    }
    if let Some(base) = a.base {
        c = c.with_base(base);
    }
    if let Some(blocks) = a.blocks {
        c.blocks = blocks;
    }
    if let Some(list) = &a.attention {
        c.attention = if list == "none" {
            vec![]
        } else {
            list.split(',')
                .map(|v| {
                    let l: usize = v
                        .trim()
                        .parse()
                        .with_context(|| format!("--attention: `{v}` is not a level number"))?;
                    if l >= c.mults.len() {
                        bail!(
                            "--attention: level {l} does not exist ({} levels)",
                            c.mults.len()
                        );
                    }
                    Ok(l)
                })
                .collect::<Result<_>>()?
        };
    }
    Ok(c)
}

fn loss_config(a: &FitArgs) -> LossConfig {
    let mut c = LossConfig::preset(a.loss);
    if let Some(v) = a.source {
        c.source = v;
    }
    if let Some(v) = a.source_weight {
        c.source_weight = v;
    }
    if let Some(v) = a.source_power {
        c.source_power = v;
    }
    if let Some(w) = a.corr_weight {
        c.cov_weight = w;
        if c.cov == CovMode::Off && w != 0.0 {
            c.cov = CovMode::Corr;
        }
    }
    if let Some(v) = a.cov {
        c.cov = v;
    }
    if let Some(v) = a.cov_power {
        c.cov_power = v;
    }
    if let Some(v) = a.norm_weight {
        c.norm_weight = v;
    }
    if let Some(v) = a.norm_power {
        c.norm_power = v;
    }
    if let Some(v) = a.temb_weight {
        c.temb_weight = v;
    }
    if let Some(v) = a.temb_power {
        c.temb_power = v;
    }
    if let Some(v) = a.reduce {
        c.reduce = v;
    }
    if let Some(v) = a.time_term {
        c.time_term = v;
    }
    if let Some(v) = a.time_sampling {
        c.time_sampling = v;
    }
    c
}

/// The normalisation stored in the model file at `path`, whose records must have `shape`.
fn normalization_from(path: &std::path::Path, shape: &[usize]) -> Result<Normalization> {
    let file = ModelFile::load(path)
        .with_context(|| format!("--normalization-from {}", path.display()))?;
    if file.meta.data_shape != shape {
        bail!(
            "--normalization-from {}: the model's records have shape {:?}, the data's {shape:?}",
            path.display(),
            file.meta.data_shape
        );
    }
    Ok(file.meta.normalization)
}

pub fn run(a: FitArgs) -> Result<()> {
    // Candle's CPU kernels and rayon's pool read RAYON_NUM_THREADS when they first run; nothing has run
    // yet and this thread is the only one, so setting it here is safe.
    if let Some(n) = thread_count(&a)? {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let device = vpfb_trainer::device::parse_device(&a.device).context("--device")?;
    let mut trainer = if a.resume {
        Trainer::resume(&a.out, a.steps, device.clone())
            .with_context(|| format!("resuming the run in {}", a.out.display()))?
    } else {
        let data: DataSpec = a
            .data
            .as_deref()
            .unwrap_or_default()
            .parse()
            .context("--data")?;
        let Some(steps) = a.steps else {
            bail!("--steps is required for a new run")
        };
        let shape = vpfb_trainer::data::Dataset::load(&data, a.seed)
            .with_context(|| format!("loading {data}"))?
            .record_shape();
        let arch = match (a.arch, shape.as_slice()) {
            (Arch::Mlp, _) => {
                if a.time_features == 0 || !a.time_features.is_multiple_of(2) {
                    bail!("--time-features must be a positive even number (got {})", a.time_features);
                }
                if a.time_dim == 0 || !(a.time_scale.is_finite() && a.time_scale > 0.0) {
                    bail!(
                        "--time-dim must be positive and --time-scale positive and finite (got {} and {})",
                        a.time_dim,
                        a.time_scale
                    );
                }
                ArchConfig::Mlp(MlpConfig {
                    time_features: a.time_features,
                    time_dim: a.time_dim,
                    time_scale: a.time_scale,
                    ..MlpConfig::new(shape.iter().product(), a.hidden, a.layers)
                })
            }
            (Arch::Unet, &[c, h, w]) => ArchConfig::Unet(unet_config(&a, [c, h, w])?),
            (Arch::Unet, other) => bail!(
                "--arch unet needs image data (idx:PATH or images:DIR); {data} has records of shape {other:?}"
            ),
        };
        let loss = loss_config(&a);
        let mlp = matches!(arch, ArchConfig::Mlp(_));
        let batch = a.batch.unwrap_or(if mlp { MLP_BATCH } else { 512 });
        let lr = a.lr.unwrap_or(if mlp { MLP_LR } else { 1e-3 });
        let shards = shard_count(&a, &loss, &device, batch);
        let config = RunConfig {
            data,
            arch,
            loss,
            optim: OptimConfig {
                lr,
                warmup: a.warmup,
                grad_clip: a.grad_clip,
                ema_decay: a.ema_decay,
                schedule: a.lr_schedule.unwrap_or(if mlp {
                    MLP_SCHEDULE
                } else {
                    LrSchedule::Constant
                }),
                ..OptimConfig::default()
            },
            batch,
            steps,
            seed: a.seed,
            checkpoint_every: a.checkpoint_every,
            log_every: a.log_every,
            shards,
            normalization: match &a.normalization_from {
                Some(path) => Some(normalization_from(path, &shape)?),
                None => None,
            },
        };
        Trainer::create(config, &a.out, device)
            .with_context(|| format!("starting a run in {}", a.out.display()))?
    };
    let threads = candle_core::utils::get_num_threads();
    if trainer.config.shards > 1 && threads > 1 {
        shards_own_the_threads(threads);
    }
    let start_step = trainer.opt.step;
    println!(
        "training {} on {} for steps {}..{} (batch {} in {} shard(s), loss {:?}, CPU threads {}) -> {}",
        trainer.config.arch.network().describe(),
        trainer.config.data,
        start_step,
        trainer.config.steps,
        trainer.config.batch,
        trainer.config.shards,
        trainer.config.loss.preset,
        threads,
        a.out.display()
    );
    let t0 = Instant::now();
    let mut reporter = Reporter::new(start_step, trainer.config.steps);
    let result = trainer.run(&mut reporter);
    reporter.finish();
    result.with_context(|| format!("training in {}", a.out.display()))?;
    let wall = t0.elapsed().as_secs_f64();
    let rate = (trainer.opt.step - start_step) as f64 / wall.max(1e-9);
    // Three decimals below 10 steps/s: CPU image runs do a fraction of a step per second.
    let rate_text = format!("{:.*}", if rate >= 10.0 { 1 } else { 3 }, rate);
    println!(
        "trained to step {} in {wall:.1} s ({rate_text} steps/s); checkpoint in {}",
        trainer.opt.step,
        a.out.display()
    );
    for p in write_plots(&trainer).context("writing plots")? {
        println!("wrote {}", p.display());
    }
    let mut metrics = serde_json::json!({
        "step": trainer.opt.step,
        "wall_s": wall,
        "steps_per_s": rate,
        "step_s_median": reporter.median_step_s(),
    });
    if !a.no_eval {
        if let Some(q) = sample_quality(&trainer, &trainer.ema_params(), 5000, 100)
            .context("evaluating samples")?
        {
            println!(
                "sample quality: sliced W2 {:.4} vs two-sample floor {:.4} (ratio {:.2}) over {} samples, {}; {} escaped far from the data",
                q.swd, q.swd_floor, q.ratio, q.samples, q.solver, q.escaped
            );
            metrics["sample_quality"] = serde_json::to_value(&q)?;
        }
    }
    let mpath = a.out.join("metrics.json");
    vpfb_trainer::export::write_atomic(&mpath, serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    Ok(())
}
