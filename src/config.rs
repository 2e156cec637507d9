//! The run configuration: one TOML table whose keys are also the command-line flags.
//!
//! [`Config`] is what users write (plain names and numbers); [`Config::resolve`] checks every
//! value and turns it into a [`RunSpec`] of typed parts. The resolved config (defaults filled in,
//! `threads` made concrete) is saved beside every run, so passing it back repeats the run.

use crate::data::DataSpec;
use crate::error::{Error, Result, closest};
use crate::nn::recurrent::{Cell, GateBias, Head, HiddenInit};
use crate::nn::{Activation, Arch, Init, Loss, NormKind, NormPosition, Residual};
use crate::optim::{Adam, Clip, Optimizer, OptimizerKind, Sgd};
use serde::{Deserialize, Serialize};

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

/// Every key of a run's config, as written in `config.toml` (flags spell them in kebab case).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `regression`, `spirals`, `mnist:DIR` or `csv:FILE`.
    pub data: String,
    /// The CSV column to predict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Fraction of CSV rows held out for testing.
    pub test_fraction: f64,
    /// Number of hidden layers.
    pub depth: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden activation (snake case).
    pub activation: String,
    /// leaky_relu's slope for negative inputs.
    pub negative_slope: f64,
    /// Initialisation scheme.
    pub init: String,
    /// σ_w² of the `gaussian` and `orthogonal` inits.
    pub sigma_w2: f64,
    /// σ_b² of the `gaussian` and `orthogonal` inits.
    pub sigma_b2: f64,
    /// `mse`, `sse` or `cross_entropy`.
    pub loss: String,
    /// `sgd`, `adam` or `adamw`.
    pub optimizer: String,
    /// Learning rate (default: 0.01 for sgd, 0.001 for adam and adamw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// SGD momentum μ.
    pub momentum: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay λ (default: 0, or 0.01 for adamw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Adam's β₁.
    pub beta1: f64,
    /// Adam's β₂.
    pub beta2: f64,
    /// Adam's ε.
    pub eps: f64,
    /// Examples per mini-batch.
    pub batch_size: usize,
    /// Passes over the training set.
    pub epochs: u64,
    /// A step budget that overrides `epochs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Seed of the data, the initialisation and the batch order.
    pub seed: u64,
    /// Probe every N steps (0: only at the first and the last step).
    pub probe_every: u64,
    /// Threads (0: all cores).
    pub threads: usize,
    /// Residual connections: blocks of `residual_block` hidden layers, h ← P(h) + α·F(h).
    pub residual: bool,
    /// α, the scale of the residual branch.
    pub residual_scale: f64,
    /// Hidden layers per residual block (1 or 2).
    pub residual_block: usize,
    /// `none`, `batch` (BatchNorm1d) or `layer` (LayerNorm) in every hidden layer.
    pub norm: String,
    /// `pre` (norm before φ) or `post` (after φ).
    pub norm_position: String,
    /// Clip the gradients' total L2 norm to this (torch.nn.utils.clip_grad_norm_).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Clamp every gradient entry to [−v, v] (torch.nn.utils.clip_grad_value_).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Write checkpoint.safetensors every N steps (0: only when interrupted).
    pub checkpoint_every: u64,
    /// `stop` (end the run, diverged) or `skip` (skip the update) at a NaN or infinity.
    pub on_nonfinite: OnNonFinite,
    // ---- recurrent networks (issue 14); absent from an MLP's config.toml ----
    /// `none` (an MLP), `rnn_tanh`, `rnn_relu`, `lstm` or `gru`; `width` is the hidden size H.
    #[serde(skip_serializing_if = "CellKind::is_none")]
    pub cell: CellKind,
    /// Stacked recurrent layers (PyTorch's `num_layers`; default 1). `depth` is the MLP's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<usize>,
    /// T: the adding problem's steps, the copy task's blanks (T + 20 steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// Truncated BPTT: the gradient flows back at most K steps (`h.detach()` every K steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bptt: Option<usize>,
    /// `last` or `every` (default: `every` for the copy task, else `last`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadKind>,
    /// W_hh's init: `pytorch` (default), `orthogonal`, `identity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrent_init: Option<RecurrentInit>,
    /// The LSTM's gate biases: `default`, `forget` (b_f = `forget_bias`), `chrono`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_bias: Option<GateBiasKind>,
    /// b_f with `gate_bias = "forget"` (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forget_bias: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data: "regression".into(),
            target: None,
            test_fraction: 0.2,
            depth: 2,
            width: 64,
            activation: "sigmoid".into(),
            negative_slope: crate::nn::activation::DEFAULT_NEGATIVE_SLOPE,
            init: "pytorch".into(),
            sigma_w2: 1.0,
            sigma_b2: 0.0,
            loss: "mse".into(),
            optimizer: "sgd".into(),
            lr: None,
            momentum: 0.0,
            nesterov: false,
            weight_decay: None,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            batch_size: 64,
            epochs: 10,
            steps: None,
            seed: 0,
            probe_every: 100,
            threads: 0,
            residual: false,
            residual_scale: 1.0,
            residual_block: 2,
            norm: "none".into(),
            norm_position: "pre".into(),
            clip_norm: None,
            clip_value: None,
            checkpoint_every: 0,
            on_nonfinite: OnNonFinite::Stop,
            cell: CellKind::None,
            num_layers: None,
            seq_len: None,
            bptt: None,
            head: None,
            recurrent_init: None,
            gate_bias: None,
            forget_bias: None,
        }
    }
}

