//! Flags. Every config key is a flag (kebab case); a flag given on the command line overrides
//! the same key of `--config FILE`, which overrides the default.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand, builder::PossibleValuesParser};
use gradscope::config::{CONFIG_KEYS, CellKind, Config, GateBiasKind, HeadKind, RecurrentInit};
use gradscope::error::{Error, Result};
use gradscope::nn::{ACTIVATION_NAMES, INIT_NAMES, LOSS_NAMES, NORM_NAMES, NORM_POSITION_NAMES};
use gradscope::optim::OPTIMIZER_NAMES;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// gradscope: watch the gradient vanish, layer by layer, and see what cures it.
#[derive(Debug, Parser)]
#[command(name = "gradscope", version, about, long_about = None, after_help = gradscope::verdict::RULES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train the lecture's sigmoid MLP at depths 2, 5, 10 and 20 on built-in data, then the
    /// 20-layer one with tanh + Xavier and with ReLU + He, and compare their gradients.
    #[command(after_help = gradscope::verdict::RULES)]
    Demo(DemoArgs),
    /// Train one network and write config.toml, metrics.jsonl, summary.json and
    /// weights.safetensors.
    #[command(after_help = gradscope::verdict::RULES)]
    Train(TrainArgs),
    /// Measure every layer's gradient at one point, without training.
    #[command(after_help = gradscope::verdict::RULES)]
    Probe(ProbeArgs),
    /// Time training steps on the standard shapes (tiny, slide, deep, wide), as
    /// bench/torch_mlp.py times PyTorch.
    Bench(BenchArgs),
    /// Write report.html (one self-contained file) and every figure as .svg and .png, for one
    /// run folder or several compared.
    #[command(after_help = gradscope::verdict::RULES)]
    Report(ReportArgs),
    /// Mean-field theory of a random network (q*, χ₁, ξ_q, ξ_c, the predicted gradient decay),
    /// optionally measured beside it on random networks, and the Jacobian's spectrum.
    Theory(TheoryArgs),
    /// Run a grid of configs (SWEEP.toml: [base], [grid], seeds) over the cores into one results
    /// table; resumable, and shardable onto job arrays with --shard K/N.
    Sweep(super::sweep::SweepArgs),
    /// Join the results of a sweep's shards into one table and list missing or duplicate points.
    Merge(super::sweep::MergeArgs),
    /// Heat map of a metric over two swept keys, with the mean-field 6 ξ_c curve over σ_w² and depth.
    Phase(super::sweep::PhaseArgs),
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// tiny, slide, deep, wide or all.
    #[arg(long, default_value = "all")]
    pub config: String,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Timed steps per config.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed steps first [default: steps/5, between 2 and 20].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Probe every N steps, as `train` does (0: never).
    #[arg(long, default_value_t = 0)]
    pub probe_every: u64,
    /// One JSON object per config on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folders (written by train or demo); a folder of run folders stands for all of them.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Folder for report.html and figures/ [default: the run folder, or the runs' common folder].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the runs (one subfolder each).
    #[arg(long, default_value = "gradscope-out/demo")]
    pub out: PathBuf,
    /// Training steps per run [default: 3000, 1500 with --remedies, 400 with --recurrent].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
    /// Do not write report.html.
    #[arg(long)]
    pub no_report: bool,
    /// Instead: 50-layer sigmoid and tanh networks plain, with each remedy alone (residual
    /// connections, batch norm, layer norm, gradient clipping) and combined, and the exploding
    /// side (ReLU, σ_w² = 2.5) without and with clipping; runs under OUT/remedies.
    #[arg(long)]
    pub remedies: bool,
    /// Instead: a tanh RNN, an LSTM and a GRU on the adding problem at T = 10, 25, 50, 100, then
    /// the RNN's cures at T = 50 (orthogonal W_hh, the identity-initialised relu RNN without
    /// and with clipping, the LSTM's forget-gate bias 1); runs under OUT/recurrent.
    #[arg(long, conflicts_with = "remedies")]
    pub recurrent: bool,
}

/// Flags of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Read the config from this TOML file; flags given here override its keys.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "gradscope-out/train")]
    pub out: PathBuf,
    /// No progress bar and no table.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON on stdout (and nothing else there).
    #[arg(long)]
    pub json: bool,
    /// Do not write report.html.
    #[arg(long)]
    pub no_report: bool,
    /// Replace the run already in --out (without it, gradscope refuses to touch one).
    #[arg(long)]
    pub overwrite: bool,
    /// Continue the interrupted run in DIR from its last checkpoint (its config.toml gives
    /// every setting; no other config flag may be given).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "overwrite"])]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub recurrent: RecurrentArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub optim: OptimArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub schedule: ScheduleArgs,
}

