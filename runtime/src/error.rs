use std::path::PathBuf;

use thiserror::Error;

/// Ways a file can break the model-file contract (docs/model-file.md).
#[derive(Debug, Error)]
pub enum ContractError {
    #[error("metadata key `{0}` is missing")]
    MissingMetadata(String),
    #[error("metadata key `{key}` is malformed: {reason}")]
    BadMetadata { key: String, reason: String },
    #[error("unsupported model format version {found} (this runtime reads version {supported})")]
    UnsupportedVersion { found: String, supported: u32 },
    #[error("the graph has no input named `{0}`")]
    MissingInput(String),
    #[error("the graph has no output named `{0}`")]
    MissingOutput(String),
    #[error("unexpected graph {kind} `{name}` (the contract has inputs x, t and outputs psi, velocity, dpsi_dt)")]
    UnexpectedValue { kind: &'static str, name: String },
    #[error("`{name}` has rank {found}, the contract requires rank {expected}")]
    WrongRank {
        name: String,
        found: usize,
        expected: usize,
    },
    #[error("`{name}` has element type {found}, the contract requires float32")]
    WrongElemType { name: String, found: i32 },
    #[error("`{name}` has dimension {axis} = {found}, but vpfb.data_shape says {expected}")]
    WrongDim {
        name: String,
        axis: usize,
        found: String,
        expected: usize,
    },
}

/// Errors from loading or running a model.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid ONNX model: {reason}")]
    NotOnnx { path: PathBuf, reason: String },
    #[error("{path} violates the vpfb model contract: {source}")]
    Contract {
        path: PathBuf,
        source: ContractError,
    },
    #[error("input has {found} values, expected {expected} ({what})")]
    InputSize {
        what: String,
        found: usize,
        expected: usize,
    },
    #[error("{0}")]
    Backend(String),
    #[error("numerical failure: {0}")]
    Numeric(String),
    #[error("tract failed: {0}")]
    Tract(String),
    /// The multi-time OOD detector is missing, malformed or cannot be fitted (the message says which).
    #[error("{0}")]
    Detector(String),
    #[error("{0}")]
    Score(String),
}
