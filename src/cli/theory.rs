//! `gradscope theory`: the mean-field prediction for a random network, and with `--measure` and
//! `--jacobian` the same networks measured beside it.

use super::Status;
use super::args::TheoryArgs;
use super::output::sci;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gradscope::error::Named;
use gradscope::nn::{Activation, Init};
use gradscope::theory::jacobian::JacobianSpectrum;
use gradscope::theory::mean_field::TRAINABLE_XI_C;
use gradscope::theory::measure::{MeasureSpec, NetworkSpec};
use gradscope::theory::{
    Convergence, Measurement, Phase, Prediction, QFixedPoint, Query, Source, jacobian_spectrum, measure, predict,
};
use serde::Serialize;

#[derive(Serialize)]
struct Output<'a> {
    theory: &'a Prediction,
    #[serde(skip_serializing_if = "Option::is_none")]
    measurement: Option<&'a Measurement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jacobian: Option<&'a JacobianSpectrum>,
}

/// Runs `gradscope theory`.
pub fn run(a: &TheoryArgs) -> anyhow::Result<Status> {
    super::stdout::quit_when_closed(); // its output is its only product
    if let Some(cell) = &a.cell {
        return super::theory_recurrent::run(a, *cell);
    }
    let activation = Activation::new(a.activation, a.negative_slope);
    let init = Init::parse("init", a.init.as_deref().unwrap_or("gaussian"))?;
    let query = Query {
        activation,
        init,
        sigma_w2: a.sigma_w2,
        sigma_b2: a.sigma_b2,
        critical: a.critical,
        q0: a.q0,
        q0_fixed: a.q0_fixed,
        depth: a.depth,
        width: a.width,
    };
    let prediction = predict(&query)?;
    let (sigma_w2, sigma_b2, q0) = (prediction.sigma_w2, prediction.sigma_b2, prediction.q0);

    let network = NetworkSpec {
        activation,
        init,
        sigma_w2,
        sigma_b2,
        width: a.width,
        depth: a.depth,
        q0,
        seed: a.seed,
        threads: if a.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { a.threads },
    };
    let measurement =
        a.measure.then(|| measure(&MeasureSpec { network, seeds: a.seeds, pairs: a.pairs, c0: a.c0 })).transpose()?;
    let jacobian = a.jacobian.then(|| jacobian_spectrum(&network, a.samples, a.bins)).transpose()?;

    if a.json {
        let out = Output { theory: &prediction, measurement: measurement.as_ref(), jacobian: jacobian.as_ref() };
        crate::outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Status::Ok);
    }
    print_prediction(&prediction, a.layers);
    if let Some(m) = &measurement {
        print_measurement(m);
    }
    if let Some(j) = &jacobian {
        print_jacobian(j);
    }
    Ok(Status::Ok)
}

fn layers_text(x: Option<f64>) -> String {
    match x {
        Some(x) => format!("{x:.1} layers"),
        None => "∞".into(),
    }
}

