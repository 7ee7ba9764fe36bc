//! Every op's VJP rule against central finite differences (f64) and Candle's own backward (f32),
//! and its second-order closure: differentiating the VJP graph again matches finite differences.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Var};
use common::*;
use vpfb_trainer::graph::{vjp, Dim, Graph, GraphError, NodeId};

const N: usize = 3;

struct Case {
    name: &'static str,
    /// Input shapes; `positive` inputs are drawn from U[0.5, 2] (log, division).
    inputs: Vec<(Vec<Dim>, bool)>,
    build: fn(&mut Graph, &[NodeId]) -> Result<NodeId, GraphError>,
}

fn b(d: &[usize]) -> Vec<Dim> {
    std::iter::once(Dim::Batch)
        .chain(d.iter().map(|&n| Dim::Fixed(n)))
        .collect()
}
fn f(d: &[usize]) -> Vec<Dim> {
    d.iter().map(|&n| Dim::Fixed(n)).collect()
}

fn unary_case(
    name: &'static str,
    positive: bool,
    build: fn(&mut Graph, &[NodeId]) -> Result<NodeId, GraphError>,
) -> Case {
    Case {
        name,
        inputs: vec![(b(&[4]), positive)],
        build,
    }
}

fn cases() -> Vec<Case> {
    vec![
        unary_case("neg", false, |g, x| Ok(g.neg(x[0]))),
        unary_case("silu", false, |g, x| Ok(g.silu(x[0]))),
        unary_case("sigmoid", false, |g, x| Ok(g.sigmoid(x[0]))),
        unary_case("softplus", false, |g, x| Ok(g.softplus(x[0]))),
        unary_case("tanh", false, |g, x| Ok(g.tanh(x[0]))),
        unary_case("exp", false, |g, x| Ok(g.exp(x[0]))),
        unary_case("log", true, |g, x| Ok(g.log(x[0]))),
        unary_case("sin", false, |g, x| Ok(g.sin(x[0]))),
        unary_case("cos", false, |g, x| Ok(g.cos(x[0]))),
        unary_case("rsqrt", true, |g, x| Ok(g.rsqrt(x[0]))),
        Case {
            name: "conv2d(3x3, pad 1)",
            inputs: vec![(b(&[2, 5, 5]), false)],
            build: |g, x| {
                let w = kernel(g, &[3, 2, 3, 3])?;
                g.conv2d(x[0], w, 1, 1)
            },
        },
        Case {
            name: "conv2d(1x1)",
            inputs: vec![(b(&[3, 2, 3]), false)],
            build: |g, x| {
                let w = kernel(g, &[2, 3, 1, 1])?;
                g.conv2d(x[0], w, 1, 0)
            },
        },
        Case {
            name: "conv2d(stride 2, even)",
            inputs: vec![(b(&[2, 6, 6]), false)],
            build: |g, x| {
                let w = kernel(g, &[3, 2, 3, 3])?;
                g.conv2d(x[0], w, 2, 1)
            },
        },
        Case {
            name: "conv2d(stride 2, odd, no pad)",
            inputs: vec![(b(&[2, 5, 5]), false)],
            build: |g, x| {
                let w = kernel(g, &[2, 2, 3, 3])?;
                g.conv2d(x[0], w, 2, 0)
            },
        },
        Case {
            name: "conv_transpose2d(stride 1)",
            inputs: vec![(b(&[2, 4, 4]), false)],
            build: |g, x| {
                let w = kernel(g, &[2, 3, 3, 3])?;
                g.conv_transpose2d(x[0], w, 1, 1, 0)
            },
        },
        Case {
            name: "conv_transpose2d(stride 2, output padding 1)",
            inputs: vec![(b(&[2, 3, 3]), false)],
            build: |g, x| {
                let w = kernel(g, &[2, 3, 3, 3])?;
                g.conv_transpose2d(x[0], w, 2, 1, 1)
            },
        },
        Case {
            name: "group_norm",
            inputs: vec![(b(&[4, 3, 3]), false)],
            build: |g, x| g.group_norm(x[0], 2, 1e-5),
        },
        Case {
            name: "avg_pool2",
            inputs: vec![(b(&[2, 4, 6]), false)],
            build: |g, x| g.avg_pool2(x[0]),
        },
        Case {
            name: "upsample2",
            inputs: vec![(b(&[2, 2, 3]), false)],
            build: |g, x| g.upsample2(x[0]),
        },
        // Conv → GroupNorm → SiLU → pool → upsample: every image op feeding the next, non-linearly.
        Case {
            name: "image composite",
            inputs: vec![(b(&[2, 4, 4]), false)],
            build: |g, x| {
                let w = kernel(g, &[4, 2, 3, 3])?;
                let h = g.conv2d(x[0], w, 1, 1)?;
                let h = g.group_norm(h, 2, 1e-5)?;
                let h = g.silu(h);
                let p = g.avg_pool2(h)?;
                let u = g.upsample2(p)?;
                g.mul(u, h)
            },
        },
        Case {
            name: "add(broadcast row)",
            inputs: vec![(b(&[4]), false), (f(&[1, 4]), false)],
            build: |g, x| g.add(x[0], x[1]),
        },
        Case {
            name: "sub(broadcast rank)",
            inputs: vec![(b(&[4]), false), (f(&[4]), false)],
            build: |g, x| g.sub(x[0], x[1]),
        },
        Case {
            name: "mul(broadcast column)",
            inputs: vec![(b(&[4]), false), (b(&[1]), false)],
            build: |g, x| g.mul(x[0], x[1]),
        },
        Case {
            name: "mul(scalar)",
            inputs: vec![(b(&[2, 3]), false), (f(&[]), false)],
            build: |g, x| g.mul(x[1], x[0]),
        },
        Case {
            name: "div",
            inputs: vec![(b(&[4]), false), (f(&[4]), true)],
            build: |g, x| g.div(x[0], x[1]),
        },
        Case {
            name: "mul(self)",
            inputs: vec![(b(&[4]), false)],
            build: |g, x| g.mul(x[0], x[0]),
        },
        Case {
            name: "matmul",
            inputs: vec![(b(&[3]), false), (f(&[3, 4]), false)],
            build: |g, x| g.matmul(x[0], x[1]),
        },
        Case {
            name: "matmul(batched)",
            inputs: vec![(b(&[2, 3]), false), (b(&[3, 2]), false)],
            build: |g, x| g.matmul(x[0], x[1]),
        },
        Case {
            name: "linear",
            inputs: vec![(b(&[3]), false), (f(&[5, 3]), false), (f(&[5]), false)],
            build: |g, x| g.linear(x[0], x[1], Some(x[2])),
        },
        Case {
            name: "transpose",
            inputs: vec![(b(&[2, 3]), false)],
            build: |g, x| g.transpose(x[0], &[2, 0, 1]),
        },
        Case {
            name: "sum(axis 1)",
            inputs: vec![(b(&[4, 2]), false)],
            build: |g, x| g.sum(x[0], &[1], false),
        },
        Case {
            name: "sum(batch, keepdim)",
            inputs: vec![(b(&[4, 2]), false)],
            build: |g, x| g.sum(x[0], &[0, 2], true),
        },
        Case {
            name: "mean",
            inputs: vec![(b(&[4, 2]), false)],
            build: |g, x| g.mean(x[0], &[1, 2], false),
        },
        Case {
            name: "concat",
            inputs: vec![(b(&[2]), false), (b(&[3]), false)],
            build: |g, x| g.concat(&[x[0], x[1], x[0]], 1),
        },
        Case {
            name: "slice",
            inputs: vec![(b(&[5]), false)],
            build: |g, x| g.slice(x[0], 1, 1, 4),
        },
        Case {
            name: "pad",
            inputs: vec![(b(&[3]), false)],
            build: |g, x| g.pad(x[0], 1, 2, 1),
        },
        Case {
            name: "reshape",
            inputs: vec![(b(&[2, 3]), false)],
            build: |g, x| g.reshape(x[0], vec![Dim::Batch, Dim::Fixed(6)]),
        },
        Case {
            name: "reshape(column)",
            inputs: vec![(b(&[]), false)],
            build: |g, x| g.reshape(x[0], vec![Dim::Batch, Dim::Fixed(1)]),
        },
        Case {
            name: "expand_like",
            inputs: vec![(f(&[1, 4]), false), (b(&[4]), false)],
            build: |g, x| g.expand_like(x[0], x[1]),
        },
        Case {
            name: "expand_like(scalar)",
            inputs: vec![(f(&[]), false), (b(&[2]), false)],
            build: |g, x| g.expand_like(x[0], x[1]),
        },
        // A composite that makes the output depend non-linearly on every input, for second order.
        Case {
            name: "composite",
            inputs: vec![(b(&[3]), false), (f(&[3, 3]), false)],
            build: |g, x| {
                let h = g.matmul(x[0], x[1])?;
                let s = g.silu(h);
                let t = g.tanh(x[0]);
                g.mul(s, t)
            },
        },
    ]
}

