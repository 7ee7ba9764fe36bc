//! The `Model` façade on the shipped models: what an embedding program relies on.

use vpfb_runtime::solver::{integrate, VelocityField, T_END, T_START};
use vpfb_runtime::{
    BackendKind, Composition, Error, FlowOptions, ImputeOptions, LikelihoodOptions, LoadOptions,
    Model, Score, ScoreOptions, Solver,
};
use vpfb_testkit::shipped_model;

fn moons() -> Model {
    Model::load(shipped_model("moons.onnx")).unwrap()
}

const FAST: FlowOptions = FlowOptions {
    solver: Solver::Rk4 { steps: 10 },
    seed: 3,
};

#[test]
fn bytes_and_path_load_the_same_model_and_threads_do_not_change_results() {
    let bytes = std::fs::read(shipped_model("moons.onnx")).unwrap();
    let two = LoadOptions {
        backend: BackendKind::Native,
        threads: 2,
    };
    let from_bytes = Model::from_bytes(&bytes, "embedded moons", &two).unwrap();
    assert_eq!(from_bytes.meta(), moons().meta());
    let a = moons().sample(300, &FAST).unwrap();
    let b = from_bytes.sample(300, &FAST).unwrap();
    assert_eq!(a.records.rows(), 300);
    for (x, y) in a.records.values.iter().zip(&b.records.values) {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
    }
    // A name given to bytes appears in their errors.
    let err = Model::from_bytes(&bytes[..100], "embedded moons", &two)
        .err()
        .unwrap();
    assert!(err.to_string().contains("embedded moons"), "{err}");
}

#[test]
fn score_options_pick_the_score_and_threshold() {
    let model = moons();
    let records = [0.0, 0.5, 1.0, -0.4, 5.0, 5.0];
    let default = model.score(&records).unwrap();
    assert_eq!(default.score, model.default_score());
    assert_eq!(default.scores.len(), 3);
    let grad = model
        .score_with(
            &records,
            &ScoreOptions {
                score: Some(Score::GradNorm),
                threshold: Some(0.0),
            },
        )
        .unwrap();
    assert_eq!((grad.score, grad.threshold), (Score::GradNorm, 0.0));
    assert_eq!(
        grad.outliers,
        grad.scores.iter().map(|&s| s > 0.0).collect::<Vec<_>>()
    );
    // The same numbers as the lower-level call, and a non-finite threshold is refused.
    assert_eq!(
        grad.scores,
        model.scores(&records, &[Score::GradNorm]).unwrap()[0]
    );
    assert!(matches!(
        model.threshold(Score::GradNorm, Some(f64::NAN)),
        Err(Error::Score(_))
    ));
}

