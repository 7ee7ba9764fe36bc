//! The ONNX backend: lowers graph nodes to ONNX (opset 17) nodes with the prost types that
//! tract-onnx exposes, so writing a model needs no `protoc`.

// Index loops here walk several arrays (or a matrix's rows and columns) in step.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use vpfb_runtime::onnx_proto::{
    self as pb, attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto::dimension, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

use super::{Binary, Dim, Graph, GraphError, NodeId, Op, Unary};

/// The opset every exported file declares.
pub const OPSET: i64 = 17;
/// IR version matching opset 17.
pub const IR_VERSION: i64 = 8;

/// Floating-point type of the exported graph (f32 for shipped models; f64 for exact tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F64,
}

impl ElemType {
    fn proto(self) -> i32 {
        match self {
            ElemType::F32 => DataType::Float as i32,
            ElemType::F64 => DataType::Double as i32,
        }
    }
}

/// A named parameter value: row-major data and dimensions.
#[derive(Clone, Debug)]
pub struct ParamValue {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

/// What to export: which graph nodes are the model's inputs and outputs, under which names.
pub struct ExportSpec<'a> {
    pub graph: &'a Graph,
    /// Input nodes (each an `Op::Input`) in the order the file declares them.
    pub inputs: Vec<NodeId>,
    /// Default values of optional inputs, by input name: written as an initializer of the same name,
    /// which a client may override by feeding the input (ONNX IR ≥ 4) and otherwise gets this value.
    pub input_defaults: HashMap<String, ParamValue>,
    /// Output nodes with their public names.
    pub outputs: Vec<(NodeId, String)>,
    pub params: &'a HashMap<String, ParamValue>,
    pub elem: ElemType,
    pub metadata: Vec<(String, String)>,
    pub producer_version: String,
}

struct Emitter {
    elem: ElemType,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: HashMap<NodeId, String>,
}

