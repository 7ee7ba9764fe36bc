//! vpfb's own evaluator for the operator set our exporter writes: no graph library, a plan per
//! batch size (shapes fixed, constants folded, buffers reused), matrix products through one GEMM,
//! a direct kernel for "same" convolutions, elementwise loops the compiler vectorises.
//!
//! It reads any ONNX file made of the operators it knows (those of docs/model-file.md, plus a
//! few common neighbours) and answers a clear error naming the first operator it does not.

mod direct_conv;
mod dispatch;
mod elementwise;
mod fused;
mod fusion;
mod graph;
mod linear;
mod plan;
mod reduce;
mod step;
mod walk;
mod winograd;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use self::graph::{Graph, Node};
use self::plan::Plan;
use super::panic_guard::guarded;
use super::selections::Selections;
use super::{in_runs, in_shares, is_x_like, rows_per_run, worker_pool, Backend, Outputs};
use crate::{Error, ModelFile, Result};

/// Why a graph cannot be planned.
#[derive(Debug, thiserror::Error)]
pub(super) enum NativeError {
    /// The graph is inconsistent (a missing tensor, a bad attribute).
    #[error("{0}")]
    Graph(String),
    /// Shapes that do not fit the operator.
    #[error("{0}")]
    Shape(String),
    /// Something valid ONNX that this evaluator does not implement.
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl NativeError {
    /// The same error, naming the node it happened at.
    fn at(self, node: &Node) -> Self {
        let place = |m: String| format!("node `{}` ({}): {m}", node.name, node.op);
        match self {
            Self::Graph(m) => Self::Graph(place(m)),
            Self::Shape(m) => Self::Shape(place(m)),
            Self::Unsupported(m) => Self::Unsupported(place(m)),
        }
    }
}

/// One output selection of a file: its graph and a plan per run size, each built on first use.
struct Program {
    graph: Graph,
    /// For each fed input: whether it is shaped like x (else like t, `[N]`).
    x_like: Vec<bool>,
    plans: Mutex<HashMap<usize, Arc<Plan>>>,
}

impl Program {
    fn new(file: &ModelFile, outputs: Outputs) -> Result<Self> {
        let graph =
            Graph::read(file.graph(), outputs.inputs(), outputs.outputs()).map_err(|e| {
                Error::NotOnnx {
                    path: file.path.clone(),
                    reason: e.to_string(),
                }
            })?;
        Ok(Self {
            graph,
            x_like: outputs.inputs().iter().map(|n| is_x_like(n)).collect(),
            plans: Mutex::new(HashMap::new()),
        })
    }

    fn plan(&self, file: &ModelFile, n: usize) -> Result<Arc<Plan>> {
        if let Some(p) = self.plans.lock().expect("plan cache lock").get(&n) {
            return Ok(p.clone());
        }
        let mut x_shape = vec![n];
        x_shape.extend(&file.meta.data_shape);
        let fed: Vec<Vec<usize>> = self
            .x_like
            .iter()
            .map(|&x| if x { x_shape.clone() } else { vec![n] })
            .collect();
        let not_onnx = |reason: String| Error::NotOnnx {
            path: file.path.clone(),
            reason: format!("cannot plan it for {n} records: {reason}"),
        };
        let plan = guarded(|| Plan::build(&self.graph, &fed))
            .map_err(&not_onnx)?
            .map_err(|e| not_onnx(e.to_string()))?;
        let plan = Arc::new(plan);
        self.plans
            .lock()
            .expect("plan cache lock")
            .insert(n, plan.clone());
        Ok(plan)
    }
}

/// A model file prepared for evaluation with vpfb's own evaluator, with its own threads.
///
/// A batch runs through a plan in runs of a few records (256 of a vector model, one image)
/// so that every intermediate stays in cache; with more than one thread, each thread takes a
/// contiguous share of the records.
pub struct NativeModel {
    file: ModelFile,
    pool: Option<Arc<rayon::ThreadPool>>,
    programs: Selections<Program>,
}

impl NativeModel {
    /// Prepares a validated model file, single-threaded.
    pub fn new(file: ModelFile) -> Result<Self> {
        Self::with_threads(file, 1)
    }

    /// Prepares a validated model file evaluated on `threads` threads (0 or 1: one).
    pub fn with_threads(file: ModelFile, threads: usize) -> Result<Self> {
        let contract = Program::new(&file, Outputs::Contract)?;
        // Plan the contract now, so that a file this evaluator cannot run fails on load.
        contract.plan(&file, 1)?;
        let pool = worker_pool(threads, "vpfb-native")?;
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

    /// Records `a..b` of a batch on this thread, in runs of at most [`rows_per_run`].
    fn run_rows(
        &self,
        program: &Program,
        outputs: Outputs,
        inputs: &[&[f32]],
        a: usize,
        b: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let d = self.file.meta.record_len();
        in_runs(
            outputs,
            inputs,
            d,
            a..b,
            rows_per_run(&self.file),
            |m, part| {
                let plan = program.plan(&self.file, m)?;
                guarded(|| plan.run(part)).map_err(|m| {
                    Error::Backend(format!(
                        "evaluating {} failed: {m}",
                        self.file.path.display()
                    ))
                })
            },
        )
    }
}

impl Backend for NativeModel {
    fn name(&self) -> &'static str {
        "native"
    }

    fn file(&self) -> &ModelFile {
        &self.file
    }

    fn run(&self, n: usize, outputs: Outputs, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let program = self
            .programs
            .get(outputs, || Program::new(&self.file, outputs))?;
        in_shares(self.pool.as_deref(), n, outputs, |a, b| {
            self.run_rows(program, outputs, inputs, a, b)
        })
    }
}
