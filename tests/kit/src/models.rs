//! Tiny potentials with random, non-zero weights everywhere — the zero-initialised output layer
//! too — so graphs are exercised away from the trivial ψ = ½‖x‖² of an untrained model.

use candle_core::{DType, Device};
use candle_nn::VarMap;
use vpfb_runtime::{ModelMeta, Normalization};
use vpfb_trainer::nn::{
    build_potential, init_params, Init, MlpConfig, Network, PotentialGraph, UnetConfig,
};

/// A potential graph, its parameters, and the metadata an export of it would carry.
pub type RandomModel = (PotentialGraph, VarMap, ModelMeta);

/// An MLP potential on `dim`-value records (a small time embedding: 8 features, width 16),
/// identity normalisation.
pub fn random_mlp(
    dim: usize,
    hidden: usize,
    layers: usize,
    seed: u64,
    dtype: DType,
) -> RandomModel {
    let mut cfg = MlpConfig::new(dim, hidden, layers);
    cfg.time_features = 8;
    cfg.time_dim = 16;
    let (pg, varmap) = randomised(
        build_potential(&cfg).expect("mlp graph builds"),
        0.3,
        seed,
        dtype,
    );
    let meta = ModelMeta::new(cfg.data_shape(), Normalization::Identity, cfg.describe());
    (pg, varmap, meta)
}

/// A UNet potential of configuration `cfg`, with the metadata of an image model (pixels 0–255
/// mapped to [-1, 1]).
pub fn random_unet(cfg: &UnetConfig, seed: u64, dtype: DType) -> RandomModel {
    let (pg, varmap) = randomised(
        build_potential(cfg).expect("unet graph builds"),
        0.05,
        seed,
        dtype,
    );
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

/// A UNet small enough for second-order checks: 2×8×8 images, 2 levels, attention at the second.
pub fn tiny_unet() -> UnetConfig {
    UnetConfig {
        image: [2, 8, 8],
        base: 8,
        mults: vec![1, 2],
        blocks: 1,
        attention: vec![1],
        groups: 4,
        time_features: 8,
        time_dim: 16,
    }
}

/// Initialises `pg`'s parameters from `seed`, the zero-initialised ones uniform in ±`scale`.
fn randomised(
    mut pg: PotentialGraph,
    scale: f64,
    seed: u64,
    dtype: DType,
) -> (PotentialGraph, VarMap) {
    for p in &mut pg.params {
        if p.init == Init::Zeros {
            p.init = Init::Uniform(scale);
        }
    }
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, seed, dtype, &Device::Cpu).expect("params initialise");
    (pg, varmap)
}