/// The fixed-point numbers, the depth answer and, when q¹ is far from q* (or `--layers`), the
/// layer-by-layer prediction.
pub fn print_prediction(p: &Prediction, always_layers: bool) {
    let t = &p.fixed_point;
    let source = match p.source {
        Source::Given => String::new(),
        Source::Critical => " (critical: χ₁ = 1)".into(),
        Source::Init => format!(" ({} amounts to this)", p.init),
    };
    crate::outln!(
        "{}, σ_w² = {}{source}, σ_b² = {}, inputs with q⁰ = ‖x‖²/fan_in = {}, {} hidden layers",
        p.activation,
        sci(p.sigma_w2),
        sci(p.sigma_b2),
        sci(p.q0),
        p.depth
    );
    crate::outln!("mean-field theory (Poole et al. 2016; Schoenholz et al. 2017):");
    let q_line = match t.q_fixed_point {
        QFixedPoint::Finite(q) => format!("q*  = {}   fixed point of q^l = σ_w² ∫Dz φ(√q^(l−1) z)² + σ_b²", sci(q)),
        QFixedPoint::Zero => {
            "q*  = 0   q^l shrinks to 0 (no bias, ordered); the values below are its q → 0 limit".into()
        }
        QFixedPoint::Unbounded => "q*  = ∞   q^l grows without bound; the values below are its q → ∞ limit".into(),
    };
    crate::outln!("  {q_line}");
    let phase = match t.phase {
        Phase::Ordered => "ordered: gradients vanish",
        Phase::Critical => "critical: gradients keep their size",
        Phase::Chaotic => "chaotic: gradients explode",
    };
    crate::outln!("  χ₁  = {}   σ_w² ∫Dz φ′(√q* z)², the per-layer factor of E‖∂L/∂z_l‖²; {phase}", sci(t.chi1));
    match t.xi_q {
        Some(x) => {
            crate::outln!("  ξ_q = {}   q^l approaches q* as e^(−l/ξ_q) (χ_q = {})", layers_text(Some(x)), sci(t.chi_q))
        }
        None => crate::outln!("  ξ_q: none (q^l has no finite stable fixed point; χ_q = {})", sci(t.chi_q)),
    }
    let c_line = match (t.correlation_convergence, t.phase) {
        (Convergence::Polynomial, _) => format!(
            "c* = 1 and the correlation map's slope there is 1: no exponential convergence{}, ξ_c = ∞",
            if p.activation == "relu" { " (1 − c^l ≈ 9π²/(2l²), Hayou et al. 2019)" } else { "" }
        ),
        (Convergence::Exponential, _) if t.c_star < 1.0 => format!(
            "c* = {} (stable fixed point of the correlation map), χ_c(c*) = {}, ξ_c = −1/ln χ_c = {}",
            sci(t.c_star),
            sci(t.chi_c),
            layers_text(t.xi_c)
        ),
        _ => format!("c* = 1, χ_c = χ₁, ξ_c = −1/ln χ₁ = {}", layers_text(t.xi_c)),
    };
    crate::outln!("  {c_line}");
    crate::outln!(
        "  E‖∂L/∂z_0‖² / E‖∂L/∂z_{}‖²: χ₁^{} = {} at the fixed point; {} following q^l from q¹ = {}",
        p.depth,
        p.depth,
        sci(p.ratio_at_fixed_point),
        sci(p.ratio_following_q),
        sci(p.layers[0].q)
    );
    if let Some(x) = t.gradient_depth_scale {
        crate::outln!("  E‖∂L/∂z_l‖² changes by a factor e every 1/|ln χ₁| = {}", layers_text(Some(x)));
    }
    match t.trainable_depth {
        Some(d) => crate::outln!(
            "  trainable depth ≈ {}ξ_c = {} (Schoenholz et al. 2017): a {}-layer network is {}",
            TRAINABLE_XI_C,
            layers_text(Some(d)),
            p.depth,
            if (p.depth as f64) <= d { "within it" } else { "beyond it" }
        ),
        None => crate::outln!("  trainable depth: no limit from the correlation length (ξ_c = ∞)"),
    }
    let far = match t.q_fixed_point {
        QFixedPoint::Finite(q) => (p.layers[0].q - q).abs() > 0.01 * q,
        _ => true,
    };
    if always_layers || far {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED);
        table.set_header(["layer", "q^l", "factor σ_w² ∫φ′(√q^l z)²", "E‖∂L/∂z_l‖² / output's"]);
        for l in &p.layers {
            table.add_row([
                layer_name(l.layer, p.depth),
                sci(l.q),
                l.factor.map_or_else(|| "—".into(), sci),
                sci(l.grad_z2),
            ]);
        }
        crate::outln!(
            "layer by layer, following q^l from the input (q¹ is {}):",
            if far { "far from q*" } else { "near q*" }
        );
        crate::outln!("{table}");
    }
}

fn layer_name(l: usize, depth: usize) -> String {
    if l == depth { format!("{l} (output)") } else { l.to_string() }
}

