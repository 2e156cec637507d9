//! The run configuration: one TOML table whose keys are also the command-line flags.
//!
//! [`Config`] is what users write (plain names and numbers); [`Config::resolve`] checks every
//! value and turns it into a [`RunSpec`] of typed parts. The resolved config (defaults filled in,
//! `threads` made concrete) is saved beside every run, so passing it back repeats the run.

use crate::data::DataSpec;
use crate::error::{Error, Result, closest};
use crate::nn::activation::DEFAULT_NEGATIVE_SLOPE;
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
        let data = DataSpec::parse(&self.data)?;
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
        assert_eq!(CONFIG_KEYS.len(), 34);
        assert_eq!(CONFIG_KEYS[..3], ["data", "target", "test_fraction"]);
        // every key is a TOML key: the defaults serialise to keys of the list, and each key
        // alone deserialises
        let written = toml::Table::try_from(&c).unwrap();
        assert!(written.keys().all(|k| CONFIG_KEYS.contains(&k.as_str())));
        assert_eq!(written.len(), CONFIG_KEYS.len() - 6, "only the 6 optional keys are left out");
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
