//! The model-file contract: tensor names, ranks and the `vpfb.*` metadata every file carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ood::Detector;
use crate::ContractError;

/// The format version the trainer writes: 2 adds the fitted multi-time detector (`vpfb.detector`)
/// and the optional `hvp` output. Version 1 files still load, with their single-evaluation scores.
pub const FORMAT_VERSION: u32 = 2;
/// Every format version this runtime reads.
pub const READABLE_VERSIONS: [u32; 2] = [1, 2];
/// Input: points `[N, D]` or images `[N, C, H, W]`, in model space.
pub const INPUT_X: &str = "x";
/// Input: flow time `[N]`, t = 0 noise, t = 1 data.
pub const INPUT_T: &str = "t";
/// Output: the potential ψ(x, t), `[N]`.
pub const OUTPUT_PSI: &str = "psi";
/// Output: the flow velocity ∇ₓψ(x, t), shaped like `x`.
pub const OUTPUT_VELOCITY: &str = "velocity";
/// Output: ∂ψ/∂t, `[N]`.
pub const OUTPUT_DPSI_DT: &str = "dpsi_dt";
/// Optional input (format 2): the direction of the Hessian-vector product, shaped like `x`. The file
/// gives it a default (zeros, one record) so that `x` and `t` stay the only inputs a client must feed.
pub const INPUT_PROBE: &str = "probe";
/// Optional output (format 2): ∇ₓ²ψ(x, t)·probe, shaped like `x`.
pub const OUTPUT_HVP: &str = "hvp";
/// Optional output (format 2, files with a detector): the detector's anomaly score `[N]` computed
/// in the graph from `x` alone (`t` is fed but unused), so any ONNX runtime can score records.
pub const OUTPUT_ANOMALY_SCORE: &str = "anomaly_score";
/// Prefix of every node, value and constant of the in-graph detector (not parameters of the model).
pub const DETECTOR_GRAPH_PREFIX: &str = "ood/";
/// The time convention every file states.
pub const TIME_CONVENTION: &str = "t=0 noise, t=1 data";

const KEY_VERSION: &str = "vpfb.format_version";
const KEY_SHAPE: &str = "vpfb.data_shape";
const KEY_NORM: &str = "vpfb.normalization";
const KEY_TIME: &str = "vpfb.time_convention";
const KEY_ARCH: &str = "vpfb.architecture";
const KEY_TRAINING: &str = "vpfb.training";
const KEY_OOD: &str = "vpfb.ood";
const KEY_DETECTOR: &str = "vpfb.detector";

/// How raw user data maps to model space: `model = (raw − offset) / scale`, per feature or global.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// Model space is raw space.
    Identity,
    /// Per-feature standardisation: `model_d = (raw_d − mean_d) / std_d`.
    Standardize { mean: Vec<f64>, std: Vec<f64> },
    /// One affine map for every value (pixels: offset 127.5, scale 127.5 maps 0–255 to [-1, 1]).
    Affine { offset: f64, scale: f64 },
}

impl Normalization {
    /// Raw records (row-major, `features` values each) to model space.
    pub fn to_model(&self, raw: &[f64], features: usize) -> Vec<f64> {
        match self {
            Normalization::Standardize { mean, std } => raw
                .iter()
                .enumerate()
                .map(|(i, v)| (v - mean[i % features]) / std[i % features])
                .collect(),
            Normalization::Affine { offset, scale } => {
                raw.iter().map(|v| (v - offset) / scale).collect()
            }
            Normalization::Identity => raw.to_vec(),
        }
    }

    /// Model-space records back to raw units.
    pub fn to_raw(&self, model: &[f64], features: usize) -> Vec<f64> {
        match self {
            Normalization::Standardize { mean, std } => model
                .iter()
                .enumerate()
                .map(|(i, v)| v * std[i % features] + mean[i % features])
                .collect(),
            Normalization::Affine { offset, scale } => {
                model.iter().map(|v| v * scale + offset).collect()
            }
            Normalization::Identity => model.to_vec(),
        }
    }

