//! Network weights in safetensors.
//!
//! gradscope writes every tensor of the network's one description ([`Network::visit`]) under
//! its PyTorch name: `layers.{i}.weight` (`[out, in]`) and `layers.{i}.bias` (`[out]`), i the
//! 0-based index of the linear layer, output layer last; with remedies `norms.{i}.weight`,
//! `norms.{i}.bias` (γ, β of hidden layer i's BatchNorm1d or LayerNorm), for batch norm also
//! `norms.{i}.running_mean`, `norms.{i}.running_var` and `norms.{i}.num_batches_tracked`
//! (0-dimensional, int64 as in PyTorch), and `shortcuts.{i}.weight`, `shortcuts.{i}.bias`, the
//! projection of the residual block starting at hidden layer i. That is the `state_dict` of a
//! PyTorch module with `layers = nn.ModuleList([nn.Linear…])`, `norms = nn.ModuleList(…)` and
//! `shortcuts = nn.ModuleDict({"0": nn.Linear(inputs, width)})` (docs/remedies.md). The
//! activation and the architecture (residual blocks, norm kind and position) are in the
//! metadata; for a PyTorch file, give them as flags.
//!
//! Reading ([`parse`], then [`LoadedWeights::to_mlp_with`]) finds the linear layers' sizes in the
//! file (`layers.N.weight`, or the `N.weight` of an `nn.Sequential`, possibly under a common
//! prefix such as `net.`, taken in the order of their numeric index), builds the network of
//! those sizes and the architecture asked for, and then takes every tensor that network
//! declares from the file by name ([`crate::io::tensors::fill`]): a missing tensor, a wrong
//! shape or dtype, and a tensor the network does not have are errors naming it.

use crate::error::{Error, Named, Result};
use crate::io::tensors::{self, Accept, Tensor, TensorMap};
use crate::nn::{
    Activation, ActivationKind, Arch, Init, LAYERS, Mlp, MlpConfig, Name, Network, NormChoice, NormPosition, Residual,
    Scalar,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Metadata key holding the activation name.
pub const META_ACTIVATION: &str = "gradscope.activation";
/// Metadata key holding leaky_relu's negative slope.
pub const META_NEGATIVE_SLOPE: &str = "gradscope.negative_slope";
/// Metadata key: `none`, or the residual blocks as `BLOCK:SCALE` (e.g. `2:1`).
pub const META_RESIDUAL: &str = "gradscope.residual";
/// Metadata key: `none`, `batch` or `layer`.
pub const META_NORM: &str = "gradscope.norm";
/// Metadata key: `pre` or `post`.
pub const META_NORM_POSITION: &str = "gradscope.norm_position";

/// What to check when a file's norm or shortcut tensors do not fit the network built.
const ARCH_HINT: &str = "the architecture comes from the file's metadata or from --norm, --norm-position, --residual and \
     --residual-block: give the ones the weights were trained with";

/// A weights file, read: its tensors, the linear layers found among them, and the metadata.
#[derive(Clone, Debug)]
pub struct LoadedWeights {
    /// Every tensor of the file.
    pub tensors: Vec<Tensor>,
    /// Per linear layer: the file's names for (weight, bias).
    pub names: Vec<(String, String)>,
    /// `[inputs, hidden…, outputs]`, from the linear layers' weights.
    sizes: Vec<usize>,
    /// What the file puts before `norms.…` and `shortcuts.…` (`net.` for `net.layers.0.weight`).
    prefix: String,
    /// The activation recorded in the metadata, if any.
    pub activation: Option<Activation>,
    /// The dtype of the first linear layer's weight.
    pub dtype: Dtype,
    /// The architecture recorded in the metadata, if any.
    pub arch: Option<Arch>,
}

impl LoadedWeights {
    /// `[inputs, hidden…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        self.sizes.clone()
    }

    /// The file's name of the network's tensor `name`: the linear layers under the names found
    /// in the file, every other tensor under its own name after the file's prefix.
    pub fn file_name(&self, name: Name) -> String {
        match (name.group, self.names.get(name.index)) {
            (LAYERS, Some((w, _))) if name.leaf == "weight" => w.clone(),
            (LAYERS, Some((_, b))) if name.leaf == "bias" => b.clone(),
            _ => format!("{}{name}", self.prefix),
        }
    }

    /// Builds the plain network in float type `F` (**panics** if the file does not hold exactly
    /// a plain network's tensors: use [`LoadedWeights::to_mlp_with`]).
    pub fn to_mlp<F: Scalar>(&self, activation: Activation) -> Mlp<F> {
        self.to_mlp_with(activation, Arch::plain(), Path::new("weights"))
            .expect("gradscope internal error: a plain network")
    }

    /// Builds the network of these sizes and architecture `arch` in float type `F` and fills
    /// every tensor it declares from the file, which must hold exactly those tensors.
    pub fn to_mlp_with<F: Scalar>(&self, activation: Activation, arch: Arch, path: &Path) -> Result<Mlp<F>> {
        let bad = |msg: String| Error::Weights { path: path.into(), msg };
        let cfg = MlpConfig {
            sizes: self.sizes.clone(),
            activation,
            init: Init::Pytorch,
            sigma_w2: 1.0,
            sigma_b2: 0.0,
            arch,
        };
        // the values drawn are all overwritten below
        let mut mlp: Mlp<F> = cfg.init(&mut ChaCha8Rng::seed_from_u64(0));
        let what = format!("this network ({})", describe(&self.sizes, &arch));
        let hint = match self.arch {
            Some(recorded) if recorded != arch => {
                let r = remedies(&recorded);
                let r = if r.is_empty() { "none".to_string() } else { r.join(", ") };
                format!("{ARCH_HINT} (the file's metadata records remedies: {r})")
            }
            _ => ARCH_HINT.to_string(),
        };
        let mut map = TensorMap::new(&self.tensors);
        tensors::fill(&mut mlp, &mut map, &|n| self.file_name(n), Accept::Finite, &what)
            .map_err(|e| if e.name.group == LAYERS { bad(e.msg) } else { bad(format!("{}; {ARCH_HINT}", e.msg)) })?;
        match map.leftover(&format!("{what} has no such tensor; {hint}")) {
            Some(msg) => Err(bad(msg)),
            None => Ok(mlp),
        }
    }
}

