//! Exported files are valid ONNX for the reference tooling: `onnx.checker.check_model(full_check=True)`
//! passes and onnxruntime runs them unmodified, agreeing with tract.
//!
//! Needs Python with the `onnx` and `onnxruntime` packages (`.ci/run` installs them). Without them
//! the test prints why and returns — unless `VPFB_REQUIRE_PYTHON_ONNX=1` (as in CI), when it fails.

use std::process::Command;

use candle_core::DType;
use vpfb_runtime::{Backend, TractModel};
use vpfb_testkit::models::random_mlp;
use vpfb_testkit::scratch;
use vpfb_trainer::export::export_model;
use vpfb_trainer::numeric::max_rel_err;

const SCRIPT: &str = r#"
import json, sys
import numpy as np, onnx, onnxruntime as ort
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
onnx.checker.check_model(onnx.load(path), full_check=True)
x = np.array(json.loads(sys.argv[4]), dtype=np.float32).reshape(n, d)
t = np.array(json.loads(sys.argv[5]), dtype=np.float32)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
out = sess.run(["psi", "velocity", "dpsi_dt"], {"x": x, "t": t})
print(json.dumps([o.reshape(-1).astype(float).tolist() for o in out]))
"#;

fn python_has_onnx() -> bool {
    Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn exported_model_passes_onnx_checker_and_runs_in_onnxruntime() {
    if !python_has_onnx() {
        if std::env::var("VPFB_REQUIRE_PYTHON_ONNX").is_ok_and(|v| v == "1") {
            panic!(
                "VPFB_REQUIRE_PYTHON_ONNX=1 but python3 cannot import onnx, onnxruntime and numpy"
            );
        }
        eprintln!("SKIPPED: python3 with onnx + onnxruntime + numpy not available (pip install onnx onnxruntime)");
        return;
    }
    let (pg, varmap, meta) = random_mlp(3, 32, 2, 5, DType::F32);
    let path = scratch("onnx-checker").join("mlp3.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();
    let (n, d) = (7usize, 3usize);
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i as f32) * 0.37).sin() * 1.5)
        .collect();
    let t: Vec<f32> = (0..n).map(|i| i as f32 / (n - 1) as f32).collect();
    let out = Command::new("python3")
        .args([
            "-c",
            SCRIPT,
            path.to_str().unwrap(),
            &n.to_string(),
            &d.to_string(),
        ])
        .arg(serde_json::to_string(&x).unwrap())
        .arg(serde_json::to_string(&t).unwrap())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "onnx checker / onnxruntime failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ort: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).expect("json from python");
    let ours = TractModel::load(&path).unwrap().evaluate(&x, &t).unwrap();
    for (name, a, b) in [
        ("psi", &ours.psi, &ort[0]),
        ("velocity", &ours.velocity, &ort[1]),
        ("dpsi_dt", &ours.dpsi_dt, &ort[2]),
    ] {
        let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        let err = max_rel_err(&a, b, 1e-6);
        assert!(err <= 1e-4, "{name}: tract vs onnxruntime {err:.2e}");
    }
}
