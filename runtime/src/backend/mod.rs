//! The evaluation backends behind one trait: vpfb's own evaluator (pure Rust, the default),
//! tract (`tract` feature) and ONNX Runtime (`ort` feature, library loaded at run time from
//! `ORT_DYLIB_PATH`). All read the same validated [`ModelFile`] and must agree within float
//! tolerance.
//!
//! A backend only runs one of the file's three output selections ([`Outputs`]) on a non-empty,
//! size-checked batch; the checks, the empty-batch answers and the missing-output errors live in
//! the trait's provided methods, once for both backends.

mod native;
#[cfg(feature = "tract")]
mod natural_constants;
#[cfg(feature = "ort")]
mod ort;
mod panic_guard;
mod selections;
#[cfg(feature = "tract")]
mod tract;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rayon::ThreadPool;

use crate::contract::{
    INPUT_PROBE, INPUT_T, INPUT_X, OUTPUT_ANOMALY_SCORE, OUTPUT_DPSI_DT, OUTPUT_HVP, OUTPUT_PSI,
    OUTPUT_VELOCITY,
};
use crate::{Error, ModelFile, Result};

pub use self::native::NativeModel;
#[cfg(feature = "ort")]
pub use self::ort::OrtModel;
#[cfg(feature = "tract")]
pub use self::tract::TractModel;

/// The three contract outputs for a batch, flattened row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// ψ(x, t), one per record.
    pub psi: Vec<f32>,
    /// ∇ₓψ(x, t), `record_len` values per record.
    pub velocity: Vec<f32>,
    /// ∂ψ/∂t, one per record.
    pub dpsi_dt: Vec<f32>,
}

/// What one graph run feeds and fetches: the file's output selections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outputs {
    /// ψ, ∇ₓψ and ∂ψ/∂t from x and t.
    Contract,
    /// ∇ₓψ alone from x and t: what a flow needs. The subgraph that only ψ and ∂ψ/∂t need (the
    /// time embedding's backward pass) is left out.
    Velocity,
    /// ∇ₓ²ψ·probe from x, t and probe (files with the `hvp` output).
    Hvp,
    /// The in-graph detector score from x (and t, which it ignores).
    AnomalyScore,
}

impl Outputs {
    /// Input names, in the order a run's values come.
    pub fn inputs(self) -> &'static [&'static str] {
        match self {
            Self::Contract | Self::Velocity | Self::AnomalyScore => &[INPUT_X, INPUT_T],
            Self::Hvp => &[INPUT_X, INPUT_T, INPUT_PROBE],
        }
    }

    /// Output names, in the order a run returns them.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Self::Contract => &[OUTPUT_PSI, OUTPUT_VELOCITY, OUTPUT_DPSI_DT],
            Self::Velocity => &[OUTPUT_VELOCITY],
            Self::Hvp => &[OUTPUT_HVP],
            Self::AnomalyScore => &[OUTPUT_ANOMALY_SCORE],
        }
    }
}

/// Whether an input named `name` is shaped like x (`[N, …data_shape]`); otherwise it is `[N]`.
pub(crate) fn is_x_like(name: &str) -> bool {
    name != INPUT_T
}

/// Something that evaluates a model file's outputs. Implementors provide [`Backend::run`]; the
/// other methods check their arguments and call it.
pub trait Backend: Send + Sync {
    /// `native`, `tract` or `ort`.
    fn name(&self) -> &'static str;

    /// The validated file this backend runs.
    fn file(&self) -> &ModelFile;