/// Measured beside predicted, per layer and fitted.
pub fn print_measurement(m: &Measurement) {
    let net = &m.spec.network;
    crate::outln!(
        "\nmeasured: {} {} networks of {} hidden layers × {} units, {} input pairs each (correlation {}), \
         ∂L/∂ŷ ~ N(0, 1)",
        m.spec.seeds,
        net.init.name(),
        net.depth,
        net.width,
        m.spec.pairs,
        sci(m.spec.c0)
    );
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header([
        "layer",
        "q^l predicted",
        "q^l measured",
        "‖∂L/∂z_l‖² predicted",
        "‖∂L/∂z_l‖² measured",
        "c^l predicted",
        "c^l measured",
    ]);
    for l in &m.layers {
        table.add_row([
            layer_name(l.layer, net.depth),
            sci(l.q_predicted),
            sci(l.q_measured),
            sci(l.grad_z2_predicted),
            sci(l.grad_z2_measured),
            format!("{:.4}", l.c_predicted),
            format!("{:.4}", l.c_measured),
        ]);
    }
    crate::outln!("{table}");
    crate::outln!("(‖∂L/∂z_l‖² relative to the output layer's)");
    crate::outln!(
        "per-layer factor of ‖∂L/∂z_l‖², fitted over layers {}..{}: measured {}, theory χ₁ = {} ({:+.2}%); \
         the prediction fitted alike: {}",
        m.fit_from,
        net.depth,
        format_args!("{:.4}", m.measured_factor),
        format_args!("{:.4}", m.theory.chi1),
        100.0 * m.relative_error,
        format_args!("{:.4}", m.predicted_factor)
    );
    let depth_scale = |f: f64| if (f - 1.0).abs() < 1e-12 { None } else { Some(1.0 / f.ln().abs()) };
    crate::outln!(
        "layers over which ‖∂L/∂z_l‖² changes by e: measured {}, theory {}",
        layers_text(depth_scale(m.measured_factor)),
        layers_text(m.theory.gradient_depth_scale)
    );
    if m.theory.phase == Phase::Ordered {
        let measured = depth_scale(m.measured_factor).map(|x| TRAINABLE_XI_C * x);
        crate::outln!(
            "trainable depth ≈ 6ξ_c, with ξ_c = −1/ln χ₁ in the ordered phase: measured {}, theory {}",
            layers_text(measured),
            layers_text(m.theory.trainable_depth)
        );
    }
}

/// The singular values' summary and a terminal histogram.
pub fn print_jacobian(j: &JacobianSpectrum) {
    let net = &j.network;
    crate::outln!(
        "\ninput–output Jacobian ∂h_{}/∂x of {} {} networks ({} × {} units, σ_w² = {}, σ_b² = {}), one input each:",
        net.depth - 1,
        j.samples,
        net.init.name(),
        net.depth,
        net.width,
        sci(net.sigma_w2),
        sci(net.sigma_b2)
    );
    // J is a product of `depth` f64 matrices: below s_max·1e-14 a singular value is rounding
    let condition = if j.condition_number > 1e14 {
        "≥ 1e14 (singular to f64 precision)".to_string()
    } else {
        sci(j.condition_number)
    };
    crate::outln!(
        "  mean s² = {} (predicted Π σ_w² ∫φ′(√q^l z)² = {}), largest s = {}, smallest s = {}, condition number \
         (median) = {condition}, fraction of s in [1/2, 2] = {:.1}%",
        sci(j.mean_sq),
        sci(j.predicted_mean_sq),
        sci(j.max),
        sci(j.min),
        100.0 * j.fraction_near_1
    );
    let peak = j.histogram.counts.iter().copied().max().unwrap_or(1).max(1);
    for (i, &c) in j.histogram.counts.iter().enumerate() {
        let bar = "█".repeat((40 * c).div_ceil(peak));
        crate::outln!("  [{:>9}, {:>9}) {bar} {c}", sci(j.histogram.edges[i]), sci(j.histogram.edges[i + 1]));
    }
}
