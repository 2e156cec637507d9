//! The phase diagram: a metric over two swept keys, averaged over the rest, with the mean-field
//! trainable depth 6 ξ_c drawn over it when the keys are σ_w² and depth.

use super::results::{METRIC_COLUMNS, Row};
use super::{Scale, Sweep};
use crate::config::Config;
use crate::error::{Error, Named, Result};
use crate::nn::{Activation, Init};
use crate::report::figures::{Axis, Cell, ColorBar, Figure, Panel, Series};
use crate::theory::mean_field::MeanField;

/// Schoenholz et al.'s trainable depth, in correlation lengths.
pub const TRAINABLE_XI_C: f64 = 6.0;

/// One swept key's values as numbers, sorted.
fn numeric_values(sweep: &Sweep, key: &str) -> Result<(Vec<f64>, Scale)> {
    let Some(axis) = sweep.axes.iter().find(|a| a.key == key) else {
        return Err(Error::invalid(
            "phase axis",
            key,
            format!("is not swept by this sweep; swept keys: {}", sweep.keys().join(", ")),
        ));
    };
    let mut v = Vec::with_capacity(axis.values.len());
    for value in &axis.values {
        match value {
            toml::Value::Integer(i) => v.push(*i as f64),
            toml::Value::Float(f) => v.push(*f),
            other => {
                return Err(Error::invalid(
                    "phase axis",
                    key,
                    format!("has the value {other}: a phase diagram needs a numeric key"),
                ));
            }
        }
    }
    v.sort_by(f64::total_cmp);
    Ok((v, axis.scale))
}

/// The metric averaged in each (x, y) cell.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseGrid {
    /// The horizontal key.
    pub x_key: String,
    /// The vertical key.
    pub y_key: String,
    /// The metric.
    pub metric: String,
    /// x values, ascending.
    pub xs: Vec<f64>,
    /// y values, ascending.
    pub ys: Vec<f64>,
    /// Log-spaced keys get log axes.
    pub x_log: bool,
    /// See `x_log`.
    pub y_log: bool,
    /// `mean[iy][ix]`: the mean over the cell's runs with a finite metric (None: no such run).
    pub mean: Vec<Vec<Option<f64>>>,
    /// Runs in each cell.
    pub runs: Vec<Vec<usize>>,
    /// Runs in each cell whose metric is not a number (null).
    pub missing: Vec<Vec<usize>>,
    /// What each cell averages over (the other swept keys and the seeds).
    pub averaged_over: Vec<String>,
}

/// Averages `metric` of `rows` over every key but `x` and `y`.
pub fn phase_grid(sweep: &Sweep, rows: &[Row], x: &str, y: &str, metric: &str) -> Result<PhaseGrid> {
    if x == y {
        return Err(Error::invalid("phase axes", x, "--x and --y must be two different swept keys"));
    }
    if !METRIC_COLUMNS.contains(&metric) {
        return Err(Error::invalid("metric", metric, format!("must be one of {}", METRIC_COLUMNS.join(", "))));
    }
    let (xs, xscale) = numeric_values(sweep, x)?;
    let (ys, yscale) = numeric_values(sweep, y)?;
    let (nx, ny) = (xs.len(), ys.len());
    let mut sum = vec![vec![0.0; nx]; ny];
    let mut count = vec![vec![0usize; nx]; ny];
    let mut runs = vec![vec![0usize; nx]; ny];
    let mut missing = vec![vec![0usize; nx]; ny];
    let find = |vs: &[f64], v: f64| vs.iter().position(|w| *w == v);
    for r in rows {
        let (Some(vx), Some(vy)) = (r.metric(x), r.metric(y)) else { continue };
        let (Some(ix), Some(iy)) = (find(&xs, vx), find(&ys, vy)) else { continue };
        runs[iy][ix] += 1;
        match r.metric(metric).filter(|v| v.is_finite()) {
            Some(v) => {
                sum[iy][ix] += v;
                count[iy][ix] += 1;
            }
            None => missing[iy][ix] += 1,
        }
    }
    let mean = sum
        .iter()
        .zip(&count)
        .map(|(s, c)| s.iter().zip(c).map(|(s, &c)| (c > 0).then(|| s / c as f64)).collect())
        .collect();
    let mut averaged_over: Vec<String> =
        sweep.keys().into_iter().filter(|k| *k != x && *k != y).map(String::from).collect();
    if sweep.seeds.len() > 1 {
        averaged_over.push(format!("{} seeds", sweep.seeds.len()));
    }
    Ok(PhaseGrid {
        x_key: x.into(),
        y_key: y.into(),
        metric: metric.into(),
        xs,
        ys,
        x_log: xscale == Scale::Log,
        y_log: yscale == Scale::Log,
        mean,
        runs,
        missing,
        averaged_over,
    })
}