/// A fixed, non-symmetric convolution kernel (kernels are parameters, not differentiated inputs).
fn kernel(g: &mut Graph, dims: &[usize]) -> Result<NodeId, GraphError> {
    let n: usize = dims.iter().product();
    let data = (0..n).map(|i| 0.5 * (0.7 * i as f64 + 0.3).sin()).collect();
    g.constant(dims, data)
}

fn concrete(shape: &[Dim]) -> Vec<usize> {
    shape
        .iter()
        .map(|d| match d {
            Dim::Batch => N,
            Dim::Fixed(n) => *n,
        })
        .collect()
}

struct Built {
    g: Graph,
    inputs: Vec<NodeId>,
    y: NodeId,
    w: NodeId,
    grads: Vec<NodeId>,
}

fn build(case: &Case) -> Built {
    let mut g = Graph::new();
    let inputs: Vec<NodeId> = case
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (s, _))| g.input(&format!("a{i}"), s.clone()))
        .collect();
    let y = (case.build)(&mut g, &inputs).unwrap();
    let w = g.input("w", g.shape(y).clone());
    let grads = vjp(&mut g, y, w, &inputs).unwrap();
    Built {
        g,
        inputs,
        y,
        w,
        grads,
    }
}

fn sample_inputs(case: &Case, built: &Built, seed: u64) -> HashMap<String, Vec<f64>> {
    let mut r = rng(seed);
    let mut values = HashMap::new();
    for (i, (s, pos)) in case.inputs.iter().enumerate() {
        let n: usize = concrete(s).iter().product();
        values.insert(
            format!("a{i}"),
            if *pos {
                uniform(&mut r, n, 0.5, 2.0)
            } else {
                normal(&mut r, n, 1.0)
            },
        );
    }
    let n: usize = concrete(built.g.shape(built.y)).iter().product();
    values.insert("w".into(), normal(&mut r, n, 1.0));
    values
}

