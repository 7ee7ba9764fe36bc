//! The shipped moons model's exact log-likelihood is a density: it integrates to 1 over the plane.

use std::path::PathBuf;

use vpfb_runtime::likelihood::{log_likelihood_raw, Trace};
use vpfb_runtime::NativeModel;

#[test]
fn moons_density_integrates_to_one() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/moons.onnx");
    let model = NativeModel::load(&path).unwrap();
    // [-2.5, 3.5] × [-2, 2.5] in raw units holds the two moons (noise 0.1) with a wide margin.
    let (nx, ny, h) = (121, 91, 0.05);
    let grid: Vec<f64> = (0..ny)
        .flat_map(|j| (0..nx).flat_map(move |i| [-2.5 + i as f64 * h, -2.0 + j as f64 * h]))
        .collect();
    let ll = log_likelihood_raw(&model, &grid, 20, Trace::Exact).unwrap();
    let mass: f64 = ll.log_likelihood.iter().map(|l| l.exp() * h * h).sum();
    assert!(
        (mass - 1.0).abs() < 0.05,
        "the density integrates to {mass}"
    );
}