/// Whether a larger value of the metric means a better-trained network.
pub fn higher_is_better(metric: &str) -> bool {
    metric.contains("accuracy")
}

impl PhaseGrid {
    /// The default threshold between trainable and not: the midpoint of the cells' range.
    pub fn midpoint(&self) -> Option<f64> {
        let v: Vec<f64> = self.mean.iter().flatten().flatten().copied().collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo.is_finite() && hi.is_finite()).then_some((lo + hi) / 2.0)
    }

    /// Whether a cell's mean counts as trained at `threshold`.
    pub fn trained(&self, v: f64, threshold: f64) -> bool {
        if higher_is_better(&self.metric) { v >= threshold } else { v <= threshold }
    }
}

/// The mean-field theory behind the 6 ξ_c curve: activation and σ_b² from the sweep's base.
#[derive(Clone, Copy, Debug)]
pub struct Theory {
    /// φ.
    pub activation: Activation,
    /// σ_b².
    pub sigma_b2: f64,
}

impl Theory {
    /// The theory for a σ_w² × depth phase diagram, or why it does not apply.
    pub fn for_sweep(sweep: &Sweep, g: &PhaseGrid) -> std::result::Result<Self, String> {
        let keys = [g.x_key.as_str(), g.y_key.as_str()];
        if !(keys.contains(&"sigma_w2") && keys.contains(&"depth")) {
            return Err("the 6 ξ_c curve is drawn when the axes are sigma_w2 and depth".into());
        }
        for k in ["activation", "sigma_b2", "init", "negative_slope"] {
            if sweep.keys().contains(&k) {
                return Err(format!("no 6 ξ_c curve: {k} is swept, and the curve needs one value"));
            }
        }
        let base = Config::from_table(sweep.base.clone(), "[base]").map_err(|e| e.to_string())?;
        if base.init != Init::Gaussian {
            return Err(format!(
                "no 6 ξ_c curve: the init is {}, and sigma_w2 is the weights' variance only with init = \"gaussian\"",
                base.init.name()
            ));
        }
        let activation = Activation::new(base.activation, base.negative_slope);
        Ok(Self { activation, sigma_b2: base.sigma_b2 })
    }

    /// 6 ξ_c at σ_w² (None: infinite, at the critical line).
    pub fn trainable_depth(&self, sigma_w2: f64) -> Option<f64> {
        let mf = MeanField::new(self.activation, sigma_w2, self.sigma_b2).ok()?;
        mf.fixed_point(1.0).xi_c.map(|x| TRAINABLE_XI_C * x)
    }

    /// The curve over [lo, hi], cut where it leaves [0, top]; pieces as (σ_w², depth) points.
    pub fn curve(&self, lo: f64, hi: f64, top: f64) -> Vec<Vec<(f64, f64)>> {
        let n = 240;
        let pts: Vec<(f64, Option<f64>)> = (0..=n)
            .map(|i| {
                let s = lo + (hi - lo) * i as f64 / n as f64;
                (s, self.trainable_depth(s))
            })
            .collect();
        let mut pieces = vec![Vec::new()];
        for w in pts.windows(2) {
            let ((s0, d0), (s1, d1)) = (w[0], w[1]);
            let inside = |d: Option<f64>| d.is_some_and(|d| d <= top);
            match (inside(d0), inside(d1)) {
                (true, true) => {
                    let piece = pieces.last_mut().expect("one piece");
                    if piece.is_empty() {
                        piece.push((s0, d0.expect("inside")));
                    }
                    piece.push((s1, d1.expect("inside")));
                }
                (true, false) | (false, true) => {
                    // where the curve crosses the top of the plot (linear between the samples)
                    let (sin, din, sout, dout) =
                        if inside(d0) { (s0, d0.unwrap(), s1, d1) } else { (s1, d1.unwrap(), s0, d0) };
                    let cross = match dout {
                        Some(dout) if dout > din => sin + (sout - sin) * (top - din) / (dout - din),
                        _ => sin,
                    };
                    if inside(d0) {
                        let piece = pieces.last_mut().expect("one piece");
                        if piece.is_empty() {
                            piece.push((s0, din));
                        }
                        piece.push((cross, top));
                        pieces.push(Vec::new());
                    } else {
                        pieces.last_mut().expect("one piece").push((cross, top));
                    }
                }
                (false, false) => {}
            }
        }
        pieces.retain(|p| p.len() >= 2);
        pieces
    }
}

