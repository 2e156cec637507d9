//! `checkpoint.safetensors`: everything a run needs to continue exactly where it stopped, in one
//! file written atomically (so a kill leaves the previous checkpoint or the new one).
//!
//! Tensors:
//!
//! | name | dtype | what |
//! | --- | --- | --- |
//! | `model.{name}` | the run's float type | every tensor of [`Network::state`] (`layers.0.weight`, …) |
//! | `optimizer.{i}.{buffer}` | the run's float type | [`ParamState::buffers`] of the i-th trainable tensor (`momentum_buffer`, `exp_avg`, `exp_avg_sq`) |
//! | `optimizer.{i}.{counter}` | U64, `[1]` | [`ParamState::counters`] (Adam's `step`) |
//! | `order` | U64, `[rows]` | the current epoch's shuffled order of the training rows |
//!
//! The metadata key `gradscope.checkpoint` holds [`CheckpointMeta`] as JSON: the next step, the
//! epoch, the word position of the batch-order generator (ChaCha8), probes done, the first and
//! the last probe record, skipped steps, the byte length of `metrics.jsonl` at the checkpoint
//! and the run's config.

use crate::error::{Error, Result};
pub use crate::io::tensors::Tensor;
use crate::io::tensors::{self, Accept, TensorMap, float_dtype};
use crate::nn::{Name, Network, Scalar};
use crate::nonfinite::NonFinite;
use crate::optim::{OptimizerState, ParamState};
use crate::probe::StepRecord;
use safetensors::{Dtype, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The checkpoint's file name inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The metadata key holding [`CheckpointMeta`].
pub const META_KEY: &str = "gradscope.checkpoint";
/// The version of the layout above.
pub const FORMAT: u32 = 1;

/// The scalars of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT`].
    pub format: u32,
    /// The gradscope that wrote it.
    pub gradscope_version: String,
    /// `f32` or `f64`: the float type of the model and optimizer tensors.
    pub dtype: String,
    /// The next step to take (= updates applied or skipped so far).
    pub step: u64,
    /// The epoch of the last step taken.
    pub epoch: u64,
    /// `get_word_pos()` of the batch-order generator, in decimal.
    pub order_word_pos: String,
    /// Probed steps so far.
    pub probes_done: u64,
    /// Updates skipped for a non-finite value (`on_nonfinite = "skip"`).
    pub skipped_steps: u64,
    /// Steps whose gradients were clipped so far.
    #[serde(default)]
    pub clipped_steps: u64,
    /// The first non-finite value met, if any.
    pub nonfinite: Option<NonFinite>,
    /// The first probe record (step 0), once made.
    pub first: Option<StepRecord>,
    /// The latest probe record.
    pub last: Option<StepRecord>,
    /// Seconds trained so far.
    pub elapsed_s: f64,
    /// Bytes of `metrics.jsonl` that belong to the steps before [`CheckpointMeta::step`].
    #[serde(default)]
    pub metrics_len: u64,
    /// The run's resolved config (TOML), to refuse resuming with another one.
    #[serde(default)]
    pub config: String,
}

/// A decoded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The scalars.
    pub meta: CheckpointMeta,
    /// The tensors, in the order written.
    pub tensors: Vec<Tensor>,
}

fn u64_tensor(name: String, values: impl ExactSizeIterator<Item = u64>) -> Tensor {
    let shape = vec![values.len()];
    Tensor { name, dtype: Dtype::U64, shape, data: values.flat_map(u64::to_le_bytes).collect() }
}

impl Checkpoint {
    /// Captures a network, its optimizer and the batch order, with `meta`.
    pub fn capture<F: Scalar, N: Network<F>>(
        net: &N,
        opt: &OptimizerState<F>,
        order: &[usize],
        meta: CheckpointMeta,
    ) -> Self {
        let mut tensors = tensors::collect(net, &model_name, false);
        for (i, state) in opt.states.iter().enumerate() {
            for (name, buf) in state.buffers() {
                let (dtype, data) = (float_dtype::<F>(), tensors::float_bytes(buf));
                tensors.push(Tensor { name: format!("optimizer.{i}.{name}"), dtype, shape: vec![buf.len()], data });
            }
            for (name, value) in state.counters() {
                tensors.push(u64_tensor(format!("optimizer.{i}.{name}"), std::iter::once(value)));
            }
        }
        tensors.push(u64_tensor("order".into(), order.iter().map(|&i| i as u64)));
        Self { meta: CheckpointMeta { dtype: F::NAME.into(), ..meta }, tensors }
    }

