//! Image data for training: `images:DIR` and `idx:PATH` (gzipped or not), their scaling to [-1, 1],
//! the Debian Fashion-MNIST files, and UNet training steps that resume bit-identically.

use candle_core::Device;
use vpfb_runtime::images::{idx_bytes, write_image_dir, ImageSet};
use vpfb_runtime::Normalization;
use vpfb_testkit::models::tiny_unet;
use vpfb_testkit::scratch;
use vpfb_trainer::data::{DataSpec, Dataset};
use vpfb_trainer::loss::{LossConfig, LossPreset};
use vpfb_trainer::nn::UnetConfig;
use vpfb_trainer::optim::OptimConfig;
use vpfb_trainer::train::{ArchConfig, Progress, RunConfig, StepLog, Trainer, CHECKPOINT_TENSORS};

const FASHION: &str = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

fn synthetic(n: usize, shape: [usize; 3]) -> ImageSet {
    let len: usize = shape.iter().product();
    ImageSet {
        shape,
        pixels: (0..n * len).map(|i| ((i * 53 + 7) % 256) as f64).collect(),
        names: vec![],
    }
}

#[test]
fn image_folder_loads_with_its_shape_and_pixel_scaling() {
    let dir = scratch("img-folder");
    let set = synthetic(20, [3, 6, 4]);
    write_image_dir(&dir, "im", &set.pixels, set.shape).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let spec: DataSpec = format!("images:{}", dir.display()).parse().unwrap();
    let data = Dataset::load(&spec, 0).unwrap();
    assert_eq!(data.record_shape(), vec![3, 6, 4]);
    assert_eq!(data.dim(), 72);
    assert_eq!(
        data.normalization().unwrap(),
        Normalization::Affine {
            offset: 127.5,
            scale: 127.5
        }
    );
    // 10 % held out; every pixel survives the PNG round trip exactly.
    assert_eq!(data.validation().len(), 2 * 72);
    let mut all = data.validation();
    if let Dataset::Table { train, .. } = &data {
        all.extend(train);
    }
    all.sort_by(f64::total_cmp);
    let mut want = set.pixels.clone();
    want.sort_by(f64::total_cmp);
    assert_eq!(all, want);
}

#[test]
fn bad_image_data_is_a_clear_error() {
    let empty = scratch("img-empty");
    let err = Dataset::load(&format!("images:{}", empty.display()).parse().unwrap(), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no .png"), "{err}");
    let mixed = scratch("img-mixed");
    write_image_dir(&mixed, "a", &synthetic(1, [1, 4, 4]).pixels, [1, 4, 4]).unwrap();
    write_image_dir(&mixed, "b", &synthetic(1, [1, 5, 4]).pixels, [1, 5, 4]).unwrap();
    let err = Dataset::load(&format!("images:{}", mixed.display()).parse().unwrap(), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("all images must have one size"), "{err}");
    let idx = scratch("idx-bad").join("x.idx");
    std::fs::write(&idx, [0u8, 0, 0x0d, 3, 0, 0, 0, 1]).unwrap();
    let err = Dataset::load(&format!("idx:{}", idx.display()).parse().unwrap(), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("element type 0x0d"), "{err}");
}

#[test]
fn debian_fashion_mnist_loads_as_28x28_grayscale() {
    if !std::path::Path::new(FASHION).exists() {
        assert!(
            std::env::var_os("VPFB_REQUIRE_FASHION_MNIST").is_none(),
            "{FASHION} missing and VPFB_REQUIRE_FASHION_MNIST is set"
        );
        eprintln!("SKIPPED: {FASHION} missing (apt-get install dataset-fashion-mnist)");
        return;
    }
    let data = Dataset::load(&format!("idx:{FASHION}").parse().unwrap(), 0).unwrap();
    assert_eq!(data.record_shape(), vec![1, 28, 28]);
    assert_eq!(data.validation().len(), 6000 * 784);
    let val = data.validation();
    let mean = val.iter().sum::<f64>() / val.len() as f64;
    // Fashion-MNIST's mean pixel is about 72.9 (0.286 of 255).
    assert!((mean - 72.9).abs() < 2.0, "mean pixel {mean}");
    assert!(val
        .iter()
        .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0));
}

struct Quiet;
impl Progress for Quiet {
    fn on_step(&mut self, _: &StepLog, _: usize) {}
}

fn unet_run(data: DataSpec, steps: usize) -> RunConfig {
    RunConfig {
        data,
        arch: ArchConfig::Unet(UnetConfig {
            image: [1, 8, 8],
            ..tiny_unet()
        }),
        loss: LossConfig::preset(LossPreset::Ritz),
        optim: OptimConfig {
            lr: 1e-3,
            warmup: 2,
            ..OptimConfig::default()
        },
        batch: 4,
        steps,
        seed: 5,
        checkpoint_every: 2,
        log_every: 1,
        shards: 1,
        normalization: None,
    }
}

#[test]
fn unet_training_on_gzipped_idx_resumes_bit_identically() {
    let dir = scratch("unet-idx");
    let gz = dir.join("tiny-idx3-ubyte.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        e.write_all(&idx_bytes(&synthetic(30, [1, 8, 8]))).unwrap();
    }
    let data: DataSpec = format!("idx:{}", gz.display()).parse().unwrap();
    let straight = dir.join("straight");
    let mut t = Trainer::create(unet_run(data.clone(), 4), &straight, Device::Cpu).unwrap();
    t.run(&mut Quiet).unwrap();
    let split = dir.join("split");
    let mut t = Trainer::create(unet_run(data, 2), &split, Device::Cpu).unwrap();
    t.run(&mut Quiet).unwrap();
    let mut t = Trainer::resume(&split, Some(4), Device::Cpu).unwrap();
    t.run(&mut Quiet).unwrap();
    assert_eq!(
        std::fs::read(straight.join(CHECKPOINT_TENSORS)).unwrap(),
        std::fs::read(split.join(CHECKPOINT_TENSORS)).unwrap(),
        "2 + 2 resumed steps differ from 4 straight steps"
    );
}
