//! [`TableError`]: why running a table failed.

use rivulet_optimizer::PlanError;
use rivulet_runtime::JobError;

/// Why a table could not be run or converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The plan is invalid or cannot be lowered.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The job failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// Rows could not be converted to or from typed records.
    #[error("{0}")]
    Convert(String),
    /// An Arrow operation failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
