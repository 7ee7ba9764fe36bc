//! What a backend prepares per output selection ([`Outputs`]): the contract's, built on load,
//! and the velocity, `hvp` and `anomaly_score` ones, each built on first use (a program asks
//! only for those it needs). One holder for every backend.

use std::sync::OnceLock;

use super::Outputs;
use crate::{Error, Result};

/// A backend's prepared form (a plan, a program, a session) of each output selection.
pub(super) struct Selections<P> {
    contract: P,
    /// Built on first use; a failure is kept and returned again.
    velocity: OnceLock<std::result::Result<P, String>>,
    hvp: OnceLock<std::result::Result<P, String>>,
    anomaly: OnceLock<std::result::Result<P, String>>,
}

impl<P> Selections<P> {
    /// The contract selection, prepared on load.
    pub fn new(contract: P) -> Self {
        Self {
            contract,
            velocity: OnceLock::new(),
            hvp: OnceLock::new(),
            anomaly: OnceLock::new(),
        }
    }

    /// The selection `outputs`, prepared with `build` on its first use.
    pub fn get(&self, outputs: Outputs, build: impl FnOnce() -> Result<P>) -> Result<&P> {
        let cell = match outputs {
            Outputs::Contract => return Ok(&self.contract),
            Outputs::Velocity => &self.velocity,
            Outputs::Hvp => &self.hvp,
            Outputs::AnomalyScore => &self.anomaly,
        };
        cell.get_or_init(|| build().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Backend(e.clone()))
    }
}
