//! Out-of-distribution scores, in model space; higher always means more anomalous.
//!
//! Two families: the single-evaluation scores at the data end (t = 1) that every model file
//! supports, and the fitted multi-time [`detector::Detector`] that files of format version 2 carry
//! (docs/ood.md).

use std::fmt;
use std::str::FromStr;

pub mod density;
pub mod detector;
mod linalg;
pub mod marginal;
pub mod statistics;

pub use detector::{Detector, FitOptions};

/// An anomaly score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Score {
    /// The fitted multi-time detector stored in the model file: −log-density of flow statistics.
    Detector,
    /// −S(x) with S(x) = 4ψ(x, 1) − ‖x‖² (the paper's log-density surrogate).
    Paper,
    /// ‖∇ₓψ(x, 1)‖: the flow's speed at the data end.
    GradNorm,
    /// +ψ(x, 1) = ½‖x − U(x, 1)‖²: the autoencoder's reconstruction error.
    Recon,
}

impl Score {
    /// The scores of one evaluation at t = 1 (every model file has them).
    pub const SINGLE: [Score; 3] = [Score::Paper, Score::GradNorm, Score::Recon];
    /// Every score, the detector first.
    pub const ALL: [Score; 4] = [Score::Detector, Score::Paper, Score::GradNorm, Score::Recon];

    pub fn name(self) -> &'static str {
        match self {
            Score::Detector => detector::DETECTOR,
            Score::Paper => "paper",
            Score::GradNorm => "grad-norm",
            Score::Recon => "recon",
        }
    }

    /// Single-evaluation scores for `psi` (`[n]`) and `velocity` (`[n, d]`) evaluated at model-space
    /// records `x` and t = 1; `None` for the detector, which needs several evaluations.
    pub fn compute(self, x: &[f32], psi: &[f32], velocity: &[f32], d: usize) -> Option<Vec<f64>> {
        if self == Score::Detector {
            return None;
        }
        Some(
            (0..psi.len())
                .map(|i| {
                    let row = i * d..(i + 1) * d;
                    match self {
                        Score::Detector => unreachable!("handled above"),
                        Score::Paper => {
                            let norm2: f64 = x[row].iter().map(|&v| (v as f64).powi(2)).sum();
                            norm2 - 4.0 * psi[i] as f64
                        }
                        Score::GradNorm => velocity[row]
                            .iter()
                            .map(|&v| (v as f64).powi(2))
                            .sum::<f64>()
                            .sqrt(),
                        Score::Recon => psi[i] as f64,
                    }
                })
                .collect(),
        )
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Score {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                crate::Error::InvalidArgument(format!(
                    "unknown score `{s}` (expected detector, paper, grad-norm or recon)"
                ))
            })
    }
}

/// Linear-interpolated quantile of sorted data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// The quantile levels stored in a model's calibration.
pub const CALIBRATION_LEVELS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99];
/// The default threshold: 5 % of in-distribution records flagged.
pub const DEFAULT_FPR: f64 = 0.05;

/// Area under the ROC curve of `scores` (higher = more anomalous) for `labels` (true = anomaly), with
/// ties counted half.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    let (pos, neg) = labels.iter().fold(
        (0usize, 0usize),
        |(p, n), &l| if l { (p + 1, n) } else { (p, n + 1) },
    );
    if pos == 0 || neg == 0 {
        return None;
    }
    // Sum of positive ranks with average ranks for ties (Mann–Whitney U).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| labels[idx[k]]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos as f64 * neg as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert_eq!(quantile(&sorted, 1.0), 8.0);
        // Position 0.5 · 3 = 1.5: halfway between 2 and 4.
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        // Out-of-range levels clamp; empty data has no quantile.
        assert_eq!(quantile(&sorted, 1.5), 8.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn auroc_counts_ties_half_and_needs_both_classes() {
        assert_eq!(auroc(&[0.1, 0.9], &[false, true]), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.1], &[false, true]), Some(0.0));
        assert_eq!(auroc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.5, 0.6], &[true, true]), None);
    }

    #[test]
    fn score_names_parse_back() {
        for s in Score::ALL {
            assert_eq!(s.name().parse::<Score>().unwrap(), s);
        }
        assert!("likelihood".parse::<Score>().is_err());
    }
}
