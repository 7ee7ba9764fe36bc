//! The VPFB loss family (docs/method.md §3) on Candle tensors.
//!
//! Inputs are the potential ψ, its explicit gradient g = ∇ₓψ and s = ∂ψ/∂t at the path points, plus the
//! batch that made them (x̄, ε, t). Because g and s are ordinary graph nodes, Candle's first-order
//! `backward()` of the returned total is the exact gradient in θ.

mod config;
mod path;
mod terms;
mod time_sampling;

pub use config::{CovMode, LossConfig, LossPreset, Reduce, SourceTerm, TimeTerm, GAUGE_GROUP};
pub use path::{PathBatch, T_MAX, T_MIN};
pub use terms::{loss, loss_with_psi_std, std_of, LossTerms};
pub use time_sampling::{TimeSampling, TimeSamplingParseError};