/// A network in words: `16 → 4 → 1, batch norm (pre), residual blocks of 1 (α 1)`.
fn describe(sizes: &[usize], arch: &Arch) -> String {
    let sizes = sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(" → ");
    std::iter::once(sizes).chain(remedies(arch)).collect::<Vec<_>>().join(", ")
}

/// The remedies of `arch` in words (none for the plain network).
fn remedies(arch: &Arch) -> Vec<String> {
    let norm = arch.norm.map(|k| format!("{} norm ({})", NormChoice::from(Some(k)).name(), arch.norm_position.name()));
    let residual = arch.residual.map(|r| format!("residual blocks of {} (α {})", r.block, r.scale));
    norm.into_iter().chain(residual).collect()
}

/// The architecture as metadata.
fn arch_metadata(arch: &Arch, m: &mut HashMap<String, String>) {
    let res = arch.residual.map_or("none".to_string(), |r| format!("{}:{}", r.block, r.scale));
    m.insert(META_RESIDUAL.into(), res);
    m.insert(META_NORM.into(), NormChoice::from(arch.norm).name());
    m.insert(META_NORM_POSITION.into(), arch.norm_position.name());
}

/// The architecture from metadata (None when the file records none).
fn arch_from_metadata(meta: &HashMap<String, String>) -> std::result::Result<Option<Arch>, String> {
    let Some(res) = meta.get(META_RESIDUAL) else { return Ok(None) };
    let residual = if res == "none" {
        None
    } else {
        let (b, s) = res.split_once(':').ok_or_else(|| format!("{META_RESIDUAL} '{res}' is not BLOCK:SCALE"))?;
        let block =
            b.parse().ok().filter(|&b: &usize| b >= 1).ok_or_else(|| format!("{META_RESIDUAL} '{res}': bad block"))?;
        let scale = s.parse().map_err(|_| format!("{META_RESIDUAL} '{res}': bad scale"))?;
        Some(Residual { block, scale })
    };
    let norm = NormChoice::parse("norm", meta.get(META_NORM).map_or("none", String::as_str))
        .map_err(|e| e.to_string())?
        .kind();
    let norm_position =
        NormPosition::parse("norm_position", meta.get(META_NORM_POSITION).map_or("pre", String::as_str))
            .map_err(|e| e.to_string())?;
    Ok(Some(Arch { residual, norm, norm_position }))
}

