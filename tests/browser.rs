//! report.html in a real browser: headless Chromium opens it from disk, logs no console message,
//! lays out every figure with a size, and its screenshot is not blank.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it). Without it the tests print a note and pass,
//! except under CI (`CI=true`), where a missing browser fails them.

mod common;

use common::gradscope;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The figures a report of a finished regression run draws.
const FIGURES: [&str; 6] = ["gradient-flow", "heatmap", "loss", "update-ratio", "activations", "dact"];

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GRADSCOPE_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Chromium, or None (with a note) outside CI; under CI a missing browser is a failure.
fn chromium() -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no chromium on PATH: `apt-get install -y chromium` (.ci/run does)");
        }
        eprintln!(
            "note: chromium not found; browser test skipped (apt-get install chromium, or set GRADSCOPE_CHROMIUM)"
        );
    }
    found
}

/// Runs headless Chromium on `url` with `extra` flags; returns (stdout, stderr). Killed after 90 s.
fn headless(bin: &Path, url: &str, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    // to files, not pipes: the DOM is larger than a pipe's buffer, and nobody reads it while we wait
    let (out_path, err_path) = (profile.path().join("stdout"), profile.path().join("stderr"));
    let mut child = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            child.kill().unwrap();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (read(&out_path), read(&err_path))
}

/// Measures each figure's inline SVG after layout and writes it into the DOM; the test injects
/// it into a copy of the page (the report itself has no script).
const MEASURE: &str = "<script>for (const f of document.querySelectorAll('figure')) { \
    const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : {width: 0, height: 0}; \
    f.setAttribute('data-measured', Math.round(r.width) + 'x' + Math.round(r.height)); }</script>";

/// Fraction of a PNG's pixels that are not near-white.
fn ink(png_bytes: &[u8]) -> f64 {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let total = px.len() / channels;
    let inked = px.chunks(channels).filter(|p| p.iter().take(3).any(|&c| c < 235)).count();
    inked as f64 / total as f64
}

/// Opens `html` in Chromium; returns every problem found (none: the page is fine).
fn check_report(bin: &Path, html: &Path, figures: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let text = std::fs::read_to_string(html).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("measured.html");
    let measured = match text.rfind("</body>") {
        Some(i) => format!("{}{MEASURE}{}", &text[..i], &text[i..]),
        None => format!("{text}{MEASURE}"),
    };
    std::fs::write(&copy, measured).unwrap();
    let (dom, log) = headless(bin, &format!("file://{}", copy.display()), &["--dump-dom"]);
    for line in log.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")) {
        problems.push(format!("console: {line}"));
    }
    if !dom.contains("<h1>gradscope report</h1>") {
        problems.push("the page did not load (no heading in the DOM)".into());
    }
    for name in figures {
        let Some(at) = dom.find(&format!("data-figure=\"{name}\"")) else {
            problems.push(format!("figure {name} is missing"));
            continue;
        };
        let tag = &dom[at..at + dom[at..].find('>').unwrap_or(0)];
        let size = tag.split("data-measured=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("0x0");
        let (w, h) = size.split_once('x').map_or((0, 0), |(w, h)| (w.parse().unwrap_or(0), h.parse().unwrap_or(0)));
        if w < 200 || h < 150 {
            problems.push(format!("figure {name} is {w}×{h} px: not drawn or not sized"));
        }
    }
    let shot = dir.path().join("shot.png");
    headless(
        bin,
        &format!("file://{}", html.display()),
        &["--window-size=1280,1600", &format!("--screenshot={}", shot.display())],
    );
    match std::fs::read(&shot) {
        Ok(bytes) if ink(&bytes) < 0.02 => problems.push(format!("the screenshot is blank ({:.4} inked)", ink(&bytes))),
        Ok(_) => {}
        Err(e) => problems.push(format!("no screenshot: {e}")),
    }
    problems
}

/// A real run's report, as `train` writes it.
fn trained_report(dir: &Path) -> PathBuf {
    gradscope()
        .args(["train", "--depth", "6", "--width", "16", "--steps", "40", "--probe-every", "10", "--quiet", "--out"])
        .arg(dir)
        .assert()
        .success();
    dir.join("report.html")
}

