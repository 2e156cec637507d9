//! Reports: run folders in, `report.html` (one self-contained file) and every figure as `.svg`
//! and `.png` out.
//!
//! Reports read records (the files a run wrote), never a network. Renderers are pure functions
//! from a [`Report`] to bytes; [`write()`] is the one place that writes files, after everything
//! rendered, each file atomically.

pub mod figures;
pub mod html;
pub mod model;
pub mod plot;
pub mod time;

use crate::error::Result;
use crate::io;
pub use figures::{Figure, figures};
pub use model::{ModelDescription, ModelLayer, Report, Run, Theory};
use std::path::{Path, PathBuf};

/// The page's file name.
pub const REPORT_FILE: &str = "report.html";
/// The folder of the figure files, beside the page.
pub const FIGURES_DIR: &str = "figures";
/// PNGs are drawn at this multiple of the SVG's size (sharp on slides and high-DPI screens).
pub const PNG_SCALE: u32 = 2;

/// Something that turns a report into the bytes of one file.
pub trait Render {
    /// The file's bytes; the same report gives the same bytes.
    fn render(&self, r: &Report) -> Result<Vec<u8>>;
}

/// `report.html`.
pub struct Html;

impl Render for Html {
    fn render(&self, r: &Report) -> Result<Vec<u8>> {
        let figs = figures(r);
        let svgs = svgs(&figs)?;
        Ok(html::page(r, &figs, &svgs).into_bytes())
    }
}

