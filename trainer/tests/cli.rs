//! `vpfb-train init`: writes a contract-valid model; refuses bad arguments without leaving a file.

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn init_writes_a_valid_untrained_model() {
    let out_path = scratch("train-init").join("m.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_vpfb-train"))
        .args(["init", "--dim", "3", "--hidden", "8", "--layers", "1", "--out"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = vpfb_runtime::TractModel::load(&out_path).unwrap();
    assert_eq!(model.file().meta.data_shape, vec![3]);
    // Untrained: ψ = ½‖x‖² and ∇ψ = x exactly (zero-initialised output layer).
    let e = model.evaluate(&[1.0, -2.0, 0.5], &[0.3]).unwrap();
    assert!((e.psi[0] - 2.625).abs() < 1e-6, "{:?}", e.psi);
    assert_eq!(e.velocity, vec![1.0, -2.0, 0.5]);
}

#[test]
fn init_rejects_bad_arguments_and_unwritable_paths() {
    let dir = scratch("train-init-bad");
    let target = dir.join("zero.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_vpfb-train")).args(["init", "--dim", "0", "--out"]).arg(&target).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    assert!(!target.exists());
    let unwritable = dir.join("no-such-dir").join("m.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_vpfb-train")).args(["init", "--dim", "2", "--out"]).arg(&unwritable).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir") && !err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "a partial file was left behind");
}
