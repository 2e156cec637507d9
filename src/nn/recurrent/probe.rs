//! Probes through time: per layer and time step, the gradient norms the backward pass recorded
//! (‖∂L/∂h_t‖, ‖∂L/∂c_t‖, ‖∂L/∂x_t‖), the per-step factor, gate statistics and σ_max(W_hh)
//! against Pascanu's 1/γ line.
//!
//! Norms are Frobenius over the batch (‖∂L/∂h_t‖ of the `[B, H]` block of step t). Time steps
//! are 1-based in the text and 0-based in the vectors (index t − 1).

use super::{Cell, RecurrentNet};
use crate::nn::Scalar;
use serde::{Deserialize, Serialize};

/// JSON has no NaN (serde_json writes it as null; a 0/0 factor where the gradient is cut is
/// NaN): read null back as NaN, so records round-trip (checkpoints hold them).
mod nan {
    use serde::{Deserialize, Deserializer};

    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    pub fn vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }

    pub fn opt_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
        let v = Option::<Vec<Option<f64>>>::deserialize(d)?;
        Ok(v.map(|v| v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()))
    }
}

/// A gate's statistics over one forward pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateStats {
    /// `i`, `f`, `o` (LSTM) or `r`, `z` (GRU).
    pub gate: String,
    /// Mean over batch and units, per time step.
    #[serde(deserialize_with = "nan::vec")]
    pub mean: Vec<f64>,
    /// Fraction of values saturated closed: σ′ below 1/20 of its maximum 1/4 (the rule
    /// `LayerStats.saturation` uses) with σ < ½, i.e. σ < 0.0127. Over all steps.
    #[serde(deserialize_with = "nan::f64")]
    pub closed: f64,
    /// Fraction saturated open (σ > 0.9873). Over all steps.
    #[serde(deserialize_with = "nan::f64")]
    pub open: f64,
}

/// One recurrent layer's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeStats {
    /// The layer, 0 reading the input.
    pub layer: usize,
    /// ‖∂L/∂h_t‖, both paths (output and recurrent), t = 1..T.
    #[serde(deserialize_with = "nan::vec")]
    pub grad_h: Vec<f64>,
    /// LSTM ‖∂L/∂c_t‖ (null for the other cells).
    #[serde(deserialize_with = "nan::opt_vec", default)]
    pub grad_c: Option<Vec<f64>>,
    /// ‖∂L/∂x_t‖ of this layer's input (layer 0: the sequence; layer k: layer k−1's h_t
    /// through the output path).
    #[serde(deserialize_with = "nan::vec")]
    pub grad_x: Vec<f64>,
    /// ‖∂L/∂h_0‖, the gradient reaching the initial state (0 under truncated BPTT).
    #[serde(deserialize_with = "nan::f64")]
    pub grad_h0: f64,
    /// ‖∂L/∂h_{t−1}‖ / ‖∂L/∂h_t‖ for t = 2..T (length T − 1): the per-step factor.
    #[serde(deserialize_with = "nan::vec")]
    pub step_factor: Vec<f64>,
    /// ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖.
    #[serde(deserialize_with = "nan::f64")]
    pub vanishing_ratio_time: f64,
    /// σ_max of each H×H gate block of W_hh (one for the Elman cell), by power iteration.
    #[serde(deserialize_with = "nan::vec")]
    pub sigma_max_hh: Vec<f64>,
    /// 1/γ with γ = sup|φ′| of the recurrent nonlinearity: 1 for tanh and relu. σ_max below it
    /// means the Elman cell's gradient must vanish (Pascanu, Mikolov & Bengio 2013).
    #[serde(deserialize_with = "nan::f64")]
    pub pascanu_line: f64,
    /// The gates (empty for the Elman cell).
    pub gates: Vec<GateStats>,
}

/// The whole network's record of one probed forward + backward pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeRecord {
    /// The cell.
    pub cell: Cell,
    /// T.
    pub seq_len: usize,
    /// Truncation window (null: full BPTT).
    pub bptt: Option<usize>,
    /// One per layer, from the input.
    pub layers: Vec<TimeStats>,
    /// The vanishing ratio through time: ‖∂L/∂x_1‖ / ‖∂L/∂x_T‖ of the input sequence, the
    /// gradient reaching the first input over that reaching the last.
    #[serde(deserialize_with = "nan::f64")]
    pub vanishing_ratio_time: f64,
}