/// Flags of `probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Read data and model keys from this TOML file (a run's config.toml works); flags override.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Weights to probe: gradscope's weights.safetensors, or a PyTorch nn.Sequential's
    /// state_dict saved with safetensors (0.weight, 0.bias, 2.weight, …), or with --cell an
    /// nn.RNN/nn.LSTM/nn.GRU + nn.Linear module's (rnn.*, fc.*). Without it, a fresh network
    /// from --init (--recurrent-init) and --seed.
    #[arg(long, value_name = "FILE.safetensors")]
    pub weights: Option<PathBuf>,
    /// Use the first N training rows (default: all of them).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Output folder (probe.json, grads.safetensors, and weights.safetensors for a fresh init).
    #[arg(long, default_value = "gradscope-out/probe")]
    pub out: PathBuf,
    /// dtype of grads.safetensors (gradients are computed in f64 either way).
    #[arg(long, default_value = "f32", value_parser = PossibleValuesParser::new(["f32", "f64"]))]
    pub dtype: String,
    /// Print probe.json on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub recurrent: RecurrentArgs,
    /// Loss.
    #[arg(long, default_value_t = Config::default().loss, value_parser = PossibleValuesParser::new(LOSS_NAMES), help_heading = "Model")]
    pub loss: String,
    /// Seed of the data and of a fresh initialisation.
    #[arg(long, default_value_t = Config::default().seed, help_heading = "Run")]
    pub seed: u64,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = Config::default().threads, help_heading = "Run")]
    pub threads: usize,
}

/// Flags of `theory`.
#[derive(Debug, Args)]
pub struct TheoryArgs {
    /// Hidden activation.
    #[arg(long, default_value = "tanh", value_parser = PossibleValuesParser::new(ACTIVATION_NAMES))]
    pub activation: String,
    /// leaky_relu's slope for negative inputs.
    #[arg(long, default_value_t = Config::default().negative_slope, allow_negative_numbers = true)]
    pub negative_slope: f64,
    /// σ_w²: W ~ N(0, σ_w²/fan_in) (gaussian) or W = √σ_w²·Q (orthogonal); give it or --critical.
    #[arg(long = "sigma-w2", allow_negative_numbers = true)]
    pub sigma_w2: Option<f64>,
    /// σ_b²: b ~ N(0, σ_b²).
    #[arg(long = "sigma-b2", default_value_t = 0.0, allow_negative_numbers = true)]
    pub sigma_b2: f64,
    /// Use the σ_w² at which χ₁ = 1 for this activation and σ_b² (says so when there is none).
    #[arg(long, conflicts_with = "sigma_w2")]
    pub critical: bool,
    /// Initialisation. gaussian and orthogonal take --sigma-w2 (or --critical) and --sigma-b2; the
    /// others stand for the σ_w², σ_b² they amount to in square layers of --width (prediction
    /// only).
    #[arg(long, default_value = "gaussian", value_parser = PossibleValuesParser::new(INIT_NAMES))]
    pub init: String,
    /// ‖x‖²/fan_in of the inputs (q¹ = σ_w² q⁰ + σ_b²).
    #[arg(long, default_value_t = 1.0, conflicts_with = "q0_fixed")]
    pub q0: f64,
    /// Inputs at the fixed point: q⁰ = (q* − σ_b²)/σ_w², so that q¹ = q* (Pennington et al. 2017
    /// start there).
    #[arg(long)]
    pub q0_fixed: bool,
    /// Hidden layers.
    #[arg(long, default_value_t = 30)]
    pub depth: usize,
    /// Print the layer-by-layer prediction (printed anyway when q¹ is more than 1% from q*).
    #[arg(long)]
    pub layers: bool,
    /// Also build random networks of --init (gaussian or orthogonal) and measure q^l, c^l and
    /// ‖∂L/∂z_l‖² beside the prediction.
    #[arg(long)]
    pub measure: bool,
    /// Also compute the singular values of the input–output Jacobian of random networks.
    #[arg(long)]
    pub jacobian: bool,
    /// Units per layer of the measured networks.
    #[arg(long, default_value_t = 1000, help_heading = "Measurement")]
    pub width: usize,
    /// Networks to average over (--measure).
    #[arg(long, default_value_t = 4, help_heading = "Measurement")]
    pub seeds: usize,
    /// Input pairs per network (--measure).
    #[arg(long, default_value_t = 8, help_heading = "Measurement")]
    pub pairs: usize,
    /// Correlation of the two inputs of a pair (--measure).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true, help_heading = "Measurement")]
    pub c0: f64,
    /// Networks (one input each) whose Jacobian is decomposed (--jacobian).
    #[arg(long, default_value_t = 3, help_heading = "Measurement")]
    pub samples: usize,
    /// Histogram bins of the singular values (--jacobian).
    #[arg(long, default_value_t = 12, help_heading = "Measurement")]
    pub bins: usize,
    /// Seed of the first network.
    #[arg(long, default_value_t = 0, help_heading = "Measurement")]
    pub seed: u64,
    /// Threads (0: all cores). The products here are thin (16 rows for --measure): on 2 cores one
    /// thread was fastest (2.5 s against 6.6 s for the README's critical tanh run).
    #[arg(long, default_value_t = 1, help_heading = "Measurement")]
    pub threads: usize,
    /// Print everything as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where the data comes from.
#[derive(Debug, Args, Serialize)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// regression, spirals (built in), mnist:DIR (the four IDX files), csv:FILE (with a header),
    /// or, for a recurrent --cell, adding or copy (with --seq-len).
    #[arg(long, default_value_t = Config::default().data)]
    pub data: String,
    /// The CSV column to predict.
    #[arg(long, value_name = "COLUMN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Fraction of CSV rows held out for testing.
    #[arg(long, default_value_t = Config::default().test_fraction, allow_negative_numbers = true)]
    pub test_fraction: f64,
}

