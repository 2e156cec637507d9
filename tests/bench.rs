//! `gradscope bench` end to end: every config line carries this machine's measured peak and the
//! fraction of it that the step reached (issue 16).

use assert_cmd::Command;
use serde_json::Value;

#[test]
fn bench_json_reports_the_peak_and_the_fraction_of_it() {
    let out = Command::cargo_bin("gradscope")
        .unwrap()
        .args(["bench", "--config", "tiny", "--threads", "1", "--steps", "5", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let line: Value = serde_json::from_slice(&out).unwrap();
    let (peak, fraction, gflops) = (
        line["peak_gflops"].as_f64().unwrap(),
        line["fraction_of_peak"].as_f64().unwrap(),
        line["gflops"].as_f64().unwrap(),
    );
    assert!(peak > 0.0 && gflops > 0.0, "{line}");
    assert!((fraction - gflops / peak).abs() <= 1e-12 * fraction, "{line}");
    // the tiny step is far from the FMA peak: if it were not, the peak would be wrong
    assert!(fraction < 1.0, "{line}");
}

#[test]
fn bench_table_names_the_peak_kernel() {
    let out = Command::cargo_bin("gradscope")
        .unwrap()
        .args(["bench", "--config", "tiny", "--threads", "1", "--steps", "3"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("of peak") && text.contains("FMA kernel, 12 accumulators per thread"), "{text}");
}
