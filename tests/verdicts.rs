//! Verdicts on real runs (issue 13): the words of the terminal and of the report's badge, for the
//! runs the issue names, trained here by the binary (the demo's and the remedies demo's configs,
//! fewer steps).

use assert_cmd::Command;
use std::path::Path;

/// The demo's shared settings (`cli::demo`): built-in regression, 64 units, SGD lr 0.01,
/// momentum 0.9, batch 64, seed 0.
const DEMO: [&str; 14] = [
    "--data",
    "regression",
    "--width",
    "64",
    "--loss",
    "mse",
    "--lr",
    "0.01",
    "--momentum",
    "0.9",
    "--batch-size",
    "64",
    "--threads",
    "1",
];

/// Trains into `dir` with the demo's settings plus `args`; returns (exit code, stdout, report.html).
fn train(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("gradscope")
        .unwrap()
        .arg("train")
        .args(DEMO)
        .args(args)
        .arg("--out")
        .arg(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap_or_default();
    (out.status.code().unwrap_or(-1), stdout, html)
}

/// The verdict line (the one that starts "gradient at layer 0") and its headline (after ": ").
fn verdict(stdout: &str) -> (&str, &str) {
    let line = stdout.lines().find(|l| l.starts_with("gradient at layer 0")).expect("a verdict line");
    (line, line.rsplit(": ").next().unwrap())
}

fn badge(html: &str) -> &str {
    let at = html.find("<span class=\"badge").expect("a badge");
    let text = &html[at..];
    let start = text.find('>').unwrap() + 1;
    &text[start..text.find("</span>").unwrap()]
}

#[test]
fn the_lecture_s_two_layer_sigmoid_network_learns_and_is_healthy() {
    // issue 13: called "vanishing" at 5.45e-3 while it learns
    let tmp = tempfile::tempdir().unwrap();
    let (code, stdout, html) = train(tmp.path(), &["--depth", "2", "--activation", "sigmoid", "--steps", "600"]);
    assert_eq!(code, 0, "{stdout}");
    let (line, head) = verdict(&stdout);
    assert!(line.contains("5.45e-3 of layer 2's at step 0 (healthy)"), "{line}");
    assert_eq!(head, "healthy", "{line}");
    assert_eq!(badge(&html), "healthy");
}

#[test]
fn relu_with_sigma_w2_2_5_diverged_at_step_1() {
    // issue 13: "healthy" although the loss is infinite at step 1 (demo --remedies' relu-exploding)
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--depth", "50", "--activation", "relu", "--init", "gaussian", "--sigma-w2", "2.5", "--steps", "20"];
    let (code, stdout, html) = train(tmp.path(), &args);
    assert_eq!(code, 1, "{stdout}");
    let (line, head) = verdict(&stdout);
    assert_eq!(head, "diverged at step 1", "{line}");
    assert_eq!(badge(&html), "diverged at step 1");
}

#[test]
fn deep_tanh_with_layer_norm_did_not_learn_and_batch_norm_explodes_at_step_0() {
    // issue 13: tanh + layer norm got a green "healthy" badge (ratio 7.36 at step 0, 1e-4 at the
    // end, loss flat); tanh + batch norm's ratio of ~30 at step 0 was "healthy" too
    let tmp = tempfile::tempdir().unwrap();
    let base = ["--depth", "50", "--activation", "tanh", "--steps", "300", "--probe-every", "100"];
    let (code, stdout, html) = train(&tmp.path().join("layer"), &[&base[..], &["--norm", "layer"]].concat());
    assert_eq!(code, 0, "{stdout}");
    let (line, head) = verdict(&stdout);
    assert!(line.contains("of layer 50's at step 0 (healthy)"), "{line}");
    assert_eq!(head, "did not learn", "{line}");
    assert_eq!(badge(&html), "did not learn");

    let (code, stdout, html) = train(&tmp.path().join("batch"), &[&base[..], &["--norm", "batch"]].concat());
    assert_eq!(code, 0, "{stdout}");
    let (line, head) = verdict(&stdout);
    assert!(line.contains("at step 0 (exploding)"), "{line}");
    assert_eq!(head, "exploding → healthy", "{line}");
    assert_eq!(badge(&html), "exploding → healthy");
}

#[test]
fn a_deep_sigmoid_network_vanishes_and_does_not_learn() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, stdout, html) = train(tmp.path(), &["--depth", "20", "--activation", "sigmoid", "--steps", "600"]);
    assert_eq!(code, 0, "{stdout}");
    let (line, head) = verdict(&stdout);
    assert!(line.contains("at step 0 (vanishing)") && line.contains("at the end (vanishing)"), "{line}");
    assert_eq!(head, "did not learn", "{line}");
    assert_eq!(badge(&html), "did not learn");
}

#[test]
fn help_states_the_thresholds() {
    for cmd in [&["--help"][..], &["train", "--help"], &["demo", "--help"], &["report", "--help"]] {
        let out = Command::cargo_bin("gradscope").unwrap().args(cmd).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains(gradscope::verdict::RULES), "{cmd:?} --help lacks the verdict rules");
    }
}
