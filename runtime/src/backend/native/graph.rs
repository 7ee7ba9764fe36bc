//! The part of an ONNX graph that computes a selection of outputs, read once into plain Rust
//! values: constants decoded, nodes in evaluation order, every tensor named by an index.

use std::collections::HashMap;
use std::sync::Arc;

use crate::onnx_proto::{self as pb, tensor_proto::DataType};

use super::NativeError;

/// A constant: an initializer, or a value computed while a plan is built.
#[derive(Clone, Debug)]
pub(super) enum Konst {
    F32(Arc<Vec<f32>>),
    I64(Arc<Vec<i64>>),
}

/// A tensor of the graph before any batch size is known.
#[derive(Clone, Debug)]
pub(super) enum Source {
    /// The `i`-th fed input.
    Fed(usize),
    /// An initializer (shape and values).
    Konst(Vec<usize>, Konst),
    /// The output of a node.
    Computed,
    /// An optional input left empty (`""` in ONNX).
    Absent,
}

/// One node: its operator, attributes, and the indices of the tensors it reads and writes.
#[derive(Clone, Debug)]
pub(super) struct Node {
    pub op: String,
    pub name: String,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub attributes: Vec<pb::AttributeProto>,
}

impl Node {
    fn attribute(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// An integer attribute, or `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.attribute(name).map_or(default, |a| a.i)
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        self.attribute(name).map(|a| a.ints.as_slice())
    }

    /// A tensor attribute, if present.
    pub fn tensor(&self, name: &str) -> Option<&pb::TensorProto> {
        self.attribute(name).and_then(|a| a.t.as_ref())
    }

    /// A string attribute, if present.
    pub fn string(&self, name: &str) -> Option<String> {
        self.attribute(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}

/// The nodes that compute `outputs` from the fed inputs, in an order where every tensor is
/// computed before it is read.
#[derive(Debug)]
pub(super) struct Graph {
    pub sources: Vec<Source>,
    pub names: Vec<String>,
    pub nodes: Vec<Node>,
    /// The tensor of each requested output, in the caller's order.
    pub outputs: Vec<usize>,
}

impl Graph {
    /// Reads what `outputs` need from `graph`; `fed` names the inputs a run supplies (an
    /// initializer of the same name is then ignored: it is only the input's default).
    pub fn read(
        graph: &pb::GraphProto,
        fed: &[&str],
        outputs: &[&str],
    ) -> Result<Self, NativeError> {
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut sources = Vec::new();
        let mut names = Vec::new();
        let mut add = |name: &str, source: Source, ids: &mut HashMap<String, usize>| {
            let id = sources.len();
            sources.push(source);
            names.push(name.to_string());
            ids.insert(name.to_string(), id);
            id
        };
        add("", Source::Absent, &mut ids);
        for (i, name) in fed.iter().enumerate() {
            add(name, Source::Fed(i), &mut ids);
        }
        for init in &graph.initializer {
            if fed.contains(&init.name.as_str()) {
                continue;
            }
            let (shape, value) = decode(init)?;
            add(&init.name, Source::Konst(shape, value), &mut ids);
        }
        // Which nodes the outputs need, found backwards through each tensor's producer.
        let producer = graph.producers();
        let mut needed = vec![false; graph.node.len()];
        let mut todo: Vec<&str> = outputs.to_vec();
        while let Some(name) = todo.pop() {
            if ids.contains_key(name) {
                continue;
            }
            let Some(&i) = producer.get(name) else {
                return Err(NativeError::Graph(format!(
                    "nothing computes `{name}`: it is neither an input, an initializer nor a node output"
                )));
            };
            if !needed[i] {
                needed[i] = true;
                todo.extend(graph.node[i].input.iter().map(String::as_str));
            }
        }
        // Evaluation order: the file's order where it is already topological (ours always is),
        // otherwise each node once all its inputs exist.
        let mut pending: Vec<usize> = (0..graph.node.len()).filter(|&i| needed[i]).collect();
        let mut nodes = Vec::with_capacity(pending.len());
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|&i| {
                let proto = &graph.node[i];
                if !proto.input.iter().all(|n| ids.contains_key(n.as_str())) {
                    return true;
                }
                let inputs = proto.input.iter().map(|n| ids[n.as_str()]).collect();
                let outputs = proto
                    .output
                    .iter()
                    .map(|n| add(n, Source::Computed, &mut ids))
                    .collect();
                nodes.push(Node {
                    op: proto.op_type.clone(),
                    name: proto.name.clone(),
                    inputs,
                    outputs,
                    attributes: proto.attribute.clone(),
                });
                false
            });
            if pending.len() == before {
                let stuck = &graph.node[pending[0]];
                return Err(NativeError::Graph(format!(
                    "node `{}` ({}) reads a tensor nothing computes (the graph has a cycle or a \
                     missing input among {:?})",
                    stuck.name, stuck.op_type, stuck.input
                )));
            }
        }
        let outputs = outputs.iter().map(|n| ids[*n]).collect();
        let mut graph = Self {
            sources,
            names,
            nodes,
            outputs,
        };
        graph.merge_duplicates();
        Ok(graph)
    }

