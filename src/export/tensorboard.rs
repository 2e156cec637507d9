//! TensorBoard event files: a run's records as scalar summaries that TensorBoard (and its
//! `EventAccumulator`) reads.
//!
//! A file is a sequence of TFRecords, each `length (u64 LE) · masked CRC-32C of the length ·
//! data · masked CRC-32C of the data`, whose data is an `Event` protocol buffer
//! (tensorflow/core/util/event.proto, summary.proto): first one holding `file_version`, then one
//! per probed step holding that step's scalars (`Summary.Value` with `tag` and `simple_value`).
//! The messages are the few fields we write, declared with `prost`'s derive; CRC-32C is the
//! `crc32c` crate's (hardware-accelerated); see docs/DESIGN.md.

use super::{LAYER_FIELDS, STEP_FIELDS};
use crate::error::{Error, Result};
use crate::report::{Report, Run};
use std::path::{Path, PathBuf};

/// `tensorflow.Event`: the fields written.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// A file version or a summary.
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// `brain.Event:2`, the first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Scalars.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value` holding a scalar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The scalar's name (`grad_w_norm/features.0`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar (written even when 0: it is the `value` oneof's member).
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// The TFRecord mask of a CRC-32C (tensorflow/core/lib/hash/crc32c.h, `Mask`).
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One TFRecord around `data`.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The scalars of a run at each probed step: `loss/train`, `loss/test`, `accuracy/test`,
/// `vanishing_ratio`, `grad_norm`, and per layer `FIELD/LAYER` (the layer's name).
pub fn events(run: &Run) -> Vec<Event> {
    let names: Vec<String> = (0..run.layers()).map(|l| run.layer_name(l)).collect();
    let mut out = vec![Event { wall_time: 0.0, step: 0, what: Some(What::FileVersion("brain.Event:2".into())) }];
    for rec in &run.records {
        let mut value = Vec::new();
        let mut push = |tag: String, v: f64| value.push(Value { tag, simple_value: Some(v as f32) });
        for (field, get) in STEP_FIELDS {
            if let Some(v) = get(rec) {
                let tag = match field {
                    "train_loss" => "loss/train".to_string(),
                    "test_loss" => "loss/test".to_string(),
                    "test_accuracy" => "accuracy/test".to_string(),
                    f => f.to_string(),
                };
                push(tag, v);
            }
        }
        for (l, stats) in rec.layers.iter().enumerate() {
            let name = names.get(l).cloned().unwrap_or_else(|| l.to_string());
            for (field, get) in LAYER_FIELDS {
                if let Some(v) = get(stats) {
                    push(format!("{field}/{name}"), v);
                }
            }
        }
        out.push(Event { wall_time: 0.0, step: rec.step as i64, what: Some(What::Summary(Summary { value })) });
    }
    out
}

/// The bytes of a run's event file.
pub fn file_bytes(run: &Run) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events(run) {
        frame(&prost::Message::encode_to_vec(&e), &mut out);
    }
    out
}

/// The event file's name: TensorBoard reads files whose name holds `tfevents`.
pub const FILE_NAME: &str = "events.out.tfevents.0.gradscope";

/// Writes one subfolder of `dir` per run (named by its label, as TensorBoard names runs by
/// folder), each holding [`FILE_NAME`]; returns the files written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Err(Error::invalid("tensorboard", dir.display(), "is a file; give a folder for the event files"));
    }
    let mut written = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for run in &report.runs {
        let mut sub: String =
            run.label.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        while !used.insert(sub.clone()) {
            sub.push('_');
        }
        let folder = dir.join(&sub);
        crate::io::create_dir(&folder)?;
        let path = folder.join(FILE_NAME);
        crate::io::write_atomic(&path, &file_bytes(run))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow() {
        // crc32c("123456789") = 0xe3069283 (RFC 3720's check value); masked by TensorFlow's
        // ((crc >> 15) | (crc << 17)) + 0xa282ead8, computed by hand: 0xc78ab0e5
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn zero_scalars_are_written() {
        let v = Value { tag: "x".into(), simple_value: Some(0.0) };
        // tag (field 1, 3 bytes) + simple_value (field 2, fixed32: 5 bytes)
        assert_eq!(prost::Message::encode_to_vec(&v).len(), 3 + 5);
    }
}
