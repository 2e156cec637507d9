//! A recurrent training step allocates nothing after the first (issue 14): the per-step state
//! lives in buffers sized by the first pass. Counted with a global allocator on this thread
//! (`support/counting_alloc.rs`).

use gradscope::error::Named;
use gradscope::nn::recurrent::{Cell, Head, RecurrentConfig};
use gradscope::nn::{Loss, Network, Targets, Threads};
use gradscope::optim::{Adam, AdamState};
use ndarray::{Array2, Array3};
use rand::SeedableRng;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocations_during, mark_this_thread};

/// Five Adam steps of each cell, 2 layers, both heads, with and without truncation and
/// probing, after one step that may allocate.
#[test]
fn recurrent_steps_allocate_nothing_after_the_first() {
    for cell in [Cell::RnnTanh, Cell::RnnRelu, Cell::Lstm, Cell::Gru] {
        for (head, bptt, probing) in [(Head::Last, None, false), (Head::EveryStep, Some(3), true)] {
            let mut cfg = RecurrentConfig::new(cell, 6, 32, 2, 3);
            cfg.head = head;
            let mut net = cfg.init::<f32, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
            (net.bptt, net.probing) = (bptt, probing);
            let (t, b) = (10, 16);
            let x = Array3::from_shape_fn((t, b, 6), |(s, i, j)| ((s * 97 + i * 6 + j) as f32 * 0.37).sin());
            let rows = if head == Head::Last { b } else { t * b };
            let y = Array2::from_shape_fn((rows, 3), |(i, j)| ((i + j) as f32 * 0.11).cos());
            let adam = Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false };
            let mut states: Vec<AdamState<f32>> = Vec::new();
            net.for_each_param(|_, _, v, _| states.push(AdamState::new(v.len())));
            let mut step = || {
                net.zero_grad();
                net.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::One);
                let mut k = 0;
                net.for_each_param(|_, _, v, g| {
                    adam.step(1e-3, v, g, &mut states[k], false);
                    k += 1;
                });
            };
            step();
            mark_this_thread(true);
            let (n, ()) = allocations_during(|| (0..5).for_each(|_| step()));
            mark_this_thread(false);
            assert_eq!(n, 0, "{} {head:?} bptt {bptt:?}: {n} allocations in 5 steps", cell.name());
        }
    }
}
