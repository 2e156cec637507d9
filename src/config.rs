//! The run configuration: one TOML table whose keys are also the command-line flags.
//!
//! [`Config`] is what users write (plain names and numbers); [`Config::resolve`] checks every
//! value and turns it into a [`RunSpec`] of typed parts. The resolved config (defaults filled in,
//! `threads` made concrete) is saved beside every run, so passing it back repeats the run.

use crate::data::DataSpec;
use crate::error::{Error, Result, closest};
use crate::nn::activation::DEFAULT_NEGATIVE_SLOPE;
use crate::nn::recurrent::{Cell, GateBias, Head, HiddenInit};
use crate::nn::{Activation, Arch, NormKind, Residual};
use crate::optim::{Adam, Clip, Optimizer, Sgd};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// The types of the keys that take a name, and the trait that names them, for code that
/// writes configs (`Config { activation: ActivationKind::Tanh, .. }`).
pub use crate::error::Named;
pub use crate::nn::{ActivationKind, Init, Loss, NormChoice, NormPosition};
pub use crate::optim::OptimizerKind;

/// What a step does when its loss, an activation or a gradient is NaN or infinite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum OnNonFinite {
    /// Stop there: the run ends `diverged`, with the weights before that step's update.
    #[default]
    Stop,
    /// Skip that update and go on (counted in `skipped_steps`).
    Skip,
}

/// Help heading of the data keys (`probe` takes them too).
pub const DATA: &str = "Data";
/// Help heading of the model keys (`probe` takes them too).
pub const MODEL: &str = "Model";
/// Help heading of the loss, optimizer and clipping keys.
pub const OPTIM: &str = "Optimisation";
/// Help heading of the schedule keys (batches, steps, seed, threads, probes, checkpoints).
pub const SCHEDULE: &str = "Schedule";
/// Help heading of the recurrent keys (`cell` … `forget_bias`; `probe` takes them too).
pub const RECURRENT: &str = "Recurrent";

// ---- recurrent networks (issue 14): the typed values of the `cell` … `forget_bias` keys ----

/// The `cell` key: no cell (an MLP) or the recurrent cell of every layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum CellKind {
    /// No recurrent cell: the MLP of `depth`, `width`, `activation`.
    #[default]
    None,
    /// Elman RNN, tanh (`nn.RNN`).
    RnnTanh,
    /// Elman RNN, relu (`nn.RNN(nonlinearity='relu')`).
    RnnRelu,
    /// `nn.LSTM`.
    Lstm,
    /// `nn.GRU`.
    Gru,
}

impl CellKind {
    /// True for [`CellKind::None`] (an MLP).
    pub fn is_none(&self) -> bool {
        *self == CellKind::None
    }

    /// The library's cell; `None` for an MLP.
    pub fn cell(&self) -> Option<Cell> {
        match self {
            CellKind::None => None,
            CellKind::RnnTanh => Some(Cell::RnnTanh),
            CellKind::RnnRelu => Some(Cell::RnnRelu),
            CellKind::Lstm => Some(Cell::Lstm),
            CellKind::Gru => Some(Cell::Gru),
        }
    }
}

/// The `head` key: where the Linear head reads the top layer's hidden state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum HeadKind {
    /// The last step only (adding problem, row-by-row MNIST).
    Last,
    /// Every step (the copy task).
    Every,
}

/// The `recurrent_init` key: how W_hh is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum RecurrentInit {
    /// PyTorch's default, U(−1/√H, 1/√H).
    Pytorch,
    /// Each gate block of W_hh a random orthogonal matrix.
    Orthogonal,
    /// Each gate block of W_hh the identity, biases 0 (IRNN, for `rnn_relu`).
    Identity,
}

/// The `gate_bias` key: the LSTM's gate biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum GateBiasKind {
    /// As `recurrent_init` drew them.
    Default,
    /// Forget-gate bias `forget_bias` (Jozefowicz et al. 2015).
    Forget,
    /// Chrono init with T_max = the sequence's steps (Tallec & Ollivier 2018).
    Chrono,
}

/// What a recurrent run is, resolved: the cell and what the `cell` … `forget_bias` keys say.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentSpec {
    /// The cell.
    pub cell: Cell,
    /// Stacked layers.
    pub num_layers: usize,
    /// Time steps per sequence (from the data: `seq_len`, `seq_len + 20`, 28).
    pub steps: usize,
    /// Where the head reads.
    pub head: Head,
    /// W_hh's init.
    pub hidden_init: HiddenInit,
    /// LSTM gate biases.
    pub gate_bias: GateBias,
    /// Truncated BPTT window.
    pub bptt: Option<usize>,
}

