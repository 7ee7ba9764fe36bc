//! vpfb's own evaluator agrees with tract on every shipped model and every output selection:
//! the contract outputs, the Hessian-vector product and the in-graph detector score, over batch
//! sizes that span several of its runs (the last one short) and with two threads. Needs the
//! `tract` feature (on in workspace builds: the trainer enables it).
#![cfg(feature = "tract")]

use vpfb_runtime::{open, Backend, BackendKind, LoadOptions, ModelFile};

fn opened(file: &ModelFile, backend: BackendKind, threads: usize) -> Box<dyn Backend> {
    open(file.clone(), &LoadOptions { backend, threads }).unwrap()
}

/// Largest absolute difference relative to the largest magnitude of `want`.
fn rel(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs() as f64));
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs() as f64))
        / scale
}

/// Deterministic inputs: `n` records of `d` values in about [-2.5, 2.5], times in (0, 1).
fn batch(n: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = (0..n * d).map(|i| (i as f32 * 0.618).sin() * 2.5).collect();
    let t = (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect();
    let probe = (0..n * d).map(|i| (i as f32 * 1.7).cos()).collect();
    (x, t, probe)
}

#[test]
fn native_and_tract_agree_on_the_shipped_models() {
    for (name, sizes) in [
        ("moons", &[1usize, 7, 300, 1000][..]),
        ("checkerboard", &[5, 513][..]),
        ("fashion-mnist", &[1, 6][..]),
    ] {
        let file = ModelFile::load(vpfb_testkit::shipped_model(&format!("{name}.onnx"))).unwrap();
        let d = file.meta.record_len();
        let tract = opened(&file, BackendKind::Tract, 1);
        for threads in [1, 2] {
            let native = opened(&file, BackendKind::Native, threads);
            for &n in sizes {
                let (x, t, probe) = batch(n, d);
                let (a, b) = (
                    native.evaluate(&x, &t).unwrap(),
                    tract.evaluate(&x, &t).unwrap(),
                );
                for (what, e) in [
                    ("psi", rel(&a.psi, &b.psi)),
                    ("velocity", rel(&a.velocity, &b.velocity)),
                    ("dpsi_dt", rel(&a.dpsi_dt, &b.dpsi_dt)),
                ] {
                    assert!(
                        e <= 1e-4,
                        "{name}, {n} records, {threads} threads: {what} {e:.2e}"
                    );
                }
                // The flows' velocity-only selection leaves out what only ψ and ∂ψ/∂t need; the
                // native evaluator computes the rest with the same operations in the same order.
                assert_eq!(
                    native.evaluate_velocity(&x, &t).unwrap(),
                    a.velocity,
                    "{name}, {n} records, {threads} threads: native velocity alone"
                );
                let e = rel(&tract.evaluate_velocity(&x, &t).unwrap(), &b.velocity);
                assert!(
                    e <= 1e-5,
                    "{name}, {n} records: tract velocity alone {e:.2e}"
                );
                let e = rel(
                    &native.hvp(&x, &t, &probe).unwrap(),
                    &tract.hvp(&x, &t, &probe).unwrap(),
                );
                // A second derivative cancels more in float32 than the first.
                assert!(e <= 1e-3, "{name}, {n} records: hvp {e:.2e}");
                let (a, b) = (
                    native.anomaly_score_output(&x).unwrap(),
                    tract.anomaly_score_output(&x).unwrap(),
                );
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
                    .fold(0.0f32, f32::max);
                // Logs of small residual norms amplify float32 differences (as between tract and
                // ONNX Runtime, tests/ort_parity.rs): 1e-2 nats relative to 1 + |score|.
                eprintln!("{name}, {n} records: anomaly_score {worst:.2e}");
                assert!(
                    worst <= 1e-2,
                    "{name}, {n} records: anomaly_score {worst:.2e}"
                );
            }
        }
    }
}
