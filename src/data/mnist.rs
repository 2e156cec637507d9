//! MNIST from the four original IDX files in a folder, gzipped or not.
//!
//! Pixels are scaled to [0, 1] (divided by 255), images flattened row-major to 784 features;
//! the test split is MNIST's own t10k set.

use crate::data::{Dataset, Labels, Split, idx};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// Finds `stem` (e.g. `train-images-idx3-ubyte`) in `dir`, plain or `.gz`, also with the
/// `train-images.idx3-ubyte` spelling some mirrors use.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    for name in [stem.to_string(), format!("{stem}.gz"), dotted.clone(), format!("{dotted}.gz")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Data {
        path: dir.into(),
        msg: format!("no {stem} or {stem}.gz here; --data mnist:DIR needs the four MNIST IDX files in DIR"),
    })
}

fn split(dir: &Path, images: &str, labels: &str) -> Result<Split> {
    let (ip, lp) = (find(dir, images)?, find(dir, labels)?);
    let img = idx::read(&ip)?;
    let lab = idx::read(&lp)?;
    if img.dims.len() != 3 {
        return Err(Error::Data {
            path: ip,
            msg: format!("images need 3 dimensions [n, rows, cols], found {:?}", img.dims),
        });
    }
    if lab.dims.len() != 1 {
        return Err(Error::Data { path: lp, msg: format!("labels need 1 dimension [n], found {:?}", lab.dims) });
    }
    if img.dims[0] != lab.dims[0] {
        return Err(Error::Data {
            path: lp,
            msg: format!(
                "{} labels for {} images in {}; the files do not belong together",
                lab.dims[0],
                img.dims[0],
                ip.display()
            ),
        });
    }
    if let Some((i, &l)) = lab.data.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(Error::Data { path: lp, msg: format!("label {l} at item {i} is out of range 0..=9") });
    }
    let features = img.dims[1] * img.dims[2];
    let x = Array2::from_shape_vec((img.dims[0], features), img.data.iter().map(|&p| p as f32 / 255.0).collect())
        .expect("length checked by the IDX reader");
    let labels = lab.data.iter().map(|&l| l as usize).collect();
    Ok(Split { x, y: Labels::Classes { labels, n_classes: 10 } })
}

/// Loads the training and test splits from `dir`.
pub fn load(dir: &Path) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::Data {
            path: dir.into(),
            msg: "not a folder; --data mnist:DIR needs the folder holding the IDX files".into(),
        });
    }
    let train = split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let test = split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    if train.x.ncols() != test.x.ncols() {
        return Err(Error::Data {
            path: dir.into(),
            msg: format!("train images have {} pixels, test images {}", train.x.ncols(), test.x.ncols()),
        });
    }
    Ok(Dataset { name: format!("mnist:{}", dir.display()), train, test })
}
