//! Reading a model file and checking it against the contract, before any backend sees it.

use std::path::{Path, PathBuf};

use crate::onnx_proto::{
    self as pb, tensor_proto::DataType, tensor_shape_proto::dimension, type_proto,
};
use prost::Message;

use crate::contract::{ModelMeta, INPUT_T, INPUT_X, OUTPUT_DPSI_DT, OUTPUT_PSI, OUTPUT_VELOCITY};
use crate::{ContractError, Error};

/// A decoded, contract-checked model file: where it came from, its metadata and its graph (kept
/// private: the protobuf types belong to the ONNX reader, not to this crate's API).
#[derive(Clone, Debug)]
pub struct ModelFile {
    /// Where it came from (for messages), or the name given to in-memory bytes.
    pub path: PathBuf,
    /// The `vpfb.*` metadata, validated.
    pub meta: ModelMeta,
    proto: pb::ModelProto,
}

/// A float32 tensor stored in the file (an initializer: a weight, or an optional input's default).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// One declared graph input or output: name, element type and dims (`None` = symbolic).
#[derive(Clone, Debug)]
pub struct ValueDecl {
    pub name: String,
    pub elem_type: i32,
    pub dims: Vec<Option<usize>>,
}

impl ValueDecl {
    fn from_proto(v: &pb::ValueInfoProto) -> Self {
        let (elem_type, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => (
                t.elem_type,
                t.shape
                    .as_ref()
                    .map(|s| {
                        s.dim
                            .iter()
                            .map(|d| match d.value {
                                Some(dimension::Value::DimValue(n)) if n >= 0 => Some(n as usize),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            None => (0, vec![]),
        };
        Self {
            name: v.name.clone(),
            elem_type,
            dims,
        }
    }

    /// `[N, 2]`-style rendering.
    pub fn shape_string(&self) -> String {
        let d: Vec<String> = self
            .dims
            .iter()
            .map(|d| d.map_or("N".into(), |n| n.to_string()))
            .collect();
        format!("[{}]", d.join(", "))
    }
}

impl ModelFile {
    /// Reads and validates a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Decodes and validates model bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: PathBuf) -> Result<Self, Error> {
        let not_onnx = |reason: String| Error::NotOnnx {
            path: origin.clone(),
            reason,
        };
        if bytes.is_empty() {
            return Err(not_onnx("the file is empty".into()));
        }
        let proto = pb::ModelProto::decode(bytes)
            .map_err(|e| not_onnx(format!("protobuf decoding failed ({e})")))?;
        let Some(graph) = proto.graph.as_ref() else {
            return Err(not_onnx("it contains no graph".into()));
        };
        if graph.node.is_empty() {
            return Err(not_onnx("its graph has no nodes".into()));
        }
        let contract = |source: ContractError| Error::Contract {
            path: origin.clone(),
            source,
        };
        let meta = ModelMeta::from_props(
            proto
                .metadata_props
                .iter()
                .map(|p| (p.key.as_str(), p.value.as_str())),
        )
        .map_err(contract)?;
        check_io(graph, &meta).map_err(contract)?;
        Ok(Self {
            path: origin,
            meta,
            proto,
        })
    }

    pub(crate) fn graph(&self) -> &pb::GraphProto {
        self.proto.graph.as_ref().expect("checked on load")
    }

    #[cfg(feature = "tract")]
    pub(crate) fn proto(&self) -> &pb::ModelProto {
        &self.proto
    }

    /// The graph reduced to what computes `outputs` from the inputs `fed`: the nodes those outputs
    /// need (found through a map of producers, so node order does not matter), the initializers
    /// they read, and only the fed inputs (an input's default initializer goes when it is fed).
    /// ONNX Runtime runs every node of a session whatever outputs a call asks for, so each kind of
    /// call gets a session of its own subgraph.
    #[cfg(feature = "ort")]
    pub(crate) fn subgraph(&self, outputs: &[&str], fed: &[&str]) -> pb::ModelProto {
        use std::collections::HashSet;
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("checked on load");
        let producer = graph.producers();
        let mut needed: HashSet<String> = HashSet::new();
        let mut keep = vec![false; graph.node.len()];
        let mut todo: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
        while let Some(name) = todo.pop() {
            if !needed.insert(name.clone()) {
                continue;
            }
            if let Some(&i) = producer.get(name.as_str()) {
                if !keep[i] {
                    keep[i] = true;
                    todo.extend(
                        graph.node[i]
                            .input
                            .iter()
                            .filter(|s| !s.is_empty())
                            .cloned(),
                    );
                }
            }
        }
        let mut k = keep.into_iter();
        graph.node.retain(|_| k.next().unwrap_or(false));
        graph.output.retain(|o| outputs.contains(&o.name.as_str()));
        graph.input.retain(|i| fed.contains(&i.name.as_str()));
        graph
            .initializer
            .retain(|t| needed.contains(&t.name) && !fed.contains(&t.name.as_str()));
        graph.value_info.retain(|v| needed.contains(&v.name));
        proto
    }

    /// The producer the file names (`vpfb-train 0.1.0`), or an empty string.
    pub fn producer(&self) -> String {
        format!(
            "{} {}",
            self.proto.producer_name, self.proto.producer_version
        )
        .trim()
        .to_string()
    }

    /// The file's bytes (re-encoded; what `load` read, up to protobuf field order).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// The float32 initializer `name`, or `None` when the file has no such tensor. A tensor whose
    /// data does not match its shape, or is not float32, is an error naming it.
    pub fn initializer(&self, name: &str) -> Result<Option<StoredTensor>, Error> {
        let Some(t) = self.graph().initializer.iter().find(|t| t.name == name) else {
            return Ok(None);
        };
        let bad = |reason: &str| Error::NotOnnx {
            path: self.path.clone(),
            reason: format!("initializer `{name}`: {reason}"),
        };
        if t.data_type != DataType::Float as i32 {
            return Err(bad("not float32"));
        }
        if t.dims.iter().any(|&d| d < 0) {
            return Err(bad("negative dimension"));
        }
        let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let len = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("shape overflows"))?;
        let values: Vec<f32> = if !t.raw_data.is_empty() {
            if Some(t.raw_data.len()) != len.checked_mul(4) {
                return Err(bad("raw data is not float32 of its shape"));
            }
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            t.float_data.clone()
        };
        if values.len() != len {
            return Err(bad(&format!("{} values for shape {dims:?}", values.len())));
        }
        Ok(Some(StoredTensor { dims, values }))
    }

    /// Declared inputs, excluding initializers.
    pub fn inputs(&self) -> Vec<ValueDecl> {
        let g = self.graph();
        g.input
            .iter()
            .filter(|i| !g.initializer.iter().any(|init| init.name == i.name))
            .map(ValueDecl::from_proto)
            .collect()
    }

    pub fn outputs(&self) -> Vec<ValueDecl> {
        self.graph()
            .output
            .iter()
            .map(ValueDecl::from_proto)
            .collect()
    }

    /// Whether the file has the Hessian-vector-product output and its `probe` input (format 2).
    pub fn has_hvp(&self) -> bool {
        use crate::contract::{INPUT_PROBE, OUTPUT_HVP};
        let g = self.graph();
        g.output.iter().any(|o| o.name == OUTPUT_HVP)
            && g.input.iter().any(|i| i.name == INPUT_PROBE)
    }

    /// Whether the file computes its detector's score in the graph (`anomaly_score` output).
    pub fn has_anomaly_score(&self) -> bool {
        self.graph()
            .output
            .iter()
            .any(|o| o.name == crate::contract::OUTPUT_ANOMALY_SCORE)
    }

    /// Number of trainable values stored in the file's float initializers.
    pub fn parameter_count(&self) -> usize {
        let g = self.graph();
        g.initializer
            .iter()
            .filter(|t| t.data_type == DataType::Float as i32)
            // An optional input's default value and the in-graph detector's constants are not
            // parameters.
            .filter(|t| !g.input.iter().any(|i| i.name == t.name))
            .filter(|t| !t.name.starts_with(crate::contract::DETECTOR_GRAPH_PREFIX))
            .map(|t| t.dims.iter().product::<i64>().max(0) as usize)
            .sum()
    }
}

fn check_io(graph: &pb::GraphProto, meta: &ModelMeta) -> Result<(), ContractError> {
    let inputs: Vec<ValueDecl> = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|init| init.name == i.name))
        .map(ValueDecl::from_proto)
        .collect();
    let outputs: Vec<ValueDecl> = graph.output.iter().map(ValueDecl::from_proto).collect();
    let x_rank = 1 + meta.data_shape.len();
    for v in &inputs {
        if v.name != INPUT_X && v.name != INPUT_T {
            return Err(ContractError::UnexpectedValue {
                kind: "input",
                name: v.name.clone(),
            });
        }
    }
    let find = |list: &[ValueDecl], name: &str, missing: fn(String) -> ContractError| {
        list.iter()
            .find(|v| v.name == name)
            .cloned()
            .ok_or_else(|| missing(name.to_string()))
    };
    let x = find(&inputs, INPUT_X, ContractError::MissingInput)?;
    let t = find(&inputs, INPUT_T, ContractError::MissingInput)?;
    let psi = find(&outputs, OUTPUT_PSI, ContractError::MissingOutput)?;
    let vel = find(&outputs, OUTPUT_VELOCITY, ContractError::MissingOutput)?;
    let dt = find(&outputs, OUTPUT_DPSI_DT, ContractError::MissingOutput)?;
    for (v, rank) in [(&x, x_rank), (&t, 1), (&psi, 1), (&vel, x_rank), (&dt, 1)] {
        if v.dims.len() != rank {
            return Err(ContractError::WrongRank {
                name: v.name.clone(),
                found: v.dims.len(),
                expected: rank,
            });
        }
        if v.elem_type != DataType::Float as i32 {
            return Err(ContractError::WrongElemType {
                name: v.name.clone(),
                found: v.elem_type,
            });
        }
    }
    if let Some(a) = outputs
        .iter()
        .find(|v| v.name == crate::contract::OUTPUT_ANOMALY_SCORE)
    {
        if a.dims.len() != 1 {
            return Err(ContractError::WrongRank {
                name: a.name.clone(),
                found: a.dims.len(),
                expected: 1,
            });
        }
    }
    let hvp = outputs
        .iter()
        .find(|v| v.name == crate::contract::OUTPUT_HVP);
    if let Some(h) = hvp {
        if h.dims.len() != x_rank {
            return Err(ContractError::WrongRank {
                name: h.name.clone(),
                found: h.dims.len(),
                expected: x_rank,
            });
        }
    }
    for v in [&x, &vel].into_iter().chain(hvp) {
        for (axis, (&want, got)) in meta.data_shape.iter().zip(&v.dims[1..]).enumerate() {
            if *got != Some(want) {
                return Err(ContractError::WrongDim {
                    name: v.name.clone(),
                    axis: axis + 1,
                    found: got.map_or("N".into(), |n| n.to_string()),
                    expected: want,
                });
            }
        }
    }
    Ok(())
}
