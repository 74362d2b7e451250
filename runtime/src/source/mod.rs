//! Sources: where a job's records come from, split for parallel reading, with restorable
//! positions.
//!
//! A [`Source`] enumerates its splits for a given parallelism; each subtask reads the splits
//! `i`, `i + p`, `i + 2p`, ... through a [`SourceReader`]. A reader's [`SourceReader::snapshot`]
//! returns its split with the current position, and [`Source::create_reader`] given such a split
//! resumes from it: that is what checkpoints store and recovery replays from.
//!
//! Built-in sources: collections ([`VecSource`], [`IterSource`]), number sequences and
//! generators ([`GeneratorSource`]), Arrow record batches ([`RecordBatchSource`]), text files
//! ([`TextFileSource`]), CSV files ([`CsvSource`]), Parquet files ([`ParquetSource`]) and the
//! Nexmark benchmark's generator ([`NexmarkSource`]).

mod arrow;
mod collection;
mod csv;
mod file;
mod nexmark;
mod parquet;

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::arrow::{RecordBatchReader, RecordBatchSource, RecordBatchSplit};
pub use self::csv::{CsvError, CsvReader, CsvSource, CsvSplit};
pub use self::nexmark::{
    NEXMARK_BASE_TIME_MS, NEXMARK_FIRST_EVENT_RATE, NexmarkConfig, NexmarkError, NexmarkReader,
    NexmarkSource, NexmarkSplit, NexmarkStream, default_nexmark_config,
};
pub use self::parquet::{ParquetReadError, ParquetReader, ParquetSource, ParquetSplit};
pub use collection::{GeneratorSource, GeneratorSplit, IterSource, IterSplit, VecSource, VecSplit};
pub use file::{FileError, FileSplit, TextFileReader, TextFileSource};

use crate::batch::Batch;
use crate::error::{BoxError, JobError, TaskError};
use crate::executor::task::{Flusher, ProcessingTime, TaskBody, TaskEnv};
use crate::graph::{AnyOutput, BuildContext, SourceNode, downcast_output};
use crate::message::Barrier;
use crate::operator::OperatorState;
use crate::operator::chain::{Runtime, attribute};
use crate::operator::{OperatorContext, Output};
use crate::time::{BatchWatermarks, WatermarkUpdate};

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

/// Makes the per-split watermark tracking of a source.
pub(crate) type WatermarksFactory<B> =
    std::sync::Arc<dyn Fn(i64) -> Box<dyn BatchWatermarks<B>> + Send + Sync>;

/// The stream-graph node of a source.
pub(crate) struct SourceOperatorNode<S: Source> {
    pub(crate) source: S,
    pub(crate) watermarks: Option<WatermarksFactory<S::Batch>>,
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
        // A fresh start enumerates the splits; a restore takes every split any subtask
        // checkpointed (so a restore at another parallelism redistributes them).
        let splits: Vec<S::Split> = match &ctx.restored_splits {
            None => self.source.splits(op.parallelism).map_err(failed)?,
            Some(blobs) => {
                let mut splits = Vec::new();
                // A subtask that had finished left no positions: its splits were all read.
                for blob in blobs.iter().filter(|b| !b.is_empty()) {
                    let mine: Vec<S::Split> = postcard::from_bytes(blob).map_err(|e| {
                        failed(
                            format!("the checkpointed source positions do not decode: {e}").into(),
                        )
                    })?;
                    splits.extend(mine);
                }
                splits
            }
        };
        let mut readers = Vec::new();
        for split in splits.into_iter().skip(op.subtask).step_by(op.parallelism) {
            let reader = self.source.create_reader(split).map_err(failed)?;
            readers.push(SplitReader {
                reader,
                watermarks: self
                    .watermarks
                    .as_ref()
                    .map(|make| make(op.processing_time())),
            });
        }
        let unaligned = ctx
            .runtime
            .checkpoints
            .as_ref()
            .is_some_and(|c| c.unaligned_enabled());
        let (triggered, completed) = match &ctx.runtime.checkpoints {
            Some(c) => (c.triggered(), c.completed()),
            None => (0, 0),
        };
        Ok(Box::new(SourceTask::<S> {
            readers,
            out: downcast_output::<S::Batch>(out),
            ctx: ctx.operator,
            runtime: ctx.runtime,
            batch_size: ctx.batch_size,
            watermark: i64::MIN,
            idle: false,
            triggered,
            completed,
            unaligned,
        }))
    }

    fn max_parallelism(&self) -> Option<usize> {
        self.source.max_parallelism()
    }
}

/// A split being read, with its own watermark tracking when the source has a strategy.
struct SplitReader<S: Source> {
    reader: S::Reader,
    watermarks: Option<Box<dyn BatchWatermarks<S::Batch>>>,
}

/// The loop of a source subtask: poll every split round-robin, emit, generate watermarks per
/// split (the subtask's watermark is the minimum over its active splits), flush on time, and end
/// with the maximum watermark once every split is exhausted.
struct SourceTask<S: Source> {
    readers: Vec<SplitReader<S>>,
    out: Box<dyn Output<S::Batch>>,
    ctx: OperatorContext,
    runtime: Runtime,
    batch_size: usize,
    /// The last watermark emitted.
    watermark: i64,
    /// Whether the subtask announced itself idle.
    idle: bool,
    /// The last checkpoint triggered and completed that this subtask saw.
    triggered: u64,
    completed: u64,
    /// Whether checkpoints may be unaligned.
    unaligned: bool,
}

