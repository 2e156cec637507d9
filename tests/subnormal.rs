//! The subnormal puzzle of issue 13: `demo --remedies`' sigmoid-plain and sigmoid-clip differ only
//! in clipping and have the same step-0 loss, yet layer 0's recorded ‖∂L/∂W‖ was 0 in one and
//! 2.07e-43 in the other. The unclipped norm came from the optimizer's loop, which squared the
//! f32 gradient in f32 (a square of 2e-43 underflows to 0); the clipped one was measured before
//! clipping with f64 squares. Both now square in f64 and sum in the same order.

use assert_cmd::Command;
use serde_json::Value;

fn first_record(dir: &std::path::Path, clip: bool) -> Value {
    let mut cmd = Command::cargo_bin("gradscope").unwrap();
    // the remedies demo's sigmoid-plain config (cli::demo::remedies_setups), two steps
    cmd.args(["train", "--data", "regression", "--depth", "50", "--width", "64", "--activation", "sigmoid"])
        .args(["--init", "pytorch", "--loss", "mse", "--lr", "0.01", "--momentum", "0.9", "--batch-size", "64"])
        .args(["--steps", "2", "--probe-every", "1", "--seed", "0", "--threads", "1", "--quiet", "--no-report"])
        .arg("--out")
        .arg(dir);
    if clip {
        cmd.args(["--clip-norm", "1"]);
    }
    cmd.assert().success();
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

#[test]
fn a_clipped_and_an_unclipped_run_record_the_same_step_0_norms() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = first_record(&tmp.path().join("plain"), false);
    let clip = first_record(&tmp.path().join("clip"), true);
    assert_eq!(plain["train_loss"], clip["train_loss"]);
    assert_eq!(clip["clipped"], true, "the clipped run clipped at step 0");
    let (lp, lc) = (plain["layers"].as_array().unwrap(), clip["layers"].as_array().unwrap());
    for (p, c) in lp.iter().zip(lc) {
        for key in ["grad_w_norm", "grad_z_norm", "grad_h_norm", "weight_norm"] {
            assert_eq!(p[key], c[key], "layer {} {key}", p["layer"]);
        }
    }
    // layer 0's gradient is subnormal in f32 (about 2e-43), not 0: its square needs f64
    let g0 = lp[0]["grad_w_norm"].as_f64().unwrap();
    assert!(g0 > 0.0 && g0 < 1e-38, "layer 0's ‖∂L/∂W‖ = {g0}");
    assert!(lp[0]["grad_z_norm"].as_f64().unwrap() > 0.0);
    assert_eq!(plain["vanishing_ratio"], clip["vanishing_ratio"]);
}
