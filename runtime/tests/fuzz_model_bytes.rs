//! Corrupted model files never panic the loader or the evaluation: seeded mutations of a shipped
//! model's bytes (bit flips, byte overwrites, truncations, spliced runs) each load and run, or fail
//! with an error that names the origin — thousands of cases, the same ones every run.

use rand::{rngs::StdRng, Rng, SeedableRng};
use vpfb_runtime::{Error, LoadOptions, Model};
use vpfb_testkit::shipped_model;

const CASES: usize = 3000;

/// One seeded mutation of `bytes`.
fn mutate(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.gen_range(0..4) {
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
        }
        2 => b.truncate(rng.gen_range(0..b.len())),
        _ => {
            // Copy a run of bytes over another place (protobuf length prefixes and tags move).
            let len = rng.gen_range(1..64.min(b.len()));
            let (from, to) = (
                rng.gen_range(0..b.len() - len),
                rng.gen_range(0..b.len() - len),
            );
            let run = b[from..from + len].to_vec();
            b[to..to + len].copy_from_slice(&run);
        }
    }
    b
}

#[test]
fn mutated_model_bytes_load_or_fail_cleanly() {
    let bytes = std::fs::read(shipped_model("moons.onnx")).unwrap();
    let mut rng = StdRng::seed_from_u64(0xf022);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..CASES {
        let mutated = mutate(&bytes, &mut rng);
        let name = format!("case-{case}.onnx");
        match Model::from_bytes(&mutated, &name, &LoadOptions::default()) {
            Ok(model) => {
                loaded += 1;
                // A file that loads must also evaluate or fail cleanly (NaN weights are allowed
                // to give NaN scores; they must not panic).
                if let Err(e) = model.scores(&[0.5, -0.25], &[vpfb_runtime::Score::GradNorm]) {
                    assert!(!e.to_string().is_empty());
                }
            }
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                assert!(
                    msg.contains(&name) || matches!(e, Error::Backend(_)),
                    "case {case}: the error does not name the file: {msg}"
                );
            }
        }
    }
    eprintln!("{CASES} mutations: {loaded} loaded, {refused} refused");
    // Both outcomes occur: mutations inside weights load, structural ones are refused.
    assert!(
        loaded > 0 && refused > 0,
        "{loaded} loaded, {refused} refused"
    );
}
