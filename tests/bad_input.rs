//! The bad-input corpus: every malformed file, config and folder gets one clear message naming
//! the problem, exit 2, and no output (or the old output untouched). Files are made here, except
//! the inputs fuzzing found, which are kept in tests/corpus/ (see `fuzz_findings_are_errors`).

mod common;

use common::gradscope;
use predicates::prelude::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An MNIST-like folder of two 2×2 training images and one test image, with `replace` swapping
/// in other bytes for some of the four files.
fn mnist_dir(root: &Path, name: &str, replace: &[(&str, Vec<u8>)]) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = BTreeMap::from([
        ("train-images-idx3-ubyte", idx(&[2, 2, 2], &[0, 255, 51, 102, 1, 2, 3, 4])),
        ("train-labels-idx1-ubyte", idx(&[2], &[3, 9])),
        ("t10k-images-idx3-ubyte", idx(&[1, 2, 2], &[9, 9, 9, 9])),
        ("t10k-labels-idx1-ubyte", idx(&[1], &[7])),
    ]);
    for (f, bytes) in replace {
        files.insert(f, bytes.clone());
    }
    for (f, bytes) in files {
        std::fs::write(dir.join(f), bytes).unwrap();
    }
    format!("mnist:{}", dir.display())
}

fn file(root: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = root.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

/// A safetensors file from (name, dtype, shape, little-endian bytes).
fn safetensors(tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn f32s(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32 * 0.1).to_le_bytes()).collect()
}

