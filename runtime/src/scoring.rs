//! Scoring raw records with a model: map to model space, then either one evaluation at t = 1 for the
//! single-evaluation scores, or the multi-time statistics for the fitted detector.

use crate::backend::Backend;
use crate::ood::{Detector, Score};
use crate::Error;

/// Anomaly scores for raw records (`values.len() / record_len` of them).
pub fn score_raw(model: &dyn Backend, values: &[f64], score: Score) -> Result<Vec<f64>, Error> {
    Ok(score_raw_many(model, values, &[score])?.remove(0))
}

/// The model's fitted detector, or an error saying the file has none.
pub fn detector(model: &dyn Backend) -> Result<&Detector, Error> {
    model.file().meta.detector.as_ref().ok_or_else(|| {
        Error::Detector(format!(
            "{} has no fitted detector (format version {}); use a single-evaluation score \
             (paper, grad-norm, recon), or fit one with vpfb-train",
            model.file().path.display(),
            model.file().meta.format_version
        ))
    })
}

/// Several anomaly scores of the same records: one vector per score. The single-evaluation scores
/// share one evaluation per record; the detector costs one per time on its grid.
pub fn score_raw_many(
    model: &dyn Backend,
    values: &[f64],
    scores: &[Score],
) -> Result<Vec<Vec<f64>>, Error> {
    let meta = &model.file().meta;
    let d = meta.record_len();
    meta.records_in(values.len())?;
    // Once over all records, so an error counts records from the first.
    meta.check_finite(values, |_| true)?;
    let det = if scores.contains(&Score::Detector) {
        Some(detector(model)?)
    } else {
        None
    };
    let single = scores.iter().any(|s| *s != Score::Detector);
    let mut out = vec![Vec::with_capacity(values.len() / d); scores.len()];
    for chunk in values.chunks(crate::backend::chunk_rows(d) * d) {
        let x = meta.raw_to_model(chunk)?;
        let n = chunk.len() / d;
        let e = if single {
            Some(model.evaluate(&x, &vec![1.0; n])?)
        } else {
            None
        };
        let det_scores = match det {
            Some(det) => Some(det.score(model, &x)?),
            None => None,
        };
        for (o, s) in out.iter_mut().zip(scores) {
            match (s, &e, &det_scores) {
                (Score::Detector, _, Some(ds)) => o.extend(ds),
                (s, Some(e), _) => o.extend(
                    s.compute(&x, &e.psi, &e.velocity, d)
                        .expect("single-evaluation score"),
                ),
                _ => unreachable!("evaluations match the requested scores"),
            }
        }
    }
    Ok(out)
}

/// The threshold for `score`: the user's, else the model's calibration.
pub fn threshold(model: &dyn Backend, score: Score, user: Option<f64>) -> Result<f64, Error> {
    if let Some(t) = user {
        return if t.is_finite() {
            Ok(t)
        } else {
            Err(Error::Score(format!(
                "threshold {t} is not a finite number"
            )))
        };
    }
    let meta = &model.file().meta;
    let found = match score {
        Score::Detector => Some(detector(model)?.calibration.threshold),
        s => meta
            .ood
            .as_ref()
            .and_then(|o| o.scores.get(s.name()))
            .map(|c| c.threshold),
    };
    found.ok_or_else(|| {
        Error::Score(format!(
            "the model has no calibration for the `{score}` score; give a threshold"
        ))
    })
}

/// The score a model recommends: its stated default, else the detector when it has one, else
/// grad-norm.
pub fn default_score(model: &dyn Backend) -> Score {
    let meta = &model.file().meta;
    meta.ood
        .as_ref()
        .and_then(|o| o.default_score.parse().ok())
        .unwrap_or(if meta.detector.is_some() {
            Score::Detector
        } else {
            Score::GradNorm
        })
}
