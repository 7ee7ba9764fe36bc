//! The CLIs end to end: `vpfb-train init` writes a model, `vpfb info` describes it
//! (bad-file handling lives in each binary's own crate tests).

use std::process::Command;

use vpfb_tests::{binary, scratch_dir};

#[test]
fn init_then_info() {
    let dir = scratch_dir("cli-info");
    let model = dir.join("m.onnx");
    let out = Command::new(binary("vpfb-train"))
        .args([
            "init", "--dim", "2", "--hidden", "16", "--layers", "2", "--out",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(binary("vpfb"))
        .arg("info")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "format version: 1",
        "data shape:     [2]",
        "psi",
        "velocity",
        "dpsi_dt",
        "t=0 noise, t=1 data",
        "\"arch\":\"mlp\"",
    ] {
        assert!(
            text.contains(needle),
            "`vpfb info` output lacks {needle:?}:\n{text}"
        );
    }
}
