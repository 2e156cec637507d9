//! Two threads on one step of a plain MLP, each taking half of the batch's rows through every
//! layer: one join for the whole step (`Mlp::loss_and_grads`: both passes and the loss
//! gradient, [`step`]) or one per pass (`Mlp::forward`, `Mlp::backward`), instead of one (or,
//! split in halves, two) per product.
//!
//! A plain MLP's rows do not meet until the parameter gradients: z, h, φ′, ∂L/∂z, ∂L/∂h and
//! ∂L/∂x of a row depend on that row alone, so each half computes them for its rows with the
//! same operations as a whole-batch pass — the same bits (each entry of a product is one chain
//! over its depth, whichever rows the product holds). ∂L/∂W and ∂L/∂b are sums over the rows:
//! the first half (the *producer*) writes (or adds) its sum into the layer's gradient and says
//! so; the second half (the *consumer*) adds its own after that, ∂L/∂W by a product that
//! accumulates onto the producer's and ∂L/∂b from a scratch row. So a two-thread step rounds
//! ∂L/∂W and ∂L/∂b as (Σ first half) + (Σ second half): other bits than one thread's, the same
//! bits for every two-thread run (the halves and their order depend only on the batch size).
//!
//! The consumer computes ∂L/∂x first and waits for the producer only before its ∂L/∂W, the
//! producer ∂L/∂W first: the waits are short. [`crate::nn::par::join_helper_leads`] runs the
//! producer on the helper and the consumer on the calling thread, or the producer first on the
//! calling thread — so the consumer never waits for work that has not started, and the gradients
//! it finishes are in the calling thread's cache for the optimizer's step that follows.
//!
//! Used for `threads = 2` on networks without norm layers or residual connections whose
//! products are all smaller than [`WHOLE_MAX`] multiply-adds; larger products are shared by the
//! threads product by product (`sgemm::gemm_shared`), which keeps one thread's bits.

use super::Mlp;
use crate::nn::{Loss, Scalar, Targets, Threads, simd};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Products of this many multiply-adds or more (batch × fan_in × fan_out, any layer) keep the
/// network on the per-product path, where the large ones are shared between the threads.
pub const WHOLE_MAX: usize = 1 << 26;

/// Batches smaller than this are not cut.
pub const MIN_ROWS: usize = 16;

/// What the consumer keeps between steps (grown once, reused: the step allocates nothing).
#[derive(Clone, Debug, Default)]
pub(super) struct Scratch<F> {
    /// The consumer's Σ_rows ∂L/∂z of the current layer, before it is added to ∂L/∂b.
    bias: Vec<F>,
    /// Per linear layer, what the consumer's ∂L/∂W product said of the finiteness of ∂L/∂W.
    finite: Vec<Option<bool>>,
}

/// Whether a pass over `n` rows on `threads` goes by halves of the batch.
pub(super) fn applies<F: Scalar>(mlp: &Mlp<F>, n: usize, threads: Threads) -> bool {
    threads.count() == 2
        && mlp.arch.is_plain()
        && n >= MIN_ROWS
        && mlp.layers.iter().all(|l| n.saturating_mul(l.fan_in()).saturating_mul(l.fan_out()) < WHOLE_MAX)
}

/// The two row ranges of a batch of `n`.
fn halves(n: usize) -> (Range<usize>, Range<usize>) {
    (0..n / 2, n / 2..n)
}

/// Rows `r` of a buffer with contiguous rows, readable while other threads write its other rows.
///
/// # Safety
/// Nothing writes these rows while the view lives.
unsafe fn rows<'a, F>(a: &'a Array2<F>, r: &Range<usize>) -> ArrayView2<'a, F> {
    assert!(a.is_standard_layout() && r.end <= a.nrows(), "gradscope internal error: buffer rows");
    let cols = a.ncols();
    // SAFETY: in bounds (checked); the caller promises no concurrent writer of these rows.
    unsafe { ArrayView2::from_shape_ptr((r.len(), cols), a.as_ptr().add(r.start * cols)) }
}

