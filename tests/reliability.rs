//! Nothing lost: a run killed at any point and resumed ends bit-identical to an uninterrupted
//! one; Ctrl-C stops after a step with a checkpoint and exit 130; a NaN or infinity is caught at
//! its step and named.

mod common;

use common::gradscope;
use gradscope::config::Config;
use gradscope::data::{self, LoadOptions};
use gradscope::nn::{ActivationKind, Init, Scalar, Threads};
use gradscope::run::{Silent, build_mlp, train};
use gradscope::{RunStatus, Summary};
use predicates::prelude::*;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gradscope");

fn summary_without_wall_time(dir: &Path) -> Value {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("wall_time_s");
    v
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn spawn(args: &[String]) -> Child {
    std::process::Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Waits until `metrics.jsonl` holds `bytes` bytes (or the child ends), then SIGKILLs the child.
/// Returns true when the child was killed, false when it ended by itself.
fn kill_when(child: &mut Child, metrics: &Path, bytes: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the run failed by itself: {status}");
            return false;
        }
        if len(metrics) >= bytes {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        assert!(Instant::now() < deadline, "the run hangs");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The real binary, SIGKILLed three times at random points (seeded: a random length of the
/// final metrics.jsonl, so a random step; some kills land while a run starts, writes a checkpoint
/// or writes its final files) and resumed each time, ends with the same weights.safetensors and
/// metrics.jsonl bytes and the same summary.json (but the wall time) as the run left alone.
#[test]
fn killed_and_resumed_runs_are_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let mut kills = 0;
    let mlp: &[&str] = &["--depth", "3", "--width", "24", "--activation", "tanh", "--steps", "1200"];
    // a recurrent run (issue 14): the LSTM's tensors under their PyTorch names, truncated BPTT
    let lstm: &[&str] =
        &["--cell", "lstm", "--data", "adding", "--seq-len", "8", "--bptt", "5", "--width", "12", "--steps", "500"];
    let variants: [(&[&str], &[&str]); 4] = [
        (mlp, &["--optimizer", "adam"]),
        (mlp, &["--momentum", "0.9"]),
        // the remedies' state too: batch norm's running estimates, a projection, clipping counts
        (mlp, &["--momentum", "0.9", "--residual", "--norm", "batch", "--clip-norm", "0.5"]),
        (lstm, &["--optimizer", "adam", "--clip-norm", "1"]),
    ];
    for (k, (model, optimizer)) in variants.into_iter().enumerate() {
        let mut args: Vec<String> = [
            "train",
            "--batch-size",
            "16",
            "--probe-every",
            "3",
            "--checkpoint-every",
            "37",
            "--threads",
            "1",
            "--seed",
            "5",
            "--quiet",
            "--no-report",
        ]
        .iter()
        .chain(model)
        .chain(optimizer)
        .map(|s| s.to_string())
        .collect();
        let reference = tmp.path().join(format!("reference{k}"));
        gradscope().args(&args).arg("--out").arg(&reference).assert().success();
        let full = len(&reference.join("metrics.jsonl"));
        args.push("--out".into());
        for trial in 0..3 {
            let dir = tmp.path().join(format!("run{k}-{trial}"));
            let fresh = [args.clone(), vec![dir.display().to_string()]].concat();
            let resume: Vec<String> =
                ["train", "--resume", &dir.display().to_string(), "--quiet", "--no-report"].map(String::from).to_vec();
            let mut left = 3;
            loop {
                let started = dir.join("config.toml").exists();
                let mut child = spawn(if started { &resume } else { &fresh });
                if left == 0 {
                    assert!(child.wait().unwrap().success());
                    break;
                }
                // a random point of the run (1 in 8 right at the start)
                let at = if rng.random_range(0..8) == 0 { 0 } else { rng.random_range(0..full) };
                if kill_when(&mut child, &dir.join("metrics.jsonl"), at) {
                    kills += 1;
                }
                left -= 1;
            }
            for f in ["weights.safetensors", "metrics.jsonl"] {
                let (a, b) = (std::fs::read(reference.join(f)).unwrap(), std::fs::read(dir.join(f)).unwrap());
                assert!(a == b, "{f} of {} differs from the uninterrupted run", dir.display());
            }
            assert_eq!(summary_without_wall_time(&dir), summary_without_wall_time(&reference));
            // resuming a finished run changes nothing
            let before = std::fs::read(dir.join("metrics.jsonl")).unwrap();
            let out = gradscope().args(&resume[..3]).assert().success().get_output().stdout.clone();
            assert!(String::from_utf8(out).unwrap().contains("already finished"));
            assert_eq!(std::fs::read(dir.join("metrics.jsonl")).unwrap(), before);
            // temporary files of writes cut short by a kill are cleaned up by the resume
            let names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
        }
    }
    assert!(kills >= 12, "only {kills} kills landed");
}

/// SIGINT: the step finishes, the summary says `interrupted`, a checkpoint is written (without
/// --checkpoint-every), exit 130; --resume goes on from there, and SIGTERM does the same.
#[test]
fn ctrl_c_writes_a_checkpoint_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let fresh: Vec<String> = ["train", "--depth", "2", "--width", "8", "--steps", "5000000", "--probe-every", "50"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--threads".into(), "1".into(), "--out".into(), dir.display().to_string()])
        .collect();
    let resume: Vec<String> = vec!["train".into(), "--resume".into(), dir.display().to_string()];
    let mut done = 0;
    for (args, signal) in [(&fresh, "-INT"), (&resume, "-TERM")] {
        let child = std::process::Command::new(BIN).args(args).stdout(Stdio::piped()).spawn().unwrap();
        let metrics = dir.join("metrics.jsonl");
        let deadline = Instant::now() + Duration::from_secs(60);
        while len(&metrics) <= done + 4000 {
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        let ok = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{signal}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("continue with: gradscope train --resume"), "{stdout}");
        let s: Summary = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        assert_eq!(s.status, RunStatus::Interrupted);
        assert!(s.steps > 0 && s.steps < 5_000_000);
        let ck = gradscope::io::checkpoint::Checkpoint::read(&dir.join("checkpoint.safetensors")).unwrap();
        assert_eq!(ck.meta.step, s.steps, "the checkpoint is of the last step taken");
        // metrics.jsonl holds whole lines, exactly those the checkpoint counts
        let text = std::fs::read_to_string(&metrics).unwrap();
        assert_eq!(text.len() as u64, ck.meta.metrics_len);
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            let rec: gradscope::probe::StepRecord = serde_json::from_str(line).unwrap();
            assert!(rec.step < s.steps);
        }
        assert!(!dir.join("report.html").exists(), "no report of an interrupted run");
        let command = std::fs::read_to_string(dir.join("command.txt")).unwrap();
        assert!(command.contains("--steps 5000000"), "the command that started the run is kept: {command}");
        done = text.len() as u64;
    }
}

/// `stop` (the default): the run ends at the step with the NaN, the summary names where it
/// appeared, everything written so far is kept, the weights are those before that step (finite),
/// exit 1. `skip`: the bad updates are skipped and counted, the run goes on, exit 0.
#[test]
fn nonfinite_values_stop_or_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let base = ["train", "--activation", "relu", "--init", "kaiming_normal", "--depth", "6", "--lr", "1e6"];
    let stop = tmp.path().join("stop");
    gradscope()
        .args(base)
        .args(["--steps", "50", "--probe-every", "1", "--out"])
        .arg(&stop)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("diverged: a NaN or infinity first appeared at step"));
    let s: Summary = serde_json::from_str(&std::fs::read_to_string(stop.join("summary.json")).unwrap()).unwrap();
    let at = s.nonfinite.clone().expect("where it appeared");
    assert_eq!(
        (s.status, s.diverged, s.diverged_at_step, s.steps),
        (RunStatus::Diverged, true, Some(at.step), at.step)
    );
    assert!(at.step > 0);
    // every step before it was probed and kept
    let lines = std::fs::read_to_string(stop.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, at.step);
    // the weights are the finite ones before the step that diverged (the reader refuses NaN)
    gradscope::io::weights::load(&stop.join("weights.safetensors")).unwrap();
    assert!(stop.join("report.html").is_file());

    let skip = tmp.path().join("skip");
    gradscope()
        .args(base)
        .args(["--steps", "50", "--on-nonfinite", "skip", "--quiet", "--no-report", "--out"])
        .arg(&skip)
        .assert()
        .code(0);
    let k: Summary = serde_json::from_str(&std::fs::read_to_string(skip.join("summary.json")).unwrap()).unwrap();
    assert_eq!((k.status, k.diverged, k.steps), (RunStatus::Completed, false, 50));
    assert!(k.skipped_steps > 0 && k.skipped_steps < 50, "{}", k.skipped_steps);
    assert_eq!(k.nonfinite.as_ref().map(|n| n.step), Some(at.step), "the same first step as with stop");
    gradscope::io::weights::load(&skip.join("weights.safetensors")).unwrap();
    assert!(std::fs::read_to_string(skip.join("config.toml")).unwrap().contains("on_nonfinite = \"skip\""));
}

