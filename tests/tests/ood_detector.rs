//! Format 2 end to end: the `hvp` output of an export, exact log-likelihoods through it, and the
//! fitted multi-time detector from the trainer's fit to the runtime's `vpfb score`.

use std::process::Command;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use vpfb_runtime::likelihood::{log_likelihood_model, log_likelihood_raw, Trace};
use vpfb_runtime::ood::{FitOptions, Score};
use vpfb_runtime::scoring::score_raw;
use vpfb_runtime::{Backend, ModelMeta, Normalization, TractModel};
use vpfb_testkit::models::random_mlp;
use vpfb_testkit::{binary, output_ok, scratch};
use vpfb_trainer::detector::fit_detector;
use vpfb_trainer::export::{export_model, param_tensors};
use vpfb_trainer::nn::{build_potential, init_params, MlpConfig, Network};

fn normals(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| scale * rng.sample::<f32, _>(StandardNormal))
        .collect()
}

#[test]
fn hvp_output_equals_finite_differences_of_the_velocity() {
    let (pg, varmap, meta) = random_mlp(3, 16, 2, 5, DType::F32);
    let path = scratch("hvp-fd").join("m.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();
    let model = TractModel::load(&path).unwrap();
    assert!(model.file().has_hvp());
    let mut rng = StdRng::seed_from_u64(1);
    let n = 6;
    let x = normals(&mut rng, n * 3, 1.0);
    let t: Vec<f32> = (0..n).map(|_| rng.gen_range(0.05..1.0)).collect();
    let probe = normals(&mut rng, n * 3, 1.0);
    let hv = model.hvp(&x, &t, &probe).unwrap();
    // Central differences of the f32 velocity along the probe; step balances truncation and rounding.
    let h = 1e-2f32;
    let at = |s: f32| {
        let xs: Vec<f32> = x.iter().zip(&probe).map(|(a, p)| a + s * p).collect();
        model.evaluate(&xs, &t).unwrap().velocity
    };
    let (plus, minus) = (at(h), at(-h));
    let scale = hv.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, ((a, b), got)) in plus.iter().zip(&minus).zip(&hv).enumerate() {
        let fd = (a - b) / (2.0 * h);
        assert!(
            (fd - got).abs() <= 2e-3 * scale,
            "hvp[{i}] = {got}, finite differences {fd}"
        );
    }
    // The default probe (zeros) keeps x and t the only inputs a client must feed.
    let inputs: Vec<String> = model
        .file()
        .inputs()
        .iter()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(inputs, ["x", "t"]);
}

/// An untrained potential (zero output layer: ψ = ½‖x‖², v = x) whose file standardises raw data.
fn untrained(
    dim: usize,
    mean: Vec<f64>,
    std: Vec<f64>,
) -> (vpfb_trainer::nn::PotentialGraph, VarMap, ModelMeta) {
    let cfg = MlpConfig::new(dim, 16, 2);
    let pg = build_potential(&cfg).unwrap();
    let varmap = VarMap::new();
    init_params(&pg.params, &varmap, 3, DType::F32, &Device::Cpu).unwrap();
    let meta = ModelMeta::new(
        cfg.data_shape(),
        Normalization::Standardize { mean, std },
        cfg.describe(),
    );
    (pg, varmap, meta)
}

