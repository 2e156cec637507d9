//! Recurrent theory beside measurement, printed: Pascanu's bound for each init and the
//! mean-field per-step factor χ of E‖∂L/∂h_t‖² for random Elman RNNs, measured on `SAMPLES`
//! random networks (until `gradscope theory` gains a recurrent mode).
//!
//! ```text
//! cargo run --release --example recurrent_theory -- [HIDDEN] [SAMPLES]
//! ```

use gradscope::nn::recurrent::{Cell, HiddenInit, RecurrentConfig};
use gradscope::theory::recurrent::{init_variances, measure_rnn, pascanu_bound, rnn_mean_field};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hidden: usize = std::env::args().nth(1).map_or(Ok(256), |s| s.parse())?;
    let samples: usize = std::env::args().nth(2).map_or(Ok(6), |s| s.parse())?;
    let input = 4;
    for init in [HiddenInit::Pytorch, HiddenInit::Orthogonal, HiddenInit::Identity] {
        let mut cfg = RecurrentConfig::new(Cell::RnnTanh, input, hidden, 1, 1);
        cfg.hidden_init = init;
        let b = pascanu_bound(&cfg, 1)?;
        println!(
            "{init:?}: σ_max(W_hh) predicted {:.4}, measured {:.4}; Pascanu's line 1/γ = {}; must vanish: {}",
            b.sigma_max_predicted, b.sigma_max_measured[0], b.line, b.must_vanish
        );
        let Ok((s_hh, s_in)) = init_variances(init, hidden, input, 1.0) else { continue };
        let theory = rnn_mean_field(Cell::RnnTanh, s_hh, s_in)?;
        let m = measure_rnn(Cell::RnnTanh, init, hidden, input, 1.0, 30, samples, 11)?;
        println!(
            "  mean field: σ_hh² {s_hh:.4}, σ_in² {s_in:.5}, q* {:.5}, χ {:.4} (‖∂L/∂h‖ ×{:.4} a step); measured χ {:.4} ({:+.1}%)",
            theory.q_star,
            theory.chi,
            theory.norm_factor,
            m.chi,
            100.0 * (m.chi / theory.chi - 1.0)
        );
    }
    Ok(())
}
