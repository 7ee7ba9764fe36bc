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

/// How many rows of `samples` lie farther from the centre (per-column median) of `truth` than three
/// times the farthest row of `truth`: flow samples that escaped the data, which dominate a sliced
/// Wasserstein distance however few they are.
pub fn escaped(samples: &[f64], truth: &[f64], dim: usize) -> usize {
    let centre: Vec<f64> = (0..dim)
        .map(|d| {
            let mut col: Vec<f64> = truth.iter().skip(d).step_by(dim).copied().collect();
            col.sort_by(f64::total_cmp);
            col[col.len() / 2]
        })
        .collect();
    let dist = |row: &[f64]| -> f64 {
        row.iter()
            .zip(&centre)
            .map(|(v, c)| (v - c).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let reach = truth.chunks(dim).map(dist).fold(0.0, f64::max);
    samples
        .chunks(dim)
        .filter(|row| !(dist(row) <= 3.0 * reach))
        .count()
}

pub use vpfb_runtime::ood::auroc;

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
    fn escaped_counts_only_rows_far_outside_the_truth() {
        let truth: Vec<f64> = (0..100).flat_map(|i| [i as f64 / 100.0, 1.0]).collect();
        // Median centre (0.5, 1); the farthest true row is 0.5 away, so the bound is 1.5.
        let samples = [0.2, 1.0, 1.9, 1.0, 2.1, 1.0, -500.0, 3.0, f64::NAN, 0.0];
        assert_eq!(escaped(&samples, &truth, 2), 3);
        assert_eq!(escaped(&truth, &truth, 2), 0);
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