/// The network.
#[derive(Debug, Args, Serialize)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    /// Hidden layers.
    #[arg(long, default_value_t = Config::default().depth)]
    pub depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = Config::default().width)]
    pub width: usize,
    /// Hidden activation.
    #[arg(long, default_value_t = Config::default().activation, value_parser = PossibleValuesParser::new(ACTIVATION_NAMES))]
    pub activation: String,
    /// leaky_relu's slope for negative inputs.
    #[arg(long, default_value_t = Config::default().negative_slope, allow_negative_numbers = true)]
    pub negative_slope: f64,
    /// Initialisation.
    #[arg(long, default_value_t = Config::default().init, value_parser = PossibleValuesParser::new(INIT_NAMES))]
    pub init: String,
    /// σ_w² of the gaussian (W ~ N(0, σ_w²/fan_in)) and orthogonal (W = √σ_w²·Q) inits.
    #[arg(long = "sigma-w2", default_value_t = Config::default().sigma_w2, allow_negative_numbers = true)]
    pub sigma_w2: f64,
    /// σ_b² of the gaussian and orthogonal inits (b ~ N(0, σ_b²)).
    #[arg(long = "sigma-b2", default_value_t = Config::default().sigma_b2, allow_negative_numbers = true)]
    pub sigma_b2: f64,
    /// Residual connections: blocks of --residual-block hidden layers, h ← P(h) + α·F(h), P a
    /// projection where widths differ.
    #[arg(long, default_value_t = Config::default().residual, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub residual: bool,
    /// α, the scale of the residual branch.
    #[arg(long, default_value_t = Config::default().residual_scale, allow_negative_numbers = true)]
    pub residual_scale: f64,
    /// Hidden layers per residual block (1 or 2).
    #[arg(long, default_value_t = Config::default().residual_block)]
    pub residual_block: usize,
    /// Normalisation in every hidden layer: BatchNorm1d or LayerNorm (affine, ε 1e-5).
    #[arg(long, default_value_t = Config::default().norm, value_parser = PossibleValuesParser::new(NORM_NAMES))]
    pub norm: String,
    /// Where the norm sits: pre (φ(norm(z))) or post (norm(φ(z))).
    #[arg(long, default_value_t = Config::default().norm_position, value_parser = PossibleValuesParser::new(NORM_POSITION_NAMES))]
    pub norm_position: String,
}

// ---- recurrent networks (issue 14): the `cell` … `forget_bias` keys, one block ----

/// A recurrent network instead of the MLP (docs/recurrent.md).
#[derive(Debug, Args, Serialize)]
#[command(next_help_heading = "Recurrent")]
pub struct RecurrentArgs {
    /// A recurrent network of this cell (none: the MLP). --width is its hidden size; the data
    /// must have a time axis: adding, copy, or mnist:DIR (28 steps of 28 pixels).
    #[arg(long, value_enum, default_value_t = Config::default().cell)]
    #[serde(skip_serializing_if = "CellKind::is_none")]
    pub cell: CellKind,
    /// Stacked recurrent layers (PyTorch's num_layers) [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<usize>,
    /// T: the adding problem's steps, the copy task's blanks (T + 20 steps).
    #[arg(long, value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// Truncated BPTT: the gradient flows back at most K steps (h.detach() every K steps).
    #[arg(long, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bptt: Option<usize>,
    /// Where the Linear head reads [default: every for copy, last otherwise].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadKind>,
    /// W_hh's init [default: pytorch].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrent_init: Option<RecurrentInit>,
    /// The LSTM's gate biases: forget (b_f = --forget-bias) or chrono (T_max = the steps)
    /// [default: default].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_bias: Option<GateBiasKind>,
    /// b_f with --gate-bias forget [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forget_bias: Option<f64>,
}