    /// Runs `n ≥ 1` records through one output selection: the one method a backend implements.
    /// `inputs` follow [`Outputs::inputs`], each holding `n` records; the result follows
    /// [`Outputs::outputs`], each flattened. The other methods call it through [`run_checked`],
    /// which checks both sides; call that rather than `run` directly.
    fn run(&self, n: usize, outputs: Outputs, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>>;

    /// ψ, ∇ₓψ and ∂ψ/∂t for `t.len()` records `x` (model space).
    fn evaluate(&self, x: &[f32], t: &[f32]) -> Result<Evaluation> {
        let n = check_batch(self.file(), INPUT_X, x, t)?;
        if n == 0 {
            return Ok(Evaluation {
                psi: vec![],
                velocity: vec![],
                dpsi_dt: vec![],
            });
        }
        let [psi, velocity, dpsi_dt] = run_checked(self, n, Outputs::Contract, &[x, t])?
            .try_into()
            .expect("run_checked returns one vector per output");
        Ok(Evaluation {
            psi,
            velocity,
            dpsi_dt,
        })
    }

    /// ∇ₓψ for `t.len()` records `x` (model space): [`Backend::evaluate`]'s velocity, computed
    /// without the parts of the graph that only ψ and ∂ψ/∂t need. The flows call this.
    fn evaluate_velocity(&self, x: &[f32], t: &[f32]) -> Result<Vec<f32>> {
        let n = check_batch(self.file(), INPUT_X, x, t)?;
        if n == 0 {
            return Ok(vec![]);
        }
        Ok(run_checked(self, n, Outputs::Velocity, &[x, t])?.remove(0))
    }

    /// ∇ₓ²ψ(x, t)·probe for `t.len()` records (model space; `probe` shaped like `x`). Needs a file
    /// with the `hvp` output (format version 2).
    fn hvp(&self, x: &[f32], t: &[f32], probe: &[f32]) -> Result<Vec<f32>> {
        let n = check_batch(self.file(), INPUT_X, x, t)?;
        check_batch(self.file(), INPUT_PROBE, probe, t)?;
        require_hvp(self.file())?;
        if n == 0 {
            return Ok(vec![]);
        }
        Ok(run_checked(self, n, Outputs::Hvp, &[x, t, probe])?.remove(0))
    }

    /// The file's in-graph `anomaly_score` output for model-space records `x` (files with a
    /// detector); the runtime's own path is [`crate::ood::Detector::score`].
    fn anomaly_score_output(&self, x: &[f32]) -> Result<Vec<f32>> {
        let file = self.file();
        if !file.has_anomaly_score() {
            return Err(Error::Detector(format!(
                "{} has no `{OUTPUT_ANOMALY_SCORE}` output",
                file.path.display()
            )));
        }
        let n = file.meta.records_in(x.len())?;
        if n == 0 {
            return Ok(vec![]);
        }
        let t = vec![1.0f32; n];
        Ok(run_checked(self, n, Outputs::AnomalyScore, &[x, &t])?.remove(0))
    }
}

/// [`Backend::run`] with its contract checked on both sides: `inputs` hold `n` records each (a
/// caller of the public `run` gets an error, not a panic, for a short input) and the backend returns
/// every output with `n` records.
pub fn run_checked<B: Backend + ?Sized>(
    backend: &B,
    n: usize,
    outputs: Outputs,
    inputs: &[&[f32]],
) -> Result<Vec<Vec<f32>>> {
    let d = backend.file().meta.record_len();
    let input_len = |name: &str| if is_x_like(name) { n * d } else { n };
    let output_len = |name: &str| match name {
        OUTPUT_VELOCITY | OUTPUT_HVP => n * d,
        _ => n,
    };
    if inputs.len() != outputs.inputs().len() {
        return Err(Error::InvalidArgument(format!(
            "{} inputs for {outputs:?}, which takes {:?}",
            inputs.len(),
            outputs.inputs()
        )));
    }
    for (name, v) in outputs.inputs().iter().zip(inputs) {
        if v.len() != input_len(name) {
            return Err(Error::InputSize {
                what: format!("{name} for {n} records of {d} values"),
                found: v.len(),
                expected: input_len(name),
            });
        }
    }
    let out = backend.run(n, outputs, inputs)?;
    let complete = out.len() == outputs.outputs().len()
        && outputs
            .outputs()
            .iter()
            .zip(&out)
            .all(|(name, v)| v.len() == output_len(name));
    if !complete {
        return Err(Error::Backend(format!(
            "{} returned {} outputs of sizes {:?} for {n} records of {:?}",
            backend.name(),
            out.len(),
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            outputs.outputs()
        )));
    }
    Ok(out)
}

/// A clear error for files without an `hvp` output.
pub(crate) fn require_hvp(file: &ModelFile) -> Result<()> {
    if !file.has_hvp() {
        return Err(Error::Backend(format!(
            "{} has no `{OUTPUT_HVP}` output (format version {}); re-export it with a current \
             vpfb-train, which upgrades a file in place",
            file.path.display(),
            file.meta.format_version
        )));
    }
    Ok(())
}

/// Checks that `x` (the input named `name`) holds `t.len()` records of the file's record length;
/// returns the record count.
fn check_batch(file: &ModelFile, name: &str, x: &[f32], t: &[f32]) -> Result<usize> {
    let (n, d) = (t.len(), file.meta.record_len());
    if x.len() != n * d {
        return Err(Error::InputSize {
            what: format!("{name} for {n} records of {d} values"),
            found: x.len(),
            expected: n * d,
        });
    }
    Ok(n)
}

/// Which backend evaluates a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// vpfb's own evaluator for the operators our exporter writes: pure Rust, no graph library;
    /// the default and what the Raspberry Pi build uses.
    #[default]
    Native,
    /// tract, a general pure-Rust ONNX engine (needs the crate's `tract` feature).
    Tract,
    /// ONNX Runtime, loaded from `ORT_DYLIB_PATH` (needs the crate's `ort` feature).
    Ort,
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tract" => Ok(Self::Tract),
            "ort" => Ok(Self::Ort),
            "native" => Ok(Self::Native),
            other => Err(Error::InvalidArgument(format!(
                "unknown backend `{other}` (expected native, tract or ort)"
            ))),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tract => "tract",
            Self::Ort => "ort",
            Self::Native => "native",
        })
    }
}

