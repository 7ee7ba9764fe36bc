//! The evaluation backends behind one trait: tract (pure Rust, default) and ONNX Runtime (`ort`
//! feature, library loaded at run time from `ORT_DYLIB_PATH`). Both read the same validated
//! [`ModelFile`] and must agree within float tolerance.

use std::fmt;
use std::str::FromStr;

use crate::tract_backend::Evaluation;
use crate::{ModelError, ModelFile};

/// Something that evaluates a model file's contract outputs.
pub trait Backend: Send + Sync {
    /// `tract` or `ort`.
    fn name(&self) -> &'static str;
    /// The validated file this backend runs.
    fn file(&self) -> &ModelFile;
    /// ψ, ∇ₓψ and ∂ψ/∂t for `t.len()` records `x` (model space).
    fn evaluate(&self, x: &[f32], t: &[f32]) -> Result<Evaluation, ModelError>;
}

/// Checks that `x` holds `t.len()` records of the file's record length; returns the record count.
pub(crate) fn check_batch(file: &ModelFile, x: &[f32], t: &[f32]) -> Result<usize, ModelError> {
    let (n, d) = (t.len(), file.meta.record_len());
    if x.len() != n * d {
        return Err(ModelError::InputSize {
            what: format!("x for {n} records of {d} values"),
            found: x.len(),
            expected: n * d,
        });
    }
    Ok(n)
}

/// Which backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Tract,
    Ort,
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tract" => Ok(Self::Tract),
            "ort" => Ok(Self::Ort),
            other => Err(format!("unknown backend `{other}` (expected tract or ort)")),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tract => "tract",
            Self::Ort => "ort",
        })
    }
}

/// Opens `file` with the chosen backend and intra-op thread count (0 = the backend's default).
pub fn open(
    file: ModelFile,
    kind: BackendKind,
    threads: usize,
) -> Result<Box<dyn Backend>, ModelError> {
    match kind {
        BackendKind::Tract => {
            crate::tract_backend::set_threads(threads);
            Ok(Box::new(crate::TractModel::new(file)?))
        }
        #[cfg(feature = "ort")]
        BackendKind::Ort => Ok(Box::new(crate::ort_backend::OrtModel::new(file, threads)?)),
        #[cfg(not(feature = "ort"))]
        BackendKind::Ort => Err(ModelError::Backend(
            "this vpfb was built without the `ort` feature (cargo build --features ort)".into(),
        )),
    }
}

/// Records evaluated together by the chunked commands: up to 4096, fewer for large records (about
/// 256 Ki values per chunk, e.g. 334 images of 28×28), which bounds the activations' memory.
pub fn chunk_rows(record_len: usize) -> usize {
    (262_144 / record_len.max(1)).clamp(1, 4096)
}
