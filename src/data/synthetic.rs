//! Built-in data sets generated from the seed: no file needed.

use crate::data::{Dataset, Labels, Split};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

/// Training rows of each built-in set.
pub const TRAIN_ROWS: usize = 2048;
/// Test rows of each built-in set.
pub const TEST_ROWS: usize = 512;
/// Inputs of the regression set.
pub const REGRESSION_INPUTS: usize = 16;

/// A smooth regression target in 16 dimensions, the lecture's MSE setting:
///
/// ```text
/// x ~ N(0, I₁₆),   y = sin(a·x) + ½ cos(b·x),   a, b ~ N(0, (1.5²/16)·I₁₆) drawn once from the seed
/// ```
/// so that a·x and b·x have unit-order spread and y is a smooth, non-linear, bounded function.
pub fn regression(seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7265_6772);
    let dir = Normal::new(0.0, 1.5 / (REGRESSION_INPUTS as f64).sqrt()).expect("finite");
    let a: Array1<f64> = Array1::from_shape_simple_fn(REGRESSION_INPUTS, || dir.sample(&mut rng));
    let b: Array1<f64> = Array1::from_shape_simple_fn(REGRESSION_INPUTS, || dir.sample(&mut rng));
    let mut make = |n: usize| {
        let x: Array2<f64> = Array2::from_shape_simple_fn((n, REGRESSION_INPUTS), || StandardNormal.sample(&mut rng));
        let y = x.dot(&a).mapv(f64::sin) + x.dot(&b).mapv(|v| 0.5 * v.cos());
        Split { x: x.mapv(|v| v as f32), y: Labels::Values(y.mapv(|v| v as f32).insert_axis(ndarray::Axis(1))) }
    };
    let train = make(TRAIN_ROWS);
    let test = make(TEST_ROWS);
    Dataset { name: "regression".into(), train, test, classes: None }
}

/// Three interleaved spirals in the plane, one class each (a classic classification toy):
///
/// ```text
/// t ~ U(0, 1),  r = t,  θ = 2πk/3 + 4t + N(0, 0.2²),  x = (r cos θ, r sin θ),  class k ∈ {0, 1, 2}
/// ```
pub fn spirals(seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7370_6972);
    let noise = Normal::new(0.0, 0.2).expect("finite");
    let mut make = |n: usize| {
        let mut x = Array2::<f32>::zeros((n, 2));
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let k = rng.random_range(0..3usize);
            let t: f64 = rng.random();
            let theta = 2.0 * std::f64::consts::PI * k as f64 / 3.0 + 4.0 * t + noise.sample(&mut rng);
            x[(i, 0)] = (t * theta.cos()) as f32;
            x[(i, 1)] = (t * theta.sin()) as f32;
            labels.push(k);
        }
        Split { x, y: Labels::Classes { labels, n_classes: 3 } }
    };
    let train = make(TRAIN_ROWS);
    let test = make(TEST_ROWS);
    Dataset { name: "spirals".into(), train, test, classes: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_sized() {
        let (a, b, c) = (regression(1), regression(1), regression(2));
        assert_eq!(a, b);
        assert_ne!(a.train.x, c.train.x);
        assert_eq!((a.train.len(), a.test.len(), a.inputs(), a.outputs()), (TRAIN_ROWS, TEST_ROWS, 16, 1));
        let y = match &a.train.y {
            Labels::Values(v) => v.clone(),
            _ => unreachable!(),
        };
        let var = y.var(0.0);
        assert!(var > 0.1 && y.iter().all(|v| v.abs() <= 1.5), "target variance {var}");
        let s = spirals(3);
        assert_eq!((s.inputs(), s.outputs()), (2, 3));
    }
}
