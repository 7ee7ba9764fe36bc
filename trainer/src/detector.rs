//! Fitting the runtime's multi-time OOD detector for a potential before its file is written: the
//! potential is encoded exactly as it will be exported (float32), loaded by the runtime through
//! tract, and the detector is fitted on the runtime's own statistics, so the stored detector scores
//! a deployed file exactly as it was fitted.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;
use prost::Message;
use vpfb_runtime::ood::statistics::compute_with_progress;
use vpfb_runtime::ood::{Detector, FitOptions};
use vpfb_runtime::{ModelFile, ModelMeta, NativeModel};

use crate::export::{model_proto, tensor_values, ExportError};
use crate::graph::onnx::ElemType;
use crate::nn::PotentialGraph;

/// Fits a detector for `pg` with `params` on model-space validation records `val` (at most
/// `max_records` of them, the first ones); `progress(done, total)` follows the statistics pass.
pub fn fit_detector(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    meta: &ModelMeta,
    val: &[f32],
    max_records: usize,
    opts: &FitOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Detector, ExportError> {
    let proto = model_proto(pg, &tensor_values(params)?, meta, ElemType::F32)?;
    let file = ModelFile::from_bytes(&proto.encode_to_vec(), PathBuf::from("<export>"))?;
    let model = NativeModel::new(file)?;
    let d = meta.record_len();
    let val = &val[..val.len().min(max_records.saturating_mul(d))];
    let table = compute_with_progress(&model, val, &opts.times, &opts.anchor, progress)
        .map_err(ExportError::Detector)?;
    Detector::fit_table(&table, opts).map_err(ExportError::Detector)
}
