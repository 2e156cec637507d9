//! `gradscope data` against a local HTTP server on 127.0.0.1 serving the project's MNIST copy:
//! a full download, wrong bytes (refused, nothing left), a connection dropped mid-file (the same
//! command resumes with a Range request), and from an empty cache to a trained run and its report.
//! Also CSV as people have it: string labels, --features/--drop, --standardize.

mod common;

use assert_cmd::Command;
use predicates::prelude::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

fn gradscope() -> Command {
    Command::cargo_bin("gradscope").unwrap()
}

/// What the server does with one file.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Serves it, honouring `Range: bytes=N-`.
    Normal,
    /// Serves it with one byte changed.
    Corrupt,
    /// The first request gets half the body, then the connection closes.
    DropOnce,
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 (a random port) serving `files`; it records each
/// request line with its Range header, and serves at most `max_requests` before it stops.
struct Server {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(files: BTreeMap<String, Vec<u8>>, modes: BTreeMap<String, Mode>, max_requests: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mnist/", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut dropped = std::collections::BTreeSet::new();
            for stream in listener.incoming().take(max_requests) {
                let Ok(stream) = stream else { continue };
                serve(stream, &files, &modes, &mut dropped, &log2);
            }
        });
        Server { url, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(
    mut stream: TcpStream,
    files: &BTreeMap<String, Vec<u8>>,
    modes: &BTreeMap<String, Mode>,
    dropped: &mut std::collections::BTreeSet<String>,
    log: &Mutex<Vec<String>>,
) {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut range_from: Option<usize> = None;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range_from = v.trim().trim_end_matches('-').parse().ok();
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    log.lock().unwrap().push(format!("{path} {}", range_from.map_or("-".into(), |r| format!("bytes={r}-"))));
    let name = path.rsplit('/').next().unwrap_or("").to_string();
    let Some(body) = files.get(&name) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let mut body = body.clone();
    let mode = modes.get(&name).copied().unwrap_or(Mode::Normal);
    if mode == Mode::Corrupt {
        let mid = body.len() / 2;
        body[mid] ^= 0x55;
    }
    let start = range_from.filter(|&r| r < body.len()).unwrap_or(0);
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
            body.len() - start,
            body.len() - 1,
            body.len()
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
    };
    let _ = stream.write_all(head.as_bytes());
    if mode == Mode::DropOnce && dropped.insert(name) {
        let _ = stream.write_all(&body[start..start + (body.len() - start) / 2]);
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let _ = stream.write_all(&body[start..]);
}

/// The four MNIST archives, as [`common::mnist_dir`] finds them.
fn mnist_files() -> BTreeMap<String, Vec<u8>> {
    let dir = common::mnist_dir();
    FILES
        .iter()
        .map(|f| {
            (f.to_string(), std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}; {}", f, common::MNIST_HINT)))
        })
        .collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn download_verifies_and_skips_what_is_there() {
    let files = mnist_files();
    let server = Server::start(files.clone(), BTreeMap::new(), 20);
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("mnist");
    gradscope()
        .args(["data", "mnist", "--mirror", &server.url, "--to"])
        .arg(&to)
        .assert()
        .success()
        .stdout(predicate::str::contains("SHA-256 verified").and(predicate::str::contains("--data mnist:")));
    let mut want: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listing(&to), want);
    for f in FILES {
        assert!(std::fs::read(to.join(f)).unwrap() == files[f], "{f} differs");
    }
    assert_eq!(server.requests().len(), 4);
    gradscope()
        .args(["data", "mnist", "--mirror", &server.url, "--to"])
        .arg(&to)
        .assert()
        .success()
        .stdout(predicate::str::contains("already there"));
    assert_eq!(server.requests().len(), 4, "nothing downloaded twice");
    // a folder as the mirror: no network at all
    let copy = tmp.path().join("copy");
    gradscope()
        .args(["data", "mnist", "--mirror"])
        .arg(common::mnist_dir())
        .arg("--to")
        .arg(&copy)
        .assert()
        .success()
        .stdout(predicate::str::contains("SHA-256 verified"));
    assert_eq!(listing(&copy), want);
}

#[test]
fn wrong_bytes_are_refused_and_nothing_is_left() {
    let modes = BTreeMap::from([("t10k-images-idx3-ubyte.gz".to_string(), Mode::Corrupt)]);
    let server = Server::start(mnist_files(), modes, 20);
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("mnist");
    gradscope().args(["data", "mnist", "--mirror", &server.url, "--to"]).arg(&to).assert().code(2).stderr(
        predicate::str::contains("cannot download t10k-images-idx3-ubyte.gz")
            .and(predicate::str::contains("SHA-256"))
            .and(predicate::str::contains("deleted")),
    );
    // the two files before it are verified and kept; the wrong one left nothing behind
    assert_eq!(listing(&to), ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]);
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let files = mnist_files();
    let name = "train-labels-idx1-ubyte.gz";
    let server = Server::start(files.clone(), BTreeMap::from([(name.to_string(), Mode::DropOnce)]), 20);
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("mnist");
    gradscope()
        .args(["data", "mnist", "--mirror", &server.url, "--to"])
        .arg(&to)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the same command resumes"));
    let part = to.join(format!("{name}.part"));
    let half = files[name].len() / 2;
    assert_eq!(std::fs::metadata(&part).unwrap().len(), half as u64, "the received half is kept");
    assert!(!to.join(name).exists());
    gradscope()
        .args(["data", "mnist", "--mirror", &server.url, "--to"])
        .arg(&to)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("{name}: resumed after")));
    assert!(std::fs::read(to.join(name)).unwrap() == files[name]);
    assert!(!part.exists());
    let asked = server.requests();
    assert!(asked.contains(&format!("/mnist/{name} bytes={half}-")), "{asked:?}");
    assert_eq!(listing(&to).len(), 4);
}

