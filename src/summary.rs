//! What `summary.json` holds: how a run ended and its final figures.
//!
//! Plain data, so that readers of run folders (`report`, `sweep`) need nothing of the engine.

use crate::nonfinite::NonFinite;
use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every step taken (summary files written before this field existed read as this).
    #[default]
    Completed,
    /// Stopped at a non-finite value (`on_nonfinite = "stop"`).
    Diverged,
    /// Stopped by `Observer::should_stop` (Ctrl-C); a checkpoint continues it.
    Interrupted,
}

/// What `summary.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// gradscope's version.
    pub gradscope_version: String,
    /// The data set.
    pub data: String,
    /// The seed.
    pub seed: u64,
    /// Threads used.
    pub threads: usize,
    /// Updates applied.
    pub steps: u64,
    /// Epochs begun (a partial last epoch counts).
    pub epochs: u64,
    /// Loss over the whole training set at the end.
    #[serde(deserialize_with = "crate::probe::nan_if_null")]
    pub train_loss: f64,
    /// Loss over the test set at the end (null without a test split).
    pub test_loss: Option<f64>,
    /// Training accuracy at the end (classification only).
    pub train_accuracy: Option<f64>,
    /// Test accuracy at the end (classification only).
    pub test_accuracy: Option<f64>,
    /// vanishing_ratio at step 0: grad_w_norm of the first layer over the last layer's.
    #[serde(deserialize_with = "crate::probe::nan_if_null")]
    pub vanishing_ratio: f64,
    /// vanishing_ratio at the final probe.
    #[serde(deserialize_with = "crate::probe::nan_if_null")]
    pub vanishing_ratio_final: f64,
    /// True when a NaN or infinity stopped training (`on_nonfinite = "stop"`).
    pub diverged: bool,
    /// The step at which it stopped.
    pub diverged_at_step: Option<u64>,
    /// Wall-clock seconds of training and evaluation (summed over resumed parts).
    pub wall_time_s: f64,
    /// Steps whose gradients were clipped (0 without clipping).
    #[serde(default)]
    pub clipped_steps: u64,
    /// `completed`, `diverged` or `interrupted`.
    #[serde(default)]
    pub status: RunStatus,
    /// Where the first NaN or infinity appeared (null when none did).
    #[serde(default)]
    pub nonfinite: Option<NonFinite>,
    /// Updates skipped for a NaN or infinity (`on_nonfinite = "skip"`).
    #[serde(default)]
    pub skipped_steps: u64,
    /// A recurrent run's vanishing ratio through time at step 0: ‖∂L/∂x_1‖ / ‖∂L/∂x_T‖, the
    /// gradient reaching the first input over that reaching the last (absent for an MLP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vanishing_ratio_time: Option<f64>,
    /// The same at the final probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vanishing_ratio_time_final: Option<f64>,
}
