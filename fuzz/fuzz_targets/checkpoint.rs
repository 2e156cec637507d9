//! The checkpoint reader on arbitrary bytes, and restoring what it decodes into a small network
//! (3 → 4 → 2, Adam, 5 training rows).
#![no_main]
use gradscope::io::checkpoint::Checkpoint;
use gradscope::nn::{Activation, Init, MlpConfig};
use gradscope::optim::{Adam, Optimizer, OptimizerState};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.safetensors");
    let Ok(ck) = Checkpoint::parse(path, data) else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut mlp = MlpConfig::uniform(3, 4, 1, 2, Activation::Tanh, Init::Pytorch).init::<f32, _>(&mut rng);
    let rule = Optimizer::Adam(Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false });
    let mut opt = OptimizerState::new(rule, &mlp);
    let mut order = vec![0usize; 5];
    if ck.restore(path, &mut mlp, &mut opt, &mut order).is_ok() {
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3, 4]);
    }
    let _ = ck.order_word_pos(path);
});
