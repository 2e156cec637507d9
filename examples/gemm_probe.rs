//! The three matrix products of one layer's training step, each timed alone on one thread over
//! the thread's CPU time (so other processes on the machine do not count), in GFLOP/s and as a
//! fraction of the single-core FMA peak `gradscope bench` reports.
//!
//! ```sh
//! cargo run --release --example gemm_probe [SHAPE]     # tiny, deep, slide, wide, wide0, lstm-hh, lstm-T
//! ```
//!
//! `gradscope` is the product as a layer runs it (`Scalar::gemm_seq`: faer, with ∂L/∂y padded
//! when its rows alias, see `needs_padding` in src/nn/scalar.rs); `faer` is the same product
//! handed to faer unchanged. The shapes (batch, fan_in, fan_out) are the layers of the `bench`
//! configs; `lstm-hh` is one LSTM time step's h·W_hhᵀ and `lstm-T` its ∂W_hh over 28 steps.

use faer::linalg::matmul::matmul;
use gradscope::nn::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Seconds of CPU time this thread has used.
fn cpu() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Median CPU seconds of `f` over `reps` calls after one untimed call.
fn median_cpu(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = cpu();
            f();
            cpu() - s
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

/// `c = a·b` by faer, operands as they are.
fn faer_plain(mut c: ArrayViewMut2<f32>, a: ArrayView2<f32>, b: ArrayView2<f32>) {
    let ((m, k), n) = (a.dim(), b.ncols());
    let (sa, sb) = (a.strides(), b.strides());
    let sc = [c.strides()[0], c.strides()[1]];
    // SAFETY: the views are valid for their shapes and strides; `c` does not alias `a` or `b`.
    let (fa, fb, fc) = unsafe {
        (
            faer::MatRef::from_raw_parts(a.as_ptr(), m, k, sa[0], sa[1]),
            faer::MatRef::from_raw_parts(b.as_ptr(), k, n, sb[0], sb[1]),
            faer::MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, sc[0], sc[1]),
        )
    };
    matmul(fc, faer::Accum::Replace, fa, fb, 1.0, faer::Par::Seq);
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    #[cfg(target_arch = "x86_64")]
    if which == "tune" {
        let shape = match std::env::args().nth(2).as_deref() {
            Some("tiny") => (64, 32, 32),
            Some("deep") => (128, 128, 128),
            Some("slide") => (128, 256, 256),
            Some("wide0") => (256, 784, 2048),
            _ => (256, 2048, 2048),
        };
        return tune(shape, &std::env::var("GEMM_TUNE").unwrap_or_else(|_| "256,1020,512".into()));
    }
    let peak = gradscope::peak::measure(1).gflops;
    println!(
        "single-core peak {peak:.1} GFLOP/s; GFLOP/s of each product (fraction of that peak), median of CPU times"
    );
    println!(
        "{:8} {:>6} {:>6} {:>6} {:>10} {:>14} {:>14} {:>14}",
        "shape", "batch", "in", "out", "kernel", "y = x·Wᵀ", "∂W = gᵀ·x", "∂x = g·W"
    );
    let shapes = [
        ("tiny", 64, 32, 32),
        ("deep", 128, 128, 128),
        ("slide", 128, 256, 256),
        ("wide0", 256, 784, 2048),
        ("wide", 256, 2048, 2048),
        ("lstm-hh", 128, 128, 512),
        ("lstm-T", 3584, 128, 512),
    ];
    for (name, b, i, o) in shapes.into_iter().filter(|s| which == "all" || which == s.0) {
        let x = Array2::from_shape_fn((b, i), |(r, c)| ((r * 7 + c) as f32 * 0.01).sin());
        let w = Array2::from_shape_fn((o, i), |(r, c)| ((r * 3 + c) as f32 * 0.02).cos());
        let g = Array2::from_shape_fn((b, o), |(r, c)| ((r + c) as f32 * 0.03).sin());
        let (mut y, mut gw, mut gx) = (Array2::zeros((b, o)), Array2::zeros((o, i)), Array2::zeros((b, i)));
        let reps = (2e9 / (2.0 * (b * i * o) as f64)).clamp(5.0, 20_000.0) as usize;
        let gflop = 2.0 * (b * i * o) as f64 / 1e9;
        let cell = |secs: f64| format!("{:.1} ({:.0} %)", gflop / secs, 100.0 * gflop / secs / peak);
        for kernel in ["gradscope", "faer"] {
            let gs = kernel == "gradscope";
            let fwd = median_cpu(
                || match gs {
                    true => f32::gemm_seq(y.view_mut(), x.view(), w.t(), false),
                    false => faer_plain(y.view_mut(), x.view(), w.t()),
                },
                reps,
            );
            let dw = median_cpu(
                || match gs {
                    true => f32::gemm_seq(gw.view_mut(), g.t(), x.view(), false),
                    false => faer_plain(gw.view_mut(), g.t(), x.view()),
                },
                reps,
            );
            let dx = median_cpu(
                || match gs {
                    true => f32::gemm_seq(gx.view_mut(), g.view(), w.view(), false),
                    false => faer_plain(gx.view_mut(), g.view(), w.view()),
                },
                reps,
            );
            println!("{name:8} {b:>6} {i:>6} {o:>6} {kernel:>10} {:>14} {:>14} {:>14}", cell(fwd), cell(dw), cell(dx));
        }
    }
}

