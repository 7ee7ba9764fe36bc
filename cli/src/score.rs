use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use vpfb_runtime::io::{parse_record, write_records, Cells};
use vpfb_runtime::ood::auroc;
use vpfb_runtime::record_stream::rows_per_chunk;
use vpfb_runtime::{Backend, Model, RecordStream, Score, ScoreOptions};

use super::progress::Progress;

/// Values (records × record size) scored at a time: the file is read a chunk at a time, so memory
/// stays bounded however large the input (4 MiB of f64 per chunk; 668 Fashion-MNIST images).
const CHUNK_VALUES: usize = 1 << 19;

#[derive(Args)]
pub struct ScoreArgs {
    /// Model file (.onnx).
    #[arg(long)]
    model: PathBuf,
    /// Records to score: .csv (raw units, same columns as training; optional header) or .npy; for
    /// image models also an IDX file (.gz or not), a folder of PNG/JPEG images or one image.
    #[arg(long, required_unless_present = "stream", conflicts_with = "stream")]
    input: Option<PathBuf>,
    /// Score: detector (the fitted multi-time detector of format-2 files), paper, grad-norm or recon
    /// (default: the model's). `all` writes every flow statistic on the detector's time grid, the
    /// detector and the single-evaluation scores as columns (no threshold, no outlier column).
    #[arg(long)]
    score: Option<String>,
    /// Outlier threshold (default: the model's calibrated 5 % false-positive point).
    #[arg(long, allow_negative_numbers = true)]
    threshold: Option<f64>,
    /// Output CSV with header `anomaly_score,outlier`.
    #[arg(long, required_unless_present = "stream")]
    out: Option<PathBuf>,
    /// One 0/1 per input row (1 = outlier): also print the AUROC.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Read one CSV record per line on stdin, write one `anomaly_score,outlier` line per record.
    #[arg(long)]
    stream: bool,
    /// Records read and scored at a time; memory holds one chunk, not the whole input (default:
    /// about 4 MiB of values: 668 images of 28×28, 262 144 rows of 2 columns).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    chunk: Option<u64>,
    #[command(flatten)]
    run: super::model_arg::RunOpts,
}

fn chunk_rows(stream: &RecordStream, chunk: Option<u64>) -> usize {
    chunk.map_or_else(
        || rows_per_chunk(stream.cols(), CHUNK_VALUES),
        |c| usize::try_from(c).unwrap_or(usize::MAX),
    )
}

fn stream(model: &Model, options: &ScoreOptions) -> Result<()> {
    super::line_stream::serve(model.record_len(), parse_record, |_, rec| {
        let r = model.score_with(rec, options)?;
        Ok(format!("{},{}", r.scores[0], u8::from(r.outliers[0])))
    })
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let model = super::model_arg::load(Some(&a.model), &a.run)?;
    if a.score.as_deref() == Some("all") {
        return all_scores(&model, &a);
    }
    let score: Score = match &a.score {
        Some(s) => s.parse::<Score>().context("--score")?,
        None => model.default_score(),
    };
    // Resolved once, before any input is read: a model without a threshold for this score fails here.
    let thr = model.threshold(score, a.threshold)?;
    let options = ScoreOptions {
        score: Some(score),
        threshold: Some(thr),
    };
    if a.stream {
        return stream(&model, &options);
    }
    let (input, out) = (
        a.input.expect("clap requires --input"),
        a.out.expect("clap requires --out"),
    );
    let mut stream = RecordStream::open_for_model(&input, model.meta(), Cells::Finite)?;
    let chunk_rows = chunk_rows(&stream, a.chunk);
    let mut progress = Progress::new("scored");
    let (mut scores, mut outliers) = (vec![], vec![]);
    while let Some(chunk) = stream.next_chunk(chunk_rows)? {
        let report = model
            .score_with(&chunk.values, &options)
            .with_context(|| format!("scoring records from {}", scores.len() + 1))?;
        scores.extend(report.scores);
        outliers.extend(report.outliers);
        progress.update(scores.len());
    }
    progress.finish();
    let rows: Vec<f64> = scores
        .iter()
        .zip(&outliers)
        .flat_map(|(&s, &o)| [s, f64::from(u8::from(o))])
        .collect();
    write_records(&out, "anomaly_score,outlier", 2, &rows)?;
    let flagged = outliers.iter().filter(|&&o| o).count();
    eprintln!(
        "scored {} records with `{score}` (threshold {thr:.6}): {flagged} outliers -> {}",
        scores.len(),
        out.display()
    );
    if let Some(lp) = &a.labels {
        let labels = read_labels(lp, scores.len())?;
        match auroc(&scores, &labels) {
            Some(v) => println!("AUROC {v:.4}"),
            None => bail!("AUROC needs both 0 and 1 labels in {}", lp.display()),
        }
    }
    Ok(())
}

