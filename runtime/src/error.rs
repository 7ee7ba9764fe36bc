use std::path::PathBuf;

use thiserror::Error as ThisError;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in vpfb-runtime: reading files, checking a model against the
/// contract, evaluating it, and the jobs built on it. Messages name the file, shape or value at
/// fault and never a command-line flag, so a program embedding the library can show them as they are.
#[derive(Debug, ThisError)]
pub enum Error {
    /// A file could not be read (a model, records, images).
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be written (its previous content, if any, is left as it was).
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A records or image file is malformed (the reason names the line, column or header field).
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// One text record (a CSV line) is malformed.
    #[error("{0}")]
    Record(String),
    /// The bytes are not an ONNX model.
    #[error("{path} is not a valid ONNX model: {reason}")]
    NotOnnx { path: PathBuf, reason: String },
    /// The file is ONNX but breaks the model-file contract (docs/model-file.md).
    #[error("{path} violates the vpfb model contract: {source}")]
    Contract {
        path: PathBuf,
        source: ContractError,
    },
    /// A batch has the wrong number of values for the model's records.
    #[error("input has {found} values, expected {expected} ({what})")]
    InputSize {
        what: String,
        found: usize,
        expected: usize,
    },
    /// A caller's argument is out of range or inconsistent (the message says which and why).
    #[error("{0}")]
    InvalidArgument(String),
    /// The backend (native, tract or ONNX Runtime) could not be set up or failed while running.
    #[error("{0}")]
    Backend(String),
    /// The flow produced non-finite values.
    #[error("numerical failure: {0}")]
    Numeric(String),
    /// The multi-time OOD detector is missing, malformed or cannot be fitted (the message says which).
    #[error("{0}")]
    Detector(String),
    /// A score has no calibration, or a threshold is unusable.
    #[error("{0}")]
    Score(String),
}

/// Ways a file can break the model-file contract (docs/model-file.md): the detail of
/// [`Error::Contract`].
#[derive(Debug, ThisError)]
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