/// Where value `v` sits on a categorical axis whose category i holds `values[i]` (ascending):
/// linear between neighbouring values (in log₁₀ when `log`), continued past the ends.
fn to_index(values: &[f64], v: f64, log: bool) -> f64 {
    let t = |x: f64| if log { x.log10() } else { x };
    let ts: Vec<f64> = values.iter().map(|&x| t(x)).collect();
    let tv = t(v);
    match ts.as_slice() {
        [] => 0.0,
        [one] => tv - one,
        _ => {
            let k = ts.iter().rposition(|&x| x <= tv).unwrap_or(0).min(ts.len() - 2);
            k as f64 + (tv - ts[k]) / (ts[k + 1] - ts[k])
        }
    }
}

/// The value at position `i` of such an axis (the inverse of [`to_index`]).
fn from_index(values: &[f64], i: f64, log: bool) -> f64 {
    let t = |x: f64| if log { x.log10() } else { x };
    let un = |x: f64| if log { 10f64.powf(x) } else { x };
    match values {
        [] => i,
        [one] => un(t(*one) + i),
        _ => {
            let k = (i.floor().max(0.0) as usize).min(values.len() - 2);
            let (a, b) = (t(values[k]), t(values[k + 1]));
            un(a + (i - k as f64) * (b - a))
        }
    }
}

/// A swept value as a tick label: whole numbers plainly, others to 3 decimals, trailing zeros cut.
fn value_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e6 {
        return format!("{}", v.round() as i64);
    }
    if (1e-3..1e4).contains(&v.abs()) {
        let s = format!("{v:.3}");
        return s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{v:.2e}")
}

/// A cell's value as printed in it: 3 significant digits, at most 7 characters.
fn cell_text(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (0.01..1.0).contains(&a) {
        format!("{v:.3}")
    } else if (1.0..10.0).contains(&a) {
        format!("{v:.2}")
    } else if (10.0..100.0).contains(&a) {
        format!("{v:.1}")
    } else if (100.0..1000.0).contains(&a) {
        format!("{v:.0}")
    } else {
        format!("{v:.1e}")
    }
}

/// Grids up to this many columns and rows print each cell's value in it (cells of about 45 px
/// and more).
pub const PRINTED_GRID: (usize, usize) = (12, 16);

fn label(key: &str) -> String {
    match key {
        "sigma_w2" => "σ_w² (weight variance × fan-in)".into(),
        "sigma_b2" => "σ_b² (bias variance)".into(),
        "depth" => "depth (hidden layers)".into(),
        "width" => "width (units per hidden layer)".into(),
        "lr" => "learning rate".into(),
        other => other.into(),
    }
}

