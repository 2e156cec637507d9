//! What each figure shows, as plain data: series, bands and heat-map cells computed from the
//! records, with the values a figure cannot draw (zero or not finite on a log scale) left out
//! and said so. [`super::plot`] draws these with plotters.

use super::model::{Report, Run, sci};
use crate::error::Named;
use crate::probe::{DACT_BINS, StepRecord};

/// An sRGB colour.
pub type Rgb = (u8, u8, u8);

/// Run colours: matplotlib's "tab10", the palette readers of training curves know.
pub const RUN_COLORS: [Rgb; 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Neutral colour of style keys in legends ("solid: step 0").
pub const KEY_COLOR: Rgb = (90, 90, 90);

/// Colours of runs 10 to 19: the light halves of matplotlib's "tab20", in tab10's order, so
/// that a comparison of up to 20 runs (the remedies demo has 14) repeats no colour.
pub const RUN_COLORS_LIGHT: [Rgb; 10] = [
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
];

/// Colour of run `i` (repeats after 20 runs).
pub fn run_color(i: usize) -> Rgb {
    let k = i % (2 * RUN_COLORS.len());
    if k < RUN_COLORS.len() { RUN_COLORS[k] } else { RUN_COLORS_LIGHT[k - RUN_COLORS.len()] }
}

/// matplotlib's viridis at eight evenly spaced points (van der Walt & Smith 2015).
const VIRIDIS: [Rgb; 8] = [
    (68, 1, 84),
    (70, 50, 127),
    (54, 92, 141),
    (39, 127, 143),
    (31, 162, 136),
    (74, 194, 110),
    (160, 219, 57),
    (254, 232, 37),
];

/// Viridis at `t` in [0, 1], interpolated linearly between its stops.
pub fn viridis(t: f64) -> Rgb {
    interpolate(&VIRIDIS, t)
}

fn interpolate(stops: &[Rgb], t: f64) -> Rgb {
    let pos = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (pos.floor() as usize).min(stops.len() - 2);
    let u = pos - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * u).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Viridis at `t` in [0, 1], stopping short of its pale yellow end (hard to see on white).
pub fn sequential(t: f64) -> Rgb {
    viridis(t.clamp(0.0, 1.0) * 0.85)
}

/// One axis. For a log axis, the values given to the plot are log₁₀ of the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Label with units.
    pub label: String,
    /// Values are log₁₀ of the data; ticks read as powers of ten.
    pub log: bool,
    /// Only whole numbers are ticked (layer indices).
    pub integer: bool,
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
    /// When not empty, the axis is categorical: position i (a cell spanning i ± 0.5) is ticked
    /// and labelled `labels[i]` (the swept values of a phase diagram), and nothing else is.
    pub labels: Vec<String>,
}

/// A line through points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// What the line is (for tests and notes).
    pub label: String,
    /// Colour.
    pub color: Rgb,
    /// Dashed instead of solid.
    pub dashed: bool,
    /// Dots at the points.
    pub markers: bool,
    /// (x, y), y already log₁₀ on a log axis.
    pub points: Vec<(f64, f64)>,
}

/// A shaded band between two curves: (x, low, high).
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Colour (drawn translucent).
    pub color: Rgb,
    /// (x, low, high).
    pub points: Vec<(f64, f64, f64)>,
}

/// One heat-map cell; `value` None is drawn grey (not finite).
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// x extent.
    pub x: (f64, f64),
    /// y extent.
    pub y: (f64, f64),
    /// Colour value (on the colour bar's scale), None when not finite.
    pub value: Option<f64>,
    /// Text printed in the cell, with a border around it (phase diagrams of small grids).
    pub text: Option<String>,
}

/// One chart of a figure.
#[derive(Clone, Debug, PartialEq)]
pub enum Panel {
    /// Lines and bands on two axes.
    Lines {
        /// Title above the chart (empty for none).
        title: String,
        /// Horizontal axis.
        x: Axis,
        /// Vertical axis.
        y: Axis,
        /// Bands, drawn first.
        bands: Vec<Band>,
        /// Lines.
        series: Vec<Series>,
    },
    /// Coloured cells.
    Heat {
        /// Title above the chart.
        title: String,
        /// Horizontal axis.
        x: Axis,
        /// Vertical axis.
        y: Axis,
        /// The cells.
        cells: Vec<Cell>,
        /// Lines drawn over the cells (a theory's curve).
        lines: Vec<Series>,
    },
    /// Nothing to draw here, and why.
    Note {
        /// Title above the text.
        title: String,
        /// What happened.
        text: String,
    },
}

/// How a legend entry is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A solid line.
    Line,
    /// A dashed line.
    Dashed,
    /// A translucent swatch.
    Band,
}

/// A legend line.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    /// Text.
    pub label: String,
    /// Colour.
    pub color: Rgb,
    /// How it is drawn.
    pub mark: Mark,
}

/// Colour scale of heat maps.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorBar {
    /// Label with units.
    pub label: String,
    /// Values are log₁₀ of the data.
    pub log: bool,
    /// Value at the bottom.
    pub min: f64,
    /// Value at the top.
    pub max: f64,
    /// Viridis (true) or white to blue (false).
    pub viridis: bool,
}

