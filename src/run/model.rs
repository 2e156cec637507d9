//! [`Model`]: the one model type of the run layer, an MLP or a recurrent network.
//!
//! Everything that walks tensors (optimizer, clipping, checkpoints, parameter norms, the
//! finiteness check, weights) goes through [`Network`], which both implement; what differs —
//! how a batch is fed, how the passes are probed and guarded, where a NaN is located — is
//! matched here once, so [`super::Trainer`] has one path for both. The MLP's arm calls exactly
//! what the trainer called before (its outputs are bit-identical).

use super::batch::Batch;
use crate::config::RunSpec;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::recurrent::{RecurrentConfig, RecurrentNet};
use crate::nn::{Loss, Mlp, Name, Network, Scalar, Targets, TensorKind, TensorMut, TensorRef, Threads};
use crate::nonfinite::{self, Guard, NonFinite};
use crate::probe::GradientProbe;
use ndarray::ArrayView2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A network a run trains.
#[derive(Clone, Debug)]
pub enum Model<F> {
    /// The multilayer perceptron (`cell` absent or `none`).
    Mlp(Mlp<F>),
    /// Stacked recurrent layers and a Linear head (`cell = "rnn_tanh"`, …).
    Recurrent(RecurrentNet<F>),
}

/// Builds the network a spec describes for a data set, drawing weights from the seed: the
/// MLP of [`super::build_mlp`], or the recurrent net of `spec.recurrent` (hidden size
/// `width`, inputs per step = the data's features / steps).
pub fn build_model<F: Scalar>(spec: &RunSpec, data: &Dataset) -> Result<Model<F>> {
    let Some(r) = &spec.recurrent else {
        return Ok(Model::Mlp(super::build_mlp(spec, data)));
    };
    if !data.inputs().is_multiple_of(r.steps) {
        return Err(Error::Data {
            path: data.name.clone().into(),
            msg: format!("{} features per row do not split into {} time steps", data.inputs(), r.steps),
        });
    }
    let mut cfg = RecurrentConfig::new(r.cell, data.inputs() / r.steps, spec.width, r.num_layers, data.outputs());
    (cfg.head, cfg.hidden_init, cfg.gate_bias) = (r.head, r.hidden_init, r.gate_bias);
    let mut net: RecurrentNet<F> = cfg.init(&mut ChaCha8Rng::seed_from_u64(spec.seed))?;
    net.bptt = r.bptt;
    Ok(Model::Recurrent(net))
}

impl<F: Scalar> Model<F> {
    /// The MLP, if it is one.
    pub fn as_mlp(&self) -> Option<&Mlp<F>> {
        match self {
            Model::Mlp(m) => Some(m),
            Model::Recurrent(_) => None,
        }
    }

    /// The MLP, writable, if it is one.
    pub fn as_mlp_mut(&mut self) -> Option<&mut Mlp<F>> {
        match self {
            Model::Mlp(m) => Some(m),
            Model::Recurrent(_) => None,
        }
    }

    /// The recurrent net, if it is one.
    pub fn as_recurrent(&self) -> Option<&RecurrentNet<F>> {
        match self {
            Model::Mlp(_) => None,
            Model::Recurrent(n) => Some(n),
        }
    }

    /// Sizes the buffers for `rows` rows (of `steps` steps).
    pub(crate) fn reserve(&mut self, rows: usize, steps: usize) {
        match self {
            Model::Mlp(m) => m.reserve(rows),
            Model::Recurrent(n) => n.reserve(steps, rows),
        }
    }

    /// Whether training needs batch statistics (batch norm).
    pub(crate) fn needs_batch_stats(&self) -> bool {
        self.as_mlp().is_some_and(Mlp::needs_batch_stats)
    }

    /// Batch norm's `track_running_stats` (the MLP's; nothing for a recurrent net).
    pub(crate) fn set_track_running_stats(&mut self, on: bool) {
        if let Model::Mlp(m) = self {
            m.set_track_running_stats(on);
        }
    }

    /// Forward, loss and backward on the batch with fresh gradients; the guard sees every
    /// parameter gradient (the MLP's per layer inside the pass, its inner hook too). A
    /// recurrent net records its per-step norms when `probing` (for
    /// [`RecurrentNet::time_record`]).
    pub(crate) fn loss_and_grads(
        &mut self,
        batch: &Batch<F>,
        targets: Targets<F>,
        loss: Loss,
        threads: Threads,
        guard: &mut Guard<'_, F>,
        probing: bool,
    ) -> f64 {
        match self {
            Model::Mlp(m) => m.loss_and_grads_probed(batch.x(), targets, loss, threads, Some(guard)),
            Model::Recurrent(n) => {
                n.probing = probing;
                n.zero_grad();
                let value = n.loss_and_grads(batch.x3(), targets, loss, threads);
                n.probing = false;
                guard.finite &= nonfinite::grads_finite(n);
                value
            }
        }
    }

    /// The output of a forward pass over the batch (eval mode for batch norm).
    pub(crate) fn forward(&mut self, batch: &Batch<F>, threads: Threads) -> ArrayView2<'_, F> {
        match self {
            Model::Mlp(m) => m.forward(batch.x(), threads),
            Model::Recurrent(n) => n.forward(batch.x3(), threads),
        }
    }

    /// After a probed backward pass: starts the probe's record (a recurrent net's with its
    /// record through time).
    pub(crate) fn after_backward(&self, probe: &mut GradientProbe, step: u64, epoch: u64, loss: f64) {
        match self {
            Model::Mlp(m) => probe.after_backward(step, epoch, loss, m),
            Model::Recurrent(n) => probe.after_backward_recurrent(step, epoch, loss, n),
        }
    }

    /// Where the last step's first NaN or infinity is.
    pub(crate) fn locate(&self, step: u64, loss: f64) -> Option<NonFinite> {
        match self {
            Model::Mlp(m) => nonfinite::locate(m, step, loss),
            Model::Recurrent(n) => nonfinite::locate_tensors(n, step, loss),
        }
    }
}

impl<F: Scalar> Network<F> for Model<F> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(TensorRef<'a, F>)) {
        match self {
            Model::Mlp(m) => m.visit(f),
            Model::Recurrent(n) => n.visit(f),
        }
    }

    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(TensorMut<'a, F>)) {
        match self {
            Model::Mlp(m) => m.visit_mut(f),
            Model::Recurrent(n) => n.visit_mut(f),
        }
    }

    /// Either model's measured tensors (their groups differ: `layers` against `rnn`, `fc`).
    fn measures(name: Name, kind: TensorKind) -> bool {
        Mlp::<F>::measures(name, kind) || RecurrentNet::<F>::measures(name, kind)
    }
}
