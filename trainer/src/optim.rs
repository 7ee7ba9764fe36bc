//! The optimiser of docs/method.md §4: Adam with linear warm-up, per-element clipping of the gradient to
//! ±(c·√v̂ + 0.1) using the previous step's bias-corrected second moment, and an EMA of the weights with
//! decay min(max_decay, (1 + n)/(10 + n)).

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Tensor, Var};
use serde::{Deserialize, Serialize};

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
}

impl Optimizer {
    /// Fresh state for `params` (sorted by name so the update order is fixed): zero moments, EMA = weights.
    pub fn new(cfg: OptimConfig, mut params: Vec<(String, Var)>) -> candle_core::Result<Self> {
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
        })
    }

    /// The learning rate used for update number `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if self.cfg.warmup == 0 {
            self.cfg.lr
        } else {
            self.cfg.lr * ((step + 1) as f64 / self.cfg.warmup as f64).min(1.0)
        }
    }

    /// The EMA decay used after update number `n` (1-based count of updates).
    pub fn ema_decay_at(&self, n: usize) -> f64 {
        self.cfg.ema_decay.min((1.0 + n as f64) / (10.0 + n as f64))
    }

    /// Applies one update from `grads`; parameters without a gradient are left unchanged.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let lr = self.lr_at(self.step);
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let t = (self.step + 1) as i32;
        let decay = self.ema_decay_at(self.step + 1);
        for (name, p) in &self.params {
            let Some(g) = grads.get(p.as_tensor()) else {
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
