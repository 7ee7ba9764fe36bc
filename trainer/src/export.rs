//! Writing a potential to the ONNX model-file contract, and checking the written file through the
//! runtime against Candle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use prost::Message;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use thiserror::Error;
use vpfb_runtime::contract::{
    INPUT_PROBE, OUTPUT_DPSI_DT, OUTPUT_HVP, OUTPUT_PSI, OUTPUT_VELOCITY,
};
use vpfb_runtime::{Backend, Error as RuntimeError, ModelFile, ModelMeta, NativeModel, TractModel};

use crate::detector_graph::add_anomaly_score;
use crate::graph::candle_eval::{self, Bindings};
use crate::graph::onnx::{self, ElemType, ExportSpec, ParamValue};
use crate::graph::GraphError;
use crate::nn::{add_hvp, PotentialGraph};
use crate::numeric::max_rel_err;

/// Export failures.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the written model does not load: {0}")]
    Reload(#[from] RuntimeError),
    #[error("{0}")]
    Detector(RuntimeError),
    #[error("calibrating the OOD scores: {0}")]
    Calibration(candle_core::Error),
    #[error("fitting the OOD detector: {0}")]
    DetectorFit(Box<ExportError>),
    /// The export's settings contradict each other (the message says how).
    #[error("{0}")]
    Settings(String),
    #[error("export parity failed: {output} differs from Candle by {rel:.3e} (relative) at batch {batch}")]
    Parity {
        output: &'static str,
        batch: usize,
        rel: f64,
    },
}

/// Copies parameter values out of a VarMap (f64, row-major).
pub fn param_values(varmap: &VarMap) -> Result<HashMap<String, ParamValue>, candle_core::Error> {
    tensor_values(&param_tensors(varmap))
}

/// Copies named tensors into export parameter values (f64, row-major).
pub fn tensor_values(
    tensors: &HashMap<String, Tensor>,
) -> Result<HashMap<String, ParamValue>, candle_core::Error> {
    tensors
        .iter()
        .map(|(name, t)| {
            Ok((
                name.clone(),
                ParamValue {
                    dims: t.dims().to_vec(),
                    data: t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?,
                },
            ))
        })
        .collect()
}

/// Tensors of a VarMap by name, for Candle evaluation.
pub fn param_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

/// The ONNX model of a potential: inputs `x`, `t` and the optional `probe` (default: zeros for one
/// record); outputs `psi`, `velocity`, `dpsi_dt`, `hvp` = ∇ₓ²ψ·probe and, when the metadata holds a
/// detector (float32 exports), its `anomaly_score`; metadata.
pub fn model_proto(
    pg: &PotentialGraph,
    params: &HashMap<String, ParamValue>,
    meta: &ModelMeta,
    elem: ElemType,
) -> Result<vpfb_runtime::onnx_proto::ModelProto, GraphError> {
    let mut full = pg.clone();
    let h = add_hvp(&mut full)?;
    let mut probe_dims = vec![1];
    probe_dims.extend(&pg.data_shape);
    let probe_default = ParamValue {
        data: vec![0.0; probe_dims.iter().product()],
        dims: probe_dims,
    };
    let mut proto = onnx::to_model(&ExportSpec {
        graph: &full.graph,
        inputs: vec![full.x, full.t, h.probe],
        input_defaults: HashMap::from([(INPUT_PROBE.to_string(), probe_default)]),
        outputs: vec![
            (full.psi, OUTPUT_PSI.to_string()),
            (full.velocity, OUTPUT_VELOCITY.to_string()),
            (full.dpsi_dt, OUTPUT_DPSI_DT.to_string()),
            (h.hvp, OUTPUT_HVP.to_string()),
        ],
        params,
        elem,
        metadata: meta.to_props(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
    })?;
    if let (Some(det), ElemType::F32) = (&meta.detector, elem) {
        add_anomaly_score(&mut proto, det, &pg.data_shape)?;
    }
    Ok(proto)
}

/// Writes `bytes` to `path` atomically (the runtime's temporary-file-and-rename writer), so a failed
/// or interrupted write never leaves a partial file at `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    vpfb_runtime::io::write_atomic(path, bytes).map_err(|e| match e {
        vpfb_runtime::Error::Write { path, source }
        | vpfb_runtime::Error::Read { path, source } => ExportError::Io { path, source },
        other => ExportError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Exports the potential with the VarMap's current weights to `path` (float32) and verifies the
/// written file through the runtime at the [`parity_batches`].
pub fn export_model(
    pg: &PotentialGraph,
    varmap: &VarMap,
    meta: &ModelMeta,
    path: &Path,
) -> Result<ParityReport, ExportError> {
    export_with(pg, &param_tensors(varmap), meta, path)
}

/// [`export_model`] with explicit weights (e.g. the EMA weights of a run). The file is written only
/// once it has been verified: a model that does not match its training graph is never left behind,
/// and an existing file at `path` survives a failed export.
pub fn export_with(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    meta: &ModelMeta,
    path: &Path,
) -> Result<ParityReport, ExportError> {
    let bytes = model_proto(pg, &tensor_values(params)?, meta, ElemType::F32)?.encode_to_vec();
    // Verified from the encoded bytes before anything is written, so a failed export never touches
    // `path` (which may be the very file being upgraded).
    // Checked with both pure-Rust evaluators: the runtime's native one (what `vpfb` runs by
    // default) and tract (an independent reading of the same file).
    let file = ModelFile::from_bytes(&bytes, path.to_path_buf())?;
    let native = NativeModel::new(file.clone())?;
    let tract = TractModel::new(file)?;
    let report = verify_parity(pg, params, &[&native, &tract], &parity_batches(pg), 1e-4)?;
    verify_anomaly_score(&native, 1e-3)?;
    verify_anomaly_score(&tract, 1e-3)?;
    write_atomic(path, &bytes)?;
    Ok(report)
}

/// Batch sizes an export is verified at: 1, 7 and 1024 records for vectors; 1, 2 and 16 for images,
/// whose Candle reference evaluation is costly.
pub fn parity_batches(pg: &PotentialGraph) -> Vec<usize> {
    if pg.data_shape.len() == 3 {
        vec![1, 2, 16]
    } else {
        vec![1, 7, 1024]
    }
}

/// Checks a file's in-graph `anomaly_score` against the runtime's own detector path on a few random
/// records (x ~ N(0, I)); files without a detector pass.
pub fn verify_anomaly_score(model: &dyn Backend, tol: f64) -> Result<(), ExportError> {
    let Some(det) = &model.file().meta.detector else {
        return Ok(());
    };
    let d = model.file().meta.record_len();
    let n = if model.file().meta.data_shape.len() == 3 {
        2
    } else {
        16
    };
    let mut rng = StdRng::seed_from_u64(0xa11);
    let x: Vec<f32> = (0..n * d)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect();
    let graph = model.anomaly_score_output(&x)?;
    let own = det.score(model, &x).map_err(ExportError::Detector)?;
    for (g, o) in graph.iter().zip(&own) {
        let rel = (*g as f64 - o).abs() / (1.0 + o.abs());
        if !(rel <= tol) {
            return Err(ExportError::Parity {
                output: vpfb_runtime::contract::OUTPUT_ANOMALY_SCORE,
                batch: n,
                rel,
            });
        }
    }
    Ok(())
}

/// Largest relative differences found by [`verify_parity`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParityReport {
    pub psi: f64,
    pub velocity: f64,
    pub dpsi_dt: f64,
}