/// Serialises named tensors (`[name, shape, values]`) with metadata, in F's dtype.
pub fn serialize<F: Scalar>(tensors: Vec<(String, Vec<usize>, Vec<u8>)>, metadata: HashMap<String, String>) -> Vec<u8> {
    let dtype = if F::NAME == "f32" { Dtype::F32 } else { Dtype::F64 };
    serialize_typed(tensors.into_iter().map(|(n, s, d)| (n, s, dtype, d)).collect(), metadata)
}

/// Serialises named tensors of any dtype (`[name, shape, dtype, bytes]`) with metadata.
pub fn serialize_typed(
    tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)>,
    metadata: HashMap<String, String>,
) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, shape, dtype, data)| {
            (n.clone(), TensorView::new(*dtype, shape.clone(), data).expect("gradscope internal error: tensor size"))
        })
        .collect();
    let bytes =
        safetensors::serialize(views, Some(metadata)).expect("gradscope internal error: safetensors serialisation");
    sorted_header(bytes)
}

/// Rewrites the JSON header with its keys sorted (same length, same data offsets), so that the
/// same tensors and metadata always give the same bytes: the metadata is a `HashMap`, whose
/// order changes from one process to the next.
fn sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = &bytes[8..8 + n];
    let text = std::str::from_utf8(header).expect("gradscope internal error: safetensors header is UTF-8");
    let trimmed = text.trim_end_matches(' ');
    let value: serde_json::Value = serde_json::from_str(trimmed).expect("gradscope internal error: header is JSON");
    let sorted = serde_json::to_string(&value).expect("gradscope internal error: header serialises");
    if sorted.len() == trimmed.len() {
        bytes[8..8 + sorted.len()].copy_from_slice(sorted.as_bytes());
    }
    bytes
}

/// The bytes of `weights.safetensors` for a network: every tensor of [`Network::visit`] in F's
/// dtype, but a count (`num_batches_tracked`) in int64, as PyTorch keeps it.
pub fn mlp_to_bytes<F: Scalar>(mlp: &Mlp<F>) -> Vec<u8> {
    let tensors = tensors::collect(mlp, &|n| n.to_string(), true);
    let mut meta = activation_metadata(mlp.activation);
    arch_metadata(&mlp.arch, &mut meta);
    serialize_typed(tensors.into_iter().map(|t| (t.name, t.shape, t.dtype, t.data)).collect(), meta)
}

/// The bytes of `grads.safetensors`: every parameter gradient in G's dtype, each under
/// `key(name)` (the names of the file the network was read from, or its own).
pub fn grads_to_bytes<F: Scalar, G: Scalar>(mlp: &Mlp<F>, key: &dyn Fn(Name) -> String) -> Vec<u8> {
    let mut out = Vec::new();
    mlp.visit(&mut |t| {
        if let Some(g) = t.grad {
            let g: Vec<G> = g.iter().map(|v| G::of(v.f64())).collect();
            out.push((key(t.name), t.shape.dims().to_vec(), tensors::float_bytes(&g)));
        }
    });
    serialize::<G>(out, activation_metadata(mlp.activation))
}

fn activation_metadata(a: Activation) -> HashMap<String, String> {
    let mut m = HashMap::from([(META_ACTIVATION.to_string(), a.name().to_string())]);
    if let Activation::LeakyRelu { negative_slope } = a {
        m.insert(META_NEGATIVE_SLOPE.into(), negative_slope.to_string());
    }
    m
}

