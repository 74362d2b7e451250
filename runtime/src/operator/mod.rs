//! Operators: the one trait every processing step implements, and the built-in operators.
//!
//! An [`Operator`] turns input batches into output batches. Its lifecycle hooks all have defaults
//! except [`Operator::process_batch`]: `open` once before the first batch, `process_watermark`
//! when event time advances, `finish` at the end of bounded input, `close` at the end. An operator
//! writes to an [`Output`], which is either the next operator of the same chain (a plain call on
//! the same thread) or the exchange that sends batches to the next task.
//!
//! Modules:
//! - `chain`: how operators of one task are linked, with metrics and failure attribution.
//! - `typed`: map, filter, flat-map and sinks over typed [`Records`](crate::Records).
//! - `keyed`: keyed reduce and keyed process functions with keyed state.
//! - `co`: two-input operators (co-map, co-process).
//! - [`calc`]: the vectorised filter + projection of Arrow changelog batches.

pub mod calc;
pub(crate) mod chain;
pub mod co;
pub mod keyed;
pub mod testing;
pub mod typed;
pub(crate) mod watermarks;

use std::sync::Arc;

use crate::batch::Batch;
use crate::error::TaskError;
use crate::keys::{KeyGroupRange, key_group_range_for_subtask};
use crate::message::Barrier;
use crate::time::{Clock, SystemClock};

/// Where an operator sends what it produces.
///
/// Implemented by the runtime: the next operator of a chain, an exchange to other tasks, or a
/// fan-out to several of them. Batches may be buffered until full; control events flush them first.
pub trait Output<B>: Send {
    /// Sends a batch downstream.
    fn collect(&mut self, batch: B) -> Result<(), TaskError>;

    /// Announces that event time has reached `watermark`.
    fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError>;

    /// Sends partially filled batches now (the buffer timeout expired).
    fn flush(&mut self) -> Result<(), TaskError>;

    /// Ends the stream: finishes every downstream operator of the chain and closes the channels.
    fn finish(&mut self) -> Result<(), TaskError>;

    /// Opens every downstream operator of the chain.
    fn open(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    /// Processing time reached `now_ms`: lets every downstream operator of the chain fire what is
    /// due.
    fn processing_time(&mut self, _now_ms: i64) -> Result<(), TaskError> {
        Ok(())
    }

    /// The stream became idle (no data and no watermarks for a while) or active again. Idle
    /// inputs do not hold back the watermark of the operators they feed.
    fn emit_idle(&mut self, _idle: bool) -> Result<(), TaskError> {
        Ok(())
    }

    /// A checkpoint barrier: every downstream operator of the chain snapshots its state, then
    /// the barrier travels on to the next tasks.
    fn emit_barrier(&mut self, _barrier: Barrier) -> Result<(), TaskError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` completed: tells every downstream operator of the chain.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), TaskError> {
        Ok(())
    }

    /// Whether every channel this output writes to has room for another message. With
    /// unaligned checkpoints a task reads new input only while its output has room, so it is
    /// never stuck in a full channel when a barrier wants to overtake. The default: always.
    fn has_room(&self) -> bool {
        true
    }
}

/// Facts about the subtask an operator runs in.
#[derive(Debug, Clone)]
pub struct OperatorContext {
    pub(crate) name: String,
    pub(crate) subtask: usize,
    pub(crate) parallelism: usize,
    pub(crate) max_parallelism: u16,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) checkpointing: bool,
    pub(crate) late_records: Arc<std::sync::atomic::AtomicU64>,
}

impl OperatorContext {
    /// A context for running an operator by hand, e.g. in a unit test.
    pub fn new(
        name: impl Into<String>,
        subtask: usize,
        parallelism: usize,
        max_parallelism: u16,
    ) -> Self {
        OperatorContext {
            name: name.into(),
            subtask,
            parallelism,
            max_parallelism,
            clock: Arc::new(SystemClock),
            checkpointing: false,
            late_records: Arc::default(),
        }
    }

    /// Counts `n` records dropped because they arrived behind the watermark. The job reports
    /// the sum over the operator's subtasks as [`OperatorStats::late_records_dropped`].
    ///
    /// [`OperatorStats::late_records_dropped`]: crate::OperatorStats::late_records_dropped
    pub fn count_late_records(&self, n: u64) {
        self.late_records
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Late records this operator dropped so far, over all subtasks sharing this context's
    /// counter.
    pub fn late_records_dropped(&self) -> u64 {
        self.late_records.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the job takes checkpoints; exactly-once sinks then publish on checkpoint
    /// completion instead of right away.
    pub fn checkpointing(&self) -> bool {
        self.checkpointing
    }

    /// The same context reading processing time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock processing time is read from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current processing time in milliseconds.
    pub fn processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The operator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zero-based index of this subtask.
    pub fn subtask_index(&self) -> usize {
        self.subtask
    }

    /// The operator's parallelism.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The job's maximum parallelism: the number of key groups.
    pub fn max_parallelism(&self) -> u16 {
        self.max_parallelism
    }

    /// The key groups this subtask owns.
    pub fn key_group_range(&self) -> KeyGroupRange {
        key_group_range_for_subtask(self.max_parallelism, self.parallelism, self.subtask)
    }
}

/// A one-input processing step. All hooks but `process_batch` have defaults.
///
/// ```
/// use rivulet_runtime::{Operator, Output, Records, TaskError};
///
/// /// Doubles every number.
/// struct Double;
///
/// impl Operator for Double {
///     type In = Records<i64>;
///     type Out = Records<i64>;
///
///     fn process_batch(&mut self, batch: Records<i64>, out: &mut dyn Output<Records<i64>>) -> Result<(), TaskError> {
///         out.collect(batch.map(|x| x * 2))
///     }
/// }
/// ```
pub trait Operator: Send + 'static {
    /// The batches it reads.
    type In: Batch;
    /// The batches it writes.
    type Out: Batch;

    /// Called once on the task's thread before the first batch.
    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), TaskError> {
        Ok(())
    }

