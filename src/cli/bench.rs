//! `gradscope bench`: milliseconds per training step on the standard shapes (MLPs, and LSTM,
//! RNN, GRU on row-by-row MNIST's shape).

use super::Status;
use super::args::BenchArgs;
use super::output::sci;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gradscope::bench::{self, CONFIG_NAMES, CONFIGS, RECURRENT_CONFIGS};
use gradscope::error::Error;
use gradscope::error::Named;

/// Runs `gradscope bench`.
pub fn run(a: &BenchArgs) -> anyhow::Result<Status> {
    super::stdout::quit_when_closed(); // its output is its only product
    let configs: Vec<_> = match a.config.as_str() {
        "all" => CONFIGS.iter().chain(&RECURRENT_CONFIGS).copied().collect(),
        "mlp" => CONFIGS.to_vec(),
        "recurrent" => RECURRENT_CONFIGS.to_vec(),
        name => vec![bench::config(name).ok_or_else(|| {
            let mut names = CONFIG_NAMES.to_vec();
            names.extend(["mlp", "recurrent", "all"]);
            Error::unknown_name("bench config", name, &names)
        })?],
    };
    if a.steps == 0 {
        return Err(Error::invalid("steps", 0, "must be at least 1").into());
    }
    let threads = if a.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { a.threads };
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "config",
        "in",
        "width",
        "depth",
        "T",
        "out",
        "batch",
        "activation",
        "median ms",
        "min ms",
        "max ms",
        "GFLOP/s",
        "of peak",
    ]);
    // measured once, before the configs, with every thread busy (peak.rs)
    let peak = gradscope::peak::measure(threads);
    for cfg in &configs {
        let warmup = a.warmup.map_or_else(|| bench::Warmup::default_for(a.steps), bench::Warmup::exactly);
        let mut r = bench::run(cfg, threads, a.steps, warmup, a.probe_every);
        (r.peak_gflops, r.fraction_of_peak) = (peak.gflops, r.gflops / peak.gflops);
        if a.json {
            crate::outln!("{}", serde_json::to_string(&r)?);
        } else {
            table.add_row(vec![
                cfg.name.to_string(),
                cfg.inputs.to_string(),
                cfg.width.to_string(),
                cfg.depth.to_string(),
                cfg.recurrent.map_or_else(|| "—".into(), |s| s.seq_len.to_string()),
                cfg.outputs.to_string(),
                cfg.batch.to_string(),
                cfg.recurrent.map_or_else(|| cfg.activation.name().to_string(), |s| s.cell.name().to_string()),
                format!("{:.3}", r.median_ms),
                format!("{:.3}", r.min_ms),
                format!("{:.3}", r.max_ms),
                sci(r.gflops),
                format!("{:.0} %", 100.0 * r.fraction_of_peak),
            ]);
        }
    }
    if !a.json {
        crate::outln!("{table}");
        crate::outln!(
            "{threads} threads, {} timed steps per config, probe every {} (0: never)",
            a.steps,
            a.probe_every
        );
        crate::outln!(
            "peak {} GFLOP/s: {} FMA kernel, {} accumulators per thread, {} threads at once, over their CPU time",
            sci(peak.gflops),
            peak.isa.name(),
            gradscope::peak::ACCUMULATORS,
            peak.threads
        );
    }
    Ok(Status::Ok)
}
