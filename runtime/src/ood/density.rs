//! Densities over a vector of standardised statistics: a Ledoit–Wolf shrinkage Gaussian and a small
//! full-covariance Gaussian mixture fitted by EM. Both are stored in the model file as means,
//! lower Cholesky factors of the covariances, their log-determinants and (mixtures) weights.

// Index loops here walk several arrays (or a matrix's rows and columns) in step.
#![allow(clippy::needless_range_loop)]

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::linalg::{weighted_moments, Square};

const LN_2PI: f64 = 1.837_877_066_409_345_3;
/// Ridge added to every mixture component's covariance (the statistics are standardised, so this is
/// 0.1 % of a unit variance): keeps EM away from singular components.
pub const GMM_RIDGE: f64 = 1e-3;

/// A multivariate normal: mean, lower Cholesky factor `L` of the covariance `L·Lᵀ` (row-major) and
/// `log det(L·Lᵀ)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub chol: Vec<f64>,
    pub log_det: f64,
}

/// One weighted Gaussian of a mixture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub weight: f64,
    #[serde(flatten)]
    pub gaussian: Gaussian,
}

/// A fitted density.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Density {
    /// One Gaussian with Ledoit–Wolf shrinkage of the covariance toward a scaled identity.
    Gaussian(Gaussian),
    /// A Gaussian mixture with full covariances.
    Gmm { components: Vec<Component> },
}

impl Gaussian {
    fn from_cov(mean: Vec<f64>, cov: &Square) -> Option<Self> {
        let l = cov.cholesky()?;
        Some(Self {
            log_det: l.cholesky_log_det(),
            mean,
            chol: l.a,
        })
    }

    fn factor(&self) -> Square {
        Square {
            n: self.mean.len(),
            a: self.chol.clone(),
        }
    }

    /// A Gaussian fitted to `rows` (`d` values each) with the Ledoit–Wolf covariance estimate: the
    /// sample covariance S shrunk toward μ·I (μ = tr S / d) by the weight that minimises the expected
    /// squared error of the estimate (Ledoit and Wolf, 2004). Returns the shrinkage weight too.
    pub fn fit_shrunk(rows: &[f64], d: usize) -> Option<(Self, f64)> {
        let n = rows.len() / d;
        if n < 2 || d == 0 {
            return None;
        }
        let (mean, s) = weighted_moments(rows, d, &vec![1.0; n]);
        let mu = s.trace() / d as f64;
        // δ = ‖S − μI‖²_F / d; β = (1/n²)·Σₖ ‖cₖcₖᵀ − S‖²_F / d, capped at δ.
        let mut delta = 0.0;
        for i in 0..d {
            for j in 0..d {
                let target = if i == j { mu } else { 0.0 };
                delta += (s.at(i, j) - target).powi(2);
            }
        }
        delta /= d as f64;
        let mut beta = 0.0;
        let mut c = vec![0.0; d];
        for r in rows.chunks(d) {
            for ((ci, v), m) in c.iter_mut().zip(r).zip(&mean) {
                *ci = v - m;
            }
            for i in 0..d {
                for j in 0..d {
                    beta += (c[i] * c[j] - s.at(i, j)).powi(2);
                }
            }
        }
        beta /= (n * n) as f64 * d as f64;
        let shrinkage = if delta > 0.0 {
            beta.min(delta) / delta
        } else {
            1.0
        };
        let mut cov = s.clone();
        for i in 0..d {
            for j in 0..d {
                let target = if i == j { mu } else { 0.0 };
                *cov.at_mut(i, j) = (1.0 - shrinkage) * s.at(i, j) + shrinkage * target;
            }
        }
        Some((Self::from_cov(mean, &cov)?, shrinkage))
    }

    /// log N(v; mean, L·Lᵀ).
    pub fn log_density(&self, v: &[f64]) -> f64 {
        let c: Vec<f64> = v.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        let maha = self.factor().lower_solve_norm2(&c);
        -0.5 * (self.mean.len() as f64 * LN_2PI + self.log_det + maha)
    }

