//! `vpfb` end to end on the shipped models: golden outputs, streaming, and the bad-input matrix
//! (each a one-line error and a non-zero exit, never a panic, never a partial output file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use prost::Message;
use vpfb_testkit::{
    assert_close, assert_one_line_error, csv_numbers as numbers, output_ok, repo, run, scratch,
};

fn vpfb(args: &[&std::ffi::OsStr]) -> Output {
    run(Path::new(env!("CARGO_BIN_EXE_vpfb")), args)
}

fn fails_cleanly(args: &[&std::ffi::OsStr], needle: &str) {
    assert_one_line_error(&vpfb(args), needle);
}

fn moons() -> PathBuf {
    repo().join("models/moons.onnx")
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn sample_matches_golden_and_the_built_in_model_is_moons() {
    let dir = scratch("golden-sample");
    for (model_args, name) in [
        (vec![os("--model"), moons().as_os_str()], "explicit.csv"),
        (vec![], "builtin.csv"),
    ] {
        let out_path = dir.join(name);
        let mut args = vec![
            os("sample"),
            os("-n"),
            os("8"),
            os("--seed"),
            os("1"),
            os("--out"),
            out_path.as_os_str(),
        ];
        args.extend(model_args);
        let out = vpfb(&args);
        output_ok(&out);
        assert_close(
            &numbers(&out_path),
            &numbers(&golden("moons-sample-n8-seed1.csv")),
            1e-4,
            name,
        );
    }
}

#[test]
fn sample_writes_npy_and_larger_batches_look_like_moons() {
    let dir = scratch("sample-npy");
    let out_path = dir.join("s.npy");
    let out = vpfb(&[
        os("sample"),
        os("-n"),
        os("2000"),
        os("--solver"),
        os("dopri5"),
        os("--out"),
        out_path.as_os_str(),
    ]);
    output_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("function evaluations"));
    let r = vpfb_runtime::io::read_npy(&out_path).unwrap();
    assert_eq!((r.rows(), r.cols), (2000, 2));
    // Moons live in x ∈ [-1.3, 2.3], y ∈ [-0.8, 1.3]: nearly every sample should too.
    let inside = r
        .values
        .chunks(2)
        .filter(|p| (-1.3..2.3).contains(&p[0]) && (-0.8..1.3).contains(&p[1]))
        .count();
    assert!(inside > 1900, "{inside} of 2000 samples in the moons box");
}

#[test]
fn score_matches_golden() {
    let dir = scratch("golden-score");
    let input = golden("moons-points.csv");
    let model = moons();
    // The default score of the shipped (format 2) model is its detector; grad-norm stays selectable.
    for (score, file) in [
        (None, "moons-points-detector.csv"),
        (Some("grad-norm"), "moons-points-grad-norm.csv"),
    ] {
        let out_path = dir.join(file);
        let mut args = vec![
            os("score"),
            os("--model"),
            model.as_os_str(),
            os("--input"),
            input.as_os_str(),
            os("--out"),
            out_path.as_os_str(),
        ];
        if let Some(s) = score {
            args.extend([os("--score"), os(s)]);
        }
        // Whole (one chunk) and in chunks of 3 records (3 + 3 + 2): the same scores in order.
        for chunk in [None, Some("3")] {
            let mut args = args.clone();
            if let Some(c) = chunk {
                args.extend([os("--chunk"), os(c)]);
            }
            let out = vpfb(&args);
            output_ok(&out);
            assert_eq!(
                std::fs::read_to_string(&out_path).unwrap().lines().next(),
                Some("anomaly_score,outlier")
            );
            assert_close(&numbers(&out_path), &numbers(&golden(file)), 1e-4, file);
        }
    }
}

#[test]
fn score_all_in_chunks_equals_one_pass() {
    let dir = scratch("score-all-chunks");
    let input = golden("moons-points.csv");
    let model = moons();
    let table = |chunk: &str| {
        let out_path = dir.join(format!("all-{chunk}.csv"));
        output_ok(&vpfb(&[
            os("score"),
            os("--model"),
            model.as_os_str(),
            os("--input"),
            input.as_os_str(),
            os("--score"),
            os("all"),
            os("--chunk"),
            os(chunk),
            os("--out"),
            out_path.as_os_str(),
        ]));
        out_path
    };
    let whole = table("1000");
    let text = std::fs::read_to_string(&whole).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("detector,paper,grad-norm,recon,"),
        "{header}"
    );
    assert_eq!(text.lines().count(), 9, "8 records and a header");
    // Batch shapes change f32 summation order in the single-evaluation scores, nothing more.
    for chunk in ["3", "1"] {
        let chunked = table(chunk);
        assert_eq!(
            std::fs::read_to_string(&chunked).unwrap().lines().next(),
            Some(header)
        );
        assert_close(&numbers(&chunked), &numbers(&whole), 1e-5, chunk);
    }
}

