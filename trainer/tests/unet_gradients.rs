//! The UNet potential's explicit gradients against Candle autograd, and the θ-gradient of a loss
//! built on them against finite differences in θ (sampled entries of every parameter tensor).

mod common;

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use common::*;
use vpfb_testkit::models::{random_unet, tiny_unet};

const N: usize = 3;

fn image_dims(n: usize) -> Vec<usize> {
    let mut d = vec![n];
    d.extend(tiny_unet().image);
    d
}

#[test]
fn explicit_input_gradients_match_candle_autograd() {
    let (pg, varmap, _) = random_unet(&tiny_unet(), 31, DType::F64);
    let d: usize = pg.data_shape.iter().product();
    let x = normal(&mut rng(32), N * d, 1.0);
    let t = uniform(&mut rng(33), N, 0.0, 1.0);
    let xv = Var::from_tensor(&tensor(&x, &image_dims(N))).unwrap();
    let tv = Var::from_tensor(&tensor(&t, &[N])).unwrap();
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
    assert!(ex <= 1e-6, "velocity vs autograd: {ex:.2e}");
    assert!(et <= 1e-6, "dpsi_dt vs autograd: {et:.2e}");
    assert!(
        max_rel_err(&gx, &x, 1e-12) > 1e-2,
        "test network is degenerate"
    );
    assert!(gt.iter().any(|v| v.abs() > 1e-3), "time does not matter");
}

#[test]
fn zero_initialised_output_conv_gives_half_squared_norm() {
    let pg = vpfb_trainer::nn::build_potential(&tiny_unet()).unwrap();
    let varmap = candle_nn::VarMap::new();
    vpfb_trainer::nn::init_params(
        &pg.params,
        &varmap,
        0,
        DType::F64,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let d: usize = pg.data_shape.iter().product();
    let x = normal(&mut rng(5), N * d, 1.0);
    let bound = HashMap::from([
        ("x".to_string(), tensor(&x, &image_dims(N))),
        ("t".to_string(), tensor(&[0.1, 0.5, 0.9], &[N])),
    ]);
    let out = run(
        &pg.graph,
        &bound,
        &param_tensors(&varmap),
        &[pg.psi, pg.velocity],
        DType::F64,
    );
    let half_sq: Vec<f64> = x
        .chunks(d)
        .map(|r| 0.5 * r.iter().map(|v| v * v).sum::<f64>())
        .collect();
    assert!(max_rel_err(&flat(&out[0]), &half_sq, 1e-12) < 1e-12);
    assert!(max_rel_err(&flat(&out[1]), &x, 1e-12) < 1e-12);
}

#[test]
fn theta_gradient_through_explicit_graph_matches_finite_differences() {
    let (pg, varmap, _) = random_unet(&tiny_unet(), 41, DType::F64);
    let d: usize = pg.data_shape.iter().product();
    let x = normal(&mut rng(42), N * d, 1.0);
    let t = uniform(&mut rng(43), N, 0.0, 1.0);
    let u = normal(&mut rng(44), N * d, 1.0);
    let bound = HashMap::from([
        ("x".to_string(), tensor(&x, &image_dims(N))),
        ("t".to_string(), tensor(&t, &[N])),
    ]);
    let ut = tensor(&u, &[N, d]);
    let loss_with = |params: &HashMap<String, Tensor>| {
        let out = run(
            &pg.graph,
            &bound,
            params,
            &[pg.velocity, pg.dpsi_dt],
            DType::F64,
        );
        gradient_loss(&out[0].reshape((N, d)).unwrap(), &out[1], &ut)
    };
    let params = param_tensors(&varmap);
    let grads = loss_with(&params).backward().unwrap();
    let h = 1e-5;
    let mut checked = 0;
    for (pi, name) in param_names(&varmap).into_iter().enumerate() {
        let v = var(&varmap, &name);
        let base = flat(v.as_tensor());
        let dims = v.as_tensor().dims().to_vec();
        let explicit = flat(
            grads
                .get(v.as_tensor())
                .expect("every parameter gets a gradient"),
        );
        // Three spread-out entries of each tensor keep the test to seconds.
        for k in [0, (base.len() / 2 + pi) % base.len(), base.len() - 1] {
            let at = |delta: f64| {
                let mut p = params.clone();
                let mut vals = base.clone();
                vals[k] += delta;
                p.insert(name.clone(), tensor(&vals, &dims));
                loss_with(&p).to_scalar::<f64>().unwrap()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            // Relative, with a floor: some entries (the key bias, by softmax shift invariance) have a
            // true gradient of zero, where finite differences leave ~1e-8 of rounding.
            let err = (explicit[k] - fd).abs() / fd.abs().max(1e-2);
            assert!(
                err <= 1e-5,
                "dLoss/d{name}[{k}]: backward {} vs finite differences {fd}: {err:.2e}",
                explicit[k]
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "checked only {checked} entries");
}
