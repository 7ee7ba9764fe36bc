//! The runtime CLI on an image model: PNG grids and folders from `sample`, IDX files and image
//! folders into `score`, PNG strips from `interpolate`, masks in `inpaint`, and the errors for image
//! options on vector models.

use std::path::{Path, PathBuf};
use std::process::Output;

use candle_core::DType;
use vpfb_runtime::images::{idx_bytes, read_image_dir, read_images, write_image_dir, ImageSet};
use vpfb_testkit::models::{random_mlp, random_unet};
use vpfb_testkit::{binary, output_ok, run, scratch};
use vpfb_trainer::export::export_model;
use vpfb_trainer::nn::UnetConfig;

const SHAPE: [usize; 3] = [1, 8, 8];

fn tiny() -> UnetConfig {
    UnetConfig {
        image: SHAPE,
        base: 8,
        mults: vec![1, 2],
        blocks: 1,
        attention: vec![],
        groups: 4,
        time_features: 8,
        time_dim: 16,
    }
}

/// An exported tiny image model in `dir`.
fn image_model(dir: &Path) -> PathBuf {
    let (pg, varmap, meta) = random_unet(&tiny(), 5, DType::F32);
    let path = dir.join("img.onnx");
    export_model(&pg, &varmap, &meta, &path).expect("export");
    path
}

fn vpfb(args: &[&str]) -> Output {
    run(&binary("vpfb"), args)
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
}

/// Deterministic test images: a gradient with a per-image offset.
fn images(n: usize) -> ImageSet {
    let len: usize = SHAPE.iter().product();
    ImageSet {
        shape: SHAPE,
        pixels: (0..n * len)
            .map(|i| ((i * 37 + i / len * 11) % 256) as f64)
            .collect(),
        names: vec![],
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sample_writes_png_grids_and_folders() {
    let dir = scratch("image-cli-sample");
    let model = image_model(&dir);
    let grid = dir.join("grid.png");
    let log = output_ok(&vpfb(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "6",
        "--solver",
        "euler",
        "--steps",
        "3",
        "--grid",
        "2x4",
        "--out",
        s(&grid),
    ]));
    assert!(log.contains("2×4 grid"), "{log}");
    let png = image::open(&grid).unwrap();
    // 4 tiles of 8 px with 2 px gaps across, 2 down.
    assert_eq!((png.width(), png.height()), (4 * 8 + 5 * 2, 2 * 8 + 3 * 2));
    let folder = dir.join("samples/");
    output_ok(&vpfb(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "3",
        "--solver",
        "euler",
        "--steps",
        "3",
        "--out",
        s(&folder),
    ]));
    let set = read_image_dir(&folder).unwrap();
    assert_eq!((set.shape, set.count()), (SHAPE, 3));
    // The same seed through a CSV gives the same pixels (PNG rounds to whole values).
    let csv = dir.join("samples.csv");
    output_ok(&vpfb(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "3",
        "--solver",
        "euler",
        "--steps",
        "3",
        "--out",
        s(&csv),
    ]));
    let table = vpfb_runtime::io::read_records(&csv).unwrap();
    for (a, b) in table.values.iter().zip(&set.pixels) {
        assert!((a.clamp(0.0, 255.0).round() - b).abs() < 1e-9, "{a} vs {b}");
    }
    fails_with(
        &vpfb(&[
            "sample",
            "--model",
            s(&model),
            "-n",
            "9",
            "--grid",
            "2x4",
            "--out",
            s(&grid),
        ]),
        "has 8 tiles for 9 images",
    );
    fails_with(
        &vpfb(&[
            "sample",
            "--model",
            s(&model),
            "-n",
            "2",
            "--grid",
            "2by4",
            "--out",
            s(&grid),
        ]),
        "ROWSxCOLS",
    );
}

