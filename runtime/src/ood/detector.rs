//! The multi-time OOD detector: flow statistics at a grid of times (see [`super::statistics`]),
//! mapped to normal scores per statistic ([`Marginal`]), and a density over that vector fitted on
//! in-distribution validation records. The anomaly score is the negative log-density.
//!
//! Fitting uses in-distribution data only. The records are split in two seeded halves; on each
//! half the marginals and every candidate density (a Ledoit–Wolf Gaussian; mixtures of 2..=k full
//! Gaussians where each half has at least 5·k·d records) are fitted and the other half's mean
//! log-density is measured. The candidate with the best held-out log-likelihood wins and is refitted
//! on all records; the threshold and p-values come from the out-of-fold scores of the winner.

use serde::{Deserialize, Serialize};

use super::density::{Density, Gaussian};
use super::marginal::Marginal;
use super::quantile;
use super::statistics::{self, all_statistics, Anchor, StatId, StatTable};
use crate::backend::Backend;
use crate::contract::ScoreCalibration;
use crate::Error;

/// The name the detector's score goes by (`vpfb score --score detector`).
pub const DETECTOR: &str = "detector";
/// Quantile levels of the out-of-fold validation scores a detector stores.
pub const DETECTOR_LEVELS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999,
];

/// How a detector was chosen: the rule, the held-out log-likelihood of every candidate and the
/// winner. Informational; scoring does not read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub rule: String,
    pub records: usize,
    pub candidates: Vec<(String, f64)>,
    pub chosen: String,
}

impl Selection {
    /// `gaussian -9.556, gmm(2) -7.015, …`: every candidate with its held-out log-likelihood.
    pub fn candidates_summary(&self) -> String {
        self.candidates
            .iter()
            .map(|(c, ll)| format!("{c} {ll:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A fitted detector, as stored under `vpfb.detector` in a model file (format version 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    /// Path times t₁…t_K; each record costs K model evaluations.
    pub times: Vec<f64>,
    pub anchor: Anchor,
    /// The statistics the density is over, e.g. `log_noise2@0.9` (see [`StatId`]).
    pub statistics: Vec<String>,
    /// One normal-score map per statistic.
    pub marginals: Vec<Marginal>,
    pub density: Density,
    /// Quantiles of out-of-fold validation scores and the 5 % false-positive threshold.
    pub calibration: ScoreCalibration,
    pub selection: Selection,
}

/// Settings of [`Detector::fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    pub times: Vec<f64>,
    pub anchor: Anchor,
    /// Largest mixture tried (1 = the Gaussian only).
    pub max_components: usize,
    /// Seeds the fold split and the mixtures' starts.
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            times: vec![0.3, 0.5, 0.7, 0.9, 1.0],
            anchor: Anchor::Noise { seed: 0x5eed },
            max_components: 3,
            seed: 0,
        }
    }
}

fn err(msg: String) -> Error {
    Error::Detector(msg)
}

/// Normal scores of the columns `cols` of `table` under `marginals`, row-major.
fn normal_scores(
    table: &StatTable,
    cols: &[usize],
    marginals: &[Marginal],
    rows: &[usize],
) -> Vec<f64> {
    let w = table.names.len();
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        for (m, &c) in marginals.iter().zip(cols) {
            out.push(m.score(table.values[r * w + c]));
        }
    }
    out
}

