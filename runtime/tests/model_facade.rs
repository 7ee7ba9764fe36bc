//! The `Model` façade on the shipped models: what an embedding program relies on.

use vpfb_runtime::{
    BackendKind, Composition, Error, FlowOptions, LikelihoodOptions, LoadOptions, Model, Score,
    ScoreOptions, Solver,
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
        backend: BackendKind::Tract,
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
    let done = model.inpaint(&records, &[false, true], &FAST).unwrap();
    assert_eq!(done.records.rows(), 2);
    assert_eq!(
        (done.records.row(0)[0], done.records.row(1)[0]),
        (0.5, -0.5)
    );
    assert!(done.records.values.iter().all(|v| v.is_finite()));
    let err = model.inpaint(&records, &[true, false], &FAST).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record 1, value 2: NaN is not a finite number"
    );
    assert!(matches!(
        model.inpaint(&records, &[true], &FAST),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn compositions_refuse_what_cannot_be_added() {
    let (a, b) = (moons(), moons());
    let both = Composition::new(&[(&a, 1.0), (&b, 1.0)]).unwrap();
    assert_eq!(both.sample(50, &FAST).unwrap().records.rows(), 50);
    assert!(matches!(
        Composition::new(&[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Composition::new(&[(&a, f64::INFINITY)]),
        Err(Error::InvalidArgument(_))
    ));
    // The shipped checkerboard model standardises with other means and scales than moons.
    let checker = Model::load(shipped_model("checkerboard.onnx")).unwrap();
    let err = Composition::new(&[(&a, 1.0), (&checker, 1.0)])
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("normalise data differently"),
        "{err}"
    );
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
