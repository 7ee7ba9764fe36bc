//! Scoring raw records with a model: map to model space, one evaluation at t = 1, the chosen score.

use crate::backend::Backend;
use crate::ood::Score;
use crate::ModelError;

/// Anomaly scores for raw records (`values.len() / record_len` of them).
pub fn score_raw(
    model: &dyn Backend,
    values: &[f64],
    score: Score,
) -> Result<Vec<f64>, ModelError> {
    Ok(score_raw_many(model, values, &[score])?.remove(0))
}

/// Several anomaly scores from the same single evaluation per record: one vector per score.
pub fn score_raw_many(
    model: &dyn Backend,
    values: &[f64],
    scores: &[Score],
) -> Result<Vec<Vec<f64>>, ModelError> {
    let meta = &model.file().meta;
    let d = meta.record_len();
    if d == 0 || values.len() % d != 0 {
        return Err(ModelError::InputSize {
            what: format!("records of {d} values"),
            found: values.len(),
            expected: (values.len() / d.max(1)) * d,
        });
    }
    let mut out = vec![Vec::with_capacity(values.len() / d); scores.len()];
    for chunk in values.chunks(crate::backend::chunk_rows(d) * d) {
        let x: Vec<f32> = meta
            .normalization
            .to_model(chunk, d)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let n = chunk.len() / d;
        let e = model.evaluate(&x, &vec![1.0; n])?;
        for (o, s) in out.iter_mut().zip(scores) {
            o.extend(s.compute(&x, &e.psi, &e.velocity, d));
        }
    }
    Ok(out)
}

/// The threshold for `score`: the user's, else the model's calibration.
pub fn threshold(model: &dyn Backend, score: Score, user: Option<f64>) -> Result<f64, String> {
    if let Some(t) = user {
        return if t.is_finite() {
            Ok(t)
        } else {
            Err(format!("--threshold {t} is not a finite number"))
        };
    }
    model
        .file()
        .meta
        .ood
        .as_ref()
        .and_then(|o| o.scores.get(score.name()))
        .map(|c| c.threshold)
        .ok_or_else(|| {
            format!("the model has no calibration for the `{score}` score; pass --threshold")
        })
}

/// The score a model recommends (grad-norm when it names none).
pub fn default_score(model: &dyn Backend) -> Score {
    model
        .file()
        .meta
        .ood
        .as_ref()
        .and_then(|o| o.default_score.parse().ok())
        .unwrap_or(Score::GradNorm)
}
