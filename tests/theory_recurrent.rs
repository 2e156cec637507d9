//! `gradscope theory --cell …` (issue 14, item 4): the printed and JSON numbers are the library's
//! (`theory::recurrent`), and the measured per-step factor sits beside the mean-field one.

mod common;

use common::gradscope;
use gradscope::nn::recurrent::{Cell, HiddenInit, RecurrentConfig};
use gradscope::theory::recurrent::{init_variances, measure_rnn, pascanu_bound, rnn_mean_field};
use serde_json::Value;

fn theory_json(args: &[&str]) -> Value {
    let out = gradscope().arg("theory").args(args).arg("--json").assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The JSON is the library's numbers exactly; the measured factor is within 10 % of χ.
#[test]
fn tanh_rnn_json_is_the_library_and_the_measurement_agrees() {
    let (hidden, input, seq, seeds, seed) = (128, 4, 24, 6, 3);
    for (name, init) in [("default", HiddenInit::Pytorch), ("orthogonal", HiddenInit::Orthogonal)] {
        let v = theory_json(&[
            "--cell",
            "rnn_tanh",
            "--hidden",
            "128",
            "--init",
            name,
            "--seq-len",
            "24",
            "--measure",
            "--seeds",
            "6",
            "--seed",
            "3",
        ]);
        let r = &v["recurrent"];
        let mut cfg = RecurrentConfig::new(Cell::RnnTanh, input, hidden, 1, 1);
        cfg.hidden_init = init;
        let b = pascanu_bound(&cfg, seed).unwrap();
        assert_eq!(f(&r["pascanu"]["sigma_max_measured"][0]), b.sigma_max_measured[0], "{name}");
        assert_eq!(f(&r["pascanu"]["sigma_max_predicted"]), b.sigma_max_predicted);
        assert_eq!((f(&r["pascanu"]["line"]), r["pascanu"]["must_vanish"].as_bool()), (1.0, Some(b.must_vanish)));
        let (s_hh, s_in) = init_variances(init, hidden, input, 1.0).unwrap();
        let mf = rnn_mean_field(Cell::RnnTanh, s_hh, s_in).unwrap();
        assert_eq!(f(&r["mean_field"]["chi"]), mf.chi, "{name}");
        assert_eq!(f(&r["mean_field"]["q_star"]), mf.q_star);
        assert_eq!(f(&r["ratio_through_time"]), mf.chi.powi(seq as i32 - 1));
        let m = measure_rnn(Cell::RnnTanh, init, hidden, input, 1.0, seq, seeds, seed).unwrap();
        let mj = &v["measurement"];
        assert_eq!(f(&mj["chi"]), m.chi, "{name}");
        assert_eq!(mj["grad_h_sq"].as_array().unwrap().len(), seq);
        let rel = f(&mj["relative_error"]);
        assert_eq!(rel, m.chi / mf.chi - 1.0);
        // the gradient-independence approximation holds for random tanh RNNs this wide
        assert!(rel.abs() < 0.10, "{name}: measured χ {} vs predicted {} ({rel:+.3})", m.chi, mf.chi);
    }
}

/// The text shows the same numbers as the JSON, as printed.
#[test]
fn tanh_rnn_text_prints_the_bound_and_both_factors() {
    let args = ["--cell", "rnn_tanh", "--hidden", "64", "--seq-len", "12", "--measure", "--seeds", "2"];
    let v = theory_json(&args);
    let out = gradscope().arg("theory").args(args).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    let chi = format!("{:.4}", f(&v["recurrent"]["mean_field"]["chi"]));
    let measured = format!("measured {:.4}", f(&v["measurement"]["chi"]));
    let sigma = format!("{:.4}", f(&v["recurrent"]["pascanu"]["sigma_max_measured"][0]));
    for want in [chi.as_str(), measured.as_str(), sigma.as_str(), "Pascanu", "1/γ = 1", "W_hh init default"] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
}

/// A gated cell: the bound per gate block, no mean-field factor (and says why), the factor
/// measured all the same.
#[test]
fn lstm_gets_the_bound_per_gate_and_a_measured_factor() {
    let v = theory_json(&["--cell", "lstm", "--hidden", "32", "--seq-len", "10", "--measure", "--seeds", "2"]);
    let r = &v["recurrent"];
    assert_eq!(r["pascanu"]["sigma_max_measured"].as_array().unwrap().len(), 4, "{v}");
    assert!(r["mean_field"].is_null() && r["mean_field_note"].as_str().unwrap().contains("Elman"), "{v}");
    let m = measure_rnn(Cell::Lstm, HiddenInit::Pytorch, 32, 4, 1.0, 10, 2, 0).unwrap();
    assert_eq!(f(&v["measurement"]["chi"]), m.chi);
    assert!(v["measurement"]["relative_error"].is_null());
}

/// Bad input: exit 2 naming the flag; flags of the MLP theory that do not apply are refused.
#[test]
fn recurrent_theory_refuses_what_does_not_apply() {
    let err = gradscope()
        .args(["theory", "--cell", "rnn_tanh", "--init", "gaussian"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("init") && err.contains("orthogonal or identity"), "{err}");
    let err = gradscope().args(["theory", "--cell", "gru", "--seq-len", "5", "--measure"]).assert().code(2);
    let err = String::from_utf8(err.get_output().stderr.clone()).unwrap();
    assert!(err.contains("seq_len") && err.contains("8"), "{err}");
    gradscope().args(["theory", "--cell", "lstm", "--sigma-w2", "1"]).assert().code(2);
    // identity: the bound (σ_max = 1 exactly), no mean field (W_hh is not random)
    let v = theory_json(&["--cell", "rnn_relu", "--init", "identity", "--hidden", "16"]);
    assert!((f(&v["recurrent"]["pascanu"]["sigma_max_measured"][0]) - 1.0).abs() < 1e-12, "{v}");
    assert!(v["recurrent"]["mean_field"].is_null(), "{v}");
}
