//! GEMM kernels on the benchmark's shapes: faer (what gradscope uses) against matrixmultiply
//! (ndarray's `general_mat_mul`), single- and two-threaded. `cargo bench --bench gemm`.
//!
//! Each row times the three products of one layer's training step — forward `x·Wᵀ`, `∂L/∂W =
//! gᵀ·x` and `∂L/∂x = g·W` — for the shape class of one `gradscope bench` config.

use gradscope::nn::{Scalar, Threads};
use ndarray::{Array2, linalg::general_mat_mul};
use std::time::Instant;

fn median_ms(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn main() {
    // (name, batch, fan_in, fan_out)
    let shapes = [("tiny", 64, 32, 32), ("deep", 128, 128, 128), ("slide", 128, 256, 256), ("wide", 256, 2048, 2048)];
    println!("{:6} {:>8} {:>12} {:>12} {:>16}", "shape", "threads", "faer ms", "mm ms", "faer GFLOP/s");
    for (name, b, i, o) in shapes {
        let x = Array2::from_shape_fn((b, i), |(r, c)| ((r * 7 + c) as f32 * 0.01).sin());
        let w = Array2::from_shape_fn((o, i), |(r, c)| ((r * 3 + c) as f32 * 0.02).cos());
        let g = Array2::from_shape_fn((b, o), |(r, c)| ((r + c) as f32 * 0.03).sin());
        let (mut y, mut gw, mut gx) = (Array2::zeros((b, o)), Array2::zeros((o, i)), Array2::zeros((b, i)));
        let reps = if name == "wide" { 10 } else { 200 };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let t = Threads::new(threads);
            let faer = pool.install(|| {
                median_ms(
                    || {
                        f32::gemm(y.view_mut(), x.view(), w.t(), false, t);
                        f32::gemm(gw.view_mut(), g.t(), x.view(), false, t);
                        f32::gemm(gx.view_mut(), g.view(), w.view(), false, t);
                    },
                    reps,
                )
            });
            // matrixmultiply runs on one thread unless built with its `threading` feature
            let mm = median_ms(
                || {
                    general_mat_mul(1.0, &x, &w.t(), 0.0, &mut y);
                    general_mat_mul(1.0, &g.t(), &x, 0.0, &mut gw);
                    general_mat_mul(1.0, &g, &w, 0.0, &mut gx);
                },
                reps,
            );
            let flops = 3.0 * 2.0 * (b * i * o) as f64;
            println!("{name:6} {threads:>8} {faer:>12.4} {mm:>12.4} {:>16.1}", flops / faer / 1e6);
        }
    }
}
