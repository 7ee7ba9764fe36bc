//! ONNX Runtime through `ort` with `load-dynamic`: `libonnxruntime` is found through `ORT_DYLIB_PATH`
//! at run time (the PyPI `onnxruntime` wheel ships one under `onnxruntime/capi/`), so building never
//! downloads anything.

use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::Tensor;

use super::{is_x_like, Backend, Outputs};
use crate::{Error, ModelFile, Result};

static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

fn ort_err(e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("onnxruntime: {e}"))
}

/// Loads the ONNX Runtime library once per process; the environment lives as long as the process.
fn environment() -> Result<&'static Environment> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var("ORT_DYLIB_PATH")
                .map_err(|_| "set ORT_DYLIB_PATH to libonnxruntime (e.g. site-packages/onnxruntime/capi/libonnxruntime.so.*)".to_string())?;
            if !std::path::Path::new(&path).exists() {
                return Err(format!("ORT_DYLIB_PATH={path} does not exist"));
            }
            ort::init_from(&path).map_err(|e| format!("loading {path}: {e}"))?.build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Backend(e.clone()))
}

/// A model file in an ONNX Runtime session. The session runs only the outputs a call needs (the
/// contract outputs, `hvp` with `probe` fed over its default, or the in-graph detector score).
pub struct OrtModel {
    file: ModelFile,
    session: Mutex<Runner>,
}

/// The session and the output selections of its three kinds of call (ORT's run options are not
/// `Sync`, so they live behind the same lock as the session).
struct Runner {
    session: Session,
    contract: RunOptions<HasSelectedOutputs>,
    hvp: RunOptions<HasSelectedOutputs>,
    anomaly_score: RunOptions<HasSelectedOutputs>,
}

fn select(outputs: Outputs) -> Result<RunOptions<HasSelectedOutputs>> {
    let selector = outputs
        .outputs()
        .iter()
        .fold(OutputSelector::no_default(), |s, n| s.with(*n));
    Ok(RunOptions::new().map_err(ort_err)?.with_outputs(selector))
}

impl OrtModel {
    /// A session for `file` with `threads` intra-op threads (0 = ONNX Runtime's default).
    pub fn new(file: ModelFile, threads: usize) -> Result<Self> {
        let env = environment()?;
        let bytes = file.to_bytes();
        let mut builder = Session::builder(env).map_err(ort_err)?;
        if threads > 0 {
            builder = builder.with_intra_threads(threads).map_err(ort_err)?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(ort_err)?;
        Ok(Self {
            file,
            session: Mutex::new(Runner {
                session,
                contract: select(Outputs::Contract)?,
                hvp: select(Outputs::Hvp)?,
                anomaly_score: select(Outputs::AnomalyScore)?,
            }),
        })
    }
}

impl Backend for OrtModel {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn file(&self) -> &ModelFile {
        &self.file
    }

    fn run(&self, n: usize, outputs: Outputs, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let mut x_shape = vec![n as i64];
        x_shape.extend(self.file.meta.data_shape.iter().map(|&v| v as i64));
        let values = outputs
            .inputs()
            .iter()
            .zip(inputs)
            .map(|(&name, data)| {
                let shape = if is_x_like(name) {
                    x_shape.clone()
                } else {
                    vec![n as i64]
                };
                Ok((
                    name,
                    Tensor::from_array((shape, data.to_vec())).map_err(ort_err)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut guard = self.session.lock().expect("ort session lock");
        let Runner {
            session,
            contract,
            hvp,
            anomaly_score,
        } = &mut *guard;
        let options = match outputs {
            Outputs::Contract => &*contract,
            Outputs::Hvp => &*hvp,
            Outputs::AnomalyScore => &*anomaly_score,
        };
        let out = session.run_with_options(values, options).map_err(ort_err)?;
        outputs
            .outputs()
            .iter()
            .map(|name| {
                let v = out
                    .get(name)
                    .ok_or_else(|| ort_err(format!("no output `{name}`")))?;
                Ok(v.try_extract_tensor::<f32>().map_err(ort_err)?.1.to_vec())
            })
            .collect()
    }
}
