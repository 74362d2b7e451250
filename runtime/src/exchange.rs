//! Exchanges: how the batches of an edge reach the subtasks of the next task.
//!
//! One exchange serves typed and Arrow batches alike. A hash exchange asks a
//! [`BatchKeySelector`] for the key group of every row of a batch, maps key groups to subtasks
//! with Flink's range formula, and scatters the rows into one buffer per target. Buffers are sent
//! when they hold a full batch, when the buffer timeout expires, and before any control event.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::ArrayRef;
use serde::Serialize;

use crate::batch::arrow::ChangelogBatch;
use crate::batch::{Batch, BatchBuffer, Records};
use crate::channel::Inbox;
use crate::error::{BoxError, TaskError};
use crate::keys::{
    EncodedKeys, KeyGroup, encode_arrow_keys, hash_key_bytes, key_group_for_hash, key_group_of,
    subtask_for_key_group,
};
use crate::message::{Barrier, Message};
use crate::operator::Output;

/// How the records of an edge are distributed over the subtasks of the consuming operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShipStrategy {
    /// Subtask `i` sends to subtask `i` (equal parallelism); such edges are chained.
    Forward,
    /// Batches go round-robin to every subtask.
    Rebalance,
    /// Rows go to the subtask owning their key's key group.
    Hash,
    /// Every subtask receives every batch.
    Broadcast,
    /// Everything goes to subtask 0.
    Global,
}

impl fmt::Display for ShipStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShipStrategy::Forward => "FORWARD",
            ShipStrategy::Rebalance => "REBALANCE",
            ShipStrategy::Hash => "HASH",
            ShipStrategy::Broadcast => "BROADCAST",
            ShipStrategy::Global => "GLOBAL",
        })
    }
}

/// Computes the key group of every row of a batch: the routing half of a hash exchange.
///
/// Each writing subtask gets its own clone, so implementations may keep scratch buffers.
pub trait BatchKeySelector<B>: Send + 'static {
    /// Appends the key group of each row of `batch` to `out`.
    fn key_groups(
        &mut self,
        batch: &B,
        max_parallelism: u16,
        out: &mut Vec<KeyGroup>,
    ) -> Result<(), BoxError>;

    /// A fresh copy for another subtask.
    fn box_clone(&self) -> Box<dyn BatchKeySelector<B>>;
}

/// Routes typed records by the key a closure extracts from them.
pub(crate) struct TypedKeySelector<T, K, F> {
    key: F,
    scratch: Vec<u8>,
    _types: PhantomData<fn(&T) -> K>,
}

impl<T, K, F: Clone> Clone for TypedKeySelector<T, K, F> {
    fn clone(&self) -> Self {
        TypedKeySelector {
            key: self.key.clone(),
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }
}

impl<T, K, F> TypedKeySelector<T, K, F> {
    pub(crate) fn new(key: F) -> Self {
        TypedKeySelector {
            key,
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }
}

impl<T, K, F> BatchKeySelector<Records<T>> for TypedKeySelector<T, K, F>
where
    T: crate::Data,
    K: Serialize + 'static,
    F: Fn(&T) -> K + Clone + Send + 'static,
{
    fn key_groups(
        &mut self,
        batch: &Records<T>,
        max_parallelism: u16,
        out: &mut Vec<KeyGroup>,
    ) -> Result<(), BoxError> {
        out.reserve(batch.len());
        for value in batch.values() {
            out.push(key_group_of(
                &(self.key)(value),
                max_parallelism,
                &mut self.scratch,
            )?);
        }
        Ok(())
    }

    fn box_clone(&self) -> Box<dyn BatchKeySelector<Records<T>>> {
        Box::new(self.clone())
    }
}

/// Routes Arrow rows by the values of key columns: the hash exchange of the relational plane.
///
/// Row `i`'s key is the tuple of its values in the key columns, encoded with the canonical key
/// encoding (see [`keys`](crate::keys)), so a row keyed by `user: Utf8` reaches the same subtask
/// as a typed record keyed by the `String` `user`. The encoding buffers are kept across batches.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch, StringArray};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::ChangelogBatch;
/// use rivulet_runtime::exchange::{ArrowKeySelector, BatchKeySelector};
/// use rivulet_runtime::keys::key_group_of;
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::Utf8, false),
///     Field::new("amount", DataType::Int64, false),
/// ]));
/// let data = RecordBatch::try_new(
///     schema,
///     vec![Arc::new(StringArray::from(vec!["ada", "bob"])), Arc::new(Int64Array::from(vec![3, 4]))],
/// )?;
/// let mut by_user = ArrowKeySelector::new([0]);
/// let mut groups = Vec::new();
/// by_user.key_groups(&ChangelogBatch::insert_only(data), 128, &mut groups)?;
/// assert_eq!(groups[1], key_group_of("bob", 128, &mut Vec::new())?);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Debug)]
pub struct ArrowKeySelector {
    /// Indices of the key columns, in key order.
    columns: Vec<usize>,
    /// Scratch: the key columns of the current batch.
    key_columns: Vec<ArrayRef>,
    /// Scratch: the encoded keys of the current batch.
    keys: EncodedKeys,
}

impl ArrowKeySelector {
    /// A selector keying rows by the columns at `columns` (zero-based, in key order).
    pub fn new(columns: impl IntoIterator<Item = usize>) -> Self {
        ArrowKeySelector {
            columns: columns.into_iter().collect(),
            key_columns: Vec::new(),
            keys: EncodedKeys::new(),
        }
    }

