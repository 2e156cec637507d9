//! Network weights in safetensors.
//!
//! gradscope writes `layers.{i}.weight` (`[out, in]`) and `layers.{i}.bias` (`[out]`), i the
//! 0-based index of the linear layer, output layer last, with the activation in the file's
//! metadata. It reads those names and also the names PyTorch gives an `nn.Sequential` of Linear
//! and activation modules (`0.weight`, `0.bias`, `2.weight`, …, possibly under a common prefix
//! such as `net.`): the linear layers are taken in the order of their numeric index.
//!
//! Networks with remedies add, with PyTorch's names for the modules' tensors:
//! `norms.{i}.weight`, `norms.{i}.bias` (`[width]`, γ and β of hidden layer i's BatchNorm1d or
//! LayerNorm), for batch norm also `norms.{i}.running_mean`, `norms.{i}.running_var` (`[width]`)
//! and `norms.{i}.num_batches_tracked` (0-dimensional, int64 as in PyTorch), and
//! `shortcuts.{i}.weight` (`[out, in]`), `shortcuts.{i}.bias` (`[out]`), the projection of the
//! residual block starting at hidden layer i. That is the `state_dict` of a PyTorch module with
//! `layers = nn.ModuleList([nn.Linear…])`, `norms = nn.ModuleList([nn.BatchNorm1d…])` and
//! `shortcuts = nn.ModuleDict({"0": nn.Linear(inputs, width)})` (README, "Remedies"). The
//! architecture (residual blocks, norm kind and position) is in the metadata; for a PyTorch
//! file, give it as flags.

use crate::error::{Error, Named, Result};
use crate::nn::{
    Activation, ActivationKind, Arch, LAYERS, Linear, Mlp, Network, Norm, NormChoice, NormKind, NormPosition, Residual,
    Scalar, TensorKind,
};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
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

/// One norm layer's tensors as read (f64); the running estimates are empty for layer norm.
#[derive(Clone, Debug, Default)]
pub struct LoadedNorm {
    /// γ.
    pub weight: Array1<f64>,
    /// β.
    pub bias: Array1<f64>,
    /// Batch norm's running mean (empty when the file has none).
    pub running_mean: Array1<f64>,
    /// Batch norm's running variance (empty when the file has none).
    pub running_var: Array1<f64>,
    /// Batch norm's batch count (0 when the file has none).
    pub num_batches_tracked: f64,
}

/// Weights read from a file.
#[derive(Clone, Debug)]
pub struct LoadedWeights {
    /// Per linear layer: (weight `[out, in]`, bias `[out]`), in f64.
    pub layers: Vec<(Array2<f64>, Array1<f64>)>,
    /// Per linear layer: the file's names for (weight, bias).
    pub names: Vec<(String, String)>,
    /// The activation recorded in the metadata, if any.
    pub activation: Option<Activation>,
    /// The dtype of the file's tensors.
    pub dtype: Dtype,
    /// Norm layers by hidden-layer index (`norms.{i}.*`).
    pub norms: BTreeMap<usize, LoadedNorm>,
    /// Residual projections by the hidden layer their block starts at (`shortcuts.{i}.*`).
    pub shortcuts: BTreeMap<usize, (Array2<f64>, Array1<f64>)>,
    /// The architecture recorded in the metadata, if any.
    pub arch: Option<Arch>,
}

