//! The θ-gradient of a loss on ∇ₓψ and ∂ψ/∂t, two ways: Candle's first-order backward through our
//! explicit gradient graph, and Candle's own double backward (`CANDLE_GRAD_DO_NOT_DETACH=1`, which
//! Candle reads once per thread — so this file is its own test binary and sets it first).

mod common;

use std::collections::HashMap;

use candle_core::{DType, Var};
use common::*;
use vpfb_testkit::models::{random_mlp, random_unet, tiny_unet};

#[test]
fn explicit_path_matches_candle_second_order_autograd() {
    // SAFETY: set before any thread of this test binary runs a backward pass; no other test here.
    unsafe { std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1") };
    let (pg, varmap, _) = random_mlp(4, 64, 3, 31, DType::F64);
    let n = 32;
    let mut r = rng(32);
    let x = normal(&mut r, n * 4, 1.5);
    let t = uniform(&mut r, n, 0.0, 1.0);
    let ut = tensor(&normal(&mut r, n * 4, 1.0), &[n, 4]);
    let params = param_tensors(&varmap);

    // Explicit graph: the gradients are forward ops; one backward for θ.
    let bound = HashMap::from([
        ("x".to_string(), tensor(&x, &[n, 4])),
        ("t".to_string(), tensor(&t, &[n])),
    ]);
    let out = run(
        &pg.graph,
        &bound,
        &params,
        &[pg.velocity, pg.dpsi_dt],
        DType::F64,
    );
    let explicit = gradient_loss(&out[0], &out[1], &ut).backward().unwrap();

    // Candle's double backward: ∇ₓψ and ∂ψ/∂t by autograd, kept attached, then backward again.
    let xv = Var::from_tensor(&tensor(&x, &[n, 4])).unwrap();
    let tv = Var::from_tensor(&tensor(&t, &[n])).unwrap();
    let bound = HashMap::from([
        ("x".to_string(), xv.as_tensor().clone()),
        ("t".to_string(), tv.as_tensor().clone()),
    ]);
    let psi = run(&pg.graph, &bound, &params, &[pg.psi], DType::F64).remove(0);
    let first = psi.sum_all().unwrap().backward().unwrap();
    let gx = first.get(xv.as_tensor()).unwrap().clone();
    let gt = first.get(tv.as_tensor()).unwrap().clone();
    let oracle = gradient_loss(&gx, &gt, &ut).backward().unwrap();

    for name in param_names(&varmap) {
        let v = var(&varmap, &name);
        let a = flat(explicit.get(v.as_tensor()).unwrap());
        let b = flat(
            oracle
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("oracle has no gradient for {name}")),
        );
        let err = max_rel_err(&a, &b, 1e-12);
        assert!(
            err <= 1e-5,
            "dLoss/d{name}: explicit path vs Candle second order: {err:.2e}"
        );
    }
}

#[test]
fn unet_explicit_path_matches_candle_second_order_autograd() {
    // SAFETY: as above; each test sets the variable before its own thread's first backward pass.
    unsafe { std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1") };
    let (pg, varmap, _) = random_unet(&tiny_unet(), 51, DType::F64);
    let n = 2;
    let d: usize = pg.data_shape.iter().product();
    let mut dims = vec![n];
    dims.extend(&pg.data_shape);
    let mut r = rng(52);
    let x = normal(&mut r, n * d, 1.0);
    let t = uniform(&mut r, n, 0.0, 1.0);
    let ut = tensor(&normal(&mut r, n * d, 1.0), &[n, d]);
    let params = param_tensors(&varmap);

    let bound = HashMap::from([
        ("x".to_string(), tensor(&x, &dims)),
        ("t".to_string(), tensor(&t, &[n])),
    ]);
    let out = run(
        &pg.graph,
        &bound,
        &params,
        &[pg.velocity, pg.dpsi_dt],
        DType::F64,
    );
    let explicit = gradient_loss(&out[0].reshape((n, d)).unwrap(), &out[1], &ut)
        .backward()
        .unwrap();

    let xv = Var::from_tensor(&tensor(&x, &dims)).unwrap();
    let tv = Var::from_tensor(&tensor(&t, &[n])).unwrap();
    let bound = HashMap::from([
        ("x".to_string(), xv.as_tensor().clone()),
        ("t".to_string(), tv.as_tensor().clone()),
    ]);
    let psi = run(&pg.graph, &bound, &params, &[pg.psi], DType::F64).remove(0);
    let first = psi.sum_all().unwrap().backward().unwrap();
    let gx = first.get(xv.as_tensor()).unwrap().reshape((n, d)).unwrap();
    let gt = first.get(tv.as_tensor()).unwrap().clone();
    let oracle = gradient_loss(&gx, &gt, &ut).backward().unwrap();

    let mut compared = 0;
    for name in param_names(&varmap) {
        let v = var(&varmap, &name);
        let a = flat(explicit.get(v.as_tensor()).unwrap());
        let b = flat(
            oracle
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("oracle has no gradient for {name}")),
        );
        // Floor 1e-6 of the largest entry: the key bias's true gradient is zero (softmax shift
        // invariance), where both sides hold only rounding.
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
        let err = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
            / scale;
        assert!(
            err <= 1e-5,
            "dLoss/d{name}: explicit path vs Candle second order: {err:.2e}"
        );
        compared += 1;
    }
    assert!(compared > 40, "compared only {compared} parameter tensors");
}