/// One 0/1 label per record (an optional `label` header line is skipped).
fn read_labels(lp: &std::path::Path, expected: usize) -> Result<Vec<bool>> {
    let text =
        std::fs::read_to_string(lp).with_context(|| format!("reading labels {}", lp.display()))?;
    let labels: Vec<bool> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "label")
        .enumerate()
        .map(|(i, l)| match l {
            "0" => Ok(false),
            "1" => Ok(true),
            other => bail!(
                "{} line {}: label `{other}` is not 0 or 1",
                lp.display(),
                i + 1
            ),
        })
        .collect::<Result<_>>()?;
    if labels.len() != expected {
        bail!(
            "{} has {} labels for {expected} records",
            lp.display(),
            labels.len()
        );
    }
    Ok(labels)
}

/// `--score all`: every flow statistic on the detector's grid (the default grid for files without a
/// detector), the detector when the file has one, and the single-evaluation scores, as columns; with
/// --labels the AUROC of each column, in both directions.
fn all_scores(model: &Model, a: &ScoreArgs) -> Result<()> {
    if a.stream {
        bail!("--score all writes a table; it does not apply to --stream");
    }
    if a.threshold.is_some() {
        bail!("--threshold applies to one score; drop it with --score all");
    }
    let (input, out) = (
        a.input.as_ref().expect("clap requires --input"),
        a.out.as_ref().expect("clap requires --out"),
    );
    let meta = &model.file().meta;
    let (times, anchor) = match &meta.detector {
        Some(d) => (d.times.clone(), d.anchor),
        None => {
            let o = vpfb_runtime::ood::FitOptions::default();
            (o.times, o.anchor)
        }
    };
    let mut stream = RecordStream::open_for_model(input, meta, Cells::Finite)?;
    let chunk_rows = chunk_rows(&stream, a.chunk);
    let mut progress = Progress::new("scored");
    let mut names = vec![];
    let mut columns: Vec<Vec<f64>> = vec![];
    let mut done = 0;
    while let Some(chunk) = stream.next_chunk(chunk_rows)? {
        let context = || format!("scoring records from {}", done + 1);
        // One pass of statistics serves the detector column and the statistic columns.
        let table = raw_statistics(model, &chunk.values, &times, &anchor).with_context(context)?;
        let mut parts = vec![];
        if let Some(det) = &meta.detector {
            parts.push(det.score_table(&table).with_context(context)?);
        }
        parts.extend(
            model
                .scores(&chunk.values, &Score::SINGLE)
                .with_context(context)?,
        );
        parts.extend(
            table
                .names
                .iter()
                .map(|id| table.column(id).expect("own column")),
        );
        if names.is_empty() {
            if meta.detector.is_some() {
                names.push(Score::Detector.name().to_string());
            }
            names.extend(Score::SINGLE.iter().map(|s| s.name().to_string()));
            names.extend(table.names.iter().map(|id| id.to_string()));
            columns = vec![vec![]; parts.len()];
        }
        for (column, part) in columns.iter_mut().zip(parts) {
            column.extend(part);
        }
        done += chunk.rows();
        progress.update(done);
    }
    progress.finish();
    let n = done;
    let rows: Vec<f64> = (0..n)
        .flat_map(|i| columns.iter().map(move |c| c[i]))
        .collect();
    write_records(out, &names.join(","), names.len(), &rows)?;
    eprintln!(
        "scored {n} records: {} columns ({} flow statistics) -> {}",
        names.len(),
        names.len() - usize::from(meta.detector.is_some()) - Score::SINGLE.len(),
        out.display()
    );
    if let Some(lp) = &a.labels {
        let labels = read_labels(lp, n)?;
        println!("{:<22} {:>8} {:>8}", "column", "AUROC", "reversed");
        for (name, c) in names.iter().zip(&columns) {
            match auroc(c, &labels) {
                Some(v) => println!("{name:<22} {v:>8.4} {:>8.4}", 1.0 - v),
                None => bail!("AUROC needs both 0 and 1 labels in {}", lp.display()),
            }
        }
    }
    Ok(())
}

/// Flow statistics of raw records, in bounded chunks.
fn raw_statistics(
    model: &dyn Backend,
    values: &[f64],
    times: &[f64],
    anchor: &vpfb_runtime::ood::statistics::Anchor,
) -> Result<vpfb_runtime::ood::statistics::StatTable> {
    let x = model.file().meta.raw_to_model(values)?;
    Ok(vpfb_runtime::ood::statistics::compute(
        model, &x, times, anchor,
    )?)
}