impl ColorBar {
    /// The colour of `v` on this scale.
    pub fn color(&self, v: f64) -> Rgb {
        let t = if self.max > self.min { ((v - self.min) / (self.max - self.min)).clamp(0.0, 1.0) } else { 0.5 };
        if self.viridis {
            viridis(t)
        } else {
            // white → light blue → dark blue (ColorBrewer's "Blues" ends and middle); the square
            // root lets a few percent of the units show
            interpolate(&[(255, 255, 255), (107, 174, 214), (8, 48, 107)], t.sqrt())
        }
    }
}

/// A figure: panels in a grid, a legend or colour bar at the right, a caption under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// File stem and HTML id ("gradient-flow").
    pub name: &'static str,
    /// Title (drawn in the image and shown in the report).
    pub title: String,
    /// One sentence that says what to see.
    pub caption: String,
    /// What could not be drawn, and why.
    pub notes: Vec<String>,
    /// The charts, row by row.
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub columns: usize,
    /// Legend at the right (empty for none).
    pub legend: Vec<LegendEntry>,
    /// Colour bar at the right.
    pub color_bar: Option<ColorBar>,
    /// Width and height in CSS pixels.
    pub size: (u32, u32),
    /// Width of the legend or colour-bar column at the right, in CSS pixels (within `size`).
    pub side: u32,
}

impl Figure {
    /// True when no panel has anything to draw: the report shows the notes instead.
    pub fn is_empty(&self) -> bool {
        self.panels.iter().all(|p| matches!(p, Panel::Note { .. }))
    }
}

/// Every figure of a report, in reading order.
pub fn figures(r: &Report) -> Vec<Figure> {
    // the per-layer figures need per-layer records (a recurrent run's may have only `time`)
    let layered = r.runs.iter().any(|run| run.records.iter().any(|rec| !rec.layers.is_empty()));
    let mut v = if layered { vec![gradient_flow(r), heatmap(r)] } else { Vec::new() };
    v.extend(super::time::figures(r));
    v.push(loss(r));
    if r.runs.iter().any(|run| run.records.iter().any(|rec| rec.test_accuracy.is_some())) {
        v.push(accuracy(r));
    }
    if layered {
        v.extend([update_ratio(r), activations(r), dact(r)]);
    }
    v
}

/// Indices of at most `k` items of `n`, evenly spread, first and last included.
pub fn spread(n: usize, k: usize) -> Vec<usize> {
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let mut v: Vec<usize> = (0..k.min(n))
        .map(|i| if k.min(n) == 1 { 0 } else { (i * (n - 1) + (k.min(n) - 1) / 2) / (k.min(n) - 1) })
        .collect();
    v.dedup();
    v
}

/// Turns data points into plotted points: log₁₀ on a log axis, where zero and negative values
/// cannot go, and nothing that is not finite. Returns the points and how many were dropped.
fn plotted(points: impl IntoIterator<Item = (f64, f64)>, log: bool) -> (Vec<(f64, f64)>, usize, usize) {
    let (mut out, mut zero, mut bad) = (Vec::new(), 0, 0);
    for (x, y) in points {
        if !y.is_finite() {
            bad += 1;
        } else if log && y <= 0.0 {
            zero += 1;
        } else {
            out.push((x, if log { y.log10() } else { y }));
        }
    }
    (out, zero, bad)
}

/// Notes for a series that lost points.
fn drop_note(notes: &mut Vec<String>, what: &str, zero: usize, bad: usize, total: usize) {
    if zero > 0 {
        notes.push(format!(
            "{what}: {zero} of {total} values are 0 and have no place on a log scale; they are not drawn."
        ));
    }
    if bad > 0 {
        notes.push(format!("{what}: {bad} of {total} values are NaN or infinite; they are not drawn."));
    }
}

/// An axis spanning the values, padded; whole decades on a log axis.
fn axis_over(label: &str, log: bool, integer: bool, values: impl IntoIterator<Item = f64>) -> Axis {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if log {
        lo = (lo - 0.05).floor();
        hi = (hi + 0.05).ceil();
    } else if integer {
        lo -= 0.5;
        hi += 0.5;
    } else {
        let pad = if hi > lo { (hi - lo) * 0.06 } else { lo.abs().max(1.0) * 0.1 };
        lo -= pad;
        hi += pad;
    }
    Axis { label: label.into(), log, integer, min: lo, max: hi, labels: Vec::new() }
}

fn lines(title: String, x: Axis, y: Axis, bands: Vec<Band>, series: Vec<Series>) -> Panel {
    Panel::Lines { title, x, y, bands, series }
}

fn note(title: &str, text: String) -> Panel {
    Panel::Note { title: title.into(), text }
}

/// Legend entries for the runs, one colour each.
fn run_legend(r: &Report) -> Vec<LegendEntry> {
    r.runs
        .iter()
        .enumerate()
        .map(|(i, run)| LegendEntry { label: run.label.clone(), color: run_color(i), mark: Mark::Line })
        .collect()
}

