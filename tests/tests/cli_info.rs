//! The CLIs end to end: `vpfb-train init` writes a model, `vpfb info` describes it
//! (bad-file handling lives in each binary's own crate tests).

use vpfb_testkit::{binary, output_ok, run, scratch};

#[test]
fn init_then_info() {
    let dir = scratch("cli-info");
    let model = dir.join("m.onnx");
    let m = model.to_str().unwrap();
    output_ok(&run(
        &binary("vpfb-train"),
        &[
            "init", "--dim", "2", "--hidden", "16", "--layers", "2", "--out", m,
        ],
    ));
    let text = output_ok(&run(&binary("vpfb"), &["info", m]));
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
    let dir = scratch("cli-init-image");
    let model = dir.join("img.onnx");
    let m = model.to_str().unwrap();
    output_ok(&run(
        &binary("vpfb-train"),
        &["init", "--image", "1,8,8", "--out", m],
    ));
    let text = output_ok(&run(&binary("vpfb"), &["info", m]));
    assert!(text.contains("[1, 8, 8]"), "{text}");
    assert!(text.contains("unet"), "{text}");
    // Untrained (ψ = ½‖x‖²), the image pipeline still runs end to end and writes a grid.
    let grid = dir.join("g.png");
    output_ok(&run(
        &binary("vpfb"),
        &[
            "sample",
            "--model",
            m,
            "-n",
            "4",
            "--solver",
            "euler",
            "--steps",
            "2",
            "--out",
            grid.to_str().unwrap(),
        ],
    ));
    assert!(std::fs::metadata(&grid).unwrap().len() > 0);
}
