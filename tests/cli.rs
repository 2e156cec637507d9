//! The `gradscope` binary end to end: commands, formats and exit codes as a user meets them.

mod common;

use assert_cmd::Command;
use common::gradscope;
use gradscope::nn::gradcheck::rel_error;
use gradscope::nn::{Activation, Loss, Targets, Threads};
use predicates::prelude::*;
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::Path;

/// Runs `cmd`, asserts it succeeded, and returns its stdout.
fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tensor(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<f64>) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|_| panic!("no tensor {name} in {:?}", st.names()));
    let values = match t.dtype() {
        safetensors::Dtype::F32 => {
            t.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
        }
        safetensors::Dtype::F64 => t.data().chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        d => panic!("dtype {d:?}"),
    };
    (t.shape().to_vec(), values)
}

#[test]
fn help_lists_every_flag_and_default() {
    let out = gradscope().args(["train", "--help"]).assert().success().get_output().stdout.clone();
    let help = String::from_utf8(out).unwrap();
    for key in gradscope::config::CONFIG_KEYS.iter() {
        let flag = format!("--{}", key.replace('_', "-"));
        assert!(help.contains(&flag), "train --help lacks {flag}");
    }
    for default in [
        "[default: regression]",
        "[default: sigmoid]",
        "[default: pytorch]",
        "[default: 64]",
        "[default: gradscope-out/train]",
    ] {
        assert!(help.contains(default), "train --help lacks {default}");
    }
    for cmd in ["demo", "probe"] {
        gradscope().args([cmd, "--help"]).assert().success().stdout(predicate::str::contains("[default:"));
    }
    gradscope()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("demo").and(predicate::str::contains("probe")));
}

#[test]
fn train_writes_the_four_files_and_its_config_repeats_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    gradscope()
        .args([
            "train",
            "--depth",
            "3",
            "--width",
            "16",
            "--activation",
            "tanh",
            "--steps",
            "50",
            "--probe-every",
            "10",
        ])
        .args(["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--weight-decay", "1e-4", "--quiet", "--out"])
        .arg(&a)
        .assert()
        .success();
    for f in ["config.toml", "metrics.jsonl", "summary.json", "weights.safetensors"] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let config = std::fs::read_to_string(a.join("config.toml")).unwrap();
    for line in ["depth = 3", "activation = \"tanh\"", "lr = 0.01", "nesterov = true", "threads = "] {
        assert!(config.contains(line), "config.toml lacks {line}:\n{config}");
    }
    let lines: Vec<Value> = std::fs::read_to_string(a.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = lines.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 10, 20, 30, 40, 50]);
    for l in &lines {
        assert!(l["train_loss"].is_f64() && l["epoch"].is_u64() && l["vanishing_ratio"].is_f64());
        let layers = l["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 4);
        for (i, layer) in layers.iter().enumerate() {
            assert_eq!(layer["layer"], i);
            for k in [
                "grad_w_norm",
                "grad_b_norm",
                "grad_z_norm",
                "grad_h_norm",
                "act_mean",
                "act_std",
                "dact_mean",
                "saturation",
                "weight_norm",
            ] {
                assert!(layer[k].is_f64(), "{k} missing in {layer}");
            }
            assert!(layer.get("update_ratio").is_some());
        }
    }
    let summary = json(&a.join("summary.json"));
    for k in ["train_loss", "test_loss", "vanishing_ratio", "steps", "wall_time_s", "seed", "gradscope_version"] {
        assert!(!summary[k].is_null(), "summary lacks {k}");
    }
    assert_eq!(summary["steps"], 50);
    let weights = std::fs::read(a.join("weights.safetensors")).unwrap();
    assert_eq!(tensor(&weights, "layers.0.weight").0, [16, 16]);
    assert_eq!(tensor(&weights, "layers.3.weight").0, [1, 16]);
    assert_eq!(tensor(&weights, "layers.3.bias").0, [1]);

    // the saved config repeats the run exactly
    let b = tmp.path().join("b");
    gradscope()
        .args(["train", "--quiet", "--config"])
        .arg(a.join("config.toml"))
        .arg("--out")
        .arg(&b)
        .assert()
        .success();
    assert_eq!(weights, std::fs::read(b.join("weights.safetensors")).unwrap());
    assert_eq!(std::fs::read(a.join("metrics.jsonl")).unwrap(), std::fs::read(b.join("metrics.jsonl")).unwrap());

    // flags override the file
    let c = tmp.path().join("c");
    gradscope()
        .args(["train", "--quiet", "--steps", "5", "--config"])
        .arg(a.join("config.toml"))
        .arg("--out")
        .arg(&c)
        .assert()
        .success();
    assert_eq!(json(&c.join("summary.json"))["steps"], 5);
    assert!(std::fs::read_to_string(c.join("config.toml")).unwrap().contains("depth = 3"));
}

