//! The sequence tasks (issue 14): layout, seeding and the baselines a memoryless model reaches
//! (adding problem: MSE 1/6; copy task: 10·ln 8/(T + 20)).

use gradscope::data::Labels;
use gradscope::data::sequence::*;
use gradscope::nn::{Loss, Targets};
use ndarray::{Array2, Axis};

#[test]
fn adding_has_one_marker_per_half_and_the_mean_predictor_scores_one_sixth() {
    let d = adding(30, 20_000, 10, 7).unwrap();
    let (t, n, _) = d.train.x.dim();
    let Labels::Values(y) = &d.train.y else { panic!("values") };
    for i in 0..n {
        let marks: Vec<usize> = (0..t).filter(|&s| d.train.x[(s, i, 1)] == 1.0).collect();
        assert_eq!(marks.len(), 2, "sequence {i}");
        assert!(marks[0] < t / 2 && marks[1] >= t / 2, "{marks:?}");
        let sum = d.train.x[(marks[0], i, 0)] + d.train.x[(marks[1], i, 0)];
        assert_eq!(sum, y[(i, 0)]);
    }
    // predicting E[y] = 1: MSE = Var(y) = 1/6; the sample's standard error is about 0.001
    let ones = Array2::<f32>::ones((n, 1));
    let mse = Loss::Mse.value(ones.view(), Targets::Values(y.view()));
    assert!((mse - ADDING_BASELINE_MSE).abs() < 0.005, "{mse}");
    // same seed, same data; another seed, other data
    assert_eq!(adding(30, 20_000, 10, 7).unwrap(), d);
    assert_ne!(adding(30, 20_000, 10, 8).unwrap().train.x, d.train.x);
}

/// The best memoryless predictor (each step's class frequencies over the sample) reaches the
/// copy task's baseline 10·ln 8/(T + 20).
#[test]
fn copy_task_layout_and_memoryless_baseline() {
    let blanks = 15;
    let d = copy_task(blanks, 20_000, 5, 3).unwrap();
    let (t, n, f) = d.train.x.dim();
    assert_eq!((t, f), (blanks + 20, COPY_SYMBOLS));
    let Labels::Classes { labels, n_classes } = &d.train.y else { panic!("classes") };
    assert_eq!(*n_classes, COPY_CLASSES);
    let symbol = |s: usize, i: usize| (0..f).find(|&c| d.train.x[(s, i, c)] == 1.0).unwrap();
    for i in 0..50 {
        assert_eq!(symbol(blanks + 9, i), 9);
        for k in 0..10 {
            assert_eq!(labels[(blanks + 10 + k) * n + i], symbol(k, i));
        }
        assert!((10..blanks + 9).all(|s| symbol(s, i) == 0));
    }
    // cross-entropy of per-step class frequencies, as logits ln p
    let mut logits = Array2::<f64>::zeros((t * n, COPY_CLASSES));
    for s in 0..t {
        let mut counts = [1e-300f64; COPY_CLASSES];
        (0..n).for_each(|i| counts[labels[s * n + i]] += 1.0);
        for i in 0..n {
            for c in 0..COPY_CLASSES {
                logits[(s * n + i, c)] = (counts[c] / n as f64).ln();
            }
        }
    }
    let ce = Loss::CrossEntropy.value(logits.view(), Targets::Classes(labels));
    assert!((ce - copy_baseline(blanks)).abs() < 0.003, "{ce} vs {}", copy_baseline(blanks));
}

#[test]
fn selecting_every_step_targets_keeps_time_major_rows() {
    let d = copy_task(3, 6, 1, 1).unwrap();
    let s = d.train.select(&[4, 1], true);
    let (Labels::Classes { labels: all, .. }, Labels::Classes { labels: sel, .. }) = (&d.train.y, &s.y) else {
        panic!("classes")
    };
    for step in 0..23 {
        assert_eq!(sel[step * 2], all[step * 6 + 4]);
        assert_eq!(sel[step * 2 + 1], all[step * 6 + 1]);
    }
    assert_eq!(s.x.index_axis(Axis(1), 0), d.train.x.index_axis(Axis(1), 4));
}

#[test]
fn too_short_sequences_are_refused_with_the_flag() {
    let e = adding(1, 1, 1, 0).unwrap_err().to_string();
    assert!(e.contains("seq_len") && e.contains("--seq-len"), "{e}");
}
