//! Per-record imputation on the shipped moons model: known values come back bit-exact, every
//! missing one is filled with a finite value, the known values steer the fill, and a record is
//! completed the same way alone (a stream) as in a batch.

use vpfb_runtime::{Conditioning, Error, FlowOptions, ImputeOptions, Model, Solver};
use vpfb_testkit::shipped_model;

fn moons() -> Model {
    Model::load(shipped_model("moons.onnx")).unwrap()
}

fn options(conditioning: Conditioning) -> ImputeOptions {
    ImputeOptions {
        flow: FlowOptions {
            solver: Solver::Rk4 { steps: 20 },
            seed: 11,
        },
        conditioning,
        ..ImputeOptions::default()
    }
}

const NAN: f64 = f64::NAN;

#[test]
fn each_record_gets_its_own_gaps_and_known_values_stay_bit_exact() {
    let model = moons();
    let records = [
        0.123456789012345,
        NAN, // second value missing
        NAN,
        -0.3217, // first value missing
        1.5,
        0.25, // complete: passes through
        NAN,
        NAN, // everything missing: a plain sample
    ];
    let mut plain_samples = vec![];
    for conditioning in [
        Conditioning::Path,
        Conditioning::Masked,
        Conditioning::Langevin,
    ] {
        let done = model.impute(&records, &options(conditioning)).unwrap();
        let v = &done.records.values;
        plain_samples.push(v[6..8].to_vec());
        for (got, given) in v.iter().zip(&records) {
            if given.is_nan() {
                assert!(got.is_finite(), "{conditioning}: {v:?}");
            } else {
                assert_eq!(got.to_bits(), given.to_bits(), "{conditioning}: {v:?}");
            }
        }
        // The plain sample lands on the moons (the model's own outlier threshold).
        let report = model.score(&v[6..8]).unwrap();
        assert!(!report.outliers[0], "{conditioning}: {:?}", &v[6..8]);
    }
    // With nothing known, every scheme gives the same plain flow sample.
    assert!(
        plain_samples.iter().all(|s| s == &plain_samples[0]),
        "{plain_samples:?}"
    );
    // Nothing missing: no flow run at all.
    let done = model
        .impute(&records[4..6], &options(Conditioning::Path))
        .unwrap();
    assert_eq!(done.records.values, records[4..6]);
    assert_eq!(done.stats.nfe, 0);
}

#[test]
fn the_known_value_steers_the_filled_one() {
    // On the moons, x₀ = 0 has y near 0.5 or 1 and x₀ = 1 has y near 0 or −0.5 (the model's own
    // samples give mean y 0.48 and 0.00 there): the mean filled y must tell the two apart, which an
    // unconditional draw (mean y ≈ 0.25 either way) cannot, and Langevin, which keeps correcting
    // against the known value, must tell them apart best.
    let model = moons();
    let n = 200;
    let mut records = Vec::new();
    for x0 in [0.0, 1.0] {
        for _ in 0..n {
            records.extend([x0, NAN]);
        }
    }
    let gap = |conditioning| {
        let mut opts = options(conditioning);
        opts.flow.solver = Solver::Rk4 { steps: 100 };
        let done = model.impute(&records, &opts).unwrap();
        let y: Vec<f64> = done.records.values.chunks(2).map(|r| r[1]).collect();
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        mean(&y[..n]) - mean(&y[n..])
    };
    let (path, masked, langevin) = (
        gap(Conditioning::Path),
        gap(Conditioning::Masked),
        gap(Conditioning::Langevin),
    );
    assert!(path > 0.08 && masked > 0.08, "path {path}, masked {masked}");
    assert!(
        langevin > 0.25 && langevin > path.max(masked),
        "langevin {langevin}, path {path}, masked {masked}"
    );
}

#[test]
fn a_record_alone_with_seed_plus_index_matches_the_batch() {
    let model = moons();
    let records = [0.5, NAN, NAN, 0.1, -0.7, NAN];
    let mut opts = options(Conditioning::Path);
    opts.resample = 2;
    opts.draws = 3;
    let batch = model.impute(&records, &opts).unwrap();
    for i in 0..3 {
        let mut one = opts;
        one.flow.seed = opts.flow.seed + i as u64;
        let alone = model.impute(&records[2 * i..2 * i + 2], &one).unwrap();
        for (a, b) in alone
            .records
            .values
            .iter()
            .zip(&batch.records.values[2 * i..])
        {
            assert!(
                (a - b).abs() < 1e-4,
                "record {i}: {a} alone, {b} in the batch"
            );
        }
    }
}

#[test]
fn bad_masks_options_and_known_values_are_refused() {
    let model = moons();
    let opts = options(Conditioning::Path);
    let invalid = |r: vpfb_runtime::Result<_>| matches!(r, Err(Error::InvalidArgument(_)));
    assert!(invalid(model.fill(&[0.0, 1.0], &[true], &opts)));
    assert!(invalid(model.inpaint(
        &[0.0, 1.0],
        &[true, false, true],
        &opts
    )));
    assert!(invalid(model.impute(&[f64::INFINITY, NAN], &opts)));
    assert!(invalid(
        model.impute(&[0.0, NAN], &ImputeOptions { draws: 0, ..opts })
    ));
    assert!(invalid(model.impute(
        &[0.0, NAN],
        &ImputeOptions {
            restart: 1.0,
            ..opts
        }
    )));
    assert!(matches!(
        model.impute(&[0.0, NAN, 1.0], &opts),
        Err(Error::InputSize { .. })
    ));
    assert!("path".parse::<Conditioning>().is_ok());
    assert!(matches!(
        "replace".parse::<Conditioning>(),
        Err(Error::InvalidArgument(_))
    ));
}
