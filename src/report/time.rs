//! Figures through time, for runs whose probed records carry a per-time-step record
//! (`StepRecord::time`, recurrent networks): the gradient against the time step, a time ×
//! training-step heat map, and the gates' saturation over training.
//!
//! Read from the records only (through `probe::StepRecord`, whose `time` field is the
//! recurrent layers' `TimeRecord`); the first recurrent layer's figures are drawn (the one
//! reading the sequence), and ‖∂L/∂x_t‖ is the gradient reaching input t.

use super::figures::{
    Axis, Cell, ColorBar, Figure, HEAT_COLUMNS, KEY_COLOR, LegendEntry, Mark, Panel, Series, run_color, sequential,
    spread,
};
use super::model::{Report, Run};
use crate::probe::StepRecord;

/// The records of a run that carry a time record, in order.
fn timed(run: &Run) -> Vec<&StepRecord> {
    run.records.iter().filter(|r| r.time.as_ref().is_some_and(|t| !t.layers.is_empty())).collect()
}

/// The figures through time, in reading order; none when no run has a time record.
pub fn figures(r: &Report) -> Vec<Figure> {
    if r.runs.iter().all(|run| timed(run).is_empty()) {
        return Vec::new();
    }
    let mut v = vec![gradient_time(r), time_heatmap(r)];
    let gated = r.runs.iter().any(|run| timed(run).iter().any(|rec| !gates(rec).is_empty()));
    if gated {
        v.push(gate_saturation(r));
    }
    v
}

/// ‖∂L/∂x_t‖ of the input sequence (layer 0's input), t = 1..T.
fn grad_x(rec: &StepRecord) -> &[f64] {
    rec.time.as_ref().map_or(&[], |t| t.layers[0].grad_x.as_slice())
}

/// ‖∂L/∂h_t‖ of layer 0, t = 1..T.
fn grad_h(rec: &StepRecord) -> &[f64] {
    rec.time.as_ref().map_or(&[], |t| t.layers[0].grad_h.as_slice())
}

/// (gate name, closed fraction, open fraction) of layer 0.
fn gates(rec: &StepRecord) -> Vec<(&str, f64, f64)> {
    rec.time
        .as_ref()
        .map(|t| t.layers[0].gates.iter().map(|g| (g.gate.as_str(), g.closed, g.open)).collect())
        .unwrap_or_default()
}

/// log₁₀ of the positive finite values, against t = 1, 2, …; and how many were dropped.
fn log_points(values: &[f64]) -> (Vec<(f64, f64)>, usize) {
    let points: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite() && **v > 0.0)
        .map(|(t, v)| ((t + 1) as f64, v.log10()))
        .collect();
    let dropped = values.len() - points.len();
    (points, dropped)
}

fn log_axis(label: &str, series: &[Series]) -> Axis {
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if lo.is_finite() { ((lo - 0.05).floor(), (hi + 0.05).ceil()) } else { (0.0, 1.0) };
    Axis { label: label.into(), log: true, integer: false, min: lo, max: hi, labels: Vec::new() }
}

fn time_axis(t_max: usize) -> Axis {
    Axis {
        label: "time step t (1 = first input)".into(),
        log: false,
        integer: true,
        min: 0.5,
        max: t_max as f64 + 0.5,
        labels: Vec::new(),
    }
}

fn prefix(r: &Report, run: &Run) -> String {
    if r.runs.len() > 1 { format!("{}: ", run.label) } else { String::new() }
}

/// One series per chosen record and quantity: a run alone gets up to six probed steps coloured
/// by step; several runs get their first and last probed step each, in the run's colour.
fn time_series(r: &Report, get: fn(&StepRecord) -> &[f64], notes: &mut Vec<String>) -> Vec<Series> {
    let mut out = Vec::new();
    for (i, run) in r.runs.iter().enumerate() {
        let recs = timed(run);
        let picks: Vec<(usize, Option<f64>, bool)> = if r.runs.len() == 1 {
            let p = spread(recs.len(), 6);
            let n = p.len();
            p.into_iter()
                .enumerate()
                .map(|(k, idx)| (idx, Some(if n > 1 { k as f64 / (n - 1) as f64 } else { 0.0 }), false))
                .collect()
        } else {
            let mut v = vec![(0, None, false)];
            if recs.len() > 1 {
                v.push((recs.len() - 1, None, true));
            }
            v.into_iter().filter(|_| !recs.is_empty()).collect()
        };
        for (idx, shade, dashed) in picks {
            let rec = recs[idx];
            let (points, dropped) = log_points(get(rec));
            let label = format!("{}step {}", prefix(r, run), rec.step);
            if dropped > 0 {
                notes.push(format!("{label}: {dropped} values are 0 or not finite and have no place on a log scale."));
            }
            let color = shade.map_or_else(|| run_color(i), sequential);
            out.push(Series { label, color, dashed, markers: !dashed, points });
        }
    }
    out
}

