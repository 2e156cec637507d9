//! `gradscope data NAME`: the four IDX files of MNIST or Fashion-MNIST, downloaded from the
//! mirrors torchvision uses, checked against published SHA-256 sums, written atomically and
//! resumable; and the cache folder that `--data mnist` reads.
//!
//! Each file is downloaded to `NAME.part` beside its final name. An interrupted download leaves
//! the `.part` file, and the next attempt asks the server for the rest (an HTTP Range request);
//! a server that ignores the range sends the whole file again, which replaces the part. Only a
//! file whose SHA-256 matches is renamed to its final name; one that does not match is deleted
//! and named in the error. So the folder holds verified files and, at most, `.part` files.
//!
//! The check: a file passes when the SHA-256 of the bytes served equals the published sum of
//! the archive, or (where known) the SHA-256 of its decompressed content equals the published
//! sum of the IDX file. The second rule accepts a mirror that recompressed the same data (the
//! copy in this project's shared folder is one: other `.gz` bytes, the same IDX content).

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One file of a data set, with its published checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name on the mirror and on disk.
    pub name: &'static str,
    /// SHA-256 of the archive as the mirrors serve it (hex).
    pub sha256: &'static str,
    /// SHA-256 of the decompressed IDX file (hex), where published.
    pub content_sha256: Option<&'static str>,
}

/// A data set that `gradscope data` can download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// Its name after `gradscope data` and `--data`.
    pub name: &'static str,
    /// Base URLs tried in order (torchvision's `mirrors`).
    pub mirrors: &'static [&'static str],
    /// The four files.
    pub files: [RemoteFile; 4],
}

/// MNIST. Mirrors: torchvision's `datasets/mnist.py` (`MNIST.mirrors`). Checksums: the archives'
/// SHA-256 as listed by several independent downloaders (e.g. tensorflow/datasets'
/// `url_checksums/mnist.txt`); the IDX contents' SHA-256 as listed beside them by downloaders
/// that check decompressed files, and equal to those of this project's copy.
pub const MNIST: Source = Source {
    name: "mnist",
    mirrors: &["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    files: [
        RemoteFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            content_sha256: Some("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        },
        RemoteFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            content_sha256: Some("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        },
        RemoteFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            content_sha256: Some("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        },
        RemoteFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            content_sha256: Some("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        },
    ],
};

/// Fashion-MNIST. Mirror: torchvision's `FashionMNIST.mirrors`. Checksums: the archives' SHA-256
/// as published in two independent sources that agree: Connor Olding's `mnists` package
/// (`hashes.py`, "fashion-mnist/…") and Britefury's `batchup` (`datasets/fashion_mnist.py`,
/// `_SHA256_TRAIN_IMAGES` …). No published sums of the decompressed files were found, so only
/// the archives as served are accepted.
pub const FASHION_MNIST: Source = Source {
    name: "fashion-mnist",
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    files: [
        RemoteFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            content_sha256: None,
        },
        RemoteFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            content_sha256: None,
        },
        RemoteFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            content_sha256: None,
        },
        RemoteFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
            content_sha256: None,
        },
    ],
};

/// The data sets `gradscope data` knows.
pub const SOURCES: [Source; 2] = [MNIST, FASHION_MNIST];

/// The names of [`SOURCES`].
pub const SOURCE_NAMES: [&str; 2] = ["mnist", "fashion-mnist"];

impl Source {
    /// `mnist` or `fashion-mnist`.
    pub fn by_name(name: &str) -> Result<Source> {
        SOURCES
            .iter()
            .find(|s| s.name == name)
            .copied()
            .ok_or_else(|| Error::unknown_name("data set", name, &SOURCE_NAMES))
    }
}

/// The environment variable naming the cache folder.
pub const DATA_ENV: &str = "GRADSCOPE_DATA";

/// The folder holding downloaded data sets: `$GRADSCOPE_DATA`, else `gradscope` in the
/// platform's cache folder (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on
/// macOS, `%LOCALAPPDATA%` on Windows).
pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_ENV).filter(|d| !d.is_empty()) {
        return Ok(dir.into());
    }
    dirs::cache_dir().map(|d| d.join("gradscope")).ok_or_else(|| {
        Error::invalid("data", "(cache)", format!("this platform has no cache folder; set {DATA_ENV}=DIR"))
    })
}

/// The cache folder of one data set (`mnist`, `fashion-mnist`).
pub fn cache_dir(name: &str) -> Result<PathBuf> {
    Ok(cache_root()?.join(name))
}

/// What [`fetch`] did with one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Already there and verified.
    Present,
    /// Downloaded (`resumed_from` bytes were there already) from `url`.
    Downloaded {
        /// Where from.
        url: String,
        /// Bytes received now.
        bytes: u64,
        /// Bytes of an earlier attempt that were kept.
        resumed_from: u64,
    },
}

/// The SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which check `bytes` pass, if any (see the module docs).
fn verify(file: &RemoteFile, bytes: &[u8]) -> std::result::Result<(), String> {
    let got = sha256_hex(bytes);
    if got == file.sha256 {
        return Ok(());
    }
    if let Some(want) = file.content_sha256 {
        let mut content = Vec::new();
        if flate2::read::GzDecoder::new(bytes).read_to_end(&mut content).is_ok() && sha256_hex(&content) == want {
            return Ok(());
        }
    }
    Err(format!("SHA-256 {got}, expected {}", file.sha256))
}

