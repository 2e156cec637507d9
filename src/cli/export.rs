//! `gradscope export`: run folders' records as TensorBoard event files and one flat CSV.

use super::Status;
use super::args::ExportArgs;
use gradscope::export;
use gradscope::report::Report;

/// Runs `gradscope export`.
pub fn run(a: &ExportArgs) -> anyhow::Result<Status> {
    // everything is read and checked before anything is written
    let report = Report::load(&a.runs, super::report::command_line())?;
    if let Some(dir) = &a.tensorboard {
        let files = export::tensorboard::write(&report, dir)?;
        crate::outln!(
            "wrote {} TensorBoard event files under {} (tensorboard --logdir {})",
            files.len(),
            dir.display(),
            dir.display()
        );
    }
    if let Some(path) = &a.csv {
        export::write_csv(&report, path)?;
        crate::outln!("wrote {}", path.display());
    }
    Ok(Status::Ok)
}
