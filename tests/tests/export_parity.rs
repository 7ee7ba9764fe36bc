//! Export parity: the ONNX file run by the runtime (tract) against Candle on the same weights.

use candle_core::DType;
use vpfb_runtime::{Backend, TractModel};
use vpfb_testkit::models::random_mlp;
use vpfb_testkit::scratch;
use vpfb_trainer::export::{export_model, param_tensors, verify_parity};

#[test]
fn export_verification_passes_and_catches_a_wrong_weight() {
    let (pg, varmap, meta) = random_mlp(2, 64, 3, 7, DType::F32);
    let path = scratch("parity").join("mlp.onnx");
    // export_model verifies tract against Candle at batches 1, 7 and 1024 within 1e-4.
    export_model(&pg, &varmap, &meta, &path).expect("export succeeds and verifies");
    let model = TractModel::load(&path).expect("exported file loads");
    // The same check must fail when the file and the weights disagree by one bias shift.
    let mut params = param_tensors(&varmap);
    let (name, first) = params
        .iter()
        .min_by_key(|(n, _)| n.as_str())
        .map(|(n, t)| (n.clone(), t.clone()))
        .unwrap();
    params.insert(name.clone(), first.affine(1.0, 0.05).unwrap());
    let err = verify_parity(&pg, &params, &[&model], &[7], 1e-4)
        .expect_err("a shifted parameter must break parity");
    eprintln!("shifted {name}: {err}");
}

#[test]
fn five_dimensional_model_round_trips_metadata() {
    let (pg, varmap, meta) = random_mlp(5, 32, 2, 9, DType::F32);
    let path = scratch("meta").join("mlp5.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();
    let model = TractModel::load(&path).unwrap();
    assert_eq!(model.file().meta, meta);
    let eval = model.evaluate(&[0.5; 15], &[0.2, 0.5, 1.0]).unwrap();
    assert_eq!(
        (eval.psi.len(), eval.velocity.len(), eval.dpsi_dt.len()),
        (3, 15, 3)
    );
    // Wrong input size is an error, not a panic.
    assert!(model.evaluate(&[0.5; 14], &[0.2, 0.5, 1.0]).is_err());
}
