//! Reading a potential back from a model file: the network from its `vpfb.architecture` metadata and
//! the weights from its initializers (named like the parameters). This is how an existing file is
//! upgraded (re-exported with the outputs and detector of the current format) without its run.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use thiserror::Error;
use vpfb_runtime::ModelFile;

use crate::nn::{build_potential, PotentialGraph};
use crate::train::ArchConfig;

/// Why a file cannot be read back into a potential.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("vpfb.architecture is not an architecture this trainer builds: {0}")]
    Architecture(String),
    #[error("parameter `{name}`: {reason}")]
    Parameter { name: String, reason: String },
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The architecture a file's metadata describes (`{"arch": …, "config": {…}}`).
pub fn architecture(file: &ModelFile) -> Result<ArchConfig, ImportError> {
    let a = &file.meta.architecture;
    let mut config = a
        .get("config")
        .and_then(|c| c.as_object())
        .cloned()
        .ok_or_else(|| ImportError::Architecture(format!("no `config` object in {a}")))?;
    let arch = a
        .get("arch")
        .cloned()
        .ok_or_else(|| ImportError::Architecture(format!("no `arch` in {a}")))?;
    config.insert("arch".into(), arch);
    serde_json::from_value(serde_json::Value::Object(config))
        .map_err(|e| ImportError::Architecture(e.to_string()))
}

/// The potential graph and the weights of a file (float32 initializers, by parameter name).
pub fn potential_from_file(
    file: &ModelFile,
) -> Result<(ArchConfig, PotentialGraph, HashMap<String, Tensor>), ImportError> {
    let arch = architecture(file)?;
    let pg = build_potential(arch.network())?;
    let mut params = HashMap::new();
    for spec in &pg.params {
        let bad = |reason: String| ImportError::Parameter {
            name: spec.name.clone(),
            reason,
        };
        let t = file
            .initializer(&spec.name)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("missing from the file".into()))?;
        if t.dims != spec.dims {
            return Err(bad(format!(
                "shape {:?}, the network needs {:?}",
                t.dims, spec.dims
            )));
        }
        let (values, dims) = (t.values, t.dims);
        params.insert(
            spec.name.clone(),
            Tensor::from_vec(values, dims, &Device::Cpu)?,
        );
    }
    Ok((arch, pg, params))
}