/// σ_max of a `rows × cols` row-major block by power iteration on AᵀA (f64), to a relative
/// change below 1e-12 or 10 000 iterations.
pub fn sigma_max(a: &[f64], rows: usize, cols: usize) -> f64 {
    // a fixed, generic start vector: deterministic and almost surely not orthogonal to v_max
    let mut v: Vec<f64> = (0..cols).map(|j| 1.0 + 0.37 * ((j * 7919 % 101) as f64 / 101.0)).collect();
    let mut u = vec![0.0; rows];
    let mut last = 0.0;
    for _ in 0..10_000 {
        let nv = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if nv == 0.0 {
            return 0.0;
        }
        v.iter_mut().for_each(|x| *x /= nv);
        for (i, ui) in u.iter_mut().enumerate() {
            *ui = a[i * cols..(i + 1) * cols].iter().zip(&v).map(|(w, x)| w * x).sum();
        }
        let sigma = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x = 0.0);
        for (i, ui) in u.iter().enumerate() {
            for (x, w) in v.iter_mut().zip(&a[i * cols..(i + 1) * cols]) {
                *x += w * ui;
            }
        }
        if (sigma - last).abs() <= 1e-12 * sigma {
            return sigma;
        }
        last = sigma;
    }
    last
}

fn gate_names(cell: Cell) -> &'static [(usize, &'static str)] {
    match cell {
        Cell::Lstm => &[(0, "i"), (1, "f"), (3, "o")],
        Cell::Gru => &[(0, "r"), (1, "z")],
        Cell::RnnTanh | Cell::RnnRelu => &[],
    }
}

impl<F: Scalar> RecurrentNet<F> {
    /// The record of the last forward and backward pass; the backward pass must have run with
    /// [`RecurrentNet::probing`] on (the norms are recorded inside it).
    pub fn time_record(&self) -> TimeRecord {
        let (t, b) = (self.layers[0].buf.seq, self.layers[0].buf.batch);
        let h = self.hidden_size();
        let g = self.cell.gates();
        let layers: Vec<TimeStats> = self
            .layers
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let grad_h = l.buf.grad_h_norm[..t].to_vec();
                let step_factor = (1..t).map(|s| grad_h[s - 1] / grad_h[s]).collect();
                let w: Vec<f64> = l.weight_hh.iter().map(|v| v.f64()).collect();
                let sigma_max_hh = (0..g).map(|blk| sigma_max(&w[blk * h * h..(blk + 1) * h * h], h, h)).collect();
                let gates = gate_names(self.cell)
                    .iter()
                    .map(|&(blk, name)| gate_stats(&l.buf.gates, name, blk, g * h, h, t, b))
                    .collect();
                TimeStats {
                    layer: k,
                    vanishing_ratio_time: grad_h[0] / grad_h[t - 1],
                    grad_h,
                    grad_c: (self.cell == Cell::Lstm).then(|| l.buf.grad_c_norm[..t].to_vec()),
                    grad_x: l.buf.grad_x_norm[..t].to_vec(),
                    grad_h0: l.buf.grad_h0_norm,
                    step_factor,
                    sigma_max_hh,
                    pascanu_line: 1.0 / self.cell.nonlinearity().max_derivative(),
                    gates,
                }
            })
            .collect();
        let gx = &layers[0].grad_x;
        TimeRecord { cell: self.cell, seq_len: t, bptt: self.bptt, vanishing_ratio_time: gx[0] / gx[t - 1], layers }
    }
}

fn gate_stats<F: Scalar>(gates: &[F], name: &str, blk: usize, gh: usize, h: usize, t: usize, b: usize) -> GateStats {
    let lo = F::of(0.5);
    let cut = 1.0 / 80.0; // σ′ = σ(1 − σ) below (1/4)/20
    let (mut closed, mut open) = (0usize, 0usize);
    let mut mean = Vec::with_capacity(t);
    for s in 0..t {
        let mut sum = 0.0;
        for row in gates[s * b * gh..(s + 1) * b * gh].chunks_exact(gh) {
            for &v in &row[blk * h..(blk + 1) * h] {
                sum += v.f64();
                let d = v.f64() * (1.0 - v.f64());
                if d < cut {
                    if v < lo { closed += 1 } else { open += 1 }
                }
            }
        }
        mean.push(sum / (b * h) as f64);
    }
    let n = (t * b * h) as f64;
    GateStats { gate: name.into(), mean, closed: closed as f64 / n, open: open as f64 / n }
}
