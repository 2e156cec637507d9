//! Theory beside measurement (issue 5): random networks built by the engine agree with the
//! mean-field prediction, and `gradscope theory` says so end to end.

mod common;

use common::gradscope;
use gradscope::nn::{Activation, Init};
use gradscope::theory::measure::{MeasureSpec, NetworkSpec};
use gradscope::theory::{Critical, MeanField, critical_sigma_w2, jacobian_spectrum, measure};
use predicates::prelude::*;
use serde_json::Value;

fn network(
    activation: Activation,
    init: Init,
    sigma_w2: f64,
    sigma_b2: f64,
    width: usize,
    depth: usize,
) -> NetworkSpec {
    NetworkSpec { activation, init, sigma_w2, sigma_b2, width, depth, q0: 1.0, seed: 0, threads: 1 }
}

fn tanh_critical(sigma_b2: f64) -> f64 {
    match critical_sigma_w2(Activation::Tanh, sigma_b2, 1.0).unwrap() {
        Critical::At(s) => s,
        other => panic!("tanh has a critical σ_w² at σ_b² = {sigma_b2}: {other:?}"),
    }
}

/// The acceptance check: tanh at σ_b² = 0.05 and σ_w² ∈ {1.0, critical, 2.5}, width 500:
/// the fitted per-layer factor of ‖∂L/∂z_l‖² is within 5% of χ₁, and q^l and c^l follow their
/// maps layer by layer.
#[test]
fn measured_gradient_factor_matches_chi1_for_tanh() {
    let critical = tanh_critical(0.05);
    for sigma_w2 in [1.0, critical, 2.5] {
        let spec = MeasureSpec {
            network: network(Activation::Tanh, Init::Gaussian, sigma_w2, 0.05, 500, 20),
            seeds: 2,
            pairs: 8,
            c0: 0.5,
        };
        let m = measure(&spec).unwrap();
        assert!(
            m.relative_error.abs() < 0.05,
            "σ_w² = {sigma_w2}: measured factor {} vs χ₁ {}",
            m.measured_factor,
            m.theory.chi1
        );
        assert!(m.fit_from > 0 && m.fit_from < 10, "the fit skips the transient from q¹ to q*: {}", m.fit_from);
        // q^l of one network is a mean over 500 units of (w_i·h + b_i)², each row w_i and b_i
        // drawn once: it fluctuates by about √(2/500) ≈ 6% from network to network, 4% over two.
        // Per layer within 15%, on average over the layers within 5%.
        let q_err: Vec<f64> = m.layers.iter().map(|l| (l.q_measured / l.q_predicted - 1.0).abs()).collect();
        assert!(q_err.iter().sum::<f64>() / (q_err.len() as f64) < 0.05, "σ_w² = {sigma_w2}: {q_err:?}");
        for l in &m.layers {
            assert!((l.q_measured / l.q_predicted - 1.0).abs() < 0.15, "σ_w² = {sigma_w2}, layer {}: q {l:?}", l.layer);
            assert!((l.c_measured - l.c_predicted).abs() < 0.04, "σ_w² = {sigma_w2}, layer {}: c {l:?}", l.layer);
            let g = l.grad_z2_measured / l.grad_z2_predicted;
            assert!((g - 1.0).abs() < 0.15, "σ_w² = {sigma_w2}, layer {}: ‖∂L/∂z‖² {l:?}", l.layer);
        }
    }
}

/// The comparison can fail: networks drawn at σ_w² = 1.25 are not described by χ₁ at 1.0.
#[test]
fn a_wrong_sigma_w2_is_caught() {
    let spec = MeasureSpec {
        network: network(Activation::Tanh, Init::Gaussian, 1.25, 0.05, 500, 20),
        seeds: 2,
        pairs: 4,
        c0: 0.5,
    };
    let m = measure(&spec).unwrap();
    let chi1_wrong = MeanField::new(Activation::Tanh, 1.0, 0.05).unwrap().fixed_point(1.0).chi1;
    assert!((m.measured_factor / chi1_wrong - 1.0).abs() > 0.05, "{} vs {chi1_wrong}", m.measured_factor);
}

/// Dynamical isometry (Pennington et al. 2017): tanh at criticality with a small q* keeps the
/// Jacobian's singular values near 1 with orthogonal weights, not with Gaussian ones; relu's
/// 0/1 derivatives spread them even with orthogonal weights. The mean of s² follows χ₁ (= 1
/// here) for all of them.
#[test]
fn orthogonal_tanh_at_criticality_is_dynamically_isometric() {
    let sigma_b2 = 1e-5;
    let sigma_w2 = tanh_critical(sigma_b2);
    let q0 = MeanField::new(Activation::Tanh, sigma_w2, sigma_b2).unwrap().fixed_point_input(1.0).unwrap();
    let spectrum = |act, init, w, b, q0| {
        let net = NetworkSpec { q0, seed: 1, ..network(act, init, w, b, 200, 30) };
        jacobian_spectrum(&net, 2, 12).unwrap()
    };
    let orth = spectrum(Activation::Tanh, Init::Orthogonal, sigma_w2, sigma_b2, q0);
    let gauss = spectrum(Activation::Tanh, Init::Gaussian, sigma_w2, sigma_b2, q0);
    let relu = spectrum(Activation::Relu, Init::Orthogonal, 2.0, 0.0, 1.0);
    // isometry needs a small q*: at σ_b² = 0.05 (q* = 0.57) orthogonal tanh spreads too
    let (w_large, b_large) = (tanh_critical(0.05), 0.05);
    let q0_large = MeanField::new(Activation::Tanh, w_large, b_large).unwrap().fixed_point_input(1.0).unwrap();
    let large_q = spectrum(Activation::Tanh, Init::Orthogonal, w_large, b_large, q0_large);
    assert!(large_q.fraction_near_1 < 0.5, "{large_q:?}");
    assert!(orth.fraction_near_1 > 0.95 && orth.condition_number < 20.0, "{orth:?}");
    assert!(gauss.fraction_near_1 < 0.2 && gauss.condition_number > 1e6, "{gauss:?}");
    assert!(relu.fraction_near_1 < 0.2 && relu.condition_number > 1e6, "{relu:?}");
    assert!((orth.predicted_mean_sq - 1.0).abs() < 1e-6);
    assert!((orth.mean_sq / orth.predicted_mean_sq - 1.0).abs() < 0.1, "{orth:?}");
    assert!((gauss.mean_sq / gauss.predicted_mean_sq - 1.0).abs() < 0.3, "{gauss:?}");
    assert_eq!(orth.histogram.counts.iter().sum::<usize>(), 2 * 200);
}

