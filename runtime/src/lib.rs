//! vpfb-runtime: loads a VPFB model file (ONNX: the potential ψ(x, t) with its explicit gradient
//! ∇ₓψ, the flow's velocity) and runs it on CPUs and edge devices with its own evaluator (pure
//! Rust, no graph library), tract (`tract` feature) or ONNX Runtime (`ort` feature): anomaly
//! scoring, sampling, interpolation, composition, inpainting and log-likelihood.
//!
//! Most programs need only [`Model`]. Records go in and come out in raw units (the data's own
//! units), row-major, `record_len` values each.
//!
//! Score a batch of records with the model's recommended score and calibrated threshold:
//!
//! ```
//! # fn main() -> vpfb_runtime::Result<()> {
//! use vpfb_runtime::Model;
//!
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/moons.onnx");
//! let model = Model::load(path)?; // e.g. "models/moons.onnx"
//! // Two 2-D records: one on the moons, one far from them.
//! let report = model.score(&[0.0, 1.0, 6.0, -6.0])?;
//! assert_eq!(report.scores.len(), 2);
//! assert!(!report.outliers[0] && report.outliers[1]);
//! println!("{} scores, threshold {}", report.score, report.threshold);
//! # Ok(())
//! # }
//! ```
//!
//! Draw samples by integrating the flow from seeded noise:
//!
//! ```
//! # fn main() -> vpfb_runtime::Result<()> {
//! use vpfb_runtime::{FlowOptions, Model, Solver};
//!
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/moons.onnx");
//! let model = Model::load(path)?;
//! let options = FlowOptions { solver: Solver::Rk4 { steps: 20 }, seed: 7 };
//! let samples = model.sample(100, &options)?;
//! assert_eq!(samples.records.rows(), 100);
//! assert_eq!(samples.records.cols, 2);
//! assert_eq!(samples.stats.nfe, 4 * 20); // RK4: four evaluations per step
//! # Ok(())
//! # }
//! ```
//!
//! Score a file of any size a chunk at a time ([`RecordStream`]: CSV, NPY, and for image models IDX
//! files and image folders), so memory holds one chunk rather than the file:
//!
//! ```
//! # fn main() -> vpfb_runtime::Result<()> {
//! use std::path::Path;
//! use vpfb_runtime::{io::Cells, Model, RecordStream};
//!
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/moons.onnx");
//! # let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/tests/golden/moons-points.csv");
//! let model = Model::load(path)?;
//! let mut records = RecordStream::open_for_model(Path::new(csv), model.meta(), Cells::Finite)?;
//! let mut flagged = 0;
//! while let Some(chunk) = records.next_chunk(4096)? {
//!     flagged += model.score(&chunk.values)?.outliers.iter().filter(|&&o| o).count();
//! }
//! assert_eq!(flagged, 2); // of the file's 8 points
//! # Ok(())
//! # }
//! ```
//!
//! Errors are one type, [`Error`], whose messages name the file, shape or value at fault:
//!
//! ```
//! use vpfb_runtime::{Error, Model};
//!
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/moons.onnx");
//! let model = Model::load(path).unwrap();
//! // Three values are not a whole number of 2-value records.
//! let err = model.score(&[0.0, 1.0, 2.0]).unwrap_err();
//! assert!(matches!(err, Error::InputSize { .. }));
//! // A NaN reading is refused, not scored.
//! let err = model.score(&[0.0, 1.0, f64::NAN, 2.0]).unwrap_err();
//! assert_eq!(err.to_string(), "record 2, value 1: NaN is not a finite number");
//! assert!(matches!(Model::load("no/such/model.onnx"), Err(Error::Read { .. })));
//! ```
//!
//! Underneath: [`ModelFile`] (the validated file and its [`ModelMeta`], per the contract in
//! [`contract`] and docs/model-file.md), [`Backend`] (native, tract or ONNX Runtime), and modules for
//! each job. The trainer shares [`contract`] and verifies its exports by loading them here.

// `!(v > 0.0)` is how this code rejects NaN together with the out-of-range values; the lint's
// suggested `partial_cmp` form says the same less plainly.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod backend;
pub mod composition;
pub mod contract;
mod error;
pub mod images;
pub mod imputation;
pub mod input;
pub mod interpolation;
pub mod io;
mod langevin;
pub mod likelihood;
pub mod mask;
mod model;
pub mod model_file;
pub mod onnx_proto;
pub mod ood;
pub mod record_stream;
pub mod sampling;
pub mod scoring;
pub mod solver;

#[cfg(feature = "ort")]
pub use backend::OrtModel;
#[cfg(feature = "tract")]
pub use backend::TractModel;
pub use backend::{open, Backend, BackendKind, Evaluation, LoadOptions, NativeModel};
pub use composition::Composition;
pub use contract::{ModelMeta, Normalization, OodCalibration, ScoreCalibration};
pub use error::{ContractError, Error, Result};
pub use imputation::{Conditioning, ImputeOptions};
pub use io::Records;
pub use likelihood::{LogLikelihood, Trace};
pub use model::{FlowOptions, Generated, LikelihoodOptions, Model, ScoreOptions, ScoreReport};
pub use model_file::{ModelFile, StoredTensor};
pub use ood::Score;
pub use record_stream::RecordStream;
pub use solver::{SolveStats, Solver};

/// The README's library snippet, compiled as a doc-test so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeSnippet;