/// From an empty cache to a trained MNIST run and its report, by the commands docs/data.md gives.
#[test]
fn from_an_empty_cache_to_a_report() {
    let server = Server::start(mnist_files(), BTreeMap::new(), 20);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let train = |cmd: &mut Command| {
        cmd.env("GRADSCOPE_DATA", &cache)
            .args(["train", "--data", "mnist", "--loss", "cross_entropy", "--standardize", "--steps", "30"])
            .args(["--batch-size", "32", "--depth", "2", "--width", "32", "--threads", "1", "--quiet", "--out"])
            .arg(&run);
    };
    let mut cmd = gradscope();
    train(&mut cmd);
    cmd.assert().code(2).stderr(predicate::str::contains("gradscope data mnist"));
    assert!(!run.exists());
    gradscope().env("GRADSCOPE_DATA", &cache).args(["data", "mnist", "--mirror", &server.url]).assert().success();
    assert_eq!(listing(&cache.join("mnist")).len(), 4);
    let mut cmd = gradscope();
    train(&mut cmd);
    cmd.assert().success();
    for f in ["summary.json", "report.html", "data.json", "standardize.safetensors"] {
        assert!(run.join(f).is_file(), "{f}");
    }
    // MNIST standardised over all pixels: torchvision's (0.1307, 0.3081), fitted here
    let s = gradscope::data::standardize::Standardizer::read(&run.join("standardize.safetensors")).unwrap();
    assert_eq!(s.mean.len(), 784);
    assert!((s.mean[0] - 0.1307).abs() < 5e-5 && (s.std[0] - 0.3081).abs() < 5e-5, "{} {}", s.mean[0], s.std[0]);
    let info = gradscope::prepare::read_info(&run).unwrap().unwrap();
    assert!(info.standardized && (info.q0 - 1.0).abs() < 1e-3, "q0 {}", info.q0);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("784 inputs standardised on the training rows"), "the report says what the data was");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Iris-like rows: two features that separate three classes, plus an id column.
fn table(labels: [&str; 3]) -> String {
    let mut s = String::from("id,a,b,species\n");
    for i in 0..90 {
        let k = i % 3;
        let (a, b) = (k as f64 + 0.1 * ((i * 7 % 5) as f64), 2.0 - k as f64 + 0.05 * ((i * 3 % 4) as f64));
        s.push_str(&format!("row{i},{a},{b},{}\n", labels[k]));
    }
    s
}

