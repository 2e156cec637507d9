//! `examples/library.rs` runs: it trains, probes and writes a report through the public API.
//! `cargo test` builds the examples beside the test binaries, so this runs that build.

use std::path::PathBuf;

/// target/<profile>/examples/library, from this test's own path (target/<profile>/deps/…).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/this-test");
    profile.join("examples").join(format!("library{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn the_library_example_trains_probes_and_writes_a_report() {
    let bin = example_binary();
    assert!(bin.is_file(), "{} missing: run through `cargo test`, which builds the examples", bin.display());
    let t = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&bin).arg(t.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("step   0"), "{stdout}");
    assert!(t.path().join("report.html").is_file());
    for f in ["config.toml", "metrics.jsonl", "summary.json", "weights.safetensors"] {
        assert!(t.path().join("sigmoid-depth8").join(f).is_file(), "{f}");
    }
    // the step-by-step Trainer and train_into record the same probed steps
    let probed = stdout.lines().filter(|l| l.trim_start().starts_with("step ")).count();
    assert_eq!(probed, 2 * 5, "{stdout}");
}