fn key(label: &str, mark: Mark) -> LegendEntry {
    LegendEntry { label: label.into(), color: KEY_COLOR, mark }
}

/// Width and height of a figure with `panels` panels of `panel` pixels in `columns` columns,
/// a title and a side column of `side` pixels.
fn grid_size(panels: usize, columns: usize, panel: (u32, u32), side: u32) -> (u32, u32) {
    let rows = panels.div_ceil(columns.max(1)).max(1) as u32;
    (panel.0 * columns.max(1) as u32 + side, 50 + rows * panel.1)
}

/// Width of a legend column that fits its longest label.
fn legend_width(legend: &[LegendEntry]) -> u32 {
    let chars = legend.iter().map(|e| e.label.chars().count()).max().unwrap_or(0) as u32;
    (chars * 9 + 64).clamp(150, 400)
}

fn last_step(run: &Run) -> u64 {
    run.records.last().map_or(0, |r| r.step)
}

/// A tick label: powers of ten on log axes, whole numbers on integer axes, compact otherwise.
pub fn tick(v: f64, log: bool, integer: bool) -> String {
    let whole = (v - v.round()).abs() < 1e-9;
    if log {
        if whole {
            return format!("10{}", superscript(v.round() as i64));
        }
        return sci(10f64.powf(v));
    }
    if integer {
        return if whole { format!("{}", v.round() as i64) } else { String::new() };
    }
    if v == 0.0 || whole && v.abs() < 1e6 {
        return format!("{}", v.round() as i64);
    }
    let a = v.abs();
    if (0.01..1e4).contains(&a) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// Superscript digits for tick labels: 10⁻¹⁸.
fn superscript(n: i64) -> String {
    n.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect()
}

const GRAD_LABEL: &str = "‖∂L/∂W‖ of the layer (Frobenius norm, log scale)";

/// The mean-field prediction of ‖∂L/∂W_l‖ at initialisation for a run's hidden layers 1..depth−1,
/// anchored at the measured step-0 norm of the last hidden layer: [`Theory::decay`] (given by
/// the caller) is E‖∂L/∂z_l‖², and away from the input ‖∂L/∂W_l‖ ∝ ‖∂L/∂z_l‖. None when the
/// run is too shallow, its step-0 norms are not finite, or there is no prediction.
///
/// [`Theory::decay`]: super::model::Theory::decay
pub fn predicted_flow(run: &Run) -> Option<Vec<(f64, f64)>> {
    let c = &run.config;
    let rec = run.records.first().filter(|r| r.step == 0)?;
    let depth = c.depth;
    if depth < 3 || rec.layers.len() != depth + 1 {
        return None;
    }
    let decay = run.theory.decay.as_ref()?;
    let anchor = rec.layers[depth - 1].grad_w_norm;
    let base = decay.get(depth - 1).copied()?;
    if !(anchor.is_finite() && anchor > 0.0 && base.is_finite() && base > 0.0) {
        return None;
    }
    let points: Vec<(f64, f64)> = (1..depth)
        .map(|l| (l as f64, anchor * (decay[l] / base).sqrt()))
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .collect();
    (!points.is_empty()).then_some(points)
}

/// Longest layer name an axis shows (longer ones keep their last characters after a "…").
pub const MAX_NAME_CHARS: usize = 28;

/// The layer names of watched models (the `[model]` table) when every run has one and they
/// agree, shortened to [`MAX_NAME_CHARS`]; empty otherwise (the axis shows indices).
pub fn layer_names(r: &Report) -> Vec<String> {
    let Some(first) = r.runs.first().and_then(|run| run.model.as_ref()) else { return Vec::new() };
    if r.runs.iter().any(|run| run.model.as_ref().map(|m| &m.layers) != Some(&first.layers)) {
        return Vec::new();
    }
    let short = |name: &str| {
        let n = name.chars().count();
        if n <= MAX_NAME_CHARS {
            return name.to_string();
        }
        let tail: String = name.chars().skip(n - (MAX_NAME_CHARS - 1)).collect();
        format!("…{tail}")
    };
    first.layers.iter().map(|l| short(&l.name)).collect()
}

/// Gradient norm against layer: the picture of vanishing.
pub fn gradient_flow(r: &Report) -> Figure {
    let mut notes = Vec::new();
    let mut series = Vec::new();
    let norms = |rec: &StepRecord| rec.layers.iter().map(|l| (l.layer as f64, l.grad_w_norm)).collect::<Vec<_>>();
    let legend = if r.runs.len() == 1 {
        let run = &r.runs[0];
        let picks = spread(run.records.len(), 5);
        for (k, &i) in picks.iter().enumerate() {
            let rec = &run.records[i];
            let what = format!("step {}", rec.step);
            let (points, zero, bad) = plotted(norms(rec), true);
            drop_note(&mut notes, &what, zero, bad, rec.layers.len());
            let t = if picks.len() > 1 { k as f64 / (picks.len() - 1) as f64 } else { 0.0 };
            series.push(Series { label: what, color: sequential(t), dashed: false, markers: true, points });
        }
        let mut legend: Vec<LegendEntry> =
            series.iter().map(|s| LegendEntry { label: s.label.clone(), color: s.color, mark: Mark::Line }).collect();
        if let Some(points) = predicted_flow(run) {
            let (points, _, _) = plotted(points, true);
            series.push(Series {
                label: "mean-field prediction, step 0".into(),
                color: KEY_COLOR,
                dashed: true,
                markers: false,
                points,
            });
            legend.push(key("dashed: mean-field prediction", Mark::Dashed));
        }
        legend
    } else {
        for (i, run) in r.runs.iter().enumerate() {
            let mut ends = vec![(0, false)];
            if run.records.len() > 1 {
                ends.push((run.records.len() - 1, true));
            }
            for (idx, dashed) in ends {
                let rec = &run.records[idx];
                let what = format!("{}, step {}", run.label, rec.step);
                let (points, zero, bad) = plotted(norms(rec), true);
                drop_note(&mut notes, &what, zero, bad, rec.layers.len());
                series.push(Series { label: what, color: run_color(i), dashed, markers: !dashed, points });
            }
        }
        let mut l = run_legend(r);
        l.push(key("solid: step 0", Mark::Line));
        l.push(key("dashed: last probed step", Mark::Dashed));
        l
    };
    let names = layer_names(r);
    // upright layer names take room below the axis: the figure grows by it
    let x_area = |x: &Axis| {
        let longest = x.labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        if super::plot::upright(x) { (super::plot::UPRIGHT_PX_PER_CHAR * longest as f64) as u32 } else { 0 }
    };
    let x = if names.is_empty() {
        axis_over(
            "layer l (0 = first hidden layer, last = output layer)",
            false,
            true,
            [0.0, r.max_layers().saturating_sub(1) as f64],
        )
    } else {
        let max = names.len() as f64 - 0.5;
        Axis { label: "layer, in forward order".into(), log: false, integer: true, min: -0.5, max, labels: names }
    };
    let y = axis_over(GRAD_LABEL, true, false, series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let empty = series.iter().all(|s| s.points.is_empty());
    let panels = if empty {
        vec![note("", "no gradient norm is finite and positive: nothing to draw".into())]
    } else {
        vec![lines(String::new(), x, y, Vec::new(), series)]
    };
    let side = legend_width(&legend);
    let extra = panels.iter().map(|p| if let Panel::Lines { x, .. } = p { x_area(x) } else { 0 }).max().unwrap_or(0);
    Figure {
        name: "gradient-flow",
        title: "Gradient flow: how much gradient reaches each layer".into(),
        caption: "Read each line from the output layer (right) to the input (left): a line that falls by orders \
                  of magnitude towards layer 0 is a vanishing gradient, a flat line is a healthy one. With one run, \
                  the dashed grey line is the mean-field prediction at step 0 (gradscope theory), anchored at the \
                  last hidden layer."
            .into(),
        notes,
        panels,
        columns: 1,
        size: (760 + side, 520 + extra),
        side,
        legend,
        color_bar: None,
    }
}

/// Centred cell edges around probed steps (the heat maps' cells; also the report's time ×
/// step map).
pub(super) fn step_edges(steps: &[f64]) -> Vec<f64> {
    match steps.len() {
        0 => Vec::new(),
        1 => vec![steps[0] - 0.5, steps[0] + 0.5],
        n => {
            let mut e = vec![steps[0] - (steps[1] - steps[0]) / 2.0];
            e.extend(steps.windows(2).map(|w| (w[0] + w[1]) / 2.0));
            e.push(steps[n - 1] + (steps[n - 1] - steps[n - 2]) / 2.0);
            e
        }
    }
}

/// Most probed steps a heat map shows (columns).
pub const HEAT_COLUMNS: usize = 120;

/// Layer × step of log₁₀ grad_w_norm, one panel per run on one colour scale.
pub fn heatmap(r: &Report) -> Figure {
    let mut notes = Vec::new();
    let logs: Vec<f64> = r
        .runs
        .iter()
        .flat_map(|run| run.records.iter().flat_map(|rec| rec.layers.iter().map(|l| l.grad_w_norm)))
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(f64::log10)
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min).floor();
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max).ceil().max(lo + 1.0);
    let bar = ColorBar {
        label: "‖∂L/∂W‖ of the layer (log scale)".into(), log: true, min: lo, max: hi, viridis: true
    };
    // a watched model's module names label the rows (as on the gradient-flow figure)
    let names = layer_names(r);
    let panels: Vec<Panel> = r
        .runs
        .iter()
        .map(|run| {
            let title = if r.runs.len() > 1 { run.label.clone() } else { String::new() };
            // at most HEAT_COLUMNS columns, so that a run probed every step still draws quickly
            let shown: Vec<&StepRecord> =
                spread(run.records.len(), HEAT_COLUMNS).into_iter().map(|i| &run.records[i]).collect();
            if shown.len() < run.records.len() {
                notes.push(format!(
                    "{}{} of its {} probed steps are shown, evenly spread.",
                    if r.runs.len() > 1 { format!("{}: ", run.label) } else { String::new() },
                    shown.len(),
                    run.records.len()
                ));
            }
            let steps: Vec<f64> = shown.iter().map(|rec| rec.step as f64).collect();
            let edges = step_edges(&steps);
            let mut cells = Vec::new();
            let mut missing = 0;
            for (i, rec) in shown.iter().enumerate() {
                for l in &rec.layers {
                    let v = l.grad_w_norm;
                    let value = (v.is_finite() && v > 0.0).then(|| v.log10());
                    missing += usize::from(value.is_none());
                    let y = l.layer as f64;
                    cells.push(Cell { x: (edges[i], edges[i + 1]), y: (y - 0.5, y + 0.5), value, text: None });
                }
            }
            if missing > 0 {
                notes.push(format!(
                    "{}: {missing} cells are grey: the gradient norm there is 0 or not finite.",
                    if run.label.is_empty() { "this run" } else { &run.label }
                ));
            }
            let x = Axis {
                label: "training step".into(),
                log: false,
                integer: true,
                min: edges[0],
                max: *edges.last().unwrap_or(&1.0),
                labels: Vec::new(),
            };
            let y = Axis {
                label: if names.is_empty() { "layer l" } else { "layer, in forward order" }.into(),
                log: false,
                integer: true,
                min: -0.5,
                max: run.layers() as f64 - 0.5,
                labels: names.clone(),
            };
            Panel::Heat { title, x, y, cells, lines: Vec::new() }
        })
        .collect();
    let columns = r.runs.len().clamp(1, 3);
    let panel = if r.runs.len() == 1 { (760, 440) } else { (330, 270) };
    // the names' room left of the axis widens each panel rather than narrowing its cells
    let names_px =
        panels.iter().map(|p| if let Panel::Heat { y, .. } = p { super::plot::y_label_px(y) - 90.0 } else { 0.0 });
    let panel = (panel.0 + names_px.fold(0.0, f64::max) as u32, panel.1);
    Figure {
        name: "heatmap",
        title: "Gradient norm by layer and step".into(),
        caption: "Each cell is one layer at one probed step, coloured by log₁₀ of its gradient norm: dark rows \
                  near layer 0 are layers that receive almost no gradient and so barely learn."
            .into(),
        notes,
        size: grid_size(panels.len(), columns, panel, 136),
        side: 136,
        panels,
        columns,
        legend: Vec::new(),
        color_bar: Some(bar),
    }
}

