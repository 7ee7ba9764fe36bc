//! [`Model`]: a model file opened with a backend, and the jobs a program runs with it — scoring,
//! sampling, interpolation, imputation and inpainting, log-likelihood — taking and returning records in raw units
//! (the data's own units; the file's normalisation is applied inside).

use std::path::{Path, PathBuf};

use crate::backend::{open, Backend, LoadOptions, Outputs};
use crate::imputation::ImputeOptions;
use crate::io::Records;
use crate::likelihood::{log_likelihood_raw, LogLikelihood, Trace};
use crate::ood::Score;
use crate::solver::{SolveStats, Solver};
use crate::{Error, ModelFile, ModelMeta, Result};

/// A loaded model: a validated model file and the backend that evaluates it.
///
/// `Model` is itself a [`Backend`], so the lower-level functions of the crate (statistics,
/// the detector, solvers) accept it as it is.
///
/// A malformed graph that an evaluator does not check for can make it panic; loading and running
/// catch that and return an error. To keep the panic's message off stderr, the first load wraps
/// the process's panic hook (other panics still reach the previous hook). A program built with
/// `panic = "abort"` cannot catch it: there a malformed graph aborts. Plans are built on the first
/// evaluation of each run size, so a model's first call is slower than the next ones.
pub struct Model {
    backend: Box<dyn Backend>,
}

/// How the flow is integrated by the generating jobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowOptions {
    /// ODE solver for dx/dt = ∇ₓψ(x, t) from noise (t ≈ 0) to data (t ≈ 1). Default: RK4, 100 steps.
    pub solver: Solver,
    /// Seed of the starting noise: the same seed gives the same records.
    pub seed: u64,
}

impl Default for FlowOptions {
    fn default() -> Self {
        Self {
            solver: Solver::Rk4 { steps: 100 },
            seed: 0,
        }
    }
}

/// Records made by the flow, with what they cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The records, raw units.
    pub records: Records,
    /// Solver steps and function evaluations.
    pub stats: SolveStats,
}

/// Which anomaly score to compute and where its outlier threshold lies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScoreOptions {
    /// The score (default: the model's recommended one, [`Model::default_score`]).
    pub score: Option<Score>,
    /// The outlier threshold (default: the model's calibrated 5 % false-positive point).
    pub threshold: Option<f64>,
}

/// Anomaly scores of a batch of records (higher = more anomalous).
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreReport {
    /// The score computed.
    pub score: Score,
    /// The threshold the outlier flags use.
    pub threshold: f64,
    /// One score per record.
    pub scores: Vec<f64>,
    /// One flag per record: score > threshold.
    pub outliers: Vec<bool>,
}

/// How a log-likelihood is integrated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LikelihoodOptions {
    /// RK4 steps from t = 1 back to t = 0 (default 50).
    pub steps: usize,
    /// How the divergence is computed (default: exact for records of ≤ 32 values, else one
    /// Hutchinson probe).
    pub trace: Option<Trace>,
}

impl Default for LikelihoodOptions {
    fn default() -> Self {
        Self {
            steps: 50,
            trace: None,
        }
    }
}

