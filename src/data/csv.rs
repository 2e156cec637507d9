//! CSV files with a header row: one column is the target, every other column an input feature.
//!
//! The target is read as a real value (regression), or, for `cross_entropy`, as an integer
//! class label in `0..n_classes` (n_classes = largest label + 1). A seeded shuffle chooses the
//! `test_fraction` of rows held out; both splits keep the file's row order, so with
//! `test_fraction = 0` the training split is the file as it is.
//! Features are used as they are (no standardisation), so results compare directly with a
//! PyTorch model fed the same file.

use crate::data::{Dataset, Labels, Split};
use crate::error::{Error, Result};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Loads `file`, predicting the column named `target`.
pub fn load(file: &Path, target: &str, classes: bool, seed: u64, test_fraction: f64) -> Result<Dataset> {
    let f = std::fs::File::open(file).map_err(|err| Error::Io { action: "cannot open", path: file.into(), err })?;
    parse(file, std::io::BufReader::new(f), target, classes, seed, test_fraction)
}

/// [`load`] from any reader (`file` names it in messages; exposed for tests and fuzzing).
pub fn parse(
    file: &Path,
    input: impl std::io::Read,
    target: &str,
    classes: bool,
    seed: u64,
    test_fraction: f64,
) -> Result<Dataset> {
    let bad = |msg: String| Error::Data { path: file.into(), msg };
    let mut reader =
        ::csv::ReaderBuilder::new().has_headers(true).trim(::csv::Trim::All).from_reader(CrLfToLf::new(input));
    let headers: Vec<String> = reader.headers().map_err(|e| bad(e.to_string()))?.iter().map(str::to_string).collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(bad("no header row; the first line must name the columns".into()));
    }
    let Some(t) = headers.iter().position(|h| h == target) else {
        let names: Vec<&str> = headers.iter().map(String::as_str).collect();
        return Err(Error::invalid(
            "target",
            target,
            format!(
                "no such column in {}{}; columns: {}",
                file.display(),
                crate::error::closest(target, &names).map(|c| format!(" (did you mean '{c}'?)")).unwrap_or_default(),
                names.join(", ")
            ),
        ));
    };
    if headers.len() < 2 {
        return Err(bad("needs at least one feature column besides the target".into()));
    }
    let mut features: Vec<f32> = Vec::new();
    let mut targets: Vec<f64> = Vec::new();
    for (r, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| bad(format!("{e}; every row needs {} comma-separated cells", headers.len())))?;
        let line = record.position().map_or(r + 2, |p| p.line() as usize);
        for (c, cell) in record.iter().enumerate() {
            let v: f64 = cell.parse().map_err(|_| {
                let what = if cell.is_empty() { "empty".to_string() } else { format!("'{cell}', not a number") };
                bad(format!("line {line}, column '{}': {what}; fill or drop the row", headers[c]))
            })?;
            if !v.is_finite() {
                return Err(bad(format!(
                    "line {line}, column '{}': {cell} is not finite; remove or impute it",
                    headers[c]
                )));
            }
            if c == t { targets.push(v) } else { features.push(v as f32) }
        }
    }
    let n = targets.len();
    if n == 0 {
        return Err(bad("no data rows after the header".into()));
    }
    let x = Array2::from_shape_vec((n, headers.len() - 1), features).expect("rows have equal length");
    let y = if classes {
        let mut labels = Vec::with_capacity(n);
        for (i, &v) in targets.iter().enumerate() {
            if v < 0.0 || v.fract() != 0.0 || v > 1e6 {
                return Err(bad(format!(
                    "row {}: target '{target}' = {v} is not a class label (a non-negative integer); \
                     use --loss mse or sse for a real-valued target",
                    i + 1
                )));
            }
            labels.push(v as usize);
        }
        let n_classes = labels.iter().max().map_or(0, |m| m + 1).max(2);
        Labels::Classes { labels, n_classes }
    } else {
        Labels::Values(Array2::from_shape_vec((n, 1), targets.iter().map(|&v| v as f32).collect()).expect("n×1"))
    };
    let all = Split { x, y };
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c5f0));
    let n_test = ((n as f64) * test_fraction).round() as usize;
    if n_test >= n {
        return Err(Error::invalid(
            "test_fraction",
            test_fraction,
            format!("leaves no training rows of {n}; use a value below 1"),
        ));
    }
    // The shuffle only chooses the held-out rows; both splits keep the file's order.
    let (mut train_idx, mut test_idx) = (order[..n - n_test].to_vec(), order[n - n_test..].to_vec());
    train_idx.sort_unstable();
    test_idx.sort_unstable();
    let (train_idx, test_idx) = (&train_idx[..], &test_idx[..]);
    Ok(Dataset { name: format!("csv:{}", file.display()), train: all.select(train_idx), test: all.select(test_idx) })
}

