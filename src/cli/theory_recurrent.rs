//! `gradscope theory --cell …`: the theory of a recurrent layer at initialisation — Pascanu's
//! bound for W_hh's init and, for the Elman cell, the mean-field per-step factor of the
//! gradient through time — and with `--measure` that factor measured on random networks.

use super::Status;
use super::args::TheoryArgs;
use super::output::sci;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gradscope::error::Error;
use gradscope::error::Named;
use gradscope::nn::recurrent::{Cell, HiddenInit, RecurrentConfig};
use gradscope::theory::mean_field::check;
use gradscope::theory::recurrent::{
    PascanuBound, RnnMeanField, RnnMeasurement, init_variances, measure_rnn, pascanu_bound, rnn_mean_field,
};
use serde::Serialize;

/// What `theory --cell` predicts (`--json`: the `recurrent` field).
#[derive(Clone, Debug, Serialize)]
pub struct RecurrentPrediction {
    /// The cell's name.
    pub cell: Cell,
    /// W_hh's init.
    pub init: HiddenInit,
    /// H.
    pub hidden: usize,
    /// Features per step.
    pub input_size: usize,
    /// T.
    pub seq_len: usize,
    /// The inputs' second moment per feature.
    pub q0: f64,
    /// σ_max(W_hh) predicted and measured (network `--seed`) against 1/γ.
    pub pascanu: PascanuBound,
    /// The mean-field factor (null for the gated cells and the identity init).
    pub mean_field: Option<RnnMeanField>,
    /// Why `mean_field` is null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_field_note: Option<String>,
    /// χ^(T−1): E‖∂L/∂h_1‖² / E‖∂L/∂h_T‖² with every step at the fixed point.
    pub ratio_through_time: Option<f64>,
}

/// The measurement beside it (`--json`: the `measurement` field).
#[derive(Clone, Debug, Serialize)]
pub struct RecurrentMeasured {
    /// Random networks averaged over (`--seeds`), 8 rows each.
    pub samples: usize,
    /// Seed of the first network.
    pub seed: u64,
    /// E‖∂L/∂h_t‖² per step and the fitted factor.
    #[serde(flatten)]
    pub measurement: RnnMeasurement,
    /// E‖∂L/∂h_1‖² / E‖∂L/∂h_T‖² measured.
    pub ratio_through_time: f64,
    /// measured χ / predicted χ − 1 (null without a prediction).
    pub relative_error: Option<f64>,
}

#[derive(Serialize)]
struct Output<'a> {
    recurrent: &'a RecurrentPrediction,
    #[serde(skip_serializing_if = "Option::is_none")]
    measurement: Option<&'a RecurrentMeasured>,
}

/// W_hh's init from `--init` (default: PyTorch's).
fn hidden_init(name: Option<&str>) -> gradscope::Result<HiddenInit> {
    match name.unwrap_or("default") {
        "default" | "pytorch" => Ok(HiddenInit::Pytorch),
        "orthogonal" => Ok(HiddenInit::Orthogonal),
        "identity" => Ok(HiddenInit::Identity),
        other => Err(Error::invalid(
            "init",
            other,
            "with --cell, W_hh's init is default (PyTorch's U(±1/√H)), orthogonal or identity",
        )),
    }
}

/// The prediction for these flags.
pub fn predict(a: &TheoryArgs, cell: Cell, init: HiddenInit) -> gradscope::Result<RecurrentPrediction> {
    let mut cfg = RecurrentConfig::new(cell, a.input_size, a.hidden, 1, 1);
    cfg.hidden_init = init;
    let pascanu = pascanu_bound(&cfg, a.seed)?;
    let mean_field = if matches!(cell, Cell::Lstm | Cell::Gru) {
        Err("the mean-field factor is for the Elman cell (rnn_tanh, rnn_relu): a gated cell's step has gate factors"
            .to_string())
    } else {
        init_variances(init, a.hidden, a.input_size, a.q0)
            .and_then(|(s_hh, s_in)| rnn_mean_field(cell, s_hh, s_in))
            .map_err(|e| e.to_string())
    };
    let (mean_field, mean_field_note) = match mean_field {
        Ok(m) => (Some(m), None),
        Err(note) => (None, Some(note)),
    };
    Ok(RecurrentPrediction {
        ratio_through_time: mean_field.as_ref().map(|m| m.chi.powi(a.seq_len as i32 - 1)),
        cell,
        init,
        hidden: a.hidden,
        input_size: a.input_size,
        seq_len: a.seq_len,
        q0: a.q0,
        pascanu,
        mean_field,
        mean_field_note,
    })
}

/// Runs `gradscope theory --cell NAME`.
pub fn run(a: &TheoryArgs, cell: Cell) -> anyhow::Result<Status> {
    let init = hidden_init(a.init.as_deref())?;
    check("q0", a.q0, true)?;
    for (flag, v) in [("hidden", a.hidden), ("input_size", a.input_size), ("seq_len", a.seq_len)] {
        if v == 0 {
            return Err(Error::invalid(flag, 0, "must be at least 1").into());
        }
    }
    if a.measure && a.seeds == 0 {
        return Err(Error::invalid("seeds", 0, "--measure needs at least 1 network").into());
    }
    let p = predict(a, cell, init)?;
    let measured = if a.measure {
        let m = measure_rnn(cell, init, a.hidden, a.input_size, a.q0, a.seq_len, a.seeds, a.seed)?;
        let ratio = m.grad_h_sq[0] / m.grad_h_sq[a.seq_len - 1];
        let relative_error = p.mean_field.as_ref().map(|t| m.chi / t.chi - 1.0);
        Some(RecurrentMeasured {
            samples: a.seeds,
            seed: a.seed,
            measurement: m,
            ratio_through_time: ratio,
            relative_error,
        })
    } else {
        None
    };
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&Output { recurrent: &p, measurement: measured.as_ref() })?);
        return Ok(Status::Ok);
    }
    print_prediction(&p);
    if let Some(m) = &measured {
        print_measurement(&p, m);
    }
    Ok(Status::Ok)
}