impl LoadedWeights {
    /// `[inputs, hidden…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].0.ncols()).chain(self.layers.iter().map(|(w, _)| w.nrows())).collect()
    }

    /// Builds the plain network in float type `F` (**panics** if the file holds norm layers or
    /// projections: use [`LoadedWeights::to_mlp_with`]).
    pub fn to_mlp<F: Scalar>(&self, activation: Activation) -> Mlp<F> {
        self.to_mlp_with(activation, Arch::plain(), Path::new("weights"))
            .expect("gradscope internal error: a plain network")
    }

    /// Builds the network of architecture `arch` in float type `F`, checking that the file's
    /// norm and shortcut tensors are exactly those `arch` needs.
    pub fn to_mlp_with<F: Scalar>(&self, activation: Activation, arch: Arch, path: &Path) -> Result<Mlp<F>> {
        let bad = |msg: String| Error::Weights { path: path.into(), msg };
        let linear = |(w, b): &(Array2<f64>, Array1<f64>)| Linear::new(w.mapv(F::of), b.mapv(F::of));
        let layers: Vec<Linear<F>> = self.layers.iter().map(linear).collect();
        let sizes = self.sizes();
        let depth = sizes.len() - 2;
        let norms = match arch.norm {
            None => {
                if let Some(i) = self.norms.keys().next() {
                    return Err(bad(format!(
                        "holds norms.{i}.* but the network has no norm layers; pass --norm batch or layer"
                    )));
                }
                Vec::new()
            }
            Some(kind) => (0..depth)
                .map(|l| {
                    let t = self.norms.get(&l).ok_or_else(|| {
                        bad(format!(
                            "--norm {} needs norms.{l}.weight and norms.{l}.bias",
                            NormChoice::from(Some(kind)).name()
                        ))
                    })?;
                    let d = sizes[l + 1];
                    if t.weight.len() != d || t.bias.len() != d {
                        return Err(bad(format!(
                            "norms.{l}.weight and .bias must have {d} entries (the layer's width)"
                        )));
                    }
                    let mut n = Norm::<F>::new(kind, d);
                    n.weight = t.weight.mapv(F::of);
                    n.bias = t.bias.mapv(F::of);
                    match kind {
                        NormKind::Batch => {
                            if t.running_mean.len() != d || t.running_var.len() != d {
                                return Err(bad(format!(
                                    "batch norm needs norms.{l}.running_mean and running_var of {d} entries"
                                )));
                            }
                            n.running_mean = t.running_mean.mapv(F::of);
                            n.running_var = t.running_var.mapv(F::of);
                            n.num_batches_tracked[0] = F::of(t.num_batches_tracked);
                        }
                        NormKind::Layer => {
                            if !t.running_mean.is_empty() {
                                return Err(bad(format!(
                                    "norms.{l} has running estimates (batch norm) but --norm is layer"
                                )));
                            }
                        }
                    }
                    Ok(n)
                })
                .collect::<Result<Vec<_>>>()?,
        };
        if self.norms.keys().any(|&i| i >= depth) {
            return Err(bad(format!("holds norms for layers beyond the {depth} hidden layers")));
        }
        let want = arch.shortcut_at(&sizes);
        let mut shortcuts = Vec::new();
        for (l, &need) in want.iter().enumerate() {
            match (need, self.shortcuts.get(&l)) {
                (true, Some(p)) => {
                    let (s, e) = arch.block_of(l, depth).expect("a block starts here");
                    if p.0.dim() != (sizes[e + 1], sizes[s]) || p.1.len() != sizes[e + 1] {
                        return Err(bad(format!("shortcuts.{l}.weight must be [{}, {}]", sizes[e + 1], sizes[s])));
                    }
                    shortcuts.push(Some(linear(p)));
                }
                (true, None) => {
                    return Err(bad(format!(
                        "the residual block at layer {l} changes width and needs shortcuts.{l}.weight and .bias"
                    )));
                }
                (false, _) => shortcuts.push(None),
            }
        }
        if let Some(i) = self.shortcuts.keys().find(|&&i| !want.get(i).copied().unwrap_or(false)) {
            return Err(bad(format!(
                "holds shortcuts.{i}.* which this architecture has no use for (check --residual, --residual-block)"
            )));
        }
        Ok(Mlp::with_arch(layers, activation, arch, norms, shortcuts))
    }
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
        let block = b.parse().map_err(|_| format!("{META_RESIDUAL} '{res}': bad block"))?;
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

