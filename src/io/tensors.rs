//! Loading a model's tensors from a file by walking its one description.
//!
//! Every reader of model tensors (`weights.safetensors` of an MLP, a recurrent net's PyTorch
//! `state_dict`, the `model.*` tensors of `checkpoint.safetensors`) goes the same way: the file
//! becomes a name → [`Tensor`] map ([`TensorMap`]); the caller builds the model from its config
//! (or from the shapes the file gives); [`fill`] walks the model's [`Network::visit_mut`] (the
//! same walk that saving, the optimizer, clipping and checkpoints use) and takes each tensor it
//! meets from the map by its name, checking dtype, shape and values; what is left in the map
//! afterwards is a tensor the model does not have ([`TensorMap::leftover`]). No reader keeps a
//! list of tensor names of its own: a tensor a layer declares is loaded by being declared.

use crate::nn::{Name, Network, Scalar, TensorKind};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};

/// One tensor as stored: name, dtype, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Its name in the file.
    pub name: String,
    /// F32, F64, I64, U64, … as stored.
    pub dtype: Dtype,
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, little-endian.
    pub data: Vec<u8>,
}

/// The dtype a float tensor of type `F` is stored in.
pub fn float_dtype<F: Scalar>() -> Dtype {
    if F::NAME == "f32" { Dtype::F32 } else { Dtype::F64 }
}

/// The tensors of a safetensors file, in the file's order, and its metadata; the error is
/// safetensors' own, for the caller to word.
pub fn read_safetensors(bytes: &[u8]) -> Result<(Vec<Tensor>, HashMap<String, String>), String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, view)| Tensor {
            name,
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            data: view.data().to_vec(),
        })
        .collect();
    Ok((tensors, meta))
}

/// What a reader accepts of a tensor it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Exactly the model's float type, any value: a checkpoint, which resumes bit for bit.
    Exact,
    /// F32 or F64 (int64 too for a [`TensorKind::Count`], as PyTorch stores it), finite values
    /// only: weights written by gradscope or by PyTorch.
    Finite,
}

/// Tensors by name, each taken at most once; what was not taken is reported as unexpected.
#[derive(Debug)]
pub struct TensorMap<'a> {
    by_name: BTreeMap<&'a str, &'a Tensor>,
}

impl<'a> TensorMap<'a> {
    /// The map of `tensors` (a name met twice keeps its last tensor; safetensors forbids that).
    pub fn new(tensors: &'a [Tensor]) -> Self {
        Self { by_name: tensors.iter().map(|t| (t.name.as_str(), t)).collect() }
    }

    /// The tensor `name`, without taking it.
    pub fn get(&self, name: &str) -> Option<&'a Tensor> {
        self.by_name.get(name).copied()
    }

    /// Takes the tensor `name` out of the map.
    pub fn take(&mut self, name: &str) -> Option<&'a Tensor> {
        self.by_name.remove(name)
    }

    /// The names not taken yet, in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.by_name.keys().copied()
    }

    /// `None` when every tensor was taken, else a message naming the first few left over:
    /// "unexpected tensor 'a' (3 in all: 'a', 'b', 'c')", followed by `why`.
    pub fn leftover(&self, why: &str) -> Option<String> {
        const SHOWN: usize = 4;
        let names: Vec<&str> = self.names().collect();
        let first = names.first()?;
        let all = match names.len() {
            1 => String::new(),
            n => {
                let shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("'{n}'")).collect();
                let more = if n > SHOWN { ", …" } else { "" };
                format!(" ({n} in all: {}{more})", shown.join(", "))
            }
        };
        Some(format!("unexpected tensor '{first}'{all}: {why}"))
    }
}

/// Why [`fill`] stopped: the model's tensor it was filling and the message.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The model's name of the tensor (the file's may differ: see `fill`'s `key`).
    pub name: Name,
    /// What is wrong, naming the file's tensor.
    pub msg: String,
}

