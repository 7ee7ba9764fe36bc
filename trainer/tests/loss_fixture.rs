//! The loss assembly against `shared/fixtures/vpfb-loss.json` (copied to tests/fixtures): the four terms of docs/method.md §3 and
//! ∂loss/∂(ψ, g, s), computed in f64 by an independent implementation, matched to ~1e-9.
//! Then the θ-gradient of the whole loss on an MLP against central finite differences.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor, Var};
use common::*;
use serde_json::Value;
use vpfb_testkit::models::random_mlp;
use vpfb_trainer::loss::{
    loss, loss_with_psi_std, std_of, LossConfig, LossPreset, PathBatch, TimeTerm,
};

/// The fixture, from the checked-in copy. Where the founders' `shared/` folder sits beside the checkout
/// (sessions and CI), the copy must still be identical to it, so a revised fixture cannot be missed.
fn fixture() -> Value {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let copy = std::fs::read_to_string(here.join("tests/fixtures/vpfb-loss.json"))
        .expect("checked-in fixture");
    if let Ok(shared) = std::fs::read_to_string(here.join("../../shared/fixtures/vpfb-loss.json")) {
        assert_eq!(
            shared, copy,
            "shared/fixtures/vpfb-loss.json changed: update trainer/tests/fixtures/vpfb-loss.json"
        );
    }
    serde_json::from_str(&copy).expect("fixture is JSON")
}

fn mat(v: &Value) -> (Vec<f64>, Vec<usize>) {
    match v {
        Value::Array(rows) if rows.first().is_some_and(|r| r.is_array()) => {
            let cols = rows[0].as_array().unwrap().len();
            let data: Vec<f64> = rows
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                .collect();
            (data, vec![rows.len(), cols])
        }
        Value::Array(xs) => (
            xs.iter().map(|x| x.as_f64().unwrap()).collect(),
            vec![xs.len()],
        ),
        other => panic!("not an array: {other}"),
    }
}

fn t(v: &Value) -> Tensor {
    let (d, s) = mat(v);
    tensor(&d, &s)
}

#[test]
fn paper_loss_matches_independent_f64_fixture() {
    let fx = fixture();
    let inp = &fx["inputs"];
    let exp = &fx["expected"];
    let batch = PathBatch::from_parts(t(&inp["xbar"]), t(&inp["eps"]), t(&inp["t"])).unwrap();
    let psi = Var::from_tensor(&t(&inp["psi"])).unwrap();
    let g = Var::from_tensor(&t(&inp["g"])).unwrap();
    let s = Var::from_tensor(&t(&inp["s"])).unwrap();
    let cfg = LossConfig::preset(LossPreset::Paper);
    let terms = loss(&cfg, psi.as_tensor(), g.as_tensor(), s.as_tensor(), &batch).unwrap();
    let [total, corr, norm, temb, source] = terms.values().unwrap();
    for (name, got) in [
        ("L_corr", corr),
        ("L_norm", norm),
        ("L_temb", temb),
        ("L_cos", source),
        ("loss", total),
    ] {
        let want = exp[name].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{name}: got {got:.15}, fixture {want:.15}"
        );
    }
    let grads = terms.total.backward().unwrap();
    for (name, var) in [("dloss_dpsi", &psi), ("dloss_dg", &g), ("dloss_ds", &s)] {
        let got = flat(grads.get(var.as_tensor()).unwrap());
        let (want, _) = mat(&exp[name]);
        let err = max_rel_err(&got, &want, 1e-12);
        assert!(err <= 1e-9, "{name}: relative error {err:.2e}");
    }
}

#[test]
fn loss_theta_gradient_matches_finite_differences() {
    let gauge = LossConfig {
        time_term: TimeTerm::Gauge,
        temb_weight: 0.3,
        ..LossConfig::preset(LossPreset::Ritz)
    };
    for cfg in [
        LossConfig::preset(LossPreset::Paper),
        LossConfig::preset(LossPreset::Ritz),
        gauge,
    ] {
        let (pg, varmap, _) = random_mlp(2, 8, 2, 51, DType::F64);
        let n = 16;
        let mut r = rng(52);
        let batch = PathBatch::from_parts(
            tensor(&normal(&mut r, n * 2, 1.0), &[n, 2]),
            tensor(&normal(&mut r, n * 2, 1.0), &[n, 2]),
            tensor(&uniform(&mut r, n, 1e-5, 1.0), &[n]),
        )
        .unwrap();
        let bound = HashMap::from([
            ("x".to_string(), batch.xt.clone()),
            ("t".to_string(), batch.t.clone()),
        ]);
        let params = param_tensors(&varmap);
        let eval = |p: &HashMap<String, Tensor>| {
            run(
                &pg.graph,
                &bound,
                p,
                &[pg.psi, pg.velocity, pg.dpsi_dt],
                DType::F64,
            )
        };
        let base = eval(&params);
        let psi_std = std_of(&base[0]).unwrap();
        let total = loss(&cfg, &base[0], &base[1], &base[2], &batch)
            .unwrap()
            .total;
        let grads = total.backward().unwrap();
        let h = 1e-5;
        for name in param_names(&varmap) {
            let v = var(&varmap, &name);
            let values = flat(v.as_tensor());
            let dims = v.as_tensor().dims().to_vec();
            let fd: Vec<f64> = (0..values.len())
                .map(|k| {
                    let at = |delta: f64| {
                        let mut p = params.clone();
                        let mut vals = values.clone();
                        vals[k] += delta;
                        p.insert(name.clone(), tensor(&vals, &dims));
                        let o = eval(&p);
                        let l =
                            loss_with_psi_std(&cfg, &o[0], &o[1], &o[2], &batch, Some(&psi_std))
                                .unwrap();
                        l.total.to_scalar::<f64>().unwrap()
                    };
                    (at(h) - at(-h)) / (2.0 * h)
                })
                .collect();
            let got = flat(grads.get(v.as_tensor()).unwrap());
            let err = max_rel_err(&got, &fd, 1e-8);
            assert!(
                err <= 1e-5,
                "{:?}, time term {:?}: dLoss/d{name} backward vs finite differences: {err:.2e}",
                cfg.preset,
                cfg.time_term
            );
        }
    }
}