/// Rows `r` of a buffer with contiguous rows, writable through a shared reference: each half
/// writes its own rows of the network's buffers while the other half writes its own.
///
/// # Safety
/// Nothing else reads or writes these rows while the view lives.
#[allow(clippy::mut_from_ref)]
unsafe fn rows_mut<'a, F>(a: &'a Array2<F>, r: &Range<usize>) -> ArrayViewMut2<'a, F> {
    assert!(a.is_standard_layout() && r.end <= a.nrows(), "gradscope internal error: buffer rows");
    let cols = a.ncols();
    // SAFETY: in bounds (checked); the pointer is the array's own (write provenance: the
    // buffer is owned by the network, borrowed mutably by the step that called us); the caller
    // promises exclusive use of these rows.
    unsafe { ArrayViewMut2::from_shape_ptr((r.len(), cols), a.as_ptr().cast_mut().add(r.start * cols)) }
}

/// A whole parameter gradient, writable through a shared reference.
///
/// # Safety
/// Nothing else reads or writes it while the view lives.
#[allow(clippy::mut_from_ref)]
unsafe fn whole_mut<F>(a: &Array2<F>) -> ArrayViewMut2<'_, F> {
    // SAFETY: as `rows_mut`, all rows.
    unsafe { rows_mut(a, &(0..a.nrows())) }
}

/// [`whole_mut`] for a vector.
///
/// # Safety
/// As [`whole_mut`].
#[allow(clippy::mut_from_ref)]
unsafe fn slice_mut<F>(a: &Array1<F>) -> &mut [F] {
    assert!(a.is_standard_layout(), "gradscope internal error: bias layout");
    // SAFETY: the array's own contiguous storage; exclusive use promised by the caller.
    unsafe { std::slice::from_raw_parts_mut(a.as_ptr().cast_mut(), a.len()) }
}

/// The forward pass on `x` (`n` rows, [`applies`] checked), each half of the rows on its own
/// thread; the same bits as [`Mlp::forward`] on one thread.
pub(super) fn forward<F: Scalar>(mlp: &mut Mlp<F>, x: ArrayView2<F>) {
    let n = x.nrows();
    let (first, second) = halves(n);
    let (x1, x2) = x.split_at(Axis(0), first.end);
    let net = &*mlp;
    // the threads take the rows they take in the backward pass, whose buffers they then find in
    // their own caches
    crate::nn::par::join_helper_leads(|| forward_rows(net, x1, &first), || forward_rows(net, x2, &second));
}

/// Every layer's forward pass on rows `r` of the batch (`x` holds those rows).
fn forward_rows<F: Scalar>(net: &Mlp<F>, x: ArrayView2<F>, r: &Range<usize>) {
    let last = net.layers.len() - 1;
    for (l, layer) in net.layers.iter().enumerate() {
        // SAFETY (each unsafe call): rows `r` of the network's buffers are this half's alone
        // during the join, and the other half touches only its own rows.
        let input = if l == 0 { x } else { unsafe { rows(&net.h[l - 1], r) } };
        let mut z = unsafe { rows_mut(&net.z[l], r) };
        layer.forward(input, z.view_mut(), Threads::One);
        if l < last {
            let (mut h, mut dphi) = unsafe { (rows_mut(&net.h[l], r), rows_mut(&net.dphi[l], r)) };
            let contiguous = (z.as_slice(), h.as_slice_mut(), dphi.as_slice_mut());
            let (Some(z), Some(h), Some(d)) = contiguous else {
                unreachable!("gradscope internal error: buffer rows are contiguous")
            };
            net.activation.forward_with_derivative_here(z, h, d);
        }
    }
}

/// The forward pass on rows `r` of the batch (`x` holds them) and their loss gradient.
fn forward_and_loss<F: Scalar>(net: &Mlp<F>, x: ArrayView2<F>, r: &Range<usize>, (target, loss): (Targets<F>, Loss)) {
    forward_rows(net, x, r);
    let last = net.layers.len() - 1;
    // SAFETY: rows `r` are this half's alone during the join.
    let (out, grad) = unsafe { (rows(&net.z[last], r), rows_mut(&net.grad_z[last], r)) };
    loss.gradient(out, target.rows_in(r.clone()), grad, net.rows);
}

/// How far the producer's backward pass has come: the lowest layer whose ∂L/∂W and ∂L/∂b hold
/// its share (layers count down from the output; `layers.len()` before the first).
struct Progress(AtomicUsize);

impl Progress {
    /// The consumer waits until the producer's share of layer `l` is in.
    fn wait_for(&self, l: usize) {
        crate::nn::par::spin_until(|| self.0.load(Ordering::Acquire) <= l);
    }
}

/// Lets a waiting consumer go when the producer unwinds (the join then re-raises the panic).
struct LetGo<'a>(&'a Progress);