/// A quantity of the records against step, for every run: train/test or first/last layer.
struct Curve<'a> {
    what: &'a str,
    dashed: bool,
    get: &'a dyn Fn(&StepRecord) -> Option<f64>,
}

/// Curves against step, one colour per run (several runs) or per curve (one run).
fn over_steps(r: &Report, curves: &[Curve], log: bool, notes: &mut Vec<String>) -> Vec<Series> {
    let mut series = Vec::new();
    for (i, run) in r.runs.iter().enumerate() {
        for (k, c) in curves.iter().enumerate() {
            let raw: Vec<(f64, f64)> =
                run.records.iter().filter_map(|rec| (c.get)(rec).map(|v| (rec.step as f64, v))).collect();
            if raw.is_empty() {
                continue;
            }
            let what = if r.runs.len() > 1 { format!("{}, {}", run.label, c.what) } else { c.what.to_string() };
            let (points, zero, bad) = plotted(raw.iter().copied(), log);
            drop_note(notes, &what, zero, bad, raw.len());
            let (color, dashed) = if r.runs.len() > 1 { (run_color(i), c.dashed) } else { (run_color(k), false) };
            series.push(Series { label: what, color, dashed, markers: points.len() < 3, points });
        }
    }
    series
}

/// What a figure over steps says instead of a curve when no run has two probed steps.
fn too_few_steps(r: &Report) -> Option<String> {
    r.runs.iter().all(|run| run.records.len() < 2).then(|| {
        let steps: Vec<String> = r.runs.iter().map(|run| last_step(run).to_string()).collect();
        format!(
            "Only one probed step (step {}): a curve over training needs at least two. Train longer or probe more \
             often (--probe-every).",
            steps.join(", ")
        )
    })
}