fn init_name(init: HiddenInit) -> &'static str {
    match init {
        HiddenInit::Pytorch => "default",
        HiddenInit::Orthogonal => "orthogonal",
        HiddenInit::Identity => "identity",
    }
}

fn print_prediction(p: &RecurrentPrediction) {
    crate::outln!(
        "{}, hidden size H = {}, W_hh init {}, inputs of {} features with q⁰ = {}, T = {} steps",
        p.cell.name(),
        p.hidden,
        init_name(p.init),
        p.input_size,
        sci(p.q0),
        p.seq_len
    );
    let b = &p.pascanu;
    crate::outln!(
        "Pascanu, Mikolov & Bengio 2013: ‖∂h_t/∂h_(t−1)‖ ≤ γ·σ_max(W_hh), γ = sup|φ′| = {}; the line is 1/γ = {}",
        sci(b.gamma),
        sci(b.line)
    );
    let measured: Vec<String> = b.sigma_max_measured.iter().map(|&s| format!("{s:.4}")).collect();
    crate::outln!(
        "  σ_max(W_hh): predicted {} ({}), measured {} ({})",
        format_args!("{:.4}", b.sigma_max_predicted),
        match p.init {
            HiddenInit::Pytorch => "Bai–Yin limit 2·√(H·Var) = 2/√3",
            _ => "every block orthogonal",
        },
        measured.join(", "),
        if measured.len() > 1 { "one per gate block" } else { "one network" }
    );
    let verdict = match (b.must_vanish, matches!(p.cell, Cell::RnnTanh | Cell::RnnRelu)) {
        (true, _) => "below the line: the gradient through time must vanish",
        (false, true) => {
            "not below the line: the bound allows the gradient to keep its size or explode (it does not force vanishing)"
        }
        (false, false) => "the bound alone says nothing for a gated cell: its step Jacobian has gate factors",
    };
    crate::outln!("  {verdict}");
    match &p.mean_field {
        Some(m) => {
            crate::outln!("mean field (the χ₁ integral of the feed-forward theory with W_hh's variance):");
            crate::outln!(
                "  σ_hh² = H·Var(W_hh) = {}, σ_in² = Var(W_ih x + b_ih + b_hh) = {}, q* = {}",
                sci(m.sigma_hh2),
                sci(m.sigma_in2),
                sci(m.q_star)
            );
            crate::outln!(
                "  χ = σ_hh² ∫Dz φ′(√q* z)² = {}: E‖∂L/∂h_t‖² shrinks by χ a step back (‖∂L/∂h_t‖ by √χ = {})",
                format_args!("{:.4}", m.chi),
                format_args!("{:.4}", m.norm_factor)
            );
            if let Some(r) = p.ratio_through_time {
                crate::outln!("  E‖∂L/∂h_1‖² / E‖∂L/∂h_{}‖² ≈ χ^{} = {}", p.seq_len, p.seq_len - 1, sci(r));
            }
        }
        None => crate::outln!("mean field: {}", p.mean_field_note.as_deref().unwrap_or("not available")),
    }
}

fn print_measurement(p: &RecurrentPrediction, m: &RecurrentMeasured) {
    let rm = &m.measurement;
    crate::outln!(
        "\nmeasured: {} random {} networks × 8 sequences, inputs N(0, {}), ∂L/∂h_{} ~ N(0, 1) through a random head",
        m.samples,
        p.cell.name(),
        sci(p.q0),
        p.seq_len
    );
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(["step t", "E‖∂L/∂h_t‖² / step T's, measured", "χ^(T−t), mean field"]);
    let last = rm.grad_h_sq[p.seq_len - 1];
    for (t, g) in rm.grad_h_sq.iter().enumerate() {
        let predicted =
            p.mean_field.as_ref().map_or_else(|| "—".into(), |mf| sci(mf.chi.powi((p.seq_len - 1 - t) as i32)));
        table.add_row([(t + 1).to_string(), sci(g / last), predicted]);
    }
    crate::outln!("{table}");
    let theory = match (&p.mean_field, m.relative_error) {
        (Some(mf), Some(e)) => format!("; theory χ = {:.4} ({:+.2}%)", mf.chi, 100.0 * e),
        _ => String::new(),
    };
    crate::outln!(
        "per-step factor of E‖∂L/∂h_t‖², fitted over steps {}..{}: measured {}{theory}",
        rm.from,
        p.seq_len,
        format_args!("{:.4}", rm.chi)
    );
    crate::outln!("E‖∂L/∂h_1‖² / E‖∂L/∂h_{}‖² measured: {}", p.seq_len, sci(m.ratio_through_time));
}
