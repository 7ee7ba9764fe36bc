//! Evaluation with tract: one optimised plan per batch size, built on first use and cached
//! (a plan for a fixed batch size runs about 3.5× faster than one with a symbolic batch).
//!
//! A model file becomes up to three tract programs, one per output selection ([`Outputs`]), each
//! built on first use: the contract outputs, the Hessian-vector product (with `probe` fed), and the
//! in-graph detector score.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use tract_linalg::multithread::{multithread_tract_scope, Executor};

use super::natural_constants::naturalise_constants;
use super::panic_guard::guarded;
use super::selections::Selections;
use super::{in_runs, in_shares, is_x_like, rows_per_run, worker_pool, Backend, Outputs};
use crate::contract::INPUT_PROBE;
use crate::{Error, ModelFile, Result};

type Plan = Arc<TypedRunnableModel>;

fn tract_err(e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("tract: {e:#}"))
}

/// The model as tract's own protobuf type (the same ONNX messages, re-read from their bytes).
fn for_tract(
    file: &ModelFile,
    proto: &crate::onnx_proto::ModelProto,
) -> Result<tract_onnx::pb::ModelProto> {
    use prost::Message;
    tract_onnx::pb::ModelProto::decode(proto.encode_to_vec().as_slice()).map_err(|e| {
        Error::NotOnnx {
            path: file.path.clone(),
            reason: format!("tract cannot decode it: {e}"),
        }
    })
}

/// One tract graph with named inputs (each shaped like x or like t) and selected outputs.
struct Program {
    /// The model file, named in the error a panicking graph becomes.
    origin: std::path::PathBuf,
    inference: InferenceModel,
    /// For each graph input in order: whether it is shaped like x (else like t, `[N]`).
    x_like: Vec<bool>,
    /// Graph input position of each name the caller feeds, in the caller's order.
    feed: Vec<usize>,
    plans: Mutex<HashMap<usize, Plan>>,
}