/// The heat map of `g`, with the 6 ξ_c curve when `theory` is given.
///
/// Both axes are categorical: one equal cell per swept value, ticked and labelled with it, so
/// that the axes span exactly the grid (a depth grid of 5 and 40 is two rows, not a scale from
/// −10 to 55). Cells have borders, and small grids ([`PRINTED_GRID`]) print each value.
pub fn figure(g: &PhaseGrid, theory: Option<&Theory>, title: &str) -> Figure {
    let (nx, ny) = (g.xs.len(), g.ys.len());
    let values: Vec<f64> = g.mean.iter().flatten().flatten().copied().collect();
    let positive = values.iter().all(|v| *v > 0.0);
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // metrics that span decades (vanishing ratios) are coloured by their logarithm
    let log_colour = positive && lo.is_finite() && hi / lo > 1e3;
    let c = |v: f64| if log_colour { v.log10() } else { v };
    let (cmin, cmax) = if lo.is_finite() { (c(lo), c(hi)) } else { (0.0, 1.0) };
    let (cmin, cmax) =
        if higher_is_better(&g.metric) && !log_colour { (cmin.min(0.0), cmax.max(cmin)) } else { (cmin, cmax) };
    let printed = nx <= PRINTED_GRID.0 && ny <= PRINTED_GRID.1;
    let mut cells = Vec::new();
    let mut notes = Vec::new();
    let mut grey = 0;
    for (iy, row) in g.mean.iter().enumerate() {
        for (ix, v) in row.iter().enumerate() {
            grey += usize::from(v.is_none());
            let text = if printed { v.map_or_else(|| "–".into(), cell_text) } else { String::new() };
            let (x, y) = (ix as f64, iy as f64);
            cells.push(Cell { x: (x - 0.5, x + 0.5), y: (y - 0.5, y + 0.5), value: v.map(c), text: Some(text) });
        }
    }
    if grey > 0 {
        notes.push(format!("{grey} cells are grey: no finished run there has a finite {}.", g.metric));
    }
    let axis = |key: &str, vs: &[f64]| Axis {
        label: label(key),
        log: false,
        integer: true,
        min: -0.5,
        max: vs.len() as f64 - 0.5,
        labels: vs.iter().map(|&v| value_label(v)).collect(),
    };
    let (x, y) = (axis(&g.x_key, &g.xs), axis(&g.y_key, &g.ys));
    let mut lines = Vec::new();
    let mut caption = format!("Each cell is the mean {} of the runs at that point", g.metric);
    if !g.averaged_over.is_empty() {
        caption.push_str(&format!(" (averaged over {})", g.averaged_over.join(" and ")));
    }
    caption.push('.');
    if let Some(t) = theory {
        let sigma_on_x = g.x_key == "sigma_w2";
        let (sigmas, slog, depths, dlog) =
            if sigma_on_x { (&g.xs, g.x_log, &g.ys, g.y_log) } else { (&g.ys, g.y_log, &g.xs, g.x_log) };
        // the plotted ranges, back in data units: the curve spans the cells and stops at the top
        let lo = from_index(sigmas, -0.5, slog).max(1e-6);
        let hi = from_index(sigmas, sigmas.len() as f64 - 0.5, slog);
        let top = from_index(depths, depths.len() as f64 - 0.5, dlog);
        for piece in t.curve(lo, hi, top) {
            let points = piece
                .into_iter()
                .map(|(s, d)| {
                    let (i, j) = (to_index(sigmas, s, slog), to_index(depths, d, dlog));
                    if sigma_on_x { (i, j) } else { (j, i) }
                })
                .collect();
            lines
                .push(Series { label: "6 ξ_c".into(), color: (255, 255, 255), dashed: false, markers: false, points });
            lines.push(Series {
                label: "6 ξ_c".into(),
                color: (20, 20, 20),
                dashed: true,
                markers: false,
                points: lines.last().expect("just pushed").points.clone(),
            });
        }
        caption.push_str(&format!(
            " The line is 6 ξ_c, the depth to which mean-field theory (Schoenholz et al. 2017) expects {} networks \
             with σ_b² = {} to train; it goes off the top where ξ_c diverges, at the critical σ_w².",
            t.activation.name(),
            t.sigma_b2
        ));
        if sigmas.len() > 2 || depths.len() > 2 {
            caption.push_str(" Between swept values the line is placed by linear interpolation of the axis.");
        }
    }
    let panel = Panel::Heat { title: String::new(), x, y, cells, lines };
    Figure {
        name: "phase",
        title: title.into(),
        caption,
        notes,
        panels: vec![panel],
        columns: 1,
        legend: Vec::new(),
        color_bar: Some(ColorBar {
            label: if log_colour { format!("{} (log scale)", g.metric) } else { g.metric.clone() },
            log: log_colour,
            min: cmin,
            max: if cmax > cmin { cmax } else { cmin + 1.0 },
            viridis: true,
        }),
        size: (820, 560),
        side: 136,
    }
}

/// How the trained region follows 6 ξ_c, column by column of σ_w².
#[derive(Clone, Debug, PartialEq)]
pub struct Boundary {
    /// σ_w².
    pub sigma_w2: f64,
    /// 6 ξ_c (None: infinite).
    pub six_xi_c: Option<f64>,
    /// The deepest depth whose cell trained (None: none did).
    pub deepest_trained: Option<f64>,
    /// The shallowest depth whose cell did not train (None: all did).
    pub shallowest_failed: Option<f64>,
}

