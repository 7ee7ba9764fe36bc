//! How the training times t are drawn. Uniform is the method's choice; the others move training effort
//! towards the data end of the path (t → 1), where thin structure is resolved.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::T_MIN;

/// The distribution of training times on [T_MIN, 1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TimeSampling {
    /// t ~ U[T_MIN, 1] (runs written before this setting existed load as this).
    #[default]
    Uniform,
    /// t = sigmoid(mean + std·z), z ~ N(0, 1): a bump whose centre moves with `mean`.
    LogitNormal { mean: f64, std: f64 },
    /// t = 1 − v^power, v ~ U(0, 1]: density rising towards t = 1 for power > 1.
    Late { power: f64 },
}

/// A time-sampling spec that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "time sampling `{0}`: expected uniform, logit-normal[:MEAN,STD] or late[:POWER] (e.g. late:2)"
)]
pub struct TimeSamplingParseError(String);

impl TimeSampling {
    /// One time in [T_MIN, 1].
    pub fn draw(&self, rng: &mut impl Rng) -> f32 {
        match *self {
            TimeSampling::Uniform => rng.gen_range(T_MIN as f32..=1.0),
            TimeSampling::LogitNormal { mean, std } => {
                let z: f64 = rng.sample(StandardNormal);
                let t = 1.0 / (1.0 + (-(mean + std * z)).exp());
                (t as f32).clamp(T_MIN as f32, 1.0)
            }
            TimeSampling::Late { power } => {
                let v: f64 = rng.gen_range(f64::EPSILON..=1.0);
                ((1.0 - v.powf(power)) as f32).clamp(T_MIN as f32, 1.0)
            }
        }
    }
}

impl FromStr for TimeSampling {
    type Err = TimeSamplingParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimeSamplingParseError(s.to_string());
        let (name, args) = s.split_once(':').unwrap_or((s, ""));
        let nums: Vec<f64> = if args.is_empty() {
            vec![]
        } else {
            args.split(',')
                .map(|v| v.trim().parse::<f64>().map_err(|_| bad()))
                .collect::<Result<_, _>>()?
        };
        if nums.iter().any(|v| !v.is_finite()) {
            return Err(bad());
        }
        match (name.trim(), nums.as_slice()) {
            ("uniform", []) => Ok(TimeSampling::Uniform),
            ("logit-normal", []) => Ok(TimeSampling::LogitNormal {
                mean: 0.0,
                std: 1.0,
            }),
            ("logit-normal", &[mean, std]) if std > 0.0 => {
                Ok(TimeSampling::LogitNormal { mean, std })
            }
            ("late", []) => Ok(TimeSampling::Late { power: 2.0 }),
            ("late", &[power]) if power > 0.0 => Ok(TimeSampling::Late { power }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for TimeSampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSampling::Uniform => write!(f, "uniform"),
            TimeSampling::LogitNormal { mean, std } => write!(f, "logit-normal:{mean},{std}"),
            TimeSampling::Late { power } => write!(f, "late:{power}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn mean_of(s: TimeSampling) -> f64 {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 20_000;
        (0..n)
            .map(|_| {
                let t = s.draw(&mut rng) as f64;
                assert!((T_MIN..=1.0).contains(&t), "{s}: {t}");
                t
            })
            .sum::<f64>()
            / n as f64
    }

    #[test]
    fn specs_round_trip_and_bad_ones_are_refused() {
        for text in ["uniform", "logit-normal:0.5,1.2", "late:3"] {
            let s: TimeSampling = text.parse().unwrap();
            assert_eq!(s.to_string().parse::<TimeSampling>().unwrap(), s);
        }
        for bad in [
            "",
            "late:0",
            "late:-1",
            "logit-normal:1",
            "logit-normal:0,0",
            "beta",
            "late:x",
        ] {
            assert!(bad.parse::<TimeSampling>().is_err(), "{bad}");
        }
    }

    #[test]
    fn late_and_shifted_logit_normal_move_mass_towards_the_data() {
        assert!((mean_of(TimeSampling::Uniform) - 0.5).abs() < 0.01);
        // E[1 − v^k] = k / (k + 1).
        assert!((mean_of(TimeSampling::Late { power: 2.0 }) - 2.0 / 3.0).abs() < 0.01);
        let shifted = TimeSampling::LogitNormal {
            mean: 1.0,
            std: 1.0,
        };
        assert!(mean_of(shifted) > 0.65);
    }
}
