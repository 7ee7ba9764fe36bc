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
