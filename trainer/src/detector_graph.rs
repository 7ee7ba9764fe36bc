//! The fitted detector as plain ONNX ops: an `anomaly_score` `[N]` output, so that any ONNX runtime
//! (ONNX Runtime in a server, Triton, Spark) scores records without vpfb.
//!
//! The potential's nodes are copied once more (values renamed under `ood/`, parameters shared) and
//! fed the K path points of every record as one batch of N·K rows; the statistics, their
//! normal-score maps (piecewise linear, written as sums of clipped ramps) and the density's
//! log-likelihood (Mahalanobis forms through the inverse Cholesky factors, log-sum-exp over mixture
//! components) follow as ordinary elementwise, reduction and MatMul nodes, float32 throughout.

use std::collections::{HashMap, HashSet};

use vpfb_runtime::contract::{
    INPUT_T, INPUT_X, OUTPUT_ANOMALY_SCORE, OUTPUT_DPSI_DT, OUTPUT_PSI, OUTPUT_VELOCITY,
};
use vpfb_runtime::onnx_proto::{
    tensor_proto::DataType, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto,
};
use vpfb_runtime::ood::density::{Density, Gaussian};
use vpfb_runtime::ood::statistics::{Kind, StatId};
use vpfb_runtime::ood::Detector;

use crate::graph::onnx::{int_attr, value_info, ElemType};
use crate::graph::{Dim, GraphError};

const PREFIX: &str = vpfb_runtime::contract::DETECTOR_GRAPH_PREFIX;

/// Appends nodes to a graph under fresh names.
struct Emit<'g> {
    g: &'g mut GraphProto,
    count: usize,
}

impl Emit<'_> {
    fn fresh(&mut self) -> String {
        self.count += 1;
        format!("{PREFIX}v{}", self.count)
    }

    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh();
        self.g.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("{PREFIX}{op}_{}", self.count),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    fn f32s(&mut self, dims: &[usize], data: &[f64]) -> String {
        let name = self.fresh();
        self.g.initializer.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: data
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
            ..Default::default()
        });
        name
    }

    fn i64s(&mut self, data: &[i64]) -> String {
        let name = self.fresh();
        self.g.initializer.push(TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn scalar(&mut self, v: f64) -> String {
        self.f32s(&[], &[v])
    }

    fn sum(&mut self, x: &str, axes: &[i64], keep: bool) -> String {
        let a = self.i64s(axes);
        self.op(
            "ReduceSum",
            &[x, &a],
            vec![int_attr("keepdims", keep as i64)],
        )
    }

    fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        let a = self.i64s(axes);
        self.op("Unsqueeze", &[x, &a], vec![])
    }

    fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.i64s(shape);
        self.op("Reshape", &[x, &s], vec![])
    }

    /// log(Σ over `axes` of a² + 1e-30), the floor the runtime uses too.
    fn log_norm2(&mut self, a: &str, axes: &[i64]) -> String {
        let sq = self.op("Mul", &[a, a], vec![]);
        let s = self.sum(&sq, axes, false);
        let floor = self.scalar(1e-30);
        let s = self.op("Add", &[&s, &floor], vec![]);
        self.op("Log", &[&s], vec![])
    }
}

/// Inverse of a lower-triangular matrix (row-major), transposed: W = L⁻ᵀ, so that for a row vector
/// u, u·W = (L⁻¹uᵀ)ᵀ and ‖u·W‖² is the Mahalanobis form of L·Lᵀ.
fn inverse_transpose(l: &[f64], d: usize) -> Vec<f64> {
    let mut inv = vec![0.0; d * d];
    for c in 0..d {
        // Solve L·y = e_c.
        for i in 0..d {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i * d + k] * inv[k * d + c];
            }
            inv[i * d + c] = s / l[i * d + i];
        }
    }
    let mut w = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            w[j * d + i] = inv[i * d + j];
        }
    }
    w
}

