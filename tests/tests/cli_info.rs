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
        "format version: 2",
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

#[test]
fn init_image_model_then_sample_a_grid() {
    let dir = scratch_dir("cli-init-image");
    let model = dir.join("img.onnx");
    let out = Command::new(binary("vpfb-train"))
        .args(["init", "--image", "1,8,8", "--out"])
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
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[1, 8, 8]"), "{text}");
    assert!(text.contains("unet"), "{text}");
    // Untrained (ψ = ½‖x‖²), the image pipeline still runs end to end and writes a grid.
    let grid = dir.join("g.png");
    let out = Command::new(binary("vpfb"))
        .args(["sample", "--model"])
        .arg(&model)
        .args(["-n", "4", "--solver", "euler", "--steps", "2", "--out"])
        .arg(&grid)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&grid).unwrap().len() > 0);
}
