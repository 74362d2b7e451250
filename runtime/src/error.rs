//! Errors of the runtime: what a user sees when a job cannot be built or fails.

use std::fmt;

/// A boxed error raised by user code (a function, a source, a sink).
///
/// User functions return `Result<_, BoxError>` so any error type converts with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a job could not run to completion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// An operator returned an error.
    #[error("operator {operator:?} (subtask {subtask} of {parallelism}) failed: {source}")]
    OperatorFailed {
        /// The operator's name.
        operator: String,
        /// Zero-based index of the failing subtask.
        subtask: usize,
        /// The operator's parallelism.
        parallelism: usize,
        /// What the operator reported.
        #[source]
        source: BoxError,
    },
    /// An operator panicked; the panic was caught at the task boundary.
    #[error("operator {operator:?} (subtask {subtask} of {parallelism}) panicked: {message}")]
    OperatorPanicked {
        /// The operator's name.
        operator: String,
        /// Zero-based index of the panicking subtask.
        subtask: usize,
        /// The operator's parallelism.
        parallelism: usize,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The job was cancelled through its [`JobHandle`](crate::JobHandle).
    #[error("job {job:?} was cancelled")]
    Cancelled {
        /// The job's name.
        job: String,
    },
    /// The job graph is not valid; the message says which operator and what to change.
    #[error("invalid job graph: {0}")]
    InvalidGraph(#[from] GraphError),
    /// A savepoint could not be taken or read.
    #[error("savepoint {path:?}: {source}")]
    Savepoint {
        /// The savepoint folder (or the directory it was to be written to).
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: crate::checkpoint::CheckpointError,
    },
    /// The in-flight data an unaligned checkpoint stored for a task could not be restored.
    #[error(
        "could not restore the in-flight data of operator {operator:?} (subtask {subtask}) from checkpoint {checkpoint}: {source}"
    )]
    InFlightRestore {
        /// The operator heading the task.
        operator: String,
        /// The subtask.
        subtask: usize,
        /// The checkpoint restored from.
        checkpoint: u64,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A savepoint holds state for an operator the job does not have.
    #[error(
        "savepoint {path:?} has state for operator {operator:?}, which this job does not have; give the operator the same uid as before, or allow non-restored state"
    )]
    UnknownSavepointState {
        /// The operator id in the savepoint.
        operator: String,
        /// The savepoint folder.
        path: std::path::PathBuf,
    },
    /// The operating system refused to start a task thread.
    #[error("could not start the thread of task {task:?}: {source}")]
    Spawn {
        /// The task's name.
        task: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// A mistake in how a job was put together, found before it runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// A parallelism of zero or above the maximum parallelism.
    #[error(
        "operator {operator:?} has parallelism {parallelism}; use a value from 1 to the maximum parallelism {max_parallelism}"
    )]
    InvalidParallelism {
        /// The operator's name.
        operator: String,
        /// The parallelism that was asked for.
        parallelism: usize,
        /// The job's maximum parallelism (the number of key groups).
        max_parallelism: usize,
    },
    /// The job has no sink, so it would compute nothing observable.
    #[error("the job has no operators; add a source and a sink before calling execute")]
    Empty,
    /// Two operators were given the same uid.
    #[error(
        "operators {first:?} and {second:?} share the uid {uid:?}; uids must be unique within a job"
    )]
    DuplicateUid {
        /// The uid given twice.
        uid: String,
        /// The first operator that has it.
        first: String,
        /// The second operator that has it.
        second: String,
    },
    /// A stream was used with an environment it does not belong to.
    #[error(
        "streams from two different StreamEnvs were combined in operator {operator:?}; build the whole job on one StreamEnv"
    )]
    ForeignStream {
        /// The operator combining the streams.
        operator: String,
    },
    /// The job graph was already executed.
    #[error(
        "this environment's job was already executed; build a new job before calling execute again"
    )]
    AlreadyExecuted,
}

/// How a task stops early: the error travels from an operator up the chain to the task loop.
///
/// Operators return `Result<(), TaskError>`; any user error converts into it with `?`, and the
/// runtime attaches the failing operator's name and subtask on the way out.
pub enum TaskError {
    /// An error raised by user code or an operator, not yet attributed to an operator.
    User(BoxError),
    /// A failure already attributed to an operator.
    Failed(Box<JobError>),
    /// The job is being cancelled or another task failed; stop quietly.
    Cancelled,
}

impl<E: Into<BoxError>> From<E> for TaskError {
    fn from(error: E) -> Self {
        TaskError::User(error.into())
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::User(e) => f.debug_tuple("User").field(e).finish(),
            TaskError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            TaskError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

/// The text of a caught panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
