//! `interpolate`, `compose` and `inpaint`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use vpfb_runtime::mask::{mask_from_columns, mask_from_image, Region};
use vpfb_runtime::Composition;

use super::model_arg::{load, RunOpts};
use super::records_arg::{image_shape, output_kind, read_input, write_output, OutputKind};
use super::solver_arg::SolverOpts;

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
    /// Output .csv or .npy (one row per frame, in order); for image models also a .png strip.
    #[arg(long)]
    out: PathBuf,
    /// Independent pairs of endpoints, one strip (row) each.
    #[arg(long, default_value_t = 1)]
    pairs: usize,
    #[command(flatten)]
    run: RunOpts,
}

pub fn interpolate_cmd(a: InterpolateArgs) -> Result<()> {
    if a.frames < 2 {
        bail!("--frames must be at least 2");
    }
    if a.pairs == 0 {
        bail!("--pairs must be positive");
    }
    let model = load(a.model.as_deref(), &a.run)?;
    output_kind(&a.out, model.meta())?;
    let mut values = Vec::new();
    let mut nfe = 0;
    for p in 0..a.pairs {
        // Pair p uses seed + p, so pair 0 is what a single-pair run with this seed gives.
        let options = a
            .solver
            .flow_options(a.solver.seed.wrapping_add(p as u64))?;
        let frames = model
            .interpolate(a.frames, &options)
            .with_context(|| format!("interpolating pair {}", p + 1))?;
        values.extend(frames.records.values);
        nfe += frames.stats.nfe;
    }
    let written = write_output(&a.out, model.meta(), &values, Some((a.pairs, a.frames)))?;
    eprintln!(
        "wrote {} pairs × {} frames to {written} ({nfe} function evaluations)",
        a.pairs, a.frames
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
    /// Output .csv or .npy (raw units); for image models also a .png grid or a folder of PNGs.
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
    output_kind(&a.out, models[0].meta())?;
    let parts: Vec<_> = models.iter().zip(weights).collect();
    let comp = Composition::new(&parts).context("composing")?;
    let samples = comp
        .sample(a.n, &a.solver.flow_options(a.solver.seed)?)
        .context("sampling the composition")?;
    let written = write_output(&a.out, models[0].meta(), &samples.records.values, None)?;
    eprintln!(
        "wrote {} samples to {written} ({} function evaluations per model)",
        a.n, samples.stats.nfe
    );
    Ok(())
}

#[derive(Args)]
pub struct InpaintArgs {
    /// Model file (.onnx); without it, the built-in moons model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Records (.csv or .npy, raw units; values in the unknown places are ignored); for image models
    /// also an IDX file, a folder of images or one image file.
    #[arg(long)]
    input: PathBuf,
    /// Use only the first K records of the input.
    #[arg(long)]
    count: Option<usize>,
    /// Columns to fill, 0-based, comma-separated (e.g. `1` or `0,2`).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "mask",
        conflicts_with = "mask"
    )]
    unknown: Vec<usize>,
    /// Image models: the region to fill, one of right-half, left-half, top-half, bottom-half,
    /// center, or a PNG of the image's size whose non-black pixels mark the region.
    #[arg(long)]
    mask: Option<String>,
    #[command(flatten)]
    solver: SolverOpts,
    /// Output .csv or .npy (the completed records); for image models also a folder of PNGs, or a
    /// .png grid with one row per image: original | masked | completed.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunOpts,
}

/// The unknown places of one `[C, H, W]` image for a named region or a mask image.
fn image_mask(spec: &str, shape: [usize; 3]) -> Result<Vec<bool>> {
    if let Ok(region) = spec.parse::<Region>() {
        return Ok(region.mask(shape));
    }
    let path = std::path::Path::new(spec);
    if !path.is_file() {
        bail!(
            "--mask `{spec}` is neither a region ({}) nor an image file",
            Region::NAMES.join(", ")
        );
    }
    mask_from_image(path, shape).with_context(|| format!("--mask {spec}"))
}

pub fn inpaint_cmd(a: InpaintArgs) -> Result<()> {
    let model = load(a.model.as_deref(), &a.run)?;
    let meta = model.meta();
    let d = meta.record_len();
    let kind = output_kind(&a.out, meta)?;
    let input = read_input(&a.input, meta)?;
    let mut records = input.values;
    if let Some(k) = a.count {
        if k == 0 {
            bail!("--count must be positive");
        }
        records.truncate(k * d);
    }
    let rows = records.len() / d;
    if rows == 0 {
        bail!("{} holds no records", a.input.display());
    }
    let unknown = match (&a.mask, image_shape(meta)) {
        (Some(spec), Some(shape)) => image_mask(spec, shape)?,
        (Some(_), None) => bail!(
            "--mask needs an image model; this model's records have shape {:?} (use --unknown COLUMNS)",
            meta.data_shape
        ),
        (None, _) => mask_from_columns(&a.unknown, d).context("--unknown")?,
    };
    if !unknown.iter().any(|&u| u) {
        bail!("the mask leaves nothing to fill");
    }
    let done = model
        .inpaint(&records, &unknown, &a.solver.flow_options(a.solver.seed)?)
        .context("inpainting")?;
    let (values, stats) = (done.records.values, done.stats);
    let written = if kind == OutputKind::Grid {
        // One row per image: the original, the masked input (unknown pixels grey), the completion.
        let mut tiles = Vec::with_capacity(3 * values.len());
        for (orig, done) in records.chunks(d).zip(values.chunks(d)) {
            tiles.extend_from_slice(orig);
            tiles.extend(
                orig.iter()
                    .zip(&unknown)
                    .map(|(&v, &u)| if u { 127.5 } else { v }),
            );
            tiles.extend_from_slice(done);
        }
        write_output(&a.out, meta, &tiles, Some((rows, 3)))?
    } else {
        write_output(&a.out, meta, &values, None)?
    };
    eprintln!(
        "completed {rows} records into {written} ({} function evaluations)",
        stats.nfe
    );
    Ok(())
}
