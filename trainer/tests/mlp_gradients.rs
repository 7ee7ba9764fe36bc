//! The MLP potential's explicit gradients against Candle autograd, and the θ-gradient of a loss
//! built on them (Candle's first-order backward through the explicit graph) against finite
//! differences in θ.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use common::*;
use vpfb_testkit::models::random_mlp;
use vpfb_trainer::nn::PotentialGraph;

fn inputs(pg: &PotentialGraph, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let d: usize = pg.data_shape.iter().product();
    (normal(&mut r, n * d, 1.5), uniform(&mut r, n, 0.0, 1.0))
}

#[test]
fn explicit_input_gradients_match_candle_autograd() {
    let (pg, varmap, _) = random_mlp(3, 16, 2, 11, DType::F64);
    let n = 9;
    let (x, t) = inputs(&pg, n, 12);
    let xv = Var::from_tensor(&tensor(&x, &[n, 3])).unwrap();
    let tv = Var::from_tensor(&tensor(&t, &[n])).unwrap();
    let bound = HashMap::from([
        ("x".to_string(), xv.as_tensor().clone()),
        ("t".to_string(), tv.as_tensor().clone()),
    ]);
    let out = run(
        &pg.graph,
        &bound,
        &param_tensors(&varmap),
        &[pg.psi, pg.velocity, pg.dpsi_dt],
        DType::F64,
    );
    let grads = out[0].sum_all().unwrap().backward().unwrap();
    let gx = flat(grads.get(xv.as_tensor()).unwrap());
    let gt = flat(grads.get(tv.as_tensor()).unwrap());
    let ex = max_rel_err(&flat(&out[1]), &gx, 1e-12);
    let et = max_rel_err(&flat(&out[2]), &gt, 1e-12);
    assert!(ex <= 1e-5, "velocity vs autograd: {ex:.2e}");
    assert!(et <= 1e-5, "dpsi_dt vs autograd: {et:.2e}");
    // The potential is not trivial: the gradient is not just x (which it is at initialisation).
    assert!(
        max_rel_err(&gx, &x, 1e-12) > 1e-2,
        "test network is degenerate"
    );
}

#[test]
fn zero_initialised_output_layer_gives_half_squared_norm() {
    let mut cfg = vpfb_trainer::nn::MlpConfig::new(2, 8, 2);
    cfg.time_features = 4;
    let pg = vpfb_trainer::nn::build_potential(&cfg).unwrap();
    let varmap = candle_nn::VarMap::new();
    vpfb_trainer::nn::init_params(
        &pg.params,
        &varmap,
        0,
        DType::F64,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let (x, t) = inputs(&pg, 5, 3);
    let bound = HashMap::from([
        ("x".to_string(), tensor(&x, &[5, 2])),
        ("t".to_string(), tensor(&t, &[5])),
    ]);
    let out = run(
        &pg.graph,
        &bound,
        &param_tensors(&varmap),
        &[pg.psi, pg.velocity, pg.dpsi_dt],
        DType::F64,
    );
    let half_sq: Vec<f64> = x
        .chunks(2)
        .map(|r| 0.5 * (r[0] * r[0] + r[1] * r[1]))
        .collect();
    assert!(max_rel_err(&flat(&out[0]), &half_sq, 1e-12) < 1e-12);
    assert!(max_rel_err(&flat(&out[1]), &x, 1e-12) < 1e-12);
    assert!(flat(&out[2]).iter().all(|v| v.abs() < 1e-12));
}

#[test]
fn theta_gradient_through_explicit_graph_matches_finite_differences() {
    let (pg, varmap, _) = random_mlp(2, 8, 2, 21, DType::F64);
    let n = 6;
    let (x, t) = inputs(&pg, n, 22);
    let u = normal(&mut rng(23), n * 2, 1.0);
    let bound = HashMap::from([
        ("x".to_string(), tensor(&x, &[n, 2])),
        ("t".to_string(), tensor(&t, &[n])),
    ]);
    let ut = tensor(&u, &[n, 2]);
    let loss_with = |params: &HashMap<String, Tensor>| {
        let out = run(
            &pg.graph,
            &bound,
            params,
            &[pg.velocity, pg.dpsi_dt],
            DType::F64,
        );
        gradient_loss(&out[0], &out[1], &ut)
    };
    let params = param_tensors(&varmap);
    let grads = loss_with(&params).backward().unwrap();
    let h = 1e-5;
    let mut checked = 0;
    for name in param_names(&varmap) {
        let v = var(&varmap, &name);
        let base = flat(v.as_tensor());
        let dims = v.as_tensor().dims().to_vec();
        let fd: Vec<f64> = (0..base.len())
            .map(|k| {
                let at = |delta: f64| {
                    let mut p = params.clone();
                    let mut vals = base.clone();
                    vals[k] += delta;
                    p.insert(name.clone(), tensor(&vals, &dims));
                    loss_with(&p).to_scalar::<f64>().unwrap()
                };
                (at(h) - at(-h)) / (2.0 * h)
            })
            .collect();
        let explicit = flat(
            grads
                .get(v.as_tensor())
                .expect("every parameter gets a gradient"),
        );
        let err = max_rel_err(&explicit, &fd, 1e-8);
        assert!(
            err <= 1e-5,
            "dLoss/d{name}: backward through explicit graph vs finite differences: {err:.2e}"
        );
        checked += base.len();
    }
    assert!(checked > 100, "checked only {checked} parameters");
}