    /// The map as one `raw = model · scale + offset` per feature: `(offset, scale)`, `features` each.
    pub fn per_feature(&self, features: usize) -> (Vec<f64>, Vec<f64>) {
        match self {
            Normalization::Standardize { mean, std } => (mean.clone(), std.clone()),
            Normalization::Affine { offset, scale } => {
                (vec![*offset; features], vec![*scale; features])
            }
            Normalization::Identity => (vec![0.0; features], vec![1.0; features]),
        }
    }

    /// log |det ∂model/∂raw| for records of `values` values: what a density in model space gains
    /// when it is expressed in raw units.
    pub fn log_abs_det_to_model(&self, values: usize) -> f64 {
        match self {
            Normalization::Standardize { std, .. } => -std.iter().map(|s| s.ln()).sum::<f64>(),
            Normalization::Affine { scale, .. } => -(values as f64) * scale.ln(),
            Normalization::Identity => 0.0,
        }
    }

    fn validate(&self, features: usize) -> Result<(), String> {
        match self {
            Normalization::Identity => Ok(()),
            Normalization::Standardize { mean, std } => {
                if mean.len() != features || std.len() != features {
                    return Err(format!(
                        "standardize has {} means and {} stds for {features} features",
                        mean.len(),
                        std.len()
                    ));
                }
                if std.iter().chain(mean).any(|v| !v.is_finite()) || std.iter().any(|&s| s <= 0.0) {
                    return Err("standardize needs finite means and positive finite stds".into());
                }
                Ok(())
            }
            Normalization::Affine { offset, scale } => {
                if offset.is_finite() && scale.is_finite() && *scale > 0.0 {
                    Ok(())
                } else {
                    Err(format!(
                        "affine needs a finite offset and a positive scale, got {offset}, {scale}"
                    ))
                }
            }
        }
    }
}

/// Calibration of one anomaly score on held-out in-distribution data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreCalibration {
    /// `(q, value)` pairs: the q-quantile of the score on the validation split.
    pub quantiles: Vec<(f64, f64)>,
    /// Default outlier threshold (the 5 % false-positive point).
    pub threshold: f64,
}

/// Which anomaly score the model recommends, and each score's calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OodCalibration {
    pub default_score: String,
    pub scores: BTreeMap<String, ScoreCalibration>,
}

/// Everything the `vpfb.*` metadata of a model file says.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    pub format_version: u32,
    /// Shape of one record without the batch axis: `[D]` or `[C, H, W]`.
    pub data_shape: Vec<usize>,
    pub normalization: Normalization,
    pub time_convention: String,
    /// Free-form description of the network (arch, widths, parameter count).
    pub architecture: serde_json::Value,
    /// Free-form description of training (dataset, steps, loss); absent for untrained exports.
    pub training: Option<serde_json::Value>,
    pub ood: Option<OodCalibration>,
    /// The fitted multi-time OOD detector (format version 2).
    pub detector: Option<Detector>,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("metadata values serialise")
}

