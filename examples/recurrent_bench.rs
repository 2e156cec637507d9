//! gradscope's side of `bench/torch_rnn.py` (until `gradscope bench --config lstm` exists): one
//! training step — forward, cross-entropy, BPTT, plain SGD (lr 0.01) — of an LSTM, Elman RNN or
//! GRU of row-by-row MNIST's shapes (in 28, hidden 128, T 28, batch 128, 10 outputs), f32.
//!
//! ```text
//! cargo run --release --example recurrent_bench -- [lstm|rnn|gru] [THREADS] [STEPS]
//! ```

use gradscope::nn::recurrent::{Cell, RecurrentConfig};
use gradscope::nn::{Loss, Network, Targets, Threads};
use ndarray::Array3;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let cell = Cell::from_name(args.get(1).map_or("lstm", String::as_str))?;
    let threads: usize = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let steps: usize = args.get(3).map_or(Ok(30), |s| s.parse())?;
    let (t, b, i, h, o) = (28, 128, 28, 128, 10);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut net = RecurrentConfig::new(cell, i, h, 1, o).init::<f32, _>(&mut rng)?;
    let x = Array3::from_shape_simple_fn((t, b, i), || rng.random_range(-1.0f32..1.0));
    let y: Vec<usize> = (0..b).map(|_| rng.random_range(0..o)).collect();
    let th = Threads::new(threads);
    let mut times = Vec::new();
    pool.install(|| {
        for step in 0..steps + 5 {
            let start = std::time::Instant::now();
            net.zero_grad();
            net.loss_and_grads(x.view(), Targets::Classes(&y), Loss::CrossEntropy, th);
            net.for_each_param(|_, _, v, g| v.iter_mut().zip(g.iter()).for_each(|(v, g)| *v -= 0.01 * g));
            if step >= 5 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    });
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{:5} median {median:8.2} ms  min {:8.2}  max {:8.2}  ({threads} threads, {steps} timed steps)",
        cell.name(),
        times[0],
        times[times.len() - 1]
    );
    Ok(())
}
