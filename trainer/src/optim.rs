//! The optimiser of docs/method.md §4: Adam with linear warm-up, per-element clipping of the gradient to
//! ±(c·√v̂ + 0.1) using the previous step's bias-corrected second moment, and an EMA of the weights with
//! decay min(max_decay, (1 + n)/(10 + n)). After the warm-up the rate is held or decayed to zero over the
//! run ([`LrSchedule`]).

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

/// How the learning rate moves after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Held at the peak (runs written before schedules existed load as this).
    #[default]
    Constant,
    /// Half a cosine from the peak to zero at the run's last step.
    Cosine,
    /// A straight line from the peak to zero at the run's last step.
    Linear,
}

/// Optimiser settings (recorded in the run config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Linear warm-up length in steps (0 = none).
    pub warmup: usize,
    /// Clip multiple c; negative disables clipping.
    pub grad_clip: f64,
    /// Upper bound of the EMA decay.
    pub ema_decay: f64,
    /// The decay after the warm-up; it reaches zero at the run's total step count.
    #[serde(default)]
    pub schedule: LrSchedule,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup: 5000,
            grad_clip: 3.0,
            ema_decay: 0.9999,
            schedule: LrSchedule::Constant,
        }
    }
}

/// Adam state plus the EMA copy of the parameters, keyed by parameter name.
pub struct Optimizer {
    pub cfg: OptimConfig,
    params: Vec<(String, Var)>,
    /// First moments.
    pub m: HashMap<String, Tensor>,
    /// Second moments.
    pub v: HashMap<String, Tensor>,
    /// EMA weights.
    pub ema: HashMap<String, Tensor>,
    /// Updates applied so far.
    pub step: usize,
    /// The run's total update count, which a decaying schedule spans.
    pub total_steps: usize,
}

impl Optimizer {
    /// Fresh state for `params` (sorted by name so the update order is fixed): zero moments, EMA = weights.
    /// `total_steps` is the run's length, which a decaying schedule spans.
    pub fn new(
        cfg: OptimConfig,
        mut params: Vec<(String, Var)>,
        total_steps: usize,
    ) -> candle_core::Result<Self> {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut m = HashMap::new();
        let mut v = HashMap::new();
        let mut ema = HashMap::new();
        for (name, p) in &params {
            m.insert(name.clone(), p.as_tensor().zeros_like()?);
            v.insert(name.clone(), p.as_tensor().zeros_like()?);
            ema.insert(name.clone(), p.as_tensor().detach().copy()?);
        }
        Ok(Self {
            cfg,
            params,
            m,
            v,
            ema,
            step: 0,
            total_steps,
        })
    }

    /// The learning rate used for update number `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        let warm = if self.cfg.warmup == 0 {
            1.0
        } else {
            ((step + 1) as f64 / self.cfg.warmup as f64).min(1.0)
        };
        // Progress through the decay: 0 for the first update after the warm-up, (n − 1)/n for the last
        // of the n updates after it, so every update moves the weights.
        let span = self.total_steps.saturating_sub(self.cfg.warmup).max(1) as f64;
        let done = (step.saturating_sub(self.cfg.warmup) as f64 / span).min(1.0);
        let decay = match self.cfg.schedule {
            LrSchedule::Constant => 1.0,
            LrSchedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
            LrSchedule::Linear => 1.0 - done,
        };
        self.cfg.lr * warm * decay
    }

    /// The EMA decay used after update number `n` (1-based count of updates).
    pub fn ema_decay_at(&self, n: usize) -> f64 {
        self.cfg.ema_decay.min((1.0 + n as f64) / (10.0 + n as f64))
    }

    /// Applies one update from `grads` (by parameter name); parameters without a gradient are left
    /// unchanged.
    pub fn step(&mut self, grads: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let lr = self.lr_at(self.step);
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let t = (self.step + 1) as i32;
        let decay = self.ema_decay_at(self.step + 1);
        for (name, p) in &self.params {
            let Some(g) = grads.get(name) else {
                continue;
            };
            // Optimiser arithmetic must not join the autograd graph: a tracked EMA or moment would keep
            // every previous step's graph alive.
            let mut g = g.detach();
            let v_prev = &self.v[name];
            if self.cfg.grad_clip >= 0.0 && self.step >= 1 {
                let vhat = (v_prev / (1.0 - b2.powi(self.step as i32)))?;
                let bound = ((vhat.sqrt()? * self.cfg.grad_clip)? + 0.1)?;
                g = g.minimum(&bound)?.maximum(&bound.neg()?)?;
            }
            let m = ((&self.m[name] * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((v_prev * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let mhat = (&m / (1.0 - b1.powi(t)))?;
            let vhat = (&v / (1.0 - b2.powi(t)))?;
            let update = (mhat / (vhat.sqrt()? + self.cfg.eps)?)?;
            let new_p = (p.as_tensor().detach() - (update * lr)?)?;
            p.set(&new_p)?;
            let ema = ((&self.ema[name] * decay)? + (&new_p * (1.0 - decay))?)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
            self.ema.insert(name.clone(), ema);
        }
        self.step += 1;
        Ok(())
    }

    /// The trained parameters (not the EMA).
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(schedule: LrSchedule) -> Vec<f64> {
        let cfg = OptimConfig {
            lr: 1.0,
            warmup: 10,
            schedule,
            ..OptimConfig::default()
        };
        let opt = Optimizer::new(cfg, vec![], 110).unwrap();
        (0..110).map(|s| opt.lr_at(s)).collect()
    }

    #[test]
    fn schedules_share_the_warm_up_then_hold_or_decay_towards_zero() {
        let (constant, cosine, linear) = (
            rates(LrSchedule::Constant),
            rates(LrSchedule::Cosine),
            rates(LrSchedule::Linear),
        );
        assert_eq!(constant[..10], cosine[..10]);
        assert_eq!(constant[..10], linear[..10]);
        assert!((constant[4] - 0.5).abs() < 1e-12 && constant[9] == 1.0);
        assert!(constant[10..].iter().all(|&r| r == 1.0));
        // 100 updates after the warm-up: the first at the peak, the last one step short of zero.
        assert!((linear[10] - 1.0).abs() < 1e-12 && (cosine[10] - 1.0).abs() < 1e-12);
        assert!((linear[109] - 0.01).abs() < 1e-12, "{}", linear[109]);
        assert!(cosine[109] > 0.0 && cosine[109] < 1e-3, "{}", cosine[109]);
        assert!((cosine[60] - 0.5).abs() < 1e-12, "half way: {}", cosine[60]);
        for w in linear[10..].windows(2).chain(cosine[10..].windows(2)) {
            assert!(w[1] < w[0]);
        }
    }
}
