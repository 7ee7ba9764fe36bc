use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use vpfb_runtime::io::write_records;
use vpfb_runtime::likelihood::bits_per_dim;
use vpfb_runtime::{LikelihoodOptions, Trace};

#[derive(Args)]
pub struct LoglikArgs {
    /// Model file (.onnx) of format version 2 (with the `hvp` output).
    #[arg(long)]
    model: PathBuf,
    /// Records: .csv or .npy in raw units; for image models also IDX files, image folders or an image.
    #[arg(long)]
    input: PathBuf,
    /// Output CSV: `log_likelihood` (nats, raw units), and `bits_per_dim` for image models.
    #[arg(long)]
    out: PathBuf,
    /// RK4 steps from t = 1 back to t = 0 (4 velocity evaluations and 4 divergences each).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Divergence by Hutchinson's estimator with this many Rademacher probes per record (default:
    /// exact trace for records of at most 32 values, one probe above).
    #[arg(long)]
    probes: Option<usize>,
    /// Exact trace (one Hessian-vector product per value of a record) whatever the record size.
    #[arg(long, conflicts_with = "probes")]
    exact: bool,
    /// Seed of the Hutchinson probes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    run: super::model_arg::RunOpts,
}

pub fn run(a: LoglikArgs) -> Result<()> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if a.probes == Some(0) {
        bail!("--probes must be at least 1");
    }
    let model = super::model_arg::load(Some(&a.model), &a.run)?;
    let meta = model.meta();
    let d = meta.record_len();
    let trace = match (a.exact, a.probes) {
        (true, _) => Trace::Exact,
        (false, Some(p)) => Trace::Hutchinson {
            probes: p,
            seed: a.seed,
        },
        (false, None) => match Trace::default_for(d) {
            Trace::Hutchinson { probes, .. } => Trace::Hutchinson {
                probes,
                seed: a.seed,
            },
            exact => exact,
        },
    };
    let records = super::records_arg::read_input(&a.input, meta)?;
    let started = Instant::now();
    let options = LikelihoodOptions {
        steps: a.steps,
        trace: Some(trace),
    };
    let ll = model
        .log_likelihood(&records.values, &options)
        .context("log-likelihood")?;
    let image = super::records_arg::image_shape(meta).is_some();
    let (header, cols) = if image {
        ("log_likelihood,bits_per_dim", 2)
    } else {
        ("log_likelihood", 1)
    };
    let rows: Vec<f64> = ll
        .log_likelihood
        .iter()
        .flat_map(|&l| {
            let mut r = vec![l];
            if image {
                r.push(bits_per_dim(l, d));
            }
            r
        })
        .collect();
    write_records(&a.out, header, cols, &rows)?;
    let n = ll.log_likelihood.len();
    let mean = ll.log_likelihood.iter().sum::<f64>() / n.max(1) as f64;
    eprintln!(
        "{n} log-likelihoods ({}, RK4 {} steps; {} evaluations, {} Hessian-vector products) in {:.2} s; mean {mean:.4} nats{} -> {}",
        match trace {
            Trace::Exact => "exact trace".to_string(),
            Trace::Hutchinson { probes, .. } => format!("Hutchinson, {probes} probe(s)"),
        },
        a.steps,
        ll.evaluations,
        ll.hvps,
        started.elapsed().as_secs_f64(),
        if image {
            format!(", {:.4} bits/dim", bits_per_dim(mean, d))
        } else {
            String::new()
        },
        a.out.display()
    );
    Ok(())
}