/// How long an idle source sleeps at most before polling again.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(1);

impl<S: Source> SourceTask<S> {
    /// Takes part in checkpoints: on a new trigger, records every split's position, acknowledges
    /// it and emits the barrier (which snapshots the chained operators); on a completion,
    /// notifies the chain.
    fn checkpoint(&mut self) -> Result<(), TaskError> {
        let Some(coordinator) = self.runtime.checkpoints.clone() else {
            return Ok(());
        };
        let triggered = coordinator.triggered();
        // With concurrent checkpoints several may have been triggered since the last look:
        // every one still pending gets its barrier, in order.
        for id in self.triggered + 1..=triggered {
            if id < triggered && !coordinator.is_pending(id) {
                continue;
            }
            let splits: Vec<S::Split> = self.readers.iter().map(|r| r.reader.snapshot()).collect();
            let state = OperatorState {
                keyed: Default::default(),
                operator: postcard::to_stdvec(&splits)?,
            };
            coordinator.ack(id, self.runtime.node, self.ctx.subtask, state);
            self.out.emit_barrier(Barrier {
                checkpoint_id: id,
                timestamp: self.ctx.processing_time(),
                unaligned: coordinator.starts_unaligned(id),
            })?;
        }
        self.triggered = self.triggered.max(triggered);
        let completed = coordinator.completed();
        if completed > self.completed {
            self.completed = completed;
            self.out.notify_checkpoint_complete(completed)?;
        }
        Ok(())
    }

    /// Emits the subtask's watermark and idleness after a split's tracker changed.
    fn emit_watermarks(&mut self) -> Result<(), TaskError> {
        let mut tracked = self
            .readers
            .iter()
            .filter_map(|r| r.watermarks.as_ref())
            .peekable();
        if tracked.peek().is_none() {
            return Ok(());
        }
        let mut min: Option<i64> = None;
        let mut max = i64::MIN;
        let mut all_idle = true;
        for w in tracked {
            max = max.max(w.watermark());
            if !w.is_idle() {
                all_idle = false;
                min = Some(min.map_or(w.watermark(), |m| m.min(w.watermark())));
            }
        }
        // Once every split is idle, the largest watermark any split reached holds.
        if all_idle {
            min = Some(max);
        }
        if !all_idle && self.idle {
            self.idle = false;
            self.out.emit_idle(false)?;
        }
        if let Some(min) = min
            && min > self.watermark
        {
            self.watermark = min;
            self.out.emit_watermark(min)?;
        }
        if all_idle && !self.idle {
            self.idle = true;
            self.out.emit_idle(true)?;
        }
        Ok(())
    }
}

impl<S: Source> TaskBody for SourceTask<S> {
    fn run(mut self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError> {
        self.out.open()?;
        let batch_size = self.batch_size;
        let mut flusher = Flusher::new(env.buffer_timeout);
        let mut time = ProcessingTime::new(&env.clock);
        loop {
            if env.cancel.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            self.checkpoint()?;
            let mut progressed = false;
            let mut i = 0;
            // With unaligned checkpoints a backpressured source waits here, where it can still
            // emit barriers, rather than blocked in a full channel.
            if self.unaligned && !self.out.has_room() {
                i = self.readers.len();
            }
            while i < self.readers.len() {
                let reader = &mut self.readers[i].reader;
                let polled = catch_unwind(AssertUnwindSafe(|| reader.poll(batch_size)));
                let polled = match polled {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => return attribute(&self.ctx, Ok(Err(TaskError::User(e)))),
                    Err(panic) => return attribute(&self.ctx, Err(panic)),
                };
                match polled {
                    SourcePoll::Ready(batch) => {
                        self.runtime
                            .metrics
                            .records_out
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        progressed = true;
                        match self.readers[i].watermarks.as_mut() {
                            Some(w) => {
                                let (batch, update) = w.on_batch(batch, env.clock.now_ms());
                                if update.idle == Some(false) && self.idle {
                                    self.idle = false;
                                    self.out.emit_idle(false)?;
                                }
                                self.out.collect(batch)?;
                                if update != WatermarkUpdate::default() {
                                    self.emit_watermarks()?;
                                }
                            }
                            None => self.out.collect(batch)?,
                        }
                        i += 1;
                    }
                    SourcePoll::Idle => i += 1,
                    SourcePoll::Finished => {
                        self.readers.swap_remove(i);
                        self.emit_watermarks()?;
                    }
                }
            }
            if self.readers.is_empty() {
                if self.idle {
                    self.out.emit_idle(false)?;
                }
                self.out.emit_watermark(i64::MAX)?;
                return self.out.finish();
            }
            if let Some(now) = time.advanced() {
                let mut changed = false;
                for reader in &mut self.readers {
                    if let Some(w) = reader.watermarks.as_mut() {
                        changed |= w.on_tick(now) != WatermarkUpdate::default();
                    }
                }
                if changed {
                    self.emit_watermarks()?;
                }
                self.out.processing_time(now)?;
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
