//! UNet exports: tract against Candle on the CPU preset (Fashion-MNIST size) and the paper preset
//! (128 channels, 3 levels, attention at 16×16 on 32×32 RGB), at batch 1 and 2.

use vpfb_runtime::TractModel;
use vpfb_tests::{random_unet, scratch_dir};
use vpfb_trainer::export::{model_proto, param_tensors, tensor_values, verify_parity};
use vpfb_trainer::graph::onnx::ElemType;
use vpfb_trainer::nn::{UnetConfig, UnetPreset};

fn check(cfg: UnetConfig, name: &str) {
    let (pg, varmap, meta) = random_unet(&cfg, 3);
    let path = scratch_dir(name).join("unet.onnx");
    // Written directly (export_model would also verify at batch 16, slow for the paper size).
    let params = param_tensors(&varmap);
    let values = tensor_values(&params).expect("parameter values");
    let proto = model_proto(&pg, &values, &meta, ElemType::F32).expect("graph lowers to ONNX");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).expect("write model");
    let count: usize = values.values().map(|v| v.data.len()).sum();
    eprintln!("{name}: {count} parameters");
    let model = TractModel::load(&path).expect("exported file loads");
    assert_eq!(model.file().meta, meta);
    let report = verify_parity(&pg, &params, &model, &[1, 2], 1e-4).expect("parity holds");
    eprintln!("{name}: parity {report:?}");
    assert!(report.psi <= 1e-4 && report.velocity <= 1e-4 && report.dpsi_dt <= 1e-4);
}

#[test]
fn cpu_preset_tract_matches_candle() {
    check(UnetConfig::preset(UnetPreset::Cpu, [1, 28, 28]), "unet-cpu");
}

#[test]
fn paper_preset_builds_exports_and_matches_candle() {
    let cfg = UnetConfig::preset(UnetPreset::Paper, [3, 32, 32]);
    assert_eq!(
        (cfg.base, cfg.mults.len(), cfg.attention.clone()),
        (128, 3, vec![1])
    );
    check(cfg, "unet-paper");
}
