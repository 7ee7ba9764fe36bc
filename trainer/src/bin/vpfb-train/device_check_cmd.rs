use anyhow::{bail, Context, Result};
use clap::Args;
use vpfb_trainer::device::parse_device;
use vpfb_trainer::device_check::compare_devices;
use vpfb_trainer::loss::{LossConfig, LossPreset};
use vpfb_trainer::nn::{UnetConfig, UnetPreset};

#[derive(Args)]
pub struct DeviceCheckArgs {
    /// Device to compare with the CPU (e.g. cuda:0).
    #[arg(long)]
    device: String,
    /// UNet size.
    #[arg(long, value_enum, default_value_t = UnetPreset::Cpu)]
    preset: UnetPreset,
    /// Image shape C,H,W (default: 1,28,28 for the cpu preset, 3,32,32 for paper).
    #[arg(long, value_delimiter = ',')]
    image: Vec<usize>,
    /// Batch size of the fixed batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Largest accepted relative difference of the loss and of any θ-gradient.
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Compares one training step (loss and θ-gradient) on the CPU and on `--device`.
pub fn run(a: DeviceCheckArgs) -> Result<()> {
    let device = parse_device(&a.device).context("--device")?;
    let image = match (a.image.as_slice(), a.preset) {
        ([], UnetPreset::Cpu) => [1, 28, 28],
        ([], UnetPreset::Paper) => [3, 32, 32],
        (&[c, h, w], _) => [c, h, w],
        (other, _) => bail!("--image needs C,H,W, got {other:?}"),
    };
    if a.batch < 2 {
        bail!("--batch must be at least 2");
    }
    let net = UnetConfig::preset(a.preset, image);
    let cfg = LossConfig::preset(LossPreset::Ritz);
    let p = compare_devices(&net, &cfg, a.batch, a.seed, &device).with_context(|| {
        format!(
            "one step of the {:?} UNet on cpu and {}",
            a.preset, a.device
        )
    })?;
    println!("{}", serde_json::to_string(&p)?);
    eprintln!(
        "{:?} UNet ({} parameters), batch {}: loss cpu {:.6} vs {} {:.6} (relative {:.2e}); θ-gradient max relative difference {:.2e} ({})",
        a.preset, p.parameters, p.batch, p.loss_cpu, p.device, p.loss_device, p.loss_rel, p.grad_rel, p.worst_param
    );
    if !(p.loss_rel <= a.tol && p.grad_rel <= a.tol) {
        bail!(
            "cpu/{} parity above {:.0e}: loss {:.2e}, gradient {:.2e}",
            p.device,
            a.tol,
            p.loss_rel,
            p.grad_rel
        );
    }
    Ok(())
}