/// One figure as SVG, by name ("gradient-flow").
pub struct Svg(pub &'static str);

/// One figure as PNG, by name.
pub struct Png(pub &'static str);

fn named(r: &Report, name: &str) -> Option<Figure> {
    figures(r).into_iter().find(|f| f.name == name && !f.is_empty())
}

impl Render for Svg {
    fn render(&self, r: &Report) -> Result<Vec<u8>> {
        named(r, self.0).map_or(Ok(Vec::new()), |f| plot::svg(&f).map(String::into_bytes))
    }
}

impl Render for Png {
    fn render(&self, r: &Report) -> Result<Vec<u8>> {
        named(r, self.0).map_or(Ok(Vec::new()), |f| plot::png(&f, PNG_SCALE))
    }
}

fn svgs(figs: &[Figure]) -> Result<Vec<Option<String>>> {
    figs.iter().map(|f| if f.is_empty() { Ok(None) } else { plot::svg(f).map(Some) }).collect()
}

/// What [`write()`] wrote.
#[derive(Debug)]
pub struct Written {
    /// `report.html`.
    pub html: PathBuf,
    /// The figure files.
    pub figures: Vec<PathBuf>,
}

/// Renders the report and writes `out/report.html` and `out/figures/NAME.{svg,png}`. Everything
/// is rendered before the first file is written; each file is replaced atomically.
pub fn write(r: &Report, out: &Path) -> Result<Written> {
    let figs = figures(r);
    let svgs = svgs(&figs)?;
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let dir = out.join(FIGURES_DIR);
    for (fig, svg) in figs.iter().zip(&svgs) {
        if let Some(svg) = svg {
            files.push((dir.join(format!("{}.svg", fig.name)), svg.clone().into_bytes()));
            files.push((dir.join(format!("{}.png", fig.name)), plot::png(fig, PNG_SCALE)?));
        }
    }
    let page = html::page(r, &figs, &svgs);
    io::create_dir(&dir)?;
    for (path, bytes) in &files {
        io::write_atomic(path, bytes)?;
    }
    let html = out.join(REPORT_FILE);
    io::write_atomic(&html, page.as_bytes())?;
    Ok(Written { html, figures: files.into_iter().map(|f| f.0).collect() })
}

/// Small, made-up reports for tests: no training, every number chosen.
#[doc(hidden)]
pub mod sample {
    use super::model::{Report, Run};
    use crate::config::Config;
    use crate::probe::{DACT_BINS, LayerStats, StepRecord};
    use crate::summary::Summary;

    /// A record of `layers` layers at `step` whose gradient falls by `decay` per layer towards
    /// the input.
    pub fn record(step: u64, layers: usize, decay: f64, loss: f64) -> StepRecord {
        let stats: Vec<LayerStats> = (0..layers)
            .map(|l| {
                let mut hist = vec![0.0; DACT_BINS];
                hist[DACT_BINS - 1 - l.min(DACT_BINS - 1)] = 1.0;
                LayerStats {
                    layer: l,
                    grad_w_norm: decay.powi((layers - 1 - l) as i32),
                    grad_b_norm: 0.1,
                    grad_z_norm: 0.1,
                    grad_h_norm: 0.1,
                    act_mean: 0.5,
                    act_std: 0.1,
                    act_p05: 0.3 - 0.01 * step as f64,
                    act_p50: 0.5,
                    act_p95: 0.7 + 0.01 * step as f64,
                    dact_mean: 0.2,
                    dact_hist: hist,
                    saturation: 0.0,
                    weight_norm: 1.0,
                    update_ratio: Some(1e-3 * decay.powi((layers - 1 - l) as i32)),
                    norm_grad_w_norm: None,
                    norm_grad_b_norm: None,
                    shortcut_grad_w_norm: None,
                }
            })
            .collect();
        StepRecord {
            step,
            epoch: 0,
            train_loss: loss,
            vanishing_ratio: decay.powi(layers as i32 - 1),
            test_loss: Some(loss * 1.1),
            test_accuracy: None,
            layers: stats,
            grad_norm: None,
            clipped: None,
            time: None,
        }
    }

    /// A finished run of a `depth`-hidden-layer network probed at `steps`.
    pub fn run(dir: &str, activation: &str, depth: usize, decay: f64, steps: &[u64]) -> Run {
        let records: Vec<StepRecord> =
            steps.iter().enumerate().map(|(i, &s)| record(s, depth + 1, decay, 1.0 / (1.0 + i as f64))).collect();
        let last = records.last().expect("a step");
        let summary = Summary {
            gradscope_version: "0.1.0".into(),
            data: "regression".into(),
            seed: 0,
            threads: 1,
            steps: last.step,
            epochs: 1,
            train_loss: last.train_loss,
            test_loss: last.test_loss,
            train_accuracy: None,
            test_accuracy: None,
            vanishing_ratio: records[0].vanishing_ratio,
            vanishing_ratio_final: last.vanishing_ratio,
            diverged: false,
            diverged_at_step: None,
            wall_time_s: 1.5,
            clipped_steps: 0,
            status: Default::default(),
            nonfinite: None,
            skipped_steps: 0,
            vanishing_ratio_time: None,
            vanishing_ratio_time_final: None,
        };
        let named = Config::from_flags([format!("--activation={activation}")]).expect("a known activation");
        let config = Config { depth, steps: Some(last.step), threads: 1, ..named };
        Run {
            dir: dir.into(),
            label: String::new(),
            config,
            summary: Some(summary),
            records,
            command: Some(format!("gradscope train --depth {depth} --activation {activation} --out {dir}")),
            theory: Default::default(),
            model: None,
            data: None,
        }
    }

    /// Two runs: a 3-hidden-layer sigmoid net whose gradient falls 10× per layer, and a relu net
    /// whose gradient stays flat.
    pub fn two_runs() -> Report {
        Report::new(
            vec![run("out/sigmoid", "sigmoid", 3, 0.1, &[0, 10, 20]), run("out/relu", "relu", 3, 1.0, &[0, 10, 20])],
            "gradscope report out/sigmoid out/relu".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page with every inline SVG cut to `<svg …/>`: its skeleton and captions.
    fn skeleton(html: &str) -> String {
        let mut out = String::new();
        let mut rest = html;
        while let Some(i) = rest.find("<svg") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find("</svg>").expect("closed svg") + i + "</svg>".len();
            let open_end = rest[i..].find('>').expect("svg tag") + i;
            out.push_str(&rest[i..open_end]);
            out.push_str("/>");
            rest = &rest[end..];
        }
        out.push_str(rest);
        // the version moves with every release
        out.replace(env!("CARGO_PKG_VERSION"), "VERSION")
    }

    #[test]
    fn html_skeleton_snapshot() {
        let html = String::from_utf8(Html.render(&sample::two_runs()).unwrap()).unwrap();
        insta::assert_snapshot!(skeleton(&html));
    }

    #[test]
    fn small_svg_snapshot() {
        let r = Report::new(vec![sample::run("out/a", "tanh", 1, 0.5, &[0, 5])], "gradscope report out/a".into());
        let svg = String::from_utf8(Svg("gradient-flow").render(&r).unwrap()).unwrap();
        insta::assert_snapshot!(svg);
    }

    /// Rendering is a function of the report: twice the same report, twice the same bytes.
    #[test]
    fn rendering_is_deterministic_and_self_contained() {
        let r = sample::two_runs();
        let a = Html.render(&r).unwrap();
        assert_eq!(a, Html.render(&r).unwrap());
        assert_eq!(Png("heatmap").render(&r).unwrap(), Png("heatmap").render(&r).unwrap());
        let html = String::from_utf8(a).unwrap();
        for banned in ["<script", "http://", "https://", "<link", "@import", "<img"] {
            let allowed = "xmlns=\"http://www.w3.org/2000/svg\"";
            assert!(!html.replace(allowed, "").contains(banned), "report.html contains {banned}");
        }
        let figs = figures(&r);
        assert_eq!(html.matches("<figure").count(), figs.len());
        assert_eq!(html.matches("<svg").count(), figs.len(), "every figure drawn inline");
        for f in &figs {
            assert!(!f.caption.is_empty() && !f.title.is_empty(), "{} lacks a caption", f.name);
            assert!(!f.legend.is_empty() || f.color_bar.is_some(), "{} lacks a legend", f.name);
            for p in &f.panels {
                if let figures::Panel::Lines { x, y, .. } | figures::Panel::Heat { x, y, .. } = p {
                    assert!(!x.label.is_empty() && !y.label.is_empty(), "{} lacks axis labels", f.name);
                }
            }
        }
    }

    #[test]
    fn labels_and_provenance_are_listed() {
        let html = String::from_utf8(Html.render(&sample::two_runs()).unwrap()).unwrap();
        for want in [
            "sigmoid</td>",
            "relu</td>",
            "gradscope report out/sigmoid out/relu",
            "gradscope train --depth 3 --activation relu --out out/relu",
            "activation = &quot;sigmoid&quot;",
            "data set</dt><dd>regression",
            "gradscope</dt><dd>0.1.0",
        ] {
            assert!(html.contains(want), "report lacks {want}");
        }
    }

    /// A run that diverged: its NaN steps are left out and the page says why.
    #[test]
    fn a_diverged_run_says_so_instead_of_drawing_nan() {
        let mut run = sample::run("out/nan", "relu", 3, 1.0, &[0, 10, 20]);
        run.records[2].train_loss = f64::NAN;
        run.records[2].test_loss = Some(f64::NAN);
        run.records[2].layers[0].grad_w_norm = f64::INFINITY;
        run.records[2].layers[1].grad_w_norm = 0.0;
        let s = run.summary.as_mut().unwrap();
        (s.diverged, s.diverged_at_step, s.train_loss) = (true, Some(25), f64::NAN);
        let r = Report::new(vec![run], "gradscope report out/nan".into());
        let html = String::from_utf8(Html.render(&r).unwrap()).unwrap();
        assert!(html.contains("The loss became NaN or infinite at step 25"), "{html}");
        assert!(html.contains("diverged at step 25"));
        let flow = figures(&r).into_iter().find(|f| f.name == "gradient-flow").unwrap();
        assert!(flow.notes.iter().any(|n| n.contains("step 20: 1 of 4 values are 0")), "{:?}", flow.notes);
        assert!(flow.notes.iter().any(|n| n.contains("NaN or infinite")), "{:?}", flow.notes);
        for f in figures(&r) {
            if !f.is_empty() {
                let svg = plot::svg(&f).unwrap();
                assert!(!svg.contains("NaN") && !svg.contains("inf"), "{} draws a non-finite number", f.name);
            }
        }
    }

    /// One probed step: the layer-wise figures draw it, the curves over steps say why they cannot.
    #[test]
    fn a_single_probed_step_renders_and_explains() {
        let r = Report::new(vec![sample::run("out/one", "sigmoid", 4, 0.2, &[0])], "gradscope report out/one".into());
        let figs = figures(&r);
        let by = |n: &str| figs.iter().find(|f| f.name == n).unwrap();
        assert!(!by("gradient-flow").is_empty());
        assert!(!by("heatmap").is_empty());
        assert!(!by("dact").is_empty());
        for n in ["loss", "update-ratio", "activations"] {
            assert!(by(n).is_empty(), "{n} draws a single point as a curve");
        }
        let html = String::from_utf8(Html.render(&r).unwrap()).unwrap();
        assert!(html.contains("Only one probed step (step 0)"));
        assert!(html.contains("Only one probed step (step 0): there is no curve over training to draw."));
        assert_eq!(html.matches("<svg").count(), 3);
        assert_eq!(html.matches("class=\"missing\"").count(), figs.len() - 3);
    }

    #[test]
    fn written_files_are_the_rendered_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let r = sample::two_runs();
        let w = write(&r, tmp.path()).unwrap();
        assert_eq!(std::fs::read(&w.html).unwrap(), Html.render(&r).unwrap());
        assert_eq!(w.figures.len(), 2 * figures(&r).len());
        let svg = tmp.path().join("figures/gradient-flow.svg");
        assert_eq!(std::fs::read(svg).unwrap(), Svg("gradient-flow").render(&r).unwrap());
        let png = std::fs::read(tmp.path().join("figures/heatmap.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let fig = figures(&r).into_iter().find(|f| f.name == "heatmap").unwrap();
        let info = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), (fig.size.0 * PNG_SCALE, fig.size.1 * PNG_SCALE));
    }
}
