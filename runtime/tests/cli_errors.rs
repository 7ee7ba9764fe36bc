//! `vpfb` on bad model files: one `error:` line naming the file, non-zero exit, no panic.

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_clean_failure(args: &[&std::ffi::OsStr], needle: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_vpfb"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "expected failure for {args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one error line, got:\n{err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(needle),
        "error does not mention {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
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
