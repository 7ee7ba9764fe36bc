//! `vpfb`: run VPFB models on CPUs and edge devices.

mod info;
mod model_arg;
mod sample;
mod score;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Info(info::InfoArgs),
    /// Draw samples by integrating the flow from noise (t = 0) to data (t = 1).
    Sample(sample::SampleArgs),
    /// Anomaly scores (higher = more anomalous) for records in a file, or streamed on stdin.
    Score(score::ScoreArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Info(a) => info::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Score(a) => score::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
