//! `gradscope probe --cell …`: a recurrent network's gradients through depth and time at one
//! point, in f64, from a fresh init or a state_dict (gradscope's or PyTorch's `rnn.*`, `fc.*`).

use super::Status;
use super::args::{self, ProbeArgs};
use anyhow::Context;
use clap::ArgMatches;
use gradscope::config::{Config, RecurrentSpec, RunSpec};
use gradscope::data::{Dataset, Labels, Split};
use gradscope::error::Error;
use gradscope::error::Named;
use gradscope::io::{self, recurrent as rio};
use gradscope::nn::recurrent::{Cell, RecurrentNet};
use gradscope::nn::{Targets, Threads};
use gradscope::optim::ParamNorms;
use gradscope::probe::{StepRecord, apply_norms, recurrent_layers};
use gradscope::run::{Model, build_model, load_data};
use ndarray::{Array2, Array3};
use std::path::Path;

/// Largest buffer budget (bytes) a probe may use before it asks for `--batch-size`.
const MAX_PROBE_BYTES: f64 = 8e9;

/// A state_dict as an f64 network, checked against the data and the flags given.
fn load(
    path: &Path,
    spec: &RunSpec,
    r: &RecurrentSpec,
    data: &Dataset,
    file_table: Option<&toml::Table>,
    matches: &ArgMatches,
) -> anyhow::Result<RecurrentNet<f64>> {
    let bytes = std::fs::read(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
    // PyTorch's nn.RNN does not store its nonlinearity: --cell says it
    let elman = if r.cell == Cell::RnnRelu { Cell::RnnRelu } else { Cell::RnnTanh };
    let mut net = rio::from_safetensors::<f64>(&bytes, path, r.head, elman)?;
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    if net.cell != r.cell {
        return Err(bad(format!("holds a {} but --cell is {}", net.cell.name(), r.cell.name())).into());
    }
    let inputs = data.inputs() / r.steps;
    if net.input_size() != inputs {
        return Err(bad(format!(
            "rnn.weight_ih_l0 reads {} features per step but the data has {inputs} ({} steps of {inputs})",
            net.input_size(),
            r.steps
        ))
        .into());
    }
    if net.output_size() != data.outputs() {
        return Err(bad(format!(
            "fc gives {} outputs but the data's targets need {}",
            net.output_size(),
            data.outputs()
        ))
        .into());
    }
    if args::given("width", file_table, matches) && net.hidden_size() != spec.width {
        return Err(bad(format!("has hidden size {} but --width is {}", net.hidden_size(), spec.width)).into());
    }
    if args::given("num_layers", file_table, matches) && net.layers.len() != r.num_layers {
        return Err(bad(format!("has {} layers but --num-layers is {}", net.layers.len(), r.num_layers)).into());
    }
    net.bptt = r.bptt;
    Ok(net)
}

/// The rows of `split` as time-major sequences `[T, rows, features]` and their targets (per-step
/// labels time-major, row t·rows + r, as the head on every step emits them).
fn sequences(split: &Split, steps: usize) -> (Array3<f64>, Option<Array2<f64>>, Vec<usize>) {
    let (n, width) = split.x.dim();
    let x = split.x.mapv(f64::from).into_shape_with_order((n, steps, width / steps)).expect("rows split into steps");
    let x = x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
    match &split.y {
        Labels::Values(v) => (x, Some(v.mapv(f64::from)), Vec::new()),
        Labels::Classes { labels, .. } => (x, None, labels.clone()),
        Labels::Steps { labels, steps, .. } => {
            (x, None, (0..*steps).flat_map(|t| (0..n).map(move |r| labels[r * steps + t])).collect())
        }
    }
}

/// Runs `gradscope probe` for a recurrent `spec`.
pub fn run(
    a: &ProbeArgs,
    config: &Config,
    spec: &RunSpec,
    file_table: Option<&toml::Table>,
    matches: &ArgMatches,
) -> anyhow::Result<Status> {
    let r = spec.recurrent.as_ref().expect("gradscope internal error: a recurrent spec");
    if a.batch_size == Some(0) {
        return Err(Error::invalid("batch_size", 0, "must be at least 1 (or leave it out to use every row)").into());
    }
    let data = load_data(spec)?;
    let rows = a.batch_size.unwrap_or(data.train.len()).min(data.train.len());
    let (mut net, fresh) = match &a.weights {
        Some(path) => (load(path, spec, r, &data, file_table, matches)?, false),
        None => match build_model::<f32>(spec, &data)? {
            // drawn and rounded exactly as `train` would
            Model::Recurrent(n) => (n.cast::<f64>(), true),
            Model::Mlp(_) => unreachable!("gradscope internal error: a recurrent spec builds a recurrent net"),
        },
    };
    let per_row = r.steps * (net.cell.gates() + 4) * net.hidden_size() * net.layers.len();
    let bytes = rows as f64 * per_row as f64 * 8.0 * 3.0;
    if bytes > MAX_PROBE_BYTES {
        let msg = format!("probing {rows} sequences needs about {:.0} GB; pass --batch-size N with fewer", bytes / 1e9);
        return Err(Error::invalid("batch_size", rows, msg).into());
    }
    let (x, values, classes) = sequences(&data.train.head(rows), r.steps);
    let target = match &values {
        Some(v) => Targets::Values(v.view()),
        None => Targets::Classes(&classes),
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(spec.threads).build()?;
    net.probing = true;
    let loss = pool.install(|| net.loss_and_grads(x.view(), target, spec.loss, Threads::new(spec.threads)));
    let mut rec = StepRecord::new(0, 0, loss, recurrent_layers(&net, Some(&mut Vec::new())));
    apply_norms(&mut rec, &ParamNorms::of(&net));
    rec.time = Some(net.time_record());

    let out = &a.out;
    io::create_dir(out).with_context(|| format!("probe into {}", out.display()))?;
    io::write_atomic(&out.join("config.toml"), config.resolved(spec).to_toml().as_bytes())?;
    let grads = if a.dtype == "f64" {
        rio::grads_to_safetensors::<f64, f64>(&net)
    } else {
        rio::grads_to_safetensors::<f64, f32>(&net)
    };
    io::write_atomic(&out.join("grads.safetensors"), &grads)?;
    if fresh {
        io::write_atomic(&out.join("weights.safetensors"), &rio::to_safetensors(&net.cast::<f32>()))?;
    }
    io::write_json(&out.join("probe.json"), &rec)?;
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&rec)?);
    } else {
        crate::outln!("{}", super::output::layer_table(&[&rec], &net.cell.name()));
        let ratio = rec.time.as_ref().map_or(f64::NAN, |t| t.vanishing_ratio_time);
        crate::outln!("{}", super::output::time_line(ratio, None));
        crate::outln!("loss {} on {rows} sequences; wrote {}", super::output::sci(loss), out.display());
    }
    Ok(Status::Ok)
}
