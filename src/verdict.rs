//! Verdicts: what a run's gradient ratio and loss say, in the words the terminal and the report
//! share.
//!
//! Three words judge the gradient, from the vanishing ratio r = ‖∂L/∂W‖ of the first layer over
//! that of the output layer, at step 0 and at the end:
//!
//! ```text
//! vanishing   r < 1e-3        the first layer learns over 1000× slower than the output layer
//! healthy     1e-3 ≤ r ≤ 10
//! exploding   r > 10          the first layer's steps are over 10× the output layer's
//! ```
//!
//! and the outcome comes first, whatever the ratio: a run whose loss became NaN or infinite
//! `diverged at step k`; a finished run whose training loss fell by less than [`LEARNED_FALL`]
//! (a third) of its step-0 value `did not learn`. docs/verdicts.md gives the
//! measurements behind the thresholds (the demo, the remedies demo, the phase diagram). The
//! module is pure: numbers in, words out.

/// r below this is vanishing.
pub const VANISHING_BELOW: f64 = 1e-3;
/// r above this is exploding.
pub const EXPLODING_ABOVE: f64 = 10.0;
/// A finished run learned when its loss fell by at least this fraction of its step-0 value: its
/// final training loss is at most (1 − this) × its loss at step 0.
pub const LEARNED_FALL: f64 = 1.0 / 3.0;

/// The rules in one paragraph, for `--help` (a test checks it against the constants).
pub const RULES: &str = "Verdicts: r = ‖∂L/∂W‖ of the first layer / of the output layer, at step 0 \
and at the end: vanishing below 1e-3, exploding above 10, healthy between. Whatever r says, a run \
whose loss became NaN or infinite 'diverged at step k', and a finished run whose training loss \
fell by less than a third of its step-0 value 'did not learn' (docs/verdicts.md).";

/// What one gradient ratio says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// r < [`VANISHING_BELOW`].
    Vanishing,
    /// [`VANISHING_BELOW`] ≤ r ≤ [`EXPLODING_ABOVE`].
    Healthy,
    /// r > [`EXPLODING_ABOVE`].
    Exploding,
    /// r is NaN or infinite (a gradient overflowed, or both were 0).
    NotFinite,
}

impl Flow {
    /// Classifies a ratio.
    pub fn of(ratio: f64) -> Self {
        if !ratio.is_finite() {
            Self::NotFinite
        } else if ratio < VANISHING_BELOW {
            Self::Vanishing
        } else if ratio > EXPLODING_ABOVE {
            Self::Exploding
        } else {
            Self::Healthy
        }
    }

    /// The word.
    pub fn word(self) -> &'static str {
        match self {
            Self::Vanishing => "vanishing",
            Self::Healthy => "healthy",
            Self::Exploding => "exploding",
            Self::NotFinite => "not finite",
        }
    }
}

/// How training went, judged by the loss alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The loss fell by at least [`LEARNED_FALL`] of its step-0 value.
    Learned,
    /// It did not (or it rose).
    DidNotLearn,
    /// The loss or a gradient became NaN or infinite, at this step when known.
    Diverged(Option<u64>),
    /// No training to judge: a probe, or a run interrupted or still running.
    Unjudged,
}

/// The numbers a verdict is made from (a run's first and last probe records and its summary).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evidence {
    /// Linear layers of the network (hidden layers + the output layer).
    pub layers: usize,
    /// The vanishing ratio at step 0.
    pub ratio_start: f64,
    /// The vanishing ratio at the last probe (None: a single measurement).
    pub ratio_end: Option<f64>,
    /// The loss at step 0 (the first batch's).
    pub loss_start: f64,
    /// The training loss at the end of a finished run (None: not finished, or no training).
    pub loss_end: Option<f64>,
    /// The step at which the run diverged, if it did.
    pub diverged_at: Option<u64>,
}

impl Evidence {
    /// One measurement, no training (`gradscope probe`).
    pub fn at_one_point(ratio: f64, layers: usize) -> Self {
        Self { layers, ratio_start: ratio, ratio_end: None, loss_start: f64::NAN, loss_end: None, diverged_at: None }
    }
}

/// The judgement: the gradient at step 0 and at the end, and the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The gradient at step 0.
    pub start: Flow,
    /// The gradient at the end (None: a single measurement).
    pub end: Option<Flow>,
    /// How training went.
    pub outcome: Outcome,
}