fn bind(built: &Built, values: &HashMap<String, Vec<f64>>) -> HashMap<String, candle_core::Tensor> {
    let mut shapes: Vec<(String, Vec<Dim>)> = built
        .inputs
        .iter()
        .map(|&id| {
            (
                built.g.node(id).op_input_name().to_string(),
                built.g.shape(id).clone(),
            )
        })
        .collect();
    shapes.push(("w".into(), built.g.shape(built.w).clone()));
    shapes
        .into_iter()
        .map(|(name, s)| {
            let t = tensor(&values[&name], &concrete(&s));
            (name, t)
        })
        .collect()
}

/// Σ y·w evaluated in f64.
fn objective(
    built: &Built,
    values: &HashMap<String, Vec<f64>>,
    node: NodeId,
    weight: &[f64],
) -> f64 {
    let y = run(
        &built.g,
        &bind(built, values),
        &HashMap::new(),
        &[node],
        DType::F64,
    );
    flat(&y[0]).iter().zip(weight).map(|(a, b)| a * b).sum()
}

fn finite_difference(
    built: &Built,
    values: &HashMap<String, Vec<f64>>,
    input: &str,
    node: NodeId,
    weight: &[f64],
) -> Vec<f64> {
    let h = 1e-5;
    (0..values[input].len())
        .map(|k| {
            let mut plus = values.clone();
            plus.get_mut(input).unwrap()[k] += h;
            let mut minus = values.clone();
            minus.get_mut(input).unwrap()[k] -= h;
            (objective(built, &plus, node, weight) - objective(built, &minus, node, weight))
                / (2.0 * h)
        })
        .collect()
}