fn to_bytes<F: Scalar>(values: impl Iterator<Item = F>) -> Vec<u8> {
    if F::NAME == "f32" {
        values.flat_map(|v| (v.f64() as f32).to_le_bytes()).collect()
    } else {
        values.flat_map(|v| v.f64().to_le_bytes()).collect()
    }
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

/// The bytes of `weights.safetensors` for a network: every tensor of [`Network::state`] in F's dtype,
/// but `num_batches_tracked` in int64, as PyTorch keeps it.
pub fn mlp_to_bytes<F: Scalar>(mlp: &Mlp<F>) -> Vec<u8> {
    let dtype = if F::NAME == "f32" { Dtype::F32 } else { Dtype::F64 };
    let tensors = mlp
        .state()
        .into_iter()
        .map(|(name, shape, values)| {
            if name.ends_with(".num_batches_tracked") {
                let bytes = values.iter().flat_map(|v| (v.f64().round() as i64).to_le_bytes()).collect();
                (name, shape, Dtype::I64, bytes)
            } else {
                (name, shape, dtype, to_bytes(values.iter().copied()))
            }
        })
        .collect();
    let mut meta = activation_metadata(mlp.activation);
    arch_metadata(&mlp.arch, &mut meta);
    serialize_typed(tensors, meta)
}

/// The bytes of `grads.safetensors`: every parameter gradient, the linear layers' under the
/// given names, the norm layers' and projections' under theirs.
pub fn grads_to_bytes<F: Scalar, G: Scalar>(mlp: &Mlp<F>, names: &[(String, String)]) -> Vec<u8> {
    let mut tensors = Vec::new();
    mlp.visit(&mut |t| {
        let Some(g) = t.grad else { return };
        let name = match (t.name.group, t.kind) {
            (LAYERS, TensorKind::Weight) => names[t.name.index].0.clone(),
            (LAYERS, TensorKind::Bias) => names[t.name.index].1.clone(),
            _ => t.name.to_string(),
        };
        tensors.push((name, t.shape.dims().to_vec(), to_bytes(g.iter().map(|v| G::of(v.f64())))));
    });
    serialize::<G>(tensors, activation_metadata(mlp.activation))
}

fn activation_metadata(a: Activation) -> HashMap<String, String> {
    let mut m = HashMap::from([(META_ACTIVATION.to_string(), a.name().to_string())]);
    if let Activation::LeakyRelu { negative_slope } = a {
        m.insert(META_NEGATIVE_SLOPE.into(), negative_slope.to_string());
    }
    m
}

/// `(group, index, field)` of a norm-layer or projection tensor name, under any prefix.
fn remedy_name(name: &str) -> Option<(&'static str, usize, &str)> {
    let (stem, field) = name.rsplit_once('.')?;
    let (head, idx) = stem.rsplit_once('.')?;
    let idx: usize = idx.parse().ok()?;
    let group = head.rsplit('.').next()?;
    match (group, field) {
        ("norms", "weight" | "bias" | "running_mean" | "running_var" | "num_batches_tracked") => {
            Some(("norms", idx, field))
        }
        ("shortcuts", "weight" | "bias") => Some(("shortcuts", idx, field)),
        _ => None,
    }
}

fn read_tensor(path: &Path, name: &str, view: &TensorView) -> Result<ArrayD<f64>> {
    let data = view.data();
    let values: Vec<f64> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
        // num_batches_tracked, as PyTorch stores it
        Dtype::I64 if name.ends_with(".num_batches_tracked") => {
            data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64).collect()
        }
        other => {
            return Err(Error::Weights {
                path: path.into(),
                msg: format!(
                    "tensor '{name}' has dtype {other:?}; gradscope reads F32 and F64 (convert with tensor.float())"
                ),
            });
        }
    };
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::Weights {
            path: path.into(),
            msg: format!("tensor '{name}' holds a non-finite value ({bad})"),
        });
    }
    Ok(ArrayD::from_shape_vec(IxDyn(view.shape()), values).expect("safetensors checked the size"))
}

/// Norm layers, projections, and the names of the remaining tensors.
type Remedies = (BTreeMap<usize, LoadedNorm>, BTreeMap<usize, (Array2<f64>, Array1<f64>)>, Vec<String>);

/// A file's norm-layer and projection tensors (`…norms.N.field`, `…shortcuts.N.field`), and the
/// names of the others (the linear layers').
fn read_remedies(path: &Path, st: &SafeTensors, names: &[String]) -> Result<Remedies> {
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    let mut norms: BTreeMap<usize, LoadedNorm> = BTreeMap::new();
    type Parts = (Option<Array2<f64>>, Option<Array1<f64>>);
    let mut short: BTreeMap<usize, Parts> = BTreeMap::new();
    let mut linear_names = Vec::new();
    for name in names {
        let Some((group, idx, field)) = remedy_name(name) else {
            linear_names.push(name.clone());
            continue;
        };
        let t = read_tensor(path, name, &st.tensor(name).map_err(|e| bad(e.to_string()))?)?;
        let vec1 =
            |t: ArrayD<f64>| t.into_dimensionality::<ndarray::Ix1>().map_err(|_| bad(format!("'{name}' must be 1-D")));
        if group == "norms" {
            let n = norms.entry(idx).or_default();
            match field {
                "weight" => n.weight = vec1(t)?,
                "bias" => n.bias = vec1(t)?,
                "running_mean" => n.running_mean = vec1(t)?,
                "running_var" => n.running_var = vec1(t)?,
                _ => n.num_batches_tracked = t.iter().next().copied().unwrap_or(0.0),
            }
        } else if field == "weight" {
            let w =
                t.into_dimensionality::<ndarray::Ix2>().map_err(|_| bad(format!("'{name}' must be 2-D [out, in]")))?;
            short.entry(idx).or_default().0 = Some(w);
        } else {
            short.entry(idx).or_default().1 = Some(vec1(t)?);
        }
    }
    for (i, n) in &norms {
        if n.weight.is_empty() || n.bias.is_empty() {
            return Err(bad(format!("norms.{i} needs both .weight and .bias")));
        }
    }
    let mut shortcuts = BTreeMap::new();
    for (i, (w, b)) in short {
        match (w, b) {
            (Some(w), Some(b)) => {
                shortcuts.insert(i, (w, b));
            }
            _ => return Err(bad(format!("shortcuts.{i} needs both .weight and .bias"))),
        }
    }
    Ok((norms, shortcuts, linear_names))
}