#[test]
fn streaming_10000_lines_with_malformed_ones_gives_10000_lines_in_order() {
    let mut input = String::new();
    let mut expect_error = vec![];
    for i in 0..10_000 {
        let bad = i % 97 == 13;
        expect_error.push(bad);
        match (bad, i % 3) {
            (true, 0) => input.push_str("1.0,not-a-number\n"),
            (true, 1) => input.push_str("1.0\n"),
            (true, _) => input.push_str("NaN,0.5\n"),
            (false, _) => input.push_str(&format!(
                "{},{}\n",
                (i as f64 * 0.01).sin() * 2.0,
                (i as f64 * 0.013).cos()
            )),
        }
    }
    let lines = vpfb_stdin(
        &[
            os("score"),
            os("--model"),
            moons().as_os_str(),
            os("--stream"),
        ],
        input,
    );
    assert_eq!(lines.len(), 10_000);
    for (i, (line, bad)) in lines.iter().zip(&expect_error).enumerate() {
        if *bad {
            assert!(
                line.starts_with(&format!("error: record {}:", i + 1)),
                "line {}: {line}",
                i + 1
            );
        } else {
            let (s, o) = line
                .split_once(',')
                .unwrap_or_else(|| panic!("line {}: {line}", i + 1));
            assert!(
                s.parse::<f64>().unwrap().is_finite() && (o == "0" || o == "1"),
                "line {}: {line}",
                i + 1
            );
        }
    }
}

#[test]
fn bad_input_matrix() {
    let dir = scratch("bad-input");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // Models: missing, corrupt (truncated), not ONNX, violating the contract.
    let model_bytes = std::fs::read(moons()).unwrap();
    let truncated = write("truncated.onnx", &model_bytes[..model_bytes.len() / 3]);
    let text_model = write("text.onnx", b"definitely not a model");
    let mut proto = vpfb_runtime::onnx_proto::ModelProto::decode(model_bytes.as_slice()).unwrap();
    proto
        .graph
        .as_mut()
        .unwrap()
        .output
        .retain(|o| o.name != "velocity");
    let violating = write("no-velocity.onnx", &proto.encode_to_vec());
    // Inputs: wrong column count, NaN, Inf, empty, ragged.
    let wide = write("wide.csv", b"1,2,3\n4,5,6\n");
    let nan = write("nan.csv", b"1,2\nnan,3\n");
    let inf = write("inf.csv", b"1,2\n3,inf\n");
    let empty = write("empty.csv", b"");
    let ragged = write("ragged.csv", b"1,2\n3\n");
    let good = golden("moons-points.csv");
    let out = dir.join("out.csv");
    let score = |model: &Path, input: &Path, out: &Path| -> Vec<std::ffi::OsString> {
        ["score", "--model"]
            .iter()
            .map(Into::into)
            .chain([
                model.into(),
                "--input".into(),
                input.into(),
                "--out".into(),
                out.into(),
            ])
            .collect()
    };
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            score(&dir.join("missing.onnx"), &good, &out),
            "missing.onnx",
        ),
        (score(&truncated, &good, &out), "not a valid ONNX model"),
        (score(&text_model, &good, &out), "not a valid ONNX model"),
        (score(&violating, &good, &out), "velocity"),
        (score(&moons(), &wide, &out), "3 columns, the model takes 2"),
        (score(&moons(), &nan, &out), "not a finite number"),
        (score(&moons(), &inf, &out), "not a finite number"),
        (score(&moons(), &empty, &out), "no data rows"),
        (score(&moons(), &ragged, &out), "line 2 has 1 columns"),
        (
            score(&moons(), &good, &dir.join("no-such-dir/out.csv")),
            "no-such-dir",
        ),
    ];
    for (args, needle) in cases {
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        fails_cleanly(&refs, needle);
        assert!(!out.exists(), "{args:?} left a file at the output path");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    fails_cleanly(
        &[
            os("sample"),
            os("-n"),
            os("0"),
            os("--out"),
            out.as_os_str(),
        ],
        "-n must be positive",
    );
    fails_cleanly(
        &[
            os("sample"),
            os("--model"),
            violating.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ],
        "velocity",
    );
    fails_cleanly(
        &[
            os("score"),
            os("--model"),
            moons().as_os_str(),
            os("--input"),
            good.as_os_str(),
            os("--score"),
            os("energy"),
            os("--out"),
            out.as_os_str(),
        ],
        "unknown score",
    );
    assert!(!out.exists());
}

