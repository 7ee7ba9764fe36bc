//! The training loop: bit-exact resume, determinism (across thread counts too), the non-finite-loss
//! guard, checkpoint integrity, and which losses may be split into shards.

use std::path::Path;

use candle_core::Device;
use vpfb_testkit::scratch;
use vpfb_trainer::data::DataSpec;
use vpfb_trainer::loss::{LossConfig, LossPreset, TimeSampling};
use vpfb_trainer::nn::MlpConfig;
use vpfb_trainer::optim::{LrSchedule, OptimConfig};
use vpfb_trainer::train::{
    ArchConfig, Checkpoint, CheckpointError, FitError, Progress, RunConfig, StepLog, Trainer,
    CHECKPOINT_TENSORS, LOSS_CSV,
};

struct Quiet;
impl Progress for Quiet {
    fn on_step(&mut self, _: &StepLog, _: usize) {}
}

fn config(steps: usize, lr: f64) -> RunConfig {
    RunConfig {
        data: "moons".parse::<DataSpec>().unwrap(),
        arch: ArchConfig::Mlp(MlpConfig::new(2, 32, 2)),
        // A decaying rate and non-uniform times, so resuming must restore both exactly.
        loss: LossConfig {
            time_sampling: TimeSampling::Late { power: 2.0 },
            ..LossConfig::preset(LossPreset::Paper)
        },
        optim: OptimConfig {
            lr,
            warmup: 10,
            ema_decay: 0.99,
            schedule: LrSchedule::Cosine,
            ..OptimConfig::default()
        },
        batch: 64,
        steps,
        seed: 3,
        checkpoint_every: 20,
        log_every: 1,
        shards: 1,
        normalization: None,
    }
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

#[test]
fn killed_and_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let a = scratch("resume-a").join("run");
    Trainer::create(config(60, 1e-3), &a, Device::Cpu)
        .unwrap()
        .run(&mut Quiet)
        .unwrap();

    // Run B dies at step 37; its last checkpoint is at step 20.
    let b = scratch("resume-b").join("run");
    let mut t = Trainer::create(config(60, 1e-3), &b, Device::Cpu).unwrap();
    for _ in 0..37 {
        let log = t.step().unwrap();
        if log.step.is_multiple_of(20) {
            t.checkpoint().unwrap();
        }
    }
    drop(t);
    let mut t = Trainer::resume(&b, None, Device::Cpu).unwrap();
    assert_eq!(t.opt.step, 20);
    t.run(&mut Quiet).unwrap();

    // Parameters, EMA and Adam moments: the same bytes.
    assert_eq!(
        read(&a, CHECKPOINT_TENSORS),
        read(&b, CHECKPOINT_TENSORS),
        "resumed run diverged"
    );
    assert_eq!(read(&a, LOSS_CSV), read(&b, LOSS_CSV), "loss logs differ");
    // And the run really trained: the EMA moved away from the initial weights.
    let (ck, tensors) = Checkpoint::load(&a, &Device::Cpu).unwrap();
    assert_eq!(ck.step, 60);
    let w = tensors["param.mlp.out.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        w.iter().any(|v| v.abs() > 1e-4),
        "output layer still zero after 60 steps"
    );
}

#[test]
fn resume_can_extend_a_finished_run() {
    let a = scratch("extend").join("run");
    Trainer::create(config(20, 1e-3), &a, Device::Cpu)
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    let mut t = Trainer::resume(&a, Some(30), Device::Cpu).unwrap();
    t.run(&mut Quiet).unwrap();
    assert_eq!(Checkpoint::load(&a, &Device::Cpu).unwrap().0.step, 30);
    assert!(matches!(
        Trainer::resume(&a, Some(10), Device::Cpu),
        Err(FitError::Invalid(_))
    ));
}

#[test]
fn a_new_run_refuses_a_folder_with_a_checkpoint() {
    let a = scratch("no-overwrite").join("run");
    Trainer::create(config(20, 1e-3), &a, Device::Cpu)
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    let before = read(&a, CHECKPOINT_TENSORS);
    let e = Trainer::create(config(20, 1e-3), &a, Device::Cpu)
        .err()
        .expect("must refuse");
    assert!(e.to_string().contains("--resume"), "{e}");
    assert_eq!(before, read(&a, CHECKPOINT_TENSORS));
}

#[test]
fn absurd_learning_rate_stops_with_the_last_checkpoint_intact() {
    let a = scratch("nan-guard").join("run");
    let mut cfg = config(200, 1e12);
    cfg.checkpoint_every = 1;
    cfg.optim.warmup = 0;
    cfg.optim.grad_clip = -1.0;
    let mut t = Trainer::create(cfg, &a, Device::Cpu).unwrap();
    let err = t.run(&mut Quiet).expect_err("an lr of 1e12 must blow up");
    let FitError::NonFinite { step, .. } = err else {
        panic!("expected NonFinite, got {err}")
    };
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("step {step}")) && msg.contains("intact"),
        "{msg}"
    );
    let (ck, tensors) =
        Checkpoint::load(&a, &Device::Cpu).expect("the last checkpoint still loads");
    assert_eq!(ck.step, step - 1, "the checkpoint is the last good step");
    for (name, t) in tensors {
        let v = t
            .flatten_all()
            .unwrap()
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{name} holds non-finite values"
        );
    }
}

#[test]
fn corrupt_or_truncated_checkpoints_are_refused() {
    let a = scratch("corrupt").join("run");
    Trainer::create(config(20, 1e-3), &a, Device::Cpu)
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    let tensors = read(&a, CHECKPOINT_TENSORS);
    std::fs::write(a.join(CHECKPOINT_TENSORS), &tensors[..tensors.len() / 2]).unwrap();
    let e = Trainer::resume(&a, None, Device::Cpu)
        .err()
        .expect("truncated tensors refused");
    assert!(
        matches!(e, FitError::Checkpoint(CheckpointError::Corrupt { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("truncated"), "{e}");

    std::fs::write(a.join(CHECKPOINT_TENSORS), &tensors).unwrap();
    std::fs::write(a.join("checkpoint.json"), b"{ not json").unwrap();
    let e = Trainer::resume(&a, None, Device::Cpu)
        .err()
        .expect("bad json refused");
    assert!(
        matches!(e, FitError::Checkpoint(CheckpointError::Corrupt { .. })),
        "{e}"
    );

    let e = Trainer::resume(&scratch("never-ran").join("run"), None, Device::Cpu)
        .err()
        .expect("missing run refused");
    assert!(
        matches!(e, FitError::Checkpoint(CheckpointError::Missing(_))),
        "{e}"
    );
}

#[test]
fn a_sharded_run_gives_the_same_bytes_on_one_thread_and_on_two() {
    let run = |threads: usize| {
        let dir = scratch(&format!("shards-{threads}")).join("run");
        let config = RunConfig {
            loss: LossConfig::preset(LossPreset::Ritz),
            shards: 2,
            ..config(20, 1e-3)
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                Trainer::create(config, &dir, Device::Cpu)
                    .unwrap()
                    .run(&mut Quiet)
                    .unwrap()
            });
        read(&dir, CHECKPOINT_TENSORS)
    };
    assert_eq!(run(1), run(2), "the thread count changed a sharded run");
}

#[test]
fn shards_are_refused_for_a_loss_with_batch_statistics() {
    let dir = scratch("shards-paper").join("run");
    let config = RunConfig {
        shards: 2,
        ..config(20, 1e-3)
    };
    match Trainer::create(config, &dir, Device::Cpu) {
        Err(FitError::Invalid(msg)) => assert!(msg.contains("--shards 2"), "{msg}"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}