/// The names a typed config value accepts (its [`clap::ValueEnum`] names, as serde spells them).
pub fn choices<E: clap::ValueEnum>() -> Vec<String> {
    E::value_variants().iter().filter_map(|v| v.to_possible_value()).map(|p| p.get_name().to_string()).collect()
}

/// Every key of a run's config, as written in `config.toml`; every key is also a flag of
/// `train` (kebab case), and `probe` takes the data and model keys.
///
/// This struct is the one declaration of a key: its field (the TOML key and type), its doc
/// comment (the flag's help) and its `#[arg]` (flag, default, help heading). [`CONFIG_KEYS`],
/// [`Config::default`], the flags and the names a typed key accepts are derived from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// regression, spirals (built in), mnist:DIR (the four IDX files) or csv:FILE (with a header).
    #[arg(long, default_value = "regression", help_heading = DATA)]
    pub data: String,
    /// The CSV column to predict.
    #[arg(long, value_name = "COLUMN", help_heading = DATA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Fraction of CSV rows held out for testing.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true, help_heading = DATA)]
    pub test_fraction: f64,
    /// CSV: use only these columns as features, in this order (comma-separated).
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',', conflicts_with = "drop", help_heading = DATA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// CSV: leave these columns out (an id, a date; comma-separated).
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',', help_heading = DATA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<Vec<String>>,
    /// Standardise inputs with mean and std fitted on the training split (per feature; images:
    /// over all pixels); saved as standardize.safetensors and applied to the test split.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set, help_heading = DATA)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standardize: bool,
    /// Refuse to start when the estimated memory exceeds SIZE (2G, 512MB, 1.5GiB) [default: the
    /// available memory].
    #[arg(long, value_name = "SIZE", help_heading = DATA)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    /// Hidden layers.
    #[arg(long, default_value_t = 2, help_heading = MODEL)]
    pub depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 64, help_heading = MODEL)]
    pub width: usize,
    /// Hidden activation.
    #[arg(long, value_enum, default_value_t = ActivationKind::Sigmoid, help_heading = MODEL)]
    pub activation: ActivationKind,
    /// leaky_relu's slope for negative inputs.
    #[arg(long, default_value_t = DEFAULT_NEGATIVE_SLOPE, allow_negative_numbers = true, help_heading = MODEL)]
    pub negative_slope: f64,
    /// Initialisation.
    #[arg(long, value_enum, default_value_t = Init::Pytorch, help_heading = MODEL)]
    pub init: Init,
    /// σ_w² of the gaussian (W ~ N(0, σ_w²/fan_in)) and orthogonal (W = √σ_w²·Q) inits.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, help_heading = MODEL)]
    pub sigma_w2: f64,
    /// σ_b² of the gaussian and orthogonal inits (b ~ N(0, σ_b²)).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, help_heading = MODEL)]
    pub sigma_b2: f64,
    /// Loss.
    #[arg(long, value_enum, default_value_t = Loss::Mse, help_heading = OPTIM)]
    pub loss: Loss,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd, help_heading = OPTIM)]
    pub optimizer: OptimizerKind,
    /// Learning rate [default: 0.01 for sgd, 0.001 for adam and adamw].
    #[arg(long, allow_negative_numbers = true, help_heading = OPTIM)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, help_heading = OPTIM)]
    pub momentum: f64,
    /// SGD Nesterov momentum (needs --momentum > 0).
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set, help_heading = OPTIM)]
    pub nesterov: bool,
    /// Weight decay [default: 0, 0.01 for adamw].
    #[arg(long, allow_negative_numbers = true, help_heading = OPTIM)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Adam's β₁.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true, help_heading = OPTIM)]
    pub beta1: f64,
    /// Adam's β₂.
    #[arg(long, default_value_t = 0.999, allow_negative_numbers = true, help_heading = OPTIM)]
    pub beta2: f64,
    /// Adam's ε.
    #[arg(long, default_value_t = 1e-8, allow_negative_numbers = true, help_heading = OPTIM)]
    pub eps: f64,
    /// Examples per mini-batch.
    #[arg(long, default_value_t = 64, help_heading = SCHEDULE)]
    pub batch_size: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10, help_heading = SCHEDULE)]
    pub epochs: u64,
    /// Step budget; overrides --epochs.
    #[arg(long, help_heading = SCHEDULE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Seed of the data, the initialisation and the batch order.
    #[arg(long, default_value_t = 0, help_heading = SCHEDULE)]
    pub seed: u64,
    /// Probe every N steps (0: only at step 0 and at the end).
    #[arg(long, default_value_t = 100, help_heading = SCHEDULE)]
    pub probe_every: u64,
    /// Threads (0: all cores); results are identical for a given count.
    #[arg(long, default_value_t = 0, help_heading = SCHEDULE)]
    pub threads: usize,
    /// Residual connections: blocks of --residual-block hidden layers, h ← P(h) + α·F(h), P a
    /// projection where widths differ.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set, help_heading = MODEL)]
    pub residual: bool,
    /// α, the scale of the residual branch.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, help_heading = MODEL)]
    pub residual_scale: f64,
    /// Hidden layers per residual block (1 or 2).
    #[arg(long, default_value_t = 2, help_heading = MODEL)]
    pub residual_block: usize,
    /// Normalisation in every hidden layer: BatchNorm1d or LayerNorm (affine, ε 1e-5).
    #[arg(long, value_enum, default_value_t = NormChoice::None, help_heading = MODEL)]
    pub norm: NormChoice,
    /// Where the norm sits: pre (φ(norm(z))) or post (norm(φ(z))).
    #[arg(long, value_enum, default_value_t = NormPosition::Pre, help_heading = MODEL)]
    pub norm_position: NormPosition,
    /// Clip the total L2 norm of all gradients to this before each update.
    #[arg(long, allow_negative_numbers = true, help_heading = OPTIM)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Clamp every gradient entry to [−v, v] before each update.
    #[arg(long, allow_negative_numbers = true, help_heading = OPTIM)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Write checkpoint.safetensors every N steps (0: only at Ctrl-C); `--resume DIR` continues.
    #[arg(long, default_value_t = 0, help_heading = SCHEDULE)]
    pub checkpoint_every: u64,
    /// At a NaN or infinity in the loss, an activation or a gradient: stop (the run ends
    /// diverged) or skip that update.
    #[arg(long, value_enum, default_value_t = OnNonFinite::Stop, help_heading = SCHEDULE)]
    pub on_nonfinite: OnNonFinite,
    // ---- recurrent networks (issue 14); absent from an MLP's config.toml ----
    /// A recurrent network of this cell (none: the MLP). --width is its hidden size; the data
    /// must have a time axis: adding, copy, or mnist:DIR (28 steps of 28 pixels).
    #[arg(long, value_enum, default_value_t = CellKind::None, help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "CellKind::is_none")]
    pub cell: CellKind,
    /// Stacked recurrent layers (PyTorch's num_layers) [default: 1].
    #[arg(long, help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<usize>,
    /// T: the adding problem's steps, the copy task's blanks (T + 20 steps).
    #[arg(long, value_name = "T", help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// Truncated BPTT: the gradient flows back at most K steps (h.detach() every K steps).
    #[arg(long, value_name = "K", help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bptt: Option<usize>,
    /// Where the Linear head reads [default: every for copy, last otherwise].
    #[arg(long, value_enum, help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadKind>,
    /// W_hh's init [default: pytorch].
    #[arg(long, value_enum, help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrent_init: Option<RecurrentInit>,
    /// The LSTM's gate biases: forget (b_f = --forget-bias) or chrono (T_max = the steps)
    /// [default: default].
    #[arg(long, value_enum, help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_bias: Option<GateBiasKind>,
    /// b_f with --gate-bias forget [default: 1].
    #[arg(long, allow_negative_numbers = true, help_heading = RECURRENT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forget_bias: Option<f64>,
}

