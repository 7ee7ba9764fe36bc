//! Where things are: the repository, the shipped models, the built binaries, scratch folders.

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `models/<name>` (e.g. `moons.onnx`).
pub fn shipped_model(name: &str) -> PathBuf {
    repo().join("models").join(name)
}

/// The cargo profile folder the running test binary lives in (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps layout")
        .to_path_buf()
}

/// A fresh, empty scratch folder `name` under the target folder (removed and recreated, so a
/// test sees nothing a previous run left).
pub fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("vpfb-test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A workspace binary (`vpfb`, `vpfb-train`) that `cargo test --workspace` has built.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not built: run the tests with `cargo test --workspace` (or build the binaries first)",
        path.display()
    );
    path
}
