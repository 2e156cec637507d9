//! Recurrent weights in and out as safetensors, under PyTorch's state_dict keys.
//!
//! `torch.save`-free exchange: `safetensors.torch.save_file(net.state_dict(), path)` of a module
//! with attributes `rnn` (`nn.RNN`, `nn.LSTM` or `nn.GRU`) and `fc` (`nn.Linear`) is read by
//! [`from_safetensors`]; [`to_safetensors`] writes the same keys, which
//! `net.load_state_dict(safetensors.torch.load_file(path))` reads back.

use crate::error::{Error, Named, Result};
use crate::io::tensors::{self, Accept, TensorMap};
use crate::io::weights::serialize;
use crate::nn::recurrent::{Cell, FC, Head, RNN, RecurrentConfig, RecurrentNet};
use crate::nn::{Network, Prefix, Scalar};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// Metadata key holding the cell name (`rnn_tanh`, `rnn_relu`, `lstm`, `gru`).
pub const META_CELL: &str = "gradscope.cell";

/// The network's tensors, in F's dtype, with the cell in the metadata.
pub fn to_safetensors<F: Scalar>(net: &RecurrentNet<F>) -> Vec<u8> {
    let tensors =
        tensors::collect(net, &|n| n.to_string(), true).into_iter().map(|t| (t.name, t.shape, t.data)).collect();
    serialize::<F>(tensors, HashMap::from([(META_CELL.to_string(), net.cell.name().to_string())]))
}

/// Every trainable tensor's gradient under its state_dict key, in G's dtype.
pub fn grads_to_safetensors<F: Scalar, G: Scalar>(net: &RecurrentNet<F>) -> Vec<u8> {
    let mut out = Vec::new();
    net.visit(&mut |t| {
        if let Some(g) = t.grad {
            let g: Vec<G> = g.iter().map(|v| G::of(v.f64())).collect();
            out.push((t.name.to_string(), t.shape.dims().to_vec(), tensors::float_bytes(&g)));
        }
    });
    serialize::<G>(out, HashMap::new())
}

/// The sizes of a recurrent net read off a file's shapes: the cell, input size, hidden size,
/// layers and outputs (from `rnn.weight_hh_l0`, `rnn.weight_ih_l0`, the `rnn.weight_ih_l{k}`
/// present, `fc.weight`). The cell comes from the metadata when gradscope wrote the file,
/// else from W_hh's shape (`[G·H, H]`: G = 1 Elman, 4 LSTM, 3 GRU) with `rnn_nonlinearity`
/// telling tanh from relu (PyTorch does not store it).
fn sizes_of(
    map: &TensorMap,
    meta: &HashMap<String, String>,
    rnn_nonlinearity: Cell,
) -> std::result::Result<RecurrentConfig, String> {
    let shape = |prefix: Prefix, leaf: &'static str| {
        let name = prefix.name(leaf).to_string();
        match map.get(&name) {
            Some(t) if t.shape.len() == 2 && t.shape.iter().all(|&d| d > 0) => Ok((t.shape[0], t.shape[1])),
            Some(t) => Err(format!("'{name}' has shape {:?}; expected two sizes of at least 1", t.shape)),
            None => Err(format!("no tensor '{name}'; a recurrent net needs rnn.* and fc.*")),
        }
    };
    let (rows, h) = shape(Prefix::suffix(RNN, 0), "weight_hh")?;
    let cell = match (meta.get(META_CELL), rows / h) {
        _ if rows % h != 0 => return Err(format!("rnn.weight_hh_l0 has shape [{rows}, {h}]; expected [gates·H, H]")),
        (Some(name), _) => Cell::parse("cell", name).map_err(|e| e.to_string())?,
        (None, 1) => rnn_nonlinearity,
        (None, 4) => Cell::Lstm,
        (None, 3) => Cell::Gru,
        (None, g) => return Err(format!("rnn.weight_hh_l0 has {g} gate blocks; RNN 1, LSTM 4, GRU 3")),
    };
    let (_, inputs) = shape(Prefix::suffix(RNN, 0), "weight_ih")?;
    let layers =
        (0..).take_while(|&k| map.get(&Prefix::suffix(RNN, k).name("weight_ih").to_string()).is_some()).count();
    let (outputs, _) = shape(Prefix::plain(FC), "weight")?;
    Ok(RecurrentConfig::new(cell, inputs, h, layers, outputs))
}

/// Reads a recurrent net's state_dict (`rnn.*_l{k}`, `fc.*`): the network of the sizes the file
/// gives (see `sizes_of`) is built, and every tensor it declares is taken from the file by
/// name ([`crate::io::tensors::fill`]), which must hold exactly those.
pub fn from_safetensors<F: Scalar>(
    bytes: &[u8],
    path: &Path,
    head: Head,
    rnn_nonlinearity: Cell,
) -> Result<RecurrentNet<F>> {
    let bad = |msg: String| Error::Weights { path: path.into(), msg };
    let (stored, meta) =
        tensors::read_safetensors(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let mut map = TensorMap::new(&stored);
    let mut cfg = sizes_of(&map, &meta, rnn_nonlinearity).map_err(bad)?;
    cfg.head = head;
    // the values drawn are all overwritten below
    let mut net: RecurrentNet<F> = cfg.init(&mut ChaCha8Rng::seed_from_u64(0))?;
    let what = format!(
        "a {} of input size {}, hidden size {}, {} layer(s) and {} output(s)",
        cfg.cell.name(),
        cfg.input_size,
        cfg.hidden_size,
        cfg.num_layers,
        cfg.output_size
    );
    tensors::fill(&mut net, &mut map, &|n| n.to_string(), Accept::Finite, &what).map_err(|e| bad(e.msg))?;
    match map.leftover(&format!("{what} has no such tensor (gradscope's recurrent nets are unidirectional)")) {
        Some(msg) => Err(bad(msg)),
        None => Ok(net),
    }
}
