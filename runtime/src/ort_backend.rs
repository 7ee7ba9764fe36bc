//! ONNX Runtime through `ort` with `load-dynamic`: `libonnxruntime` is found through `ORT_DYLIB_PATH`
//! at run time (the PyPI `onnxruntime` wheel ships one under `onnxruntime/capi/`), so building never
//! downloads anything.

use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use crate::backend::Backend;
use crate::contract::{INPUT_T, INPUT_X, OUTPUT_DPSI_DT, OUTPUT_PSI, OUTPUT_VELOCITY};
use crate::tract_backend::Evaluation;
use crate::{ModelError, ModelFile};

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

fn ort_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Backend(format!("onnxruntime: {e}"))
}

/// Loads the ONNX Runtime library once per process; the environment lives as long as the process.
fn environment() -> Result<&'static Environment, ModelError> {
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
        .map_err(|e| ModelError::Backend(e.clone()))
}

/// A model file in an ONNX Runtime session.
pub struct OrtModel {
    file: ModelFile,
    session: Mutex<Session>,
}

impl OrtModel {
    pub fn new(file: ModelFile, threads: usize) -> Result<Self, ModelError> {
        let env = environment()?;
        let bytes = prost::Message::encode_to_vec(&file.proto);
        let mut builder = Session::builder(env).map_err(ort_err)?;
        if threads > 0 {
            builder = builder.with_intra_threads(threads).map_err(ort_err)?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(ort_err)?;
        Ok(Self {
            file,
            session: Mutex::new(session),
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

    fn evaluate(&self, x: &[f32], t: &[f32]) -> Result<Evaluation, ModelError> {
        let n = crate::backend::check_batch(&self.file, x, t)?;
        if n == 0 {
            return Ok(Evaluation {
                psi: vec![],
                velocity: vec![],
                dpsi_dt: vec![],
            });
        }
        let mut shape = vec![n as i64];
        shape.extend(self.file.meta.data_shape.iter().map(|&v| v as i64));
        let xt = Tensor::from_array((shape, x.to_vec())).map_err(ort_err)?;
        let tt = Tensor::from_array((vec![n as i64], t.to_vec())).map_err(ort_err)?;
        let mut session = self.session.lock().expect("ort session lock");
        let out = session
            .run(ort::inputs![INPUT_X => xt, INPUT_T => tt])
            .map_err(ort_err)?;
        let take = |name: &str| -> Result<Vec<f32>, ModelError> {
            let v = out
                .get(name)
                .ok_or_else(|| ort_err(format!("no output `{name}`")))?;
            Ok(v.try_extract_tensor::<f32>().map_err(ort_err)?.1.to_vec())
        };
        Ok(Evaluation {
            psi: take(OUTPUT_PSI)?,
            velocity: take(OUTPUT_VELOCITY)?,
            dpsi_dt: take(OUTPUT_DPSI_DT)?,
        })
    }
}
