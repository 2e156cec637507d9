//! What it costs to split work over two threads, the way `Scalar::gemm` splits a product, with
//! `rayon::join` and with gradscope's `nn::par::join` (a helper that spins 1 ms before parking):
//! `cargo bench --bench join`.
//!
//! Each sample joins two halves that each spin for `half` µs on a pool of 2 threads, after the
//! calling thread spun alone for `gap` µs (the other work of a training step, during which the
//! second worker has nothing to do). Perfect overlap takes `half`; running both halves on the
//! calling thread takes 2·`half`. The overhead printed is (median time − `half`): near zero when
//! the second worker steals at once, near `half` when it never does, and between them the time
//! it takes the worker to wake up. rayon's idle workers spin (yielding) for a while before they
//! sleep, so short gaps find them awake and long gaps find them asleep.

use std::hint::black_box;
use std::time::{Duration, Instant};

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        black_box(());
    }
}

fn main() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("thread pool");
    println!(
        "{:>6} {:>8} {:>8} {:>12} {:>12} {:>10}",
        "join", "gap µs", "half µs", "median µs", "overhead µs", "stolen %"
    );
    for par in [false, true] {
        pool.install(|| run(par));
    }
}

/// One table: `par` picks `gradscope::nn::par::join` over `rayon::join`.
fn run(par: bool) {
    {
        for gap in [0u64, 20, 100, 1000, 5000] {
            for half in [2u64, 10, 50] {
                let (g, h) = (Duration::from_micros(gap), Duration::from_micros(half));
                let caller = std::thread::current().id();
                let reps = 400;
                let mut times = Vec::with_capacity(reps);
                let mut stolen = 0;
                for _ in 0..reps {
                    spin(g);
                    let start = Instant::now();
                    let right = || (spin(h), std::thread::current().id()).1;
                    let (_, other) =
                        if par { gradscope::nn::par::join(|| spin(h), right) } else { rayon::join(|| spin(h), right) };
                    times.push(start.elapsed().as_secs_f64() * 1e6);
                    stolen += usize::from(other != caller);
                }
                times.sort_by(f64::total_cmp);
                let median = times[reps / 2];
                println!(
                    "{:>6} {gap:>8} {half:>8} {median:>12.2} {:>12.2} {:>10.0}",
                    if par { "par" } else { "rayon" },
                    median - half as f64,
                    100.0 * stolen as f64 / reps as f64
                );
            }
        }
    }
}