    /// Processes one batch.
    fn process_batch(
        &mut self,
        batch: Self::In,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError>;

    /// Event time advanced to `watermark`. The default forwards it.
    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        out.emit_watermark(watermark)
    }

    /// Processing time reached `now_ms` (read from the job's clock after every batch and at
    /// least every buffer timeout). The default does nothing.
    fn on_processing_time(
        &mut self,
        _now_ms: i64,
        _out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        Ok(())
    }

    /// The input ended; emit whatever is still pending. The runtime then ends the output.
    fn finish(&mut self, _out: &mut dyn Output<Self::Out>) -> Result<(), TaskError> {
        Ok(())
    }

    /// Captures the operator's state for checkpoint `checkpoint_id`: keyed state split by key
    /// group, so it can be restored at another parallelism. Called between batches, when the
    /// checkpoint's barrier reaches the operator.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState::default())
    }

    /// Captures the state for checkpoint `checkpoint_id` like [`Operator::snapshot_state`], but
    /// may leave the serialization to a [`Snapshot::Deferred`] closure, which the runtime runs
    /// on a background thread while the operator goes on processing: the task pauses for the
    /// capture only. The default serializes at once.
    fn snapshot_state_async(&mut self, checkpoint_id: u64) -> Result<Snapshot, TaskError> {
        Ok(Snapshot::Ready(self.snapshot_state(checkpoint_id)?))
    }

    /// Checkpoint `checkpoint_id` completed: every operator of the job captured its state for it.
    /// Exactly-once sinks publish here what they wrote before that checkpoint.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), TaskError> {
        Ok(())
    }

    /// Restores state captured by [`Operator::snapshot_state`], after `open` and before the first
    /// batch. Key groups the subtask does not own are ignored.
    fn restore_state(&mut self, _state: &OperatorState) -> Result<(), TaskError> {
        Ok(())
    }

    /// Called once when the task ends, successfully or not.
    fn close(&mut self) {}
}

/// What [`Operator::snapshot_state_async`] returns.
pub enum Snapshot {
    /// The state, serialized.
    Ready(OperatorState),
    /// A capture of the state, serialized when the closure runs (on another thread).
    Deferred(Box<dyn FnOnce() -> Result<OperatorState, crate::BoxError> + Send>),
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Snapshot::Ready(state) => f.debug_tuple("Ready").field(state).finish(),
            Snapshot::Deferred(_) => f.write_str("Deferred"),
        }
    }
}

/// An operator's captured state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorState {
    /// Keyed state (and timers), one blob per key group.
    pub keyed: std::collections::BTreeMap<crate::keys::KeyGroup, Vec<u8>>,
    /// State that is not keyed (e.g. a source's position), as one blob.
    pub operator: Vec<u8>,
}

/// A two-input processing step, the head of its task. All hooks but the two `process_batch`
/// methods have defaults.
pub trait TwoInputOperator: Send + 'static {
    /// The batches of the first input.
    type In1: Batch;
    /// The batches of the second input.
    type In2: Batch;
    /// The batches it writes.
    type Out: Batch;

    /// Called once on the task's thread before the first batch.
    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), TaskError> {
        Ok(())
    }

    /// Processes a batch of the first input.
    fn process_batch1(
        &mut self,
        batch: Self::In1,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError>;

    /// Processes a batch of the second input.
    fn process_batch2(
        &mut self,
        batch: Self::In2,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError>;

    /// Event time (the minimum over both inputs) advanced. The default forwards it.
    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        out.emit_watermark(watermark)
    }

    /// Processing time reached `now_ms` (read from the job's clock after every batch and at
    /// least every buffer timeout). The default does nothing.
    fn on_processing_time(
        &mut self,
        _now_ms: i64,
        _out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError> {
        Ok(())
    }

    /// Both inputs ended; emit whatever is still pending.
    fn finish(&mut self, _out: &mut dyn Output<Self::Out>) -> Result<(), TaskError> {
        Ok(())
    }

    /// Captures the operator's state for checkpoint `checkpoint_id`; see
    /// [`Operator::snapshot_state`].
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState::default())
    }

    /// Restores state captured by `snapshot_state`, after `open`.
    fn restore_state(&mut self, _state: &OperatorState) -> Result<(), TaskError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` completed.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), TaskError> {
        Ok(())
    }

    /// Called once when the task ends.
    fn close(&mut self) {}
}