/// `train` on bad data and configs: one message, exit 2, no output folder.
#[test]
fn bad_training_input_exits_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let csv = |name: &str, text: &str| format!("csv:{}", file(t, name, text.as_bytes()).display());
    let toml = |name: &str, text: &str| file(t, name, text.as_bytes()).display().to_string();
    let header_1e12 = {
        let mut v = idx(&[1_000_000, 1000, 1000], &[1, 2, 3]);
        v.truncate(16 + 3);
        v
    };
    type Files = Vec<(&'static str, Vec<u8>)>;
    let idx_cases: Vec<(&str, Files, &str)> = vec![
        ("huge", vec![("train-images-idx3-ubyte", header_1e12)], "more than 4294967296 elements"),
        ("magic", vec![("train-images-idx3-ubyte", vec![0x50, 0x4b, 3, 4, 0, 0, 0, 1])], "wrong magic number"),
        ("dtype", vec![("train-labels-idx1-ubyte", vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0])], "element type 0x0d"),
        ("short", vec![("train-labels-idx1-ubyte", vec![0, 0])], "shorter than the 4-byte IDX header"),
        ("header", vec![("train-images-idx3-ubyte", vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0])], "truncated header"),
        ("data", vec![("train-images-idx3-ubyte", idx(&[2, 2, 2], &[1, 2, 3]))], "truncated: header dimensions"),
        ("trailing", vec![("t10k-labels-idx1-ubyte", idx(&[1], &[7, 7]))], "trailing data"),
        (
            "gzip",
            vec![("train-images-idx3-ubyte", {
                let mut g = gz(&idx(&[2, 2, 2], &[0; 8]));
                let n = g.len();
                g[n / 2] ^= 0xff; // flip bits inside the deflate stream
                g.truncate(n - 4); // and lose the end of the trailer
                g
            })],
            "train-images-idx3-ubyte",
        ),
        ("gz-truncated", vec![("train-labels-idx1-ubyte", gz(&idx(&[2], &[3, 9]))[..12].to_vec())], "train-labels"),
        ("label", vec![("train-labels-idx1-ubyte", idx(&[2], &[3, 10]))], "label 10 at item 1 is out of range"),
        ("count", vec![("train-labels-idx1-ubyte", idx(&[1], &[3]))], "1 labels for 2 images"),
        ("dims", vec![("t10k-images-idx3-ubyte", idx(&[1, 4], &[9, 9, 9, 9]))], "images need 3 dimensions"),
        (
            "pixels",
            vec![("t10k-images-idx3-ubyte", idx(&[1, 1, 3], &[9, 9, 9]))],
            "train images have 4 pixels, test images 3",
        ),
    ];
    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    for (name, replace, want) in idx_cases {
        let spec = mnist_dir(t, name, &replace);
        cases.push((vec!["--data".into(), spec, "--loss".into(), "cross_entropy".into()], want));
    }
    let missing = mnist_dir(t, "missing", &[]);
    std::fs::remove_file(t.join("missing/t10k-labels-idx1-ubyte")).unwrap();
    cases.push((vec!["--data".into(), missing], "no t10k-labels-idx1-ubyte"));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let csv_cases: Vec<(&str, &str, &[&str], &str)> = vec![
        ("missing.csv", "a,b,y\n1,,3\n", &[], "line 2, column 'b': empty"),
        ("text.csv", "a,y\n1,2\nx,3\n", &[], "line 3, column 'a': 'x', not a number"),
        ("ragged.csv", "a,b,y\n1,2,3\n4,5\n", &[], "every row needs 3 comma-separated cells"),
        ("long.csv", "a,y\n1,2\n3,4,5\n", &[], "every row needs 2 comma-separated cells"),
        ("inf.csv", "a,y\n1,inf\n", &[], "not finite"),
        ("header.csv", "", &[], "no header row"),
        ("empty.csv", "a,y\n", &[], "no data rows"),
        ("target.csv", "a,yy\n1,2\n", &[], "did you mean 'yy'"),
        ("neg.csv", "a,y\n1,0\n2,-1\n", &["--loss", "cross_entropy"], "row 2: target 'y' = -1 is not a class label"),
        ("frac.csv", "a,y\n1,0.5\n", &["--loss", "cross_entropy"], "not a class label"),
        ("huge.csv", "a,y\n1,1e12\n", &["--loss", "cross_entropy"], "not a class label"),
        ("bom-crlf-bad.csv", "\u{feff}a,y\r\n1,2\r\nq,3\r\n", &[], "line 3, column 'a': 'q'"),
        ("one.csv", "a,y\n1,2\n", &["--test-fraction", "0.9"], "leaves no training rows"),
        ("latin1.csv", "a,y\n1,\u{e9}\n", &[], "not a number"),
    ];
    for (name, text, extra, want) in csv_cases {
        let mut args = s(&["--data", &csv(name, text), "--target", "y"]);
        args.extend(s(extra));
        cases.push((args, want));
    }
    // a non-UTF-8 cell
    let bin = file(t, "binary.csv", b"a,y\n1,\xff\xfe\n");
    cases.push((s(&["--data", &format!("csv:{}", bin.display()), "--target", "y"]), "binary.csv"));
    let config_cases: Vec<(&str, &str, &str)> = vec![
        ("unknown.toml", "dept = 3\n", "did you mean 'depth'"),
        ("unknown2.toml", "learning_rate = 0.1\n", "unknown key"),
        ("type.toml", "depth = \"three\"\n", "invalid depth"),
        ("type2.toml", "lr = \"fast\"\n", "invalid lr"),
        ("neg.toml", "depth = -1\n", "invalid depth"),
        ("range.toml", "test_fraction = 1.5\n", "test_fraction = 1.5: must be in [0, 1)"),
        ("beta.toml", "optimizer = \"adam\"\nbeta2 = 1.0\n", "beta2 = 1: must be in [0, 1)"),
        ("lr.toml", "lr = 0.0\n", "lr = 0: must be a positive finite number"),
        ("nan.toml", "lr = nan\n", "lr = NaN"),
        ("nesterov.toml", "nesterov = true\n", "needs momentum > 0"),
        ("width.toml", "width = 0\n", "width = 0: must be at least 1"),
        ("nonfinite.toml", "on_nonfinite = \"ignore\"\n", "unknown on_nonfinite 'ignore'"),
        ("syntax.toml", "depth = \n", "not valid TOML"),
        ("table.toml", "[model]\ndepth = 3\n", "unknown key"),
        ("cell.toml", "cell = \"lstn\"\n", "unknown cell 'lstn' (did you mean 'lstm'?)"),
        ("layers.toml", "cell = \"lstm\"\ndata = \"adding\"\nseq_len = 8\nnum_layers = 0\n", "num_layers = 0"),
    ];
    for (name, text, want) in config_cases {
        cases.push((s(&["--config", &toml(name, text)]), want));
    }
    for (args, want) in [
        (vec!["--activation", "sigmod"], "sigmoid"),
        (vec!["--init", "xavier"], "xavier_uniform"),
        (vec!["--loss", "crossentropy"], "cross_entropy"),
        (vec!["--lr", "-0.1"], "lr"),
        (vec!["--width", "0"], "width"),
        (vec!["--batch-size", "0"], "batch_size"),
        (vec!["--depth", "100000"], "at most 10000"),
        // issue 13: this aborted with "memory allocation of 80000000000 bytes failed", exit 134
        (vec!["--width", "100000", "--depth", "10"], "this run needs about"),
        (vec!["--max-memory", "lots"], "max_memory = lots"),
        (vec!["--data", "csv:x.csv", "--target", "y", "--features", "a", "--drop", "b"], "cannot be used with"),
        (vec!["--features", "a"], "needs --data csv:FILE"),
        (vec!["--data", "mnist:/no/such/dir"], "/no/such/dir"),
        (vec!["--data", "imagenet"], "unknown data set"),
        (vec!["--data", "csv:/no/such.csv", "--target", "y"], "/no/such.csv"),
        (vec!["--data", "csv:x.csv"], "--target"),
        (vec!["--config", "/no/such/file.toml"], "/no/such/file.toml"),
        // recurrent networks (issue 14): keys that cannot apply name the conflict
        (vec!["--seq-len", "10"], "seq_len = 10: applies to recurrent networks only"),
        (vec!["--bptt", "5"], "bptt = 5: applies to recurrent networks only"),
        (vec!["--data", "adding", "--seq-len", "10"], "is a sequence task for recurrent networks"),
        (
            vec!["--cell", "lstm", "--data", "adding", "--seq-len", "10", "--residual"],
            "residual = true: cannot apply with --cell",
        ),
        (vec!["--cell", "gru", "--data", "adding", "--seq-len", "10", "--depth", "4"], "--num-layers"),
        (vec!["--cell", "lstm", "--data", "adding"], "the adding problem needs --seq-len T"),
        (vec!["--cell", "lstm", "--data", "regression"], "has no time axis"),
        (
            vec!["--cell", "lstm", "--data", "copy", "--seq-len", "5", "--head", "last"],
            "the copy task has a target at every step",
        ),
        (
            vec!["--cell", "rnn_tanh", "--data", "adding", "--seq-len", "10", "--bptt", "10"],
            "bptt = 10: must be between 1 and 9",
        ),
        (vec!["--cell", "gru", "--data", "adding", "--seq-len", "10", "--gate-bias", "forget"], "are for the LSTM"),
        (
            vec!["--cell", "lstm", "--data", "adding", "--seq-len", "10", "--forget-bias", "2"],
            "needs --gate-bias forget",
        ),
        (vec!["--cell", "lstm", "--data", "adding", "--seq-len", "1"], "at least 2"),
    ] {
        cases.push((s(&args), want));
    }
    let n = cases.len();
    for (i, (args, want)) in cases.into_iter().enumerate() {
        let out = t.join(format!("out{i}"));
        eprintln!("case {i}: {args:?}");
        gradscope()
            .arg("train")
            .args(&args)
            .args(["--steps", "2", "--out"])
            .arg(&out)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want).and(predicate::str::starts_with("error: ")));
        assert!(!out.exists(), "{args:?} created {}", out.display());
    }
    assert!(n >= 50, "{n} cases");
}