/// The value names the nodes producing `outputs` need, walking back through `g`.
fn needed_nodes(g: &GraphProto, outputs: &[&str]) -> Vec<usize> {
    let producer: HashMap<&str, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut keep = HashSet::new();
    let mut stack: Vec<&str> = outputs.to_vec();
    while let Some(v) = stack.pop() {
        if let Some(&i) = producer.get(v) {
            if keep.insert(i) {
                stack.extend(g.node[i].input.iter().map(String::as_str));
            }
        }
    }
    let mut idx: Vec<usize> = keep.into_iter().collect();
    idx.sort_unstable();
    idx
}

/// Adds the `anomaly_score` output computing `det` to an exported potential's `proto`.
pub fn add_anomaly_score(
    proto: &mut ModelProto,
    det: &Detector,
    data_shape: &[usize],
) -> Result<(), GraphError> {
    let g = proto
        .graph
        .as_mut()
        .ok_or_else(|| GraphError::Shape("model without a graph".into()))?;
    let (k, r, d) = (
        det.times.len(),
        data_shape.len(),
        data_shape.iter().product::<usize>(),
    );
    let data_axes: Vec<i64> = (1..=r as i64).collect();
    let shape_tail: Vec<i64> = data_shape.iter().map(|&v| v as i64).collect();
    let mut flat_shape = vec![-1i64];
    flat_shape.extend(&shape_tail);

    // The copy of the potential, renamed, reading the path points instead of x and t.
    let copied = needed_nodes(g, &[OUTPUT_PSI, OUTPUT_VELOCITY, OUTPUT_DPSI_DT]);
    let initializers: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let copies: Vec<NodeProto> = copied.iter().map(|&i| g.node[i].clone()).collect();
    let mut e = Emit { g, count: 0 };

    // x_t = t·x + (1 − t)·z for every record and time: [N, K, shape…] → [N·K, shape…].
    let xu = e.unsqueeze(INPUT_X, &[1]);
    let mut col = vec![1usize, k];
    col.extend(std::iter::repeat_n(1, r));
    let tk = e.f32s(&col, &det.times);
    let z = det.anchor.draw(d);
    let mut zk_dims = vec![1usize, k];
    zk_dims.extend(data_shape);
    let zk_data: Vec<f64> = det
        .times
        .iter()
        .flat_map(|&t| z.iter().map(move |&v| (1.0 - t) * v as f64))
        .collect();
    let zk = e.f32s(&zk_dims, &zk_data);
    let scaled = e.op("Mul", &[&xu, &tk], vec![]);
    let xt5 = e.op("Add", &[&scaled, &zk], vec![]);
    let xt = e.reshape(&xt5, &flat_shape);
    let ones = e.f32s(&col, &vec![1.0; k]);
    let xr5 = e.op("Mul", &[&xu, &ones], vec![]);
    let xr = e.reshape(&xr5, &flat_shape);
    // t for every row: 0·Σx + t_k, flattened record-major like x_t.
    let xs = e.sum(INPUT_X, &data_axes, false);
    let zero = e.scalar(0.0);
    let xs0 = e.op("Mul", &[&xs, &zero], vec![]);
    let xs0 = e.unsqueeze(&xs0, &[1]);
    let tvec = e.f32s(&[1, k], &det.times);
    let tnk = e.op("Add", &[&xs0, &tvec], vec![]);
    let tflat = e.reshape(&tnk, &[-1]);

    let rename = |v: &str| -> String {
        if v.is_empty() || initializers.contains(v) {
            v.to_string()
        } else if v == INPUT_X {
            xt.clone()
        } else if v == INPUT_T {
            tflat.clone()
        } else {
            format!("{PREFIX}net/{v}")
        }
    };
    for mut n in copies {
        n.input = n.input.iter().map(|v| rename(v)).collect();
        n.output = n.output.iter().map(|v| rename(v)).collect();
        n.name = format!("{PREFIX}net/{}", n.name);
        e.g.node.push(n);
    }
    let (psi, vel, dpsi) = (
        rename(OUTPUT_PSI),
        rename(OUTPUT_VELOCITY),
        rename(OUTPUT_DPSI_DT),
    );

    // Per row: ψ, ∂ψ/∂t, log‖v‖², log‖x_t − t·v‖², log‖x_t + (1 − t)·v − x‖².
    let mut tshape = vec![-1i64];
    tshape.extend(std::iter::repeat_n(1, r));
    let tcol = e.reshape(&tflat, &tshape);
    let one = e.scalar(1.0);
    let omt = e.op("Sub", &[&one, &tcol], vec![]);
    let lg = e.log_norm2(&vel, &data_axes);
    let tv = e.op("Mul", &[&vel, &tcol], vec![]);
    let eps = e.op("Sub", &[&xt, &tv], vec![]);
    let ln = e.log_norm2(&eps, &data_axes);
    let ov = e.op("Mul", &[&vel, &omt], vec![]);
    let xh = e.op("Add", &[&xt, &ov], vec![]);
    let dx = e.op("Sub", &[&xh, &xr], vec![]);
    let ld = e.log_norm2(&dx, &data_axes);
    let cols: Vec<String> = [&psi, &dpsi, &lg, &ln, &ld]
        .iter()
        .map(|c| e.unsqueeze(c, &[1]))
        .collect();
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let per_row = e.op("Concat", &col_refs, vec![int_attr("axis", 1)]);
    let per_record = e.reshape(&per_row, &[-1, 5 * k as i64]);
    let xf = e.reshape(INPUT_X, &[-1, d as i64]);
    let xsq = e.op("Mul", &[&xf, &xf], vec![]);
    let xn = e.sum(&xsq, &[1], true);
    let all = e.op("Concat", &[&per_record, &xn], vec![int_attr("axis", 1)]);
    let kinds = [
        Kind::Psi,
        Kind::DpsiDt,
        Kind::LogGrad2,
        Kind::LogNoise2,
        Kind::LogDenoise2,
    ];
    let index = det
        .statistics
        .iter()
        .map(|s| {
            let id: StatId = s.parse().map_err(GraphError::Shape)?;
            if id.kind == Kind::XNorm2 {
                return Ok(5 * k as i64);
            }
            let j = det.times.iter().position(|&t| t == id.t).ok_or_else(|| {
                GraphError::Shape(format!("statistic {s} is not on the detector's grid"))
            })?;
            let c = kinds
                .iter()
                .position(|&q| q == id.kind)
                .expect("per-time kind");
            Ok((5 * j + c) as i64)
        })
        .collect::<Result<Vec<i64>, GraphError>>()?;
    let s = index.len();
    let idx = e.i64s(&index);
    let stats = e.op("Gather", &[&all, &idx], vec![int_attr("axis", 1)]);

    // Normal scores: z₀ + Σᵢ sᵢ·clip(x − kᵢ, 0, Δᵢ) + s_first·min(x − k₀, 0) + s_last·max(x − k_last, 0).
    let m = det
        .marginals
        .iter()
        .map(|q| q.knots.len() - 1)
        .max()
        .unwrap_or(1);
    let (mut q, mut dq, mut sl) = (vec![0.0; s * m], vec![0.0; s * m], vec![0.0; s * m]);
    let (mut z0, mut k0, mut kl, mut s0, mut slast) = (vec![], vec![], vec![], vec![], vec![]);
    for (j, mg) in det.marginals.iter().enumerate() {
        let n = mg.knots.len();
        for i in 0..n - 1 {
            let w = mg.knots[i + 1] - mg.knots[i];
            q[j * m + i] = mg.knots[i];
            dq[j * m + i] = w;
            sl[j * m + i] = (mg.z[i + 1] - mg.z[i]) / w;
        }
        z0.push(mg.z[0]);
        k0.push(mg.knots[0]);
        kl.push(mg.knots[n - 1]);
        s0.push(sl[j * m]);
        slast.push(sl[j * m + n - 2]);
    }
    let (q, dq, sl) = (
        e.f32s(&[s, m], &q),
        e.f32s(&[s, m], &dq),
        e.f32s(&[s, m], &sl),
    );
    let su = e.unsqueeze(&stats, &[2]);
    let off = e.op("Sub", &[&su, &q], vec![]);
    let pos = e.op("Max", &[&off, &zero], vec![]);
    let clipped = e.op("Min", &[&pos, &dq], vec![]);
    let ramps = e.op("Mul", &[&clipped, &sl], vec![]);
    let inner = e.sum(&ramps, &[2], false);
    let (z0, k0, kl, s0, slast) = (
        e.f32s(&[s], &z0),
        e.f32s(&[s], &k0),
        e.f32s(&[s], &kl),
        e.f32s(&[s], &s0),
        e.f32s(&[s], &slast),
    );
    let below = e.op("Sub", &[&stats, &k0], vec![]);
    let below = e.op("Min", &[&below, &zero], vec![]);
    let below = e.op("Mul", &[&below, &s0], vec![]);
    let above = e.op("Sub", &[&stats, &kl], vec![]);
    let above = e.op("Max", &[&above, &zero], vec![]);
    let above = e.op("Mul", &[&above, &slast], vec![]);
    let zs = e.op("Add", &[&z0, &inner], vec![]);
    let zs = e.op("Add", &[&zs, &below], vec![]);
    let zs = e.op("Add", &[&zs, &above], vec![]);

    // log-density: per component ln w − ½(S ln 2π + log det + ‖(z − μ)·L⁻ᵀ‖²), log-sum-exp over them.
    let comps: Vec<(f64, &Gaussian)> = match &det.density {
        Density::Gaussian(g) => vec![(1.0, g)],
        Density::Gmm { components } => components.iter().map(|c| (c.weight, &c.gaussian)).collect(),
    };
    let c = comps.len();
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let mu: Vec<f64> = comps
        .iter()
        .flat_map(|(_, g)| g.mean.iter().copied())
        .collect();
    let w: Vec<f64> = comps
        .iter()
        .flat_map(|(_, g)| inverse_transpose(&g.chol, s))
        .collect();
    let consts: Vec<f64> = comps
        .iter()
        .map(|(wt, g)| wt.ln() - 0.5 * (s as f64 * ln2pi + g.log_det))
        .collect();
    let (mu, w, consts) = (
        e.f32s(&[c, s], &mu),
        e.f32s(&[c, s, s], &w),
        e.f32s(&[c], &consts),
    );
    let zu = e.unsqueeze(&zs, &[1]);
    let u = e.op("Sub", &[&zu, &mu], vec![]);
    let u = e.unsqueeze(&u, &[2]);
    let y = e.op("MatMul", &[&u, &w], vec![]);
    let y2 = e.op("Mul", &[&y, &y], vec![]);
    let maha = e.sum(&y2, &[2, 3], false);
    let half = e.scalar(0.5);
    let hm = e.op("Mul", &[&maha, &half], vec![]);
    let lp = e.op("Sub", &[&consts, &hm], vec![]);
    let top = e.op(
        "ReduceMax",
        &[&lp],
        vec![
            crate::graph::onnx::ints_attr("axes", &[1]),
            int_attr("keepdims", 1),
        ],
    );
    let shifted = e.op("Sub", &[&lp, &top], vec![]);
    let ex = e.op("Exp", &[&shifted], vec![]);
    let se = e.sum(&ex, &[1], false);
    let lse = e.op("Log", &[&se], vec![]);
    let top = e.reshape(&top, &[-1]);
    let logp = e.op("Add", &[&lse, &top], vec![]);
    e.g.node.push(NodeProto {
        input: vec![logp],
        output: vec![OUTPUT_ANOMALY_SCORE.into()],
        name: format!("{PREFIX}anomaly_score"),
        op_type: "Neg".into(),
        ..Default::default()
    });
    e.g.output.push(value_info(
        OUTPUT_ANOMALY_SCORE,
        ElemType::F32,
        &[Dim::Batch],
    ));
    Ok(())
}
