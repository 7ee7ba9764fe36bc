//! ONNX Runtime through `ort` with `load-dynamic`: `libonnxruntime` is found through `ORT_DYLIB_PATH`
//! at run time (the PyPI `onnxruntime` wheel ships one under `onnxruntime/capi/`), so building never
//! downloads anything.

use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::Tensor;

use crate::backend::Backend;
use crate::contract::{
    INPUT_PROBE, INPUT_T, INPUT_X, OUTPUT_ANOMALY_SCORE, OUTPUT_DPSI_DT, OUTPUT_HVP, OUTPUT_PSI,
    OUTPUT_VELOCITY,
};
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

/// A model file in an ONNX Runtime session. The session runs only the outputs a call needs (the
/// contract outputs, or `hvp` with `probe` fed over its default).
pub struct OrtModel {
    file: ModelFile,
    session: Mutex<Runner>,
}

/// The session and the output selections of its three kinds of call (ORT's run options are not
/// `Sync`, so they live behind the same lock as the session).
struct Runner {
    session: Session,
    contract_outputs: RunOptions<HasSelectedOutputs>,
    hvp_output: RunOptions<HasSelectedOutputs>,
    anomaly_output: RunOptions<HasSelectedOutputs>,
}

fn select(names: &[&str]) -> Result<RunOptions<HasSelectedOutputs>, ModelError> {
    let selector = names
        .iter()
        .fold(OutputSelector::no_default(), |s, n| s.with(*n));
    Ok(RunOptions::new().map_err(ort_err)?.with_outputs(selector))
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
            session: Mutex::new(Runner {
                session,
                contract_outputs: select(&[OUTPUT_PSI, OUTPUT_VELOCITY, OUTPUT_DPSI_DT])?,
                hvp_output: select(&[OUTPUT_HVP])?,
                anomaly_output: select(&[OUTPUT_ANOMALY_SCORE])?,
            }),
        })
    }

    fn shape(&self, n: usize) -> Vec<i64> {
        let mut shape = vec![n as i64];
        shape.extend(self.file.meta.data_shape.iter().map(|&v| v as i64));
        shape
    }

    /// Runs `n` records: named inputs shaped like x (`x_like`) or `[n]`, one call's output selection,
    /// and the outputs `names` flattened.
    fn run(
        &self,
        n: usize,
        feeds: &[(&str, bool, &[f32])],
        which: Outputs,
        names: &[&str],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let values = feeds
            .iter()
            .map(|&(name, x_like, data)| {
                let shape = if x_like {
                    self.shape(n)
                } else {
                    vec![n as i64]
                };
                Ok((
                    name,
                    Tensor::from_array((shape, data.to_vec())).map_err(ort_err)?,
                ))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let mut guard = self.session.lock().expect("ort session lock");
        let Runner {
            session,
            contract_outputs,
            hvp_output,
            anomaly_output,
        } = &mut *guard;
        let options = match which {
            Outputs::Contract => &*contract_outputs,
            Outputs::Hvp => &*hvp_output,
            Outputs::AnomalyScore => &*anomaly_output,
        };
        let out = session.run_with_options(values, options).map_err(ort_err)?;
        names.iter().map(|name| take(&out, name)).collect()
    }
}

/// Which output selection a call runs.
#[derive(Clone, Copy)]
enum Outputs {
    Contract,
    Hvp,
    AnomalyScore,
}

fn take(out: &ort::session::SessionOutputs<'_>, name: &str) -> Result<Vec<f32>, ModelError> {
    let v = out
        .get(name)
        .ok_or_else(|| ort_err(format!("no output `{name}`")))?;
    Ok(v.try_extract_tensor::<f32>().map_err(ort_err)?.1.to_vec())
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
            return Ok(Evaluation::empty());
        }
        let mut out = self.run(
            n,
            &[(INPUT_X, true, x), (INPUT_T, false, t)],
            Outputs::Contract,
            &[OUTPUT_PSI, OUTPUT_VELOCITY, OUTPUT_DPSI_DT],
        )?;
        let dpsi_dt = out.pop().expect("three outputs");
        let velocity = out.pop().expect("three outputs");
        let psi = out.pop().expect("three outputs");
        Ok(Evaluation {
            psi,
            velocity,
            dpsi_dt,
        })
    }

    fn hvp(&self, x: &[f32], t: &[f32], probe: &[f32]) -> Result<Vec<f32>, ModelError> {
        let n = crate::backend::check_batch(&self.file, x, t)?;
        crate::backend::check_batch(&self.file, probe, t)?;
        // The same error as tract for files without the output.
        crate::backend::require_hvp(&self.file)?;
        if n == 0 {
            return Ok(vec![]);
        }
        Ok(self
            .run(
                n,
                &[
                    (INPUT_X, true, x),
                    (INPUT_T, false, t),
                    (INPUT_PROBE, true, probe),
                ],
                Outputs::Hvp,
                &[OUTPUT_HVP],
            )?
            .remove(0))
    }

    fn anomaly_score_output(&self, x: &[f32]) -> Result<Vec<f32>, ModelError> {
        crate::backend::require_anomaly_score(&self.file)?;
        let n = x.len() / self.file.meta.record_len().max(1);
        let t = vec![1.0f32; n];
        crate::backend::check_batch(&self.file, x, &t)?;
        if n == 0 {
            return Ok(vec![]);
        }
        Ok(self
            .run(
                n,
                &[(INPUT_X, true, x), (INPUT_T, false, &t)],
                Outputs::AnomalyScore,
                &[OUTPUT_ANOMALY_SCORE],
            )?
            .remove(0))
    }
}