/// `Config`'s keys as a clap command of their own: flags, defaults, help, accepted names.
static COMMAND: LazyLock<clap::Command> = LazyLock::new(|| {
    <Config as clap::Args>::augment_args(clap::Command::new("config").no_binary_name(true).disable_help_flag(true))
});

/// Every config key, in declaration order (derived from [`Config`]).
pub static CONFIG_KEYS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| COMMAND.get_arguments().map(|a| a.get_id().as_str()).collect());

impl Default for Config {
    /// The defaults of the `#[arg]` declarations.
    fn default() -> Self {
        static DEFAULT: LazyLock<Config> = LazyLock::new(|| {
            Config::from_flags(std::iter::empty::<&str>()).expect("gradscope internal error: defaults parse")
        });
        DEFAULT.clone()
    }
}

/// The names a key accepts when its value is a typed enum, so that a bad name gets
/// gradscope's message, with the closest valid one, rather than serde's.
fn typed_choices(key: &str) -> Option<(&'static str, Vec<String>)> {
    let arg = COMMAND.get_arguments().find(|a| a.get_id() == key)?;
    if arg.get_value_parser().type_id() == clap::builder::ValueParser::bool().type_id() {
        return None; // serde's message for a bool ("expected a boolean") names the file
    }
    let names: Vec<String> = arg.get_possible_values().iter().map(|p| p.get_name().to_string()).collect();
    (!names.is_empty()).then(|| (arg.get_id().as_str(), names))
}

