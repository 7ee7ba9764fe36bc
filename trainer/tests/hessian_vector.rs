//! Differentiating the explicit ∇ₓψ graph again along v gives the Hessian-vector product
//! ∇ₓ(∇ₓψ·v): checked against central differences of ∇ₓψ, evaluated by Candle and by tract on the
//! exported ONNX graph (f64 export, so the comparison is exact to rounding).

mod common;

use std::collections::HashMap;

use candle_core::DType;
use common::*;
use tract_onnx::prelude::*;
use vpfb_testkit::models::random_mlp;
use vpfb_trainer::graph::onnx::{to_model, ElemType, ExportSpec};
use vpfb_trainer::graph::{vjp, Dim, NodeId};

const D: usize = 3;
const N: usize = 5;

#[test]
fn hessian_vector_product_matches_finite_differences_in_candle_and_tract() {
    let (mut pg, varmap, _) = random_mlp(D, 16, 2, 41, DType::F64);
    let g = &mut pg.graph;
    let v = g.input("v", vec![Dim::Batch, Dim::Fixed(D)]);
    let gv = g.mul(pg.velocity, v).unwrap();
    let dot = g.sum(gv, &[1], false).unwrap();
    let seed = g.full_like(1.0, dot).unwrap();
    let hvp: NodeId = vjp(g, dot, seed, &[pg.x]).unwrap()[0];

    let mut r = rng(42);
    let x = normal(&mut r, N * D, 1.5);
    let t = uniform(&mut r, N, 0.0, 1.0);
    let dir = normal(&mut r, N * D, 1.0);
    let params = param_tensors(&varmap);
    let bind = |x: &[f64]| {
        HashMap::from([
            ("x".to_string(), tensor(x, &[N, D])),
            ("t".to_string(), tensor(&t, &[N])),
            ("v".to_string(), tensor(&dir, &[N, D])),
        ])
    };
    let candle_hvp = flat(&run(&pg.graph, &bind(&x), &params, &[hvp], DType::F64)[0]);

    let h = 1e-5;
    let velocity_at = |sign: f64| {
        let shifted: Vec<f64> = x.iter().zip(&dir).map(|(a, b)| a + sign * h * b).collect();
        flat(
            &run(
                &pg.graph,
                &bind(&shifted),
                &params,
                &[pg.velocity],
                DType::F64,
            )[0],
        )
    };
    let (plus, minus) = (velocity_at(1.0), velocity_at(-1.0));
    let fd: Vec<f64> = plus
        .iter()
        .zip(&minus)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    let err = max_rel_err(&candle_hvp, &fd, 1e-8);
    assert!(err <= 1e-5, "Candle HVP vs finite differences: {err:.2e}");

    // The same nodes through the ONNX backend, run by tract.
    let values = vpfb_trainer::export::param_values(&varmap).unwrap();
    let proto = to_model(&ExportSpec {
        graph: &pg.graph,
        inputs: vec![pg.x, pg.t, v],
        input_defaults: HashMap::new(),
        outputs: vec![(hvp, "hvp".into())],
        params: &values,
        elem: ElemType::F64,
        metadata: vec![],
        producer_version: "test".into(),
    })
    .unwrap();
    let bytes = prost::Message::encode_to_vec(&proto);
    let plan = tract_onnx::onnx()
        .model_for_read(&mut bytes.as_slice())
        .unwrap()
        .with_input_fact(0, f64::fact([N, D]).into())
        .unwrap()
        .with_input_fact(1, f64::fact([N]).into())
        .unwrap()
        .with_input_fact(2, f64::fact([N, D]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let out = plan
        .run(tvec![
            tract_ndarray::Array2::from_shape_vec((N, D), x.clone())
                .unwrap()
                .into_tensor()
                .into(),
            tract_ndarray::Array1::from_vec(t.clone())
                .into_tensor()
                .into(),
            tract_ndarray::Array2::from_shape_vec((N, D), dir.clone())
                .unwrap()
                .into_tensor()
                .into(),
        ])
        .unwrap();
    let tract_hvp: Vec<f64> = out[0]
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<f64>()
        .unwrap()
        .to_vec();
    let err = max_rel_err(&tract_hvp, &fd, 1e-8);
    assert!(
        err <= 1e-5,
        "tract (ONNX export) HVP vs finite differences: {err:.2e}"
    );
}
