//! `gradscope probe`: every layer's gradient at one point, without training.

use super::Status;
use super::args::{self, ProbeArgs};
use anyhow::Context;
use clap::ArgMatches;
use gradscope::config::RunSpec;
use gradscope::data::{Dataset, Labels, Split};
use gradscope::error::Error;
use gradscope::io::{self, weights};
use gradscope::nn::{Mlp, Name, Targets, Threads};
use gradscope::probe::record;
use gradscope::resources;
use gradscope::run::build_mlp;
use ndarray::Array2;
use std::path::Path;

/// Training rows probed when `--batch-size` is not given: enough for statistics that do not
/// move with the sample; all of MNIST (60 000 rows) would take 2.6 GB in f64 for no better
/// figure.
pub const DEFAULT_PROBE_ROWS: usize = 10_000;

/// A weights file as an f64 network, checked against the data's shape and the flags given;
/// the file as read (its tensors' names).
fn load_weights(
    path: &Path,
    spec: &RunSpec,
    data: &Dataset,
    file_table: Option<&toml::Table>,
    matches: &ArgMatches,
) -> anyhow::Result<(Mlp<f64>, weights::LoadedWeights)> {
    let activation_given = args::given("activation", file_table, matches);
    let w = weights::load(path)?;
    let activation = match (activation_given, w.activation) {
        (true, Some(act)) if act != spec.activation => {
            return Err(Error::Weights {
                path: path.into(),
                msg: format!(
                    "was trained with activation {}, but --activation is {}; drop --activation (the file's is \
                     used) or probe weights trained with {}",
                    act.name(),
                    spec.activation.name(),
                    spec.activation.name()
                ),
            }
            .into());
        }
        (true, _) => spec.activation,
        (false, Some(act)) => act,
        (false, None) => {
            return Err(Error::Weights {
                path: path.into(),
                msg: "records no activation (PyTorch files do not); pass --activation NAME".into(),
            }
            .into());
        }
    };
    let sizes = w.sizes();
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    if sizes[0] != data.inputs() {
        return Err(bad(format!(
            "the first layer takes {} inputs but the data has {} features",
            sizes[0],
            data.inputs()
        ))
        .into());
    }
    if *sizes.last().expect("non-empty") != data.outputs() {
        return Err(bad(format!(
            "the last layer gives {} outputs but the data's targets need {}",
            sizes.last().expect("non-empty"),
            data.outputs()
        ))
        .into());
    }
    let depth = sizes.len() - 2;
    if args::given("depth", file_table, matches) && spec.depth != depth {
        return Err(bad(format!("holds {depth} hidden layers but --depth is {}", spec.depth)).into());
    }
    if args::given("width", file_table, matches) && sizes[1..sizes.len() - 1].iter().any(|&s| s != spec.width) {
        return Err(
            bad(format!("hidden widths are {:?} but --width is {}", &sizes[1..sizes.len() - 1], spec.width)).into()
        );
    }
    // the architecture: flags (or the config file) first, then the file's metadata
    let arch_given = ["residual", "residual_scale", "residual_block", "norm", "norm_position"]
        .iter()
        .any(|k| args::given(k, file_table, matches));
    let arch = if arch_given { spec.arch } else { w.arch.unwrap_or(spec.arch) };
    Ok((w.to_mlp_with(activation, arch, path)?, w))
}

