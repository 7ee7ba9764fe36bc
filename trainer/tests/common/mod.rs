//! Helpers shared by the trainer's test files.
#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use vpfb_trainer::graph::candle_eval::{eval, Bindings};
use vpfb_trainer::graph::{Graph, NodeId};

pub use vpfb_trainer::numeric::max_rel_err;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn normal(rng: &mut StdRng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| scale * rng.sample::<f64, _>(StandardNormal))
        .collect()
}

pub fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

pub fn tensor(data: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), dims, &Device::Cpu).unwrap()
}

pub fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Evaluates `targets` of `g` in `dtype` with the given inputs and parameters.
pub fn run(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    params: &HashMap<String, Tensor>,
    targets: &[NodeId],
    dtype: DType,
) -> Vec<Tensor> {
    eval(
        g,
        &Bindings {
            inputs: inputs.clone(),
            params,
        },
        targets,
        dtype,
        &Device::Cpu,
    )
    .unwrap()
}

pub fn param_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    vpfb_trainer::export::param_tensors(varmap)
}

/// The Var behind a parameter name.
pub fn var(varmap: &VarMap, name: &str) -> Var {
    varmap.data().lock().unwrap()[name].clone()
}

/// Sorted parameter names.
pub fn param_names(varmap: &VarMap) -> Vec<String> {
    let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    names
}

/// mean‖g‖² + mean cos(g, u) + mean(s²): a loss that depends only on the explicit gradients.
pub fn gradient_loss(g: &Tensor, s: &Tensor, u: &Tensor) -> Tensor {
    let norm2 = g.sqr().unwrap().sum(1).unwrap();
    let dot = (g * u).unwrap().sum(1).unwrap();
    let unorm = u.sqr().unwrap().sum(1).unwrap().sqrt().unwrap();
    let cos = (dot / ((norm2.sqrt().unwrap() * unorm).unwrap() + 1e-8).unwrap()).unwrap();
    let a = norm2.mean_all().unwrap();
    let b = cos.mean_all().unwrap();
    let c = s.sqr().unwrap().mean_all().unwrap();
    ((a + b).unwrap() + c).unwrap()
}
