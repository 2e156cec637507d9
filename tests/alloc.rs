//! A training step allocates nothing after the first (issue #3): counted with a global allocator
//! that tallies every allocation of the training threads while counting is on
//! (`support/counting_alloc.rs`).

use gradscope::nn::{Activation, Arch, Init, Loss, MlpConfig, NormKind, NormPosition, Residual, Targets, Threads};
use gradscope::optim::{Clip, Optimizer, OptimizerState, Sgd};
use ndarray::Array2;
use rand::SeedableRng;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocations_during, mark_this_thread};

/// Allocations during steps 2..=6 of plain SGD and of momentum SGD, on a small and on a wide
/// network, after one step that may allocate. On one thread: none at all. On two threads (the
/// wide network's products are split with `rayon::join`), gradscope allocates nothing, but
/// rayon's work-stealing deques (crossbeam-epoch's garbage bags) occasionally do when a job is
/// stolen — measured 0 to 4 in five steps under load, against 405 when faer split the products
/// itself — so that case is held to at most two a step.
#[test]
fn training_steps_allocate_nothing_after_the_first() {
    // the remedies too: residual blocks with a projection and α ≠ 1, batch norm in training mode,
    // layer norm after φ, gradient clipping
    let remedies = Arch {
        residual: Some(Residual { block: 2, scale: 0.5 }),
        norm: Some(NormKind::Batch),
        norm_position: NormPosition::Pre,
    };
    let layer_post = Arch { residual: None, norm: Some(NormKind::Layer), norm_position: NormPosition::Post };
    for (width, threads, momentum, arch) in [
        (32, 1, 0.0, Arch::plain()),
        (64, 1, 0.9, Arch::plain()),
        (300, 2, 0.0, Arch::plain()),
        // rows of ∂L/∂y 4 KiB apart: the ∂W products go through the padded copy (nn::scalar)
        (1024, 1, 0.0, Arch::plain()),
        (32, 1, 0.9, remedies),
        (32, 1, 0.0, layer_post),
    ] {
        let run = || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let mut cfg = MlpConfig::uniform(40, width, 4, 3, Activation::Tanh, Init::Pytorch);
            cfg.arch = arch;
            let mut mlp = cfg.init::<f32, _>(&mut rng);
            let clip = if arch.is_plain() { Clip::None } else { Clip::Norm(0.5) };
            let x = Array2::from_shape_fn((64, 40), |(i, j)| ((i * 40 + j) as f32 * 0.37).sin());
            let y = Array2::from_shape_fn((64, 3), |(i, j)| ((i + j) as f32 * 0.11).cos());
            let rule = Optimizer::Sgd(Sgd { momentum, nesterov: false, weight_decay: 0.0 });
            let mut opt = OptimizerState::new(rule, &mlp);
            let t = Threads::new(threads);
            let mut step = |measured: bool| {
                mlp.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, t);
                clip.apply(&mut mlp);
                if measured { opt.step_measured(&mut mlp, 0.01) } else { opt.step(&mut mlp, 0.01) }
            };
            step(true);
            allocations_during(|| (0..5).for_each(|k| step(k % 2 == 0))).0
        };
        if threads == 1 {
            // on this very thread, no pool at all: every allocation counted is gradscope's
            mark_this_thread(true);
            let count = run();
            mark_this_thread(false);
            assert_eq!(count, 0, "width {width}, one thread, momentum {momentum}: {count} allocations");
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .start_handler(|_| mark_this_thread(true))
                .build()
                .unwrap();
            let count = pool.install(run);
            assert!(count <= 10, "width {width}, {threads} threads: {count} allocations in 5 steps");
        }
    }
}
