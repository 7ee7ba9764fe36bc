//! `vpfb-train init`: writes a contract-valid model; refuses bad arguments without leaving a file.

use std::path::Path;
use std::process::Command;

use vpfb_runtime::Backend;
use vpfb_testkit::{assert_one_line_error, assert_usage_error, output_ok, run, scratch};

fn vpfb_train() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vpfb-train"))
}

/// A JSON file a run wrote (`checkpoint.json`, `metrics.json`).
fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fails_cleanly(args: &[&str], needle: &str) {
    assert_one_line_error(&run(vpfb_train(), args), needle);
}

#[test]
fn init_writes_a_valid_untrained_model() {
    let out_path = scratch("train-init").join("m.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_vpfb-train"))
        .args([
            "init", "--dim", "3", "--hidden", "8", "--layers", "1", "--out",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    output_ok(&out);
    let model = vpfb_runtime::TractModel::load(&out_path).unwrap();
    assert_eq!(model.file().meta.data_shape, vec![3]);
    // Untrained: ψ = ½‖x‖² and ∇ψ = x exactly (zero-initialised output layer).
    let e = model.evaluate(&[1.0, -2.0, 0.5], &[0.3]).unwrap();
    assert!((e.psi[0] - 2.625).abs() < 1e-6, "{:?}", e.psi);
    assert_eq!(e.velocity, vec![1.0, -2.0, 0.5]);
}

#[test]
fn init_rejects_bad_arguments_and_unwritable_paths() {
    let dir = scratch("train-init-bad");
    let target = dir.join("zero.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_vpfb-train"))
        .args(["init", "--dim", "0", "--out"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    assert!(!target.exists());
    let unwritable = dir.join("no-such-dir").join("m.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_vpfb-train"))
        .args(["init", "--dim", "2", "--out"])
        .arg(&unwritable)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-dir") && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a partial file was left behind"
    );
}

#[test]
fn fit_and_export_reject_bad_input_with_one_line_errors() {
    let dir = scratch("fit-bad");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        format!("csv:{}", p.display())
    };
    let ragged = write("ragged.csv", "a,b\n1,2\n3\n");
    let text = write("text.csv", "1,2\n3,abc\n");
    let nan = write("nan.csv", "1,2\n3,NaN\n");
    let empty = write("empty.csv", "");
    let header_only = write("header.csv", "a,b\n");
    let out = dir.join("run");
    let out_s = out.to_str().unwrap();
    let missing_csv = format!("csv:{}", dir.join("nope.csv").display());
    for (data, needle) in [
        ("swirls", "unknown data spec"),
        (missing_csv.as_str(), "nope.csv"),
        (ragged.as_str(), "line 3 has 1 columns"),
        (text.as_str(), "`abc` is not a number"),
        (nan.as_str(), "not a finite number"),
        (empty.as_str(), "no data rows"),
        (header_only.as_str(), "no data rows"),
    ] {
        fails_cleanly(
            &["fit", "--data", data, "--steps", "5", "--out", out_s],
            needle,
        );
        assert!(
            !out.join("checkpoint.json").exists(),
            "{data}: a checkpoint was written"
        );
    }
    fails_cleanly(
        &["fit", "--data", "moons", "--steps", "0", "--out", out_s],
        "--steps must be positive",
    );
    let fit_with = |flag: &str, value: &str| {
        run(
            vpfb_train(),
            &[
                "fit", "--data", "moons", "--steps", "5", flag, value, "--out", out_s,
            ],
        )
    };
    for (flag, value, needle) in [
        (
            "--time-sampling",
            "late:0",
            "expected uniform, logit-normal",
        ),
        (
            "--time-sampling",
            "beta:2",
            "expected uniform, logit-normal",
        ),
        (
            "--lr-schedule",
            "exponential",
            "possible values: constant, cosine, linear",
        ),
    ] {
        assert_usage_error(&fit_with(flag, value), needle);
    }
    for (flag, value, needle) in [
        (
            "--time-features",
            "5",
            "--time-features must be a positive even number",
        ),
        ("--time-scale", "0", "--time-scale positive"),
        ("--threads", "0", "--threads must be at least 1"),
        ("--shards", "0", "--shards must be at least 1"),
    ] {
        assert_one_line_error(&fit_with(flag, value), needle);
    }
    // The correlation term needs the whole batch: shards are refused, not silently wrong.
    assert_one_line_error(
        &run(
            vpfb_train(),
            &[
                "fit", "--data", "moons", "--steps", "5", "--loss", "paper", "--shards", "2",
                "--out", out_s,
            ],
        ),
        "--shards 2 needs a loss that is a mean over records",
    );
    assert!(!out.join("checkpoint.json").exists());
    let missing_run = dir.join("missing-run");
    fails_cleanly(
        &[
            "fit",
            "--resume",
            "--steps",
            "0",
            "--out",
            missing_run.to_str().unwrap(),
        ],
        "no checkpoint",
    );
    fails_cleanly(
        &[
            "fit", "--data", "moons", "--steps", "5", "--device", "cuda", "--out", out_s,
        ],
        "cuda",
    );
    let model = dir.join("m.onnx");
    fails_cleanly(
        &[
            "export",
            "--run",
            missing_run.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
        "no checkpoint",
    );
    assert!(!model.exists());
}

