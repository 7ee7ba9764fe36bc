//! Cross-device parity of one training step: the loss and every parameter's θ-gradient on one
//! fixed batch, computed on the CPU and on another device (a GPU) from identical weights and data.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use crate::graph::candle_eval::{eval, Bindings};
use crate::loss::{loss, LossConfig, PathBatch};
use crate::nn::{build_potential, init_params, Init, Network, PotentialGraph};
use crate::train::FitError;

/// Largest differences between the two devices.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceParity {
    pub device: String,
    pub batch: usize,
    pub parameters: usize,
    pub loss_cpu: f64,
    pub loss_device: f64,
    /// |loss_device − loss_cpu| / |loss_cpu|.
    pub loss_rel: f64,
    /// Over parameter tensors: max |g_device − g_cpu| / max |g_cpu|.
    pub grad_rel: f64,
    /// The parameter where `grad_rel` is reached.
    pub worst_param: String,
}

/// Loss and θ-gradients of one batch on `device`, parameters given as CPU tensors.
fn loss_and_grads(
    pg: &PotentialGraph,
    cfg: &LossConfig,
    params: &HashMap<String, Tensor>,
    batch: &PathBatch,
    device: &Device,
) -> Result<(f64, HashMap<String, Vec<f32>>), FitError> {
    let vars: HashMap<String, Var> = params
        .iter()
        .map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.to_device(device)?)?)))
        .collect::<Result<_, candle_core::Error>>()?;
    let bound: HashMap<String, Tensor> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let batch = batch.to_device(device)?;
    let (b, d) = batch.xbar.dims2()?;
    let mut x_dims = vec![b];
    x_dims.extend(&pg.data_shape);
    let inputs = HashMap::from([
        ("x".to_string(), batch.xt.reshape(x_dims)?),
        ("t".to_string(), batch.t.clone()),
    ]);
    let out = eval(
        &pg.graph,
        &Bindings {
            inputs,
            params: &bound,
        },
        &[pg.psi, pg.velocity, pg.dpsi_dt],
        DType::F32,
        device,
    )?;
    let velocity = out[1].reshape((b, d))?;
    let terms = loss(cfg, &out[0], &velocity, &out[2], &batch)?;
    let grads = terms.total.backward()?;
    let mut g = HashMap::new();
    for (k, v) in &vars {
        let t = grads
            .get(v.as_tensor())
            .ok_or_else(|| FitError::Invalid(format!("no gradient for {k}")))?;
        g.insert(
            k.clone(),
            t.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()?,
        );
    }
    Ok((
        terms.total.to_device(&Device::Cpu)?.to_scalar::<f32>()? as f64,
        g,
    ))
}

/// Compares one step on the CPU and on `device` for `net`, with seeded non-zero weights (the
/// zero-initialised output layer too, so no gradient is trivially zero) and a seeded batch of
/// values in [-1, 1].
pub fn compare_devices(
    net: &dyn Network,
    cfg: &LossConfig,
    batch: usize,
    seed: u64,
    device: &Device,
) -> Result<DeviceParity, FitError> {
    let mut pg = build_potential(net)?;
    for p in &mut pg.params {
        if p.init == Init::Zeros {
            p.init = Init::Uniform(0.05);
        }
    }
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, seed, DType::F32, &Device::Cpu)?;
    let params = crate::export::param_tensors(&varmap);
    let d: usize = pg.data_shape.iter().product();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xdec0);
    let xbar: Vec<f32> = (0..batch * d).map(|_| rng.gen_range(-1.0..=1.0)).collect();
    let path = PathBatch::sample(Tensor::from_vec(xbar, (batch, d), &Device::Cpu)?, &mut rng)?;
    let (l_cpu, g_cpu) = loss_and_grads(&pg, cfg, &params, &path, &Device::Cpu)?;
    let (l_dev, g_dev) = loss_and_grads(&pg, cfg, &params, &path, device)?;
    let (mut grad_rel, mut worst_param) = (0.0f64, String::new());
    for (name, a) in &g_cpu {
        let b = &g_dev[name];
        let scale = a
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs() as f64))
            .max(1e-12);
        let diff = a
            .iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
        if diff / scale > grad_rel || worst_param.is_empty() {
            grad_rel = grad_rel.max(diff / scale);
            worst_param = name.clone();
        }
    }
    Ok(DeviceParity {
        device: crate::device::device_name(device),
        batch,
        parameters: params.values().map(|t| t.elem_count()).sum(),
        loss_cpu: l_cpu,
        loss_device: l_dev,
        loss_rel: (l_dev - l_cpu).abs() / l_cpu.abs().max(1e-12),
        grad_rel,
        worst_param,
    })
}