#[test]
fn loglik_of_the_untrained_potential_is_the_closed_form_in_raw_units() {
    // v = x carries N(0, I) at t0 to N(0, e^{2(t1 − t0)} I) at t1; raw = mean + std·model.
    let (mean, std) = (vec![1.0, -2.0, 0.5], vec![2.0, 0.5, 1.5]);
    let (pg, varmap, meta) = untrained(3, mean.clone(), std.clone());
    let path = scratch("loglik-closed").join("u.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();
    let model = TractModel::load(&path).unwrap();
    let raw = [1.0, -2.0, 0.5, 3.0, -1.0, 2.0, -4.0, -2.5, 0.0];
    let span = vpfb_runtime::solver::T_END - vpfb_runtime::solver::T_START;
    let var = (2.0 * span).exp();
    for trace in [Trace::Exact, Trace::Hutchinson { probes: 1, seed: 3 }] {
        let ll = log_likelihood_raw(&model, &raw, 40, trace).unwrap();
        for (r, got) in raw.chunks(3).zip(&ll.log_likelihood) {
            let want: f64 = (0..3)
                .map(|j| {
                    let z = (r[j] - mean[j]) / std[j];
                    -0.5 * z * z / var - 0.5 * (2.0 * std::f64::consts::PI * var).ln() - std[j].ln()
                })
                .sum();
            assert!(
                (got - want).abs() < 1e-4,
                "{trace:?}: {got} vs closed form {want}"
            );
        }
    }
}

#[test]
fn hutchinson_mean_over_many_probes_approaches_the_exact_trace() {
    let (pg, varmap, meta) = random_mlp(6, 32, 2, 8, DType::F32);
    let path = scratch("loglik-hutch").join("m.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();
    let model = TractModel::load(&path).unwrap();
    let x = normals(&mut StdRng::seed_from_u64(2), 4 * 6, 1.0);
    let exact = log_likelihood_model(&model, &x, 4, Trace::Exact).unwrap();
    let few =
        log_likelihood_model(&model, &x, 4, Trace::Hutchinson { probes: 2, seed: 1 }).unwrap();
    let many = log_likelihood_model(
        &model,
        &x,
        4,
        Trace::Hutchinson {
            probes: 1024,
            seed: 1,
        },
    )
    .unwrap();
    let err = |ll: &[f64]| -> f64 {
        ll.iter()
            .zip(&exact.log_likelihood)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    let (e_few, e_many) = (err(&few.log_likelihood), err(&many.log_likelihood));
    assert!(
        e_many < 0.05,
        "1024 probes still {e_many} nats from the exact trace"
    );
    assert!(
        e_many < e_few,
        "more probes did not help: {e_many} vs {e_few}"
    );
}

#[test]
fn detector_fitted_by_the_trainer_scores_the_same_in_the_runtime_cli() {
    let (pg, varmap, mut meta) = random_mlp(4, 32, 2, 11, DType::F32);
    meta.normalization = Normalization::Standardize {
        mean: vec![10.0, -5.0, 0.0, 2.0],
        std: vec![3.0, 0.5, 1.0, 2.0],
    };
    let params = param_tensors(&varmap);
    let mut rng = StdRng::seed_from_u64(4);
    let val = normals(&mut rng, 600 * 4, 1.0);
    let opts = FitOptions::default();
    let det = fit_detector(&pg, &params, &meta, &val, 10_000, &opts, &mut |_, _| {}).unwrap();
    assert_eq!(det.selection.records, 600);
    meta.detector = Some(det.clone());
    let dir = scratch("detector-cli");
    let path = dir.join("m.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();

    // Raw records: model-space draws (half of them shifted out) mapped to raw units.
    let mut model_space = normals(&mut rng, 50 * 4, 1.0);
    model_space[100..].iter_mut().for_each(|v| *v += 2.5);
    let raw = meta.normalization.to_raw(
        &model_space.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        4,
    );
    let input = dir.join("raw.csv");
    let mut csv = String::from("a,b,c,d\n");
    for r in raw.chunks(4) {
        csv += &r
            .iter()
            .map(|v| format!("{v:.17}"))
            .collect::<Vec<_>>()
            .join(",");
        csv += "\n";
    }
    std::fs::write(&input, csv).unwrap();
    let out = dir.join("scores.csv");
    let run = Command::new(binary("vpfb"))
        .args(["score", "--model"])
        .arg(&path)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    output_ok(&run);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().next(), Some("anomaly_score,outlier"));
    let cli: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    // The trainer's in-memory detector on the same records.
    let model = TractModel::load(&path).unwrap();
    let ours = det.score(&model, &model_space).unwrap();
    for (i, (a, b)) in cli.iter().zip(&ours).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "record {i}: CLI {a} vs trainer {b}"
        );
    }
    // The library's default score is the detector, and shifted records score higher.
    let lib = score_raw(&model, &raw, Score::Detector).unwrap();
    assert_eq!(lib.len(), 50);
    let (inside, shifted) = lib.split_at(25);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(shifted) > mean(inside),
        "{} vs {}",
        mean(shifted),
        mean(inside)
    );
}

#[test]
fn detector_command_upgrades_in_place_and_a_failure_keeps_the_original() {
    let (pg, varmap, meta) = random_mlp(2, 16, 2, 21, DType::F32);
    let dir = scratch("detector-cmd");
    let path = dir.join("m.onnx");
    export_model(&pg, &varmap, &meta, &path).unwrap();
    let original = std::fs::read(&path).unwrap();
    let csv = |name: &str, rows: usize| {
        let p = dir.join(name);
        let mut rng = StdRng::seed_from_u64(rows as u64);
        let mut text = String::from("a,b\n");
        for _ in 0..rows {
            let v = normals(&mut rng, 2, 1.0);
            text += &format!("{},{}\n", v[0], v[1]);
        }
        std::fs::write(&p, text).unwrap();
        p
    };
    let upgrade = |data: &std::path::Path| {
        Command::new(binary("vpfb-train"))
            .args(["detector", "--model"])
            .arg(&path)
            .arg("--out")
            .arg(&path)
            .arg("--data")
            .arg(format!("csv:{}", data.display()))
            .output()
            .unwrap()
    };
    // Too few records for a detector: one error line, and the file is untouched.
    let out = upgrade(&csv("tiny.csv", 12));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // Progress lines come first; the error is one line of its own, the last.
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("too few"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "a failed upgrade changed the file"
    );
    // Enough records: the same file now carries a detector fitted on all 300 of them.
    let out = upgrade(&csv("ok.csv", 300));
    output_ok(&out);
    let model = TractModel::load(&path).unwrap();
    let det = model.file().meta.detector.as_ref().expect("fitted");
    assert_eq!(det.selection.records, 300);
    assert!(model.file().has_anomaly_score());
}