/// Builds the ONNX model for `spec`.
pub fn to_model(spec: &ExportSpec<'_>) -> Result<ModelProto, GraphError> {
    let g = spec.graph;
    let Some(last) = spec.outputs.iter().map(|(id, _)| id.index()).max() else {
        return Err(GraphError::Shape("export with no outputs".into()));
    };
    let mut needed = vec![false; last + 1];
    for (id, _) in &spec.outputs {
        needed[id.index()] = true;
    }
    for i in (0..=last).rev() {
        if needed[i] {
            for a in g.nodes()[i].op.args() {
                needed[a.index()] = true;
            }
        }
    }
    let mut e = Emitter {
        elem: spec.elem,
        nodes: vec![],
        initializers: vec![],
        names: HashMap::new(),
    };
    let mut graph_inputs = Vec::new();
    for &id in &spec.inputs {
        match &g.node(id).op {
            Op::Input(name) => {
                graph_inputs.push(value_info(name, spec.elem, g.shape(id)));
                e.names.insert(id, name.clone());
                if let Some(v) = spec.input_defaults.get(name) {
                    e.float_init(name, &v.dims, &v.data);
                }
            }
            other => {
                return Err(GraphError::Shape(format!(
                    "export input {id:?} is {other:?}, not an input"
                )))
            }
        }
    }
    for i in 0..=last {
        if needed[i] && !e.names.contains_key(&NodeId(i)) {
            e.lower(g, NodeId(i), spec.params)?;
        }
    }
    let mut graph_outputs = Vec::new();
    for (id, name) in &spec.outputs {
        let src = e.names[id].clone();
        e.node("Identity", &[&src], name, vec![]);
        graph_outputs.push(value_info(name, spec.elem, g.shape(*id)));
    }
    let graph = GraphProto {
        node: e.nodes,
        name: "vpfb".into(),
        initializer: e.initializers,
        input: graph_inputs,
        output: graph_outputs,
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "vpfb-train".into(),
        producer_version: spec.producer_version.clone(),
        graph: Some(graph),
        metadata_props: spec
            .metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

pub(crate) fn value_info(name: &str, elem: ElemType, shape: &[Dim]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Batch => dimension::Value::DimParam("N".into()),
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem.proto(),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn kernel_extent(g: &Graph, w: NodeId) -> i64 {
    match g.shape(w)[2] {
        Dim::Fixed(k) => k as i64,
        Dim::Batch => unreachable!("kernels have fixed shapes by construction"),
    }
}

/// Attributes shared by Conv and ConvTranspose: square kernel, equal strides and pads.
fn conv_attrs(k: i64, stride: usize, pad: usize) -> Vec<AttributeProto> {
    let (s, p) = (stride as i64, pad as i64);
    vec![
        ints_attr("kernel_shape", &[k, k]),
        ints_attr("strides", &[s, s]),
        ints_attr("pads", &[p, p, p, p]),
        ints_attr("dilations", &[1, 1]),
        int_attr("group", 1),
    ]
}

impl Emitter {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
    }

    fn float_init(&mut self, name: &str, dims: &[usize], data: &[f64]) {
        let raw: Vec<u8> = match self.elem {
            ElemType::F32 => data
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
            ElemType::F64 => data.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        };
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: self.elem.proto(),
            raw_data: raw,
            ..Default::default()
        });
    }

    fn int_init(&mut self, name: &str, data: &[i64]) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    /// An int64 initializer shared by every node that asks for `name` (added once).
    fn shared_int_init(&mut self, name: &str, data: &[i64]) -> String {
        if self.initializers.iter().any(|t| t.name == name) {
            return name.to_string();
        }
        self.int_init(name, data)
    }

    /// σ(a) = 1 / (1 + exp(−a)) and softplus(a) = log(1 + exp(a)), in primitive ops.
    fn lower_f64_logistic(&mut self, f: Unary, a: &str, out: &str) {
        let one = format!("{out}_one");
        self.float_init(&one, &[], &[1.0]);
        let e = format!("{out}_exp");
        let ope = format!("{out}_1pexp");
        if f == Unary::Sigmoid {
            let na = format!("{out}_neg");
            self.node("Neg", &[a], &na, vec![]);
            self.node("Exp", &[&na], &e, vec![]);
            self.node("Add", &[&one, &e], &ope, vec![]);
            self.node("Div", &[&one, &ope], out, vec![]);
        } else {
            self.node("Exp", &[a], &e, vec![]);
            self.node("Add", &[&one, &e], &ope, vec![]);
            self.node("Log", &[&ope], out, vec![]);
        }
    }

    fn lower(
        &mut self,
        g: &Graph,
        id: NodeId,
        params: &HashMap<String, ParamValue>,
    ) -> Result<(), GraphError> {
        let out = format!("n{}", id.index());
        let arg = |a: &NodeId| -> String { self.names[a].clone() };
        match &g.node(id).op {
            Op::Input(name) => {
                return Err(GraphError::MissingBinding {
                    kind: "export input",
                    name: name.clone(),
                });
            }
            Op::Param(name) => {
                let p = params.get(name).ok_or_else(|| GraphError::MissingBinding {
                    kind: "parameter",
                    name: name.clone(),
                })?;
                let expected = super::shape::fixed(&p.dims);
                if &expected != g.shape(id) || p.dims.iter().product::<usize>() != p.data.len() {
                    return Err(GraphError::BindingShape {
                        kind: "parameter",
                        name: name.clone(),
                        got: p.dims.clone(),
                        expected: super::shape::show(g.shape(id)),
                    });
                }
                self.float_init(name, &p.dims, &p.data);
                self.names.insert(id, name.clone());
                return Ok(());
            }
            Op::Const { dims, data } => self.float_init(&out, dims, data),
            Op::Unary(f, a) => {
                let a = arg(a);
                if self.elem == ElemType::F64 && matches!(f, Unary::Sigmoid | Unary::Softplus) {
                    // tract's Sigmoid/Softplus kernels are f32/f16 only: spell them out for f64.
                    self.lower_f64_logistic(*f, &a, &out);
                    self.names.insert(id, out);
                    return Ok(());
                }
                let op = match f {
                    Unary::Neg => "Neg",
                    Unary::Sigmoid => "Sigmoid",
                    Unary::Softplus => "Softplus",
                    Unary::Tanh => "Tanh",
                    Unary::Exp => "Exp",
                    Unary::Log => "Log",
                    Unary::Sin => "Sin",
                    Unary::Cos => "Cos",
                    Unary::Rsqrt => {
                        let r = format!("{out}_sqrt");
                        self.node("Sqrt", &[&a], &r, vec![]);
                        self.node("Reciprocal", &[&r], &out, vec![]);
                        self.names.insert(id, out);
                        return Ok(());
                    }
                    Unary::Silu => {
                        let s = format!("{out}_sigmoid");
                        if self.elem == ElemType::F64 {
                            self.lower_f64_logistic(Unary::Sigmoid, &a, &s);
                        } else {
                            self.node("Sigmoid", &[&a], &s, vec![]);
                        }
                        self.node("Mul", &[&a, &s], &out, vec![]);
                        self.names.insert(id, out);
                        return Ok(());
                    }
                };
                self.node(op, &[&a], &out, vec![]);
            }
            Op::Binary(f, a, b) => {
                let op = match f {
                    Binary::Add => "Add",
                    Binary::Sub => "Sub",
                    Binary::Mul => "Mul",
                    Binary::Div => "Div",
                };
                let (a, b) = (arg(a), arg(b));
                self.node(op, &[&a, &b], &out, vec![]);
            }
            Op::MatMul(a, b) => {
                let (a, b) = (arg(a), arg(b));
                self.node("MatMul", &[&a, &b], &out, vec![]);
            }
            Op::Transpose(a, perm) => {
                let a = arg(a);
                let perm: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
                self.node("Transpose", &[&a], &out, vec![ints_attr("perm", &perm)]);
            }
            Op::Sum { x, axes, keepdim } => {
                let x = arg(x);
                let axes_name = self.int_init(
                    &format!("{out}_axes"),
                    &axes.iter().map(|&a| a as i64).collect::<Vec<_>>(),
                );
                self.node(
                    "ReduceSum",
                    &[&x, &axes_name],
                    &out,
                    vec![int_attr("keepdims", *keepdim as i64)],
                );
            }
            Op::Mean { x, axes, keepdim } => {
                let x = arg(x);
                let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                self.node(
                    "ReduceMean",
                    &[&x],
                    &out,
                    vec![
                        ints_attr("axes", &axes),
                        int_attr("keepdims", *keepdim as i64),
                    ],
                );
            }
            Op::Concat(xs, axis) => {
                let names: Vec<String> = xs.iter().map(arg).collect();
                let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
                self.node("Concat", &refs, &out, vec![int_attr("axis", *axis as i64)]);
            }
            Op::Slice {
                x,
                axis,
                start,
                end,
            } => {
                let x = arg(x);
                let s = self.int_init(&format!("{out}_starts"), &[*start as i64]);
                let e = self.int_init(&format!("{out}_ends"), &[*end as i64]);
                let a = self.int_init(&format!("{out}_axes"), &[*axis as i64]);
                self.node("Slice", &[&x, &s, &e, &a], &out, vec![]);
            }
            Op::Pad {
                x,
                axis,
                before,
                after,
            } => {
                let rank = g.shape(*x).len();
                let mut pads = vec![0i64; 2 * rank];
                pads[*axis] = *before as i64;
                pads[rank + axis] = *after as i64;
                let x = arg(x);
                let p = self.int_init(&format!("{out}_pads"), &pads);
                self.node("Pad", &[&x, &p], &out, vec![]);
            }
            Op::Reshape(x, shape) => {
                let x = arg(x);
                let dims: Vec<i64> = shape
                    .iter()
                    .map(|d| match d {
                        Dim::Batch => -1,
                        Dim::Fixed(n) => *n as i64,
                    })
                    .collect();
                let s = self.int_init(&format!("{out}_shape"), &dims);
                self.node("Reshape", &[&x, &s], &out, vec![]);
            }
            Op::ExpandLike(x, like) => {
                let (x, like) = (arg(x), arg(like));
                let s = format!("{out}_shape");
                self.node("Shape", &[&like], &s, vec![]);
                self.node("Expand", &[&x, &s], &out, vec![]);
            }
            Op::Conv2d { x, w, stride, pad } => {
                let k = kernel_extent(g, *w);
                let (x, w) = (arg(x), arg(w));
                self.node("Conv", &[&x, &w], &out, conv_attrs(k, *stride, *pad));
            }
            Op::ConvTranspose2d {
                x,
                w,
                stride,
                pad,
                out_pad,
            } if *stride == 1 && *out_pad == 0 && (*pad as i64) < kernel_extent(g, *w) => {
                // A stride-1 transposed convolution is a convolution with the kernel's channel axes
                // swapped, flipped in space, and padding k − 1 − pad. Runtimes run Conv far faster
                // (tract's ConvTranspose scatters through a k²-times larger buffer), and the kernel
                // transform of a weight folds into a constant when the plan is optimised.
                let k = kernel_extent(g, *w);
                let (x, w) = (arg(x), arg(w));
                let swapped = format!("{out}_kernel_t");
                self.node(
                    "Transpose",
                    &[&w],
                    &swapped,
                    vec![ints_attr("perm", &[1, 0, 2, 3])],
                );
                let flip = |part: &str| format!("spatial_flip_k{k}_{part}");
                let starts = self.shared_int_init(&flip("starts"), &[-1, -1]);
                let ends = self.shared_int_init(&flip("ends"), &[-(k + 1), -(k + 1)]);
                let axes = self.shared_int_init(&flip("axes"), &[2, 3]);
                let steps = self.shared_int_init(&flip("steps"), &[-1, -1]);
                let kernel = format!("{out}_kernel");
                self.node(
                    "Slice",
                    &[&swapped, &starts, &ends, &axes, &steps],
                    &kernel,
                    vec![],
                );
                let conv_pad = (k as usize) - 1 - *pad;
                self.node("Conv", &[&x, &kernel], &out, conv_attrs(k, 1, conv_pad));
            }
            Op::ConvTranspose2d {
                x,
                w,
                stride,
                pad,
                out_pad,
            } => {
                let k = kernel_extent(g, *w);
                let (x, w) = (arg(x), arg(w));
                let mut attrs = conv_attrs(k, *stride, *pad);
                let op = *out_pad as i64;
                attrs.push(ints_attr("output_padding", &[op, op]));
                self.node("ConvTranspose", &[&x, &w], &out, attrs);
            }
            Op::Conv2dKernelGrad { .. } => {
                return Err(GraphError::NotDifferentiable(
                    "a parameter gradient (conv2d_kernel_grad) is part of training, not of a model file"
                        .into(),
                ))
            }
        }
        self.names.insert(id, out);
        Ok(())
    }
}