/// Turns CRLF line ends into LF as the bytes stream by. The csv crate places a record that
/// follows a CRLF on the line before (it starts counting at the LF): with LF only, the line
/// numbers in messages are right for Windows files too.
struct CrLfToLf<R> {
    inner: R,
    /// A CR was the last byte read; it is dropped if a LF follows, else written out.
    pending_cr: bool,
    /// Converted bytes not yet handed out, from `at`.
    out: Vec<u8>,
    at: usize,
    chunk: Vec<u8>,
}

impl<R> CrLfToLf<R> {
    fn new(inner: R) -> Self {
        Self { inner, pending_cr: false, out: Vec::new(), at: 0, chunk: vec![0; 8 * 1024] }
    }
}

impl<R: std::io::Read> std::io::Read for CrLfToLf<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                if std::mem::take(&mut self.pending_cr) {
                    self.out.push(b'\r');
                    break;
                }
                return Ok(0);
            }
            for &b in &self.chunk[..n] {
                if std::mem::take(&mut self.pending_cr) && b != b'\n' {
                    self.out.push(b'\r');
                }
                if b == b'\r' {
                    self.pending_cr = true;
                } else {
                    self.out.push(b);
                }
            }
        }
        let k = buf.len().min(self.out.len() - self.at);
        buf[..k].copy_from_slice(&self.out[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn regression_and_classification() {
        let f = write("\u{feff}a,b,y\r\n1,2,0.5\r\n3,4,1.5\r\n5,6,2.5\r\n7,8,3.5\r\n");
        let d = load(f.path(), "y", false, 0, 0.25).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.inputs(), d.outputs()), (3, 1, 2, 1));
        let mut ys: Vec<f32> = match (&d.train.y, &d.test.y) {
            (Labels::Values(a), Labels::Values(b)) => a.iter().chain(b.iter()).copied().collect(),
            _ => panic!(),
        };
        ys.sort_by(f32::total_cmp);
        assert_eq!(ys, [0.5, 1.5, 2.5, 3.5]);
        let f = write("x,label\n0.1,0\n0.2,2\n0.3,1\n");
        let d = load(f.path(), "label", true, 0, 0.0).unwrap();
        assert_eq!(d.outputs(), 3);
        assert_eq!(d.train.x.column(0).to_vec(), [0.1, 0.2, 0.3], "file order kept");
        assert!(d.test.is_empty());
    }

    #[test]
    fn crlf_becomes_lf_and_lone_cr_stays() {
        use std::io::Read;
        for text in ["a\r\nb\r\n", "\r", "\r\r\n\n", "x\ry\r", "", "\r\n\r\n"] {
            // one byte at a time, so that every CR ends a chunk
            let mut got = Vec::new();
            CrLfToLf::new(text.as_bytes()).read_to_end(&mut got).unwrap();
            let mut slow = Vec::new();
            let mut r = CrLfToLf::new(OneByte(text.as_bytes()));
            r.read_to_end(&mut slow).unwrap();
            let want = text.replace("\r\n", "\n");
            assert_eq!((String::from_utf8(got).unwrap(), String::from_utf8(slow).unwrap()), (want.clone(), want));
        }
    }

    struct OneByte<'a>(&'a [u8]);
    impl std::io::Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else { return Ok(0) };
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn line_numbers_of_crlf_files() {
        let f = write("\u{feff}a,y\r\n1,2\r\nq,3\r\n");
        let e = load(f.path(), "y", false, 0, 0.0).unwrap_err().to_string();
        assert!(e.contains("line 3, column 'a': 'q'"), "{e}");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let cases = [
            ("a,y\n1,2\n3\n", "y", false, "2 comma-separated"),
            ("a,y\n1,2\nfoo,3\n", "y", false, "'foo', not a number"),
            ("a,y\n1,2\n,3\n", "y", false, "line 3, column 'a': empty"),
            ("a,y\n1,nan\n", "y", false, "not finite"),
            ("a,y\n1,2\n", "z", false, "no such column"),
            ("a,yy\n1,2\n", "y", false, "did you mean 'yy'"),
            ("a,y\n1,0.5\n", "y", true, "not a class label"),
            ("a,y\n1,-1\n", "y", true, "not a class label"),
            ("a,y\n", "y", false, "no data rows"),
        ];
        for (text, target, classes, want) in cases {
            let f = write(text);
            let e = load(f.path(), target, classes, 0, 0.0).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
