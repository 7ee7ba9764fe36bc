//! `vpfb`: run VPFB models on CPUs and edge devices.

mod bench;
mod generate;
mod info;
mod line_stream;
mod loglik;
mod model_arg;
mod progress;
mod records_arg;
mod sample;
mod score;
mod solver_arg;

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
    /// Slerp between two noise draws, then carry every frame to data.
    Interpolate(generate::InterpolateArgs),
    /// Sample a product of experts Πₖ pₖ^wₖ of several models, in one model's normalised space.
    Compose(generate::ComposeArgs),
    /// Fill missing values (each record's empty or nan cells, --unknown columns, an image --mask),
    /// steered by the known values, which come back exactly as given.
    Inpaint(generate::InpaintArgs),
    /// Measure throughput and latency of the backends on a model.
    Bench(bench::BenchArgs),
    /// Anomaly scores (higher = more anomalous) for records in a file, or streamed on stdin.
    Score(score::ScoreArgs),
    /// Exact log-likelihood of records: the flow integrated back to noise with the divergence Δψ.
    Loglik(loglik::LoglikArgs),
}

fn main() -> ExitCode {
    // A closed pipe (`vpfb info m.onnx | head`) ends the process quietly, as for other Unix
    // tools, instead of a panic on the next write to stdout.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let result = match Cli::parse().command {
        Command::Info(a) => info::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Score(a) => score::run(a),
        Command::Loglik(a) => loglik::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Interpolate(a) => generate::interpolate_cmd(a),
        Command::Compose(a) => generate::compose_cmd(a),
        Command::Inpaint(a) => generate::inpaint_cmd(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
