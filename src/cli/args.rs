//! Flags. Every config key is a flag (kebab case), declared once, in [`Config`]; a flag given
//! on the command line overrides the same key of `--config FILE`, which overrides the default.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, FromArgMatches, Parser, Subcommand, builder::PossibleValuesParser};
use gradscope::config::{self, CONFIG_KEYS, Config};
use gradscope::error::{Error, Result};
use gradscope::nn::recurrent::Cell;
use gradscope::nn::{ActivationKind, Init};
use std::ffi::OsString;
use std::marker::PhantomData;
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
    /// Export run folders' records: TensorBoard event files (--tensorboard DIR) and one flat CSV
    /// of `run, step, layer, field, value` (--csv FILE).
    Export(ExportArgs),
    /// Download MNIST or Fashion-MNIST (the four IDX files, SHA-256 checked, resumable) into the
    /// cache folder that --data mnist reads, or into --to DIR.
    Data(super::data::DataArgs),
}

/// Flags of `export`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("format").required(true).multiple(true).args(["tensorboard", "csv"]))]
pub struct ExportArgs {
    /// Run folders (written by train, demo or the Python package's watch); a folder of run
    /// folders stands for all of them.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Folder for TensorBoard event files, one subfolder per run (`tensorboard --logdir DIR`).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// File for the flat CSV (`run,step,layer,field,value`; `pandas.read_csv`).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// tiny, slide, deep, wide (MLPs); lstm, rnn, gru (row-by-row MNIST's shape: 28 steps of 28,
    /// hidden 128, batch 128); mlp, recurrent or all.
    #[arg(long, default_value = "all")]
    pub config: String,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Timed steps per config.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed steps first [default: steps/5, between 2 and 20, and more until they have
    /// taken 0.2 s: the threads settle first]; a number given here is taken exactly.
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
    /// Training steps per run [default: 3000, 1500 with --remedies, 2000 with --recurrent].
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
    /// Every config key as a flag.
    #[command(flatten)]
    pub keys: ConfigFlags<AllKeys>,
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
    /// Use the first N training rows [default: the first 10000, or all when there are fewer].
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
    /// The data and model keys, loss, seed and threads as flags.
    #[command(flatten)]
    pub keys: ConfigFlags<ProbeKeys>,
}

/// Flags of `theory`.
#[derive(Debug, Args)]
pub struct TheoryArgs {
    /// Hidden activation.
    #[arg(long, value_enum, default_value_t = ActivationKind::Tanh)]
    pub activation: ActivationKind,
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
    /// Initialisation [default: gaussian; with --cell: default]. gaussian and orthogonal take
    /// --sigma-w2 (or --critical) and --sigma-b2; the others stand for the σ_w², σ_b² they amount
    /// to in square layers of --width (prediction only). With --cell, W_hh's init: default
    /// (PyTorch's U(±1/√H)), orthogonal or identity.
    #[arg(long, value_parser = PossibleValuesParser::new(theory_init_names()))]
    pub init: Option<String>,
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
    /// A recurrent layer instead of an MLP: rnn_tanh, rnn_relu, lstm or gru. Prints Pascanu's
    /// bound for --init and, for the Elman cell, the mean-field per-step factor of the gradient
    /// through time; --measure measures that factor on random networks (--seeds of them).
    #[arg(
        long,
        value_enum,
        conflicts_with_all = ["sigma_w2", "critical", "jacobian", "q0_fixed"],
        help_heading = "Recurrent"
    )]
    pub cell: Option<Cell>,
    /// H, the hidden state's size (--cell).
    #[arg(long, default_value_t = 256, help_heading = "Recurrent")]
    pub hidden: usize,
    /// Features per time step of the inputs, drawn N(0, --q0) (--cell).
    #[arg(long, default_value_t = 4, help_heading = "Recurrent")]
    pub input_size: usize,
    /// T, time steps (--cell; at least 8 with --measure).
    #[arg(long, default_value_t = 30, help_heading = "Recurrent")]
    pub seq_len: usize,
}