impl Drop for LetGo<'_> {
    fn drop(&mut self) {
        self.0.0.store(0, Ordering::Release);
    }
}

/// The backward pass from the ∂L/∂ŷ that the loss wrote ([`applies`] checked for the forward
/// pass's `n` rows, `x` its input): per-row gradients with the bits of one thread, ∂L/∂W and
/// ∂L/∂b summed by halves (module docs), written or added as `mlp.grad_mode` says.
pub(super) fn backward<F: Scalar>(mlp: &mut Mlp<F>, x: ArrayView2<F>) {
    passes(mlp, x, None);
}

/// Forward pass, loss gradient and backward pass on `x` in one join ([`applies`] checked for its
/// `n` rows, `mlp.rows` set to `n`): each half takes its rows forward, writes their ∂L/∂ŷ (a
/// row's depends on that row and `n` alone: the bits of [`Loss::forward_backward`]) and goes on
/// backward without waiting for the other half in between. Returns L over the batch, summed after
/// the join over the rows in order (the bits of one thread).
pub(super) fn step<F: Scalar>(mlp: &mut Mlp<F>, x: ArrayView2<F>, target: Targets<F>, loss: Loss) -> f64 {
    passes(mlp, x, Some((target, loss)));
    loss.value(mlp.output(), target)
}

/// The backward pass, after the forward pass and the loss gradient when `fused` (see [`step`]).
fn passes<F: Scalar>(mlp: &mut Mlp<F>, x: ArrayView2<F>, fused: Option<(Targets<F>, Loss)>) {
    let (n, layers) = (mlp.rows, mlp.layers.len());
    let widest = mlp.layers.iter().map(|l| l.fan_out()).max().unwrap_or(0);
    let mut scratch = std::mem::take(&mut mlp.halves);
    scratch.bias.resize(widest, F::zero());
    scratch.finite.resize(layers, None);
    let (first, second) = halves(n);
    let (x1, x2) = x.split_at(Axis(0), first.end);
    let progress = Progress(AtomicUsize::new(layers));
    {
        let net = &*mlp;
        let (progress, scratch) = (&progress, &mut scratch);
        crate::nn::par::join_helper_leads(
            || {
                let _let_go = LetGo(progress);
                if let Some(f) = fused {
                    forward_and_loss(net, x1, &first, f);
                }
                backward_rows(net, x1, &first, Role::Producer(progress))
            },
            || {
                if let Some(f) = fused {
                    forward_and_loss(net, x2, &second, f);
                }
                backward_rows(net, x2, &second, Role::Consumer(progress, scratch))
            },
        );
    }
    for (layer, &finite) in mlp.layers.iter_mut().zip(&scratch.finite) {
        layer.set_grad_weight_finite(finite);
    }
    mlp.halves = scratch;
}

/// Which half a backward pass is.
enum Role<'a, F> {
    /// Writes (or adds) its sums first and publishes each layer's.
    Producer(&'a Progress),
    /// Adds its sums after the producer's; its scratch row and the finiteness of each ∂L/∂W.
    Consumer(&'a Progress, &'a mut Scratch<F>),
}