#[test]
fn score_reads_idx_gz_and_image_folders_alike() {
    let dir = scratch("image-cli-score");
    let model = image_model(&dir);
    let set = images(5);
    let idx = dir.join("x-idx3-ubyte");
    std::fs::write(&idx, idx_bytes(&set)).unwrap();
    let gz = dir.join("x-idx3-ubyte.gz");
    {
        use std::io::Write;
        let mut enc = flate2_writer(&gz);
        enc.write_all(&idx_bytes(&set)).unwrap();
    }
    let folder = dir.join("pngs");
    write_image_dir(&folder, "img_", &set.pixels, SHAPE).unwrap();
    assert_eq!(read_images(&gz).unwrap(), read_images(&idx).unwrap());
    let mut outputs = vec![];
    for (i, input) in [&idx, &gz, &folder].into_iter().enumerate() {
        let out = dir.join(format!("scores{i}.csv"));
        output_ok(&vpfb(&[
            "score",
            "--model",
            s(&model),
            "--score",
            "all",
            "--input",
            s(input),
            "--out",
            s(&out),
        ]));
        let text = std::fs::read_to_string(&out).unwrap();
        // Untrained model, no detector: the single-evaluation scores, then the flow statistics on
        // the default grid (5 times × 5 statistics, none of the denoising one at t = 1, + x_norm2).
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        assert_eq!(header[..4], ["paper", "grad-norm", "recon", "psi@0.3"]);
        assert_eq!(
            (header.len(), header[header.len() - 1]),
            (3 + 25, "x_norm2")
        );
        assert_eq!(text.lines().count(), 6);
        outputs.push(text);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
    // Wrong image size is an error naming both shapes.
    let big = ImageSet {
        shape: [1, 9, 9],
        pixels: vec![0.0; 81],
        names: vec![],
    };
    let bad = dir.join("big-idx3-ubyte");
    std::fs::write(&bad, idx_bytes(&big)).unwrap();
    fails_with(
        &vpfb(&[
            "score",
            "--model",
            s(&model),
            "--score",
            "all",
            "--input",
            s(&bad),
            "--out",
            s(&dir.join("o.csv")),
        ]),
        "[1, 9, 9]",
    );
    let junk = dir.join("junk-idx3-ubyte");
    std::fs::write(&junk, b"not an idx file").unwrap();
    fails_with(
        &vpfb(&[
            "score",
            "--model",
            s(&model),
            "--score",
            "all",
            "--input",
            s(&junk),
            "--out",
            s(&dir.join("o.csv")),
        ]),
        "bad magic number",
    );
}

fn flate2_writer(path: &Path) -> impl std::io::Write {
    // The runtime reads gzip through flate2; write the test file with the same library.
    flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    )
}

#[test]
fn inpaint_keeps_known_pixels_and_draws_a_comparison_grid() {
    let dir = scratch("image-cli-inpaint");
    let model = image_model(&dir);
    let set = images(3);
    let idx = dir.join("x-idx3-ubyte");
    std::fs::write(&idx, idx_bytes(&set)).unwrap();
    let csv = dir.join("done.csv");
    output_ok(&vpfb(&[
        "inpaint",
        "--model",
        s(&model),
        "--input",
        s(&idx),
        "--count",
        "2",
        "--mask",
        "right-half",
        "--solver",
        "euler",
        "--steps",
        "4",
        "--out",
        s(&csv),
    ]));
    let done = vpfb_runtime::io::read_records(&csv).unwrap();
    assert_eq!(done.rows(), 2);
    let mut changed = 0;
    for (i, (&got, &orig)) in done.values.iter().zip(&set.pixels).enumerate() {
        let x = i % 8;
        if x < 4 {
            assert!(
                (got - orig).abs() < 1e-3,
                "known pixel {i} moved: {orig} -> {got}"
            );
        } else if (got - orig).abs() > 1e-3 {
            changed += 1;
        }
    }
    assert!(changed > 40, "only {changed} unknown pixels were filled");
    let grid = dir.join("inpaint.png");
    output_ok(&vpfb(&[
        "inpaint",
        "--model",
        s(&model),
        "--input",
        s(&idx),
        "--mask",
        "center",
        "--solver",
        "euler",
        "--steps",
        "2",
        "--out",
        s(&grid),
    ]));
    let png = image::open(&grid).unwrap();
    assert_eq!((png.width(), png.height()), (3 * 8 + 4 * 2, 3 * 8 + 4 * 2));
    fails_with(
        &vpfb(&[
            "inpaint",
            "--model",
            s(&model),
            "--input",
            s(&idx),
            "--mask",
            "diagonal",
            "--out",
            s(&csv),
        ]),
        "neither a region",
    );
}

#[test]
fn interpolate_writes_a_strip_per_pair() {
    let dir = scratch("image-cli-interpolate");
    let model = image_model(&dir);
    let strip = dir.join("strip.png");
    output_ok(&vpfb(&[
        "interpolate",
        "--model",
        s(&model),
        "--frames",
        "5",
        "--pairs",
        "2",
        "--solver",
        "euler",
        "--steps",
        "2",
        "--out",
        s(&strip),
    ]));
    let png = image::open(&strip).unwrap();
    assert_eq!((png.width(), png.height()), (5 * 8 + 6 * 2, 2 * 8 + 3 * 2));
}

#[test]
fn image_options_on_vector_models_are_clear_errors() {
    let dir = scratch("image-cli-vector");
    let (pg, varmap, meta) = random_mlp(2, 16, 2, 1, DType::F32);
    let model = dir.join("mlp.onnx");
    export_model(&pg, &varmap, &meta, &model).unwrap();
    fails_with(
        &vpfb(&[
            "sample",
            "--model",
            s(&model),
            "-n",
            "4",
            "--out",
            s(&dir.join("x.png")),
        ]),
        "image output needs an image model",
    );
    let csv = dir.join("in.csv");
    std::fs::write(&csv, "0.1,0.2\n").unwrap();
    fails_with(
        &vpfb(&[
            "inpaint",
            "--model",
            s(&model),
            "--input",
            s(&csv),
            "--mask",
            "right-half",
            "--out",
            s(&dir.join("o.csv")),
        ]),
        "--mask needs an image model",
    );
}
