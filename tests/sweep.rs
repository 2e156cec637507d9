//! `gradscope sweep`, `merge` and `phase` end to end: tables, resuming after SIGKILL, shards.

mod common;

use assert_cmd::Command;
use common::gradscope;
use gradscope::error::Named;
use predicates::prelude::*;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Tiny networks on the built-in regression set: 3 × 3 × 2 seeds = 18 quick runs.
const TINY: &str = r#"
seeds = 2
[base]
data = "regression"
width = 8
steps = 40
probe_every = 10
activation = "tanh"
init = "gaussian"
sigma_b2 = 0.05
[grid]
depth = [1, 3, 6]
sigma_w2 = { start = 0.5, stop = 4, count = 3 }
"#;

fn write_sweep(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sweep-in.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The CSV table without its wall-time column, the only one that differs between two runs.
fn table_without_time(dir: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(dir.join("results.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let t = header.iter().position(|h| h == "wall_time_s").unwrap();
    let mut rows = vec![header.clone()];
    for rec in r.records() {
        let rec = rec.unwrap();
        rows.push(rec.iter().enumerate().filter(|(i, _)| *i != t).map(|(_, v)| v.to_string()).collect());
    }
    rows
}

fn sweep_cmd(config: &Path, out: &Path) -> Command {
    let mut c = gradscope();
    c.args(["sweep", "--jobs", "2", "--threads", "1", "--config"]).arg(config).arg("--out").arg(out);
    c
}

#[test]
fn a_tiny_sweep_writes_one_row_per_run_and_its_phase_diagram() {
    let t = tempfile::tempdir().unwrap();
    let config = write_sweep(t.path(), TINY);
    let out = t.path().join("out");
    sweep_cmd(&config, &out).assert().success().stdout(predicate::str::contains("18 runs"));
    let rows = table_without_time(&out);
    assert_eq!(rows.len(), 19);
    assert_eq!(
        rows[0][..5],
        ["id", "index", "depth", "sigma_w2", "seed"].map(String::from),
        "swept keys then the seed"
    );
    assert!(rows[0].contains(&"vanishing_ratio".to_string()) && rows[0].contains(&"diverged".to_string()));
    // sorted by index, each point once, values as expanded
    for (i, r) in rows[1..].iter().enumerate() {
        assert_eq!(r[1], i.to_string());
    }
    assert_eq!(rows[4][2..5], ["1", "2.25", "1"].map(String::from));
    let jsonl = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 18);
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["sigma_w2"], 0.5);
    assert_eq!(first["steps"], 40);
    // each run folder as train writes it, metrics removed unless --keep-metrics
    let run = out.join("runs/0007");
    for f in ["config.toml", "summary.json", "weights.safetensors", "command.txt", "row.json"] {
        assert!(run.join(f).exists(), "{f}");
    }
    assert!(!run.join("metrics.jsonl").exists());
    let config_toml = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config_toml.contains("depth = 3") && config_toml.contains("seed = 1"), "{config_toml}");
    assert_eq!(std::fs::read_to_string(out.join("sweep.toml")).unwrap(), TINY);

    // phase: figure files, the averaged table and the comparison with 6 ξ_c
    let stdout = String::from_utf8(
        gradscope().args(["phase", "--metric", "test_loss"]).arg(&out).assert().success().get_output().stdout.clone(),
    )
    .unwrap();
    assert!(stdout.contains("averaged over 2 seeds") && stdout.contains("agree with the theory"), "{stdout}");
    for ext in ["svg", "png", "csv"] {
        assert!(out.join(format!("phase-test_loss.{ext}")).exists(), "{ext}");
    }
    let svg = std::fs::read_to_string(out.join("phase-test_loss.svg")).unwrap();
    assert!(svg.contains("<polyline") || svg.contains("<path"), "the 6 ξ_c line is drawn");
    gradscope()
        .args(["phase", "--x", "lr"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("swept keys: depth, sigma_w2"));

    // --keep-metrics keeps them
    let out2 = t.path().join("out2");
    let one = write_sweep(t.path(), "[base]\nsteps = 5\nwidth = 4\n[grid]\ndepth = [1]");
    sweep_cmd(&one, &out2).arg("--keep-metrics").assert().success();
    assert!(out2.join("runs/0000/metrics.jsonl").exists());
    gradscope().arg("report").arg(out2.join("runs/0000")).assert().success();

    // a sweep's run is train's run for its config.toml, bit for bit
    let again = t.path().join("again");
    gradscope()
        .args(["train", "--quiet", "--no-report", "--config"])
        .arg(run.join("config.toml"))
        .arg("--out")
        .arg(&again)
        .assert()
        .success();
    let summary = |d: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("wall_time_s");
        v
    };
    assert_eq!(summary(&run), summary(&again));
    assert_eq!(
        std::fs::read(run.join("weights.safetensors")).unwrap(),
        std::fs::read(again.join("weights.safetensors")).unwrap()
    );
}