/// Gradient norm against time step: the picture of vanishing through time.
pub fn gradient_time(r: &Report) -> Figure {
    let mut notes = Vec::new();
    let x_series = time_series(r, grad_x, &mut notes);
    let h_series = time_series(r, grad_h, &mut notes);
    let t_max = r.runs.iter().flat_map(|run| timed(run)).map(|rec| grad_x(rec).len()).max().unwrap_or(1);
    let panels = vec![
        Panel::Lines {
            title: "‖∂L/∂x_t‖: the gradient reaching input t".into(),
            x: time_axis(t_max),
            y: log_axis("‖∂L/∂x_t‖ (Frobenius over the batch, log scale)", &x_series),
            bands: Vec::new(),
            series: x_series.clone(),
        },
        Panel::Lines {
            title: "‖∂L/∂h_t‖ of the first recurrent layer".into(),
            x: time_axis(t_max),
            y: log_axis("‖∂L/∂h_t‖ (Frobenius over the batch, log scale)", &h_series),
            bands: Vec::new(),
            series: h_series,
        },
    ];
    let mut legend: Vec<LegendEntry> = if r.runs.len() == 1 {
        x_series.iter().map(|s| LegendEntry { label: s.label.clone(), color: s.color, mark: Mark::Line }).collect()
    } else {
        r.runs
            .iter()
            .enumerate()
            .map(|(i, run)| LegendEntry { label: run.label.clone(), color: run_color(i), mark: Mark::Line })
            .collect()
    };
    if r.runs.len() > 1 {
        legend.push(LegendEntry { label: "solid: first probed step".into(), color: KEY_COLOR, mark: Mark::Line });
        legend.push(LegendEntry { label: "dashed: last probed step".into(), color: KEY_COLOR, mark: Mark::Dashed });
    }
    let side = legend_width(&legend);
    Figure {
        name: "gradient-time",
        title: "Gradient through time: how much gradient reaches each time step".into(),
        caption: "Read each line from the last step (right), where the loss is, back to the first input (left): \
                  a line that falls by orders of magnitude is a gradient vanishing through time — backpropagation \
                  multiplies one factor diag(φ′)·W_hh per step — and a flat one carries the error signal back."
            .into(),
        notes,
        panels,
        columns: 2,
        size: (2 * 520 + side, 470),
        side,
        legend,
        color_bar: None,
    }
}

fn legend_width(legend: &[LegendEntry]) -> u32 {
    let chars = legend.iter().map(|e| e.label.chars().count()).max().unwrap_or(0) as u32;
    (chars * 9 + 64).clamp(150, 400)
}

/// Time step × training step of log₁₀ ‖∂L/∂x_t‖, one panel per run on one colour scale.
pub fn time_heatmap(r: &Report) -> Figure {
    let mut notes = Vec::new();
    let logs: Vec<f64> = r
        .runs
        .iter()
        .flat_map(|run| timed(run).into_iter().flat_map(|rec| grad_x(rec).iter().copied()))
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(f64::log10)
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min).floor();
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max).ceil().max(lo + 1.0);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let bar = ColorBar { label: "‖∂L/∂x_t‖ (log scale)".into(), log: true, min: lo, max: hi, viridis: true };
    let mut panels = Vec::new();
    for run in &r.runs {
        let recs = timed(run);
        if recs.is_empty() {
            panels.push(Panel::Note { title: run.label.clone(), text: "no record through time".into() });
            continue;
        }
        let shown: Vec<&StepRecord> = spread(recs.len(), HEAT_COLUMNS).into_iter().map(|i| recs[i]).collect();
        if shown.len() < recs.len() {
            notes.push(format!(
                "{}{} of its {} probed steps are shown, evenly spread.",
                prefix(r, run),
                shown.len(),
                recs.len()
            ));
        }
        let steps: Vec<f64> = shown.iter().map(|rec| rec.step as f64).collect();
        let e = super::figures::step_edges(&steps);
        let (mut cells, mut missing, mut t_max) = (Vec::new(), 0, 1);
        for (i, rec) in shown.iter().enumerate() {
            let g = grad_x(rec);
            t_max = t_max.max(g.len());
            for (t, &v) in g.iter().enumerate() {
                let value = (v.is_finite() && v > 0.0).then(|| v.log10());
                missing += usize::from(value.is_none());
                let y = (t + 1) as f64;
                cells.push(Cell { x: (e[i], e[i + 1]), y: (y - 0.5, y + 0.5), value, text: None });
            }
        }
        if missing > 0 {
            notes.push(format!("{}{missing} cells are grey: the gradient there is 0 or not finite.", prefix(r, run)));
        }
        let x = Axis {
            label: "training step".into(),
            log: false,
            integer: true,
            min: e[0],
            max: *e.last().unwrap_or(&1.0),
            labels: Vec::new(),
        };
        let title = if r.runs.len() > 1 { run.label.clone() } else { String::new() };
        panels.push(Panel::Heat { title, x, y: time_axis(t_max), cells, lines: Vec::new() });
    }
    let columns = r.runs.len().clamp(1, 3);
    let panel = if r.runs.len() == 1 { (760, 440) } else { (330, 270) };
    let rows = panels.len().div_ceil(columns) as u32;
    Figure {
        name: "time-heatmap",
        title: "Gradient reaching each input, over training".into(),
        caption: "Each cell is one input time step (up) at one probed training step (across), coloured by log₁₀ \
                  of ‖∂L/∂x_t‖: dark rows at the bottom are early inputs the network cannot learn from; a gated \
                  network that learns to keep its memory brightens them over training."
            .into(),
        notes,
        size: (panel.0 * columns as u32 + 136, 50 + rows * panel.1),
        side: 136,
        panels,
        columns,
        legend: Vec::new(),
        color_bar: Some(bar),
    }
}