/// The loss and the update rule.
#[derive(Debug, Args, Serialize)]
#[command(next_help_heading = "Optimisation")]
pub struct OptimArgs {
    /// Loss.
    #[arg(long, default_value_t = Config::default().loss, value_parser = PossibleValuesParser::new(LOSS_NAMES))]
    pub loss: String,
    /// Update rule.
    #[arg(long, default_value_t = Config::default().optimizer, value_parser = PossibleValuesParser::new(OPTIMIZER_NAMES))]
    pub optimizer: String,
    /// Learning rate [default: 0.01 for sgd, 0.001 for adam and adamw].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// SGD momentum.
    #[arg(long, default_value_t = Config::default().momentum, allow_negative_numbers = true)]
    pub momentum: f64,
    /// SGD Nesterov momentum (needs --momentum > 0).
    #[arg(long, default_value_t = Config::default().nesterov, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub nesterov: bool,
    /// Weight decay [default: 0, 0.01 for adamw].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Adam's β₁.
    #[arg(long, default_value_t = Config::default().beta1, allow_negative_numbers = true)]
    pub beta1: f64,
    /// Adam's β₂.
    #[arg(long, default_value_t = Config::default().beta2, allow_negative_numbers = true)]
    pub beta2: f64,
    /// Adam's ε.
    #[arg(long, default_value_t = Config::default().eps, allow_negative_numbers = true)]
    pub eps: f64,
    /// Clip the total L2 norm of all gradients to this before each update.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Clamp every gradient entry to [−v, v] before each update.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
}

/// How long to train and how often to probe.
#[derive(Debug, Args, Serialize)]
#[command(next_help_heading = "Schedule")]
pub struct ScheduleArgs {
    /// Examples per mini-batch.
    #[arg(long, default_value_t = Config::default().batch_size)]
    pub batch_size: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = Config::default().epochs)]
    pub epochs: u64,
    /// Step budget; overrides --epochs.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Probe every N steps (0: only at step 0 and at the end).
    #[arg(long, default_value_t = Config::default().probe_every)]
    pub probe_every: u64,
    /// Seed of the data, the initialisation and the batch order.
    #[arg(long, default_value_t = Config::default().seed)]
    pub seed: u64,
    /// Threads (0: all cores); results are identical for a given count.
    #[arg(long, default_value_t = Config::default().threads)]
    pub threads: usize,
    /// Write checkpoint.safetensors every N steps (0: only at Ctrl-C); `--resume DIR` continues.
    #[arg(long, default_value_t = Config::default().checkpoint_every)]
    pub checkpoint_every: u64,
    /// At a NaN or infinity in the loss, an activation or a gradient: stop (the run ends
    /// diverged) or skip that update.
    #[arg(long, value_enum, default_value_t = Config::default().on_nonfinite)]
    pub on_nonfinite: gradscope::OnNonFinite,
}

/// Reads a config file into a TOML table.
pub fn read_table(path: &Path) -> Result<toml::Table> {
    let text =
        std::fs::read_to_string(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
    toml::from_str(&text)
        .map_err(|e| Error::invalid("config", path.display(), format!("not valid TOML: {}", e.message())))
}

/// Builds the config: defaults, then the file's keys, then every flag given on the command line.
pub fn merge(file: Option<&Path>, groups: &[toml::Table], matches: &ArgMatches) -> Result<Config> {
    let mut table = match file {
        Some(p) => read_table(p)?,
        None => toml::Table::new(),
    };
    for group in groups {
        for (key, value) in group {
            if CONFIG_KEYS.contains(&key.as_str()) && matches.value_source(key) == Some(ValueSource::CommandLine) {
                table.insert(key.clone(), value.clone());
            }
        }
    }
    let origin = file.map_or_else(|| "flags".to_string(), |p| p.display().to_string());
    Config::from_table(table, &origin)
}

/// A flag group as a TOML table (keys in snake case).
pub fn table<T: Serialize>(group: &T) -> toml::Table {
    toml::Table::try_from(group).expect("gradscope internal error: flags serialise")
}

/// Whether the user set `key` on the command line or in the config file.
pub fn given(key: &str, file: Option<&toml::Table>, matches: &ArgMatches) -> bool {
    matches.value_source(key) == Some(ValueSource::CommandLine) || file.is_some_and(|t| t.contains_key(key))
}
