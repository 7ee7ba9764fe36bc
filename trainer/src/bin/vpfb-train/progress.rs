//! Progress output: a live bar on a terminal, plain periodic lines otherwise (logs, CI, pipes).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use vpfb_trainer::train::{Progress, StepLog};

pub struct Reporter {
    bar: Option<ProgressBar>,
    start: Instant,
    start_step: usize,
    every: usize,
    /// When the previous step ended, and every step's duration since: the median is a per-step time
    /// that ignores the slow first steps and checkpoint writes.
    last: Instant,
    step_secs: Vec<f64>,
}

impl Reporter {
    pub fn new(start_step: usize, total: usize) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
                )
                .expect("valid template"),
            );
            b.set_position(start_step as u64);
            b
        });
        Self {
            bar,
            start: Instant::now(),
            start_step,
            every: (total / 50).clamp(1, 1000),
            last: Instant::now(),
            step_secs: Vec::new(),
        }
    }

    /// Steps per second since this reporter started.
    pub fn rate(&self, step: usize) -> f64 {
        (step - self.start_step) as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    /// The median duration of this reporter's steps, in seconds (None before the first step).
    pub fn median_step_s(&self) -> Option<f64> {
        let mut s = self.step_secs.clone();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied()
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

fn describe(l: &StepLog, rate: f64) -> String {
    let [total, corr, norm, temb, source] = l.terms;
    format!("loss {total:+.4} (corr {corr:+.3} norm {norm:.3} temb {temb:.3} source {source:+.3}) lr {:.1e} {rate:.1} steps/s", l.lr)
}

impl Progress for Reporter {
    fn on_step(&mut self, l: &StepLog, total: usize) {
        let now = Instant::now();
        self.step_secs
            .push(now.duration_since(self.last).as_secs_f64());
        self.last = now;
        let rate = self.rate(l.step);
        match &self.bar {
            Some(b) => {
                b.set_position(l.step as u64);
                if l.step.is_multiple_of(10) || l.step == total {
                    b.set_message(describe(l, rate));
                }
            }
            None => {
                if l.step.is_multiple_of(self.every) || l.step == total {
                    println!("step {}/{total} {}", l.step, describe(l, rate));
                }
            }
        }
    }
}
