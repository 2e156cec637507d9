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
    Ok(Dataset { name: format!("mnist:{}", dir.display()), train, test, classes: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::encode as idx;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Two 2×2 training images and one test image, the training files gzipped, the test ones not.
    fn fixture(dir: &Path, train_labels: &[u8]) {
        let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
        write("train-images-idx3-ubyte.gz", gz(&idx(&[2, 2, 2], &[0, 255, 51, 102, 1, 2, 3, 4])));
        write("train-labels-idx1-ubyte.gz", gz(&idx(&[train_labels.len() as u32], train_labels)));
        write("t10k-images-idx3-ubyte", idx(&[1, 2, 2], &[9, 9, 9, 9]));
        write("t10k-labels-idx1-ubyte", idx(&[1], &[7]));
    }

    #[test]
    fn loads_gzipped_and_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), &[3, 9]);
        let d = load(dir.path()).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.inputs(), d.outputs()), (2, 1, 4, 10));
        assert_eq!(d.train.x.row(0).to_vec(), [0.0, 1.0, 0.2, 0.4]);
        assert_eq!(d.train.y, Labels::Classes { labels: vec![3, 9], n_classes: 10 });
    }

    #[test]
    fn inconsistent_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), &[3, 10]);
        assert!(load(dir.path()).unwrap_err().to_string().contains("label 10 at item 1 is out of range"));
        fixture(dir.path(), &[3]);
        assert!(load(dir.path()).unwrap_err().to_string().contains("1 labels for 2 images"));
        std::fs::write(dir.path().join("train-labels-idx1-ubyte.gz"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("train-labels"), "{e}");
        std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
        fixture(dir.path(), &[3, 9]);
        std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("no t10k-images-idx3-ubyte"));
    }
}
