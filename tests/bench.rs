//! `gradscope bench` end to end: every config line carries this machine's measured peak and the
//! fraction of it that the step reached (issue 16).

use assert_cmd::Command;
use serde_json::Value;

/// The standard output of `gradscope bench ARGS`, which must succeed.
fn bench(args: &[&str]) -> Vec<u8> {
    Command::cargo_bin("gradscope").unwrap().arg("bench").args(args).assert().success().get_output().stdout.clone()
}

/// [`bench`] with `--json`: its one line.
fn bench_json(args: &[&str]) -> Value {
    let out = bench(&[args, &["--json"]].concat());
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

#[test]
fn bench_json_reports_the_peak_and_the_fraction_of_it() {
    let line = bench_json(&["--config", "tiny", "--threads", "1", "--steps", "5"]);
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
    let text = String::from_utf8(bench(&["--config", "tiny", "--threads", "1", "--steps", "3"])).unwrap();
    assert!(text.contains("of peak") && text.contains("FMA kernel, 12 accumulators per thread"), "{text}");
}

/// issue 14: `bench --config lstm` times the recurrent step with the MLP configs' columns, and
/// says which cell and sequence length it timed; probing every step works too.
#[test]
fn bench_lstm_reports_the_recurrent_shape_and_the_same_columns() {
    for probe_every in ["0", "1"] {
        let line = bench_json(&["--config", "lstm", "--threads", "1", "--steps", "2", "--probe-every", probe_every]);
        let shape = &line["shape"];
        assert_eq!(shape["cell"], "lstm", "{line}");
        assert_eq!(
            (shape["seq_len"].as_u64(), shape["inputs"].as_u64(), shape["width"].as_u64()),
            (Some(28), Some(28), Some(128))
        );
        // 28 steps × 3 products of x_t·W_ihᵀ and h_{t−1}·W_hhᵀ (4 gate blocks), and the head's 3
        let want = 28.0 * 3.0 * 2.0 * 128.0 * 512.0 * (28.0 + 128.0) + 3.0 * 2.0 * 128.0 * 128.0 * 10.0;
        assert_eq!(line["flops_per_step"].as_f64(), Some(want), "{line}");
        let (median, gflops) = (line["median_ms"].as_f64().unwrap(), line["gflops"].as_f64().unwrap());
        assert!((gflops - want / (median * 1e-3) / 1e9).abs() <= 1e-9 * gflops, "{line}");
        for key in ["min_ms", "max_ms", "peak_gflops", "fraction_of_peak"] {
            assert!(line[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {line}");
        }
    }
    // the MLP configs' JSON has no recurrent fields
    let line = bench_json(&["--config", "tiny", "--threads", "1", "--steps", "2"]);
    assert!(line["shape"].get("cell").is_none() && line["shape"].get("seq_len").is_none(), "{line}");
}