/// Reads a safetensors file of linear layers (see the module docs for the names accepted).
pub fn load(path: &Path) -> Result<LoadedWeights> {
    let bytes = std::fs::read(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
    parse(path, &bytes)
}

/// [`load`] from the file's bytes (`path` names it in messages; exposed for tests and fuzzing).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<LoadedWeights> {
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();

    // Group names `<prefix><index>.weight|bias` by index; all must share one prefix.
    let mut by_index: BTreeMap<u64, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut prefix: Option<String> = None;
    let mut names = st.names().into_iter().map(str::to_string).collect::<Vec<_>>();
    names.sort();
    // norm layers and residual projections first (`…norms.N.field`, `…shortcuts.N.field`)
    let (norms, shortcuts, linear_names) = read_remedies(path, &st, &names)?;
    for name in &linear_names {
        let (stem, is_weight) = if let Some(s) = name.strip_suffix(".weight") {
            (s, true)
        } else if let Some(s) = name.strip_suffix(".bias") {
            (s, false)
        } else {
            return Err(bad(format!(
                "unexpected tensor '{name}': gradscope reads only linear layers' .weight and .bias"
            )));
        };
        let (pre, idx) = match stem.rfind('.') {
            Some(p) => (&stem[..=p], &stem[p + 1..]),
            None => ("", stem),
        };
        let Ok(idx) = idx.parse::<u64>() else {
            return Err(bad(format!(
                "tensor '{name}' is not named like layers.N.weight or N.weight (an nn.Sequential index)"
            )));
        };
        match &prefix {
            None => prefix = Some(pre.to_string()),
            Some(p) if p != pre => {
                return Err(bad(format!("tensor '{name}' does not share the prefix '{p}' of the others")));
            }
            _ => {}
        }
        let entry = by_index.entry(idx).or_default();
        if is_weight { entry.0 = Some(name.clone()) } else { entry.1 = Some(name.clone()) }
    }
    if by_index.is_empty() {
        return Err(bad("holds no tensors".into()));
    }
    let mut layers = Vec::new();
    let mut out_names = Vec::new();
    for (idx, (w, b)) in by_index {
        let p = prefix.as_deref().unwrap_or("");
        let w = w.ok_or_else(|| bad(format!("'{p}{idx}.bias' has no matching '{p}{idx}.weight'")))?;
        let b = b.ok_or_else(|| {
            bad(format!("'{w}' has no bias '{p}{idx}.bias'; gradscope's linear layers always have one"))
        })?;
        let wt = read_tensor(path, &w, &st.tensor(&w).map_err(|e| bad(e.to_string()))?)?;
        let bt = read_tensor(path, &b, &st.tensor(&b).map_err(|e| bad(e.to_string()))?)?;
        let wt = wt.into_dimensionality::<ndarray::Ix2>().map_err(|_| bad(format!("'{w}' must be 2-D [out, in]")))?;
        let bt = bt.into_dimensionality::<ndarray::Ix1>().map_err(|_| bad(format!("'{b}' must be 1-D [out]")))?;
        if bt.len() != wt.nrows() {
            return Err(bad(format!("'{b}' has {} entries but '{w}' has {} rows", bt.len(), wt.nrows())));
        }
        if let Some(prev) = layers.last().map(|(pw, _): &(Array2<f64>, Array1<f64>)| pw.nrows())
            && wt.ncols() != prev
        {
            return Err(bad(format!("'{w}' takes {} inputs but the layer before it gives {prev} outputs", wt.ncols())));
        }
        layers.push((wt, bt));
        out_names.push((w, b));
    }
    let dtype = st.tensor(&out_names[0].0).map_err(|e| bad(e.to_string()))?.dtype();
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
    Ok(LoadedWeights { layers, names: out_names, activation, dtype, norms, shortcuts, arch })
}