#[test]
fn json_flag_prints_only_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = gradscope()
        .args(["train", "--data", "spirals", "--loss", "cross_entropy", "--steps", "20", "--json", "--out"])
        .arg(tmp.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v["test_accuracy"].as_f64().is_some());
}

#[test]
fn a_diverging_run_exits_1_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    gradscope()
        .args([
            "train",
            "--activation",
            "relu",
            "--init",
            "kaiming_normal",
            "--depth",
            "6",
            "--lr",
            "1e6",
            "--steps",
            "50",
            "--out",
        ])
        .arg(tmp.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("diverged"));
    let s = json(&tmp.path().join("summary.json"));
    assert_eq!(s["diverged"], true);
    assert!(s["diverged_at_step"].is_u64());
    // the report says what happened instead of drawing NaN
    let html = std::fs::read_to_string(tmp.path().join("report.html")).unwrap();
    let at = format!("The loss became NaN or infinite at step {}", s["diverged_at_step"]);
    assert!(html.contains(&at), "report lacks '{at}'");
    assert!(!html.contains(">NaN<"), "report draws NaN");
}

/// probe's gradients equal central differences in f64 of the same loss on the same rows.
#[test]
fn probe_gradients_match_finite_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p");
    gradscope()
        .args([
            "probe",
            "--depth",
            "3",
            "--width",
            "8",
            "--activation",
            "gelu",
            "--init",
            "xavier_normal",
            "--seed",
            "7",
        ])
        .args(["--batch-size", "32", "--loss", "sse", "--dtype", "f64", "--out"])
        .arg(&out)
        .assert()
        .success();
    let probe = json(&out.join("probe.json"));
    let grads = std::fs::read(out.join("grads.safetensors")).unwrap();
    let w = gradscope::io::weights::load(&out.join("weights.safetensors")).unwrap();
    assert_eq!(w.activation, Some(Activation::Gelu));
    let mlp = w.to_mlp::<f64>(Activation::Gelu);
    // the same rows: the first 32 of the built-in regression set for seed 7
    let data = gradscope::data::synthetic::regression(7).train.head(32);
    let x = data.x.mapv(f64::from);
    let y = match &data.y {
        gradscope::data::Labels::Values(v) => v.mapv(f64::from),
        _ => unreachable!(),
    };
    let checks = gradscope::nn::gradcheck::check_mlp(&mlp, x.view(), Targets::Values(y.view()), Loss::Sse);
    let mut net = mlp.clone();
    let loss = net.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Sse, Threads::One);
    assert!((probe["train_loss"].as_f64().unwrap() - loss).abs() <= 1e-12 * loss.abs());
    for c in &checks {
        assert!(c.passes(1e-7), "finite differences disagree with backward on {}: {}", c.name, c.rel_error);
    }
    for (l, layer) in net.layers.iter().enumerate() {
        let (shape, g) = tensor(&grads, &format!("layers.{l}.weight"));
        assert_eq!(shape, layer.weight.shape());
        let ours: Vec<f64> = layer.grad_weight.iter().copied().collect();
        assert!(rel_error(&g, &ours) < 1e-12);
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let probed = probe["layers"][l]["grad_w_norm"].as_f64().unwrap();
        assert!((norm - probed).abs() <= 1e-12 * norm);
    }
}