/// Weights so large that a pre-activation overflows f32 at step 0: the summary names the first
/// layer whose z is infinite, found here independently by a plain forward pass. The library
/// returns the diverged run as a result (what a sweep records), not as an error.
#[test]
fn the_first_overflowing_layer_is_named() {
    let config = Config {
        depth: 5,
        width: 16,
        activation: ActivationKind::Relu,
        init: Init::Gaussian,
        sigma_w2: 1e24,
        batch_size: 100_000, // one batch: the whole training set
        steps: Some(3),
        threads: 1,
        ..Config::default()
    };
    let spec = config.resolve().unwrap();
    let opts =
        LoadOptions { target: None, classes: false, seed: spec.seed, test_fraction: 0.2, ..LoadOptions::default() };
    let data = data::load(&spec.data, &opts).unwrap();
    let outcome = train::<f32>(&spec, &data, &mut Silent).unwrap();
    let at = outcome.summary.nonfinite.clone().unwrap();
    let mut mlp = build_mlp::<f32>(&spec, &data);
    mlp.forward(data.train.x.view(), Threads::One);
    let first = (0..mlp.num_layers()).find(|&l| mlp.layer_view(l).z.iter().any(|v| !v.is_finite())).unwrap();
    assert!(first > 0, "pick weights that overflow past the first layer");
    assert_eq!((at.step, at.layer, at.tensor.as_deref()), (0, Some(first), Some("z")));
    assert_eq!(at.part, gradscope::nonfinite::Part::Activation);
    assert_eq!(outcome.summary.status, RunStatus::Diverged);
    assert!(mlp.layers[0].weight.iter().all(|w| w.f64().is_finite()));
}

