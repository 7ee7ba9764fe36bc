use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use vpfb_runtime::Backend;

#[derive(Args)]
pub struct InfoArgs {
    /// Model file (.onnx) written by `vpfb-train`.
    model: PathBuf,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let model = super::model_arg::load(
        Some(&a.model),
        &super::model_arg::RunOpts::with("native", 0),
    )?;
    let file = model.file();
    // Evaluate once, so `info` also proves the file runs here.
    model
        .evaluate(&vec![0.0; file.meta.record_len()], &[1.0])
        .with_context(|| format!("evaluating {} on one record", a.model.display()))?;
    let m = &file.meta;
    println!("model:          {}", a.model.display());
    println!("format version: {}", m.format_version);
    println!("producer:       {}", file.producer());
    println!(
        "data shape:     {:?} ({} values per record)",
        m.data_shape,
        m.record_len()
    );
    println!("parameters:     {}", file.parameter_count());
    println!("time:           {}", m.time_convention);
    println!("inputs:");
    for v in file.inputs() {
        println!("  {:<14} {}", v.name, v.shape_string());
    }
    println!("outputs:");
    for v in file.outputs() {
        println!("  {:<14} {}", v.name, v.shape_string());
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
    match &m.detector {
        Some(d) => {
            println!(
                "detector:       {} over {} statistics at t = {:?} ({} evaluations per record), anchor {}",
                d.density.label(),
                d.statistics.len(),
                d.times,
                d.evaluations_per_record(),
                serde_json::to_string(&d.anchor)?
            );
            println!(
                "  chosen by {} on {} records: {}",
                d.selection.rule,
                d.selection.records,
                d.selection.candidates_summary()
            );
            let qs: Vec<String> = d
                .calibration
                .quantiles
                .iter()
                .map(|(q, v)| format!("q{q}={v:.3}"))
                .collect();
            println!(
                "  threshold {:.6}  {}",
                d.calibration.threshold,
                qs.join(" ")
            );
            println!("  statistics: {}", d.statistics.join(" "));
        }
        None => println!(
            "detector:       (none: format version {} file)",
            m.format_version
        ),
    }
    Ok(())
}
