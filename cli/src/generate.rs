//! `interpolate`, `compose` and `inpaint`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use vpfb_runtime::input::{is_image_input, read_for_model_cells};
use vpfb_runtime::io::{csv_header, parse_record_with_gaps, write_records, Cells};
use vpfb_runtime::mask::{mask_from_columns, mask_from_image, Region};
use vpfb_runtime::{Composition, Conditioning, ImputeOptions, Model, ModelMeta};

use super::model_arg::{load, RunOpts};
use super::records_arg::{image_shape, output_kind, write_output, OutputKind};
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
    /// Model files (.onnx), two or more, with records of one shape.
    #[arg(long = "model", required = true, num_args = 1)]
    models: Vec<PathBuf>,
    /// The model (1-based, in --model order) whose normalised space the flow runs in: its noise
    /// starts the flow and its normalisation maps the result to raw units.
    #[arg(long, default_value_t = 1)]
    reference: usize,
    /// `langevin`: annealed Langevin dynamics on the weighted sum of the models' scores, which
    /// samples the product Πₖ pₖ^wₖ (--steps evaluations of every model); `flow`: integrate the
    /// summed velocities Σ wₖ vₖ with --solver (a cheaper heuristic for the product).
    #[arg(long, default_value = "langevin")]
    sampler: String,
    /// One weight per model (default: 1 each): the product Πₖ pₖ^wₖ (langevin) or the velocity
    /// Σ wₖ vₖ (flow).
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
    let langevin = match a.sampler.as_str() {
        "langevin" => true,
        "flow" => false,
        other => bail!("--sampler `{other}` is neither langevin nor flow"),
    };
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
    if a.reference == 0 || a.reference > models.len() {
        bail!(
            "--reference {} is not one of the {} models (1..={})",
            a.reference,
            models.len(),
            models.len()
        );
    }
    let parts: Vec<_> = models.iter().zip(weights).collect();
    let comp = Composition::with_reference(&parts, a.reference - 1).context("composing")?;
    let reference = &models[a.reference - 1];
    for (m, path) in models.iter().zip(&a.models) {
        if m.meta().normalization != reference.meta().normalization {
            eprintln!(
                "note: {} normalises its data differently; its velocity is mapped into the space of {} (its noise prior is only approximated there)",
                path.display(),
                a.models[a.reference - 1].display()
            );
        }
    }
    let options = a.solver.flow_options(a.solver.seed)?;
    let samples = if langevin {
        comp.sample_langevin(a.n, a.solver.steps, a.solver.seed)
    } else {
        comp.sample(a.n, &options)
    }
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
    /// Records (.csv or .npy, raw units). In tables, empty cells, `nan` and `NA` (NPY: NaN) mark
    /// each record's own missing values. For image models also an IDX file, a folder of images or
    /// one image file (with --mask).
    #[arg(long, required_unless_present = "stream", conflicts_with = "stream")]
    input: Option<PathBuf>,
    /// Use only the first K records of the input.
    #[arg(long)]
    count: Option<usize>,
    /// Columns to fill in every record, 0-based, comma-separated (e.g. `1` or `0,2`), besides the
    /// missing cells.
    #[arg(long, value_delimiter = ',', conflicts_with = "mask")]
    unknown: Vec<usize>,
    /// Image models: the region to fill, one of right-half, left-half, top-half, bottom-half,
    /// center, or a PNG of the image's size whose non-black pixels mark the region.
    #[arg(long)]
    mask: Option<String>,
    /// How known values steer the fill: `langevin` (annealed Langevin dynamics on the model's
    /// noised density, --steps model evaluations; see docs/imputation.md), `path` (known values
    /// follow their noising path t·x + (1 − t)·ε along the flow) or `masked` (known values stay fixed,
    /// the velocity is zeroed there).
    #[arg(long, default_value = "langevin")]
    conditioning: String,
    /// `path` and `masked`: resampling rounds after the first pass (re-noise to t = --restart, run
    /// the flow again).
    #[arg(long, default_value_t = 0)]
    resample: usize,
    /// Where resampling rounds restart, in (0, 1).
    #[arg(long, default_value_t = 0.5)]
    restart: f64,
    /// Completions averaged per record: 1 = one draw from the model's conditional distribution,
    /// more = an estimate of its mean (lower squared error), at that many times the cost.
    #[arg(long, default_value_t = 1)]
    draws: usize,
    #[command(flatten)]
    solver: SolverOpts,
    /// Output .csv (known values written back exactly) or .npy (float32); for image models also a
    /// folder of PNGs, or a .png grid with one row per image: original | masked | completed.
    #[arg(long, required_unless_present = "stream")]
    out: Option<PathBuf>,
    /// Read one CSV record per line on stdin (missing cells empty or `nan`), write each completed
    /// record as a CSV line; a bad record gets one `error: record N: …` line and the stream goes on.
    /// Record N uses seed + N − 1, so it is completed as in a batch.
    #[arg(long)]
    stream: bool,
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