    /// Drops every node that repeats an earlier one (same operator, inputs and attributes), its
    /// readers reading the earlier node's outputs instead. Exported gradients recompute forward
    /// values (each activation's `Sigmoid`, the time embedding's `Sin` and `Cos`); this computes
    /// them once.
    fn merge_duplicates(&mut self) {
        let mut alias: Vec<usize> = (0..self.sources.len()).collect();
        let mut seen: HashMap<(String, Vec<usize>), Vec<usize>> = HashMap::new();
        let mut kept: Vec<Node> = Vec::with_capacity(self.nodes.len());
        for mut node in std::mem::take(&mut self.nodes) {
            for i in &mut node.inputs {
                *i = alias[*i];
            }
            let key = (node.op.clone(), node.inputs.clone());
            let twin = (!is_random(&node.op))
                .then(|| seen.get(&key))
                .flatten()
                .and_then(|same| {
                    same.iter().copied().find(|&k| {
                        let earlier: &Node = &kept[k];
                        earlier.attributes == node.attributes
                            && earlier.outputs.len() == node.outputs.len()
                    })
                });
            match twin {
                Some(k) => {
                    for (&mine, &theirs) in node.outputs.iter().zip(&kept[k].outputs) {
                        alias[mine] = theirs;
                    }
                }
                None => {
                    seen.entry(key).or_default().push(kept.len());
                    kept.push(node);
                }
            }
        }
        self.nodes = kept;
        for o in &mut self.outputs {
            *o = alias[*o];
        }
    }
}

/// Operators whose every evaluation draws new values: two of them are not the same value.
fn is_random(op: &str) -> bool {
    op.starts_with("Random") || matches!(op, "Multinomial" | "Bernoulli")
}

/// An initializer's shape and values (float and 64-bit integer tensors, raw or typed storage).
pub(super) fn decode(t: &pb::TensorProto) -> Result<(Vec<usize>, Konst), NativeError> {
    let bad = |why: String| NativeError::Graph(format!("initializer `{}`: {why}", t.name));
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let len: usize = shape.iter().product();
    let from_raw = |width: usize| -> Result<Option<Vec<[u8; 8]>>, NativeError> {
        if t.raw_data.is_empty() {
            return Ok(None);
        }
        if t.raw_data.len() != len * width {
            return Err(bad(format!(
                "{} bytes of data for {len} values of {width} bytes",
                t.raw_data.len()
            )));
        }
        Ok(Some(
            t.raw_data
                .chunks_exact(width)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..width].copy_from_slice(c);
                    b
                })
                .collect(),
        ))
    };
    let value = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => Konst::F32(Arc::new(match from_raw(4)? {
            Some(raw) => raw
                .iter()
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            None => t.float_data.clone(),
        })),
        Ok(DataType::Int64) => Konst::I64(Arc::new(match from_raw(8)? {
            Some(raw) => raw.iter().map(|b| i64::from_le_bytes(*b)).collect(),
            None => t.int64_data.clone(),
        })),
        _ => {
            return Err(bad(format!(
                "element type {} is not supported (float and int64 are)",
                t.data_type
            )))
        }
    };
    let found = match &value {
        Konst::F32(v) => v.len(),
        Konst::I64(v) => v.len(),
    };
    if found != len {
        return Err(bad(format!("{found} values for shape {shape:?}")));
    }
    Ok((shape, value))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A one-output node named after its output (shared with the plan's tests).
    pub(in crate::backend::native) fn node(
        op: &str,
        inputs: &[&str],
        output: &str,
    ) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_repeated_node_is_computed_once() {
        let graph = pb::GraphProto {
            node: vec![
                node("Sigmoid", &["x"], "s1"),
                node("Sigmoid", &["x"], "s2"),
                node("Mul", &["x", "s1"], "m1"),
                // Reads the twin: after merging, the same inputs as `m1`.
                node("Mul", &["x", "s2"], "m2"),
                node("Add", &["m1", "m2"], "y"),
                node("Sigmoid", &["y"], "z"),
            ],
            ..Default::default()
        };
        let g = Graph::read(&graph, &["x"], &["z", "m2"]).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.as_str()).collect();
        assert_eq!(ops, ["Sigmoid", "Mul", "Add", "Sigmoid"]);
        let add = &g.nodes[2];
        assert_eq!(add.inputs[0], add.inputs[1]);
        // The requested `m2` is now the tensor `m1`.
        assert_eq!(g.names[g.outputs[1]], "m1");
    }
}