#[test]
fn compose_of_a_model_with_itself_at_half_weight_is_the_model() {
    let dir = scratch("compose");
    let (single, composed) = (dir.join("single.csv"), dir.join("composed.csv"));
    let m = moons();
    let out = vpfb(&[
        os("sample"),
        os("--model"),
        m.as_os_str(),
        os("-n"),
        os("50"),
        os("--seed"),
        os("4"),
        os("--out"),
        single.as_os_str(),
    ]);
    output_ok(&out);
    let out = vpfb(&[
        os("compose"),
        os("--model"),
        m.as_os_str(),
        os("--model"),
        m.as_os_str(),
        os("--weight"),
        os("0.5"),
        os("--weight"),
        os("0.5"),
        os("--sampler"),
        os("flow"),
        os("-n"),
        os("50"),
        os("--seed"),
        os("4"),
        os("--out"),
        composed.as_os_str(),
    ]);
    output_ok(&out);
    assert_close(
        &numbers(&composed),
        &numbers(&single),
        1e-4,
        "composed vs single",
    );
    // Models with different normalisations compose in the reference model's space, with a note.
    let checker = repo().join("models/checkerboard.onnx");
    let out = vpfb(&[
        os("compose"),
        os("--model"),
        m.as_os_str(),
        os("--model"),
        checker.as_os_str(),
        os("--reference"),
        os("2"),
        os("-n"),
        os("20"),
        os("--out"),
        composed.as_os_str(),
    ]);
    output_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("normalises its data differently"));
    assert_eq!(numbers(&composed).len(), 40);
    fails_cleanly(
        &[
            os("compose"),
            os("--model"),
            m.as_os_str(),
            os("--model"),
            checker.as_os_str(),
            os("--reference"),
            os("3"),
            os("--out"),
            composed.as_os_str(),
        ],
        "--reference 3 is not one of the 2 models",
    );
    fails_cleanly(
        &[
            os("compose"),
            os("--model"),
            m.as_os_str(),
            os("--model"),
            m.as_os_str(),
            os("--sampler"),
            os("gibbs"),
            os("--out"),
            composed.as_os_str(),
        ],
        "neither langevin nor flow",
    );
}

/// Runs `vpfb` with `input` on stdin and returns its stdout lines.
fn vpfb_stdin(args: &[&std::ffi::OsStr], input: String) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpfb"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output_ok(&out);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn inpaint_fills_each_records_own_gaps_in_batch_and_stream() {
    let dir = scratch("inpaint-gaps");
    // Empty cells, nan and NA mark gaps; the header and known cells come back exactly.
    let rows = [
        "0.1234567890123,",
        "nan,-0.25",
        "1.5,0.75",
        ",NA",
        "NaN,0.3",
    ];
    let input = dir.join("gaps.csv");
    std::fs::write(&input, format!("a,b\n{}\n", rows.join("\n"))).unwrap();
    let filled = dir.join("filled.csv");
    let out = vpfb(&[
        os("inpaint"),
        os("--input"),
        input.as_os_str(),
        os("--out"),
        filled.as_os_str(),
    ]);
    output_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("filled 5 values in 4 of 5 records"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&filled).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("a,b"),
        "the input's column names come back"
    );
    let batch: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(batch.len(), 5);
    for (given, done) in rows.iter().zip(&batch) {
        for (g, d) in given.split(',').zip(done.split(',')) {
            let d: f64 = d.parse().unwrap();
            assert!(d.is_finite(), "{done}");
            if let Ok(g) = g.parse::<f64>() {
                if g.is_finite() {
                    assert_eq!(g.to_bits(), d.to_bits(), "{given} -> {done}");
                }
            }
        }
    }
    // The stream completes the same records the same way (record N uses seed + N − 1), and a bad
    // line gets one error line while the stream goes on.
    let mut input = rows[..4].join("\n");
    input.push_str("\n1.0,abc\n1.0\n");
    input.push_str(rows[4]);
    input.push('\n');
    let lines = vpfb_stdin(&[os("inpaint"), os("--stream")], input);
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert!(
        lines[4].starts_with("error: record 5: column 2: `abc`"),
        "{lines:?}"
    );
    assert!(
        lines[5].starts_with("error: record 6: 1 values"),
        "{lines:?}"
    );
    let close = |a: &str, b: &str| {
        a.split(',')
            .zip(b.split(','))
            .all(|(x, y)| (x.parse::<f64>().unwrap() - y.parse::<f64>().unwrap()).abs() < 1e-4)
    };
    for i in 0..4 {
        assert!(close(&lines[i], batch[i]), "{} vs {}", lines[i], batch[i]);
    }
    // A table without gaps and without --unknown has nothing to fill.
    let full = dir.join("full.csv");
    std::fs::write(&full, "1,2\n3,4\n").unwrap();
    fails_cleanly(
        &[
            os("inpaint"),
            os("--input"),
            full.as_os_str(),
            os("--out"),
            filled.as_os_str(),
        ],
        "no missing cells",
    );
    fails_cleanly(
        &[
            os("inpaint"),
            os("--input"),
            full.as_os_str(),
            os("--conditioning"),
            os("replace"),
            os("--out"),
            filled.as_os_str(),
        ],
        "not a conditioning scheme",
    );
}