impl InpaintArgs {
    fn options(&self) -> Result<ImputeOptions> {
        if self.draws == 0 {
            bail!("--draws must be positive");
        }
        if !(self.restart > 0.0 && self.restart < 1.0) {
            bail!("--restart must lie in (0, 1), got {}", self.restart);
        }
        Ok(ImputeOptions {
            flow: self.solver.flow_options(self.solver.seed)?,
            conditioning: self
                .conditioning
                .parse::<Conditioning>()
                .context("--conditioning")?,
            resample: self.resample,
            restart: self.restart,
            draws: self.draws,
        })
    }

    /// The places to fill in every record (from --mask or --unknown), if any.
    fn shared_mask(&self, meta: &ModelMeta) -> Result<Option<Vec<bool>>> {
        let d = meta.record_len();
        match (&self.mask, image_shape(meta)) {
            (Some(spec), Some(shape)) => Ok(Some(image_mask(spec, shape)?)),
            (Some(_), None) => bail!(
                "--mask needs an image model; this model's records have shape {:?} (use --unknown COLUMNS, or leave cells empty)",
                meta.data_shape
            ),
            (None, _) if !self.unknown.is_empty() => {
                Ok(Some(mask_from_columns(&self.unknown, d).context("--unknown")?))
            }
            (None, _) => Ok(None),
        }
    }
}

/// The header of a CSV input with `d` columns, if it has one.
fn csv_header_of(input: &std::path::Path, d: usize) -> Result<Option<String>> {
    let is_csv = input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        return Ok(None);
    }
    Ok(csv_header(input, Cells::Gaps)?.filter(|h| h.split(',').count() == d))
}

/// Per value of `records`: unknown when NaN or in `shared`'s places.
fn unknown_places(records: &[f64], shared: Option<&[bool]>, d: usize) -> Vec<bool> {
    records
        .iter()
        .enumerate()
        .map(|(i, v)| v.is_nan() || shared.is_some_and(|m| m[i % d]))
        .collect()
}

fn inpaint_stream(model: &Model, shared: Option<&[bool]>, options: &ImputeOptions) -> Result<()> {
    let d = model.record_len();
    super::line_stream::serve(d, parse_record_with_gaps, |i, rec| {
        // Record i gets the seed a batch would give it.
        let mut one = *options;
        one.flow.seed = options.flow.seed.wrapping_add(i as u64);
        let done = model.fill(rec, &unknown_places(rec, shared, d), &one)?;
        Ok(done
            .records
            .values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(","))
    })
}

pub fn inpaint_cmd(a: InpaintArgs) -> Result<()> {
    let model = load(a.model.as_deref(), &a.run)?;
    let meta = model.meta();
    let d = meta.record_len();
    let options = a.options()?;
    let shared = a.shared_mask(meta)?;
    if shared.as_ref().is_some_and(|m| !m.iter().any(|&u| u)) {
        bail!("the mask leaves nothing to fill");
    }
    if a.stream {
        return inpaint_stream(&model, shared.as_deref(), &options);
    }
    let (Some(input), Some(out)) = (&a.input, &a.out) else {
        bail!("--input and --out are required without --stream");
    };
    let kind = output_kind(out, meta)?;
    if image_shape(meta).is_some() && shared.is_none() && is_image_input(input) {
        bail!("image inputs need --mask (a region or a mask image) to say what to fill");
    }
    let mut records = read_for_model_cells(input, meta, Cells::Gaps)?.values;
    if let Some(k) = a.count {
        if k == 0 {
            bail!("--count must be positive");
        }
        records.truncate(k * d);
    }
    let rows = records.len() / d;
    if rows == 0 {
        bail!("{} holds no records", input.display());
    }
    let unknown = unknown_places(&records, shared.as_deref(), d);
    let missing = unknown.iter().filter(|&&u| u).count();
    if missing == 0 {
        bail!(
            "{} has no missing cells (empty, nan or NA) and no --unknown/--mask was given: nothing to fill",
            input.display()
        );
    }
    let done = model
        .fill(&records, &unknown, &options)
        .context("inpainting")?;
    let (values, stats) = (done.records.values, done.stats);
    let written = if kind == OutputKind::Grid {
        // One row per image: the original, the masked input (unknown pixels grey), the completion.
        let mut tiles = Vec::with_capacity(3 * values.len());
        for ((orig, done), gaps) in records
            .chunks(d)
            .zip(values.chunks(d))
            .zip(unknown.chunks(d))
        {
            tiles.extend_from_slice(orig);
            tiles.extend(
                orig.iter()
                    .zip(gaps)
                    .map(|(&v, &u)| if u { 127.5 } else { v }),
            );
            tiles.extend_from_slice(done);
        }
        write_output(out, meta, &tiles, Some((rows, 3)))?
    } else if let (OutputKind::Table, Some(names)) = (&kind, csv_header_of(input, d)?) {
        // A table with named columns comes back with the same names.
        write_records(out, &names, d, &values)?;
        format!("{}", out.display())
    } else {
        write_output(out, meta, &values, None)?
    };
    let touched = unknown.chunks(d).filter(|r| r.iter().any(|&u| u)).count();
    eprintln!(
        "filled {missing} values in {touched} of {rows} records into {written} ({} function evaluations, {} conditioning)",
        stats.nfe, options.conditioning
    );
    Ok(())
}