/// Per σ_w² column, the trained depths beside 6 ξ_c; and how many cells agree with
/// "trained ⇔ depth ≤ 6 ξ_c" out of how many have a value.
pub fn boundary(g: &PhaseGrid, t: &Theory, threshold: f64) -> (Vec<Boundary>, usize, usize) {
    let sigma_on_x = g.x_key == "sigma_w2";
    let (sigmas, depths) = if sigma_on_x { (&g.xs, &g.ys) } else { (&g.ys, &g.xs) };
    let cell = |is: usize, id: usize| if sigma_on_x { g.mean[id][is] } else { g.mean[is][id] };
    let (mut agree, mut total) = (0, 0);
    let mut out = Vec::new();
    for (is, &s) in sigmas.iter().enumerate() {
        let six = t.trainable_depth(s);
        let (mut deepest, mut shallowest) = (None, None);
        for (id, &d) in depths.iter().enumerate() {
            let Some(v) = cell(is, id) else { continue };
            let trained = g.trained(v, threshold);
            if trained {
                deepest = Some(d);
            } else if shallowest.is_none() {
                shallowest = Some(d);
            }
            total += 1;
            agree += usize::from(trained == six.is_none_or(|x| d <= x));
        }
        out.push(Boundary { sigma_w2: s, six_xi_c: six, deepest_trained: deepest, shallowest_failed: shallowest });
    }
    (out, agree, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Summary;

    #[test]
    fn categorical_axes_span_the_grid() {
        // issue 13: depth [5, 40] drew a y axis from −10 to 55
        let depths = [5.0, 40.0];
        assert_eq!(to_index(&depths, 5.0, false), 0.0);
        assert_eq!(to_index(&depths, 40.0, false), 1.0);
        assert_eq!(to_index(&depths, 22.5, false), 0.5);
        assert_eq!(from_index(&depths, 1.5, false), 57.5);
        let logs = [10.0, 100.0, 1000.0];
        assert!((to_index(&logs, 31.622776601683793, true) - 0.5).abs() < 1e-12);
        assert!((from_index(&logs, 2.5, true) - 3162.2776601683795).abs() < 1e-6);
        assert_eq!([value_label(1.25), value_label(40.0), value_label(21.544346900318832)], ["1.25", "40", "21.544"]);
        assert_eq!([cell_text(0.91234), cell_text(2.3456), cell_text(3.17e-17)], ["0.912", "2.35", "3.2e-17"]);
        let s = Sweep::from_toml("[grid]\ndepth = [5, 40]\nsigma_w2 = [1.0, 2.0]", "t").unwrap();
        let g = phase_grid(&s, &[], "sigma_w2", "depth", "test_accuracy").unwrap();
        let fig = figure(&g, None, "t");
        let Panel::Heat { x, y, cells, .. } = &fig.panels[0] else { panic!("a heat map") };
        assert_eq!((y.min, y.max, y.labels.clone()), (-0.5, 1.5, vec!["5".to_string(), "40".to_string()]));
        assert_eq!(x.labels, ["1", "2"]);
        // no run: every cell grey, bordered and marked
        assert!(cells.iter().all(|c| c.value.is_none() && c.text.as_deref() == Some("–")));
    }

    fn sweep() -> Sweep {
        Sweep::from_toml(
            "seeds = 2\n[base]\nactivation = \"tanh\"\ninit = \"gaussian\"\nsigma_b2 = 0.05\n[grid]\n\
             depth = [10, 100]\nsigma_w2 = [1.0, 1.76, 4.0]\nwidth = [4, 8]",
            "t",
        )
        .unwrap()
    }

    fn rows(s: &Sweep, acc: impl Fn(f64, f64) -> Option<f64>) -> Vec<Row> {
        (0..s.len())
            .map(|i| {
                let p = s.point(i).unwrap();
                let sum = Summary {
                    gradscope_version: "0".into(),
                    data: "x".into(),
                    seed: p.seed,
                    threads: 1,
                    steps: 1,
                    epochs: 1,
                    train_loss: 1.0,
                    test_loss: Some(1.0),
                    train_accuracy: None,
                    test_accuracy: acc(p.config.sigma_w2, p.config.depth as f64 + p.seed as f64),
                    vanishing_ratio: 1.0,
                    vanishing_ratio_final: 1.0,
                    diverged: false,
                    diverged_at_step: None,
                    wall_time_s: 0.0,
                    clipped_steps: 0,
                    status: Default::default(),
                    nonfinite: None,
                    skipped_steps: 0,
                    vanishing_ratio_time: None,
                    vanishing_ratio_time_final: None,
                };
                Row::new(&p.id, i, &p.values, p.seed, &sum)
            })
            .collect()
    }

    #[test]
    fn cells_average_over_the_other_keys_and_seeds() {
        let s = sweep();
        let g = phase_grid(&s, &rows(&s, |sw, d| Some(sw * 1000.0 + d)), "sigma_w2", "depth", "test_accuracy").unwrap();
        assert_eq!((g.xs.len(), g.ys.len()), (3, 2));
        assert_eq!(g.averaged_over, ["width", "2 seeds"]);
        // depth 10 + seeds 0 and 1, twice (two widths): mean depth + 0.5
        assert_eq!(g.mean[0][0], Some(1010.5));
        assert_eq!(g.runs[1][2], 4);
        let g = phase_grid(&s, &rows(&s, |_, _| None), "sigma_w2", "depth", "test_accuracy").unwrap();
        assert_eq!((g.mean[0][0], g.missing[0][0]), (None, 4));
        let e = phase_grid(&s, &[], "sigma_w2", "lr", "test_accuracy").unwrap_err().to_string();
        assert!(e.contains("swept keys: depth, sigma_w2, width"), "{e}");
        let e = phase_grid(&s, &[], "sigma_w2", "depth", "accuracy").unwrap_err().to_string();
        assert!(e.contains("test_accuracy"), "{e}");
    }

    #[test]
    fn theory_boundary_counts_agreement() {
        let s = sweep();
        // trained exactly where depth ≤ 6 ξ_c: at σ_w² = 1 (6ξ_c ≈ 22) depth 10 only; at critical both;
        // at 4 (≈ 42) depth 10 only
        let t0 = Theory { activation: Activation::Tanh, sigma_b2: 0.05 };
        let trained =
            |sw: f64, d: f64| Some(if t0.trainable_depth(sw).is_none_or(|x| d.floor() <= x) { 0.9 } else { 0.1 });
        let g = phase_grid(&s, &rows(&s, trained), "sigma_w2", "depth", "test_accuracy").unwrap();
        let t = Theory::for_sweep(&s, &g).unwrap();
        let six = t.trainable_depth(1.0).unwrap();
        assert!((six - 21.76).abs() < 0.01, "{six}");
        let (b, agree, total) = boundary(&g, &t, g.midpoint().unwrap());
        assert_eq!((agree, total), (6, 6));
        assert_eq!(b[0].deepest_trained, Some(10.0));
        assert_eq!(b[0].shallowest_failed, Some(100.0));
        assert_eq!(b[1].deepest_trained, Some(100.0));
        let fig = figure(&g, Some(&t), "t");
        let Panel::Heat { lines, cells, .. } = &fig.panels[0] else { panic!("a heat map") };
        assert_eq!(cells.len(), 6);
        // the curve leaves the top near the critical σ_w² ≈ 1.76 and comes back: two pieces, two lines each
        assert_eq!(lines.len(), 4);
        // index coordinates: depth 100 is row 1, and the plot's top is row 1.5
        assert!(lines.iter().flat_map(|l| &l.points).all(|p| p.1 <= 1.5 + 1e-9));
        let svg = crate::report::plot::svg(&fig).unwrap();
        // small grid: every cell's value printed, ticks at the swept values
        assert!(cells.iter().all(|c| c.text.as_deref().is_some_and(|t| !t.is_empty())));
        for label in ["1", "1.76", "4", "10", "100", "0.900", "0.100"] {
            assert!(svg.contains(&format!("\n{label}\n</text>")), "{label} not in the SVG");
        }
        // the swept width rules nothing out, but a swept activation does
        let s2 = Sweep::from_toml("[base]\ninit = \"gaussian\"\n[grid]\ndepth = [1, 2]\nsigma_w2 = [1.0, 2.0]\nactivation = [\"tanh\", \"relu\"]", "t").unwrap();
        let g2 = phase_grid(&s2, &[], "sigma_w2", "depth", "test_accuracy").unwrap();
        assert!(Theory::for_sweep(&s2, &g2).unwrap_err().contains("activation is swept"));
        let s3 = Sweep::from_toml("[grid]\ndepth = [1, 2]\nsigma_w2 = [1.0, 2.0]", "t").unwrap();
        let g3 = phase_grid(&s3, &[], "sigma_w2", "depth", "test_accuracy").unwrap();
        assert!(Theory::for_sweep(&s3, &g3).unwrap_err().contains("gaussian"));
    }
}