/// Every layer's backward pass on rows `r` (`x` holds the input's), from the output down.
fn backward_rows<F: Scalar>(net: &Mlp<F>, x: ArrayView2<F>, r: &Range<usize>, mut role: Role<'_, F>) {
    let last = net.layers.len() - 1;
    let write = net.grad_mode == crate::nn::linear::Grad::Write;
    for (l, layer) in net.layers.iter().enumerate().rev() {
        // SAFETY (each unsafe call on a buffer's rows): rows `r` are this half's alone during
        // the join. The parameter gradients are shared: the producer writes them before it
        // publishes layer `l`, the consumer touches them only after it has seen that.
        let mut gz = unsafe { rows_mut(&net.grad_z[l], r) };
        let gz_rows = gz.as_slice_mut().expect("gradscope internal error: buffer rows are contiguous");
        let consumer = matches!(role, Role::Consumer(..));
        let sums: &mut [F] = match &mut role {
            Role::Producer(_) => unsafe { slice_mut(&layer.grad_bias) },
            Role::Consumer(_, s) => &mut s.bias[..layer.fan_out()],
        };
        if write || consumer {
            sums.fill(F::zero());
        }
        if l == last {
            simd::add_rows(sums, gz_rows);
        } else {
            let (gh, dphi) = unsafe { (rows(&net.grad_h[l], r), rows(&net.dphi[l], r)) };
            let (Some(gh), Some(d)) = (gh.to_slice(), dphi.to_slice()) else {
                unreachable!("gradscope internal error: buffer rows are contiguous")
            };
            simd::mul_add_rows(gz_rows, gh, d, sums);
        }
        let gz = gz.view();
        let input = if l == 0 { x } else { unsafe { rows(&net.h[l - 1], r) } };
        // ∂L/∂x of these rows, into ∂L/∂h of the layer below (or the input's gradient)
        let backward_input = || {
            let dest = match l {
                0 if !net.want_input_grad => None,
                0 => Some(unsafe { rows_mut(&net.grad_input, r) }),
                _ => Some(unsafe { rows_mut(&net.grad_h[l - 1], r) }),
            };
            if let Some(dest) = dest {
                F::gemm_seq(dest, gz, layer.weight.view(), false);
            }
        };
        match &mut role {
            Role::Producer(progress) => {
                F::gemm_seq_checked(unsafe { whole_mut(&layer.grad_weight) }, gz.t(), input, !write, false);
                progress.0.store(l, Ordering::Release);
                backward_input();
            }
            Role::Consumer(progress, s) => {
                backward_input();
                progress.wait_for(l);
                let dw = unsafe { whole_mut(&layer.grad_weight) };
                s.finite[l] = F::gemm_seq_checked(dw, gz.t(), input, true, true);
                simd::add_rows(unsafe { slice_mut(&layer.grad_bias) }, &s.bias[..layer.fan_out()]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Hook, Init, LayerView, Loss, MlpConfig, Targets};
    use rand::SeedableRng;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap()
    }

    fn data<F: Scalar>(n: usize, inputs: usize, outputs: usize) -> (Array2<F>, Array2<F>) {
        let x = Array2::from_shape_fn((n, inputs), |(i, j)| F::of(((i * inputs + j) as f64 * 0.37).sin()));
        let y = Array2::from_shape_fn((n, outputs), |(i, j)| F::of(((i + 2 * j) as f64 * 0.11).cos()));
        (x, y)
    }

    fn net<F: Scalar>(sizes: &[usize], activation: Activation, seed: u64) -> Mlp<F> {
        let mut cfg =
            MlpConfig::uniform(sizes[0], sizes[1], sizes.len() - 2, sizes[sizes.len() - 1], activation, Init::Pytorch);
        cfg.sizes = sizes.to_vec();
        cfg.init::<F, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    fn bits<F: Scalar>(a: ArrayView2<F>) -> Vec<u64> {
        a.iter().map(|v| v.f64().to_bits()).collect()
    }

    /// ‖a − b‖ / ‖b‖.
    fn rel<F: Scalar>(a: impl IntoIterator<Item = F>, b: impl IntoIterator<Item = F>) -> f64 {
        let (mut d, mut s) = (0.0, 0.0);
        for (a, b) in a.into_iter().zip(b) {
            d += (a.f64() - b.f64()).powi(2);
            s += b.f64().powi(2);
        }
        if s == 0.0 { d.sqrt() } else { (d / s).sqrt() }
    }

    /// Records the order of the hook's calls and what it saw of ∂L/∂W.
    #[derive(Default)]
    struct Calls(Vec<(char, usize)>, Vec<f64>);

    impl<F: Scalar> Hook<F> for Calls {
        fn after_layer_forward(&mut self, v: &crate::nn::ForwardView<'_, F>) {
            self.0.push(('f', v.index));
        }
        fn after_layer_backward(&mut self, v: &LayerView<'_, F>) {
            self.0.push(('b', v.index));
            self.1.push(v.linear.grad_weight.iter().map(|g| g.f64() * g.f64()).sum());
        }
    }

    /// Against one thread: z, h, φ′, ∂L/∂z, ∂L/∂h and ∂L/∂x bit for bit (each row's own
    /// computation), ∂L/∂W and ∂L/∂b to rounding; the same bits on every two-thread run, probed
    /// or not; written gradients, then accumulated ones (a second backward pass adds).
    fn halves_match_one_thread<F: Scalar>(tol: f64) {
        let pool = pool();
        for (sizes, n, activation) in [
            (vec![7, 20, 20, 3], 33, Activation::Sigmoid),
            (vec![32, 32, 32, 32, 1], 64, Activation::Tanh),
            (vec![5, 40, 2], MIN_ROWS, Activation::Relu),
            (vec![9, 3], 17, Activation::Identity),
        ] {
            let (x, y) = data::<F>(n, sizes[0], sizes[sizes.len() - 1]);
            let mut one = net::<F>(&sizes, activation, 3);
            one.want_input_grad = true;
            let (mut two, mut again) = (one.clone(), one.clone());
            let target = Targets::Values(y.view());
            let l1 = one.loss_and_grads(x.view(), target, Loss::Mse, Threads::One);
            let mut calls = Calls::default();
            let (l2, l3) = pool.install(|| {
                assert!(applies(&two, n, Threads::new(2)), "{sizes:?} × {n} goes by halves");
                let l2 = two.loss_and_grads(x.view(), target, Loss::Mse, Threads::new(2));
                let l3 = again.loss_and_grads_probed(x.view(), target, Loss::Mse, Threads::new(2), Some(&mut calls));
                (l2, l3)
            });
            assert_eq!((l1.to_bits(), l2.to_bits(), l3.to_bits()), (l1.to_bits(), l1.to_bits(), l1.to_bits()));
            let layers = sizes.len() - 1;
            let order: Vec<_> = (0..layers).map(|l| ('f', l)).chain((0..layers).rev().map(|l| ('b', l))).collect();
            assert_eq!(calls.0, order, "the hook sees every layer, in the passes' order");
            for l in 0..layers {
                let (a, b, c) = (one.layer_view(l), two.layer_view(l), again.layer_view(l));
                for (name, fa, fb) in
                    [("z", a.z, b.z), ("h", a.h, b.h), ("grad_z", a.grad_z, b.grad_z), ("grad_h", a.grad_h, b.grad_h)]
                {
                    assert_eq!(bits(fa), bits(fb), "{sizes:?}: layer {l}'s {name} is a row's own");
                }
                assert_eq!(a.dphi.map(bits), b.dphi.map(bits));
                let (wa, wb) = (&a.linear.grad_weight, &b.linear.grad_weight);
                assert!(rel(wa.iter().copied(), wb.iter().copied()) < tol, "{sizes:?}: ∂W{l}");
                let (ba, bb) = (&a.linear.grad_bias, &b.linear.grad_bias);
                assert!(rel(ba.iter().copied(), bb.iter().copied()) < tol, "{sizes:?}: ∂b{l}");
                assert_eq!(bits(wb.view()), bits(c.linear.grad_weight.view()), "probing changes nothing");
                assert_eq!(calls.1[layers - 1 - l], wb.iter().map(|g| g.f64() * g.f64()).sum::<f64>());
                #[cfg(target_arch = "x86_64")]
                if F::NAME == "f32" && crate::nn::sgemm::available() {
                    assert_eq!(b.linear.grad_weight_finite(), Some(true), "the consumer's product checked ∂W{l}");
                }
            }
            assert_eq!(bits(one.grad_input()), bits(two.grad_input()));
            // a second backward pass adds to the gradients: twice the first, to rounding
            let before: Vec<F> = two.layers.iter().flat_map(|l| l.grad_weight.iter().copied()).collect();
            one.backward(x.view(), Threads::One);
            pool.install(|| two.backward(x.view(), Threads::new(2)));
            let (wa, wb) = (
                one.layers.iter().flat_map(|l| l.grad_weight.iter().copied()).collect::<Vec<_>>(),
                two.layers.iter().flat_map(|l| l.grad_weight.iter().copied()).collect::<Vec<_>>(),
            );
            assert!(rel(wb.iter().copied(), wa.iter().copied()) < tol, "{sizes:?}: accumulated ∂W");
            assert!(rel(wb.iter().copied(), before.iter().map(|&v| v + v)) < tol);
        }
    }

    /// The step in one join (`loss_and_grads`: both passes and the loss gradient) has the bits
    /// of the passes joined apart (`forward`, `loss_grad`, `backward`), for every loss, with
    /// targets as values and as classes, on an odd batch.
    #[test]
    fn one_join_step_has_the_bits_of_the_passes_joined_apart() {
        let pool = pool();
        let (sizes, n) = ([6, 24, 24, 4], 37);
        let (x, y) = data::<f32>(n, 6, 4);
        let classes: Vec<usize> = (0..n).map(|i| i * 7 % 4).collect();
        for loss in [Loss::Mse, Loss::Sse, Loss::CrossEntropy] {
            for target in [Targets::Values(y.view()), Targets::Classes(&classes)] {
                let mut one_join = net::<f32>(&sizes, Activation::Tanh, 5);
                let mut apart = one_join.clone();
                let (l1, l2) = pool.install(|| {
                    let t = Threads::new(2);
                    let l1 = one_join.loss_and_grads(x.view(), target, loss, t);
                    apart.forward(x.view(), t);
                    let l2 = apart.loss_grad(target, loss);
                    apart.grad_mode = crate::nn::linear::Grad::Write;
                    apart.backward(x.view(), t);
                    (l1, l2)
                });
                assert_eq!(l1.to_bits(), l2.to_bits(), "{loss:?}");
                for l in 0..sizes.len() - 1 {
                    let (a, b) = (one_join.layer_view(l), apart.layer_view(l));
                    for (fa, fb) in [(a.z, b.z), (a.h, b.h), (a.grad_z, b.grad_z), (a.grad_h, b.grad_h)] {
                        assert_eq!(bits(fa), bits(fb), "{loss:?}, layer {l}");
                    }
                    assert_eq!(bits(a.linear.grad_weight.view()), bits(b.linear.grad_weight.view()), "{loss:?} ∂W{l}");
                    assert_eq!(a.linear.grad_bias, b.linear.grad_bias, "{loss:?} ∂b{l}");
                }
            }
        }
    }

    #[test]
    fn halves_keep_each_rows_bits_and_round_only_the_sums_f64() {
        halves_match_one_thread::<f64>(1e-13);
    }

    #[test]
    fn halves_keep_each_rows_bits_and_round_only_the_sums_f32() {
        halves_match_one_thread::<f32>(1e-5);
    }

    #[test]
    fn halves_pass_the_gradient_check() {
        let (x, y) = data::<f64>(20, 4, 2);
        for activation in [Activation::Sigmoid, Activation::Tanh] {
            let mlp = net::<f64>(&[4, 6, 5, 2], activation, 11);
            let checks = pool().install(|| {
                assert!(applies(&mlp, 20, Threads::new(2)));
                crate::nn::gradcheck::check_mlp_on(
                    &mlp,
                    x.view(),
                    Targets::Values(y.view()),
                    Loss::Mse,
                    Threads::new(2),
                )
            });
            for c in checks {
                assert!(c.passes(1e-7), "{activation:?}: {c:?}");
            }
        }
    }

    /// Two-thread steps inside a join, where the helper is taken and `rayon::join` runs the
    /// halves (possibly one after the other on one thread): no deadlock, the same bits.
    #[test]
    fn halves_inside_a_join_finish_with_the_same_bits() {
        let (x, y) = data::<f32>(48, 10, 3);
        let start = net::<f32>(&[10, 24, 24, 3], Activation::Tanh, 5);
        let step = |mut m: Mlp<f32>| {
            for _ in 0..20 {
                m.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::new(2));
            }
            m.layers.iter().map(|l| bits(l.grad_weight.view())).collect::<Vec<_>>()
        };
        let pool = pool();
        let alone = pool.install(|| step(start.clone()));
        let (a, b) = pool.install(|| crate::nn::par::join(|| step(start.clone()), || step(start.clone())));
        let (c, d) = pool.install(|| rayon::join(|| step(start.clone()), || step(start.clone())));
        assert!(a == alone && b == alone && c == alone && d == alone);
    }

    #[test]
    fn small_batches_remedies_and_large_products_keep_the_per_product_path() {
        let plain = net::<f32>(&[8, 16, 2], Activation::Tanh, 1);
        assert!(applies(&plain, MIN_ROWS, Threads::new(2)));
        assert!(!applies(&plain, MIN_ROWS - 1, Threads::new(2)));
        assert!(!applies(&plain, 64, Threads::One));
        assert!(!applies(&plain, 64, Threads::new(3)));
        let mut normed = plain.clone();
        normed.arch.norm = Some(crate::nn::NormKind::Layer);
        assert!(!applies(&normed, 64, Threads::new(2)));
        let wide: Mlp<f32> =
            Mlp::new(vec![crate::nn::Linear::new(Array2::zeros((1024, 2048)), Array1::zeros(1024))], Activation::Relu);
        assert!(applies(&wide, 31, Threads::new(2)), "31 × 2048 × 1024 < 2²⁶");
        assert!(!applies(&wide, 32, Threads::new(2)), "32 × 2048 × 1024 = 2²⁶");
    }
}