/// How a model is opened: the backend and its threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The native evaluator (default), tract or ONNX Runtime.
    pub backend: BackendKind,
    /// Threads for this model (0 = the backend's default: 1 for native and tract, all cores for
    /// ort). native and tract split a batch across them; ONNX Runtime uses them inside its
    /// operators.
    pub threads: usize,
}

/// Opens `file` with the chosen backend and thread count.
pub fn open(file: ModelFile, options: &LoadOptions) -> Result<Box<dyn Backend>> {
    match options.backend {
        #[cfg(feature = "tract")]
        BackendKind::Tract => Ok(Box::new(TractModel::with_threads(file, options.threads)?)),
        #[cfg(not(feature = "tract"))]
        BackendKind::Tract => Err(Error::Backend(
            "this build of vpfb-runtime has no tract backend (it is the `tract` cargo feature)"
                .into(),
        )),
        BackendKind::Native => Ok(Box::new(NativeModel::with_threads(file, options.threads)?)),
        #[cfg(feature = "ort")]
        BackendKind::Ort => Ok(Box::new(OrtModel::new(file, options.threads)?)),
        #[cfg(not(feature = "ort"))]
        BackendKind::Ort => Err(Error::Backend(
            "this build of vpfb-runtime has no ONNX Runtime backend (it is the `ort` cargo feature)"
                .into(),
        )),
    }
}

/// Records evaluated together by the chunked jobs: up to 4096, fewer for large records (about
/// 256 Ki values per chunk, e.g. 334 images of 28×28), which bounds the activations' memory.
pub fn chunk_rows(record_len: usize) -> usize {
    (262_144 / record_len.max(1)).clamp(1, 4096)
}

/// Records per plan run of the data-parallel backends (native, tract). Measured with `vpfb bench`
/// on the shipped models, one thread: an MLP's activations for 256 records stay in cache (native:
/// flat from 64 to 256; tract: 4 096 at once 1.5× slower), and the UNet runs fastest one image
/// at a time (native: runs of 4 were 9 % slower per image).
pub(super) fn rows_per_run(file: &ModelFile) -> usize {
    if file.meta.image_shape().is_some() {
        1
    } else {
        256
    }
}

/// The worker threads of a data-parallel backend, named `{name}-{i}`; none for one thread.
pub(super) fn worker_pool(threads: usize, name: &'static str) -> Result<Option<Arc<ThreadPool>>> {
    if threads <= 1 {
        return Ok(None);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| Error::Backend(format!("cannot start {threads} threads: {e}")))?;
    Ok(Some(Arc::new(pool)))
}

/// Records `0..n` in one contiguous share per thread of `pool` (all on this thread without one),
/// `rows(a, b)` computing records `a..b`; the shares' outputs joined in order.
pub(super) fn in_shares(
    pool: Option<&ThreadPool>,
    n: usize,
    outputs: Outputs,
    rows: impl Fn(usize, usize) -> Result<Vec<Vec<f32>>> + Sync,
) -> Result<Vec<Vec<f32>>> {
    let parts = pool.map_or(1, |p| p.current_num_threads().min(n));
    let Some(pool) = pool.filter(|_| parts > 1) else {
        return rows(0, n);
    };
    let shares: Vec<Result<Vec<Vec<f32>>>> = pool.install(|| {
        use rayon::prelude::*;
        (0..parts)
            .into_par_iter()
            .map(|i| rows(i * n / parts, (i + 1) * n / parts))
            .collect()
    });
    concatenate(outputs, shares)
}

/// The outputs of consecutive runs joined in order (every output is record-major).
pub(super) fn concatenate(
    outputs: Outputs,
    runs: Vec<Result<Vec<Vec<f32>>>>,
) -> Result<Vec<Vec<f32>>> {
    let mut joined: Vec<Vec<f32>> = vec![Vec::new(); outputs.outputs().len()];
    for run in runs {
        for (all, part) in joined.iter_mut().zip(run?) {
            all.extend(part);
        }
    }
    Ok(joined)
}

/// Records `records` of a batch evaluated in consecutive runs of at most `rows`, joined in order:
/// `run` gets each run's record count and its slice of every fed input (in `outputs`' input order;
/// an input shaped like x holds `record_len` values per record, one shaped like t holds one).
pub(super) fn in_runs(
    outputs: Outputs,
    inputs: &[&[f32]],
    record_len: usize,
    records: std::ops::Range<usize>,
    rows: usize,
    mut run: impl FnMut(usize, &[&[f32]]) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>> {
    let end_all = records.end;
    let runs = records
        .step_by(rows)
        .map(|start| {
            let end = (start + rows).min(end_all);
            let part: Vec<&[f32]> = outputs
                .inputs()
                .iter()
                .zip(inputs)
                .map(|(name, v)| {
                    let w = if is_x_like(name) { record_len } else { 1 };
                    &v[start * w..end * w]
                })
                .collect();
            run(end - start, &part)
        })
        .collect();
    concatenate(outputs, runs)
}