    /// The safetensors bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let views: Vec<(String, TensorView)> = self
            .tensors
            .iter()
            .map(|t| {
                let view = TensorView::new(t.dtype, t.shape.clone(), &t.data)
                    .expect("gradscope internal error: checkpoint tensor size");
                (t.name.clone(), view)
            })
            .collect();
        let meta = serde_json::to_string(&self.meta).expect("gradscope internal error: checkpoint serialises");
        safetensors::serialize(views, Some(HashMap::from([(META_KEY.to_string(), meta)])))
            .expect("gradscope internal error: safetensors serialisation")
    }

    /// Decodes checkpoint bytes (`path` names the file in messages).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |msg: String| bad(path, msg);
        let (tensors, metadata) =
            tensors::read_safetensors(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let text = metadata
            .get(META_KEY)
            .ok_or_else(|| bad(format!("no '{META_KEY}' metadata; it is not a gradscope checkpoint")))?;
        let meta: CheckpointMeta =
            serde_json::from_str(text).map_err(|e| bad(format!("metadata '{META_KEY}' is malformed: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!("format {} is not the format {FORMAT} this gradscope reads", meta.format)));
        }
        Ok(Self { meta, tensors })
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
        Self::parse(path, &bytes)
    }

    /// The word position of the batch-order generator.
    pub fn order_word_pos(&self, path: &Path) -> Result<u128> {
        self.meta
            .order_word_pos
            .parse()
            .map_err(|_| bad(path, format!("order_word_pos '{}' is not an integer", self.meta.order_word_pos)))
    }

    /// Writes the saved state into a freshly built network, optimizer and batch order, checking
    /// that every tensor is there with the right dtype and size and that nothing else is.
    pub fn restore<F: Scalar, N: Network<F>>(
        &self,
        path: &Path,
        net: &mut N,
        opt: &mut OptimizerState<F>,
        order: &mut [usize],
    ) -> Result<()> {
        let bad = |msg: String| bad(path, msg);
        if self.meta.dtype != F::NAME {
            return Err(bad(format!("holds {} tensors; this run trains in {}", self.meta.dtype, F::NAME)));
        }
        let mut map = TensorMap::new(&self.tensors);
        let foreign = "the checkpoint does not belong to this config";
        tensors::fill(net, &mut map, &model_name, Accept::Exact, "this run's network")
            .map_err(|e| bad(format!("{}; {foreign}", e.msg)))?;
        let fdtype = float_dtype::<F>();
        let mut take = |name: String, dtype: Dtype, len: Option<usize>| -> Result<&Tensor> {
            let t = map.take(&name).ok_or_else(|| bad(format!("tensor '{name}' is missing; {foreign}")))?;
            if t.dtype != dtype {
                return Err(bad(format!("tensor '{name}' has dtype {:?}, expected {dtype:?}", t.dtype)));
            }
            let n: usize = t.shape.iter().product();
            if len.is_some_and(|len| len != n) {
                return Err(bad(format!("tensor '{name}' has {n} entries, expected {}; {foreign}", len.unwrap_or(0))));
            }
            Ok(t)
        };
        let lens = net.param_lens(); // one optimizer state per trainable tensor, in this order
        if lens.len() != opt.states.len() {
            return Err(bad("optimizer state count does not match the network".into()));
        }
        for (i, (state, &len)) in opt.states.iter_mut().zip(&lens).enumerate() {
            let empty_ok = matches!(state, ParamState::Sgd(_));
            for (name, buf) in state.buffers_mut() {
                let t = take(format!("optimizer.{i}.{name}"), fdtype, None)?;
                let n = t.data.len() / if fdtype == Dtype::F32 { 4 } else { 8 };
                if n != len && !(empty_ok && n == 0) {
                    return Err(bad(format!("tensor 'optimizer.{i}.{name}' has {n} entries, expected {len}")));
                }
                buf.clear();
                buf.resize(n, F::zero());
                read_floats(&t.data, buf);
            }
            for (name, value) in state.counters_mut() {
                let t = take(format!("optimizer.{i}.{name}"), Dtype::U64, Some(1))?;
                *value = u64::from_le_bytes(t.data[..8].try_into().expect("8 bytes"));
            }
        }
        let t = take("order".into(), Dtype::U64, Some(order.len()))?;
        let mut seen = vec![false; order.len()];
        for (slot, c) in order.iter_mut().zip(t.data.chunks_exact(8)) {
            let i = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            match usize::try_from(i).ok().filter(|&i| i < seen.len() && !seen[i]) {
                Some(i) => {
                    seen[i] = true;
                    *slot = i;
                }
                None => return Err(bad(format!("'order' is not a permutation of the {} training rows", seen.len()))),
            }
        }
        match map.leftover(foreign) {
            Some(msg) => Err(bad(msg)),
            None => Ok(()),
        }
    }
}

fn read_floats<F: Scalar>(data: &[u8], out: &mut [F]) {
    if F::NAME == "f32" {
        for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
            *o = F::of(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64);
        }
    } else {
        for (o, c) in out.iter_mut().zip(data.chunks_exact(8)) {
            *o = F::of(f64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
    }
}

/// A model tensor's name in a checkpoint: `model.{name}`.
fn model_name(name: Name) -> String {
    format!("model.{name}")
}

fn bad(path: &Path, msg: String) -> Error {
    Error::Checkpoint { path: PathBuf::from(path), msg }
}
