//! Loading the model a command names (or the built-in one) with the chosen backend.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use vpfb_runtime::{open, Backend, BackendKind, ModelFile};

/// models/moons.onnx, compiled in so `vpfb sample` works on a fresh install with no other file.
const BUILT_IN: &[u8] = include_bytes!("../../../../models/moons.onnx");
const BUILT_IN_NAME: &str = "<built-in models/moons.onnx>";

/// Backend options shared by the commands that evaluate a model.
#[derive(Args, Clone, Debug)]
pub struct RunOpts {
    /// Inference backend: tract (pure Rust) or ort (ONNX Runtime; needs the `ort` feature and ORT_DYLIB_PATH).
    #[arg(long, default_value = "tract")]
    pub backend: String,
    /// Intra-op threads (0 = backend default: 1 for tract, all cores for ort).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl RunOpts {
    pub fn kind(&self) -> Result<BackendKind> {
        self.backend
            .parse()
            .map_err(anyhow::Error::msg)
            .context("--backend")
    }
}

/// The named model file, or the built-in moons model when none is named.
pub fn load(path: Option<&Path>, opts: &RunOpts) -> Result<Box<dyn Backend>> {
    let file = match path {
        Some(p) => ModelFile::load(p).with_context(|| format!("loading model {}", p.display()))?,
        None => ModelFile::from_bytes(BUILT_IN, PathBuf::from(BUILT_IN_NAME))
            .context("the built-in model")?,
    };
    let origin = file.path.display().to_string();
    open(file, opts.kind()?, opts.threads)
        .with_context(|| format!("opening {origin} with {}", opts.backend))
}