    /// The indices of the key columns.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }
}

impl Clone for ArrowKeySelector {
    fn clone(&self) -> Self {
        ArrowKeySelector::new(self.columns.iter().copied())
    }
}

/// A key column index beyond the columns of a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "key column {column} does not exist: the batch has {} columns {fields:?}; key by a column index below {}",
    fields.len(),
    fields.len()
)]
pub struct KeyColumnOutOfRange {
    /// The requested column index.
    pub column: usize,
    /// The names of the batch's columns.
    pub fields: Vec<String>,
}

impl BatchKeySelector<ChangelogBatch> for ArrowKeySelector {
    fn key_groups(
        &mut self,
        batch: &ChangelogBatch,
        max_parallelism: u16,
        out: &mut Vec<KeyGroup>,
    ) -> Result<(), BoxError> {
        let data = batch.data();
        self.key_columns.clear();
        for &column in &self.columns {
            let array = data
                .columns()
                .get(column)
                .ok_or_else(|| KeyColumnOutOfRange {
                    column,
                    fields: data
                        .schema_ref()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect(),
                })?;
            self.key_columns.push(ArrayRef::clone(array));
        }
        let encoded = encode_arrow_keys(&self.key_columns, &mut self.keys);
        // Drop the column references before returning, so the batch's buffers are not pinned.
        self.key_columns.clear();
        encoded?;
        out.reserve(self.keys.len());
        out.extend(
            self.keys
                .iter()
                .map(|row| key_group_for_hash(hash_key_bytes(row), max_parallelism)),
        );
        Ok(())
    }

    fn box_clone(&self) -> Box<dyn BatchKeySelector<ChangelogBatch>> {
        Box::new(self.clone())
    }
}

/// The routing of one writer.
pub(crate) enum Routing<B> {
    /// One target (forward or global edges).
    Single,
    Rebalance {
        next: usize,
    },
    Broadcast,
    Hash {
        selector: Box<dyn BatchKeySelector<B>>,
        /// The target subtask of each key group.
        targets_by_key_group: Vec<u32>,
        max_parallelism: u16,
        key_groups: Vec<KeyGroup>,
        targets: Vec<u32>,
    },
}

impl<B> Routing<B> {
    pub(crate) fn hash(
        selector: Box<dyn BatchKeySelector<B>>,
        max_parallelism: u16,
        parallelism: usize,
    ) -> Self {
        Routing::Hash {
            selector,
            targets_by_key_group: (0..max_parallelism)
                .map(|kg| subtask_for_key_group(max_parallelism, parallelism, kg) as u32)
                .collect(),
            max_parallelism,
            key_groups: Vec::new(),
            targets: Vec::new(),
        }
    }
}