impl Program {
    /// `proto` loaded by tract, fed and fetched as `selection` says.
    fn new(
        file: &ModelFile,
        proto: &tract_onnx::pb::ModelProto,
        selection: Outputs,
    ) -> Result<Self> {
        let (inputs, outputs) = (selection.inputs(), selection.outputs());
        let not_onnx = |reason: String| Error::NotOnnx {
            path: file.path.clone(),
            reason: format!("tract cannot load it: {reason}"),
        };
        let mut inference = guarded(|| tract_onnx::onnx().model_for_proto_model(proto))
            .map_err(&not_onnx)?
            .map_err(|e| not_onnx(format!("{e:#}")))?;
        let graph = proto.graph.as_ref().expect("checked on load");
        let out_names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let outlets = outputs
            .iter()
            .map(|n| {
                out_names
                    .iter()
                    .position(|m| m == n)
                    .map(|i| inference.outputs[i])
                    .ok_or_else(|| tract_err(format!("no output `{n}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        inference
            .select_output_outlets(&outlets)
            .map_err(tract_err)?;
        let source_names: Vec<String> = inference
            .inputs
            .iter()
            .map(|o| inference.node(o.node).name.clone())
            .collect();
        let feed = inputs
            .iter()
            .map(|n| {
                source_names
                    .iter()
                    .position(|m| m == n)
                    .ok_or_else(|| tract_err(format!("no input `{n}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        if feed.len() != source_names.len() {
            return Err(tract_err(format!(
                "the graph has inputs {source_names:?}, expected {inputs:?}"
            )));
        }
        let x_like = source_names.iter().map(|n| is_x_like(n)).collect();
        Ok(Self {
            origin: file.path.clone(),
            inference,
            x_like,
            feed,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The error for a panic inside tract: the graph is malformed in a way tract did not check.
    fn panicked(&self, message: String) -> Error {
        Error::NotOnnx {
            path: self.origin.clone(),
            reason: format!("tract failed on its graph: {message}"),
        }
    }

    fn plan(&self, n: usize, data_shape: &[usize]) -> Result<Plan> {
        if let Some(p) = self.plans.lock().expect("plan cache lock").get(&n) {
            return Ok(p.clone());
        }
        let mut x_shape = vec![n];
        x_shape.extend(data_shape);
        let mut model = self.inference.clone();
        for (slot, &x_like) in self.x_like.iter().enumerate() {
            let fact = if x_like {
                f32::fact(&x_shape)
            } else {
                f32::fact([n])
            };
            model = model
                .with_input_fact(slot, fact.into())
                .map_err(tract_err)?;
        }
        let plan = guarded(|| {
            let mut optimised = model.into_optimized()?;
            naturalise_constants(&mut optimised)?;
            optimised.into_runnable()
        })
        .map_err(|m| self.panicked(m))?
        .map_err(tract_err)?;
        self.plans
            .lock()
            .expect("plan cache lock")
            .insert(n, plan.clone());
        Ok(plan)
    }

    /// Runs `n` records; `values` in the caller's input order; returns each output flattened.
    fn run(&self, n: usize, data_shape: &[usize], values: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let mut x_shape = vec![n];
        x_shape.extend(data_shape);
        let mut inputs: Vec<Option<TValue>> = vec![None; self.feed.len()];
        for (&slot, v) in self.feed.iter().zip(values) {
            let shape: &[usize] = if self.x_like[slot] { &x_shape } else { &[n] };
            inputs[slot] = Some(Tensor::from_shape(shape, v).map_err(tract_err)?.into());
        }
        let inputs: TVec<TValue> = inputs
            .into_iter()
            .map(|v| v.expect("every input fed"))
            .collect();
        let plan = self.plan(n, data_shape)?;
        let out = guarded(|| plan.run(inputs))
            .map_err(|m| self.panicked(m))?
            .map_err(tract_err)?;
        out.iter()
            .map(|o| {
                o.try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
                    .map_err(tract_err)
            })
            .collect()
    }
}

/// A model file prepared for evaluation with tract, with its own threads.
///
/// A batch runs through the plan in runs of a few records (256 records of a vector model, one image); with
/// more than one thread, each thread takes a contiguous share of the records (data parallelism:
/// tract's threading inside operators made our graphs no faster, and single records slower).
pub struct TractModel {
    file: ModelFile,
    /// The worker threads (none when single-threaded).
    pool: Option<Arc<rayon::ThreadPool>>,
    programs: Selections<Program>,
}

impl TractModel {
    /// Prepares a validated model file, single-threaded.
    pub fn new(file: ModelFile) -> Result<Self> {
        Self::with_threads(file, 1)
    }

    /// Prepares a validated model file evaluated on `threads` threads (0 or 1: one).
    pub fn with_threads(file: ModelFile, threads: usize) -> Result<Self> {
        let contract = Program::new(&file, &for_tract(&file, file.proto())?, Outputs::Contract)?;
        let pool = worker_pool(threads, "vpfb-tract")?;
        Ok(Self {
            file,
            pool,
            programs: Selections::new(contract),
        })
    }

    /// Loads and prepares a model file from disk.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::new(ModelFile::load(path)?)
    }

    /// Records `a..b` of a batch, evaluated on this thread in runs of at most [`rows_per_run`]
    /// records.
    fn run_rows(
        &self,
        program: &Program,
        outputs: Outputs,
        inputs: &[&[f32]],
        a: usize,
        b: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let (d, shape) = (self.file.meta.record_len(), &self.file.meta.data_shape);
        in_runs(
            outputs,
            inputs,
            d,
            a..b,
            rows_per_run(&self.file),
            |m, part| {
                multithread_tract_scope(Executor::SingleThread, || program.run(m, shape, part))
            },
        )
    }

    /// The program of one output selection, built on first use.
    fn program(&self, outputs: Outputs) -> Result<&Program> {
        self.programs.get(outputs, || {
            if outputs == Outputs::Hvp {
                // `probe` becomes a fed input: its default initializer goes.
                let mut proto = self.file.proto().clone();
                if let Some(graph) = proto.graph.as_mut() {
                    graph.initializer.retain(|i| i.name != INPUT_PROBE);
                }
                for_tract(&self.file, &proto).and_then(|p| Program::new(&self.file, &p, outputs))
            } else {
                for_tract(&self.file, self.file.proto())
                    .and_then(|p| Program::new(&self.file, &p, outputs))
            }
        })
    }
}

impl Backend for TractModel {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn file(&self) -> &ModelFile {
        &self.file
    }

    fn run(&self, n: usize, outputs: Outputs, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let program = self.program(outputs)?;
        in_shares(self.pool.as_deref(), n, outputs, |a, b| {
            self.run_rows(program, outputs, inputs, a, b)
        })
    }
}