/// Downloads the files of `source` missing from `dir` (created if needed), trying `mirrors` in
/// order: base URLs (`http://`, `https://`) or local folders holding the same file names.
/// `report` is told about each file as it is done.
pub fn fetch(source: &Source, dir: &Path, mirrors: &[String], report: &mut dyn FnMut(&str, &Fetched)) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|err| Error::Io { action: "cannot create folder", path: dir.into(), err })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    for file in &source.files {
        let path = dir.join(file.name);
        if path.is_file() {
            let bytes =
                std::fs::read(&path).map_err(|err| Error::Io { action: "cannot read", path: path.clone(), err })?;
            if let Err(why) = verify(file, &bytes) {
                return Err(Error::Data {
                    path,
                    msg: format!("{why}; it is not the published file: delete it and run the command again"),
                });
            }
            report(file.name, &Fetched::Present);
            continue;
        }
        let mut failures = Vec::new();
        let mut done = None;
        for mirror in mirrors {
            match fetch_one(&agent, mirror, file, &path) {
                Ok(f) => {
                    done = Some(f);
                    break;
                }
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Retry(why)) => failures.push(format!("{mirror}: {why}")),
            }
        }
        let Some(f) = done else {
            let part = part_path(&path);
            let kept = std::fs::metadata(&part).map_or(0, |m| m.len());
            let resume = if kept > 0 {
                format!("; {kept} bytes are kept in {} and the same command resumes from there", part.display())
            } else {
                String::new()
            };
            return Err(Error::Download {
                file: file.name.into(),
                msg: format!(
                    "every mirror failed ({}){resume}; check the connection, or pass --mirror URL (or a folder holding the files)",
                    failures.join("; ")
                ),
            });
        };
        report(file.name, &f);
    }
    Ok(())
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("a file name").to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Why one mirror did not deliver a file.
enum Failure {
    /// Try the next mirror (unreachable, HTTP error, dropped connection).
    Retry(String),
    /// Stop: the bytes were wrong, or the disk failed.
    Refused(Error),
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl Fn(std::io::Error) -> Failure + 'p {
    move |err| Failure::Refused(Error::Io { action, path: path.into(), err })
}

/// Downloads (or copies) one file into `path` via `path.part`, then verifies and renames it.
fn fetch_one(
    agent: &ureq::Agent,
    mirror: &str,
    file: &RemoteFile,
    path: &Path,
) -> std::result::Result<Fetched, Failure> {
    let part = part_path(path);
    let is_url = mirror.starts_with("http://") || mirror.starts_with("https://");
    let (url, bytes, resumed_from) = if is_url {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
        let (bytes, resumed_from) = http_to_part(agent, &url, &part)?;
        (url, bytes, resumed_from)
    } else {
        let src = Path::new(mirror).join(file.name);
        if !src.is_file() {
            return Err(Failure::Retry(format!("no {} there", file.name)));
        }
        let bytes = std::fs::copy(&src, &part).map_err(io_err("cannot copy into", &part))?;
        (src.display().to_string(), bytes, 0)
    };
    let all = std::fs::read(&part).map_err(io_err("cannot read", &part))?;
    if let Err(why) = verify(file, &all) {
        std::fs::remove_file(&part).map_err(io_err("cannot remove", &part))?;
        return Err(Failure::Refused(Error::Download {
            file: file.name.into(),
            msg: format!(
                "{url} sent {} bytes with {why}; the file was deleted. Run the command again, or use another --mirror",
                all.len()
            ),
        }));
    }
    std::fs::File::open(&part).and_then(|f| f.sync_all()).map_err(io_err("cannot sync", &part))?;
    std::fs::rename(&part, path).map_err(io_err("cannot rename into", path))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(Fetched::Downloaded { url, bytes, resumed_from })
}

/// GETs `url` into `part`, asking for the rest when `part` holds the start of it. Returns the
/// bytes received now and the bytes kept from before.
fn http_to_part(agent: &ureq::Agent, url: &str, part: &Path) -> std::result::Result<(u64, u64), Failure> {
    let have = std::fs::metadata(part).map_or(0, |m| m.len());
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let resp = req.call().map_err(|e| Failure::Retry(e.to_string()))?;
    let status = resp.status().as_u16();
    // 206 with a range starting where the part ends: append. 200: the whole file. 416: the part
    // is already complete (or wrong; the check decides).
    let start = match status {
        206 => {
            let range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
            let first = range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|n| n.parse().ok());
            if first != Some(have) {
                return Err(Failure::Retry(format!("asked for bytes {have}- but got range '{range}'")));
            }
            have
        }
        200 => 0,
        416 if have > 0 => return Ok((0, have)),
        _ => return Err(Failure::Retry(format!("HTTP {status}"))),
    };
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .map_err(io_err("cannot write", part))?;
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                out.flush().map_err(io_err("cannot write", part))?;
                return Err(Failure::Retry(format!("connection lost after {} bytes ({e})", start + got)));
            }
        };
        out.write_all(&buf[..n]).map_err(io_err("cannot write", part))?;
        got += n as u64;
    }
    out.flush().map_err(io_err("cannot write", part))?;
    Ok((got, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_sha256_hex() {
        for s in SOURCES {
            for f in s.files {
                for h in [Some(f.sha256), f.content_sha256].into_iter().flatten() {
                    assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                }
            }
        }
        // FIPS 180-2's test vector
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_recompressed_archive_passes_by_its_content() {
        use std::io::Write;
        let content = b"some idx bytes".to_vec();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&content).unwrap();
        let gz = e.finish().unwrap();
        let hash: &'static str = Box::leak(sha256_hex(&content).into_boxed_str());
        let f = RemoteFile { name: "x.gz", sha256: "00", content_sha256: Some(hash) };
        assert!(verify(&f, &gz).is_ok());
        assert!(verify(&RemoteFile { content_sha256: None, ..f }, &gz).unwrap_err().contains("expected 00"));
        assert!(verify(&f, b"not gzip").is_err());
    }
}
