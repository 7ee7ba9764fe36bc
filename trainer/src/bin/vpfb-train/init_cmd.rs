use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use clap::Args;
use vpfb_runtime::{ModelMeta, Normalization};
use vpfb_trainer::export::export_model;
use vpfb_trainer::nn::{build_potential, init_params, MlpConfig, Network};

#[derive(Args)]
pub struct InitArgs {
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
}

pub fn run(a: InitArgs) -> Result<()> {
    if a.dim == 0 || a.hidden == 0 || a.layers == 0 {
        bail!(
            "--dim, --hidden and --layers must be positive (got {}, {}, {})",
            a.dim,
            a.hidden,
            a.layers
        );
    }
    let net = MlpConfig::new(a.dim, a.hidden, a.layers);
    let pg = build_potential(&net).context("building the potential graph")?;
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, a.seed, DType::F32, &Device::Cpu)?;
    let meta = ModelMeta::new(net.data_shape(), Normalization::Identity, net.describe());
    let report = export_model(&pg, &varmap, &meta, &a.out)
        .with_context(|| format!("exporting to {}", a.out.display()))?;
    println!(
        "wrote {} (parity vs Candle: psi {:.1e}, velocity {:.1e}, dpsi_dt {:.1e})",
        a.out.display(),
        report.psi,
        report.velocity,
        report.dpsi_dt
    );
    Ok(())
}