/// Compares each backend's evaluation of its model file with Candle's evaluation of `pg` on
/// random inputs (x ~ N(0, 1.5²I), t ~ U[0, 1]); fails if any output differs by more than `tol`
/// (max-norm relative). The report holds the largest differences over all backends.
pub fn verify_parity(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    models: &[&dyn Backend],
    batches: &[usize],
    tol: f64,
) -> Result<ParityReport, ExportError> {
    let mut rng = StdRng::seed_from_u64(0x7a11);
    let d: usize = pg.data_shape.iter().product();
    let mut report = ParityReport::default();
    for &n in batches {
        let x: Vec<f32> = (0..n * d)
            .map(|_| 1.5 * rng.sample::<f32, _>(StandardNormal))
            .collect();
        let t: Vec<f32> = (0..n).map(|_| rng.gen::<f32>()).collect();
        let ours = models
            .iter()
            .map(|m| m.evaluate(&x, &t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut x_dims = vec![n];
        x_dims.extend(&pg.data_shape);
        let inputs = HashMap::from([
            (
                pg.graph.node(pg.x).op_input_name().to_string(),
                Tensor::from_vec(x, x_dims, &Device::Cpu)?,
            ),
            (
                pg.graph.node(pg.t).op_input_name().to_string(),
                Tensor::from_vec(t, n, &Device::Cpu)?,
            ),
        ]);
        let refs = candle_eval::eval(
            &pg.graph,
            &Bindings { inputs, params },
            &[pg.psi, pg.velocity, pg.dpsi_dt],
            DType::F32,
            &Device::Cpu,
        )?;
        let as64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let flat = |t: &Tensor| -> Result<Vec<f64>, candle_core::Error> {
            t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
        };
        let want = [flat(&refs[0])?, flat(&refs[1])?, flat(&refs[2])?];
        for ours in &ours {
            for (name, got, want, slot) in [
                (OUTPUT_PSI, &ours.psi, &want[0], &mut report.psi),
                (
                    OUTPUT_VELOCITY,
                    &ours.velocity,
                    &want[1],
                    &mut report.velocity,
                ),
                (OUTPUT_DPSI_DT, &ours.dpsi_dt, &want[2], &mut report.dpsi_dt),
            ] {
                let rel = max_rel_err(&as64(got), want, 1e-6);
                *slot = slot.max(rel);
                if !(rel <= tol) {
                    return Err(ExportError::Parity {
                        output: name,
                        batch: n,
                        rel,
                    });
                }
            }
        }
    }
    Ok(report)
}