impl Model {
    /// Loads a model file with the default (native) evaluator, single-threaded.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Loads a model file with the given backend and threads.
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        Self::from_file(ModelFile::load(path)?, options)
    }

    /// Loads a model from bytes (e.g. `include_bytes!`); `name` stands for it in messages.
    pub fn from_bytes(bytes: &[u8], name: &str, options: &LoadOptions) -> Result<Self> {
        Self::from_file(ModelFile::from_bytes(bytes, PathBuf::from(name))?, options)
    }

    /// Opens an already validated model file.
    pub fn from_file(file: ModelFile, options: &LoadOptions) -> Result<Self> {
        Ok(Self {
            backend: open(file, options)?,
        })
    }

    /// The file's metadata: data shape, normalisation, architecture, calibration, detector.
    pub fn meta(&self) -> &ModelMeta {
        &self.file().meta
    }

    /// Values per record (the product of the data shape).
    pub fn record_len(&self) -> usize {
        self.meta().record_len()
    }

    /// The score this model recommends: its stated default, else its detector, else grad-norm.
    pub fn default_score(&self) -> Score {
        crate::scoring::default_score(self)
    }

    /// The outlier threshold of `score`: `user`'s when given (it must be finite), else the model's
    /// calibrated 5 % false-positive point for that score.
    pub fn threshold(&self, score: Score, user: Option<f64>) -> Result<f64> {
        crate::scoring::threshold(self, score, user)
    }

    /// Anomaly scores and outlier flags for raw `records` (row-major, `record_len` values each)
    /// with the model's default score and calibrated threshold.
    pub fn score(&self, records: &[f64]) -> Result<ScoreReport> {
        self.score_with(records, &ScoreOptions::default())
    }

    /// [`Model::score`] with a chosen score and/or threshold.
    pub fn score_with(&self, records: &[f64], options: &ScoreOptions) -> Result<ScoreReport> {
        let score = options.score.unwrap_or_else(|| self.default_score());
        let threshold = self.threshold(score, options.threshold)?;
        let scores = crate::scoring::score_raw(self, records, score)?;
        let outliers = scores.iter().map(|&s| s > threshold).collect();
        Ok(ScoreReport {
            score,
            threshold,
            scores,
            outliers,
        })
    }

    /// Several scores of the same records, one vector per score, sharing evaluations (no
    /// thresholds).
    pub fn scores(&self, records: &[f64], scores: &[Score]) -> Result<Vec<Vec<f64>>> {
        crate::scoring::score_raw_many(self, records, scores)
    }

    /// `n` records drawn from the model: seeded noise carried to data by the flow.
    pub fn sample(&self, n: usize, options: &FlowOptions) -> Result<Generated> {
        let (values, stats) = crate::sampling::sample(self, n, options.solver, options.seed)?;
        Ok(self.generated(values, stats))
    }

    /// `frames` records carried to data from noise slerped between two seeded draws (frame 0 and
    /// the last are the endpoints).
    pub fn interpolate(&self, frames: usize, options: &FlowOptions) -> Result<Generated> {
        if frames == 0 {
            return Err(Error::InvalidArgument(
                "interpolation needs at least one frame".into(),
            ));
        }
        let (values, stats) =
            crate::interpolation::interpolate(self, frames, options.solver, options.seed)?;
        Ok(self.generated(values, stats))
    }

    /// Completes raw `records` whose missing values are NaN: each record's NaN places start from
    /// noise and follow the flow, steered by that record's known values, which come back exactly as
    /// given. Records without NaN pass through; a record of NaN only is a plain sample.
    pub fn impute(&self, records: &[f64], options: &ImputeOptions) -> Result<Generated> {
        let unknown: Vec<bool> = records.iter().map(|v| v.is_nan()).collect();
        self.fill(records, &unknown, options)
    }

    /// Completes raw `records` in the places where `unknown` (one flag per value of a record, the
    /// same for every record: e.g. an image region) is true, as [`Model::impute`] does for NaN.
    /// Unknown places may hold anything; known ones must be finite.
    pub fn inpaint(
        &self,
        records: &[f64],
        unknown: &[bool],
        options: &ImputeOptions,
    ) -> Result<Generated> {
        let d = self.record_len();
        if unknown.len() != d {
            return Err(Error::InvalidArgument(format!(
                "the mask has {} flags, the model's records have {d} values",
                unknown.len()
            )));
        }
        let all: Vec<bool> = (0..records.len()).map(|i| unknown[i % d]).collect();
        self.fill(records, &all, options)
    }

    /// Completes raw `records` where `unknown` (one flag per value of every record) is true.
    pub fn fill(
        &self,
        records: &[f64],
        unknown: &[bool],
        options: &ImputeOptions,
    ) -> Result<Generated> {
        let (values, stats) = crate::imputation::fill(self, records, unknown, options)?;
        Ok(self.generated(values, stats))
    }

    /// Log-likelihoods (nats) of raw records under the model (files of format 2, which carry the
    /// Hessian-vector-product output).
    pub fn log_likelihood(
        &self,
        records: &[f64],
        options: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        if options.steps == 0 {
            return Err(Error::InvalidArgument(
                "the log-likelihood needs at least one RK4 step".into(),
            ));
        }
        let trace = options
            .trace
            .unwrap_or_else(|| Trace::default_for(self.record_len()));
        log_likelihood_raw(self, records, options.steps, trace)
    }

    /// The backend behind this model (`native`, `tract` or `ort`).
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    fn generated(&self, values: Vec<f64>, stats: SolveStats) -> Generated {
        Generated {
            records: Records {
                cols: self.record_len(),
                values,
            },
            stats,
        }
    }
}

impl Backend for Model {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn file(&self) -> &ModelFile {
        self.backend.file()
    }

    /// Checked: a short input or a wrong input count is an error, never a panic.
    fn run(&self, n: usize, outputs: Outputs, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        crate::backend::run_checked(self.backend.as_ref(), n, outputs, inputs)
    }
}
