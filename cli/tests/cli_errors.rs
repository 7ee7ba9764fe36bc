//! `vpfb` on bad model files: one `error:` line naming the file, non-zero exit, no panic.

use std::path::Path;

use vpfb_testkit::{assert_one_line_error, run, scratch};

fn assert_clean_failure(args: &[&std::ffi::OsStr], needle: &str) {
    assert_one_line_error(&run(Path::new(env!("CARGO_BIN_EXE_vpfb")), args), needle);
}

#[test]
fn info_refuses_missing_empty_and_non_onnx_files() {
    let dir = scratch("cli-errors");
    let text = dir.join("notes.onnx");
    std::fs::write(&text, "this is a text file, not a model\n").unwrap();
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let binary = dir.join("random.onnx");
    std::fs::write(
        &binary,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let missing = dir.join("missing.onnx");
    for (path, needle) in [
        (&text, "notes.onnx"),
        (&empty, "empty"),
        (&binary, "random.onnx"),
        (&missing, "missing.onnx"),
    ] {
        assert_clean_failure(&["info".as_ref(), path.as_os_str()], needle);
    }
}
