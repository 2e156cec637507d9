//! Observation hooks: what a layer shows to an observer while the passes run.
//!
//! The engine calls a [`Hook`] (when one is attached) right after each layer's forward pass and
//! right after its gradients are final, while its buffers are still in cache — or, where a
//! two-thread step goes by halves of the batch (`nn::mlp`'s `halves`), once both halves have
//! finished the pass, with every layer at once ([`Hook::after_forward_pass`], then
//! [`Hook::after_backward_pass`]: `Mlp::loss_and_grads` runs both passes in one join), when
//! each layer's tensors are complete. Those two default to the per-layer calls in order; the
//! statistics probe spreads its layers over the two threads.
//! The hook only reads. The statistics probes (`crate::probe`) and the non-finite guard (`crate::nonfinite`)
//! implement it; the engine knows nothing of them.

use crate::nn::{ForwardView, LayerView, Scalar};

/// Observes a network's passes, layer by layer. Both methods default to doing nothing.
pub trait Hook<F: Scalar> {
    /// Layer `v.index` has just computed z, h and φ′ for this batch.
    fn after_layer_forward(&mut self, _v: &ForwardView<'_, F>) {}
    /// Layer `v.index` has just received its gradients (∂L/∂z, ∂L/∂h, ∂L/∂W, ∂L/∂b, and those of
    /// its norm layer and residual projection): they are final.
    fn after_layer_backward(&mut self, _v: &LayerView<'_, F>) {}
    /// Every one of the `layers` layers has computed its forward pass (`view(l)` is layer l's):
    /// where a two-thread step goes by halves, the engine calls this once both have finished,
    /// instead of `after_layer_forward` layer by layer. The default does that, from the input; a
    /// hook whose layers are independent of each other may spread them over the pool's threads.
    fn after_forward_pass<'a>(&mut self, layers: usize, view: &(dyn Fn(usize) -> ForwardView<'a, F> + Sync)) {
        (0..layers).for_each(|l| self.after_layer_forward(&view(l)));
    }
    /// [`Hook::after_forward_pass`] for the backward pass: by default `after_layer_backward` of every
    /// layer, from the output.
    fn after_backward_pass<'a>(&mut self, layers: usize, view: &(dyn Fn(usize) -> LayerView<'a, F> + Sync)) {
        (0..layers).rev().for_each(|l| self.after_layer_backward(&view(l)));
    }
}
