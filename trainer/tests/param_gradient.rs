//! The parameter gradient that training evaluates (the loss's cotangents pushed through the graph's own
//! VJP, over one shard or several) against Candle's autograd through the same graph, which the
//! finite-difference tests check: every loss preset, on an MLP and on a UNet, in f64.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::*;
use vpfb_testkit::models::{random_mlp, random_unet, tiny_unet};
use vpfb_trainer::loss::{loss, LossConfig, LossPreset, PathBatch, TimeTerm};
use vpfb_trainer::nn::{param_gradient_graph, PotentialGraph};
use vpfb_trainer::train::{sharded_step, StepInputs};

fn path_batch(n: usize, d: usize, seed: u64) -> PathBatch {
    let mut r = rng(seed);
    PathBatch::from_parts(
        tensor(&normal(&mut r, n * d, 1.0), &[n, d]),
        tensor(&normal(&mut r, n * d, 1.0), &[n, d]),
        tensor(&uniform(&mut r, n, 1e-5, 1.0), &[n]),
    )
    .unwrap()
}

fn x_input(pg: &PotentialGraph, batch: &PathBatch) -> Tensor {
    let mut dims = vec![batch.xt.dims()[0]];
    dims.extend(&pg.data_shape);
    batch.xt.reshape(dims).unwrap()
}

/// d(loss)/dθ for every parameter, through Candle's autograd.
fn autograd(
    pg: &PotentialGraph,
    varmap: &VarMap,
    cfg: &LossConfig,
    batch: &PathBatch,
) -> HashMap<String, Vec<f64>> {
    let inputs = HashMap::from([
        ("x".to_string(), x_input(pg, batch)),
        ("t".to_string(), batch.t.clone()),
    ]);
    let out = run(
        &pg.graph,
        &inputs,
        &param_tensors(varmap),
        &[pg.psi, pg.velocity, pg.dpsi_dt],
        DType::F64,
    );
    let g = out[1].reshape(batch.xbar.shape()).unwrap();
    let grads = loss(cfg, &out[0], &g, &out[2], batch)
        .unwrap()
        .total
        .backward()
        .unwrap();
    param_names(varmap)
        .into_iter()
        .map(|name| {
            let g = grads
                .get(var(varmap, &name).as_tensor())
                .expect("every parameter has a gradient");
            (name, flat(g))
        })
        .collect()
}

/// The same through the graph's parameter gradient, the batch split into `shards`.
fn graph_gradient(
    pg: &PotentialGraph,
    varmap: &VarMap,
    cfg: &LossConfig,
    batch: &PathBatch,
    shards: usize,
) -> HashMap<String, Vec<f64>> {
    let graph = param_gradient_graph(pg).unwrap();
    let params: HashMap<String, Tensor> = param_tensors(varmap)
        .into_iter()
        .map(|(k, v)| (k, v.detach()))
        .collect();
    let step = sharded_step(
        &StepInputs {
            graph: &graph,
            loss: cfg,
            params: &params,
            dtype: DType::F64,
            device: &Device::Cpu,
        },
        batch,
        shards,
    )
    .unwrap();
    step.grads
        .iter()
        .map(|(k, v)| (k.clone(), flat(v)))
        .collect()
}

fn assert_same(want: &HashMap<String, Vec<f64>>, got: &HashMap<String, Vec<f64>>, what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: parameter count");
    for (name, w) in want {
        // Relative, with a floor for gradients that are zero up to rounding (the attention keys'
        // bias, by the softmax's shift invariance).
        let err = max_rel_err(&got[name], w, 1e-6);
        assert!(
            err <= 1e-9,
            "{what}: d loss / d {name} differs from autograd by {err:.2e}"
        );
    }
    assert!(
        want.values().flatten().any(|v| v.abs() > 1e-6),
        "{what}: every gradient is zero"
    );
}

fn presets() -> Vec<(&'static str, LossConfig)> {
    vec![
        ("paper", LossConfig::preset(LossPreset::Paper)),
        ("ritz", LossConfig::preset(LossPreset::Ritz)),
        (
            "ritz with a per-record time term",
            LossConfig {
                temb_weight: 0.1,
                ..LossConfig::preset(LossPreset::Ritz)
            },
        ),
        (
            "gauge",
            LossConfig {
                time_term: TimeTerm::Gauge,
                temb_weight: 0.3,
                ..LossConfig::preset(LossPreset::Ritz)
            },
        ),
    ]
}

#[test]
fn mlp_graph_gradient_equals_autograd_for_every_preset() {
    let (pg, varmap, _) = random_mlp(2, 8, 2, 61, DType::F64);
    let batch = path_batch(16, 2, 62);
    for (what, cfg) in presets() {
        assert_same(
            &autograd(&pg, &varmap, &cfg, &batch),
            &graph_gradient(&pg, &varmap, &cfg, &batch, 1),
            what,
        );
    }
}

#[test]
fn unet_graph_gradient_equals_autograd_whole_and_sharded() {
    let cfg = tiny_unet();
    let (pg, varmap, _) = random_unet(&cfg, 63, DType::F64);
    let batch = path_batch(5, cfg.image.iter().product(), 64);
    for (what, loss_cfg) in presets() {
        let want = autograd(&pg, &varmap, &loss_cfg, &batch);
        assert_same(
            &want,
            &graph_gradient(&pg, &varmap, &loss_cfg, &batch, 1),
            what,
        );
        if loss_cfg.per_record() {
            // Shards of 2, 2 and 1 records, weighted by their sizes.
            assert_same(
                &want,
                &graph_gradient(&pg, &varmap, &loss_cfg, &batch, 3),
                &format!("{what}, 3 shards"),
            );
        }
    }
}