/// Fills every tensor of `net` from `map`, in visiting order: the tensor of name `key(name)`
/// is taken, its dtype checked against `accept`, its shape against the model's, its values
/// converted into F. The message of the first mismatch names the tensor, what was found and
/// what `what` (the model, in words: "this network (16 → 4 → 1)") needs.
pub fn fill<F: Scalar, N: Network<F>>(
    net: &mut N,
    map: &mut TensorMap,
    key: &dyn Fn(Name) -> String,
    accept: Accept,
    what: &str,
) -> Result<(), Mismatch> {
    let mut result = Ok(());
    net.visit_mut(&mut |t| {
        if result.is_err() {
            return;
        }
        let name = key(t.name);
        result = match map.take(&name) {
            None => Err(format!("no tensor '{name}', which {what} has (shape {:?})", t.shape.dims())),
            Some(found) => read_into(found, t.kind, t.shape.dims(), accept, what, t.value),
        }
        .map_err(|msg| Mismatch { name: t.name, msg });
    });
    result
}

/// Checks one stored tensor against the model's and writes its values into `out`.
fn read_into<F: Scalar>(
    t: &Tensor,
    kind: TensorKind,
    shape: &[usize],
    accept: Accept,
    what: &str,
    out: &mut [F],
) -> Result<(), String> {
    let name = &t.name;
    let ok = match accept {
        Accept::Exact => t.dtype == float_dtype::<F>(),
        Accept::Finite => {
            matches!(t.dtype, Dtype::F32 | Dtype::F64) || (kind == TensorKind::Count && t.dtype == Dtype::I64)
        }
    };
    if !ok {
        return Err(match accept {
            Accept::Exact => format!("tensor '{name}' has dtype {:?}, expected {:?}", t.dtype, float_dtype::<F>()),
            Accept::Finite => format!(
                "tensor '{name}' has dtype {:?}; gradscope reads F32 and F64 (convert with tensor.float())",
                t.dtype
            ),
        });
    }
    if t.shape != shape {
        return Err(format!("tensor '{name}' has shape {:?}, but {what} needs {shape:?}", t.shape));
    }
    let d = &t.data;
    let values: Box<dyn Iterator<Item = f64>> = match t.dtype {
        Dtype::F32 => Box::new(d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)),
        Dtype::I64 => Box::new(d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)),
        _ => Box::new(d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))),
    };
    for (o, v) in out.iter_mut().zip(values) {
        if accept == Accept::Finite && !v.is_finite() {
            return Err(format!("tensor '{name}' holds a non-finite value ({v})"));
        }
        *o = F::of(v);
    }
    Ok(())
}

/// The model's tensors as stored: every tensor of [`Network::visit`] under `key(name)`, in F's
/// dtype, but a [`TensorKind::Count`] in int64 when `counts_as_int` (as PyTorch keeps
/// `num_batches_tracked`).
pub fn collect<F: Scalar, N: Network<F>>(net: &N, key: &dyn Fn(Name) -> String, counts_as_int: bool) -> Vec<Tensor> {
    let mut out = Vec::new();
    net.visit(&mut |t| {
        let (dtype, data) = if counts_as_int && t.kind == TensorKind::Count {
            (Dtype::I64, t.value.iter().flat_map(|v| (v.f64().round() as i64).to_le_bytes()).collect())
        } else {
            (float_dtype::<F>(), float_bytes(t.value))
        };
        out.push(Tensor { name: key(t.name), dtype, shape: t.shape.dims().to_vec(), data });
    });
    out
}

/// `values` little-endian in F's dtype.
pub fn float_bytes<F: Scalar>(values: &[F]) -> Vec<u8> {
    if F::NAME == "f32" {
        values.iter().flat_map(|v| (v.f64() as f32).to_le_bytes()).collect()
    } else {
        values.iter().flat_map(|v| v.f64().to_le_bytes()).collect()
    }
}