impl ModelMeta {
    /// Metadata for a freshly built model of the given data shape.
    pub fn new(
        data_shape: Vec<usize>,
        normalization: Normalization,
        architecture: serde_json::Value,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            data_shape,
            normalization,
            time_convention: TIME_CONVENTION.into(),
            architecture,
            training: None,
            ood: None,
            detector: None,
        }
    }

    /// Number of values in one record.
    pub fn record_len(&self) -> usize {
        self.data_shape.iter().product()
    }

    /// `[C, H, W]` when the records are images.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.data_shape.as_slice() {
            &[c, h, w] => Some([c, h, w]),
            _ => None,
        }
    }

    /// The number of records in `values` values, or an error if they are not whole records.
    pub fn records_in(&self, values: usize) -> Result<usize, crate::Error> {
        let d = self.record_len();
        if d == 0 || !values.is_multiple_of(d) {
            return Err(crate::Error::InputSize {
                what: format!("records of {d} values"),
                found: values,
                expected: (values / d.max(1)) * d,
            });
        }
        Ok(values / d)
    }

    /// Raw records (row-major, whole records only, finite values) mapped to model space as the
    /// backends take them.
    pub fn raw_to_model(&self, raw: &[f64]) -> Result<Vec<f32>, crate::Error> {
        self.records_in(raw.len())?;
        self.check_finite(raw, |_| true)?;
        Ok(self
            .normalization
            .to_model(raw, self.record_len())
            .into_iter()
            .map(|v| v as f32)
            .collect())
    }

    /// An error naming the first value of `raw` that is NaN or infinite, among those `relevant`
    /// selects by position within a record (a model's output for such a value is meaningless).
    pub fn check_finite(
        &self,
        raw: &[f64],
        relevant: impl Fn(usize) -> bool,
    ) -> Result<(), crate::Error> {
        let d = self.record_len().max(1);
        match raw
            .iter()
            .enumerate()
            .find(|&(i, v)| relevant(i % d) && !v.is_finite())
        {
            Some((i, v)) => Err(crate::Error::InvalidArgument(format!(
                "record {}, value {}: {v} is not a finite number",
                i / d + 1,
                i % d + 1
            ))),
            None => Ok(()),
        }
    }

    /// The `metadata_props` key/value pairs.
    pub fn to_props(&self) -> Vec<(String, String)> {
        let mut props = vec![
            (KEY_VERSION.into(), self.format_version.to_string()),
            (KEY_SHAPE.into(), json(&self.data_shape)),
            (KEY_NORM.into(), json(&self.normalization)),
            (KEY_TIME.into(), self.time_convention.clone()),
            (KEY_ARCH.into(), json(&self.architecture)),
        ];
        if let Some(t) = &self.training {
            props.push((KEY_TRAINING.into(), json(t)));
        }
        if let Some(o) = &self.ood {
            props.push((KEY_OOD.into(), json(o)));
        }
        if let Some(d) = &self.detector {
            props.push((KEY_DETECTOR.into(), json(d)));
        }
        props
    }

    /// Parses and checks the `vpfb.*` pairs of a file.
    pub fn from_props<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ContractError> {
        let map: BTreeMap<&str, &str> = props.into_iter().collect();
        let get = |k: &str| {
            map.get(k)
                .copied()
                .ok_or_else(|| ContractError::MissingMetadata(k.into()))
        };
        let bad = |k: &str, e: String| ContractError::BadMetadata {
            key: k.into(),
            reason: e,
        };
        let version = get(KEY_VERSION)?;
        let format_version = version
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|v| READABLE_VERSIONS.contains(v))
            .ok_or_else(|| ContractError::UnsupportedVersion {
                found: version.into(),
                supported: FORMAT_VERSION,
            })?;
        let data_shape: Vec<usize> =
            serde_json::from_str(get(KEY_SHAPE)?).map_err(|e| bad(KEY_SHAPE, e.to_string()))?;
        if data_shape.is_empty() || data_shape.contains(&0) {
            return Err(bad(
                KEY_SHAPE,
                format!("{data_shape:?} is not a record shape"),
            ));
        }
        let normalization: Normalization =
            serde_json::from_str(get(KEY_NORM)?).map_err(|e| bad(KEY_NORM, e.to_string()))?;
        let features = if data_shape.len() == 1 {
            data_shape[0]
        } else {
            0
        };
        if let (Normalization::Standardize { .. }, 0) = (&normalization, features) {
            return Err(bad(
                KEY_NORM,
                "standardize applies to vector data only".into(),
            ));
        }
        normalization
            .validate(features)
            .map_err(|e| bad(KEY_NORM, e))?;
        let time_convention = get(KEY_TIME)?.to_string();
        if time_convention != TIME_CONVENTION {
            return Err(bad(
                KEY_TIME,
                format!("`{time_convention}`, expected `{TIME_CONVENTION}`"),
            ));
        }
        let architecture =
            serde_json::from_str(get(KEY_ARCH)?).map_err(|e| bad(KEY_ARCH, e.to_string()))?;
        let training = match map.get(KEY_TRAINING) {
            Some(s) => Some(serde_json::from_str(s).map_err(|e| bad(KEY_TRAINING, e.to_string()))?),
            None => None,
        };
        let ood: Option<OodCalibration> = match map.get(KEY_OOD) {
            Some(s) => Some(serde_json::from_str(s).map_err(|e| bad(KEY_OOD, e.to_string()))?),
            None => None,
        };
        if let Some(o) = &ood {
            let is_detector = o.default_score == crate::ood::detector::DETECTOR;
            if !is_detector && !o.scores.contains_key(&o.default_score) {
                return Err(bad(
                    KEY_OOD,
                    format!("default score `{}` has no calibration", o.default_score),
                ));
            }
        }
        let detector: Option<Detector> = match map.get(KEY_DETECTOR) {
            Some(_) if format_version < 2 => {
                return Err(bad(
                    KEY_DETECTOR,
                    "a detector needs format version 2".into(),
                ))
            }
            Some(s) => {
                let d: Detector =
                    serde_json::from_str(s).map_err(|e| bad(KEY_DETECTOR, e.to_string()))?;
                d.validate().map_err(|e| bad(KEY_DETECTOR, e))?;
                Some(d)
            }
            None => None,
        };
        if let Some(o) = &ood {
            if o.default_score == crate::ood::detector::DETECTOR && detector.is_none() {
                return Err(bad(
                    KEY_OOD,
                    "the default score is the detector, but the file has none".into(),
                ));
            }
        }
        Ok(Self {
            format_version,
            data_shape,
            normalization,
            time_convention,
            architecture,
            training,
            ood,
            detector,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(meta: &ModelMeta) -> Vec<(String, String)> {
        meta.to_props()
    }

    fn parse(p: &[(String, String)]) -> Result<ModelMeta, ContractError> {
        ModelMeta::from_props(p.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    #[test]
    fn metadata_round_trips_through_props() {
        let mut meta = ModelMeta::new(
            vec![3],
            Normalization::Standardize {
                mean: vec![20.0, 1000.0, 0.1],
                std: vec![5.0, 30.0, 1e-3],
            },
            serde_json::json!({"arch": "mlp", "config": {"hidden": 8}}),
        );
        meta.training = Some(serde_json::json!({"steps": 10}));
        let mut scores = BTreeMap::new();
        scores.insert(
            "grad-norm".to_string(),
            ScoreCalibration {
                threshold: 0.1 + 0.2, // not exactly representable in decimal: must survive JSON
                quantiles: vec![(0.5, 1.0 / 3.0)],
            },
        );
        meta.ood = Some(OodCalibration {
            default_score: "grad-norm".into(),
            scores,
        });
        assert_eq!(parse(&props(&meta)).unwrap(), meta);
        let image = ModelMeta::new(
            vec![1, 28, 28],
            Normalization::Affine {
                offset: 127.5,
                scale: 127.5,
            },
            serde_json::json!({"arch": "unet"}),
        );
        let back = parse(&props(&image)).unwrap();
        assert_eq!(back, image);
        assert_eq!(back.image_shape(), Some([1, 28, 28]));
    }

    #[test]
    fn broken_metadata_names_the_key() {
        let meta = ModelMeta::new(vec![2], Normalization::Identity, serde_json::json!({}));
        let with = |key: &str, value: &str| -> Vec<(String, String)> {
            props(&meta)
                .into_iter()
                .map(|(k, v)| {
                    if k == key {
                        (k, value.to_string())
                    } else {
                        (k, v)
                    }
                })
                .collect()
        };
        let without = |key: &str| -> Vec<(String, String)> {
            props(&meta).into_iter().filter(|(k, _)| k != key).collect()
        };
        assert!(matches!(
            parse(&with(KEY_VERSION, "9")),
            Err(ContractError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            parse(&without(KEY_NORM)),
            Err(ContractError::MissingMetadata(k)) if k == KEY_NORM
        ));
        for (key, value) in [
            (KEY_SHAPE, "[0]"),
            (KEY_SHAPE, "[2"),
            (KEY_TIME, "t=0 data"),
            (KEY_NORM, r#"{"kind":"standardize","mean":[0],"std":[1]}"#),
        ] {
            match parse(&with(key, value)) {
                Err(ContractError::BadMetadata { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn normalization_maps_round_trip() {
        let n = Normalization::Standardize {
            mean: vec![1.0, -2.0],
            std: vec![2.0, 0.5],
        };
        let raw = [3.0, -1.0, 1.0, -2.0];
        let model = n.to_model(&raw, 2);
        assert_eq!(model, vec![1.0, 2.0, 0.0, 0.0]);
        assert_eq!(n.to_raw(&model, 2), raw);
        // The log-Jacobian of raw → model: −Σ log std per record.
        assert!((n.log_abs_det_to_model(2) - (-(2.0f64.ln() + 0.5f64.ln()))).abs() < 1e-12);
    }
}
