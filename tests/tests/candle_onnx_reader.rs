//! candle-onnx as a third, independent reader of our files (besides tract and ONNX Runtime): the
//! exported MLP and UNet files evaluated by candle-onnx agree with tract within 1e-4 (relative to
//! the output's scale) on ψ, ∇ₓψ and ∂ψ/∂t where candle-onnx has the ops, and the ops it lacks are
//! reported (for 0.11: Pad in "constant" mode, on a UNet's ∂ψ/∂t path; Max, in the in-graph
//! detector; Reciprocal, rewritten here as Div). Behind the `candle-onnx` feature because its build
//! needs `protoc`; `.ci/run` installs it and runs this test.
#![cfg(feature = "candle-onnx")]

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_onnx::onnx::ModelProto;
use prost::Message;
use vpfb_runtime::{Backend, TractModel};
use vpfb_testkit::models::random_mlp;
use vpfb_testkit::{scratch, shipped_model};
use vpfb_trainer::export::export_model;

const CONTRACT: [&str; 3] = ["psi", "velocity", "dpsi_dt"];

/// `model` reduced to the nodes its `outputs` need (candle-onnx evaluates every node it is given).
fn pruned(mut model: ModelProto, outputs: &[&str]) -> ModelProto {
    let graph = model.graph.as_mut().expect("a graph");
    let mut needed: HashSet<String> = outputs.iter().map(|s| s.to_string()).collect();
    let mut keep = vec![false; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(node.input.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    let mut k = keep.into_iter();
    graph.node.retain(|_| k.next().unwrap());
    graph.output.retain(|o| outputs.contains(&o.name.as_str()));
    model
}

/// `model` with each `Reciprocal` (which candle-onnx lacks) written as `Div(1, x)`: the same
/// function, so everything else is still checked.
fn without_reciprocal(mut model: ModelProto) -> ModelProto {
    let graph = model.graph.as_mut().expect("a graph");
    let one = "candle_onnx_check/one".to_string();
    graph.initializer.push(candle_onnx::onnx::TensorProto {
        name: one.clone(),
        data_type: candle_onnx::onnx::tensor_proto::DataType::Float as i32,
        float_data: vec![1.0],
        ..Default::default()
    });
    for node in &mut graph.node {
        if node.op_type == "Reciprocal" {
            node.op_type = "Div".into();
            node.input.insert(0, one.clone());
        }
    }
    model
}

/// The max difference of `got` from `want`, relative to `want`'s largest magnitude.
fn rel_err(got: &Tensor, want: &[f32]) -> f32 {
    let got: Vec<f32> = got
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Evaluates each output of the file at `path` in candle-onnx (on the subgraph it needs) and
/// compares it with tract. Returns the outputs compared and, for the others, candle-onnx's
/// "unsupported" message; any other failure, or a difference above 1e-4, fails the test.
fn check(path: &Path, d_shape: &[usize]) -> (Vec<String>, Vec<String>) {
    let bytes = std::fs::read(path).unwrap();
    let model = ModelProto::decode(bytes.as_slice()).unwrap();
    let tract = TractModel::load(path).unwrap();
    let d: usize = d_shape.iter().product();
    let (mut compared, mut lacking) = (vec![], vec![]);
    let n = 5;
    let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.618).sin()).collect();
    let t: Vec<f32> = (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect();
    let mut shape = vec![n];
    shape.extend(d_shape);
    let inputs: HashMap<String, Tensor> = [
        (
            "x".to_string(),
            Tensor::from_slice(&x, shape.as_slice(), &Device::Cpu).unwrap(),
        ),
        (
            "t".to_string(),
            Tensor::from_slice(&t, n, &Device::Cpu).unwrap(),
        ),
    ]
    .into();
    let ours = tract.evaluate(&x, &t).unwrap();
    let anomaly = tract.anomaly_score_output(&x).ok();
    let outputs = [
        ("psi", Some(&ours.psi)),
        ("velocity", Some(&ours.velocity)),
        ("dpsi_dt", Some(&ours.dpsi_dt)),
        ("anomaly_score", anomaly.as_ref()),
    ];
    for (name, want) in outputs {
        let Some(want) = want else { continue };
        let sub = without_reciprocal(pruned(model.clone(), &[name]));
        match candle_onnx::simple_eval(&sub, inputs.clone()) {
            Ok(out) => {
                let err = rel_err(&out[name], want);
                assert!(
                    err <= 1e-4,
                    "{}: {name} candle-onnx vs tract {err:.2e}",
                    path.display()
                );
                compared.push(format!("{name} ({err:.1e})"));
            }
            Err(e) => {
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or_default();
                assert!(
                    first.starts_with("unsupported"),
                    "{}: candle-onnx fails on {name} for another reason than a missing op: {first}",
                    path.display()
                );
                lacking.push(format!("{name}: {}", &first[..first.len().min(120)]));
            }
        }
    }
    eprintln!(
        "{}: compared {compared:?}; not evaluable {lacking:?}",
        path.display()
    );
    (compared, lacking)
}

#[test]
fn candle_onnx_agrees_with_tract_on_the_shipped_mlp_and_unet() {
    let (compared, _) = check(&shipped_model("moons.onnx"), &[2]);
    // Every contract output of the MLP is read by candle-onnx (its in-graph detector needs Max,
    // which candle-onnx 0.11 lacks: `check` reports it).
    for name in CONTRACT {
        assert!(
            compared.iter().any(|c| c.starts_with(name)),
            "moons {name}: {compared:?}"
        );
    }
    // The UNet's ψ and velocity (its ∂ψ/∂t needs Pad in "constant" mode, which candle-onnx 0.11
    // lacks).
    let (compared, _) = check(&shipped_model("fashion-mnist.onnx"), &[1, 28, 28]);
    for name in ["psi", "velocity"] {
        assert!(
            compared.iter().any(|c| c.starts_with(name)),
            "UNet {name}: {compared:?}"
        );
    }
}

#[test]
fn candle_onnx_agrees_with_tract_on_a_fresh_random_mlp_export() {
    // Random weights everywhere (the shipped model's output layer is trained, not random).
    let (pg, varmap, meta) = random_mlp(3, 32, 2, 5, DType::F32);
    let path = scratch("candle-onnx").join("mlp.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();
    let (compared, _) = check(&path, &[3]);
    assert_eq!(compared.len(), 3, "{compared:?}");
}