/// A checked configuration with typed parts.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// Where the data comes from.
    pub data: DataSpec,
    /// The CSV target column.
    pub target: Option<String>,
    /// CSV test fraction.
    pub test_fraction: f64,
    /// CSV feature columns.
    pub features: Option<Vec<String>>,
    /// CSV columns left out.
    pub drop: Option<Vec<String>>,
    /// Standardise the inputs (fitted on the training split).
    pub standardize: bool,
    /// The memory limit in bytes (None: the available memory).
    pub max_memory: Option<u64>,
    /// Hidden layers.
    pub depth: usize,
    /// Hidden width.
    pub width: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// Initialisation.
    pub init: Init,
    /// σ_w².
    pub sigma_w2: f64,
    /// σ_b².
    pub sigma_b2: f64,
    /// Loss.
    pub loss: Loss,
    /// Update rule.
    pub optimizer: Optimizer,
    /// Learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Epochs (when `steps` is None).
    pub epochs: u64,
    /// Step budget.
    pub steps: Option<u64>,
    /// Seed.
    pub seed: u64,
    /// Probe period (0: first and last step only).
    pub probe_every: u64,
    /// Threads, ≥ 1.
    pub threads: usize,
    /// Residual blocks and normalisation.
    pub arch: Arch,
    /// Gradient clipping.
    pub clip: Clip,
    /// Checkpoint period in steps (0: only when interrupted).
    pub checkpoint_every: u64,
    /// What a NaN or infinity does.
    pub on_nonfinite: OnNonFinite,
    /// The recurrent network (`None`: the MLP).
    pub recurrent: Option<RecurrentSpec>,
}

/// Parses a size: `2G`, `2 GB`, `512MiB`, `1.5GiB`, `1000000` (bytes). Units without `i` are
/// decimal (G = 10⁹), with `i` binary (Gi = 2³⁰), as `parse-size` reads them.
pub fn parse_size(s: &str) -> Result<u64> {
    match parse_size::parse_size(s) {
        Ok(0) | Err(_) => Err(Error::invalid("max_memory", s, "use a positive size such as 2G, 512MB or 1.5GiB")),
        Ok(v) => Ok(v),
    }
}

fn positive(key: &str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() { Ok(()) } else { Err(Error::invalid(key, v, "must be a positive finite number")) }
}

fn non_negative(key: &str, v: f64) -> Result<()> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(key, v, "must be zero or a positive finite number"))
    }
}