/// Every config key.
pub const CONFIG_KEYS: [&str; 42] = [
    "data",
    "target",
    "test_fraction",
    "depth",
    "width",
    "activation",
    "negative_slope",
    "init",
    "sigma_w2",
    "sigma_b2",
    "loss",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "beta1",
    "beta2",
    "eps",
    "batch_size",
    "epochs",
    "steps",
    "seed",
    "probe_every",
    "threads",
    "residual",
    "residual_scale",
    "residual_block",
    "norm",
    "norm_position",
    "clip_norm",
    "clip_value",
    "checkpoint_every",
    "on_nonfinite",
    "cell",
    "num_layers",
    "seq_len",
    "bptt",
    "head",
    "recurrent_init",
    "gate_bias",
    "forget_bias",
];

/// The keys whose value is a name from a typed enum, with the names it accepts (so that a bad
/// name gets gradscope's message, with the closest valid one, rather than serde's).
fn typed_choices(key: &str) -> Option<(&'static str, Vec<String>)> {
    match key {
        "on_nonfinite" => Some(("on_nonfinite", choices::<OnNonFinite>())),
        "cell" => Some(("cell", choices::<CellKind>())),
        "head" => Some(("head", choices::<HeadKind>())),
        "recurrent_init" => Some(("recurrent_init", choices::<RecurrentInit>())),
        "gate_bias" => Some(("gate_bias", choices::<GateBiasKind>())),
        _ => None,
    }
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
        let activation = Activation::from_name(&self.activation, self.negative_slope)?;
        let init = Init::from_name(&self.init)?;
        let loss = Loss::from_name(&self.loss)?;
        let kind = OptimizerKind::from_name(&self.optimizer)?;
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
        let norm = NormKind::from_name(&self.norm)?;
        let norm_position = NormPosition::from_name(&self.norm_position)?;
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
                (self.activation != d.activation).then(|| self.activation.clone()),
                "the cell fixes its nonlinearity (rnn_tanh, rnn_relu)",
            ),
            ("init", (self.init != d.init).then(|| self.init.clone()), "a recurrent net's init is --recurrent-init"),
            ("sigma_w2", (self.sigma_w2 != d.sigma_w2).then(|| self.sigma_w2.to_string()), "it is the MLP init's"),
            ("sigma_b2", (self.sigma_b2 != d.sigma_b2).then(|| self.sigma_b2.to_string()), "it is the MLP init's"),
            ("residual", self.residual.then(|| "true".to_string()), "residual blocks belong to the MLP"),
            ("norm", (self.norm != d.norm).then(|| self.norm.clone()), "norm layers belong to the MLP"),
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
        let c = Config { activation: "rleu".into(), ..Config::default() };
        assert!(c.resolve().unwrap_err().to_string().contains("did you mean 'relu'"));
        let c = Config { batch_size: 0, ..Config::default() };
        assert!(c.resolve().unwrap_err().to_string().contains("batch_size"));
    }

    #[test]
    fn typed_values_keep_their_names_and_messages() {
        assert!(Config::default().to_toml().contains("on_nonfinite = \"stop\"\n"));
        let c = Config::from_toml("on_nonfinite = \"skip\"", "f.toml").unwrap();
        assert_eq!(c.on_nonfinite, OnNonFinite::Skip);
        assert_eq!(choices::<OnNonFinite>(), ["stop", "skip"]);
        let e = Config::from_toml("on_nonfinite = \"skp\"", "f.toml").unwrap_err().to_string();
        assert!(e.contains("unknown on_nonfinite 'skp' (did you mean 'skip'?); valid: stop, skip"), "{e}");
        let e = Config::from_toml("on_nonfinite = 3", "f.toml").unwrap_err().to_string();
        assert!(e.contains("on_nonfinite"), "{e}");
    }
}
