//! The adding problem, trained: issue 14's protocol (hidden 64, PyTorch's default init, Adam
//! lr 1e-3, batch 64, MSE; the mean predictor scores 1/6 ≈ 0.167).
//!
//! ```text
//! cargo run --release --example adding -- CELL T [STEPS] [SEED]
//! ```
//! CELL is rnn_tanh, rnn_relu, lstm or gru. Prints, as one JSON line, the gradient's vanishing
//! ratio through time at initialisation (‖∂L/∂x_1‖/‖∂L/∂x_T‖ on the first batch), the test MSE
//! every 250 steps and at the end, and the wall time. 20 000 training and 2 000 test sequences,
//! one thread.

use gradscope::data::Labels;
use gradscope::data::sequence::{ADDING_BASELINE_MSE, adding};
use gradscope::error::Named;
use gradscope::nn::recurrent::{Cell, RecurrentConfig};
use gradscope::nn::{Loss, Network, Targets, Threads};
use gradscope::optim::{Adam, AdamState};
use ndarray::{Array2, Array3, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: adding CELL T [STEPS] [SEED]";
    let cell = Cell::parse("cell", args.get(1).ok_or(usage)?)?;
    let t: usize = args.get(2).ok_or(usage)?.parse()?;
    let steps: usize = args.get(3).map_or(Ok(2000), |s| s.parse())?;
    let seed: u64 = args.get(4).map_or(Ok(0), |s| s.parse())?;
    let (batch, hidden, lr) = (64, 64, 1e-3);
    let data = adding(t, 20_000, 2_000, seed)?;
    let mut net = RecurrentConfig::new(cell, 2, hidden, 1, 1).init::<f32, _>(&mut ChaCha8Rng::seed_from_u64(seed))?;
    let adam = Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false };
    let mut states: Vec<AdamState<f32>> = Vec::new();
    net.for_each_param(|_, _, v, _| states.push(AdamState::new(v.len())));
    let mut order_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let (mut x, mut y) = (Array3::<f32>::zeros((t, batch, 2)), Array2::<f32>::zeros((batch, 1)));
    let Labels::Values(train_y) = &data.train.y else { unreachable!("the adding problem has values") };
    let Labels::Values(test_y) = &data.test.y else { unreachable!("the adding problem has values") };
    let test_mse = |net: &mut gradscope::nn::recurrent::RecurrentNet<f32>| {
        let out = net.forward(data.test.x.view(), Threads::One);
        Loss::Mse.value(out, Targets::Values(test_y.view()))
    };
    let start = std::time::Instant::now();
    let (mut curve, mut ratio0, mut pos) = (Vec::new(), f64::NAN, order.len());
    for step in 0..steps {
        if pos + batch > order.len() {
            order.shuffle(&mut order_rng);
            pos = 0;
        }
        for (j, &i) in order[pos..pos + batch].iter().enumerate() {
            x.index_axis_mut(Axis(1), j).assign(&data.train.x.index_axis(Axis(1), i));
            y[(j, 0)] = train_y[(i, 0)];
        }
        pos += batch;
        net.zero_grad();
        net.probing = step == 0;
        net.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::One);
        if step == 0 {
            ratio0 = net.time_record().vanishing_ratio_time;
        }
        let mut k = 0;
        net.for_each_param(|_, _, v, g| {
            adam.step(lr, v, g, &mut states[k], false);
            k += 1;
        });
        if (step + 1) % 250 == 0 {
            curve.push((step + 1, test_mse(&mut net)));
        }
    }
    let last = test_mse(&mut net);
    let line = serde_json::json!({
        "cell": cell.name(), "seq_len": t, "steps": steps, "seed": seed,
        "baseline_mse": ADDING_BASELINE_MSE, "test_mse": last, "curve": curve,
        "vanishing_ratio_time_at_init": ratio0, "seconds": start.elapsed().as_secs_f64(),
    });
    println!("{line}");
    Ok(())
}