/// Judges a run (see the module's rules).
pub fn judge(e: &Evidence) -> Verdict {
    let outcome = match (e.diverged_at, e.loss_end) {
        (Some(step), _) => Outcome::Diverged(Some(step)),
        (None, Some(end)) if !end.is_finite() => Outcome::Diverged(None),
        (None, Some(end)) if e.loss_start.is_finite() && end > (1.0 - LEARNED_FALL) * e.loss_start => {
            Outcome::DidNotLearn
        }
        (None, Some(_)) => Outcome::Learned,
        (None, None) => Outcome::Unjudged,
    };
    // a diverged run's last record holds the broken gradient: only step 0 speaks for the network
    let end = match outcome {
        Outcome::Diverged(_) => None,
        _ => e.ratio_end.map(Flow::of),
    };
    Verdict { start: Flow::of(e.ratio_start), end, outcome }
}

impl Verdict {
    /// The headline, shown on the report's badge and after the terminal's verdict line:
    /// `diverged at step 1`, `did not learn`, or the gradient's word(s) (`vanishing`, or
    /// `exploding → healthy` when step 0 and the end differ).
    pub fn headline(&self) -> String {
        match self.outcome {
            Outcome::Diverged(Some(step)) => format!("diverged at step {step}"),
            Outcome::Diverged(None) => "diverged".into(),
            Outcome::DidNotLearn => "did not learn".into(),
            Outcome::Learned | Outcome::Unjudged => match self.end {
                Some(end) if end != self.start => format!("{} → {}", self.start.word(), end.word()),
                _ => self.start.word().into(),
            },
        }
    }

    /// A CSS class / colour key: `diverged`, `stuck`, or the word of the gradient at the end
    /// (`vanishing`, `healthy`, `exploding`, `broken` for not finite).
    pub fn class(&self) -> &'static str {
        match self.outcome {
            Outcome::Diverged(_) => "diverged",
            Outcome::DidNotLearn => "stuck",
            Outcome::Learned | Outcome::Unjudged => match self.end.unwrap_or(self.start) {
                Flow::Vanishing => "vanishing",
                Flow::Healthy => "healthy",
                Flow::Exploding => "exploding",
                Flow::NotFinite => "broken",
            },
        }
    }

    /// Whether the headline is good news (a learned or unjudged run whose gradient ends healthy).
    pub fn is_good(&self) -> bool {
        self.class() == "healthy"
    }
}

/// The verdict line: "gradient at layer 0 is 3.17e-17 of layer 20's at step 0 (vanishing),
/// 7.14e-18 at the end (vanishing); loss 0.479 → 0.560: did not learn". The headline comes last,
/// after the final ": ", so that the terminal can colour it.
pub fn sentence(e: &Evidence) -> String {
    let v = judge(e);
    let head = format!("gradient at layer 0 is {} of layer {}'s", sci(e.ratio_start), e.layers.saturating_sub(1));
    let Some(end) = v.end else {
        return match v.outcome {
            Outcome::Diverged(_) => format!("{head} at step 0 ({}): {}", v.start.word(), v.headline()),
            _ => format!("{head}: {}", v.headline()),
        };
    };
    let ratio_end = e.ratio_end.unwrap_or(f64::NAN);
    let mut s = format!("{head} at step 0 ({}), {} at the end ({})", v.start.word(), sci(ratio_end), end.word());
    if let Some(loss_end) = e.loss_end {
        s += &format!("; loss {} → {}", sci(e.loss_start), sci(loss_end));
    }
    format!("{s}: {}", v.headline())
}