/// `--init` of `theory`: the MLP inits and W_hh's (`default` for PyTorch's, `identity`).
fn theory_init_names() -> Vec<clap::builder::PossibleValue> {
    use clap::ValueEnum;
    let mlp = Init::value_variants().iter().filter_map(ValueEnum::to_possible_value);
    mlp.chain(["default", "identity"].map(clap::builder::PossibleValue::new)).collect()
}

/// Config keys as flags, as [`Config`] declares them (flag, default, help, heading): those the
/// key set `K` picks. Parsed, it holds the keys given on the command line.
#[derive(Debug, Clone)]
pub struct ConfigFlags<K> {
    /// The keys given on the command line, typed as a config file types them.
    pub given: toml::Table,
    keys: PhantomData<K>,
}

/// Which config keys a command takes as flags.
pub trait KeySet {
    /// This command's flag for the config key `arg` (None: the key is no flag here).
    fn select(arg: &Arg) -> Option<Arg>;
}

/// Every config key (`train`).
#[derive(Debug, Clone)]
pub struct AllKeys;

impl KeySet for AllKeys {
    fn select(arg: &Arg) -> Option<Arg> {
        Some(arg.clone())
    }
}

/// The data and model keys, the loss, the seed and the threads (`probe`).
#[derive(Debug, Clone)]
pub struct ProbeKeys;

impl KeySet for ProbeKeys {
    fn select(arg: &Arg) -> Option<Arg> {
        let arg = arg.clone();
        match arg.get_id().as_str() {
            "loss" => Some(arg.help_heading(config::MODEL)),
            "seed" => Some(arg.help("Seed of the data and of a fresh initialisation").help_heading("Run")),
            "threads" => Some(arg.help("Threads (0: all cores)").help_heading("Run")),
            _ => {
                matches!(arg.get_help_heading(), Some(config::DATA | config::MODEL | config::RECURRENT)).then_some(arg)
            }
        }
    }
}

impl<K: KeySet> Args for ConfigFlags<K> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.args(Config::args().filter_map(K::select))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<K: KeySet> FromArgMatches for ConfigFlags<K> {
    /// The keys given on the command line, parsed again by [`Config::from_flags`] so that each
    /// has its key's type.
    fn from_arg_matches(matches: &ArgMatches) -> std::result::Result<Self, clap::Error> {
        let mut flags: Vec<OsString> = Vec::new();
        let mut keys = Vec::new();
        for arg in Config::args().filter(|a| K::select(a).is_some()) {
            let key = arg.get_id().as_str();
            if matches.value_source(key) == Some(ValueSource::CommandLine) {
                for raw in matches.get_raw(key).into_iter().flatten() {
                    let mut flag = OsString::from(format!("--{}=", arg.get_long().unwrap_or(key)));
                    flag.push(raw);
                    flags.push(flag);
                }
                keys.push(key);
            }
        }
        let all = toml::Table::try_from(Config::from_flags(flags)?).expect("gradscope internal error: flags serialise");
        let given = all.into_iter().filter(|(k, _)| keys.contains(&k.as_str())).collect();
        Ok(Self { given, keys: PhantomData })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Reads a config file into a TOML table.
pub fn read_table(path: &Path) -> Result<toml::Table> {
    let text =
        std::fs::read_to_string(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
    toml::from_str(&text)
        .map_err(|e| Error::invalid("config", path.display(), format!("not valid TOML: {}", e.message())))
}

/// Builds the config: defaults, then the file's keys, then every flag given on the command line.
pub fn merge<K>(file: Option<&Path>, flags: &ConfigFlags<K>) -> Result<Config> {
    let mut table = match file {
        Some(p) => read_table(p)?,
        None => toml::Table::new(),
    };
    table.extend(flags.given.clone());
    let origin = file.map_or_else(|| "flags".to_string(), |p| p.display().to_string());
    Config::from_table(table, &origin)
}

/// The first config key given on the command line, in declaration order.
pub fn first_given<K>(flags: &ConfigFlags<K>) -> Option<&'static str> {
    CONFIG_KEYS.iter().copied().find(|k| flags.given.contains_key(*k))
}

/// Whether the user set `key` on the command line or in the config file.
pub fn given(key: &str, file: Option<&toml::Table>, matches: &ArgMatches) -> bool {
    matches.value_source(key) == Some(ValueSource::CommandLine) || file.is_some_and(|t| t.contains_key(key))
}
