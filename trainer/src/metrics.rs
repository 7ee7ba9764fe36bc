//! Sample-quality metrics.

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Sliced 2-Wasserstein distance between two equal-size samples (row-major, `dim` columns), averaged
/// over `projections` random directions (fixed seed, so the same inputs give the same number).
pub fn sliced_wasserstein(a: &[f64], b: &[f64], dim: usize, projections: usize) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "sliced Wasserstein needs equal sample sizes"
    );
    let n = a.len() / dim;
    let mut rng = StdRng::seed_from_u64(0x5d5d);
    let mut total = 0.0;
    let (mut pa, mut pb) = (vec![0.0; n], vec![0.0; n]);
    for _ in 0..projections {
        let mut dir: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        dir.iter_mut().for_each(|v| *v /= norm);
        for i in 0..n {
            pa[i] = (0..dim).map(|d| a[i * dim + d] * dir[d]).sum();
            pb[i] = (0..dim).map(|d| b[i * dim + d] * dir[d]).sum();
        }
        pa.sort_by(f64::total_cmp);
        pb.sort_by(f64::total_cmp);
        total += pa
            .iter()
            .zip(&pb)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            / n as f64;
    }
    (total / projections as f64).sqrt()
}

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
    fn auroc_of_perfect_inverted_and_tied_scores() {
        let labels = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(auroc(&[0.5; 4], &labels), Some(0.5));
        assert_eq!(auroc(&[0.5; 4], &[true; 4]), None);
    }

    #[test]
    fn sliced_wasserstein_sees_a_shift_and_not_a_permutation() {
        let a: Vec<f64> = (0..200).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = a.chunks(2).rev().flatten().copied().collect();
        assert!(sliced_wasserstein(&a, &b, 2, 64) < 1e-12);
        let shifted: Vec<f64> = a.iter().map(|v| v + 1.0).collect();
        let d = sliced_wasserstein(&a, &shifted, 2, 256);
        // A shift by (1, 1) projects to ⟨(1,1), θ⟩; E[(θ₁+θ₂)²] = 1 over uniform directions.
        assert!((d - 1.0).abs() < 0.15, "{d}");
    }
}
