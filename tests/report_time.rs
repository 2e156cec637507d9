//! Report figures through time (issue 14, item 2), on run folders written from the library
//! (`common::write_recurrent_run`): the records' `time` field survives metrics.jsonl, and the
//! report draws the gradient against time step, the time × training-step heat map and the gate
//! saturation from exactly those numbers.

mod common;

use common::{gradscope, write_recurrent_run};
use gradscope::StepRecord;
use gradscope::nn::recurrent::{Cell, Head, RecurrentConfig};
use gradscope::nn::{Loss, Targets, Threads};
use gradscope::report::figures::Panel;
use gradscope::report::{Report, figures};
use ndarray::{Array2, Array3};
use rand::SeedableRng;

/// nn's `TimeRecord`, inside a `StepRecord`, round-trips through JSON — NaN included (written
/// as null, read back as NaN), so a run whose gradient overflowed still reports.
#[test]
fn time_records_round_trip_through_step_records() {
    let mut cfg = RecurrentConfig::new(Cell::Lstm, 3, 8, 2, 2);
    cfg.head = Head::Last;
    let mut net = cfg.init::<f64, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1)).unwrap();
    net.probing = true;
    let x = Array3::from_shape_fn((6, 4, 3), |(t, b, i)| ((t * 12 + b * 3 + i) as f64 * 0.31).sin());
    let y = Array2::from_shape_fn((4, 2), |(b, o)| (b + o) as f64 * 0.1);
    let loss = net.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::One);
    let mut rec = StepRecord::new(7, 0, loss, Vec::new());
    rec.time = Some(net.time_record());
    rec.vanishing_ratio = rec.time.as_ref().unwrap().vanishing_ratio_time;
    let back: StepRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
    assert_eq!(back, rec);
    let time = rec.time.as_mut().unwrap();
    time.layers[1].grad_x[2] = f64::NAN;
    time.layers[0].step_factor[0] = f64::INFINITY;
    time.vanishing_ratio_time = f64::NAN;
    let back: StepRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
    let (a, b) = (back.time.unwrap(), rec.time.unwrap());
    assert!(a.layers[1].grad_x[2].is_nan() && a.layers[0].step_factor[0].is_nan() && a.vanishing_ratio_time.is_nan());
    assert_eq!(a.layers[1].grad_h, b.layers[1].grad_h);
    assert_eq!(a.layers[0].gates, b.layers[0].gates);
    // an MLP's record has no `time` key at all
    let plain = serde_json::to_string(&StepRecord::new(0, 0, 1.0, Vec::new())).unwrap();
    assert!(!plain.contains("\"time\""), "{plain}");
}

fn figure(r: &Report, name: &str) -> gradscope::report::Figure {
    figures(r).into_iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no figure {name}"))
}

/// One LSTM run: the figures hold the records' numbers, log₁₀ where the axis is logarithmic.
#[test]
fn one_lstm_run_draws_its_numbers_through_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lstm");
    write_recurrent_run(&dir, Cell::Lstm, 12, 30, 5);
    let r = Report::load(std::slice::from_ref(&dir), "test".into()).unwrap();
    let recs = &r.runs[0].records;
    assert_eq!(recs.len(), 7);
    let f = figure(&r, "gradient-time");
    let Panel::Lines { series, x, y, .. } = &f.panels[0] else { panic!("lines") };
    assert!(y.log && x.label.contains("time step") && y.label.contains("‖∂L/∂x_t‖"), "{x:?} {y:?}");
    assert_eq!(series.len(), 6, "six of the seven probed steps, spread");
    let first = &recs[0].time.as_ref().unwrap().layers[0];
    let want: Vec<(f64, f64)> = first.grad_x.iter().enumerate().map(|(t, g)| ((t + 1) as f64, g.log10())).collect();
    assert_eq!(series[0].points, want);
    assert_eq!((series[0].label.as_str(), series[5].label.as_str()), ("step 0", "step 30"));
    let Panel::Lines { series: h, .. } = &f.panels[1] else { panic!("lines") };
    assert_eq!(h[0].points[11].1, first.grad_h[11].log10());
    assert!(f.legend.iter().any(|e| e.label == "step 30"));

    let heat = figure(&r, "time-heatmap");
    let Panel::Heat { cells, .. } = &heat.panels[0] else { panic!("heat") };
    assert_eq!(cells.len(), 7 * 12);
    let last = &recs[6].time.as_ref().unwrap().layers[0];
    assert_eq!(cells[6 * 12 + 3].value, Some(last.grad_x[3].log10()));
    assert!(heat.color_bar.as_ref().unwrap().log);

    let gates = figure(&r, "gates");
    let Panel::Lines { series, .. } = &gates.panels[0] else { panic!("lines") };
    let names: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(names, ["i closed", "i open", "f closed", "f open", "o closed", "o open"]);
    let f_open: Vec<f64> = recs.iter().map(|rec| 100.0 * rec.time.as_ref().unwrap().layers[0].gates[1].open).collect();
    assert_eq!(series[3].points.iter().map(|p| p.1).collect::<Vec<_>>(), f_open);
    // an MLP report has none of these figures
    let mlp = gradscope::report::sample::two_runs();
    assert!(figures(&mlp).iter().all(|f| !["gradient-time", "time-heatmap", "gates"].contains(&f.name)));
}

/// `gradscope report` of two recurrent runs: one colour per run in the gradient-through-time
/// figure, a heat map per run, and the Elman run's gate panel says it has no gates.
#[test]
fn compared_report_shows_each_run_through_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("lstm"), tmp.path().join("rnn_tanh"));
    write_recurrent_run(&a, Cell::Lstm, 10, 20, 10);
    write_recurrent_run(&b, Cell::RnnTanh, 10, 20, 10);
    let out = tmp.path().join("cmp");
    gradscope().arg("report").arg(&a).arg(&b).arg("--out").arg(&out).assert().success();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for name in ["gradient-time", "time-heatmap", "gates"] {
        assert!(html.contains(&format!("data-figure=\"{name}\"")), "no {name} in report.html");
        let svg = std::fs::read_to_string(out.join("figures").join(format!("{name}.svg"))).unwrap();
        assert!(out.join("figures").join(format!("{name}.png")).is_file());
        if name != "gates" {
            assert!(svg.contains("10⁻") || svg.contains("10⁰"), "{name}.svg: no log ticks");
        }
    }
    let svg = std::fs::read_to_string(out.join("figures/gradient-time.svg")).unwrap();
    for text in ["time step t", "lstm", "rnn_tanh", "dashed: last probed step"] {
        assert!(svg.contains(text), "gradient-time.svg has no {text:?}");
    }
    let r = Report::load(&[a, b], "test".into()).unwrap();
    let f = figure(&r, "gradient-time");
    let Panel::Lines { series, .. } = &f.panels[0] else { panic!("lines") };
    assert_eq!(series.len(), 4, "first and last probed step of each run");
    assert_ne!(series[0].color, series[2].color);
    let g = figure(&r, "gates");
    assert!(matches!(&g.panels[1], Panel::Note { text, .. } if text.contains("no gates")), "{:?}", g.panels[1]);
    assert_eq!(figure(&r, "time-heatmap").panels.len(), 2);
}
