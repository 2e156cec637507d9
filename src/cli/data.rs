//! `gradscope data NAME`: downloads a data set into the cache folder (or `--to DIR`).

use super::Status;
use clap::Args;
use clap::builder::PossibleValuesParser;
use gradscope::data::download::{self, Fetched, SOURCE_NAMES, Source};
use gradscope::resources::human;
use std::path::PathBuf;

/// Flags of `data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// The data set.
    #[arg(value_parser = PossibleValuesParser::new(SOURCE_NAMES))]
    pub name: String,
    /// Folder for the four files [default: the cache folder, $GRADSCOPE_DATA/NAME or the
    /// platform's cache folder/gradscope/NAME].
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Base URL (or a local folder holding the four files) to download from instead of the
    /// built-in mirrors; repeat to try several in order.
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `gradscope data`.
pub fn run(a: &DataArgs) -> anyhow::Result<Status> {
    let source = Source::by_name(&a.name)?;
    let (dir, cached) = match &a.to {
        Some(d) => (d.clone(), false),
        None => (download::cache_dir(source.name)?, true),
    };
    let mirrors: Vec<String> =
        if a.mirror.is_empty() { source.mirrors.iter().map(|m| m.to_string()).collect() } else { a.mirror.clone() };
    let quiet = a.quiet;
    download::fetch(&source, &dir, &mirrors, &mut |name, what| {
        if quiet {
            return;
        }
        match what {
            Fetched::Present => crate::outln!("{name}: already there, SHA-256 verified"),
            Fetched::Downloaded { url, bytes, resumed_from: 0 } => {
                crate::outln!("{name}: {} from {url}, SHA-256 verified", human(*bytes))
            }
            Fetched::Downloaded { url, bytes, resumed_from } => crate::outln!(
                "{name}: resumed after {}, {} more from {url}, SHA-256 verified",
                human(*resumed_from),
                human(*bytes)
            ),
        }
    })?;
    if !quiet {
        let flag = if cached { source.name.to_string() } else { format!("{}:{}", source.name, dir.display()) };
        crate::outln!("{} is in {}; train on it with --data {flag}", source.name, dir.display());
    }
    Ok(Status::Ok)
}