/// Colour of a gate, the same in every panel.
fn gate_color(name: &str) -> (u8, u8, u8) {
    match name {
        "i" => run_color(0),
        "f" => run_color(1),
        "o" => run_color(2),
        "r" => run_color(3),
        _ => run_color(4),
    }
}

/// Saturated fractions (closed, open) of each gate against training step, one panel per run.
pub fn gate_saturation(r: &Report) -> Figure {
    let mut panels = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for run in &r.runs {
        let recs = timed(run);
        let mut series = Vec::new();
        let gate_names: Vec<String> =
            recs.first().map(|rec| gates(rec).iter().map(|g| g.0.to_string()).collect()).unwrap_or_default();
        for (k, name) in gate_names.iter().enumerate() {
            if !names.contains(name) {
                names.push(name.clone());
            }
            for (open, what) in [(false, "closed"), (true, "open")] {
                let points: Vec<(f64, f64)> = recs
                    .iter()
                    .filter_map(|rec| {
                        let g = gates(rec);
                        let v = g.get(k).map(|g| if open { g.2 } else { g.1 })?;
                        v.is_finite().then_some((rec.step as f64, 100.0 * v))
                    })
                    .collect();
                let label = format!("{}{name} {what}", prefix(r, run));
                series.push(Series { label, color: gate_color(name), dashed: open, markers: points.len() < 3, points });
            }
        }
        let title = if r.runs.len() > 1 { run.label.clone() } else { String::new() };
        if series.is_empty() {
            panels.push(Panel::Note { title, text: "no gates: the Elman cell has none".into() });
            continue;
        }
        let steps = recs.iter().map(|rec| rec.step as f64);
        let (lo, hi) = steps.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(s), b.max(s)));
        let pad = if hi > lo { (hi - lo) * 0.04 } else { 0.5 };
        let ymax = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0f64, f64::max);
        let x = Axis {
            label: "training step".into(),
            log: false,
            integer: true,
            min: lo - pad,
            max: hi + pad,
            labels: Vec::new(),
        };
        let y = Axis {
            label: "saturated values (% of batch × units × steps)".into(),
            log: false,
            integer: false,
            min: 0.0,
            max: (ymax * 1.1).min(100.0),
            labels: Vec::new(),
        };
        panels.push(Panel::Lines { title, x, y, bands: Vec::new(), series });
    }
    let mut legend: Vec<LegendEntry> = names
        .iter()
        .map(|n| LegendEntry { label: format!("gate {n}"), color: gate_color(n), mark: Mark::Line })
        .collect();
    legend.push(LegendEntry { label: "solid: closed (σ < 0.0127)".into(), color: KEY_COLOR, mark: Mark::Line });
    legend.push(LegendEntry { label: "dashed: open (σ > 0.9873)".into(), color: KEY_COLOR, mark: Mark::Dashed });
    let columns = r.runs.len().clamp(1, 3);
    let panel = if r.runs.len() == 1 { (760, 420) } else { (330, 270) };
    let side = legend_width(&legend);
    let rows = panels.len().div_ceil(columns) as u32;
    Figure {
        name: "gates",
        title: "Gate saturation over training (first recurrent layer)".into(),
        caption: "The share of gate values saturated closed (solid) or open (dashed), where σ′ is below 1/20 of its \
                  maximum and the gate passes almost no gradient to its pre-activation: an LSTM that learns a long \
                  memory opens its forget gate f."
            .into(),
        notes: Vec::new(),
        size: (panel.0 * columns as u32 + side, 50 + rows * panel.1),
        side,
        panels,
        columns,
        legend,
        color_bar: None,
    }
}
