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
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The file does not say what it was trained on (so its records must be given).
    #[error("the file records no training {0}; give the data to fit on")]
    NoTrainingData(&'static str),
    #[error("{0}")]
    Records(String),
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

/// The in-distribution records (raw units) an existing file's OOD scores are re-fitted on, and a
/// description of them: every record of `data` when given, else the validation split of the data
/// set and seed that the file's training metadata records (as `fit` held it out).
pub fn refit_records(
    file: &ModelFile,
    data: Option<&crate::data::DataSpec>,
) -> Result<(Vec<f64>, String), ImportError> {
    use crate::data::{DataSpec, Dataset};
    let (records, source) = match data {
        Some(spec) => {
            let set = Dataset::load(spec, 0)?;
            let mut all = set.validation();
            if let Dataset::Table { train, .. } = &set {
                all.extend(train);
            }
            (all, format!("every record of {spec}"))
        }
        None => {
            let training = file.meta.training.clone().unwrap_or_default();
            let spec = training
                .get("dataset")
                .and_then(|v| v.as_str())
                .ok_or(ImportError::NoTrainingData("data set"))?;
            let seed = training
                .get("seed")
                .and_then(|v| v.as_u64())
                .ok_or(ImportError::NoTrainingData("seed"))?;
            let parsed: DataSpec = spec.parse()?;
            let set = Dataset::load(&parsed, seed)?;
            (
                set.validation(),
                format!("the validation split of {spec} (seed {seed})"),
            )
        }
    };
    let d = file.meta.record_len();
    if records.is_empty() || records.len() % d != 0 {
        return Err(ImportError::Records(format!(
            "the data has records of another size than the model's {d} values"
        )));
    }
    Ok((records, source))
}
