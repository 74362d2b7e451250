//! Sources: where a job's records come from, split for parallel reading, with restorable
//! positions.
//!
//! A [`Source`] enumerates its splits for a given parallelism; each subtask reads the splits
//! `i`, `i + p`, `i + 2p`, ... through a [`SourceReader`]. A reader's [`SourceReader::snapshot`]
//! returns its split with the current position, and [`Source::create_reader`] given such a split
//! resumes from it: that is what checkpoints store and recovery replays from.
//!
//! Built-in sources: collections ([`VecSource`], [`IterSource`]), number sequences and
//! generators ([`GeneratorSource`]), Arrow record batches ([`RecordBatchSource`]).

mod arrow;
mod collection;

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::arrow::{RecordBatchReader, RecordBatchSource, RecordBatchSplit};
pub use collection::{GeneratorSource, GeneratorSplit, IterSource, IterSplit, VecSource, VecSplit};

use crate::batch::Batch;
use crate::error::{BoxError, JobError, TaskError};
use crate::executor::task::{Flusher, TaskBody, TaskEnv};
use crate::graph::{AnyOutput, BuildContext, SourceNode, downcast_output};
use crate::operator::chain::attribute;
use crate::operator::{OperatorContext, Output};

/// What a reader has for the task right now.
#[derive(Debug)]
pub enum SourcePoll<B> {
    /// A batch of records.
    Ready(B),
    /// Nothing at the moment; ask again later.
    Idle,
    /// The split is exhausted.
    Finished,
}

/// A parallel, restorable source of batches.
///
/// ```
/// use rivulet_runtime::{StreamEnv, source::GeneratorSource};
///
/// let env = StreamEnv::new().with_parallelism(2);
/// let squares = env.from_source(GeneratorSource::new(4, |i| i * i)).collect();
/// env.execute("squares").unwrap();
/// assert_eq!(squares.take_sorted(), vec![0, 1, 4, 9]);
/// ```
pub trait Source: Send + 'static {
    /// The batches the source produces.
    type Batch: Batch;
    /// A split: a part of the input together with a position in it.
    type Split: Clone + Debug + Serialize + DeserializeOwned + Send + 'static;
    /// Reads one split.
    type Reader: SourceReader<Batch = Self::Batch, Split = Self::Split>;

    /// The splits to read with `parallelism` subtasks, each at its starting position.
    fn splits(&self, parallelism: usize) -> Result<Vec<Self::Split>, BoxError>;

    /// A reader for `split`, starting at the split's position.
    fn create_reader(&self, split: Self::Split) -> Result<Self::Reader, BoxError>;

    /// The largest parallelism the source supports; `None` for no limit.
    fn max_parallelism(&self) -> Option<usize> {
        None
    }

    /// The operator name shown in job graphs.
    fn name(&self) -> String {
        "Source".to_owned()
    }
}

/// Reads one split of a [`Source`].
pub trait SourceReader: Send + 'static {
    /// The batches it produces.
    type Batch;
    /// The split type, which carries the position.
    type Split;

    /// Returns up to `max_records` records, or says there are none now or none ever.
    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<Self::Batch>, BoxError>;

    /// The split with the position after the last record returned.
    fn snapshot(&self) -> Self::Split;
}

/// The stream-graph node of a source.
pub(crate) struct SourceOperatorNode<S: Source> {
    pub(crate) source: S,
}

impl<S: Source> SourceNode for SourceOperatorNode<S> {
    fn build(&self, ctx: BuildContext, out: AnyOutput) -> Result<Box<dyn TaskBody>, JobError> {
        let op = ctx.operator.clone();
        let failed = |source: BoxError| JobError::OperatorFailed {
            operator: op.name.clone(),
            subtask: op.subtask,
            parallelism: op.parallelism,
            source,
        };
        let splits = self.source.splits(op.parallelism).map_err(failed)?;
        let mut readers = Vec::new();
        for split in splits.into_iter().skip(op.subtask).step_by(op.parallelism) {
            readers.push(self.source.create_reader(split).map_err(failed)?);
        }
        Ok(Box::new(SourceTask::<S> {
            readers,
            out: downcast_output::<S::Batch>(out),
            ctx: ctx.operator,
            metrics: ctx.metrics,
            batch_size: ctx.batch_size,
        }))
    }

    fn max_parallelism(&self) -> Option<usize> {
        self.source.max_parallelism()
    }
}

/// The loop of a source subtask: poll every reader round-robin, emit, flush on time, end with
/// the maximum watermark once every split is exhausted.
struct SourceTask<S: Source> {
    readers: Vec<S::Reader>,
    out: Box<dyn Output<S::Batch>>,
    ctx: OperatorContext,
    metrics: std::sync::Arc<crate::operator::chain::OperatorMetrics>,
    batch_size: usize,
}

/// How long an idle source sleeps at most before polling again.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(1);

impl<S: Source> TaskBody for SourceTask<S> {
    fn run(mut self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError> {
        self.out.open()?;
        let batch_size = self.batch_size;
        let mut flusher = Flusher::new(env.buffer_timeout);
        loop {
            if env.cancel.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let mut progressed = false;
            let mut i = 0;
            while i < self.readers.len() {
                let reader = &mut self.readers[i];
                let polled = catch_unwind(AssertUnwindSafe(|| reader.poll(batch_size)));
                let polled = match polled {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => return attribute(&self.ctx, Ok(Err(TaskError::User(e)))),
                    Err(panic) => return attribute(&self.ctx, Err(panic)),
                };
                match polled {
                    SourcePoll::Ready(batch) => {
                        self.metrics
                            .records_out
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        self.out.collect(batch)?;
                        progressed = true;
                        i += 1;
                    }
                    SourcePoll::Idle => i += 1,
                    SourcePoll::Finished => {
                        self.readers.swap_remove(i);
                    }
                }
            }
            if self.readers.is_empty() {
                self.out.emit_watermark(i64::MAX)?;
                return self.out.finish();
            }
            if flusher.due() {
                self.out.flush()?;
            }
            if !progressed {
                std::thread::sleep(flusher.remaining().min(IDLE_POLL));
            }
        }
    }
}
