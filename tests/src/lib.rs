//! Helpers for the cross-crate tests: build small models with the trainer, locate the binaries.

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use vpfb_runtime::{ModelMeta, Normalization};
use vpfb_trainer::nn::{
    build_potential, init_params, Init, MlpConfig, Network, PotentialGraph, UnetConfig,
};

/// An MLP potential with random, non-zero weights everywhere (its output layer too), so exported
/// graphs are exercised away from the trivial ψ = ½‖x‖².
pub fn random_mlp(
    dim: usize,
    hidden: usize,
    layers: usize,
    seed: u64,
) -> (PotentialGraph, VarMap, ModelMeta) {
    let cfg = MlpConfig::new(dim, hidden, layers);
    let mut pg = build_potential(&cfg).expect("mlp graph builds");
    for p in &mut pg.params {
        if p.init == Init::Zeros {
            p.init = Init::Uniform(0.3);
        }
    }
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, seed, DType::F32, &Device::Cpu).expect("params initialise");
    let meta = ModelMeta::new(cfg.data_shape(), Normalization::Identity, cfg.describe());
    (pg, varmap, meta)
}

/// A UNet potential of the given configuration with random, non-zero weights everywhere, and the
/// metadata of an image model (pixels 0–255 mapped to [-1, 1]).
pub fn random_unet(cfg: &UnetConfig, seed: u64) -> (PotentialGraph, VarMap, ModelMeta) {
    let mut pg = build_potential(cfg).expect("unet graph builds");
    for p in &mut pg.params {
        if p.init == Init::Zeros {
            p.init = Init::Uniform(0.05);
        }
    }
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, seed, DType::F32, &Device::Cpu).expect("params initialise");
    let meta = ModelMeta::new(
        cfg.data_shape(),
        Normalization::Affine {
            offset: 127.5,
            scale: 127.5,
        },
        cfg.describe(),
    );
    (pg, varmap, meta)
}

/// A fresh scratch directory under the target folder, removed and recreated.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_dir().join("vpfb-test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The cargo target profile folder this test binary lives in (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps layout")
        .to_path_buf()
}

/// Path of a workspace binary built by `cargo test --workspace` (e.g. `vpfb`).
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} not built: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}
