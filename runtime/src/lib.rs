//! vpfb-runtime: loads a VPFB model file (ONNX: the potential ψ(x, t) with its explicit gradient)
//! and evaluates it with tract, pure Rust, on CPUs and edge devices.
//!
//! The model-file contract ([`contract`]) is owned here and shared with the trainer, which writes
//! files against it and verifies its exports by loading them through this crate.

pub mod backend;
pub mod contract;
mod error;
pub mod generation;
pub mod images;
pub mod io;
pub mod likelihood;
pub mod model_file;
pub mod ood;
#[cfg(feature = "ort")]
pub mod ort_backend;
pub mod sampling;
pub mod scoring;
pub mod solver;
pub mod tract_backend;

pub use backend::{open, Backend, BackendKind};
pub use contract::{ModelMeta, Normalization, OodCalibration, ScoreCalibration};
pub use error::{ContractError, ModelError};
pub use model_file::ModelFile;
pub use tract_backend::{Evaluation, TractModel};