#[test]
fn vjp_rules_match_finite_differences_in_f64() {
    for case in cases() {
        let built = build(&case);
        let values = sample_inputs(&case, &built, 1);
        let explicit = run(
            &built.g,
            &bind(&built, &values),
            &HashMap::new(),
            &built.grads,
            DType::F64,
        );
        for (i, grad) in explicit.iter().enumerate() {
            let fd = finite_difference(&built, &values, &format!("a{i}"), built.y, &values["w"]);
            let err = max_rel_err(&flat(grad), &fd, 1e-8);
            assert!(
                err <= 1e-6,
                "{}: d/da{i} explicit VJP vs finite differences: relative error {err:.2e}",
                case.name
            );
        }
    }
}

#[test]
fn vjp_rules_match_candle_backward_in_f32() {
    for case in cases() {
        let built = build(&case);
        let values = sample_inputs(&case, &built, 2);
        let mut bound = bind(&built, &values);
        let vars: Vec<Var> = (0..case.inputs.len())
            .map(|i| {
                let name = format!("a{i}");
                let v = Var::from_tensor(&bound[&name].to_dtype(DType::F32).unwrap()).unwrap();
                bound.insert(name, v.as_tensor().clone());
                v
            })
            .collect();
        bound.insert("w".into(), bound["w"].to_dtype(DType::F32).unwrap());
        let mut targets = vec![built.y];
        targets.extend(&built.grads);
        let out = run(&built.g, &bound, &HashMap::new(), &targets, DType::F32);
        let loss = (&out[0] * &bound["w"]).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let candle = grads
                .get(v.as_tensor())
                .map(flat)
                .unwrap_or_else(|| vec![0.0; values[&format!("a{i}")].len()]);
            let err = max_rel_err(&flat(&out[1 + i]), &candle, 1e-6);
            assert!(
                err <= 1e-5,
                "{}: d/da{i} explicit VJP vs Candle backward (f32): relative error {err:.2e}",
                case.name
            );
        }
    }
}

#[test]
fn vjp_rules_are_closed_under_differentiation() {
    // Differentiate ⟨VJP wrt a0, v⟩ again with respect to a0: a Hessian-vector product built only
    // from the rules' own ops, checked against finite differences of the first VJP.
    for case in cases() {
        let mut built = build(&case);
        let v = built.g.input("v", built.g.shape(built.inputs[0]).clone());
        let first = built.grads[0];
        let second = vjp(&mut built.g, first, v, &[built.inputs[0]]).unwrap()[0];
        let mut values = sample_inputs(&case, &built, 3);
        let nv: usize = concrete(built.g.shape(v)).iter().product();
        values.insert("v".into(), normal(&mut rng(4), nv, 1.0));
        let mut bound = bind(&built, &values);
        bound.insert(
            "v".into(),
            tensor(&values["v"], &concrete(built.g.shape(v))),
        );
        let explicit = flat(&run(&built.g, &bound, &HashMap::new(), &[second], DType::F64)[0]);
        // FD of Σ first·v over a0, with `first` evaluated under the same w.
        let h = 1e-5;
        let fd: Vec<f64> = (0..values["a0"].len())
            .map(|k| {
                let eval_at = |delta: f64| {
                    let mut vals = values.clone();
                    vals.get_mut("a0").unwrap()[k] += delta;
                    let mut b2 = bind(&built, &vals);
                    b2.insert("v".into(), bound["v"].clone());
                    let g1 = flat(&run(&built.g, &b2, &HashMap::new(), &[first], DType::F64)[0]);
                    g1.iter().zip(&values["v"]).map(|(a, b)| a * b).sum::<f64>()
                };
                (eval_at(h) - eval_at(-h)) / (2.0 * h)
            })
            .collect();
        let err = max_rel_err(&explicit, &fd, 1e-6);
        assert!(
            err <= 1e-6,
            "{}: second-order VJP vs finite differences: relative error {err:.2e}",
            case.name
        );
    }
}
