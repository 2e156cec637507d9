//! Network weights in safetensors.
//!
//! gradscope writes `layers.{i}.weight` (`[out, in]`) and `layers.{i}.bias` (`[out]`), i the
//! 0-based index of the linear layer, output layer last, with the activation in the file's
//! metadata. It reads those names and also the names PyTorch gives an `nn.Sequential` of Linear
//! and activation modules (`0.weight`, `0.bias`, `2.weight`, …, possibly under a common prefix
//! such as `net.`): the linear layers are taken in the order of their numeric index.

use crate::error::{Error, Result};
use crate::nn::{Activation, Linear, Mlp, Scalar};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Metadata key holding the activation name.
pub const META_ACTIVATION: &str = "gradscope.activation";
/// Metadata key holding leaky_relu's negative slope.
pub const META_NEGATIVE_SLOPE: &str = "gradscope.negative_slope";

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
}

impl LoadedWeights {
    /// `[inputs, hidden…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].0.ncols()).chain(self.layers.iter().map(|(w, _)| w.nrows())).collect()
    }

    /// Builds the network in float type `F`.
    pub fn to_mlp<F: Scalar>(&self, activation: Activation) -> Mlp<F> {
        let layers = self.layers.iter().map(|(w, b)| Linear::new(w.mapv(F::of), b.mapv(F::of))).collect();
        Mlp::new(layers, activation)
    }
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
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            (n.clone(), TensorView::new(dtype, shape.clone(), data).expect("gradscope internal error: tensor size"))
        })
        .collect();
    safetensors::serialize(views, Some(metadata)).expect("gradscope internal error: safetensors serialisation")
}

/// The bytes of `weights.safetensors` for a network.
pub fn mlp_to_bytes<F: Scalar>(mlp: &Mlp<F>) -> Vec<u8> {
    let tensors =
        mlp.state().into_iter().map(|(name, shape, values)| (name, shape, to_bytes(values.iter().copied()))).collect();
    serialize::<F>(tensors, activation_metadata(mlp.activation))
}

/// The bytes of `grads.safetensors`: every parameter gradient under the given names.
pub fn grads_to_bytes<F: Scalar, G: Scalar>(mlp: &Mlp<F>, names: &[(String, String)]) -> Vec<u8> {
    let mut tensors = Vec::new();
    for (layer, (wn, bn)) in mlp.layers.iter().zip(names) {
        tensors.push((
            wn.clone(),
            layer.grad_weight.shape().to_vec(),
            to_bytes(layer.grad_weight.iter().map(|v| G::of(v.f64()))),
        ));
        tensors.push((
            bn.clone(),
            layer.grad_bias.shape().to_vec(),
            to_bytes(layer.grad_bias.iter().map(|v| G::of(v.f64()))),
        ));
    }
    serialize::<G>(tensors, activation_metadata(mlp.activation))
}

fn activation_metadata(a: Activation) -> HashMap<String, String> {
    let mut m = HashMap::from([(META_ACTIVATION.to_string(), a.name().to_string())]);
    if let Activation::LeakyRelu { negative_slope } = a {
        m.insert(META_NEGATIVE_SLOPE.into(), negative_slope.to_string());
    }
    m
}

fn read_tensor(path: &Path, name: &str, view: &TensorView) -> Result<ArrayD<f64>> {
    let data = view.data();
    let values: Vec<f64> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
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
    for name in &names {
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
            Some(Activation::from_name(name, slope).map_err(|e| bad(format!("metadata: {e}")))?)
        }
        None => None,
    };
    Ok(LoadedWeights { layers, names: out_names, activation, dtype })
}
