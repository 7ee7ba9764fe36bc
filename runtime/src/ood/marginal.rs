//! Per-statistic normal scores (a Gaussian copula): each statistic is mapped through its empirical
//! distribution on in-distribution data to a standard-normal score, piecewise-linearly between
//! quantile knots and linearly beyond the outermost knots, so far-away records keep growing scores
//! instead of saturating. The flow statistics are skewed and heavy-tailed (ψ and squared norms are
//! positive), and a density over normal scores separates out-of-distribution records much better
//! than one over standardised values.

use serde::{Deserialize, Serialize};

/// The most quantile knots a marginal keeps.
pub const MAX_KNOTS: usize = 65;

/// One statistic's map to normal scores: strictly increasing `knots` (values of the statistic) and
/// the normal scores `z` they map to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marginal {
    pub knots: Vec<f64>,
    pub z: Vec<f64>,
}

/// Φ⁻¹(p), the standard normal quantile, for p in (0, 1) (Acklam's rational approximation refined
/// by one Halley step; relative error far below what the knots need).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step on Φ(x) − p.
    let e = 0.5 * libm_erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// erfc(x) to about 1e-7 relative (Numerical Recipes' Chebyshev fit), enough for one Halley step.
fn libm_erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

impl Marginal {
    /// The map fitted to `values` (any order); `None` when the statistic is (nearly) constant.
    pub fn fit(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let k = v.len().min(MAX_KNOTS);
        let mut knots = Vec::with_capacity(k);
        let mut z = Vec::with_capacity(k);
        for i in 0..k {
            let level = (i as f64 + 0.5) / k as f64;
            let q = super::quantile(&v, level);
            // Ties (repeated values) would give zero-width segments: keep the first knot of a run.
            if knots
                .last()
                .is_some_and(|&last: &f64| !(q > last + 1e-12 * (1.0 + last.abs())))
            {
                continue;
            }
            knots.push(q);
            z.push(normal_quantile(level));
        }
        (knots.len() >= 2).then_some(Self { knots, z })
    }

    /// The normal score of `x`.
    pub fn score(&self, x: f64) -> f64 {
        let (k, z) = (&self.knots, &self.z);
        let n = k.len();
        // Index of the segment [k[i], k[i+1]] that holds x, the end segments extended outward.
        let i = k.partition_point(|&q| q <= x).saturating_sub(1).min(n - 2);
        z[i] + (x - k[i]) * (z[i + 1] - z[i]) / (k[i + 1] - k[i])
    }

    /// Checks that knots and scores are finite, paired and strictly increasing.
    pub fn validate(&self) -> Result<(), String> {
        let inc = |v: &[f64]| v.windows(2).all(|w| w[1] > w[0]) && v.iter().all(|x| x.is_finite());
        if self.knots.len() < 2 || self.knots.len() != self.z.len() {
            return Err(format!(
                "a marginal needs at least 2 knots with one score each, got {} and {}",
                self.knots.len(),
                self.z.len()
            ));
        }
        if !inc(&self.knots) || !inc(&self.z) {
            return Err("marginal knots and scores must be finite and strictly increasing".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantile_matches_known_values() {
        for (p, want) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.025, -1.959_963_984_540_054),
            (0.001, -3.090_232_306_167_813_6),
            (0.841_344_746_068_543, 1.0),
        ] {
            assert!(
                (normal_quantile(p) - want).abs() < 1e-6,
                "Φ⁻¹({p}) = {}",
                normal_quantile(p)
            );
        }
    }

    #[test]
    fn marginal_is_monotone_and_extrapolates() {
        // An exponential-like skewed sample.
        let values: Vec<f64> = (1..=1000)
            .map(|i| -(1.0 - i as f64 / 1001.0).ln())
            .collect();
        let m = Marginal::fit(&values).unwrap();
        m.validate().unwrap();
        assert_eq!(m.knots.len(), MAX_KNOTS);
        let median = -(0.5f64).ln();
        assert!(m.score(median).abs() < 0.05, "median → {}", m.score(median));
        let mut last = f64::NEG_INFINITY;
        for i in 0..200 {
            let s = m.score(-1.0 + i as f64 * 0.1);
            assert!(s >= last);
            last = s;
        }
        // Beyond the largest knot the score keeps growing.
        let top = *m.knots.last().unwrap();
        assert!(m.score(top + 10.0) > m.score(top) + 1.0);
        assert!(
            Marginal::fit(&[3.0; 50]).is_none(),
            "a constant statistic has no marginal"
        );
    }
}
