//! ONNX Runtime through `ort` with `load-dynamic`: `libonnxruntime` is found through `ORT_DYLIB_PATH`
//! at run time (the PyPI `onnxruntime` wheel ships one under `onnxruntime/capi/`), so building never
//! downloads anything.

use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use super::selections::Selections;
use super::{in_runs, is_x_like, Backend, Outputs};
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

/// A model file in ONNX Runtime: one session per kind of call, each on the subgraph that call
/// needs (ONNX Runtime would otherwise run the in-graph detector and the Hessian-vector product on
/// every contract evaluation). The contract session is built on load, the others on first use.
pub struct OrtModel {
    file: ModelFile,
    threads: usize,
    sessions: Selections<Mutex<Session>>,
}

impl OrtModel {
    /// A session for `file` with `threads` intra-op threads (0 = ONNX Runtime's default).
    pub fn new(file: ModelFile, threads: usize) -> Result<Self> {
        let contract = Mutex::new(session(&file, threads, Outputs::Contract)?);
        Ok(Self {
            file,
            threads,
            sessions: Selections::new(contract),
        })
    }

    fn session(&self, outputs: Outputs) -> Result<&Mutex<Session>> {
        self.sessions.get(outputs, || {
            session(&self.file, self.threads, outputs).map(Mutex::new)
        })
    }
}

/// A session on the subgraph of one kind of call.
fn session(file: &ModelFile, threads: usize, outputs: Outputs) -> Result<Session> {
    let env = environment()?;
    let bytes = prost::Message::encode_to_vec(&file.subgraph(outputs.outputs(), outputs.inputs()));
    let mut builder = Session::builder(env).map_err(ort_err)?;
    if threads > 0 {
        builder = builder.with_intra_threads(threads).map_err(ort_err)?;
    }
    builder.commit_from_memory(&bytes).map_err(ort_err)
}

impl Backend for OrtModel {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn file(&self) -> &ModelFile {
        &self.file
    }

    fn run(&self, n: usize, outputs: Outputs, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let rows = self.rows_per_run();
        if n <= rows {
            return self.run_part(n, outputs, inputs);
        }
        let d = self.file.meta.record_len();
        in_runs(outputs, inputs, d, 0..n, rows, |m, part| {
            self.run_part(m, outputs, part)
        })
    }
}

impl OrtModel {
    /// Records per session run. A vector model's activations stay in cache at 512 records:
    /// onnxruntime evaluated 4 096 moons records 12-20 % faster as eight runs of 512 than as one
    /// (the PyPI build, one thread). Image batches run whole.
    fn rows_per_run(&self) -> usize {
        if self.file.meta.image_shape().is_some() {
            usize::MAX
        } else {
            512
        }
    }

    /// One session run over `n` records.
    fn run_part(&self, n: usize, outputs: Outputs, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
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
        let mut session = self.session(outputs)?.lock().expect("ort session lock");
        let out = session.run(values).map_err(ort_err)?;
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