impl Config {
    /// A config from its flags (`--depth=3`, `--activation=tanh`, …; no program name) over the
    /// defaults. A bad flag is clap's error.
    pub fn from_flags<I, T>(flags: I) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = COMMAND.clone().try_get_matches_from(flags)?;
        <Config as clap::FromArgMatches>::from_arg_matches(&matches)
    }

    /// Every config key as a clap argument: flag, default, help text, help heading.
    pub fn args() -> impl Iterator<Item = &'static clap::Arg> {
        COMMAND.get_arguments()
    }

    /// Parses TOML text, rejecting unknown keys with the closest valid one.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| Error::invalid("config", origin, format!("not valid TOML: {e}")))?;
        Self::from_table(table, origin)
    }

    /// Builds a config from a TOML table (a file's keys, possibly overridden by flags).
    pub fn from_table(table: toml::Table, origin: &str) -> Result<Self> {
        for key in table.keys() {
            if !CONFIG_KEYS.contains(&key.as_str()) {
                let hint = match closest(key, &CONFIG_KEYS) {
                    Some(c) => format!("unknown key in {origin} (did you mean '{c}'?)"),
                    None => format!("unknown key in {origin}; valid keys: {}", CONFIG_KEYS.join(", ")),
                };
                return Err(Error::invalid("config key", key, hint));
            }
        }
        // Deserialise key by key first, so that a wrong type names its key.
        for (key, value) in &table {
            if let (Some((what, valid)), toml::Value::String(given)) = (typed_choices(key), value)
                && !valid.contains(given)
            {
                let valid: Vec<&str> = valid.iter().map(String::as_str).collect();
                return Err(Error::unknown_name(what, given, &valid));
            }
            let one = toml::Table::from_iter([(key.clone(), value.clone())]);
            if let Err(e) = toml::Value::Table(one).try_into::<Config>() {
                return Err(Error::invalid(key, value, format!("{} (in {origin})", e.message().trim_end())));
            }
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::invalid("config", origin, e.message().trim_end().to_string()))
    }

    /// Checks every value and resolves defaults that depend on others.
    pub fn resolve(&self) -> Result<RunSpec> {
        let data = DataSpec::parse_with(&self.data, self.seq_len)?;
        let recurrent = self.recurrent(&data)?;
        let activation = Activation::new(self.activation, self.negative_slope);
        let (init, loss, kind) = (self.init, self.loss, self.optimizer);
        self.check_counts()?;
        let lr = self.lr.unwrap_or(kind.default_lr());
        positive("lr", lr)?;
        let weight_decay = self.weight_decay.unwrap_or(kind.default_weight_decay());
        non_negative("weight_decay", weight_decay)?;
        non_negative("momentum", self.momentum)?;
        non_negative("sigma_w2", self.sigma_w2)?;
        non_negative("sigma_b2", self.sigma_b2)?;
        if !self.negative_slope.is_finite() {
            return Err(Error::invalid("negative_slope", self.negative_slope, "must be finite"));
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err(Error::invalid("nesterov", true, "needs momentum > 0 (as in PyTorch)"));
        }
        for (k, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(k, b, "must be in [0, 1)"));
            }
        }
        non_negative("eps", self.eps)?;
        let optimizer = self.optimizer_of(kind, weight_decay);
        if matches!(data, DataSpec::Csv(_)) && self.target.is_none() {
            return Err(Error::invalid("target", "(none)", "csv data needs --target COLUMN"));
        }
        if let Some(t) = &self.target
            && !matches!(data, DataSpec::Csv(_))
        {
            return Err(Error::invalid(
                "target",
                t,
                format!("applies to csv data only, and {} brings its own targets; drop --target", self.data),
            ));
        }
        for (key, given) in [("features", &self.features), ("drop", &self.drop)] {
            if let Some(cols) = given
                && !matches!(data, DataSpec::Csv(_))
            {
                return Err(Error::invalid(
                    key,
                    cols.join(","),
                    format!("chooses CSV columns, and {} has none; it needs --data csv:FILE", self.data),
                ));
            }
        }
        let arch = self.arch()?;
        if arch.norm == Some(NormKind::Batch) && self.batch_size < 2 {
            return Err(Error::invalid(
                "batch_size",
                self.batch_size,
                "batch norm needs at least 2 rows per batch (as PyTorch's BatchNorm1d in training)",
            ));
        }
        let clip = self.clip()?;
        let threads =
            if self.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { self.threads };
        Ok(RunSpec {
            data,
            target: self.target.clone(),
            test_fraction: self.test_fraction,
            features: self.features.clone(),
            drop: self.drop.clone(),
            standardize: self.standardize,
            max_memory: self.max_memory.as_deref().map(parse_size).transpose()?,
            depth: self.depth,
            width: self.width,
            activation,
            init,
            sigma_w2: self.sigma_w2,
            sigma_b2: self.sigma_b2,
            loss,
            optimizer,
            lr,
            batch_size: self.batch_size,
            epochs: self.epochs,
            steps: self.steps,
            seed: self.seed,
            probe_every: self.probe_every,
            threads,
            arch,
            clip,
            checkpoint_every: self.checkpoint_every,
            on_nonfinite: self.on_nonfinite,
            recurrent,
        })
    }

    /// The sizes and counts: width, depth, batch_size, epochs/steps, test_fraction.
    fn check_counts(&self) -> Result<()> {
        if self.width == 0 {
            return Err(Error::invalid("width", 0, "must be at least 1"));
        }
        if self.depth > 10_000 {
            return Err(Error::invalid("depth", self.depth, "must be at most 10000"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "must be at least 1"));
        }
        if self.steps.is_none() && self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "must be at least 1 (or give steps)"));
        }
        if self.steps == Some(0) {
            return Err(Error::invalid("steps", 0, "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.test_fraction) {
            return Err(Error::invalid("test_fraction", self.test_fraction, "must be in [0, 1)"));
        }
        Ok(())
    }

    /// The update rule of `kind` from the optimizer keys (checked by the caller).
    fn optimizer_of(&self, kind: OptimizerKind, weight_decay: f64) -> Optimizer {
        match kind {
            OptimizerKind::Sgd => {
                Optimizer::Sgd(Sgd { momentum: self.momentum, nesterov: self.nesterov, weight_decay })
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => Optimizer::Adam(Adam {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay,
                decoupled: kind == OptimizerKind::AdamW,
            }),
        }
    }

    /// The checked `clip_norm` / `clip_value` keys (at most one).
    fn clip(&self) -> Result<Clip> {
        Ok(match (self.clip_norm, self.clip_value) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "clip_value",
                    self.clip_value.unwrap_or_default(),
                    "give clip_norm or clip_value, not both",
                ));
            }
            (Some(v), None) => {
                positive("clip_norm", v)?;
                Clip::Norm(v)
            }
            (None, Some(v)) => {
                positive("clip_value", v)?;
                Clip::Value(v)
            }
            (None, None) => Clip::None,
        })
    }

    /// The checked `residual*` and `norm*` keys.
    pub fn arch(&self) -> Result<Arch> {
        let (norm, norm_position) = (self.norm.kind(), self.norm_position);
        if !self.residual_scale.is_finite() {
            return Err(Error::invalid("residual_scale", self.residual_scale, "must be finite"));
        }
        if !(1..=2).contains(&self.residual_block) {
            return Err(Error::invalid(
                "residual_block",
                self.residual_block,
                "must be 1 or 2 (hidden layers per block)",
            ));
        }
        let residual = self.residual.then_some(Residual { block: self.residual_block, scale: self.residual_scale });
        Ok(Arch { residual, norm, norm_position })
    }

    /// The checked recurrent keys: `None` for an MLP (and then none of them may be given), else
    /// the network, with the MLP's keys that cannot apply refused.
    fn recurrent(&self, data: &DataSpec) -> Result<Option<RecurrentSpec>> {
        let Some(cell) = self.cell.cell() else {
            if data.is_sequence_task() {
                return Err(Error::invalid(
                    "data",
                    &self.data,
                    "is a sequence task for recurrent networks; add --cell rnn_tanh, rnn_relu, lstm or gru",
                ));
            }
            let name = |v: Option<clap::builder::PossibleValue>| v.map(|p| p.get_name().to_string());
            let given = [
                ("num_layers", self.num_layers.map(|v| v.to_string())),
                ("seq_len", self.seq_len.map(|v| v.to_string())),
                ("bptt", self.bptt.map(|v| v.to_string())),
                ("head", name(self.head.and_then(|v| clap::ValueEnum::to_possible_value(&v)))),
                ("recurrent_init", name(self.recurrent_init.and_then(|v| clap::ValueEnum::to_possible_value(&v)))),
                ("gate_bias", name(self.gate_bias.and_then(|v| clap::ValueEnum::to_possible_value(&v)))),
                ("forget_bias", self.forget_bias.map(|v| v.to_string())),
            ];
            if let Some((key, Some(value))) = given.iter().find(|(_, g)| g.is_some()) {
                return Err(Error::invalid(
                    *key,
                    value,
                    "applies to recurrent networks only; add --cell rnn_tanh, rnn_relu, lstm or gru",
                ));
            }
            return Ok(None);
        };
        self.refuse_mlp_keys()?;
        let steps = data.steps().ok_or_else(|| {
            Error::invalid("data", &self.data, "has no time axis; a recurrent cell reads adding, copy or mnist:DIR")
        })?;
        if self.seq_len.is_some() && !data.is_sequence_task() {
            return Err(Error::invalid(
                "seq_len",
                self.seq_len.unwrap_or(0),
                "applies to adding and copy (mnist is 28 steps)",
            ));
        }
        let num_layers = self.num_layers.unwrap_or(1);
        if num_layers == 0 || num_layers > 100 {
            return Err(Error::invalid("num_layers", num_layers, "must be between 1 and 100"));
        }
        if let Some(k) = self.bptt
            && (k == 0 || k >= steps)
        {
            return Err(Error::invalid(
                "bptt",
                k,
                format!("must be between 1 and {} (the sequence has {steps} steps)", steps - 1),
            ));
        }
        let every = matches!(data, DataSpec::Copy(_));
        let head = match (self.head, every) {
            (None | Some(HeadKind::Every), true) => Head::EveryStep,
            (None | Some(HeadKind::Last), false) => Head::Last,
            (Some(h), _) => {
                let why = if every {
                    "the copy task has a target at every step"
                } else {
                    "this data has one target per sequence"
                };
                return Err(Error::invalid("head", format!("{h:?}").to_lowercase(), format!("{why}; drop --head")));
            }
        };
        let hidden_init = match self.recurrent_init.unwrap_or(RecurrentInit::Pytorch) {
            RecurrentInit::Pytorch => HiddenInit::Pytorch,
            RecurrentInit::Orthogonal => HiddenInit::Orthogonal,
            RecurrentInit::Identity => HiddenInit::Identity,
        };
        if self.forget_bias.is_some() && self.gate_bias != Some(GateBiasKind::Forget) {
            return Err(Error::invalid("forget_bias", self.forget_bias.unwrap_or(0.0), "needs --gate-bias forget"));
        }
        let gate_bias = match self.gate_bias.unwrap_or(GateBiasKind::Default) {
            GateBiasKind::Default => GateBias::Default,
            GateBiasKind::Forget => GateBias::Forget(self.forget_bias.unwrap_or(1.0)),
            GateBiasKind::Chrono => GateBias::Chrono(steps),
        };
        let spec = RecurrentSpec { cell, num_layers, steps, head, hidden_init, gate_bias, bptt: self.bptt };
        // the library's own checks (gate biases for the LSTM only, chrono's T_max, finite b_f)
        crate::nn::recurrent::RecurrentConfig {
            gate_bias,
            ..crate::nn::recurrent::RecurrentConfig::new(cell, 1, 1, 1, 1)
        }
        .validate()?;
        Ok(Some(spec))
    }

    /// With a recurrent cell, the MLP's architecture keys must keep their defaults.
    fn refuse_mlp_keys(&self) -> Result<()> {
        let d = Config::default();
        let conflicts = [
            (
                "depth",
                (self.depth != d.depth).then(|| self.depth.to_string()),
                "a recurrent net's layers are --num-layers",
            ),
            (
                "activation",
                (self.activation != d.activation).then(|| self.activation.name()),
                "the cell fixes its nonlinearity (rnn_tanh, rnn_relu)",
            ),
            ("init", (self.init != d.init).then(|| self.init.name()), "a recurrent net's init is --recurrent-init"),
            ("sigma_w2", (self.sigma_w2 != d.sigma_w2).then(|| self.sigma_w2.to_string()), "it is the MLP init's"),
            ("sigma_b2", (self.sigma_b2 != d.sigma_b2).then(|| self.sigma_b2.to_string()), "it is the MLP init's"),
            ("residual", self.residual.then(|| "true".to_string()), "residual blocks belong to the MLP"),
            ("norm", (self.norm != d.norm).then(|| self.norm.name()), "norm layers belong to the MLP"),
        ];
        match conflicts.iter().find(|(_, v, _)| v.is_some()) {
            Some((key, Some(v), why)) => {
                Err(Error::invalid(*key, v, format!("cannot apply with --cell: {why}; drop it")))
            }
            _ => Ok(()),
        }
    }

    /// The config with every default made explicit, as saved beside a run.
    pub fn resolved(&self, spec: &RunSpec) -> Config {
        let mut c = self.clone();
        c.lr = Some(spec.lr);
        c.weight_decay = Some(match spec.optimizer {
            Optimizer::Sgd(s) => s.weight_decay,
            Optimizer::Adam(a) => a.weight_decay,
        });
        c.threads = spec.threads;
        c
    }

    /// TOML text of this config.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("gradscope internal error: config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Named;

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_size("2G").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        for bad in ["", "2X", "-1G", "0", "lots"] {
            assert!(parse_size(bad).unwrap_err().to_string().contains("max_memory"), "{bad}");
        }
    }

    #[test]
    fn defaults_resolve_and_round_trip() {
        let c = Config::default();
        let spec = c.resolve().unwrap();
        let r = c.resolved(&spec);
        assert_eq!(Config::from_toml(&r.to_toml(), "test").unwrap(), r);
        assert_eq!(spec.lr, 0.01);
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_toml("dept = 3", "f.toml").unwrap_err().to_string();
        assert!(e.contains("did you mean 'depth'"), "{e}");
        let e = Config::from_toml("depth = \"x\"", "f.toml").unwrap_err().to_string();
        assert!(e.contains("invalid"), "{e}");
        let c = Config { lr: Some(-1.0), ..Config::default() };
        assert!(c.resolve().unwrap_err().to_string().contains("lr"));
        let e = Config::from_toml("activation = \"rleu\"", "f.toml").unwrap_err().to_string();
        assert!(e.contains("unknown activation 'rleu' (did you mean 'relu'?); valid: identity, sigmoid, tanh"), "{e}");
        let c = Config { batch_size: 0, ..Config::default() };
        assert!(c.resolve().unwrap_err().to_string().contains("batch_size"));
    }

    #[test]
    fn typed_values_keep_their_names_and_messages() {
        assert!(Config::default().to_toml().contains("on_nonfinite = \"stop\"\n"));
        let c = Config::from_toml("on_nonfinite = \"skip\"", "f.toml").unwrap();
        assert_eq!(c.on_nonfinite, OnNonFinite::Skip);
        assert_eq!(OnNonFinite::names(), ["stop", "skip"]);
        let e = Config::from_toml("on_nonfinite = \"skp\"", "f.toml").unwrap_err().to_string();
        assert!(e.contains("unknown on_nonfinite 'skp' (did you mean 'skip'?); valid: stop, skip"), "{e}");
        let e = Config::from_toml("on_nonfinite = 3", "f.toml").unwrap_err().to_string();
        assert!(e.contains("on_nonfinite"), "{e}");
    }

    /// The keys, the defaults and the accepted names all come from the one declaration, and
    /// serde (config files) agrees with clap (flags) on every name.
    #[test]
    fn keys_defaults_and_names_are_derived_from_the_declaration() {
        let c = Config::default();
        assert_eq!((c.depth, c.width, c.eps, c.lr, c.norm), (2, 64, 1e-8, None, NormChoice::None));
        assert_eq!(CONFIG_KEYS.len(), 46);
        assert_eq!(CONFIG_KEYS[..3], ["data", "target", "test_fraction"]);
        // every key is a TOML key: the defaults serialise to keys of the list, and each key
        // alone deserialises
        let written = toml::Table::try_from(&c).unwrap();
        assert!(written.keys().all(|k| CONFIG_KEYS.contains(&k.as_str())));
        // left out: the 6 optional keys, the 4 data keys of issue 13 and the 8 recurrent keys
        // (absent from an MLP's config.toml, so that its bytes stay as they were)
        assert_eq!(written.len(), CONFIG_KEYS.len() - 18, "only the 18 optional keys are left out");
        for key in CONFIG_KEYS.iter() {
            let arg = Config::args().find(|a| a.get_id() == *key).unwrap();
            assert_eq!(arg.get_long(), Some(key.replace('_', "-").as_str()));
            if !written.get(*key).is_some_and(toml::Value::is_str) {
                continue; // not a name
            }
            for name in arg.get_possible_values() {
                // each name clap accepts is read by serde and written back the same
                let text = format!("{key} = \"{}\"\n", name.get_name());
                assert!(Config::from_toml(&text, "t").unwrap().to_toml().contains(&text), "{text}");
            }
        }
        let f = Config::from_flags(["--optimizer=adamw", "--norm=batch", "--activation", "leaky_relu"]).unwrap();
        assert_eq!(
            (f.optimizer, f.norm, f.activation),
            (OptimizerKind::AdamW, NormChoice::Batch, ActivationKind::LeakyRelu)
        );
        assert!(f.to_toml().contains("optimizer = \"adamw\"\n"), "{}", f.to_toml());
        let e = Config::from_toml("norm = \"btach\"", "f.toml").unwrap_err().to_string();
        assert!(e.contains("unknown norm 'btach' (did you mean 'batch'?); valid: none, batch, layer"), "{e}");
        let e = Config::from_toml("optimizer = \"adam_w\"", "f.toml").unwrap_err().to_string();
        assert!(e.contains("did you mean 'adamw'"), "{e}");
    }
}
