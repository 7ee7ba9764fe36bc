//! The usual 2-D benchmark distributions (as in the FFJORD and scikit-learn toy sets).

use std::f64::consts::PI;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// A built-in 2-D generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Toy2d {
    Moons,
    Circles,
    EightGaussians,
    Checkerboard,
    Spirals,
    Pinwheel,
}

fn n01(rng: &mut impl Rng) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

impl Toy2d {
    pub const ALL: [Toy2d; 6] = [
        Toy2d::Moons,
        Toy2d::Circles,
        Toy2d::EightGaussians,
        Toy2d::Checkerboard,
        Toy2d::Spirals,
        Toy2d::Pinwheel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Toy2d::Moons => "moons",
            Toy2d::Circles => "circles",
            Toy2d::EightGaussians => "8gaussians",
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::Spirals => "spirals",
            Toy2d::Pinwheel => "pinwheel",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// `n` points, row-major `[n, 2]`.
    pub fn sample(self, n: usize, rng: &mut impl Rng) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let (x, y) = self.point(rng);
            out.push(x);
            out.push(y);
        }
        out
    }

    fn point(self, rng: &mut impl Rng) -> (f64, f64) {
        match self {
            Toy2d::Moons => {
                // Two interleaved half circles, noise 0.1 (scikit-learn's make_moons).
                let a = rng.gen_range(0.0..PI);
                let (x, y) = if rng.gen_bool(0.5) {
                    (a.cos(), a.sin())
                } else {
                    (1.0 - a.cos(), 0.5 - a.sin())
                };
                (x + 0.1 * n01(rng), y + 0.1 * n01(rng))
            }
            Toy2d::Circles => {
                // Two concentric circles, radii 1 and 0.5, noise 0.05.
                let a = rng.gen_range(0.0..2.0 * PI);
                let r = if rng.gen_bool(0.5) { 1.0 } else { 0.5 };
                (r * a.cos() + 0.05 * n01(rng), r * a.sin() + 0.05 * n01(rng))
            }
            Toy2d::EightGaussians => {
                let k = rng.gen_range(0..8) as f64;
                let a = k * PI / 4.0;
                let s = 0.5;
                (
                    (4.0 * a.cos() + s * n01(rng)) / 2f64.sqrt(),
                    (4.0 * a.sin() + s * n01(rng)) / 2f64.sqrt(),
                )
            }
            Toy2d::Checkerboard => {
                let x1: f64 = rng.gen_range(-2.0..2.0);
                let x2 = rng.gen_range(0.0..1.0) - 2.0 * rng.gen_range(0..2) as f64
                    + (x1.floor().rem_euclid(2.0));
                (2.0 * x1, 2.0 * x2)
            }
            Toy2d::Spirals => {
                let n = rng.gen_range(0.0f64..1.0).sqrt() * 540.0 * (2.0 * PI) / 360.0;
                let (mut x, mut y) = (
                    -n.cos() * n + rng.gen_range(0.0..0.5),
                    n.sin() * n + rng.gen_range(0.0..0.5),
                );
                if rng.gen_bool(0.5) {
                    x = -x;
                    y = -y;
                }
                (x / 3.0 + 0.1 * n01(rng), y / 3.0 + 0.1 * n01(rng))
            }
            Toy2d::Pinwheel => {
                let (radial, tangential, classes, rate) = (0.3, 0.1, 5, 0.25);
                let c = rng.gen_range(0..classes) as f64;
                let f0 = n01(rng) * radial + 1.0;
                let f1 = n01(rng) * tangential;
                let angle = c * 2.0 * PI / classes as f64 + rate * f0.exp();
                let (s, co) = angle.sin_cos();
                (2.0 * (f0 * co - f1 * s), 2.0 * (f0 * s + f1 * co))
            }
        }
    }
}
