//! Loading the model a command names (or the built-in one) with the chosen backend.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use vpfb_runtime::{BackendKind, LoadOptions, Model};

/// models/moons.onnx (linked into this crate as builtin/moons.onnx), compiled in so `vpfb sample`
/// works on a fresh install with no other file.
const BUILT_IN: &[u8] = include_bytes!("../builtin/moons.onnx");
const BUILT_IN_NAME: &str = "<built-in models/moons.onnx>";

/// Backend options shared by the commands that evaluate a model.
#[derive(Args, Clone, Debug)]
pub struct RunOpts {
    /// Inference backend: native (vpfb's own evaluator, pure Rust), tract (needs the `tract`
    /// feature) or ort (ONNX Runtime; needs the `ort` feature and ORT_DYLIB_PATH).
    #[arg(long, default_value = "native")]
    pub backend: String,
    /// Threads (0 = backend default: 1 for native and tract, all cores for ort). native and tract
    /// split a batch across them (a single record runs on one); ort uses them inside its operators.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl RunOpts {
    /// The backend on `threads` threads.
    pub fn with(backend: &str, threads: usize) -> Self {
        Self {
            backend: backend.into(),
            threads,
        }
    }

    fn options(&self) -> Result<LoadOptions> {
        let backend: BackendKind = self.backend.parse().context("--backend")?;
        Ok(LoadOptions {
            backend,
            threads: self.threads,
        })
    }
}

/// The named model file, or the built-in moons model when none is named.
pub fn load(path: Option<&Path>, opts: &RunOpts) -> Result<Model> {
    let options = opts.options()?;
    match path {
        Some(p) => Model::load_with(p, &options)
            .with_context(|| format!("loading model {} with {}", p.display(), opts.backend)),
        None => Model::from_bytes(BUILT_IN, BUILT_IN_NAME, &options)
            .with_context(|| format!("the built-in model with {}", opts.backend)),
    }
}