#[test]
fn string_labels_train_as_their_integer_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let names = write(t, "names.csv", &table(["setosa", "versicolor", "virginica"]));
    let ints = write(t, "ints.csv", &table(["0", "1", "2"]));
    let summary = |csv: &Path, out: &str| -> serde_json::Value {
        gradscope()
            .args(["train", "--target", "species", "--drop", "id", "--loss", "cross_entropy", "--steps", "300"])
            .args(["--activation", "relu", "--optimizer", "adam", "--lr", "0.01"])
            .args(["--width", "16", "--threads", "1", "--quiet", "--no-report", "--data"])
            .arg(format!("csv:{}", csv.display()))
            .arg("--out")
            .arg(t.join(out))
            .assert()
            .success();
        serde_json::from_str(&std::fs::read_to_string(t.join(out).join("summary.json")).unwrap()).unwrap()
    };
    let (a, b) = (summary(&names, "names"), summary(&ints, "ints"));
    for key in ["train_accuracy", "test_accuracy", "final_loss"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert!(a["test_accuracy"].as_f64().unwrap() > 0.9, "{a}");
    let info = gradscope::prepare::read_info(&t.join("names")).unwrap().unwrap();
    assert_eq!(info.classes.unwrap(), ["setosa", "versicolor", "virginica"]);
    assert!(gradscope::prepare::read_info(&t.join("ints")).unwrap().unwrap().classes.is_none());
    // the report names the classes as the network numbers them, and says what the data was
    gradscope().arg("report").arg(t.join("names")).arg("--out").arg(t.join("rep")).assert().success();
    let html = std::fs::read_to_string(t.join("rep/report.html")).unwrap();
    assert!(html.contains("3 (output i is class i): 0&nbsp;setosa, 1&nbsp;versicolor, 2&nbsp;virginica"), "{html}");
    assert!(html.contains("training and") && html.contains("as given (not standardised)"), "{html}");
    gradscope().arg("report").arg(t.join("ints")).arg("--out").arg(t.join("rep2")).assert().success();
    assert!(!std::fs::read_to_string(t.join("rep2/report.html")).unwrap().contains("output i is class i"));
    // probe with the run's config numbers the classes as the run did, even on a file that
    // lacks the first class
    let two = write(t, "two.csv", "id,a,b,species\nx,1,1,virginica\ny,2,0,versicolor\n");
    let cfg = std::fs::read_to_string(t.join("names/config.toml")).unwrap();
    std::fs::write(t.join("names/config.toml"), cfg.replace(&names.display().to_string(), &two.display().to_string()))
        .unwrap();
    gradscope()
        .args(["probe", "--json", "--config"])
        .arg(t.join("names/config.toml"))
        .arg("--weights")
        .arg(t.join("names/weights.safetensors"))
        .arg("--out")
        .arg(t.join("probe"))
        .assert()
        .success();
    let bad = write(t, "bad.csv", "id,a,b,species\nx,1,1,daisy\ny,1,1,setosa\n");
    std::fs::write(t.join("names/config.toml"), cfg.replace(&names.display().to_string(), &bad.display().to_string()))
        .unwrap();
    gradscope()
        .args(["probe", "--config"])
        .arg(t.join("names/config.toml"))
        .arg("--out")
        .arg(t.join("probe2"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'daisy' is not one of the run's classes"));
}

#[test]
fn standardize_is_fitted_on_train_saved_and_applied_to_test() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // feature c is constant: left as it is
    let mut text = String::from("a,b,c,y\n");
    for i in 0..50 {
        text.push_str(&format!("{},{},7,{}\n", i as f64 * 10.0, 1000.0 + (i % 7) as f64, (i % 5) as f64 * 0.1));
    }
    let csv = write(t, "t.csv", &text);
    gradscope()
        .args(["train", "--target", "y", "--standardize", "--steps", "20", "--quiet", "--no-report", "--threads", "1"])
        .arg("--data")
        .arg(format!("csv:{}", csv.display()))
        .arg("--out")
        .arg(t.join("run"))
        .assert()
        .success();
    assert!(std::fs::read_to_string(t.join("run/config.toml")).unwrap().contains("standardize = true"));
    let s = gradscope::data::standardize::Standardizer::read(&t.join("run/standardize.safetensors")).unwrap();
    // the same split, loaded here: the saved mean and std are the training split's
    let d = gradscope::data::csv::load(&csv, "y", false, 0, 0.2).unwrap();
    let fit =
        gradscope::data::standardize::Standardizer::fit(d.train.x.view(), gradscope::data::standardize::Scope::Feature);
    assert_eq!(s, fit);
    assert_eq!(s.std[2], 0.0, "the constant column");
    let all = gradscope::data::standardize::Standardizer::fit(
        ndarray::concatenate(ndarray::Axis(0), &[d.train.x.view(), d.test.x.view()]).unwrap().view(),
        gradscope::data::standardize::Scope::Feature,
    );
    assert_ne!(s.mean, all.mean, "the test rows are not in the fit");
    // applied to the test split: the library path the run took
    let spec =
        gradscope::config::Config::from_toml(&std::fs::read_to_string(t.join("run/config.toml")).unwrap(), "run")
            .unwrap()
            .resolve()
            .unwrap();
    let p = gradscope::prepare::load(&spec, Some(&t.join("run"))).unwrap();
    let mut want = d.test.x.clone();
    s.apply(&mut want).unwrap();
    assert_eq!(p.data.test.x, want);
    assert!(p.data.test.x.column(2).iter().all(|&v| v == 7.0));
}

#[test]
fn features_and_drop_choose_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let csv = write(t, "c.csv", "id,a,b,y\nx1,1,2,0\nx2,3,4,1\nx3,5,6,0\nx4,7,8,1\n");
    let data = format!("csv:{}", csv.display());
    let run = |extra: &[&str], out: &str| {
        let mut c = gradscope();
        c.args(["train", "--target", "y", "--loss", "cross_entropy", "--steps", "2", "--quiet", "--no-report"])
            .args(["--data", &data])
            .args(extra)
            .arg("--out")
            .arg(t.join(out));
        c.assert()
    };
    run(&["--features", "b,a"], "f").success();
    assert_eq!(gradscope::prepare::read_info(&t.join("f")).unwrap().unwrap().inputs, 2);
    assert!(std::fs::read_to_string(t.join("f/config.toml")).unwrap().contains("features = [\"b\", \"a\"]"));
    run(&["--drop", "id,b"], "d").success();
    assert_eq!(gradscope::prepare::read_info(&t.join("d")).unwrap().unwrap().inputs, 1);
    for (extra, want) in [
        (&["--features", "a", "--drop", "id"][..], "cannot be used with"),
        (&["--features", "aa,b"], "did you mean 'a'"),
        (&["--features", "a,y"], "is the target column"),
        (&["--drop", "y"], "is the target column"),
        (&["--drop", "idd"], "did you mean 'id'"),
        (&["--drop", "id,a,b"], "leaves no feature column"),
        (&[], "line 2, column 'id': 'x1', not a number"),
    ] {
        let out = format!("bad{}", extra.len());
        run(extra, &out).code(2).stderr(predicate::str::contains(want));
        assert!(!t.join(&out).exists());
    }
}