#[test]
fn inpaint_accepts_nan_in_unknown_places_only() {
    let model = moons();
    let records = [0.5, f64::NAN, -0.5, f64::NAN];
    let fast = ImputeOptions {
        flow: FAST,
        ..ImputeOptions::default()
    };
    let done = model.inpaint(&records, &[false, true], &fast).unwrap();
    assert_eq!(done.records.rows(), 2);
    assert_eq!(
        (done.records.row(0)[0], done.records.row(1)[0]),
        (0.5, -0.5)
    );
    assert!(done.records.values.iter().all(|v| v.is_finite()));
    let err = model.inpaint(&records, &[true, false], &fast).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record 1, value 2: NaN is a known value but not a finite number"
    );
    assert!(matches!(
        model.inpaint(&records, &[true], &fast),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn compositions_refuse_what_cannot_be_added() {
    let a = moons();
    assert!(matches!(
        Composition::new(&[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Composition::new(&[(&a, f64::INFINITY)]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Composition::with_reference(&[(&a, 1.0)], 1),
        Err(Error::InvalidArgument(_))
    ));
    let image = Model::load(shipped_model("fashion-mnist.onnx")).unwrap();
    let err = Composition::new(&[(&a, 1.0), (&image, 1.0)]).err().unwrap();
    assert!(err.to_string().contains("data shape"), "{err}");
}

#[test]
fn same_normalisation_composition_is_the_weighted_sum_of_velocities() {
    let (a, b) = (moons(), moons());
    let both = Composition::new(&[(&a, 0.3), (&b, 0.9)]).unwrap();
    let x = [0.1f32, -0.4, 1.2, 0.3, -2.0, 0.7];
    let single = a.velocity(&x, 0.6).unwrap();
    let composed = both.velocity(&x, 0.6).unwrap();
    for (c, s) in composed.iter().zip(&single) {
        assert!(
            (c - 1.2 * s).abs() <= 1e-5 * s.abs().max(1.0),
            "{c} vs 1.2·{s}"
        );
    }
}

#[test]
fn a_model_composed_in_another_models_space_follows_its_own_flow() {
    // moons alone (checkerboard at weight 0), run in checkerboard's normalised space from the image
    // of moons' noise there, must land on the samples moons gives from that noise: the state map and
    // the velocity's Jacobian map are exact, only the starting point moves.
    let moons_model = moons();
    let checker = Model::load(shipped_model("checkerboard.onnx")).unwrap();
    let solver = Solver::Rk4 { steps: 30 };
    let noise = [0.3f32, -1.1, -0.8, 0.4, 1.7, 0.2];
    let mut direct = noise.to_vec();
    integrate(&moons_model, &mut direct, solver, T_START, T_END).unwrap();
    let raw = moons_model
        .meta()
        .normalization
        .to_raw(&direct.iter().map(|&v| v as f64).collect::<Vec<_>>(), 2);
    let comp = Composition::with_reference(&[(&moons_model, 1.0), (&checker, 0.0)], 1).unwrap();
    assert_eq!(comp.normalization(), &checker.meta().normalization);
    let to_checker = |m: &[f64]| {
        let r = moons_model.meta().normalization.to_raw(m, 2);
        checker.meta().normalization.to_model(&r, 2)
    };
    let mut x: Vec<f32> = to_checker(&noise.iter().map(|&v| v as f64).collect::<Vec<_>>())
        .iter()
        .map(|&v| v as f32)
        .collect();
    integrate(&comp, &mut x, solver, T_START, T_END).unwrap();
    let composed = checker
        .meta()
        .normalization
        .to_raw(&x.iter().map(|&v| v as f64).collect::<Vec<_>>(), 2);
    for (c, d) in composed.iter().zip(&raw) {
        assert!((c - d).abs() < 1e-3, "{composed:?} vs {raw:?}");
    }
    // And models with different normalisations compose (they were refused before).
    let both = Composition::new(&[(&moons_model, 1.0), (&checker, 1.0)]).unwrap();
    let s = both.sample(100, &FAST).unwrap();
    assert!(s.records.values.iter().all(|v| v.is_finite()));
}

#[test]
fn langevin_composition_samples_where_both_models_agree() {
    // The product of moons and checkerboard (different normalisations) by Langevin: more of its
    // samples have both models' ψ(x, 1) below their calibrated 95 % quantiles than moons' own.
    let moons_model = moons();
    let checker = Model::load(shipped_model("checkerboard.onnx")).unwrap();
    let recon = ScoreOptions {
        score: Some(Score::Recon),
        threshold: None,
    };
    let in_both = |records: &[f64]| {
        let a = moons_model.score_with(records, &recon).unwrap().outliers;
        let b = checker.score_with(records, &recon).unwrap().outliers;
        a.iter().zip(&b).filter(|(p, q)| !**p && !**q).count() as f64 / a.len() as f64
    };
    let n = 400;
    let product = Composition::new(&[(&moons_model, 1.0), (&checker, 1.0)])
        .unwrap()
        .sample_langevin(n, 100, 5)
        .unwrap();
    assert_eq!(product.records.rows(), n);
    assert_eq!(product.stats.nfe, 101);
    let alone = moons_model.sample(n, &FAST).unwrap();
    let (p, m) = (
        in_both(&product.records.values),
        in_both(&alone.records.values),
    );
    assert!(p > m + 0.02, "product {p}, moons alone {m}");
}

#[test]
fn log_likelihood_is_higher_on_the_data_than_far_from_it() {
    let model = moons();
    let ll = model
        .log_likelihood(
            &[0.0, 0.5, 6.0, 6.0],
            &LikelihoodOptions {
                steps: 20,
                trace: None,
            },
        )
        .unwrap();
    assert_eq!(ll.log_likelihood.len(), 2);
    assert!(
        ll.log_likelihood[0] > ll.log_likelihood[1] + 5.0,
        "{:?}",
        ll.log_likelihood
    );
    assert!(matches!(
        model.log_likelihood(
            &[0.0, 0.5],
            &LikelihoodOptions {
                steps: 0,
                trace: None
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn bad_input_is_an_error_naming_the_place_never_a_panic() {
    use vpfb_runtime::backend::Outputs;
    use vpfb_runtime::Backend;
    let model = moons();
    // The public low-level call with a short input, and with an input missing.
    let short = model.run(3, Outputs::Contract, &[&[0.0; 4], &[0.5; 3]]);
    assert!(matches!(short, Err(Error::InputSize { .. })), "{short:?}");
    let missing = model.run(1, Outputs::Hvp, &[&[0.0; 2], &[0.5]]);
    assert!(
        matches!(missing, Err(Error::InvalidArgument(_))),
        "{missing:?}"
    );
    // A NaN far into a large batch (past the first chunk of 4 096 records) is named by its place
    // in the whole input.
    let mut records = vec![0.25; 2 * 5000];
    records[2 * 4999 + 1] = f64::NAN;
    let err = model.score(&records).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record 5000, value 2: NaN is not a finite number"
    );
}