/// `GEMM_TUNE="kc,mc,nc kc,mc,nc …" gemm_probe tune SHAPE`: the AVX-512 product with each
/// blocking, alternated round by round in this process, median GFLOP/s of each product.
#[cfg(target_arch = "x86_64")]
fn tune(shape: (usize, usize, usize), spec: &str) {
    use gradscope::nn::sgemm::{Blocking, Operand, Product, gemm_blocked};
    let (b, i, o) = shape;
    let blockings: Vec<Blocking> = spec
        .split_whitespace()
        .map(|t| {
            let v: Vec<usize> = t.split(',').map(|x| x.parse().expect("kc,mc,nc")).collect();
            Blocking { kc: v[0], mc: v[1], nc: v[2], direct: v.get(3) != Some(&0) }
        })
        .collect();
    let x = Array2::from_shape_fn((b, i), |(r, c)| ((r * 7 + c) as f32 * 0.01).sin());
    let w = Array2::from_shape_fn((o, i), |(r, c)| ((r * 3 + c) as f32 * 0.02).cos());
    let g = Array2::from_shape_fn((b, o), |(r, c)| ((r + c) as f32 * 0.03).sin());
    let (mut y, mut gw, mut gx) =
        (Array2::<f32>::zeros((b, o)), Array2::<f32>::zeros((o, i)), Array2::<f32>::zeros((b, i)));
    let op = |v: ArrayView2<f32>| Operand { ptr: v.as_ptr(), rs: v.strides()[0], cs: v.strides()[1] };
    let gflop = 2.0 * (b * i * o) as f64 / 1e9;
    let reps = (1e9 / (2.0 * (b * i * o) as f64)).clamp(3.0, 5000.0) as usize;
    let mut times = vec![[Vec::new(), Vec::new(), Vec::new()]; blockings.len() + 1];
    for _round in 0..7 {
        for (v, t) in times.iter_mut().enumerate() {
            let bl = blockings.get(v).copied();
            let run = |c: ArrayViewMut2<f32>, a: ArrayView2<f32>, bb: ArrayView2<f32>| match bl {
                // SAFETY: AVX-512 checked by the caller; shapes agree; c is a fresh mutable view.
                Some(bl) => unsafe {
                    let (m, k, n) = (a.nrows(), a.ncols(), bb.ncols());
                    let mut c = c;
                    let (c, rsc) = (c.as_mut_ptr(), c.strides()[0]);
                    gemm_blocked(bl, Product { m, n, k, a: op(a), b: op(bb), c, rsc, accumulate: false, check: false });
                },
                None => faer_plain(c, a, bb),
            };
            t[0].push(median_cpu(|| run(y.view_mut(), x.view(), w.t()), reps));
            t[1].push(median_cpu(|| run(gw.view_mut(), g.t(), x.view()), reps));
            t[2].push(median_cpu(|| run(gx.view_mut(), g.view(), w.view()), reps));
        }
    }
    for (v, t) in times.iter_mut().enumerate() {
        let name =
            blockings.get(v).map_or("faer".to_string(), |b| format!("{},{},{},{}", b.kc, b.mc, b.nc, b.direct as u8));
        let med = |s: &mut Vec<f64>| {
            s.sort_by(f64::total_cmp);
            gflop / s[s.len() / 2]
        };
        println!("{name:>16} fwd {:6.1} dW {:6.1} dx {:6.1}", med(&mut t[0]), med(&mut t[1]), med(&mut t[2]));
    }
}