#[test]
fn too_large_a_run_is_refused_before_it_allocates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    gradscope()
        .args(["train", "--width", "1000", "--depth", "3", "--max-memory", "10MB", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("this run needs about").and(predicate::str::contains("10.0 MB of --max-memory")),
        );
    assert!(!out.exists());
    gradscope()
        .args(["train", "--width", "1000", "--depth", "3", "--max-memory", "1G", "--steps", "2", "--quiet", "--out"])
        .arg(&out)
        .assert()
        .success();
}

/// `probe` on all of MNIST took 2.6 GB (issue 13): without --batch-size it takes the first
/// 10 000 rows and says so; --batch-size chooses, and a probe that does not fit is refused.
#[test]
fn probe_caps_its_rows_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = format!("mnist:{}", common::mnist_dir().display());
    let probe = |extra: &[&str], out: &str| {
        let mut c = gradscope();
        c.args(["probe", "--data", &data, "--loss", "cross_entropy", "--activation", "relu", "--depth", "2"])
            .args(["--width", "32", "--threads", "1"])
            .args(extra)
            .arg("--out")
            .arg(tmp.path().join(out));
        c.assert()
    };
    probe(&[], "capped")
        .success()
        .stderr(predicate::str::contains("the first 10000 of 60000 training rows (the default cap)"))
        .stdout(predicate::str::contains("on 10000 rows"));
    probe(&["--batch-size", "500"], "chosen")
        .success()
        .stderr(predicate::str::contains("default cap").not())
        .stdout(predicate::str::contains("on 500 rows"));
    probe(&["--max-memory", "1MB"], "refused").code(2).stderr(
        predicate::str::contains("this probe needs about").and(predicate::str::contains("pass --batch-size N")),
    );
    assert!(!tmp.path().join("refused").exists());
}