/// A compact number: 4 decimals near 1, else 3 significant digits in scientific notation.
pub fn sci(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    if (1e-2..1e4).contains(&v.abs()) { format!("{v:.4}") } else { format!("{v:.2e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(layers: usize, r0: f64, r1: f64, l0: f64, l1: f64) -> Evidence {
        Evidence { layers, ratio_start: r0, ratio_end: Some(r1), loss_start: l0, loss_end: Some(l1), diverged_at: None }
    }

    #[test]
    fn words_of_ratios_and_their_edges() {
        assert_eq!(Flow::of(5e-4), Flow::Vanishing);
        assert_eq!(Flow::of(VANISHING_BELOW), Flow::Healthy);
        assert_eq!(Flow::of(EXPLODING_ABOVE), Flow::Healthy);
        assert_eq!(Flow::of(10.5), Flow::Exploding);
        assert_eq!(Flow::of(f64::NAN), Flow::NotFinite);
        assert_eq!(Flow::of(f64::INFINITY), Flow::NotFinite);
        assert_eq!(Flow::of(0.0), Flow::Vanishing);
    }

    // The cases of issue 13, with the numbers of the runs it quotes.
    #[test]
    fn relu_with_sigma_w2_2_5_diverged_at_step_1_whatever_its_ratio() {
        // demo --remedies' relu-exploding: ratio 0.0376 at step 0 (healthy alone), loss inf at step 1
        let e = Evidence { diverged_at: Some(1), loss_end: Some(f64::NAN), ..run(51, 0.0376, f64::NAN, 1.25e5, 0.0) };
        let v = judge(&e);
        assert_eq!(v.outcome, Outcome::Diverged(Some(1)));
        assert_eq!(v.headline(), "diverged at step 1");
        assert_eq!(v.class(), "diverged");
        assert_eq!(sentence(&e), "gradient at layer 0 is 0.0376 of layer 50's at step 0 (healthy): diverged at step 1");
        // a non-finite final loss without a recorded step is divergence too
        let e = Evidence { diverged_at: None, loss_end: Some(f64::INFINITY), ..e };
        assert_eq!(judge(&e).headline(), "diverged");
    }

    #[test]
    fn a_ratio_of_32_is_exploding() {
        let v = judge(&run(51, 32.0, 0.5, 0.70, 0.10));
        assert_eq!(v.start, Flow::Exploding);
        assert_eq!(v.headline(), "exploding → healthy");
    }

    #[test]
    fn tanh_layernorm_that_never_learns_is_not_healthy() {
        // healthy at step 0 (7.36), 1e-4 at the end, loss 0.612 → 0.603
        let v = judge(&run(51, 7.36, 1e-4, 0.612, 0.603));
        assert_eq!(v.outcome, Outcome::DidNotLearn);
        assert_eq!(v.end, Some(Flow::Vanishing));
        assert_eq!(v.headline(), "did not learn");
        assert!(!v.is_good());
    }

    #[test]
    fn the_lecture_s_two_layer_sigmoid_network_that_learns_is_healthy_like_0_0104() {
        // sigmoid-depth2: 5.45e-3 at step 0, loss 0.890 → 0.085; tanh-residual: 0.0104
        let two = judge(&run(3, 5.45e-3, 0.26, 0.890, 0.085));
        assert_eq!((two.start, two.outcome), (Flow::Healthy, Outcome::Learned));
        assert_eq!(two.headline(), "healthy");
        let deep = judge(&run(51, 0.0104, 0.0105, 0.763, 0.287));
        assert_eq!(deep.headline(), "healthy");
        assert_eq!(
            sentence(&run(3, 5.45e-3, 0.26, 0.890, 0.085)),
            "gradient at layer 0 is 5.45e-3 of layer 2's at step 0 (healthy), 0.2600 at the end (healthy); \
             loss 0.8900 → 0.0850: healthy"
        );
    }

    #[test]
    fn a_deep_sigmoid_network_is_vanishing_and_did_not_learn() {
        // sigmoid-depth20: 3.17e-17, loss 0.479 → 0.560
        let e = run(21, 3.17e-17, 7.14e-18, 0.479, 0.560);
        assert_eq!(judge(&e).headline(), "did not learn");
        assert_eq!(
            sentence(&e),
            "gradient at layer 0 is 3.17e-17 of layer 20's at step 0 (vanishing), 7.14e-18 at the end (vanishing); \
             loss 0.4790 → 0.5600: did not learn"
        );
        // a vanishing network that learns anyway (through its last layers) keeps its word
        assert_eq!(judge(&run(51, 4.8e-4, 1.8e-4, 0.83, 0.33)).headline(), "vanishing");
    }

    #[test]
    fn the_learned_edge_and_unjudged_runs() {
        assert_eq!(judge(&run(3, 1.0, 1.0, 1.0, 0.66)).outcome, Outcome::Learned);
        assert_eq!(judge(&run(3, 1.0, 1.0, 1.0, 0.67)).outcome, Outcome::DidNotLearn);
        // the phase diagram's tanh depth 10, σ_w² = 1: slow (loss 2.40 → 1.42, 60 % accuracy), but learning
        assert_eq!(judge(&run(11, 0.446, 2.09, 2.401, 1.419)).outcome, Outcome::Learned);
        let probe = Evidence::at_one_point(3.17e-17, 21);
        assert_eq!(judge(&probe).outcome, Outcome::Unjudged);
        assert_eq!(sentence(&probe), "gradient at layer 0 is 3.17e-17 of layer 20's: vanishing");
        let interrupted = Evidence { loss_end: None, ..run(3, 1.0, 20.0, 1.0, 1.0) };
        assert_eq!(judge(&interrupted).headline(), "healthy → exploding");
    }

    #[test]
    fn the_help_text_states_the_constants() {
        assert!(RULES.contains(&format!("vanishing below {VANISHING_BELOW:e}")));
        assert!(RULES.contains(&format!("exploding above {EXPLODING_ABOVE}")));
        assert_eq!(LEARNED_FALL, 1.0 / 3.0);
        assert!(RULES.contains("fell by less than a third"));
    }
}