/// summary.json files written before these fields existed still load.
#[test]
fn old_summaries_load() {
    let old = r#"{"gradscope_version":"0.1.0","data":"regression","seed":0,"threads":1,"steps":5,"epochs":1,
        "train_loss":0.5,"test_loss":null,"train_accuracy":null,"test_accuracy":null,"vanishing_ratio":0.1,
        "vanishing_ratio_final":null,"diverged":false,"diverged_at_step":null,"wall_time_s":0.1}"#;
    let s: Summary = serde_json::from_str(old).unwrap();
    assert_eq!((s.status, s.nonfinite, s.skipped_steps), (RunStatus::Completed, None, 0));
    assert!(s.vanishing_ratio_final.is_nan());
}

/// A run stopped before its first checkpoint resumes from step 0: whatever metrics.jsonl held
/// (here a torn last line) is cut, and the run ends as if never stopped.
#[test]
fn a_run_without_checkpoint_resumes_from_step_0() {
    let tmp = tempfile::tempdir().unwrap();
    let args =
        ["train", "--depth", "2", "--width", "8", "--steps", "40", "--probe-every", "5", "--quiet", "--no-report"];
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    gradscope().args(args).arg("--out").arg(&a).assert().success();
    gradscope().args(args).arg("--out").arg(&b).assert().success();
    for f in ["summary.json", "weights.safetensors"] {
        std::fs::remove_file(b.join(f)).unwrap();
    }
    assert!(!b.join("checkpoint.safetensors").exists());
    std::fs::write(b.join("metrics.jsonl"), b"{\"step\":0,\"epo").unwrap();
    gradscope().args(["train", "--quiet", "--no-report", "--resume"]).arg(&b).assert().success();
    for f in ["weights.safetensors", "metrics.jsonl"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f}");
    }
    assert_eq!(summary_without_wall_time(&a), summary_without_wall_time(&b));
}