#[test]
fn fit_resume_export_on_a_csv_table() {
    let dir = scratch("fit-csv");
    // A correlated 3-column table in large raw units with a header.
    let mut text = String::from("temp,pressure,flow\n");
    for i in 0..400 {
        let u = (i as f64 * 0.731).sin();
        let v = (i as f64 * 1.37).cos();
        text.push_str(&format!(
            "{},{},{}\n",
            20.0 + 5.0 * u,
            1000.0 + 30.0 * v,
            3.0 + u * v
        ));
    }
    let csv = dir.join("sensors.csv");
    std::fs::write(&csv, text).unwrap();
    let run = dir.join("run");
    let model = dir.join("sensors.onnx");
    let ok = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vpfb-train"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let data = format!("csv:{}", csv.display());
    let run_s = run.to_str().unwrap();
    let first = ok(&[
        "fit",
        "--data",
        &data,
        "--steps",
        "30",
        "--batch",
        "64",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--checkpoint-every",
        "10",
        "--log-every",
        "1",
        "--lr-schedule",
        "linear",
        "--time-sampling",
        "logit-normal:0.5,1.5",
        "--time-scale",
        "100",
        "--out",
        run_s,
    ]);
    // A table's samples are scored against its held-out rows (10 % of 400), and the recipe is recorded.
    let metrics = read_json(&run.join("metrics.json"));
    let quality = &metrics["sample_quality"];
    assert_eq!(quality["samples"], 40, "{metrics}");
    let ratio = quality["ratio"].as_f64().unwrap();
    assert!(ratio.is_finite() && ratio > 0.0, "{metrics}");
    assert!(
        quality["escaped"].as_u64().is_some_and(|n| n <= 40),
        "{metrics}"
    );
    let recorded = read_json(&run.join("checkpoint.json"));
    let config = &recorded["config"];
    assert_eq!(config["optim"]["schedule"], "linear", "{recorded}");
    assert_eq!(config["loss"]["time_sampling"]["kind"], "logit-normal");
    assert_eq!(config["arch"]["time_scale"], 100.0);
    for f in [
        "checkpoint.json",
        "checkpoint.safetensors",
        "loss.csv",
        "loss.png",
        "metrics.json",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    assert!(
        !run.join("psi.png").exists(),
        "psi.png is for 2-D data only"
    );
    // Without --threads (and RAYON_NUM_THREADS) a run takes every core and splits each batch into one
    // shard per thread, recorded in the run.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(first.contains(&format!("in {cores} shard(s)")), "{first}");
        assert!(first.contains(&format!("CPU threads {cores})")), "{first}");
        assert_eq!(config["shards"], cores);
    }
    let resumed = ok(&[
        "fit",
        "--resume",
        "--steps",
        "40",
        "--threads",
        "2",
        "--out",
        run_s,
    ]);
    assert!(resumed.contains("CPU threads 2)"), "{resumed}");
    // An MLP whose loss cannot be split trains on one thread unless told otherwise.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let paper = dir.join("paper-run");
        let printed = ok(&[
            "fit",
            "--data",
            "moons",
            "--steps",
            "2",
            "--loss",
            "paper",
            "--no-eval",
            "--out",
            paper.to_str().unwrap(),
        ]);
        assert!(printed.contains("in 1 shard(s)"), "{printed}");
        assert!(printed.contains("CPU threads 1)"), "{printed}");
        // The MLP's recipe defaults (batch, peak rate, schedule) are the study's, and recorded.
        let recorded = read_json(&paper.join("checkpoint.json"));
        let config = &recorded["config"];
        assert_eq!(config["batch"], 1024, "{recorded}");
        assert_eq!(config["optim"]["lr"], 2e-3, "{recorded}");
        assert_eq!(config["optim"]["schedule"], "cosine", "{recorded}");
    }
    let rows = std::fs::read_to_string(run.join("loss.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows, 41, "header + one row per step");
    let printed = ok(&["export", "--run", run_s, "--out", model.to_str().unwrap()]);
    assert!(printed.contains("grad-norm"), "{printed}");
    let m = vpfb_runtime::ModelFile::load(&model).unwrap();
    let vpfb_runtime::Normalization::Standardize { mean, std } = &m.meta.normalization else {
        panic!("{:?}", m.meta.normalization)
    };
    assert!(
        (mean[1] - 1000.0).abs() < 5.0 && (std[1] - 21.0).abs() < 3.0,
        "{mean:?} {std:?}"
    );
    let ood = m.meta.ood.as_ref().expect("calibrated");
    assert_eq!(ood.default_score, "detector");
    assert_eq!(ood.scores.len(), 3);
    let det = m
        .meta
        .detector
        .as_ref()
        .expect("a detector is fitted at export");
    assert_eq!(det.times.len(), 5);
    assert!(m.has_hvp() && m.has_anomaly_score());
    assert_eq!(m.meta.training.as_ref().unwrap()["steps"], 40);
}

#[test]
fn normalization_from_stores_exactly_the_given_models_normalisation() {
    let dir = scratch("fit-normalization-from");
    let moons = vpfb_testkit::shipped_model("moons.onnx");
    let given = vpfb_runtime::ModelFile::load(&moons)
        .unwrap()
        .meta
        .normalization;
    let run_dir = dir.join("run");
    let model = dir.join("circles.onnx");
    let moons_s = moons.to_str().unwrap();
    let out = run(
        vpfb_train(),
        &[
            "fit",
            "--data",
            "circles",
            "--steps",
            "5",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--no-eval",
            "--normalization-from",
            moons_s,
            "--out",
            run_dir.to_str().unwrap(),
        ],
    );
    output_ok(&out);
    output_ok(&run(
        vpfb_train(),
        &[
            "export",
            "--run",
            run_dir.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
    ));
    let stored = vpfb_runtime::ModelFile::load(&model)
        .unwrap()
        .meta
        .normalization;
    assert_eq!(
        stored, given,
        "bit-exact copy of the moons model's normalisation"
    );
    // Records of another shape are refused before anything is written.
    let csv = dir.join("three.csv");
    let rows: String = (0..20)
        .map(|i| format!("{i},{},{}\n", i * i, 20 - i))
        .collect();
    std::fs::write(&csv, rows).unwrap();
    fails_cleanly(
        &[
            "fit",
            "--data",
            &format!("csv:{}", csv.display()),
            "--steps",
            "5",
            "--normalization-from",
            moons_s,
            "--out",
            dir.join("bad").to_str().unwrap(),
        ],
        "shape [2], the data's [3]",
    );
    assert!(!dir.join("bad").exists());
}
