//! Loss switches and weights, named after the authors' configuration (`configs/homotopy/*.py`).

use serde::{Deserialize, Serialize};

use super::TimeSampling;

/// How the path-wise source term compares g = ∇ₓψ with the conditional velocity u = x̄ − ε
/// (the authors' `cvf_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SourceTerm {
    /// −g·u / (‖g‖‖u‖ + 1e-8)^(1 − (1−t)^p): cosine near the data, dot product near the noise.
    Cos,
    /// −(g·u)·(1−t)^p: the Deep-Ritz source estimator.
    Dot,
    /// ‖g − u‖²·(1−t)^p: flow matching on the potential's gradient.
    Dist,
    /// No source term.
    Off,
}

/// The score-function source term's normalisation (the authors' `cov_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CovMode {
    /// mean(Γψ) / (std(Γ)·std(ψ, no gradient) + 1e-8).
    Corr,
    /// mean(Γψ) / (√D · ln 2π + 1e-8).
    Cov,
    /// No correlation term.
    Off,
}

/// Whether per-sample terms average or sum over the data dimensions (the authors' `reduce_mean`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Reduce {
    Mean,
    Sum,
}

/// What the time term constrains of s = ∂ψ/∂t.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TimeTerm {
    /// mean((1 − t)^p·s²) over records: every record's ∂ψ/∂t is pushed to zero (the method notes' term;
    /// runs written before this setting existed load as this).
    #[default]
    PerRecord,
    /// mean over groups of (mean of s within the group)², where the records of a group of
    /// [`GAUGE_GROUP`] share one time: only the per-t mean of ∂ψ/∂t, the part of ψ the flow never sees,
    /// is fixed; its dependence on x is left free.
    Gauge,
}

/// Records per shared training time when the time term is [`TimeTerm::Gauge`].
pub const GAUGE_GROUP: usize = 8;

/// Named starting points for [`LossConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossPreset {
    /// docs/method.md §3 exactly: L_corr + L_norm + L_temb + L_cos (the authors' released configuration).
    Paper,
    /// mean_i[½‖g_i‖² − g_i·u_i]: the variational principle without normalisations and without a time
    /// term (runs written before carry their 0.1·mean(s²) in their recorded config; docs/training.md).
    Ritz,
}

/// Every switch and weight of the loss; recorded in the run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    pub preset: LossPreset,
    pub source: SourceTerm,
    pub source_weight: f64,
    /// The (1 − t) exponent of the source term (`std_power_lap`).
    pub source_power: f64,
    pub cov: CovMode,
    pub cov_weight: f64,
    /// The (1 − t) exponent inside Γ (`std_power_cov`).
    pub cov_power: f64,
    /// Weight of mean(g²) (`weight_norm`).
    pub norm_weight: f64,
    /// The (1 − t) exponent of the norm term (`std_power_norm`).
    pub norm_power: f64,
    /// Weight of mean(s²) (`weight_temb`).
    pub temb_weight: f64,
    /// The (1 − t) exponent of the time term (`std_power_temb`).
    pub temb_power: f64,
    pub reduce: Reduce,
    /// What the time term constrains.
    #[serde(default)]
    pub time_term: TimeTerm,
    /// How training times are drawn.
    #[serde(default)]
    pub time_sampling: TimeSampling,
}

impl LossConfig {
    pub fn preset(p: LossPreset) -> Self {
        match p {
            LossPreset::Paper => Self {
                preset: p,
                source: SourceTerm::Cos,
                source_weight: 1.0,
                source_power: 1.0,
                cov: CovMode::Corr,
                cov_weight: 1.0,
                cov_power: 1.0,
                norm_weight: 0.5,
                norm_power: 0.0,
                temb_weight: 0.1,
                temb_power: 0.0,
                reduce: Reduce::Mean,
                time_term: TimeTerm::PerRecord,
                time_sampling: TimeSampling::Uniform,
            },
            LossPreset::Ritz => Self {
                preset: p,
                source: SourceTerm::Dot,
                source_weight: 1.0,
                source_power: 0.0,
                cov: CovMode::Off,
                cov_weight: 0.0,
                cov_power: 1.0,
                norm_weight: 0.5,
                norm_power: 0.0,
                temb_weight: 0.0,
                temb_power: 0.0,
                reduce: Reduce::Sum,
                time_term: TimeTerm::PerRecord,
                time_sampling: TimeSampling::Uniform,
            },
        }
    }
}

impl LossConfig {
    /// Whether the loss is a mean of per-record terms, so that a batch split into shards has the whole
    /// batch's gradient as the shards' record-weighted sum. The correlation term (batch statistics) and
    /// the gauge time term (groups of records) are not.
    pub fn per_record(&self) -> bool {
        let corr = self.cov != CovMode::Off && self.cov_weight != 0.0;
        let gauge = self.time_term == TimeTerm::Gauge && self.temb_weight != 0.0;
        !corr && !gauge
    }

    /// How many consecutive records of a batch share one training time: [`GAUGE_GROUP`] when the gauge
    /// time term is on, else 1.
    pub fn time_group(&self) -> usize {
        if self.time_term == TimeTerm::Gauge && self.temb_weight != 0.0 {
            GAUGE_GROUP
        } else {
            1
        }
    }
}