/// Reads a safetensors file of an MLP's weights (see the module docs for the names accepted).
pub fn load(path: &Path) -> Result<LoadedWeights> {
    let bytes = std::fs::read(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
    parse(path, &bytes)
}

/// Per linear layer its names' stem and `[out, in]`; the prefix of the other tensors.
type LinearLayers = (Vec<(String, [usize; 2])>, String);

/// The linear layers of a file: per layer the stem of its names (`layers.3`, `net.6`) and its
/// weight's `[out, in]`, in index order; and the prefix before `norms.…`, `shortcuts.…`.
///
/// The layers are the tensors named `{P}{N}.weight` for one prefix P: the prefix that ends in
/// `layers.` when there is one (so `norms.N.weight` and `shortcuts.N.weight` are not taken for
/// linear layers), else the only prefix there is.
fn linear_layers(tensors: &[Tensor]) -> std::result::Result<LinearLayers, String> {
    let mut by_prefix: BTreeMap<&str, BTreeMap<u64, &Tensor>> = BTreeMap::new();
    for t in tensors {
        let Some(stem) = t.name.strip_suffix(".weight") else { continue };
        let (pre, idx) = stem.rfind('.').map_or(("", stem), |p| (&stem[..=p], &stem[p + 1..]));
        if let Ok(idx) = idx.parse::<u64>() {
            by_prefix.entry(pre).or_default().insert(idx, t);
        }
    }
    let layers_list = format!("{LAYERS}.");
    let lists: Vec<&str> =
        by_prefix.keys().copied().filter(|p| *p == layers_list || p.ends_with(&format!(".{layers_list}"))).collect();
    let pre = match (lists.as_slice(), by_prefix.len()) {
        ([one], _) => *one,
        ([], 1) => *by_prefix.keys().next().expect("one prefix"),
        ([], 0) => {
            return Err("holds no linear layer: no tensor is named like layers.N.weight or N.weight (an \
                        nn.Sequential index)"
                .into());
        }
        _ => {
            let all: Vec<String> = by_prefix.keys().map(|p| format!("'{p}N.weight'")).collect();
            return Err(format!(
                "its tensors do not share one prefix ({}); gradscope reads layers.N.weight (with norms.N.*, \
                 shortcuts.N.*) or one nn.Sequential's N.weight",
                all.join(", ")
            ));
        }
    };
    let mut out: Vec<(String, [usize; 2])> = Vec::new();
    for (idx, t) in &by_prefix[pre] {
        let [rows, cols] = t.shape[..] else {
            return Err(format!("'{}' must be 2-D [out, in]; it has shape {:?}", t.name, t.shape));
        };
        if let Some((_, [prev, _])) = out.last()
            && cols != *prev
        {
            return Err(format!("'{}' takes {cols} inputs but the layer before it gives {prev} outputs", t.name));
        }
        out.push((format!("{pre}{idx}"), [rows, cols]));
    }
    let prefix = pre.strip_suffix(&layers_list).unwrap_or(pre).to_string();
    Ok((out, prefix))
}

/// [`load`] from the file's bytes (`path` names it in messages; exposed for tests and fuzzing).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<LoadedWeights> {
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    let (tensors, meta) =
        tensors::read_safetensors(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    if tensors.is_empty() {
        return Err(bad("holds no tensors".into()));
    }
    let (layers, prefix) = linear_layers(&tensors).map_err(bad)?;
    let sizes = std::iter::once(layers[0].1[1]).chain(layers.iter().map(|(_, [out, _])| *out)).collect();
    let names: Vec<(String, String)> =
        layers.iter().map(|(s, _)| (format!("{s}.weight"), format!("{s}.bias"))).collect();
    let dtype = tensors.iter().find(|t| t.name == names[0].0).expect("found above").dtype;
    let activation = match meta.get(META_ACTIVATION) {
        Some(name) => {
            let slope = meta
                .get(META_NEGATIVE_SLOPE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(crate::nn::activation::DEFAULT_NEGATIVE_SLOPE);
            let kind = ActivationKind::parse("activation", name).map_err(|e| bad(format!("metadata: {e}")))?;
            Some(Activation::new(kind, slope))
        }
        None => None,
    };
    let arch = arch_from_metadata(&meta).map_err(|e| bad(format!("metadata: {e}")))?;
    Ok(LoadedWeights { tensors, names, sizes, prefix, activation, dtype, arch })
}