fn json_of(args: &[&str]) -> Value {
    let out = gradscope().args(args).assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn theory_critical_json_has_the_fixed_point() {
    let v = json_of(&["theory", "--activation", "tanh", "--critical", "--sigma-b2", "0", "--depth", "5", "--json"]);
    let t = &v["theory"];
    assert!((t["sigma_w2"].as_f64().unwrap() - 1.0).abs() < 1e-6, "{t}");
    assert_eq!(t["source"], "critical");
    assert_eq!(t["fixed_point"]["phase"], "critical");
    assert!(t["fixed_point"]["xi_c"].is_null());
    assert_eq!(t["layers"].as_array().unwrap().len(), 6);
    let v = json_of(&["theory", "--activation", "relu", "--init", "kaiming_normal", "--json"]);
    assert!((v["theory"]["sigma_w2"].as_f64().unwrap() - 2.0).abs() < 1e-12);
    assert!((v["theory"]["fixed_point"]["chi1"].as_f64().unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn theory_measure_and_jacobian_print_beside_the_prediction() {
    let args = ["theory", "--activation", "tanh", "--sigma-w2", "1.5", "--sigma-b2", "0.05", "--depth", "6"];
    let small = ["--width", "64", "--seeds", "1", "--pairs", "2", "--samples", "1", "--threads", "1"];
    let v = json_of(&[&args[..], &small, &["--measure", "--jacobian", "--json"]].concat());
    assert_eq!(v["measurement"]["layers"].as_array().unwrap().len(), 7);
    assert!(v["measurement"]["measured_factor"].as_f64().unwrap() > 0.0);
    assert_eq!(v["jacobian"]["singular_values"][0].as_array().unwrap().len(), 64);
    gradscope().args([&args[..], &small, &["--measure", "--jacobian"]].concat()).assert().success().stdout(
        predicate::str::contains("χ₁")
            .and(predicate::str::contains("fitted over layers"))
            .and(predicate::str::contains("input–output Jacobian")),
    );
}

#[test]
fn theory_bad_input_exits_2_naming_the_value() {
    let cases: [(&[&str], &str); 5] = [
        (&["theory", "--sigma-w2", "-1"], "sigma_w2 = -1"),
        (&["theory", "--activation", "tanh"], "--sigma-w2"),
        (&["theory", "--activation", "gelu", "--critical", "--sigma-b2", "0.05"], "jumps across 1"),
        (&["theory", "--sigma-w2", "1", "--measure", "--init", "orthogonal", "--depth", "1"], "depth = 1"),
        (&["theory", "--init", "xavier_normal", "--sigma-w2", "1"], "init = xavier_normal"),
    ];
    for (args, msg) in cases {
        gradscope().args(args).assert().code(2).stderr(predicate::str::contains(msg));
    }
    gradscope().args(["theory", "--sigma-w2", "1", "--critical"]).assert().code(2);
}

/// The report's dashed line (issue #5, point 4): for a gaussian tanh run the mean-field
/// prediction follows the measured step-0 gradient norms through the hidden layers, and the
/// gradient-flow figure draws it; a 2-layer run gets none.
#[test]
fn report_overlays_the_predicted_decay() {
    use gradscope::report::{figures, model};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    gradscope()
        .args(["train", "--depth", "20", "--width", "256", "--init", "gaussian", "--sigma-w2", "1.0"])
        .args(["--sigma-b2", "0.05", "--activation", "tanh", "--steps", "1", "--quiet", "--no-report", "--out"])
        .arg(&out)
        .assert()
        .success();
    // the report gets the prediction from its caller, as `gradscope report` does (run::theory_for)
    let mut run = model::load_run(&out).unwrap();
    run.theory = gradscope::run::theory_for(&run.config, gradscope::prepare::read_info(&out).unwrap().map(|i| i.q0));
    let predicted = figures::predicted_flow(&run).expect("a prediction for a gaussian tanh run");
    let measured = &run.records[0].layers;
    // the decay between hidden layers 2 and 18 (16 layers of χ₁ ≈ 0.76: about 9e-2 in norm)
    let want = predicted.iter().find(|p| p.0 == 2.0).unwrap().1 / predicted.iter().find(|p| p.0 == 18.0).unwrap().1;
    let got = measured[2].grad_w_norm / measured[18].grad_w_norm;
    assert!((got / want).ln().abs() < 2f64.ln(), "measured decay {got}, predicted {want}");
    assert!(want < 0.2, "the prediction decays: {want}");
    let report = gradscope::run::load_report(std::slice::from_ref(&out), "test".into()).unwrap();
    let fig = figures::gradient_flow(&report);
    assert!(format!("{:?}", fig.panels).contains("mean-field prediction"));
    let mut shallow = run.clone();
    shallow.config.depth = 2;
    assert!(figures::predicted_flow(&shallow).is_none());
}
