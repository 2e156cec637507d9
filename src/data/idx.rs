//! The IDX format of LeCun's MNIST files, plain or gzipped.
//!
//! ```text
//! bytes 0-1   0x00 0x00
//! byte  2     element type (0x08 = unsigned byte; the only type MNIST uses)
//! byte  3     number of dimensions d
//! 4·d bytes   each dimension's size, big-endian u32
//! then        the elements, row-major
//! ```
//! The header is checked before anything is allocated from it: the payload is read through a
//! limit of exactly the size the header announces (plus one byte, to detect trailing data), so
//! a header that claims 10¹² items fails on a short file without a large allocation.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The most elements an IDX file may announce (4 GiB of bytes); more is refused up front.
pub const MAX_ELEMENTS: u64 = 1 << 32;

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The dimension sizes.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, gzipped (detected by its magic bytes) or not.
pub fn read(path: &Path) -> Result<Idx> {
    let file = File::open(path).map_err(|err| Error::Io { action: "cannot open", path: path.into(), err })?;
    decode(path, BufReader::new(file))
}

/// [`read`] from any reader: gzipped (detected by its magic bytes) or plain IDX (`path` names it
/// in messages; exposed for tests and fuzzing).
pub fn decode(path: &Path, mut reader: impl Read) -> Result<Idx> {
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut reader, &mut magic).map_err(|e| io_err(path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    if n == 2 && magic == [0x1f, 0x8b] {
        let gz = flate2::read::GzDecoder::new(head.chain(reader));
        parse(path, gz)
    } else {
        parse(path, head.chain(reader))
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    let msg = if e.kind() == std::io::ErrorKind::InvalidInput || e.kind() == std::io::ErrorKind::InvalidData {
        format!("corrupt gzip stream ({e}); re-download the file")
    } else {
        format!("read failed: {e}")
    };
    Error::Data { path: path.into(), msg }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Parses IDX bytes from any reader (exposed for tests and fuzzing).
pub fn parse(path: &Path, mut r: impl Read) -> Result<Idx> {
    let bad = |msg: String| Error::Data { path: path.into(), msg };
    let mut header = [0u8; 4];
    let got = read_up_to(&mut r, &mut header).map_err(|e| io_err(path, e))?;
    if got < 4 {
        return Err(bad(format!("file is {got} bytes long, shorter than the 4-byte IDX header; is it an IDX file?")));
    }
    if header[0] != 0 || header[1] != 0 {
        return Err(bad(format!(
            "wrong magic number {:02x}{:02x}{:02x}{:02x}: an IDX file starts with two zero bytes",
            header[0], header[1], header[2], header[3]
        )));
    }
    if header[2] != 0x08 {
        return Err(bad(format!(
            "element type 0x{:02x} is not supported; MNIST files hold unsigned bytes (0x08)",
            header[2]
        )));
    }
    let ndims = header[3] as usize;
    if ndims == 0 {
        return Err(bad("header declares 0 dimensions".into()));
    }
    let mut dim_bytes = vec![0u8; 4 * ndims];
    let got = read_up_to(&mut r, &mut dim_bytes).map_err(|e| io_err(path, e))?;
    if got < dim_bytes.len() {
        return Err(bad(format!(
            "truncated header: {ndims} dimensions need {} bytes, file has {got}",
            dim_bytes.len()
        )));
    }
    let dims: Vec<u64> = dim_bytes.chunks(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64).collect();
    let total = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&t| t <= MAX_ELEMENTS);
    let Some(total) = total else {
        return Err(bad(format!(
            "header dimensions {dims:?} announce more than {MAX_ELEMENTS} elements; the header is corrupt"
        )));
    };
    // Read at most total + 1 bytes: the Vec grows with what the file really holds.
    let mut data = Vec::new();
    r.take(total + 1).read_to_end(&mut data).map_err(|e| io_err(path, e))?;
    if (data.len() as u64) < total {
        return Err(bad(format!(
            "truncated: header dimensions {dims:?} announce {total} bytes of data, the file holds {}",
            data.len()
        )));
    }
    if data.len() as u64 > total {
        return Err(bad(format!("trailing data after the {total} bytes that the header dimensions {dims:?} announce")));
    }
    Ok(Idx { dims: dims.into_iter().map(|d| d as usize).collect(), data })
}

/// The bytes of an unsigned-byte IDX file (for fixtures written by tests).
#[cfg(test)]
pub(crate) fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use encode as idx;

    #[test]
    fn parses_a_small_array() {
        let bytes = idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let got = parse(Path::new("t"), bytes.as_slice()).unwrap();
        assert_eq!(got, Idx { dims: vec![2, 3], data: vec![1, 2, 3, 4, 5, 6] });
    }

    #[test]
    fn rejects_bad_headers_without_allocating() {
        let p = Path::new("t");
        let e = parse(p, [1u8, 0, 8, 1].as_slice()).unwrap_err().to_string();
        assert!(e.contains("magic"), "{e}");
        let e = parse(p, [0u8, 0, 0x0d, 1, 0, 0, 0, 1].as_slice()).unwrap_err().to_string();
        assert!(e.contains("element type"), "{e}");
        let e = parse(p, [0u8, 0, 8, 2, 0, 0].as_slice()).unwrap_err().to_string();
        assert!(e.contains("truncated header"), "{e}");
        // 10^12 items claimed, 3 present: must fail fast (no 1 TB allocation)
        let e = parse(p, idx(&[1_000_000, 1_000_000], &[1, 2, 3]).as_slice()).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
        let e = parse(p, idx(&[1000, 1000], &[1, 2, 3]).as_slice()).unwrap_err().to_string();
        assert!(e.contains("truncated: header"), "{e}");
        let e = parse(p, idx(&[2], &[1, 2, 3]).as_slice()).unwrap_err().to_string();
        assert!(e.contains("trailing data"), "{e}");
    }
}
