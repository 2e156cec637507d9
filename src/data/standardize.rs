//! `standardize`: x ← (x − mean)/std, with mean and std fitted on the training split only and
//! applied unchanged to the test split (and by `probe` to whatever it reads for that run).
//!
//! Tables (CSV, the built-in sets) get one mean and std per feature, as scikit-learn's
//! `StandardScaler` (population std, ddof = 0). Images (MNIST, Fashion-MNIST) get one mean and
//! std over all pixels, as torchvision's `Normalize((0.1307,), (0.3081,))` — those two numbers
//! are this fit on MNIST's training split; per pixel, the border pixels that are almost always
//! 0 would be blown up by tiny std. A feature whose std is 0 (a constant column) is left as
//! it is. Sums are taken in f64; the applied mean and std are the f32 values saved in
//! `standardize.safetensors` in the run folder (tensors `mean` and `std`, one entry per feature).

use crate::data::Dataset;
use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2, Axis};
use std::path::Path;

/// One mean and std per feature, or one for all features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Per feature (tables).
    Feature,
    /// Over every entry (images).
    Global,
}

/// A fitted standardisation: `mean[j]`, `std[j]` for feature j.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Means, one per feature.
    pub mean: Vec<f32>,
    /// Population standard deviations, one per feature (0: the feature is left as it is).
    pub std: Vec<f32>,
}

/// Mean and population std of `values`, summed in f64.
fn moments(values: impl Iterator<Item = f32> + Clone) -> (f64, f64) {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in values.clone() {
        n += 1;
        sum += f64::from(v);
    }
    let mean = if n == 0 { 0.0 } else { sum / n as f64 };
    let ss: f64 = values.map(|v| (f64::from(v) - mean).powi(2)).sum();
    (mean, if n == 0 { 0.0 } else { (ss / n as f64).sqrt() })
}

impl Standardizer {
    /// Fits mean and std on `x` (the training inputs).
    pub fn fit(x: ArrayView2<f32>, scope: Scope) -> Self {
        let (mean, std): (Vec<f32>, Vec<f32>) = match scope {
            Scope::Global => {
                let (m, s) = moments(x.iter().copied());
                (vec![m as f32; x.ncols()], vec![s as f32; x.ncols()])
            }
            Scope::Feature => x
                .axis_iter(Axis(1))
                .map(|col| {
                    let (m, s) = moments(col.iter().copied());
                    (m as f32, s as f32)
                })
                .unzip(),
        };
        Self { mean, std }
    }

    /// Applies it to `x` in place (f32, as torchvision's `Normalize`: subtract, then divide).
    pub fn apply(&self, x: &mut Array2<f32>) -> Result<()> {
        if x.ncols() != self.mean.len() {
            return Err(Error::Shape {
                op: "standardize".into(),
                expected: format!("{} features", self.mean.len()),
                got: format!("{} features", x.ncols()),
            });
        }
        for mut row in x.axis_iter_mut(Axis(0)) {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                if s > 0.0 {
                    *v = (*v - m) / s;
                }
            }
        }
        Ok(())
    }

    /// Applies it to both splits.
    pub fn apply_to(&self, data: &mut Dataset) -> Result<()> {
        self.apply(&mut data.train.x)?;
        self.apply(&mut data.test.x)
    }

    /// safetensors bytes: `mean` and `std`, F32, `[features]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        use safetensors::tensor::TensorView;
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (m, s) = (le(&self.mean), le(&self.std));
        let n = self.mean.len();
        let views = vec![
            ("mean".to_string(), TensorView::new(safetensors::Dtype::F32, vec![n], &m).expect("length matches")),
            ("std".to_string(), TensorView::new(safetensors::Dtype::F32, vec![n], &s).expect("length matches")),
        ];
        safetensors::serialize(views, None).expect("gradscope internal error: safetensors serialises")
    }

    /// Reads [`Standardizer::to_bytes`]'s format; `path` names it in messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |msg: String| Error::Data { path: path.into(), msg };
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file ({e}); train the run again")))?;
        let get = |name: &str| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(|_| bad(format!("holds no '{name}' tensor")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 1 {
                return Err(bad(format!("'{name}' must be a 1-D F32 tensor")));
            }
            Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let (mean, std) = (get("mean")?, get("std")?);
        if mean.len() != std.len() || mean.iter().chain(&std).any(|v| !v.is_finite()) || std.iter().any(|&s| s < 0.0) {
            return Err(bad("mean and std must have one finite entry per feature, std ≥ 0".into()));
        }
        Ok(Self { mean, std })
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
        Self::parse(path, &bytes)
    }
}

/// q⁰ = ‖x‖²/n_in averaged over the rows of `x`: the input scale that mean-field theory starts
/// from (q¹ = σ_w² q⁰ + σ_b²).
pub fn q0(x: ArrayView2<f32>) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn fits_on_train_and_leaves_constant_features() {
        // column 0: mean 2, population std sqrt(2/3); column 1 constant
        let x = array![[1.0f32, 5.0], [2.0, 5.0], [3.0, 5.0]];
        let s = Standardizer::fit(x.view(), Scope::Feature);
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [(2.0f64 / 3.0).sqrt() as f32, 0.0]);
        let mut y = array![[2.0f32, 7.0], [4.0, 5.0]];
        s.apply(&mut y).unwrap();
        assert_eq!(y, array![[0.0, 7.0], [2.0 / s.std[0], 5.0]]);
        let g = Standardizer::fit(x.view(), Scope::Global);
        // all six entries: mean 3.5, population variance (2.5²+1.5²+0.5²+3·1.5²)/6 = 15.5/6
        assert_eq!(g.mean, [3.5, 3.5]);
        assert!((f64::from(g.std[0]) - (15.5f64 / 6.0).sqrt()).abs() < 1e-6);
        let back = Standardizer::parse(Path::new("s"), &s.to_bytes()).unwrap();
        assert_eq!(back, s);
        assert!(s.apply(&mut Array2::zeros((1, 3))).is_err());
    }

    #[test]
    fn q0_is_the_mean_square() {
        assert_eq!(q0(array![[1.0f32, 3.0], [0.0, 2.0]].view()), 14.0 / 4.0);
    }
}