#[test]
fn bad_sweeps_exit_2_and_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    for (text, msg) in [
        ("[grid]\ndepth = []", "empty grid"),
        ("[grid]\ndetph = [1, 2]", "did you mean 'depth'"),
        ("[base]\ndepth = 2\n[grid]\ndepth = [1, 2]", "both fixed in [base] and swept"),
        ("[base]\nwidth = 4\n", "sweeps nothing"),
        ("[grid]\nlr = [0.1, -1]", "grid point 0001"),
        (
            "[grid]\nactivation = [\"tanh\", \"tanhh\"]",
            "grid point 0001 (activation = \"tanhh\", seed 0) (unknown activation 'tanhh' (did you mean 'tanh'?); valid: \
             identity, sigmoid, tanh",
        ),
    ] {
        let config = write_sweep(t.path(), text);
        let out = t.path().join("never");
        sweep_cmd(&config, &out).assert().code(2).stderr(predicate::str::contains(msg));
        assert!(!out.exists(), "{text}");
    }
    let config = write_sweep(t.path(), TINY);
    sweep_cmd(&config, &t.path().join("x"))
        .args(["--shard", "3/3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("K/N"));
    // a folder holding another sweep is not resumed with this one
    let out = t.path().join("out");
    let small = write_sweep(t.path(), "[base]\nsteps = 5\nwidth = 4\n[grid]\ndepth = [1, 2]");
    sweep_cmd(&small, &out).assert().success();
    let other = write_sweep(t.path(), "[base]\nsteps = 5\nwidth = 4\n[grid]\ndepth = [1, 3]");
    sweep_cmd(&other, &out).assert().code(2).stderr(predicate::str::contains("holds another sweep"));
    // a data set that cannot be loaded stops the sweep with the run named; nothing half-written
    let missing = write_sweep(t.path(), "[base]\nsteps = 5\n[grid]\ndata = [\"regression\", \"mnist:/nonexistent\"]");
    let out3 = t.path().join("out3");
    sweep_cmd(&missing, &out3).assert().code(2).stderr(
        predicate::str::contains("run 0001 (data=\"mnist:/nonexistent\"").and(predicate::str::contains("resume")),
    );
    assert!(out3.join("runs/0000/row.json").exists());
    assert!(!out3.join("runs/0001").exists());
    assert_eq!(std::fs::read_to_string(out3.join("results.jsonl")).unwrap().lines().count(), 1);
}

/// Kills a sweep with SIGKILL at seeded random moments, resumes it each time, and compares the
/// final table with an uninterrupted sweep's.
#[test]
fn killed_and_resumed_sweeps_give_the_same_table() {
    let t = tempfile::tempdir().unwrap();
    // 4 × 3 × 3 = 36 runs of a few tens of milliseconds each
    let text = TINY
        .replace("seeds = 2", "seeds = 3")
        .replace("depth = [1, 3, 6]", "depth = [1, 3, 6, 10]")
        .replace("steps = 40", "steps = 300");
    let config = write_sweep(t.path(), &text);
    let whole = t.path().join("whole");
    sweep_cmd(&config, &whole).assert().success();
    let expected = table_without_time(&whole);
    assert_eq!(expected.len(), 37);

    let bin = assert_cmd::cargo::cargo_bin("gradscope");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let resumed = t.path().join("resumed");
    let mut interrupted = 0;
    for _ in 0..4 {
        let mut child = std::process::Command::new(&bin)
            .args(["sweep", "--jobs", "2", "--threads", "1", "--quiet", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&resumed)
            .spawn()
            .unwrap();
        // wait for a first row (so that the run is under way), then a random moment more
        let start = Instant::now();
        while !resumed.join("results.jsonl").exists() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        interrupted += usize::from(!finished);
    }
    assert!(interrupted > 0, "no kill landed while the sweep ran");
    sweep_cmd(&config, &resumed).assert().success();
    assert_eq!(table_without_time(&resumed), expected);
    let jsonl = std::fs::read_to_string(resumed.join("results.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 36);
    // every run folder finished, none left over
    let runs: Vec<_> = std::fs::read_dir(resumed.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 36);
    assert!(runs.iter().all(|r| r.join("row.json").exists()));
}

#[test]
fn shards_merge_into_the_whole_table_and_gaps_are_named() {
    let t = tempfile::tempdir().unwrap();
    let config = write_sweep(t.path(), TINY);
    let whole = t.path().join("whole");
    sweep_cmd(&config, &whole).assert().success();
    let shards: Vec<PathBuf> = (0..3).map(|k| t.path().join(format!("shard{k}"))).collect();
    for (k, dir) in shards.iter().enumerate() {
        sweep_cmd(&config, dir).args(["--shard", &format!("{k}/3")]).assert().success();
        assert_eq!(std::fs::read_to_string(dir.join("results.jsonl")).unwrap().lines().count(), 6);
    }
    let merged = t.path().join("merged");
    gradscope()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&merged)
        .assert()
        .success()
        .stdout(predicate::str::contains("complete: every grid point once"));
    assert_eq!(table_without_time(&merged), table_without_time(&whole));
    // a shard left out: its points are listed, exit 1, the rest is still merged
    let partial = t.path().join("partial");
    gradscope().args(["merge"]).args(&shards[..2]).arg("--out").arg(&partial).assert().code(1).stdout(
        predicate::str::contains("missing: 6 points")
            .and(predicate::str::contains("0002 (depth = 1, sigma_w2 = 2.25, seed 0)")),
    );
    assert_eq!(table_without_time(&partial).len(), 13);
    // a shard given twice: duplicates
    gradscope()
        .args(["merge"])
        .args([&shards[0], &shards[1], &shards[2], &shards[0]])
        .arg("--out")
        .arg(t.path().join("dup"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("duplicates: 6 points"));
    gradscope().arg("merge").arg(&shards[0]).arg("--out").arg(&shards[0]).assert().code(2);
}

/// scripts/slurm-sweep.sh as Slurm runs it (the array variables set), and the xargs line of
/// docs/sweeps.md; then `merge` finds every point.
#[test]
fn the_slurm_script_and_the_xargs_line_shard_and_merge() {
    let t = tempfile::tempdir().unwrap();
    let config = write_sweep(t.path(), TINY);
    let bin = assert_cmd::cargo::cargo_bin("gradscope");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-sweep.sh");
    let out = t.path().join("slurm");
    for k in 0..4 {
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&config)
            .arg(&out)
            .env("GRADSCOPE", &bin)
            .env("SLURM_ARRAY_TASK_ID", k.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "4")
            .env("SLURM_CPUS_PER_TASK", "1")
            .status()
            .unwrap();
        assert!(status.success());
    }
    let shards: Vec<PathBuf> = (0..4).map(|k| out.join(format!("shard-{k}"))).collect();
    gradscope()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(out.join("merged"))
        .assert()
        .success()
        .stdout(predicate::str::contains("complete"));
    // outside Slurm the script says what is missing
    std::process::Command::new("bash")
        .arg(&script)
        .arg(&config)
        .env("GRADSCOPE", &bin)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .map(|o| assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("sbatch --array")))
        .unwrap();

    // the docs' xargs line, with the binary's path
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sweeps.md")).unwrap();
    let line = docs.lines().find(|l| l.starts_with("seq 0 7 | xargs")).expect("the xargs line in docs/sweeps.md");
    let line =
        line.replace("gradscope ", &format!("{} ", bin.display())).replace("SWEEP.toml", &config.display().to_string());
    let status = std::process::Command::new("sh").arg("-c").arg(&line).current_dir(t.path()).status().unwrap();
    assert!(status.success(), "{line}");
    let shards: Vec<PathBuf> = (0..8).map(|k| t.path().join(format!("out/shard-{k}"))).collect();
    gradscope().arg("merge").args(&shards).arg("--out").arg(t.path().join("m")).assert().success();
    assert_eq!(table_without_time(&t.path().join("m")), table_without_time(&out.join("merged")));
}

/// examples/phase-tanh-mnist.toml is the sweep the README describes.
#[test]
fn the_example_sweep_is_the_one_described() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/phase-tanh-mnist.toml");
    let s = gradscope::sweep::Sweep::from_toml(&std::fs::read_to_string(path).unwrap(), "example").unwrap();
    assert_eq!(s.len(), 91);
    assert_eq!(s.keys(), ["depth", "sigma_w2"]);
    let depths: Vec<i64> = s.axes[0].values.iter().map(|v| v.as_integer().unwrap()).collect();
    assert_eq!(depths, [10, 25, 40, 55, 70, 85, 100]);
    let sw: Vec<f64> = s.axes[1].values.iter().map(|v| v.as_float().unwrap()).collect();
    assert_eq!((sw.len(), sw[0], sw[3], sw[12]), (13, 1.0, 1.75, 4.0));
    let p = s.point(0).unwrap().config;
    assert_eq!(
        (p.activation.name(), p.init.name(), p.sigma_b2, p.width),
        ("tanh".into(), "gaussian".into(), 0.05, 128)
    );
    assert_eq!((p.optimizer.name(), p.lr, p.steps, p.batch_size), ("sgd".into(), Some(0.004), Some(1000), 64));
    assert_eq!(p.data, "mnist");
}

/// `gradscope sweep --jobs 1 --threads 1 --quiet` started in the background (in a process group
/// of its own when `own_group`, as a terminal starts it), returned once its first run trains:
/// its metrics.jsonl is opened after the signal handlers are installed.
fn spawn_sweep_until_its_first_run(config: &Path, out: &Path, own_group: bool) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gradscope"));
    cmd.args(["sweep", "--jobs", "1", "--threads", "1", "--quiet", "--config"]).arg(config).arg("--out").arg(out);
    if own_group {
        cmd.process_group(0);
    }
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    while !out.join("runs").join("0000").join("metrics.jsonl").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "the sweep did not start its first run");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Ctrl-C (SIGINT to the sweep and its runs, one process group as a terminal sends it): the runs
/// end their step and exit 130, the sweep starts no new run, keeps the finished rows and exits
/// 130; the same command then finishes the grid with the table an uninterrupted sweep writes.
#[test]
fn an_interrupted_sweep_exits_130_and_resumes() {
    let t = tempfile::tempdir().unwrap();
    // runs long enough to be caught mid-way (about a second each), on 1 job
    let text = TINY.replace("steps = 40", "steps = 30000").replace("probe_every = 10", "probe_every = 0");
    let config = write_sweep(t.path(), &text);
    let out = t.path().join("out");
    // once the first run trains, interrupt the whole group
    let mut child = spawn_sweep_until_its_first_run(&config, &out, true);
    std::thread::sleep(Duration::from_millis(300));
    let group = format!("-{}", child.id());
    assert!(std::process::Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "an interrupted sweep exits 130");
    let rows = table_without_time(&out).len() - 1;
    assert!(rows < 18, "the sweep went on after Ctrl-C ({rows} rows)");
    assert!(!out.join("runs").join("0000").exists() || out.join("runs").join("0000").join("row.json").exists());
    sweep_cmd(&config, &out).arg("--quiet").assert().success();
    let resumed = table_without_time(&out);
    assert_eq!(resumed.len(), 19);
    let whole = t.path().join("whole");
    sweep_cmd(&config, &whole).arg("--quiet").assert().success();
    assert_eq!(resumed, table_without_time(&whole));
}

/// SIGINT to the sweep alone (not its runs), after its last run started: the run finishes, and
/// the sweep still exits 130, not 0 (issue 13).
#[test]
fn a_sweep_interrupted_after_its_last_run_started_exits_130() {
    let t = tempfile::tempdir().unwrap();
    // one point, long enough (a few seconds) to be caught while it trains
    let text = "[base]\ndata = \"regression\"\nwidth = 32\nsteps = 20000\nprobe_every = 0\n[grid]\ndepth = [3]\n";
    let config = write_sweep(t.path(), text);
    let out = t.path().join("out");
    let mut child = spawn_sweep_until_its_first_run(&config, &out, false);
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "a sweep sent SIGINT exits 130");
    // the run itself was not interrupted: it finished and its row is kept
    assert!(out.join("runs").join("0000").join("row.json").is_file());
}