/// Writes one subtask's output of an edge into the inboxes of the consuming subtasks.
///
/// `C` is the consumer's channel payload: the batch itself, or the batch tagged with the input
/// side for a two-input consumer.
pub(crate) struct ExchangeWriter<B: Batch, C> {
    targets: Vec<Arc<Inbox<C>>>,
    /// This writer's channel index in every target inbox.
    channel: usize,
    wrap: fn(B) -> C,
    routing: Routing<B>,
    buffers: Vec<B::Buffer>,
    batch_size: usize,
}

impl<B: Batch, C: Send> ExchangeWriter<B, C> {
    pub(crate) fn new(
        targets: Vec<Arc<Inbox<C>>>,
        channel: usize,
        wrap: fn(B) -> C,
        routing: Routing<B>,
        batch_size: usize,
    ) -> Self {
        let buffers = targets.iter().map(|_| B::Buffer::default()).collect();
        ExchangeWriter {
            targets,
            channel,
            wrap,
            routing,
            buffers,
            batch_size: batch_size.max(1),
        }
    }

    fn send(&mut self, target: usize) -> Result<(), TaskError> {
        if let Some(batch) = self.buffers[target].take()? {
            let message = Message::Data((self.wrap)(batch));
            if !self.targets[target].send(self.channel, message) {
                return Err(TaskError::Cancelled);
            }
        }
        Ok(())
    }

    fn push(&mut self, target: usize, batch: B) -> Result<(), TaskError> {
        if self.buffers[target].is_empty() && batch.len() >= self.batch_size {
            let message = Message::Data((self.wrap)(batch));
            if !self.targets[target].send(self.channel, message) {
                return Err(TaskError::Cancelled);
            }
            return Ok(());
        }
        self.buffers[target].push(batch)?;
        if self.buffers[target].len() >= self.batch_size {
            self.send(target)?;
        }
        Ok(())
    }

    fn broadcast(&mut self, message: impl Fn() -> Message<C>) -> Result<(), TaskError> {
        for target in &self.targets {
            if !target.send(self.channel, message()) {
                return Err(TaskError::Cancelled);
            }
        }
        Ok(())
    }
}

impl<B: Batch, C: Send> Output<B> for ExchangeWriter<B, C> {
    fn collect(&mut self, batch: B) -> Result<(), TaskError> {
        if batch.is_empty() {
            return Ok(());
        }
        match &mut self.routing {
            Routing::Single => self.push(0, batch),
            Routing::Rebalance { next } => {
                let target = *next;
                *next = (*next + 1) % self.targets.len();
                self.push(target, batch)
            }
            Routing::Broadcast => {
                for target in 1..self.targets.len() {
                    self.push(target, batch.clone())?;
                }
                self.push(0, batch)
            }
            Routing::Hash {
                selector,
                targets_by_key_group,
                max_parallelism,
                key_groups,
                targets,
            } => {
                key_groups.clear();
                selector.key_groups(&batch, *max_parallelism, key_groups)?;
                targets.clear();
                targets.extend(
                    key_groups
                        .iter()
                        .map(|kg| targets_by_key_group[*kg as usize]),
                );
                batch.scatter(targets, &mut self.buffers)?;
                for target in 0..self.buffers.len() {
                    if self.buffers[target].len() >= self.batch_size {
                        self.send(target)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
        self.flush()?;
        self.broadcast(|| Message::Watermark(watermark))
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        for target in 0..self.buffers.len() {
            self.send(target)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        self.flush()?;
        self.broadcast(|| Message::EndOfInput)
    }

    fn emit_idle(&mut self, idle: bool) -> Result<(), TaskError> {
        self.flush()?;
        self.broadcast(|| Message::Idle(idle))
    }

    fn has_room(&self) -> bool {
        self.targets.iter().all(|t| t.has_room(self.channel))
    }

    fn emit_barrier(&mut self, barrier: Barrier) -> Result<(), TaskError> {
        if !barrier.unaligned {
            self.flush()?;
            return self.broadcast(|| Message::Barrier(barrier));
        }
        // Unaligned: the barrier overtakes what is queued, and never waits for room.
        for target in 0..self.targets.len() {
            let pending = self.buffers[target].take()?.map(self.wrap);
            if !self.targets[target].send_overtaking(self.channel, pending, barrier) {
                return Err(TaskError::Cancelled);
            }
        }
        Ok(())
    }
}
