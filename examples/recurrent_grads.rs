//! Writes gradscope's gradients of recurrent networks for `scripts/check_recurrent.py`, which
//! computes the same gradients with PyTorch's autograd and compares them.
//!
//! ```text
//! cargo run --release --example recurrent_grads -- OUT_DIR
//! ```
//! For every case (cell × layers × init × head × truncation × dtype) OUT_DIR/NAME/ gets
//! `weights.safetensors` (state_dict keys `rnn.*`, `fc.*`), `batch.safetensors` (`x`
//! `[T, B, I]`, and `target` values or int64 `classes`) and `grads.safetensors` (every tensor's
//! gradient under its key, and `input`, ∂L/∂x); OUT_DIR/cases.json lists the cases.

use gradscope::error::Named;
use gradscope::io::recurrent::{grads_to_safetensors, to_safetensors};
use gradscope::io::weights::serialize;
use gradscope::nn::recurrent::{Cell, GateBias, Head, HiddenInit, RecurrentConfig, RecurrentNet};
use gradscope::nn::{Loss, Scalar, Targets, Threads};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::Path;

const T: usize = 12;
const B: usize = 4;
const I: usize = 5;
const H: usize = 8;
const O: usize = 3;

fn le<F: Scalar>(v: impl Iterator<Item = f64>) -> Vec<u8> {
    if F::NAME == "f32" {
        v.flat_map(|x| (x as f32).to_le_bytes()).collect()
    } else {
        v.flat_map(|x| x.to_le_bytes()).collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn write_case<F: Scalar>(
    dir: &Path,
    net64: &RecurrentNet<f64>,
    x64: &Array3<f64>,
    values: &Array2<f64>,
    classes: &[usize],
    loss: Loss,
) -> std::io::Result<()> {
    let mut net: RecurrentNet<F> = net64.cast();
    net.want_input_grad = true;
    let x = x64.mapv(F::of);
    let v = values.mapv(F::of);
    let target = if loss == Loss::CrossEntropy { Targets::Classes(classes) } else { Targets::Values(v.view()) };
    net.loss_and_grads(x.view(), target, loss, Threads::One);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("weights.safetensors"), to_safetensors(&net))?;
    let dtype = if F::NAME == "f32" { Dtype::F32 } else { Dtype::F64 };
    let mut batch = vec![("x".to_string(), vec![T, B, I], dtype, le::<F>(x.iter().map(|v| v.f64())))];
    if loss == Loss::CrossEntropy {
        let bytes = classes.iter().flat_map(|&c| (c as i64).to_le_bytes()).collect();
        batch.push(("classes".into(), vec![classes.len()], Dtype::I64, bytes));
    } else {
        batch.push(("target".into(), vec![v.nrows(), O], dtype, le::<F>(v.iter().map(|v| v.f64()))));
    }
    std::fs::write(dir.join("batch.safetensors"), gradscope::io::weights::serialize_typed(batch, HashMap::new()))?;
    // parameter gradients, then ∂L/∂x appended as `input`
    let grads = grads_to_safetensors::<F, F>(&net);
    let st = safetensors::SafeTensors::deserialize(&grads).expect("just written");
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec())).collect();
    tensors.push(("input".into(), vec![T, B, I], le::<F>(net.grad_input().iter().map(|v| v.f64()))));
    std::fs::write(dir.join("grads.safetensors"), serialize::<F>(tensors, HashMap::new()))?;
    Ok(())
}

fn main() -> std::io::Result<()> {
    let out = std::env::args().nth(1).expect("usage: recurrent_grads OUT_DIR");
    let out = Path::new(&out);
    let mut cases = Vec::new();
    let cells = [Cell::RnnTanh, Cell::RnnRelu, Cell::Lstm, Cell::Gru];
    for (ci, cell) in cells.into_iter().enumerate() {
        let mut inits = vec![
            ("pytorch", HiddenInit::Pytorch, GateBias::Default),
            ("orthogonal", HiddenInit::Orthogonal, GateBias::Default),
            ("identity", HiddenInit::Identity, GateBias::Default),
        ];
        if cell == Cell::Lstm {
            inits.push(("forget1", HiddenInit::Pytorch, GateBias::Forget(1.0)));
            inits.push(("chrono", HiddenInit::Pytorch, GateBias::Chrono(T)));
        }
        for layers in [1, 2] {
            for (ii, (init_name, hidden_init, gate_bias)) in inits.iter().enumerate() {
                for (head, loss) in [(Head::Last, Loss::Mse), (Head::EveryStep, Loss::CrossEntropy)] {
                    for bptt in [None, Some(5)] {
                        let seed = (ci * 1000 + layers * 100 + ii * 10) as u64 + bptt.map_or(0, |_| 1);
                        let mut cfg = RecurrentConfig::new(cell, I, H, layers, O);
                        (cfg.hidden_init, cfg.gate_bias, cfg.head) = (*hidden_init, *gate_bias, head);
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        let mut net = cfg.init::<f64, _>(&mut rng).expect("valid config");
                        net.bptt = bptt;
                        let x = Array3::from_shape_simple_fn((T, B, I), || rng.random_range(-1.0..1.0));
                        let rows = if head == Head::Last { B } else { T * B };
                        let values = Array2::from_shape_simple_fn((rows, O), || rng.random_range(-1.0..1.0));
                        let classes: Vec<usize> = (0..rows).map(|_| rng.random_range(0..O)).collect();
                        let head_name = if head == Head::Last { "last" } else { "every" };
                        let bptt_name = bptt.map_or("full".to_string(), |k| format!("bptt{k}"));
                        for dtype in ["f64", "f32"] {
                            let name = format!("{}_l{layers}_{init_name}_{head_name}_{bptt_name}_{dtype}", cell.name());
                            let dir = out.join(&name);
                            if dtype == "f64" {
                                write_case::<f64>(&dir, &net, &x, &values, &classes, loss)?;
                            } else {
                                write_case::<f32>(&dir, &net, &x, &values, &classes, loss)?;
                            }
                            cases.push(serde_json::json!({
                                "name": name, "cell": cell.name(), "layers": layers, "init": init_name,
                                "head": head_name, "loss": loss.name(), "bptt": bptt, "dtype": dtype,
                                "input_size": I, "hidden_size": H, "output_size": O, "seq_len": T, "batch": B,
                            }));
                        }
                    }
                }
            }
        }
    }
    std::fs::write(out.join("cases.json"), serde_json::to_string_pretty(&cases).expect("json"))?;
    println!("{} cases in {}", cases.len(), out.display());
    Ok(())
}