#[test]
fn report_loads_in_chromium_with_every_figure_sized() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let html = trained_report(&tmp.path().join("run"));
    let problems = check_report(&bin, &html, &FIGURES);
    assert!(problems.is_empty(), "report.html in Chromium:\n{}", problems.join("\n"));
}

/// The check above can fail: a figure taken out, a script error and a blank page are each caught.
#[test]
fn the_browser_check_catches_broken_reports() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let html = trained_report(&tmp.path().join("run"));
    let good = std::fs::read_to_string(&html).unwrap();
    let broken = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        check_report(&bin, &p, &FIGURES)
    };
    let start = good.find("<figure id=\"fig-heatmap\"").unwrap();
    let end = start + good[start..].find("</figure>").unwrap() + "</figure>".len();
    let no_heatmap = broken("no-figure.html", format!("{}{}", &good[..start], &good[end..]));
    assert!(no_heatmap.iter().any(|p| p == "figure heatmap is missing"), "{no_heatmap:?}");

    let script = broken("script.html", good.replace("</body>", "<script>drawFigures();</script></body>"));
    assert!(script.iter().any(|p| p.contains("Uncaught ReferenceError")), "{script:?}");

    let blank = broken("blank.html", good.replace("<body>", "<body style=\"display: none\">"));
    assert!(blank.iter().any(|p| p.contains("screenshot is blank")), "{blank:?}");
    assert!(blank.iter().any(|p| p.contains("not drawn or not sized")), "{blank:?}");
}

/// issue 14: a report of recurrent runs (written from the library, as the CLI will) lays out
/// the figures through time in Chromium, alone and compared.
#[test]
fn recurrent_report_loads_in_chromium_with_the_figures_through_time() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("lstm"), tmp.path().join("rnn_tanh"));
    common::write_recurrent_run(&a, gradscope::nn::recurrent::Cell::Lstm, 12, 20, 5);
    common::write_recurrent_run(&b, gradscope::nn::recurrent::Cell::RnnTanh, 12, 20, 5);
    let through_time = ["gradient-time", "time-heatmap", "gates", "loss"];
    gradscope().arg("report").arg(&a).assert().success();
    let problems = check_report(&bin, &a.join("report.html"), &through_time);
    assert!(problems.is_empty(), "one recurrent run in Chromium:\n{}", problems.join("\n"));
    let out = tmp.path().join("cmp");
    gradscope().arg("report").arg(&a).arg(&b).arg("--out").arg(&out).assert().success();
    let problems = check_report(&bin, &out.join("report.html"), &through_time);
    assert!(problems.is_empty(), "two recurrent runs in Chromium:\n{}", problems.join("\n"));
}

/// issue 15: the report of a PyTorch model watched by `gradscope.watch` (a run folder that
/// examples/python/cnn_mnist.py wrote, kept in tests/fixtures/watched-cnn) lays out every figure
/// in Chromium, with the model's module names on the gradient-flow figure's axis and the heat
/// map's rows.
#[test]
fn watched_model_report_loads_in_chromium_with_module_names() {
    let Some(bin) = chromium() else { return };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/watched-cnn");
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("watched-cnn");
    std::fs::create_dir(&run).unwrap();
    for file in ["config.toml", "metrics.jsonl", "summary.json"] {
        std::fs::copy(fixture.join(file), run.join(file)).unwrap();
    }
    gradscope().arg("report").arg(&run).assert().success();
    let problems = check_report(&bin, &run.join("report.html"), &FIGURES);
    assert!(problems.is_empty(), "a watched model's report in Chromium:\n{}", problems.join("\n"));
    for figure in ["gradient-flow", "heatmap"] {
        let svg = std::fs::read_to_string(run.join("figures").join(format!("{figure}.svg"))).unwrap();
        let texts: Vec<&str> = svg.split("</text>").filter_map(|t| t.rsplit('>').next()).map(str::trim).collect();
        for name in ["conv1", "bn1", "conv2", "bn2", "fc1", "fc2"] {
            assert!(texts.contains(&name), "{figure}: no axis label {name}");
        }
    }
}