/// A PyTorch `nn.Sequential` state_dict (0.weight, 2.weight, 4.weight …) is read in index order
/// (so 10 comes after 2), probed with the activation given, and its gradients keep its names.
#[test]
fn probe_reads_pytorch_sequential_names() {
    let tmp = tempfile::tempdir().unwrap();
    // 12 modules: Linear at 0, 2, 4, 6, 8, 10, sizes 16 → 5 → … → 5 → 1
    let mut tensors = Vec::new();
    let mut fan_in = 16;
    for (k, idx) in [0, 2, 4, 6, 8, 10].iter().enumerate() {
        let fan_out = if k == 5 { 1 } else { 5 };
        let w: Vec<u8> =
            (0..fan_in * fan_out).flat_map(|i| (((i * 37 + k) % 11) as f32 * 0.05 - 0.25).to_le_bytes()).collect();
        let b: Vec<u8> = (0..fan_out).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
        tensors.push((format!("{idx}.weight"), vec![fan_out, fan_in], w));
        tensors.push((format!("{idx}.bias"), vec![fan_out], b));
        fan_in = fan_out;
    }
    let bytes = gradscope::io::weights::serialize::<f32>(tensors, Default::default());
    let file = tmp.path().join("torch.safetensors");
    std::fs::write(&file, bytes).unwrap();
    let out = tmp.path().join("p");
    // no --activation: PyTorch files carry none, so probe must ask for it
    gradscope()
        .args(["probe", "--weights"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--activation"));
    // wrong depth
    gradscope()
        .args(["probe", "--activation", "tanh", "--depth", "3", "--weights"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("5 hidden layers"));
    assert!(!out.exists());
    gradscope()
        .args(["probe", "--activation", "tanh", "--batch-size", "100", "--weights"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let grads = std::fs::read(out.join("grads.safetensors")).unwrap();
    assert_eq!(tensor(&grads, "10.weight").0, [1, 5]);
    assert_eq!(tensor(&grads, "2.weight").0, [5, 5]);
    assert_eq!(tensor(&grads, "0.weight").0, [5, 16]);
    let probe = json(&out.join("probe.json"));
    assert_eq!(probe["layers"].as_array().unwrap().len(), 6);
    // data with the wrong number of features
    gradscope()
        .args(["probe", "--activation", "tanh", "--data", "spirals", "--weights"])
        .arg(&file)
        .arg("--out")
        .arg(tmp.path().join("q"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("16 inputs but the data has 2 features"));
}

#[test]
fn demo_prints_the_table_and_writes_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let text = stdout_of(gradscope().args(["demo", "--steps", "30", "--out"]).arg(tmp.path()));
    assert!(text.contains("vanishing ratio"), "{text}");
    for run in [
        "sigmoid-depth2",
        "sigmoid-depth5",
        "sigmoid-depth10",
        "sigmoid-depth20",
        "tanh-xavier-depth20",
        "relu-kaiming-depth20",
    ] {
        assert!(text.contains(run));
        assert!(tmp.path().join(run).join("summary.json").is_file(), "{run} not written");
    }
    // one report compares all six runs, its path printed last
    assert!(text.trim_end().ends_with(&format!("report: {}", tmp.path().join("report.html").display())), "{text}");
    let html = std::fs::read_to_string(tmp.path().join("report.html")).unwrap();
    for label in
        ["sigmoid, pytorch init, depth 2", "tanh, xavier_normal init, depth 20", "relu, kaiming_normal init, depth 20"]
    {
        assert!(html.contains(label), "report lacks {label}");
    }
    assert!(html.contains("gradscope demo --steps 30 --out"), "the command that made it");
    let sig = json(&tmp.path().join("sigmoid-depth20/summary.json"))["vanishing_ratio"].as_f64().unwrap();
    let relu = json(&tmp.path().join("relu-kaiming-depth20/summary.json"))["vanishing_ratio"].as_f64().unwrap();
    assert!(sig < 1e-2 && relu > 1e3 * sig, "sigmoid {sig}, relu {relu}");
    // the demo owns its runs' folders: a second invocation replaces them instead of failing
    let again = stdout_of(gradscope().args(["demo", "--steps", "20", "--no-report", "--out"]).arg(tmp.path()));
    assert!(again.contains("runs written under"), "{again}");
    assert_eq!(json(&tmp.path().join("sigmoid-depth2/summary.json"))["steps"], 20);
}

/// `train` ends with report.html (unless --no-report); `report` makes it again later, for one run
/// or several, and names a folder that is not a run.
#[test]
fn report_writes_html_and_figures_and_names_bad_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("runs/a"), tmp.path().join("runs/b"));
    let text = stdout_of(
        gradscope()
            .args(["train", "--depth", "3", "--width", "8", "--steps", "20", "--probe-every", "5", "--out"])
            .arg(&a),
    );
    assert!(text.contains(&format!("report: {}", a.join("report.html").display())), "{text}");
    for f in
        ["report.html", "command.txt", "figures/gradient-flow.svg", "figures/gradient-flow.png", "figures/heatmap.svg"]
    {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let command = std::fs::read_to_string(a.join("command.txt")).unwrap();
    assert!(command.starts_with("gradscope train --depth 3 --width 8"), "{command}");
    gradscope()
        .args([
            "train",
            "--activation",
            "relu",
            "--depth",
            "3",
            "--width",
            "8",
            "--steps",
            "20",
            "--probe-every",
            "5",
            "--no-report",
            "--out",
        ])
        .arg(&b)
        .assert()
        .success();
    assert!(!b.join("report.html").exists() && !b.join("figures").exists(), "--no-report wrote a report");

    // several runs: the report goes to their common folder and labels them by what differs
    gradscope().arg("report").arg(&a).arg(&b).assert().success();
    let html = std::fs::read_to_string(tmp.path().join("runs/report.html")).unwrap();
    assert!(html.contains("sigmoid</td>") && html.contains("relu</td>"), "labels by activation");
    assert!(html.contains("gradscope report "), "the command that made it");
    // a folder of runs stands for its runs
    let c = tmp.path().join("c");
    gradscope().arg("report").arg(tmp.path().join("runs")).arg("--out").arg(&c).assert().success();
    assert_eq!(std::fs::read_to_string(c.join("report.html")).unwrap().matches("<details>").count(), 2);

    // not a run folder: exit 2, the folder named, nothing written
    let d = tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    gradscope()
        .arg("report")
        .arg(&d)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(d.display().to_string()).and(predicate::str::contains("no metrics.jsonl")));
    assert!(std::fs::read_dir(&d).unwrap().next().is_none(), "wrote into a folder that is not a run");
    gradscope().args(["report", "/no/such/run"]).assert().code(2).stderr(predicate::str::contains("/no/such/run"));
}

/// The verdict is coloured only for a terminal (CLICOLOR_FORCE stands in for one here) and never
/// with NO_COLOR set; a pipe gets plain text.
#[test]
fn verdict_colour_only_on_a_terminal_without_no_color() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = gradscope();
        cmd.args(["train", "--depth", "8", "--width", "8", "--steps", "2", "--no-report", "--overwrite", "--out"]);
        cmd.arg(tmp.path());
        cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE").env_remove("CLICOLOR");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
    };
    let piped = run(&[]);
    // two steps of a deep sigmoid network: the loss cannot have halved
    assert!(piped.contains(": did not learn\n") && !piped.contains('\x1b'), "{piped}");
    let forced = run(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains("\x1b[1m\x1b[31mdid not learn\x1b[0m"), "{forced:?}");
    let no_color = run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
}
