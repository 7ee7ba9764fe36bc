//! `vpfb`: run VPFB models on CPUs and edge devices.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use vpfb_runtime::ModelFile;

#[derive(Parser)]
#[command(
    name = "vpfb",
    version,
    about = "Run VPFB potential-flow models (ONNX) on CPUs and edge devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's inputs, outputs, metadata and OOD calibration.
    Info {
        /// Model file (.onnx) written by `vpfb-train`.
        model: PathBuf,
    },
}

fn info(path: &PathBuf) -> Result<()> {
    let file = ModelFile::load(path).with_context(|| format!("loading {}", path.display()))?;
    // Build the tract plan too, so `info` also proves the file runs here.
    let model = vpfb_runtime::TractModel::new(file.clone())
        .with_context(|| format!("preparing {} for evaluation", path.display()))?;
    model
        .evaluate(&vec![0.0; file.meta.record_len()], &[1.0])
        .with_context(|| format!("evaluating {} on one record", path.display()))?;
    let m = &file.meta;
    println!("model:          {}", path.display());
    println!("format version: {}", m.format_version);
    println!(
        "producer:       {} {}",
        file.proto.producer_name, file.proto.producer_version
    );
    println!(
        "data shape:     {:?} ({} values per record)",
        m.data_shape,
        m.record_len()
    );
    println!("parameters:     {}", file.parameter_count());
    println!("time:           {}", m.time_convention);
    println!("inputs:");
    for v in file.inputs() {
        println!("  {:<10} {}", v.name, v.shape_string());
    }
    println!("outputs:");
    for v in file.outputs() {
        println!("  {:<10} {}", v.name, v.shape_string());
    }
    println!(
        "normalization:  {}",
        serde_json::to_string(&m.normalization)?
    );
    println!("architecture:   {}", m.architecture);
    match &m.training {
        Some(t) => println!("training:       {t}"),
        None => println!("training:       (none recorded: untrained export)"),
    }
    match &m.ood {
        Some(ood) => {
            println!("ood default:    {}", ood.default_score);
            for (name, cal) in &ood.scores {
                let qs: Vec<String> = cal
                    .quantiles
                    .iter()
                    .map(|(q, v)| format!("q{q}={v:.4}"))
                    .collect();
                println!(
                    "  {name:<10} threshold {:.6}  {}",
                    cal.threshold,
                    qs.join(" ")
                );
            }
        }
        None => println!("ood:            (not calibrated)"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Info { model } => info(model),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