fn divergence_notes(r: &Report, notes: &mut Vec<String>) {
    for run in &r.runs {
        if let Some(step) = run.diverged_at() {
            notes.push(format!(
                "{}: the loss became NaN or infinite at step {step}; the curve stops at the last finite probe.",
                if r.runs.len() > 1 { run.label.as_str() } else { "This run" }
            ));
        }
    }
}

fn step_figure(
    r: &Report,
    name: &'static str,
    title: &str,
    caption: &str,
    y_label: &str,
    curves: &[Curve],
    log: Option<bool>,
) -> Figure {
    let mut notes = Vec::new();
    // log scale when every value is positive (losses usually are), or as asked
    let log = log.unwrap_or_else(|| {
        r.runs.iter().all(|run| {
            run.records.iter().all(|rec| curves.iter().all(|c| (c.get)(rec).is_none_or(|v| !v.is_finite() || v > 0.0)))
        })
    });
    let series = over_steps(r, curves, log, &mut notes);
    divergence_notes(r, &mut notes);
    let mut legend: Vec<LegendEntry> = if r.runs.len() > 1 {
        run_legend(r)
    } else {
        series.iter().map(|s| LegendEntry { label: s.label.clone(), color: s.color, mark: Mark::Line }).collect()
    };
    if r.runs.len() > 1 && curves.len() > 1 {
        for c in curves {
            if series.iter().any(|s| s.dashed == c.dashed) {
                let mark = if c.dashed { Mark::Dashed } else { Mark::Line };
                legend.push(key(&format!("{}: {}", if c.dashed { "dashed" } else { "solid" }, c.what), mark));
            }
        }
    }
    let panel = if let Some(text) = too_few_steps(r) {
        note("", text)
    } else if series.iter().all(|s| s.points.is_empty()) {
        note("", "no value to draw: every one is missing, zero or not finite".into())
    } else {
        let x = axis_over("training step", false, false, series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
        let y_label = if log { format!("{y_label} (log scale)") } else { y_label.to_string() };
        let y = axis_over(&y_label, log, false, series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        lines(String::new(), x, y, Vec::new(), series)
    };
    let side = legend_width(&legend);
    Figure {
        name,
        title: title.into(),
        caption: caption.into(),
        notes,
        panels: vec![panel],
        columns: 1,
        size: (760 + side, 440),
        side,
        legend,
        color_bar: None,
    }
}

/// Training (batch) and test loss against step.
pub fn loss(r: &Report) -> Figure {
    let train = |rec: &StepRecord| Some(rec.train_loss);
    let test = |rec: &StepRecord| rec.test_loss;
    let loss_name = r.runs.first().map_or("mse".to_string(), |run| run.config.loss.name());
    step_figure(
        r,
        "loss",
        "Loss during training",
        "A network whose first layers get no gradient learns little: its loss stays near where it started, \
         while a network with a healthy gradient flow drives it down.",
        &format!("loss ({loss_name})"),
        &[
            Curve { what: "training loss (this step's batch)", dashed: false, get: &train },
            Curve { what: "test loss", dashed: true, get: &test },
        ],
        None,
    )
}

/// Test accuracy against step (classification).
pub fn accuracy(r: &Report) -> Figure {
    let acc = |rec: &StepRecord| rec.test_accuracy.map(|a| 100.0 * a);
    step_figure(
        r,
        "accuracy",
        "Test accuracy during training",
        "Accuracy on held-out test rows at each probed step: it rises only as fast as the gradient lets the \
         layers learn.",
        "test accuracy (%)",
        &[Curve { what: "test accuracy", dashed: false, get: &acc }],
        Some(false),
    )
}

/// ‖ΔW‖/‖W‖ against step.
pub fn update_ratio(r: &Report) -> Figure {
    let first = |rec: &StepRecord| rec.layers.first().and_then(|l| l.update_ratio);
    let output = |rec: &StepRecord| rec.layers.last().and_then(|l| l.update_ratio);
    let mut fig = if r.runs.len() > 1 {
        step_figure(
            r,
            "update-ratio",
            "",
            "",
            "‖ΔW‖ / ‖W‖ of the layer, per update",
            &[
                Curve { what: "layer 0 (first)", dashed: false, get: &first },
                Curve { what: "output layer", dashed: true, get: &output },
            ],
            Some(true),
        )
    } else {
        // one run: a line for each of a few layers, coloured from the input (dark) to the output
        let run = &r.runs[0];
        let picks = spread(run.layers(), 5);
        type Getter = Box<dyn Fn(&StepRecord) -> Option<f64>>;
        let getters: Vec<Getter> = picks
            .iter()
            .map(|&l| Box::new(move |rec: &StepRecord| rec.layers.get(l).and_then(|s| s.update_ratio)) as Box<_>)
            .collect();
        let names: Vec<String> = picks
            .iter()
            .map(|&l| if l + 1 == run.layers() { format!("layer {l} (output)") } else { format!("layer {l}") })
            .collect();
        let curves: Vec<Curve> = getters
            .iter()
            .zip(&names)
            .map(|(g, n)| Curve { what: n.as_str(), dashed: false, get: g.as_ref() })
            .collect();
        let mut fig =
            step_figure(r, "update-ratio", "", "", "‖ΔW‖ / ‖W‖ of the layer, per update", &curves, Some(true));
        let n = picks.len().max(2) - 1;
        if let Some(Panel::Lines { series, .. }) = fig.panels.first_mut() {
            for (k, s) in series.iter_mut().enumerate() {
                s.color = sequential(k as f64 / n as f64);
            }
        }
        for (k, e) in fig.legend.iter_mut().enumerate() {
            e.color = sequential(k as f64 / n as f64);
        }
        fig
    };
    fig.title = "Update-to-weight ratio: how fast each layer changes".into();
    fig.caption = "Each optimizer step changes a layer's weights by this fraction of their size; around 10⁻³ a \
                   layer learns, orders of magnitude below it the layer is frozen."
        .into();
    let final_only =
        r.runs.iter().all(|run| run.records.iter().all(|rec| rec.layers.iter().all(|l| l.update_ratio.is_none())));
    if final_only {
        fig.panels = vec![note("", "no probed step was followed by an update: there is no ratio to draw".into())];
    }
    fig
}

/// Three hidden layers to show: the first, the middle and the last (fewer in shallow nets).
fn shown_hidden(depth: usize) -> Vec<(usize, &'static str)> {
    if depth == 0 {
        return Vec::new();
    }
    let mut v = vec![
        (0, "first hidden layer"),
        ((depth - 1).div_ceil(2), "middle hidden layer"),
        (depth - 1, "last hidden layer"),
    ];
    v.dedup_by_key(|p| p.0);
    v
}

fn position_color(name: &str) -> Rgb {
    match name {
        "first hidden layer" => sequential(0.0),
        "middle hidden layer" => sequential(0.5),
        _ => sequential(1.0),
    }
}

/// Activation percentiles per layer over training (Glorot & Bengio 2010, figure 2).
pub fn activations(r: &Report) -> Figure {
    let mut notes = Vec::new();
    divergence_notes(r, &mut notes);
    let few = too_few_steps(r);
    let panels: Vec<Panel> = r
        .runs
        .iter()
        .map(|run| {
            let title = if r.runs.len() > 1 { run.label.clone() } else { format!("{} units", run.activation()) };
            let depth = run.layers().saturating_sub(1);
            if depth == 0 {
                return note(&title, "no hidden layer: no activation to show".into());
            }
            if run.records.len() < 2 {
                return note(&title, few.clone().unwrap_or_else(|| "only one probed step: no curve to draw".into()));
            }
            let finite: Vec<&StepRecord> = run.records.iter().collect();
            let mut bands = Vec::new();
            let mut series = Vec::new();
            for (l, name) in shown_hidden(depth) {
                let color = position_color(name);
                let label = format!("{name} ({l})");
                let get = |f: fn(&crate::probe::LayerStats) -> f64| -> Vec<(f64, f64)> {
                    finite.iter().filter_map(|rec| rec.layers.get(l).map(|s| (rec.step as f64, f(s)))).collect()
                };
                let band: Vec<(f64, f64, f64)> = finite
                    .iter()
                    .filter_map(|rec| rec.layers.get(l).map(|s| (rec.step as f64, s.act_p05, s.act_p95)))
                    .filter(|p| p.1.is_finite() && p.2.is_finite())
                    .collect();
                bands.push(Band { color, points: band });
                let (median, _, bad) = plotted(get(|s| s.act_p50), false);
                drop_note(&mut notes, &format!("{}: {label} median", run.label), 0, bad, finite.len());
                series.push(Series {
                    label: format!("{label} median"),
                    color,
                    dashed: false,
                    markers: false,
                    points: median,
                });
                let (mean, _, _) = plotted(get(|s| s.act_mean), false);
                series.push(Series {
                    label: format!("{label} mean"),
                    color,
                    dashed: true,
                    markers: false,
                    points: mean,
                });
            }
            let ys = bands.iter().flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2]));
            let ys: Vec<f64> = ys.chain(series.iter().flat_map(|s| s.points.iter().map(|p| p.1))).collect();
            let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
            let x = axis_over("training step", false, false, xs);
            let y = axis_over("activation h = φ(z)", false, false, ys);
            lines(title, x, y, bands, series)
        })
        .collect();
    let mut legend: Vec<LegendEntry> = ["first hidden layer", "middle hidden layer", "last hidden layer"]
        .iter()
        .map(|n| LegendEntry { label: n.to_string(), color: position_color(n), mark: Mark::Band })
        .collect();
    legend.push(key("line: median", Mark::Line));
    legend.push(key("dashed: mean", Mark::Dashed));
    legend.push(key("band: 5th to 95th percentile", Mark::Band));
    let columns = r.runs.len().clamp(1, 3);
    let panel = if r.runs.len() == 1 { (760, 420) } else { (380, 290) };
    Figure {
        name: "activations",
        title: "Activations of the first, middle and last hidden layer during training".into(),
        caption: "As in Glorot & Bengio (2010): a band pressed against the activation's limits (0 or 1 for \
                  sigmoid, ±1 for tanh) is a layer of saturated units whose derivative is near 0."
            .into(),
        notes,
        size: grid_size(panels.len(), columns, panel, legend_width(&legend)),
        side: legend_width(&legend),
        panels,
        columns,
        legend,
        color_bar: None,
    }
}