/// BOM, CRLF, quoted cells and blank trailing lines are not errors.
#[test]
fn unusual_but_valid_csv_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let f = file(tmp.path(), "ok.csv", "\u{feff}a,\"b\",y\r\n1, 2 ,0\r\n3,4,1\r\n5,6,1\r\n7,8,0\r\n".as_bytes());
    let out = tmp.path().join("run");
    gradscope()
        .args(["train", "--data", &format!("csv:{}", f.display()), "--target", "y", "--loss", "cross_entropy"])
        .args(["--steps", "3", "--test-fraction", "0.25", "--quiet", "--no-report", "--out"])
        .arg(&out)
        .assert()
        .success();
    assert!(out.join("summary.json").is_file());
}

/// `probe --weights` on malformed safetensors: one message, exit 2, nothing written.
#[test]
fn bad_weights_exit_2_and_write_nothing() {
    use safetensors::Dtype::{F32, I32};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // the built-in regression set has 16 inputs and 1 output
    let good = |hidden: usize| {
        vec![
            ("layers.0.weight", F32, vec![hidden, 16], f32s(16 * hidden)),
            ("layers.0.bias", F32, vec![hidden], f32s(hidden)),
            ("layers.1.weight", F32, vec![1, hidden], f32s(hidden)),
            ("layers.1.bias", F32, vec![1], f32s(1)),
        ]
    };
    let mut wrong_bias = good(4);
    wrong_bias[1] = ("layers.0.bias", F32, vec![3], f32s(3));
    let mut wrong_chain = good(4);
    wrong_chain[2] = ("layers.1.weight", F32, vec![1, 5], f32s(5));
    let mut int = good(4);
    int[0] = ("layers.0.weight", I32, vec![4, 16], vec![0; 256]);
    let mut three_d = good(4);
    three_d[0] = ("layers.0.weight", F32, vec![4, 16, 1], f32s(64));
    let mut missing = good(4);
    missing.remove(3);
    let mut extra = good(4);
    extra.push(("running_mean", F32, vec![4], f32s(4)));
    let mut nan = good(4);
    nan[3] = ("layers.1.bias", F32, vec![1], f32::NAN.to_le_bytes().to_vec());
    let mut inputs = good(4);
    inputs[0] = ("layers.0.weight", F32, vec![4, 3], f32s(12));
    let valid = safetensors(&good(4));
    let mut long_header = valid.clone();
    long_header[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut header_past_end = valid.clone();
    let len = header_past_end.len() as u64;
    header_past_end[..8].copy_from_slice(&len.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bias.safetensors",
            safetensors(&wrong_bias),
            "tensor 'layers.0.bias' has shape [3], but this network (16 → 4 → 1) needs [4]",
        ),
        ("chain.safetensors", safetensors(&wrong_chain), "takes 5 inputs but the layer before it gives 4"),
        ("int.safetensors", safetensors(&int), "dtype I32"),
        ("3d.safetensors", safetensors(&three_d), "must be 2-D"),
        ("missing.safetensors", safetensors(&missing), "no tensor 'layers.1.bias', which this network"),
        ("extra.safetensors", safetensors(&extra), "unexpected tensor 'running_mean'"),
        ("nan.safetensors", safetensors(&nan), "non-finite value"),
        ("inputs.safetensors", safetensors(&inputs), "the first layer takes 3 inputs but the data has 16 features"),
        ("empty.safetensors", safetensors(&[]), "holds no tensors"),
        ("long.safetensors", long_header, "not a valid safetensors file"),
        ("past.safetensors", header_past_end, "not a valid safetensors file"),
        ("short.safetensors", valid[..5].to_vec(), "not a valid safetensors file"),
        ("cut.safetensors", valid[..valid.len() - 3].to_vec(), "not a valid safetensors file"),
        ("text.safetensors", b"hello, world".to_vec(), "not a valid safetensors file"),
    ];
    for (name, bytes, want) in cases {
        let w = file(t, name, &bytes);
        let out = t.join(format!("out-{name}"));
        gradscope()
            .args(["probe", "--activation", "tanh", "--weights"])
            .arg(&w)
            .arg("--out")
            .arg(&out)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want).and(predicate::str::contains(name)));
        assert!(!out.exists(), "{name} created {}", out.display());
    }
    // the valid file is accepted (so the cases above fail for their own reason)
    let w = file(t, "good.safetensors", &valid);
    gradscope()
        .args(["probe", "--activation", "tanh", "--weights"])
        .arg(&w)
        .arg("--out")
        .arg(t.join("good"))
        .assert()
        .success();
}