/// Fits marginals for `cols` on `rows`.
fn fit_marginals(table: &StatTable, cols: &[usize], rows: &[usize]) -> Option<Vec<Marginal>> {
    let w = table.names.len();
    cols.iter()
        .map(|&c| {
            Marginal::fit(
                &rows
                    .iter()
                    .map(|&r| table.values[r * w + c])
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// Fits a density of `kind` components (1 = Ledoit–Wolf Gaussian) to normal scores `z`.
fn fit_density(z: &[f64], d: usize, kind: usize, seed: u64) -> Option<Density> {
    if kind == 1 {
        Gaussian::fit_shrunk(z, d).map(|(g, _)| Density::Gaussian(g))
    } else {
        Density::fit_gmm(z, d, kind, seed, 200)
    }
}

fn label(kind: usize) -> String {
    if kind == 1 {
        "gaussian".into()
    } else {
        format!("gmm({kind})")
    }
}

impl Detector {
    /// Fits a detector on model-space in-distribution records `x` evaluated by `model`.
    pub fn fit(model: &dyn Backend, x: &[f32], opts: &FitOptions) -> Result<Self, Error> {
        check_times(&opts.times).map_err(err)?;
        let table = statistics::compute(model, x, &opts.times, &opts.anchor)?;
        Self::fit_table(&table, opts)
    }

    /// Fits a detector to a table of statistics computed with `opts.times` and `opts.anchor`.
    pub fn fit_table(table: &StatTable, opts: &FitOptions) -> Result<Self, Error> {
        let n = table.rows();
        if n < 20 {
            return Err(err(format!(
                "{n} validation records are too few to fit a detector (need at least 20)"
            )));
        }
        if table.values.iter().any(|v| !v.is_finite()) {
            return Err(err(
                "a flow statistic is not finite on the validation records".into(),
            ));
        }
        let all: Vec<usize> = (0..n).collect();
        // Statistics that are constant on the validation records carry nothing: drop them.
        // The final normal-score maps (fitted on all records) also tell which statistics vary.
        let (cols, marginals): (Vec<usize>, Vec<Marginal>) = (0..table.names.len())
            .filter_map(|c| fit_marginals(table, &[c], &all).map(|mut m| (c, m.remove(0))))
            .unzip();
        let d = cols.len();
        if d == 0 {
            return Err(err(
                "every flow statistic is constant on the validation records".into(),
            ));
        }
        let folds = split_halves(n, opts.seed);
        let mut kinds = vec![1];
        kinds.extend((2..=opts.max_components).filter(|&k| n / 2 >= 5 * k * d));
        let mut candidates = Vec::new();
        let mut out_of_fold: Vec<Vec<f64>> = Vec::new();
        for &kind in &kinds {
            let mut ll = 0.0;
            let mut oof = vec![0.0; n];
            let mut ok = true;
            for (fit_rows, held_rows) in [(&folds.0, &folds.1), (&folds.1, &folds.0)] {
                let fitted = fit_marginals(table, &cols, fit_rows).and_then(|m| {
                    let z = normal_scores(table, &cols, &m, fit_rows);
                    fit_density(&z, d, kind, opts.seed).map(|dens| (m, dens))
                });
                let Some((m, dens)) = fitted else {
                    ok = false;
                    break;
                };
                let z = normal_scores(table, &cols, &m, held_rows);
                for (row, &r) in z.chunks(d).zip(held_rows.iter()) {
                    let l = dens.log_density(row);
                    ll += l / n as f64;
                    oof[r] = -l;
                }
            }
            if ok && ll.is_finite() {
                candidates.push((label(kind), ll));
                out_of_fold.push(oof);
            }
        }
        let best = (0..candidates.len())
            .max_by(|&a, &b| candidates[a].1.total_cmp(&candidates[b].1))
            .ok_or_else(|| err("no candidate density could be fitted".into()))?;
        let kind = kinds
            .iter()
            .copied()
            .find(|&k| label(k) == candidates[best].0)
            .expect("candidate labels come from kinds");
        let z = normal_scores(table, &cols, &marginals, &all);
        let density = fit_density(&z, d, kind, opts.seed).ok_or_else(|| {
            err(format!(
                "refitting the {} on all records failed",
                label(kind)
            ))
        })?;
        let mut oof = out_of_fold.swap_remove(best);
        oof.sort_by(f64::total_cmp);
        let calibration = ScoreCalibration {
            quantiles: DETECTOR_LEVELS
                .iter()
                .map(|&q| (q, quantile(&oof, q)))
                .collect(),
            threshold: quantile(&oof, 1.0 - super::DEFAULT_FPR),
        };
        Ok(Self {
            times: opts.times.clone(),
            anchor: opts.anchor,
            statistics: cols.iter().map(|&c| table.names[c].to_string()).collect(),
            marginals,
            density,
            calibration,
            selection: Selection {
                rule: "best 2-fold held-out log-likelihood of the normal scores".into(),
                records: n,
                chosen: candidates[best].0.clone(),
                candidates,
            },
        })
    }

    /// Checks a detector read from a file.
    pub fn validate(&self) -> Result<(), String> {
        check_times(&self.times)?;
        let ids = self.stat_ids()?;
        if ids.is_empty() || self.marginals.len() != ids.len() {
            return Err(format!(
                "{} statistics with {} marginals",
                ids.len(),
                self.marginals.len()
            ));
        }
        let available = all_statistics(&self.times);
        if let Some(id) = ids.iter().find(|id| !available.contains(id)) {
            return Err(format!(
                "statistic `{id}` is not on the time grid {:?}",
                self.times
            ));
        }
        self.marginals.iter().try_for_each(Marginal::validate)?;
        self.density.validate(ids.len())?;
        if !self.calibration.threshold.is_finite() {
            return Err("the detector threshold is not finite".into());
        }
        Ok(())
    }

    fn stat_ids(&self) -> Result<Vec<StatId>, String> {
        self.statistics.iter().map(|s| s.parse()).collect()
    }

    /// Model evaluations per scored record.
    pub fn evaluations_per_record(&self) -> usize {
        self.times.len()
    }

    /// Anomaly scores (negative log-density) of records whose statistics are in `table`.
    pub fn score_table(&self, table: &StatTable) -> Result<Vec<f64>, Error> {
        let ids = self.stat_ids().map_err(err)?;
        let cols: Vec<usize> = ids
            .iter()
            .map(|id| {
                table
                    .names
                    .iter()
                    .position(|n| n == id)
                    .ok_or_else(|| err(format!("the statistics table lacks `{id}`")))
            })
            .collect::<Result<_, _>>()?;
        let rows: Vec<usize> = (0..table.rows()).collect();
        let z = normal_scores(table, &cols, &self.marginals, &rows);
        Ok(z.chunks(cols.len())
            .map(|r| -self.density.log_density(r))
            .collect())
    }

    /// The flow statistics of model-space records `x` on this detector's grid.
    pub fn statistics(&self, model: &dyn Backend, x: &[f32]) -> Result<StatTable, Error> {
        statistics::compute(model, x, &self.times, &self.anchor)
    }

    /// Anomaly scores of model-space records `x` (higher = more anomalous).
    pub fn score(&self, model: &dyn Backend, x: &[f32]) -> Result<Vec<f64>, Error> {
        self.score_table(&self.statistics(model, x)?)
    }

    /// The share of in-distribution validation records that score at least `score` (interpolated
    /// between the stored quantiles, so resolved between 0.001 and 0.99).
    pub fn p_value(&self, score: f64) -> f64 {
        let q = &self.calibration.quantiles;
        if q.is_empty() || score.is_nan() {
            return f64::NAN;
        }
        if score <= q[0].1 {
            return 1.0 - q[0].0;
        }
        for w in q.windows(2) {
            let ((l0, v0), (l1, v1)) = (w[0], w[1]);
            if score <= v1 {
                let f = if v1 > v0 {
                    (score - v0) / (v1 - v0)
                } else {
                    1.0
                };
                return 1.0 - (l0 + f * (l1 - l0));
            }
        }
        1.0 - q[q.len() - 1].0
    }
}

fn check_times(times: &[f64]) -> Result<(), String> {
    if times.is_empty() || times.iter().any(|t| !(0.0 < *t && *t <= 1.0)) {
        return Err(format!("detector times must be in (0, 1], got {times:?}"));
    }
    if times.windows(2).any(|w| w[1] <= w[0]) {
        return Err(format!("detector times must increase, got {times:?}"));
    }
    Ok(())
}

/// A seeded split of `0..n` into two halves.
fn split_halves(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0xf01d));
    let (a, b) = idx.split_at(n / 2);
    (a.to_vec(), b.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    /// A table of two correlated statistics for `n` records, the second skewed.
    fn table(n: usize, shift: f64, seed: u64) -> StatTable {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut values = Vec::new();
        for _ in 0..n {
            let a: f64 = StandardNormal.sample(&mut rng);
            let b: f64 = StandardNormal.sample(&mut rng);
            values.push(a + shift);
            values.push((0.8 * a + 0.6 * b).exp());
        }
        StatTable {
            names: vec!["psi@0.5".parse().unwrap(), "log_grad2@0.5".parse().unwrap()],
            values,
        }
    }

    #[test]
    fn detector_separates_shifted_records_and_calibrates_its_threshold() {
        let opts = FitOptions {
            times: vec![0.5],
            ..FitOptions::default()
        };
        let det = Detector::fit_table(&table(4000, 0.0, 1), &opts).unwrap();
        det.validate().unwrap();
        assert_eq!(det.selection.records, 4000);
        let fresh = det.score_table(&table(4000, 0.0, 2)).unwrap();
        let flagged = fresh
            .iter()
            .filter(|&&s| s > det.calibration.threshold)
            .count();
        let fpr = flagged as f64 / 4000.0;
        assert!((0.03..0.07).contains(&fpr), "false-positive rate {fpr}");
        let shifted = det.score_table(&table(4000, 3.0, 3)).unwrap();
        let labels: Vec<bool> = (0..8000).map(|i| i >= 4000).collect();
        let all: Vec<f64> = fresh.iter().chain(&shifted).copied().collect();
        let auc = super::super::auroc(&all, &labels).unwrap();
        assert!(auc > 0.95, "AUROC {auc}");
        // p-values fall as scores rise.
        assert!(det.p_value(det.calibration.threshold) - 0.05 < 1e-9);
        assert!(det.p_value(-1e9) > det.p_value(1e9));
    }

    #[test]
    fn serialised_detector_scores_identically() {
        let det = Detector::fit_table(
            &table(500, 0.0, 4),
            &FitOptions {
                times: vec![0.5],
                ..Default::default()
            },
        )
        .unwrap();
        let back: Detector = serde_json::from_str(&serde_json::to_string(&det).unwrap()).unwrap();
        assert_eq!(back, det);
        let t = table(50, 1.0, 5);
        assert_eq!(back.score_table(&t).unwrap(), det.score_table(&t).unwrap());
    }

    #[test]
    fn too_few_or_constant_records_are_refused() {
        let opts = FitOptions {
            times: vec![0.5],
            ..Default::default()
        };
        assert!(Detector::fit_table(&table(10, 0.0, 6), &opts).is_err());
        let flat = StatTable {
            names: vec!["psi@0.5".parse().unwrap()],
            values: vec![1.0; 100],
        };
        assert!(Detector::fit_table(&flat, &opts).is_err());
    }
}