/// Distribution of φ′ per hidden layer at the first and last probed step.
pub fn dact(r: &Report) -> Figure {
    let bar =
        ColorBar { label: "fraction of the layer's units".into(), log: false, min: 0.0, max: 1.0, viridis: false };
    let mut panels = Vec::new();
    for run in &r.runs {
        let depth = run.layers().saturating_sub(1);
        let max = run.theory.max_derivative;
        let x_label = match max {
            Some(m) => {
                format!("φ′(z) / max φ′   ({}: max φ′ = {})", run.activation(), tick(m, false, false))
            }
            None => "φ′(z) / max φ′".into(),
        };
        let mut picks = vec![0];
        if run.records.len() > 1 {
            // the last record that has histograms (a watched model takes them at some probes only)
            let hist = run.records.iter().rposition(|rec| rec.layers.iter().any(|l| !l.dact_hist.is_empty()));
            picks.extend(hist.filter(|&i| i > 0));
        }
        for i in picks {
            let rec = &run.records[i];
            let prefix = if r.runs.len() > 1 { format!("{}: ", run.label) } else { String::new() };
            let title = format!("{prefix}step {}", rec.step);
            if depth == 0 {
                panels.push(note(&title, "no hidden layer".into()));
                continue;
            }
            let mut cells = Vec::new();
            for l in rec.layers.iter().take(depth) {
                for (b, &f) in l.dact_hist.iter().enumerate().take(DACT_BINS) {
                    let x0 = b as f64 / DACT_BINS as f64;
                    let y = l.layer as f64;
                    cells.push(Cell {
                        x: (x0, x0 + 1.0 / DACT_BINS as f64),
                        y: (y - 0.5, y + 0.5),
                        value: f.is_finite().then_some(f),
                        text: None,
                    });
                }
            }
            if cells.is_empty() {
                panels.push(note(&title, "this record has no φ′ histogram (written by an older gradscope)".into()));
                continue;
            }
            let x = Axis { label: x_label.clone(), log: false, integer: false, min: 0.0, max: 1.0, labels: Vec::new() };
            let y = Axis {
                label: "hidden layer l".into(),
                log: false,
                integer: true,
                min: -0.5,
                max: depth as f64 - 0.5,
                labels: Vec::new(),
            };
            panels.push(Panel::Heat { title, x, y, cells, lines: Vec::new() });
        }
    }
    let columns = 2;
    Figure {
        name: "dact",
        title: "Distribution of the activation's derivative φ′ per layer, first and last step".into(),
        caption: "Every factor φ′ multiplies the gradient on its way down: mass in the left column (φ′ near 0) \
                  is saturated or dead units, and even the right column is only max φ′, 1/4 for sigmoid."
            .into(),
        notes: Vec::new(),
        size: grid_size(panels.len(), columns, (420, 215), 136),
        side: 136,
        panels,
        columns,
        legend: Vec::new(),
        color_bar: Some(bar),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn twenty_runs_get_twenty_colours() {
        let colours: std::collections::HashSet<_> = (0..20).map(run_color).collect();
        assert_eq!(colours.len(), 20);
        assert_eq!(run_color(20), run_color(0));
    }

    use super::*;

    #[test]
    fn spread_keeps_first_and_last() {
        assert_eq!(spread(16, 5), [0, 4, 8, 11, 15]);
        assert_eq!(spread(3, 5), [0, 1, 2]);
        assert_eq!(spread(1, 5), [0]);
        assert!(spread(0, 5).is_empty());
    }

    #[test]
    fn log_points_drop_zeros_and_nan_and_say_so() {
        let (p, zero, bad) = plotted([(0.0, 1e-3), (1.0, 0.0), (2.0, f64::NAN), (3.0, 100.0)], true);
        assert_eq!(p, [(0.0, -3.0), (3.0, 2.0)]);
        assert_eq!((zero, bad), (1, 1));
        let mut notes = Vec::new();
        drop_note(&mut notes, "step 7", zero, bad, 4);
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("1 of 4 values are 0"));
    }

    #[test]
    fn axes_cover_whole_decades() {
        let a = axis_over("g", true, false, [-17.4, 0.3]);
        assert_eq!((a.min, a.max), (-18.0, 1.0));
        let b = axis_over("layer", false, true, [0.0, 20.0]);
        assert_eq!((b.min, b.max), (-0.5, 20.5));
        assert_eq!(step_edges(&[0.0, 100.0, 300.0]), [-50.0, 50.0, 200.0, 400.0]);
    }

    #[test]
    fn heat_maps_of_long_runs_show_at_most_heat_columns_steps() {
        let steps: Vec<u64> = (0..300).collect();
        let r = Report::new(vec![crate::report::sample::run("out/long", "tanh", 2, 0.5, &steps)], String::new());
        let fig = heatmap(&r);
        let Panel::Heat { cells, .. } = &fig.panels[0] else { panic!("a heat map") };
        assert_eq!(cells.len(), HEAT_COLUMNS * 3);
        assert_eq!(fig.notes, [format!("{HEAT_COLUMNS} of its 300 probed steps are shown, evenly spread.")]);
    }

    #[test]
    fn shallow_nets_show_each_hidden_layer_once() {
        assert_eq!(shown_hidden(20).iter().map(|p| p.0).collect::<Vec<_>>(), [0, 10, 19]);
        assert_eq!(shown_hidden(2).iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(shown_hidden(1).iter().map(|p| p.0).collect::<Vec<_>>(), [0]);
    }
}
