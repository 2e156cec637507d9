//! Recurrent weights in and out as safetensors, under PyTorch's state_dict keys.
//!
//! `torch.save`-free exchange: `safetensors.torch.save_file(net.state_dict(), path)` of a module
//! with attributes `rnn` (`nn.RNN`, `nn.LSTM` or `nn.GRU`) and `fc` (`nn.Linear`) is read by
//! [`from_safetensors`]; [`to_safetensors`] writes the same keys, which
//! `net.load_state_dict(safetensors.torch.load_file(path))` reads back.

use crate::error::{Error, Named, Result};
use crate::io::weights::serialize;
use crate::nn::recurrent::{Cell, Head, RecurrentLayer, RecurrentNet};
use crate::nn::{Linear, Network, Scalar};
use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key holding the cell name (`rnn_tanh`, `rnn_relu`, `lstm`, `gru`).
pub const META_CELL: &str = "gradscope.cell";

fn to_le<F: Scalar>(v: &[F]) -> Vec<u8> {
    if F::NAME == "f32" {
        v.iter().flat_map(|x| (x.f64() as f32).to_le_bytes()).collect()
    } else {
        v.iter().flat_map(|x| x.f64().to_le_bytes()).collect()
    }
}

/// The network's tensors, in F's dtype, with the cell in the metadata.
pub fn to_safetensors<F: Scalar>(net: &RecurrentNet<F>) -> Vec<u8> {
    let tensors = net.state().into_iter().map(|(n, s, v)| (n, s, to_le(v))).collect();
    serialize::<F>(tensors, HashMap::from([(META_CELL.to_string(), net.cell.name().to_string())]))
}

/// Every trainable tensor's gradient under its state_dict key, in G's dtype.
pub fn grads_to_safetensors<F: Scalar, G: Scalar>(net: &RecurrentNet<F>) -> Vec<u8> {
    let mut tensors = Vec::new();
    net.visit(&mut |t| {
        if let Some(g) = t.grad {
            let g: Vec<G> = g.iter().map(|v| G::of(v.f64())).collect();
            tensors.push((t.name.to_string(), t.shape.dims().to_vec(), to_le(&g)));
        }
    });
    serialize::<G>(tensors, HashMap::new())
}

/// A tensor as f64 values and its shape (F32 or F64).
pub fn read_f64(st: &SafeTensors, path: &Path, name: &str) -> Result<(Vec<f64>, Vec<usize>)> {
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    let t = st.tensor(name).map_err(|_| bad(format!("no tensor '{name}'; a recurrent net needs rnn.* and fc.*")))?;
    let d = t.data();
    let values: Vec<f64> = match t.dtype() {
        Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
        other => return Err(bad(format!("tensor '{name}' has dtype {other:?}; save it as float32 or float64"))),
    };
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(bad(format!("tensor '{name}' holds a non-finite value ({v})")));
    }
    Ok((values, t.shape().to_vec()))
}

/// Reads `rnn.*_l{k}` and `fc.*` tensors. The cell comes from the metadata when gradscope
/// wrote the file, else from W_hh's shape (`[G·H, H]`: G = 1 Elman, 4 LSTM, 3 GRU) with
/// `rnn_nonlinearity` telling tanh from relu (PyTorch does not store it).
pub fn from_safetensors<F: Scalar>(
    bytes: &[u8],
    path: &Path,
    head: Head,
    rnn_nonlinearity: Cell,
) -> Result<RecurrentNet<F>> {
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let (whh0, s) = read_f64(&st, path, "rnn.weight_hh_l0")?;
    drop(whh0);
    if s.len() != 2 || s[1] == 0 || s[0] % s[1] != 0 {
        return Err(bad(format!("rnn.weight_hh_l0 has shape {s:?}; expected [gates·H, H]")));
    }
    let h = s[1];
    let cell = match (meta.get(META_CELL), s[0] / h) {
        (Some(name), _) => Cell::parse("cell", name)?,
        (None, 1) => rnn_nonlinearity,
        (None, 4) => Cell::Lstm,
        (None, 3) => Cell::Gru,
        (None, g) => return Err(bad(format!("rnn.weight_hh_l0 has {g} gate blocks; RNN 1, LSTM 4, GRU 3"))),
    };
    let g = cell.gates();
    let n_layers = (0..).take_while(|k| st.tensor(&format!("rnn.weight_ih_l{k}")).is_ok()).count();
    let mut layers = Vec::with_capacity(n_layers);
    for k in 0..n_layers {
        let fan_in = if k == 0 {
            st.tensor("rnn.weight_ih_l0").map(|t| t.shape().get(1).copied().unwrap_or(0)).unwrap_or(0)
        } else {
            h
        };
        let m2 = |name: String, shape: (usize, usize)| -> Result<Array2<F>> {
            let (v, s) = read_f64(&st, path, &name)?;
            if s != [shape.0, shape.1] {
                return Err(bad(format!(
                    "'{name}' has shape {s:?}; a {} of hidden size {h} needs {shape:?}",
                    cell.name()
                )));
            }
            Ok(Array2::from_shape_vec(shape, v.into_iter().map(F::of).collect()).expect("shape checked"))
        };
        let v1 = |name: String, n: usize| -> Result<Array1<F>> {
            let (v, s) = read_f64(&st, path, &name)?;
            if s != [n] {
                return Err(bad(format!("'{name}' has shape {s:?}; expected [{n}]")));
            }
            Ok(v.into_iter().map(F::of).collect())
        };
        layers.push(RecurrentLayer::new(
            m2(format!("rnn.weight_ih_l{k}"), (g * h, fan_in))?,
            m2(format!("rnn.weight_hh_l{k}"), (g * h, h))?,
            v1(format!("rnn.bias_ih_l{k}"), g * h)?,
            v1(format!("rnn.bias_hh_l{k}"), g * h)?,
        ));
    }
    let (w, ws) = read_f64(&st, path, "fc.weight")?;
    if ws.len() != 2 || ws[1] != h {
        return Err(bad(format!("fc.weight has shape {ws:?}; the head reads H = {h} features: [out, {h}]")));
    }
    let (b, bs) = read_f64(&st, path, "fc.bias")?;
    if bs != [ws[0]] {
        return Err(bad(format!("fc.bias has shape {bs:?}; expected [{}]", ws[0])));
    }
    let fc = Linear::new(
        Array2::from_shape_vec((ws[0], h), w.into_iter().map(F::of).collect()).expect("shape checked"),
        b.into_iter().map(F::of).collect(),
    );
    Ok(RecurrentNet::new(cell, head, layers, fc))
}