#[test]
fn interpolate_and_inpaint() {
    let dir = scratch("interp-inpaint");
    let frames = dir.join("frames.csv");
    let out = vpfb(&[
        os("interpolate"),
        os("--frames"),
        os("6"),
        os("--out"),
        frames.as_os_str(),
    ]);
    output_ok(&out);
    assert_eq!(numbers(&frames).len(), 12);
    let input = dir.join("partial.csv");
    std::fs::write(&input, "x0,x1\n-0.5,0\n0.25,0\n2.0,0\n").unwrap();
    let filled = dir.join("filled.csv");
    let out = vpfb(&[
        os("inpaint"),
        os("--input"),
        input.as_os_str(),
        os("--unknown"),
        os("1"),
        os("--out"),
        filled.as_os_str(),
    ]);
    output_ok(&out);
    let v = numbers(&filled);
    assert_eq!(
        [v[0], v[2], v[4]],
        [-0.5, 0.25, 2.0],
        "known column changed"
    );
    // Filled values land on the moons' vertical range.
    assert!(
        [v[1], v[3], v[5]].iter().all(|y| (-1.0..1.3).contains(y)),
        "{v:?}"
    );
    fails_cleanly(
        &[
            os("inpaint"),
            os("--input"),
            input.as_os_str(),
            os("--unknown"),
            os("2"),
            os("--out"),
            filled.as_os_str(),
        ],
        "out of range",
    );
}

#[test]
fn format_1_files_keep_their_single_evaluation_scores() {
    let dir = scratch("format-1");
    let v1 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moons-v1.onnx");
    let input = golden("moons-points.csv");
    let out_path = dir.join("scores.csv");
    let out = vpfb(&[
        os("score"),
        os("--model"),
        v1.as_os_str(),
        os("--input"),
        input.as_os_str(),
        os("--out"),
        out_path.as_os_str(),
    ]);
    output_ok(&out);
    // The default of a format-1 file is still its recorded score, grad-norm.
    assert_close(
        &numbers(&out_path),
        &numbers(&golden("moons-points-grad-norm.csv")),
        1e-4,
        "format-1 scores",
    );
    let info = vpfb(&[os("info"), v1.as_os_str()]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("format version: 1") && text.contains("detector:       (none"),
        "{text}"
    );
    let missing = dir.join("never.csv");
    for (args, needle) in [
        (vec!["score", "--score", "detector"], "no fitted detector"),
        (vec!["loglik"], "no `hvp` output"),
    ] {
        let mut a: Vec<&std::ffi::OsStr> = args.iter().map(|s| os(s)).collect();
        a.extend([
            os("--model"),
            v1.as_os_str(),
            os("--input"),
            input.as_os_str(),
        ]);
        a.extend([os("--out"), missing.as_os_str()]);
        fails_cleanly(&a, needle);
        assert!(
            !missing.exists(),
            "a failed {args:?} left {}",
            missing.display()
        );
    }
}