    /// Checks dimensions, a positive diagonal and the stored log-determinant.
    fn validate(&self, d: usize) -> Result<(), String> {
        if self.mean.len() != d || self.chol.len() != d * d {
            return Err(format!(
                "a Gaussian has {} means and {} Cholesky entries for {d} statistics",
                self.mean.len(),
                self.chol.len()
            ));
        }
        let l = self.factor();
        if (0..d).any(|i| !(l.at(i, i) > 0.0))
            || self.chol.iter().chain(&self.mean).any(|v| !v.is_finite())
        {
            return Err("a Cholesky factor needs a positive diagonal and finite entries".into());
        }
        let log_det = l.cholesky_log_det();
        if (log_det - self.log_det).abs() > 1e-6 * (1.0 + log_det.abs()) {
            return Err(format!(
                "stored log-determinant {} does not match its Cholesky factor ({log_det})",
                self.log_det
            ));
        }
        Ok(())
    }
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl Density {
    /// Number of statistics the density is over.
    pub fn dim(&self) -> usize {
        match self {
            Density::Gaussian(g) => g.mean.len(),
            Density::Gmm { components } => components.first().map_or(0, |c| c.gaussian.mean.len()),
        }
    }

    /// The log-density at `v`.
    pub fn log_density(&self, v: &[f64]) -> f64 {
        match self {
            Density::Gaussian(g) => g.log_density(v),
            Density::Gmm { components } => {
                let terms: Vec<f64> = components
                    .iter()
                    .map(|c| c.weight.ln() + c.gaussian.log_density(v))
                    .collect();
                log_sum_exp(&terms)
            }
        }
    }

    /// A short description: `gaussian` or `gmm(k)`.
    pub fn label(&self) -> String {
        match self {
            Density::Gaussian(_) => "gaussian".into(),
            Density::Gmm { components } => format!("gmm({})", components.len()),
        }
    }

    /// Checks the stored parameters for `d` statistics.
    pub fn validate(&self, d: usize) -> Result<(), String> {
        match self {
            Density::Gaussian(g) => g.validate(d),
            Density::Gmm { components } => {
                if components.is_empty() {
                    return Err("a mixture needs at least one component".into());
                }
                let total: f64 = components.iter().map(|c| c.weight).sum();
                if components.iter().any(|c| !(c.weight > 0.0)) || (total - 1.0).abs() > 1e-6 {
                    return Err(format!(
                        "mixture weights must be positive and sum to 1 (sum {total})"
                    ));
                }
                components.iter().try_for_each(|c| c.gaussian.validate(d))
            }
        }
    }

    /// A `k`-component full-covariance mixture fitted to `rows` by EM (k-means++ start, seeded), with
    /// [`GMM_RIDGE`] on every covariance; `None` if a component collapses.
    pub fn fit_gmm(rows: &[f64], d: usize, k: usize, seed: u64, iterations: usize) -> Option<Self> {
        let n = rows.len() / d;
        if k == 0 || n < 2 * k {
            return None;
        }
        let row = |i: usize| &rows[i * d..(i + 1) * d];
        let dist2 =
            |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
        // k-means++ centres, then a few Lloyd steps for the starting responsibilities.
        let mut rng = StdRng::seed_from_u64(seed);
        let mut centres: Vec<Vec<f64>> = vec![row(rng.gen_range(0..n)).to_vec()];
        while centres.len() < k {
            let w: Vec<f64> = (0..n)
                .map(|i| {
                    centres
                        .iter()
                        .map(|c| dist2(row(i), c))
                        .fold(f64::INFINITY, f64::min)
                })
                .collect();
            let total: f64 = w.iter().sum();
            let mut u = rng.gen::<f64>() * total;
            let mut pick = n - 1;
            for (i, wi) in w.iter().enumerate() {
                if u < *wi {
                    pick = i;
                    break;
                }
                u -= wi;
            }
            centres.push(row(pick).to_vec());
        }
        let mut assign = vec![0usize; n];
        for _ in 0..10 {
            for (i, a) in assign.iter_mut().enumerate() {
                *a = (0..k)
                    .min_by(|&p, &q| {
                        dist2(row(i), &centres[p]).total_cmp(&dist2(row(i), &centres[q]))
                    })
                    .expect("k > 0");
            }
            for (c, centre) in centres.iter_mut().enumerate() {
                let members: Vec<usize> = (0..n).filter(|&i| assign[i] == c).collect();
                if !members.is_empty() {
                    for (j, v) in centre.iter_mut().enumerate() {
                        *v = members.iter().map(|&i| row(i)[j]).sum::<f64>() / members.len() as f64;
                    }
                }
            }
        }
        let mut resp: Vec<Vec<f64>> = (0..k)
            .map(|c| {
                assign
                    .iter()
                    .map(|&a| if a == c { 1.0 } else { 1e-6 })
                    .collect()
            })
            .collect();
        let mut components = Vec::with_capacity(k);
        let mut last = f64::NEG_INFINITY;
        for _ in 0..iterations.max(1) {
            // M step.
            components.clear();
            for r in &resp {
                let mass: f64 = r.iter().sum();
                let (mean, mut cov) = weighted_moments(rows, d, r);
                for i in 0..d {
                    *cov.at_mut(i, i) += GMM_RIDGE;
                }
                components.push(Component {
                    weight: mass / n as f64,
                    gaussian: Gaussian::from_cov(mean, &cov)?,
                });
            }
            let total: f64 = components.iter().map(|c| c.weight).sum();
            components.iter_mut().for_each(|c| c.weight /= total);
            // E step.
            let mut ll = 0.0;
            for i in 0..n {
                let terms: Vec<f64> = components
                    .iter()
                    .map(|c| c.weight.ln() + c.gaussian.log_density(row(i)))
                    .collect();
                let lse = log_sum_exp(&terms);
                ll += lse;
                for (c, t) in terms.iter().enumerate() {
                    resp[c][i] = (t - lse).exp();
                }
            }
            ll /= n as f64;
            if (ll - last).abs() < 1e-6 * (1.0 + ll.abs()) {
                break;
            }
            last = ll;
        }
        if resp.iter().any(|r| r.iter().sum::<f64>() < 2.0) {
            return None;
        }
        Some(Density::Gmm { components })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    /// `n` draws of N(mean, A·Aᵀ) for a lower-triangular `a`.
    fn draws(n: usize, mean: &[f64], a: &[f64], rng: &mut StdRng) -> Vec<f64> {
        let d = mean.len();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
            for i in 0..d {
                out.push(mean[i] + (0..=i).map(|k| a[i * d + k] * z[k]).sum::<f64>());
            }
        }
        out
    }

    #[test]
    fn shrunk_gaussian_recovers_a_well_sampled_normal() {
        let mut rng = StdRng::seed_from_u64(1);
        let mean = [1.0, -2.0, 0.5];
        let a = [1.0, 0.0, 0.0, 0.8, 0.6, 0.0, -0.3, 0.2, 0.5];
        let rows = draws(20_000, &mean, &a, &mut rng);
        let (g, shrinkage) = Gaussian::fit_shrunk(&rows, 3).unwrap();
        assert!(
            shrinkage < 0.01,
            "many samples, little shrinkage: {shrinkage}"
        );
        for (m, want) in g.mean.iter().zip(mean) {
            assert!((m - want).abs() < 0.03, "mean {m} vs {want}");
        }
        // Covariance A·Aᵀ has determinant (1·0.6·0.5)² = 0.09.
        assert!(
            (g.log_det - 0.09f64.ln()).abs() < 0.05,
            "log det {}",
            g.log_det
        );
        g.validate(3).unwrap();
    }

    #[test]
    fn shrinkage_grows_when_samples_are_few() {
        let mut rng = StdRng::seed_from_u64(2);
        let d = 20;
        let mut eye = vec![0.0; d * d];
        (0..d).for_each(|i| eye[i * d + i] = 1.0);
        let rows = draws(25, &vec![0.0; d], &eye, &mut rng);
        let (_, shrinkage) = Gaussian::fit_shrunk(&rows, d).unwrap();
        assert!(shrinkage > 0.3, "25 samples in 20 dimensions: {shrinkage}");
    }

    #[test]
    fn gmm_recovers_two_separated_clusters() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = [0.5, 0.0, 0.1, 0.3];
        let first = draws(3000, &[-3.0, 0.0], &a, &mut rng);
        let second = draws(1000, &[3.0, 2.0], &a, &mut rng);
        let rows: Vec<f64> = first.iter().chain(&second).copied().collect();
        let Some(Density::Gmm { components }) = Density::fit_gmm(&rows, 2, 2, 7, 200) else {
            panic!("fit failed")
        };
        let mut comps = components.clone();
        comps.sort_by(|p, q| p.gaussian.mean[0].total_cmp(&q.gaussian.mean[0]));
        assert!(
            (comps[0].weight - 0.75).abs() < 1e-3,
            "{:?}",
            comps[0].weight
        );
        // The clusters are far apart, so EM must find each one's own sample mean and covariance
        // (plus the ridge) almost exactly.
        for (c, sample) in comps.iter().zip([&first, &second]) {
            let n = sample.len() / 2;
            let (mean, mut cov) = weighted_moments(sample, 2, &vec![1.0; n]);
            (0..2).for_each(|i| *cov.at_mut(i, i) += GMM_RIDGE);
            let want = cov.cholesky().unwrap().cholesky_log_det();
            assert!(
                (c.gaussian.log_det - want).abs() < 1e-3,
                "{} vs {want}",
                c.gaussian.log_det
            );
            for (m, w) in c.gaussian.mean.iter().zip(&mean) {
                assert!((m - w).abs() < 1e-3, "mean {m} vs sample mean {w}");
            }
        }
        let density = Density::Gmm { components };
        density.validate(2).unwrap();
        // The density is higher at a cluster centre than between the clusters.
        assert!(density.log_density(&[-3.0, 0.0]) > density.log_density(&[0.0, 1.0]) + 5.0);
    }

    #[test]
    fn validation_rejects_inconsistent_parameters() {
        let g = Gaussian {
            mean: vec![0.0, 0.0],
            chol: vec![1.0, 0.0, 0.0, 1.0],
            log_det: 0.0,
        };
        assert!(Density::Gaussian(g.clone()).validate(2).is_ok());
        assert!(Density::Gaussian(g.clone()).validate(3).is_err());
        let bad_det = Gaussian {
            log_det: 1.0,
            ..g.clone()
        };
        assert!(Density::Gaussian(bad_det).validate(2).is_err());
        let heavy = Density::Gmm {
            components: vec![Component {
                weight: 0.7,
                gaussian: g,
            }],
        };
        assert!(heavy.validate(2).is_err());
    }
}