/// Output folders: one that cannot be made, one that holds another run (untouched without
/// --overwrite, replaced with it), and --resume on folders that cannot be continued.
#[test]
fn bad_output_folders_exit_2_and_leave_old_files_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = ["train", "--width", "4", "--quiet", "--no-report"];
    // a folder below a regular file cannot be made
    let blocker = file(t, "blocker", b"x");
    gradscope()
        .args(run)
        .arg("--out")
        .arg(blocker.join("run"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot create folder").and(predicate::str::contains("blocker")));
    // a read-only folder (permissions do not bind root, so only checked for other users)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = t.join("readonly");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), b"x").is_err() {
            gradscope()
                .args(run)
                .arg("--out")
                .arg(ro.join("run"))
                .assert()
                .code(2)
                .stderr(predicate::str::contains("readonly"));
            gradscope().args(run).arg("--out").arg(&ro).assert().code(2).stderr(predicate::str::contains("readonly"));
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // a folder holding another run
    let a = t.join("a");
    gradscope().args(run).args(["--steps", "3", "--out"]).arg(&a).assert().success();
    let before = snapshot(&a);
    assert!(before.len() >= 4);
    gradscope()
        .args(run)
        .args(["--depth", "2", "--out"])
        .arg(&a)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already holds a run").and(predicate::str::contains("--overwrite")));
    assert_eq!(snapshot(&a), before, "refused run changed the folder");
    // each file alone marks a run
    for f in ["config.toml", "metrics.jsonl", "summary.json", "weights.safetensors", "checkpoint.safetensors"] {
        let d = t.join(format!("only-{f}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join(f), b"old").unwrap();
        gradscope().args(run).arg("--out").arg(&d).assert().code(2);
        assert_eq!(std::fs::read(d.join(f)).unwrap(), b"old");
    }
    // bad input with --overwrite still touches nothing
    gradscope().args(run).args(["--overwrite", "--batch-size", "0", "--out"]).arg(&a).assert().code(2);
    assert_eq!(snapshot(&a), before);
    gradscope().args(run).args(["--overwrite", "--depth", "2", "--out"]).arg(&a).assert().success();
    assert!(std::fs::read_to_string(a.join("config.toml")).unwrap().contains("depth = 2"));
    // a folder with other files but no run is fine, and they are kept
    let other = t.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    gradscope().args(run).arg("--out").arg(&other).assert().success();
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"mine");

    // --resume: no run there; flags beside it; a damaged or foreign checkpoint
    let empty = t.join("empty");
    std::fs::create_dir(&empty).unwrap();
    gradscope()
        .args(["train", "--resume"])
        .arg(&empty)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holds no config.toml"));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    gradscope()
        .args(["train", "--depth", "3", "--resume"])
        .arg(&a)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--resume takes every setting"));
    let b = t.join("b");
    gradscope().args(run).args(["--steps", "6", "--checkpoint-every", "2", "--out"]).arg(&b).assert().success();
    std::fs::remove_file(b.join("summary.json")).unwrap(); // as if killed before the end
    let ck = std::fs::read(b.join("checkpoint.safetensors")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("cut", ck[..ck.len() / 2].to_vec(), "not a valid safetensors file"),
        ("garbage", b"\x08\0\0\0\0\0\0\0{}garbage".to_vec(), "bad checkpoint"),
        ("weights", std::fs::read(b.join("weights.safetensors")).unwrap(), "no 'gradscope.checkpoint' metadata"),
    ];
    for (name, bytes, want) in cases {
        std::fs::write(b.join("checkpoint.safetensors"), &bytes).unwrap();
        let before = snapshot(&b);
        gradscope()
            .args(["train", "--quiet", "--resume"])
            .arg(&b)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want).and(predicate::str::contains("--overwrite")));
        assert_eq!(snapshot(&b), before, "{name}: a refused resume changed the folder");
    }
    // a checkpoint of another config
    std::fs::write(b.join("checkpoint.safetensors"), &ck).unwrap();
    let cfg = std::fs::read_to_string(b.join("config.toml")).unwrap();
    std::fs::write(b.join("config.toml"), cfg.replace("width = 4", "width = 5")).unwrap();
    gradscope()
        .args(["train", "--quiet", "--resume"])
        .arg(&b)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("written for another config"));
    // metrics.jsonl shorter than the checkpoint says
    std::fs::write(b.join("config.toml"), &cfg).unwrap();
    std::fs::write(b.join("metrics.jsonl"), b"").unwrap();
    gradscope()
        .args(["train", "--quiet", "--resume"])
        .arg(&b)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("fewer than the"));
}

/// Inputs that fuzzing found (tests/corpus/READER/*) stay plain errors: read through the same
/// entry points the fuzz targets use, none may panic.
#[test]
fn fuzz_findings_are_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for reader in ["idx", "csv", "config", "safetensors", "checkpoint"] {
        let Ok(entries) = std::fs::read_dir(root.join(reader)) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let ok = match reader {
                "idx" => gradscope::data::idx::decode(&p, bytes.as_slice()).is_ok(),
                "csv" => gradscope::data::csv::parse(&p, bytes.get(1..).unwrap_or(&[]), "y", true, 0, 0.0).is_ok(),
                "config" => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| gradscope::config::Config::from_toml(s, "corpus").ok())
                    .is_some_and(|c| c.resolve().is_ok()),
                "safetensors" => gradscope::io::weights::parse(&p, &bytes).is_ok(),
                _ => gradscope::io::checkpoint::Checkpoint::parse(&p, &bytes).is_ok(),
            };
            assert!(!ok, "{} is accepted; a corpus case must be an error", p.display());
            seen += 1;
        }
    }
    eprintln!("{seen} fuzz findings checked");
}
