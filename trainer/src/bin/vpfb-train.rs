//! `vpfb-train`: train VPFB potentials with Candle and export them to ONNX.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use clap::{Parser, Subcommand};
use vpfb_runtime::{ModelMeta, Normalization};
use vpfb_trainer::export::export_model;
use vpfb_trainer::nn::{build_potential, init_params, MlpConfig, Network};

#[derive(Parser)]
#[command(name = "vpfb-train", version, about = "Train VPFB potentials with Candle and export them to ONNX")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export a freshly initialised (untrained) potential: for checking a deployment pipeline
    /// before any training. The zero-initialised output layer makes ψ = ½‖x‖² exactly.
    Init {
        /// Data dimension D.
        #[arg(long)]
        dim: usize,
        /// Hidden width of the MLP.
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        /// Number of hidden layers.
        #[arg(long, default_value_t = 3)]
        layers: usize,
        /// Seed for the weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output model file (.onnx).
        #[arg(long)]
        out: PathBuf,
    },
}

fn init(dim: usize, hidden: usize, layers: usize, seed: u64, out: &PathBuf) -> Result<()> {
    if dim == 0 || hidden == 0 || layers == 0 {
        bail!("--dim, --hidden and --layers must be positive (got {dim}, {hidden}, {layers})");
    }
    let net = MlpConfig::new(dim, hidden, layers);
    let pg = build_potential(&net).context("building the potential graph")?;
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, seed, DType::F32, &Device::Cpu)?;
    let meta = ModelMeta::new(net.data_shape(), Normalization::Identity, net.describe());
    let report = export_model(&pg, &varmap, &meta, out).with_context(|| format!("exporting to {}", out.display()))?;
    println!(
        "wrote {} (parity vs Candle: psi {:.1e}, velocity {:.1e}, dpsi_dt {:.1e})",
        out.display(),
        report.psi,
        report.velocity,
        report.dpsi_dt
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Init { dim, hidden, layers, seed, out } => init(*dim, *hidden, *layers, *seed, out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
