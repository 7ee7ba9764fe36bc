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
    /// ∇ₓ²ψ(x, t)·probe for `t.len()` records (model space; `probe` shaped like `x`). Needs a file
    /// with the `hvp` output (format version 2).
    fn hvp(&self, x: &[f32], t: &[f32], probe: &[f32]) -> Result<Vec<f32>, ModelError>;
    /// The file's in-graph `anomaly_score` output for model-space records `x` (files with a
    /// detector); the runtime's own path is [`crate::ood::Detector::score`].
    fn anomaly_score_output(&self, x: &[f32]) -> Result<Vec<f32>, ModelError>;
}

/// A clear error for files without an `anomaly_score` output.
pub(crate) fn require_anomaly_score(file: &ModelFile) -> Result<(), ModelError> {
    if file.has_anomaly_score() {
        Ok(())
    } else {
        Err(ModelError::Detector(format!(
            "{} has no `{}` output",
            file.path.display(),
            crate::contract::OUTPUT_ANOMALY_SCORE
        )))
    }
}

/// A clear error for files without an `hvp` output.
pub(crate) fn require_hvp(file: &ModelFile) -> Result<(), ModelError> {
    use crate::contract::OUTPUT_HVP;
    if !file.has_hvp() {
        return Err(ModelError::Backend(format!(
            "{} has no `{OUTPUT_HVP}` output (format version {}); re-export it with this \
             vpfb-train (`vpfb-train detector --model … --out …` upgrades a file)",
            file.path.display(),
            file.meta.format_version
        )));
    }
    Ok(())
}

/// The file's graph with `probe` as a fed input (its default initializer removed), for tract's
/// Hessian-vector-product program.
pub(crate) fn hvp_proto(file: &ModelFile) -> Result<tract_onnx::pb::ModelProto, ModelError> {
    use crate::contract::INPUT_PROBE;
    require_hvp(file)?;
    let mut proto = file.proto.clone();
    let graph = proto.graph.as_mut().expect("checked on load");
    graph.initializer.retain(|i| i.name != INPUT_PROBE);
    Ok(proto)
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
