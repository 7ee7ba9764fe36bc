//! `vpfb-train`: train VPFB potentials with Candle and export them to ONNX.

mod detector_cmd;
mod device_check_cmd;
mod export_cmd;
mod finish_export;
mod fit_cmd;
mod init_cmd;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vpfb-train",
    version,
    about = "Train VPFB potentials with Candle and export them to ONNX"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a potential (or continue a run with --resume).
    Fit(Box<fit_cmd::FitArgs>),
    /// Export a run's EMA weights to a model file, verified, OOD-calibrated and with a fitted
    /// multi-time OOD detector.
    Export(export_cmd::ExportArgs),
    /// Re-export an existing model file in the current format (Hessian-vector-product output, fitted
    /// OOD detector), from its own metadata and weights; no run folder needed.
    Detector(detector_cmd::DetectorCmdArgs),
    /// Export a freshly initialised (untrained) potential, to check a deployment pipeline before
    /// training; the zero-initialised output layer makes ψ = ½‖x‖² exactly.
    Init(init_cmd::InitArgs),
    /// Compare one training step (loss and θ-gradient) of a UNet on the CPU and on --device.
    DeviceCheck(device_check_cmd::DeviceCheckArgs),
}

/// glibc hands every freed block above 128 KiB back to the kernel, so each `[512, 128]` activation of a
/// training step would cost fresh page faults. Keeping them in one heap raised a 2→128×3→2 MLP at batch
/// 512 from 69–94 to 107–117 steps/s on this 2-core machine.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator thresholds; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fit(a) => fit_cmd::run(*a),
        Command::Export(a) => export_cmd::run(a),
        Command::Detector(a) => detector_cmd::run(a),
        Command::Init(a) => init_cmd::run(a),
        Command::DeviceCheck(a) => device_check_cmd::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
