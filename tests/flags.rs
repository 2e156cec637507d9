//! Flags that cannot apply are errors naming the conflict (exit 2), and `report` names the way
//! out of the folders it cannot read (issue 13).

use assert_cmd::Command;
use predicates::prelude::*;

fn gradscope() -> Command {
    Command::cargo_bin("gradscope").unwrap()
}

#[test]
fn target_with_built_in_data_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    gradscope()
        .args(["train", "--data", "spirals", "--target", "y", "--steps", "2", "--out"])
        .arg(tmp.path().join("t"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("target").and(predicate::str::contains("csv data only")));
    assert!(!tmp.path().join("t").exists(), "a refused run wrote its folder");
}

#[test]
fn probe_refuses_an_activation_the_weights_were_not_trained_with() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("relu");
    gradscope()
        .args(["train", "--activation", "relu", "--depth", "2", "--width", "8", "--steps", "3", "--quiet"])
        .args(["--no-report", "--out"])
        .arg(&run)
        .assert()
        .success();
    let weights = run.join("weights.safetensors");
    gradscope()
        .args(["probe", "--activation", "sigmoid", "--weights"])
        .arg(&weights)
        .arg("--out")
        .arg(tmp.path().join("p"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("trained with activation relu, but --activation is sigmoid"));
    // the same activation, or none, is fine
    for extra in [&["--activation", "relu"][..], &[]] {
        gradscope()
            .args(["probe", "--weights"])
            .arg(&weights)
            .args(extra)
            .arg("--out")
            .arg(tmp.path().join("q"))
            .assert()
            .success();
    }
}

#[test]
fn report_names_keep_metrics_for_a_sweep_run_and_never_cuts_a_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("s.toml");
    std::fs::write(&config, "[base]\ndata = \"regression\"\nwidth = 8\nsteps = 5\n[grid]\ndepth = [1]\n").unwrap();
    let out = tmp.path().join("s");
    gradscope().args(["sweep", "--quiet", "--config"]).arg(&config).arg("--out").arg(&out).assert().success();
    gradscope()
        .arg("report")
        .arg(out.join("runs/0000"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--keep-metrics").and(predicate::str::contains("not a run folder").not()));
    gradscope().arg("report").arg(&out).assert().code(2).stderr(predicate::str::contains("is a sweep's folder"));

    // a run stopped before its first probe: the message is a whole sentence
    let run = tmp.path().join("early");
    gradscope()
        .args(["train", "--depth", "1", "--width", "4", "--steps", "2", "--quiet", "--no-report", "--out"])
        .arg(&run)
        .assert()
        .success();
    std::fs::write(run.join("metrics.jsonl"), "").unwrap();
    let err = gradscope().arg("report").arg(&run).assert().code(2).get_output().stderr.clone();
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("before its first probe (at step 0)") && err.trim_end().ends_with("run it again"), "{err}");
}
