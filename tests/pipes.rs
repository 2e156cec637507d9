//! A closed stdout (`gradscope X | head -1`) ends every command quietly: no panic, exit 0, and
//! the files a command writes are written all the same (issue 13: "failed printing to stdout:
//! Broken pipe", exit 101).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// How the command ended when its stdout was closed: exit code and stderr.
struct Ended {
    code: Option<i32>,
    stderr: String,
}

fn spawn(args: &[&str], dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_gradscope"))
        .args(args)
        .current_dir(dir)
        .env("GRADSCOPE_MNIST_DIR", "/nonexistent") // nothing here reads MNIST
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> Ended {
    let out = child.wait_with_output().unwrap();
    Ended { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// The reader is gone before the command prints anything: every write fails (`| true`).
fn closed_at_once(args: &[&str], dir: &Path) -> Ended {
    let mut child = spawn(args, dir);
    drop(child.stdout.take());
    finish(child)
}

/// The reader takes the first line and goes (`| head -1`).
fn first_line_only(args: &[&str], dir: &Path) -> Ended {
    let mut child = spawn(args, dir);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "gradscope {args:?} printed nothing");
    finish(child)
}

fn assert_quiet(args: &[&str], e: &Ended) {
    assert!(!e.stderr.contains("panicked"), "gradscope {args:?} panicked: {}", e.stderr);
    assert!(!e.stderr.contains("Broken pipe"), "gradscope {args:?}: {}", e.stderr);
    assert_eq!(e.code, Some(0), "gradscope {args:?} exited with {:?}: {}", e.code, e.stderr);
}

fn both_ways(args: &[&str], dir: &Path) {
    assert_quiet(args, &closed_at_once(args, dir));
    assert_quiet(args, &first_line_only(args, dir));
}

#[test]
fn help_theory_and_bench_end_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for args in [
        &["--help"][..],
        &["train", "--help"],
        &["theory", "--sigma-w2", "1.5", "--depth", "8"],
        &["theory", "--sigma-w2", "1.5", "--depth", "8", "--json"],
        &["bench", "--config", "tiny", "--steps", "2", "--warmup", "1", "--threads", "1"],
        &["bench", "--config", "tiny", "--steps", "2", "--warmup", "1", "--threads", "1", "--json"],
    ] {
        both_ways(args, dir);
    }
}

#[test]
fn train_report_and_probe_end_quietly_and_still_write_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let train = ["train", "--depth", "2", "--width", "8", "--steps", "5", "--threads", "1", "--overwrite"];
    for (out, json) in [("a", false), ("b", true)] {
        let mut args = train.to_vec();
        args.extend(["--out", out]);
        if json {
            args.push("--json");
        }
        both_ways(&args, dir);
        // the report, written after the summary was printed, is there all the same
        assert!(dir.join(out).join("report.html").is_file(), "{out}: no report.html");
    }
    both_ways(&["report", "a", "b", "--out", "both"], dir);
    assert!(dir.join("both/report.html").is_file());
    for json in [false, true] {
        let mut args = vec!["probe", "--depth", "2", "--width", "8", "--batch-size", "16", "--out", "p"];
        if json {
            args.push("--json");
        }
        both_ways(&args, dir);
        assert!(dir.join("p/probe.json").is_file());
    }
    both_ways(&["demo", "--steps", "2", "--threads", "1", "--no-report", "--out", "demo"], dir);
    assert!(dir.join("demo/relu-kaiming-depth20/summary.json").is_file());
}

#[test]
fn sweep_merge_and_phase_end_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("s.toml"),
        "[base]\ndata = \"spirals\"\nloss = \"cross_entropy\"\nwidth = 8\nsteps = 3\nprobe_every = 0\n\
         init = \"gaussian\"\nthreads = 1\n[grid]\ndepth = [1, 2]\nsigma_w2 = [1.0, 2.0]\n",
    )
    .unwrap();
    // a second sweep into the same folder finds every run done: it prints and exits all the same
    both_ways(&["sweep", "--config", "s.toml", "--out", "s", "--jobs", "1"], dir);
    assert!(dir.join("s/results.csv").is_file());
    both_ways(&["merge", "s", "--out", "m"], dir);
    both_ways(&["phase", "s", "--x", "sigma_w2", "--y", "depth", "--metric", "test_accuracy"], dir);
}

#[test]
fn data_export_and_recurrent_commands_end_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // `data` from a local folder as the mirror (no network): a download, then "already there"
    let mirror = common::mnist_dir();
    let mirror = mirror.to_str().unwrap();
    both_ways(&["data", "mnist", "--to", "mnist", "--mirror", mirror], dir);
    for f in ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        assert!(dir.join("mnist").join(f).is_file(), "data: no {f}");
    }
    let rnn = ["train", "--cell", "lstm", "--data", "adding", "--seq-len", "5", "--width", "8", "--steps", "3"];
    let mut args = rnn.to_vec();
    args.extend(["--threads", "1", "--probe-every", "1", "--overwrite", "--out", "r"]);
    both_ways(&args, dir);
    assert!(dir.join("r/summary.json").is_file());
    both_ways(&["export", "r", "--csv", "r.csv", "--tensorboard", "tb"], dir);
    assert!(dir.join("r.csv").is_file());
    both_ways(&["theory", "--cell", "rnn_tanh", "--hidden", "16", "--seq-len", "8"], dir);
    both_ways(&["theory", "--cell", "lstm", "--hidden", "16", "--seq-len", "8", "--json"], dir);
}
