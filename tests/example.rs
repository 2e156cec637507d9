//! `examples/library.rs` runs: it trains, probes and writes a report through the public API.
//! The example's file is compiled here as a module, so this test runs exactly its code.

#[allow(dead_code)] // its `main`
#[path = "../examples/library.rs"]
mod library;

#[test]
fn the_library_example_trains_probes_and_writes_a_report() {
    let t = tempfile::tempdir().unwrap();
    let html = library::example(t.path()).unwrap();
    assert_eq!(html, t.path().join("report.html"));
    assert!(html.is_file());
    let run = t.path().join("sigmoid-depth8");
    for f in ["config.toml", "metrics.jsonl", "summary.json", "weights.safetensors"] {
        assert!(run.join(f).is_file(), "{f}");
    }
    // probed at steps 0, 50, 100, 150 and the final probe at 200
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 5, "{metrics}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("cargo run --example library"));
}
