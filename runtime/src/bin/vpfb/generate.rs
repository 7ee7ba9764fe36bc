//! `interpolate`, `compose` and `inpaint`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use vpfb_runtime::generation::{inpaint, interpolate, Composition};
use vpfb_runtime::io::{read_records, write_records};

use super::model_arg::{load, RunOpts};
use super::solver_arg::{header, SolverOpts};

#[derive(Args)]
pub struct InterpolateArgs {
    /// Model file (.onnx); without it, the built-in moons model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Frames between (and including) the two noise endpoints.
    #[arg(long, default_value_t = 8)]
    frames: usize,
    #[command(flatten)]
    solver: SolverOpts,
    /// Output .csv or .npy: one row per frame, in order.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunOpts,
}

pub fn interpolate_cmd(a: InterpolateArgs) -> Result<()> {
    if a.frames < 2 {
        bail!("--frames must be at least 2");
    }
    let model = load(a.model.as_deref(), &a.run)?;
    let (values, stats) = interpolate(model.as_ref(), a.frames, a.solver.solver()?, a.solver.seed)
        .context("interpolating")?;
    let d = model.file().meta.record_len();
    write_records(&a.out, &header(d), d, &values)?;
    eprintln!(
        "wrote {} frames to {} ({} function evaluations)",
        a.frames,
        a.out.display(),
        stats.nfe
    );
    Ok(())
}

#[derive(Args)]
pub struct ComposeArgs {
    /// Model files (.onnx), two or more, of the same data space.
    #[arg(long = "model", required = true, num_args = 1)]
    models: Vec<PathBuf>,
    /// One weight per model (default: 1 each); the velocity is Σ wₖ ∇ψₖ.
    #[arg(long = "weight", num_args = 1, allow_negative_numbers = true)]
    weights: Vec<f64>,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    #[command(flatten)]
    solver: SolverOpts,
    /// Output .csv or .npy, raw units.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunOpts,
}

pub fn compose_cmd(a: ComposeArgs) -> Result<()> {
    if a.models.len() < 2 {
        bail!("compose needs at least two --model");
    }
    if a.n == 0 {
        bail!("-n must be positive");
    }
    let weights = if a.weights.is_empty() {
        vec![1.0; a.models.len()]
    } else {
        a.weights.clone()
    };
    if weights.len() != a.models.len() {
        bail!(
            "{} --weight values for {} --model files",
            weights.len(),
            a.models.len()
        );
    }
    let models = a
        .models
        .iter()
        .map(|p| load(Some(p), &a.run))
        .collect::<Result<Vec<_>>>()?;
    let parts = models.iter().map(|m| m.as_ref()).zip(weights).collect();
    let comp = Composition::new(parts)
        .map_err(anyhow::Error::msg)
        .context("composing")?;
    let (values, stats) = comp
        .sample(a.n, a.solver.solver()?, a.solver.seed)
        .context("sampling the composition")?;
    let d = models[0].file().meta.record_len();
    write_records(&a.out, &header(d), d, &values)?;
    eprintln!(
        "wrote {} samples to {} ({} function evaluations per model)",
        a.n,
        a.out.display(),
        stats.nfe
    );
    Ok(())
}

#[derive(Args)]
pub struct InpaintArgs {
    /// Model file (.onnx); without it, the built-in moons model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Records (.csv or .npy, raw units); values in the unknown columns are ignored.
    #[arg(long)]
    input: PathBuf,
    /// Columns to fill, 0-based, comma-separated (e.g. `1` or `0,2`).
    #[arg(long, value_delimiter = ',', required = true)]
    unknown: Vec<usize>,
    #[command(flatten)]
    solver: SolverOpts,
    /// Output .csv or .npy: the completed records.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunOpts,
}

pub fn inpaint_cmd(a: InpaintArgs) -> Result<()> {
    let model = load(a.model.as_deref(), &a.run)?;
    let d = model.file().meta.record_len();
    let records = read_records(&a.input)?;
    if records.cols != d {
        bail!(
            "{} has {} columns, the model takes {d}",
            a.input.display(),
            records.cols
        );
    }
    let mut unknown = vec![false; d];
    for &c in &a.unknown {
        if c >= d {
            bail!(
                "--unknown column {c} is out of range (the model has columns 0..{})",
                d - 1
            );
        }
        unknown[c] = true;
    }
    let (values, stats) = inpaint(
        model.as_ref(),
        &records.values,
        &unknown,
        a.solver.solver()?,
        a.solver.seed,
    )
    .context("inpainting")?;
    write_records(&a.out, &header(d), d, &values)?;
    eprintln!(
        "completed {} records into {} ({} function evaluations)",
        records.rows(),
        a.out.display(),
        stats.nfe
    );
    Ok(())
}