/// Runs `gradscope probe`.
pub fn run(a: &ProbeArgs, matches: &ArgMatches) -> anyhow::Result<Status> {
    let file_table = a.config.as_deref().map(args::read_table).transpose()?;
    let config = args::merge(a.config.as_deref(), &a.keys)?;
    let spec = config.resolve()?;
    if a.batch_size == Some(0) {
        return Err(
            Error::invalid("batch_size", 0, "must be at least 1 (or leave it out for the first 10000 rows)").into()
        );
    }
    if spec.recurrent.is_some() {
        return super::probe_recurrent::run(a, &config, &spec, file_table.as_ref(), matches);
    }
    // a run's config.toml: number classes and standardise as that run did
    let saved =
        a.config.as_deref().and_then(|c| c.parent()).map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d });
    let data = gradscope::prepare::load(&spec, saved)?.data;
    let rows = a.batch_size.unwrap_or(DEFAULT_PROBE_ROWS).min(data.train.len());
    if a.batch_size.is_none() && rows < data.train.len() {
        eprintln!(
            "probe: the first {rows} of {} training rows (the default cap); --batch-size N to choose",
            data.train.len()
        );
    }
    let split: Split = data.train.head(rows);
    let fits = |sizes: &[usize]| {
        let estimate = resources::probe(&data, sizes, rows);
        resources::check(&estimate, spec.max_memory, "this probe", "pass --batch-size N with fewer rows")
    };

    let (mut mlp, file): (Mlp<f64>, Option<weights::LoadedWeights>) = match &a.weights {
        Some(path) => {
            let (m, file) = load_weights(path, &spec, &data, file_table.as_ref(), matches)?;
            fits(&m.sizes())?;
            (m, Some(file))
        }
        None => {
            let mut sizes = vec![data.inputs()];
            sizes.extend(std::iter::repeat_n(spec.width, spec.depth));
            sizes.push(data.outputs());
            fits(&sizes)?;
            // drawn and rounded exactly as `train` would, so weights.safetensors (f32) is the point probed
            (build_mlp::<f32>(&spec, &data).cast(), None)
        }
    };
    if mlp.needs_batch_stats() && rows < 2 {
        return Err(Error::invalid("batch_size", rows, "batch norm (training mode) needs at least 2 rows").into());
    }
    // a probe measures; it does not move batch norm's running estimates
    mlp.set_track_running_stats(false);

    // f64 throughout: probe's gradients are a reference, rounded only when written.
    let x: Array2<f64> = split.x.mapv(f64::from);
    let values;
    let target = match &split.y {
        Labels::Values(v) => {
            values = v.mapv(f64::from);
            Targets::Values(values.view())
        }
        Labels::Classes { labels, .. } | Labels::Steps { labels, .. } => Targets::Classes(labels),
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(spec.threads).build()?;
    let loss = pool.install(|| mlp.loss_and_grads(x.view(), target, spec.loss, Threads::new(spec.threads)));
    let rec = record(0, 0, loss, &mlp);

    let out = &a.out;
    io::create_dir(out).with_context(|| format!("probe into {}", out.display()))?;
    io::write_atomic(&out.join("config.toml"), config.resolved(&spec).to_toml().as_bytes())?;
    // gradients under the names of the file probed (an nn.Sequential's `0.weight`, …)
    let key = |n: Name| file.as_ref().map_or_else(|| n.to_string(), |f| f.file_name(n));
    let grads = if a.dtype == "f64" {
        weights::grads_to_bytes::<f64, f64>(&mlp, &key)
    } else {
        weights::grads_to_bytes::<f64, f32>(&mlp, &key)
    };
    io::write_atomic(&out.join("grads.safetensors"), &grads)?;
    if file.is_none() {
        io::write_atomic(&out.join("weights.safetensors"), &weights::mlp_to_bytes(&mlp.cast::<f32>()))?;
    }
    io::write_json(&out.join("probe.json"), &rec)?;
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&rec)?);
    } else {
        crate::outln!("{}", super::output::layer_table(&[&rec], &mlp.activation.name()));
        crate::outln!(
            "{}",
            gradscope::verdict::sentence(&gradscope::verdict::Evidence::at_one_point(
                rec.vanishing_ratio,
                rec.layers.len()
            ))
        );
        crate::outln!("loss {} on {rows} rows; wrote {}", super::output::sci(loss), out.display());
    }
    Ok(Status::Ok)
}
