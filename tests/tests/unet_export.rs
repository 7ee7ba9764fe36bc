//! UNet exports: the native evaluator and tract against Candle on the CPU preset (Fashion-MNIST size) and the paper preset
//! (128 channels, 3 levels, attention at 16×16 on 32×32 RGB), at batch 1 and 2.

use candle_core::DType;
use vpfb_runtime::{Backend, NativeModel, TractModel};
use vpfb_testkit::models::random_unet;
use vpfb_testkit::scratch;
use vpfb_trainer::export::{model_proto, param_tensors, tensor_values, verify_parity};
use vpfb_trainer::graph::onnx::ElemType;
use vpfb_trainer::nn::{UnetConfig, UnetPreset};

fn check(cfg: UnetConfig, name: &str) {
    let (pg, varmap, meta) = random_unet(&cfg, 3, DType::F32);
    let path = scratch(name).join("unet.onnx");
    // Written directly (export_model would also verify at batch 16, slow for the paper size).
    let params = param_tensors(&varmap);
    let values = tensor_values(&params).expect("parameter values");
    let proto = model_proto(&pg, &values, &meta, ElemType::F32).expect("graph lowers to ONNX");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).expect("write model");
    let count: usize = values.values().map(|v| v.data.len()).sum();
    eprintln!("{name}: {count} parameters");
    let tract = TractModel::load(&path).expect("exported file loads in tract");
    let native = NativeModel::load(&path).expect("exported file loads in the native evaluator");
    assert_eq!(tract.file().meta, meta);
    // verify_parity fails past the bound; the report is for the log.
    let report =
        verify_parity(&pg, &params, &[&native, &tract], &[1, 2], 1e-4).expect("parity within 1e-4");
    eprintln!("{name}: parity {report:?}");
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
