use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use clap::Args;
use vpfb_runtime::{ModelMeta, Normalization};
use vpfb_trainer::export::export_model;
use vpfb_trainer::nn::{build_potential, init_params, MlpConfig, Network, UnetConfig, UnetPreset};

#[derive(Args)]
pub struct InitArgs {
    /// Data dimension D (MLP).
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    dim: Option<usize>,
    /// Image shape C,H,W: an untrained UNet image model (pixels 0–255 mapped to [-1, 1]).
    #[arg(long, value_delimiter = ',')]
    image: Vec<usize>,
    /// UNet size preset (with --image).
    #[arg(long, value_enum, default_value_t = UnetPreset::Cpu)]
    preset: UnetPreset,
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
    let (net, normalization): (Box<dyn Network>, Normalization) = match (a.dim, a.image.as_slice())
    {
        (Some(dim), []) => {
            if dim == 0 || a.hidden == 0 || a.layers == 0 {
                bail!(
                    "--dim, --hidden and --layers must be positive (got {dim}, {}, {})",
                    a.hidden,
                    a.layers
                );
            }
            (
                Box::new(MlpConfig::new(dim, a.hidden, a.layers)),
                Normalization::Identity,
            )
        }
        (None, &[c, h, w]) => (
            Box::new(UnetConfig::preset(a.preset, [c, h, w])),
            Normalization::Affine {
                offset: 127.5,
                scale: 127.5,
            },
        ),
        (_, other) => bail!("--image needs C,H,W, got {other:?}"),
    };
    let pg = build_potential(net.as_ref()).context("building the potential graph")?;
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, a.seed, DType::F32, &Device::Cpu)?;
    let meta = ModelMeta::new(net.data_shape(), normalization, net.describe());
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
