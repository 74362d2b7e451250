//! Built-in sinks: collect results back to the caller, print them, or call a function; write
//! part files exactly once (lines, CSV, Parquet).

mod file;
mod table;
mod upsert;

pub use file::{DisplayFormat, FileSink};
pub use table::{
    CsvFileSink, CsvFormat, ParquetFileSink, ParquetFormat, PartFormat, TableCollectHandle,
    TableCollectSink, TableFileSink, TableSink, TableSinkError, changelog_rows, pretty_format,
};
pub use upsert::UpsertCollectHandle;

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use std::collections::HashSet;

use parking_lot::Mutex;

use crate::batch::{Data, Records};
use crate::error::BoxError;
use crate::operator::OperatorContext;
use crate::operator::typed::SinkFunction;

/// The records a [`collect`](crate::DataStream::collect) sink received, for the caller to read
/// after (or while) the job runs.
///
/// Records from one subtask keep their order; records from several subtasks interleave, so
/// compare sorted results ([`CollectHandle::take_sorted`]) when the parallelism is above one.
///
/// With checkpointing on, the sink is exactly-once: records appear here only when a checkpoint
/// after them completed (or the input ended), and a restart never publishes a record twice.
#[derive(Debug)]
pub struct CollectHandle<T> {
    shared: Arc<Mutex<Collected<T>>>,
}

#[derive(Debug)]
struct Collected<T> {
    records: Vec<T>,
    /// Transactions already published, by (subtask, checkpoint id), so none is published twice.
    committed: HashSet<(usize, u64)>,
}

impl<T> Clone for CollectHandle<T> {
    fn clone(&self) -> Self {
        CollectHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Default for CollectHandle<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CollectHandle<T> {
    /// An empty handle; sinks built from it publish into it.
    pub fn new() -> Self {
        CollectHandle {
            shared: Arc::new(Mutex::new(Collected {
                records: Vec::new(),
                committed: HashSet::new(),
            })),
        }
    }

    /// Takes every record received so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut self.shared.lock().records)
    }

    /// Takes every record received so far, sorted.
    pub fn take_sorted(&self) -> Vec<T>
    where
        T: Ord,
    {
        let mut records = self.take();
        records.sort();
        records
    }

    /// The number of records received and not yet taken.
    pub fn len(&self) -> usize {
        self.shared.lock().records.len()
    }

    /// Whether no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn publish(&self, records: Vec<T>) {
        self.shared.lock().records.extend(records);
    }

    /// Publishes a transaction once, however often it is committed.
    fn commit(&self, subtask: usize, checkpoint_id: u64, records: Vec<T>) {
        let mut shared = self.shared.lock();
        if shared.committed.insert((subtask, checkpoint_id)) {
            shared.records.extend(records);
        }
    }
}

/// The sink behind a [`CollectHandle`]: publishes at once, or, with checkpointing, stages
/// records per checkpoint and publishes them when the checkpoint completes.
pub(crate) struct CollectSink<T> {
    pub(crate) handle: CollectHandle<T>,
    pub(crate) transactional: bool,
    pub(crate) subtask: usize,
    /// Written since the last barrier.
    pub(crate) staged: Vec<T>,
    /// Pre-committed per checkpoint, waiting for its completion.
    pub(crate) pending: Vec<(u64, Vec<T>)>,
}

impl<T> CollectSink<T> {
    pub(crate) fn new(handle: CollectHandle<T>) -> Self {
        CollectSink {
            handle,
            transactional: false,
            subtask: 0,
            staged: Vec::new(),
            pending: Vec::new(),
        }
    }
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink::new(self.handle.clone())
    }
}

impl<T: Data> SinkFunction<T> for CollectSink<T> {
    fn open(&mut self, ctx: &OperatorContext) -> Result<(), BoxError> {
        self.transactional = ctx.checkpointing();
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn write_batch(&mut self, batch: Records<T>) -> Result<(), BoxError> {
        if self.transactional {
            self.staged.extend(batch.into_values());
        } else {
            self.handle.publish(batch.into_values());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        for (id, records) in self.pending.drain(..) {
            self.handle.commit(self.subtask, id, records);
        }
        // The end of input is final: publish what came after the last barrier. (Without a final
        // checkpoint, a failure elsewhere after this point replays these records; publishing
        // them again is at-least-once rather than a loss.)
        self.handle.publish(std::mem::take(&mut self.staged));
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<u8>, BoxError> {
        let staged = std::mem::take(&mut self.staged);
        self.pending.push((checkpoint_id, staged));
        Ok(postcard::to_stdvec(&self.pending)?)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), BoxError> {
        if state.is_empty() {
            return Ok(());
        }
        // Every transaction in a restored checkpoint belongs to a completed checkpoint.
        let pending: Vec<(u64, Vec<T>)> = postcard::from_bytes(state)?;
        for (id, records) in pending {
            self.handle.commit(self.subtask, id, records);
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(id, _)| *id <= checkpoint_id);
        self.pending = waiting;
        for (id, records) in done {
            self.handle.commit(self.subtask, id, records);
        }
        Ok(())
    }
}

/// Prints every record to standard output, prefixed by the subtask (`2> record`) when the sink
/// runs with a parallelism above one, as Flink's print sink does.
pub(crate) struct PrintSink<T> {
    pub(crate) prefix: String,
    pub(crate) _types: PhantomData<fn(T)>,
}

impl<T> Clone for PrintSink<T> {
    fn clone(&self) -> Self {
        PrintSink {
            prefix: self.prefix.clone(),
            _types: PhantomData,
        }
    }
}

impl<T: Debug + Send + 'static> SinkFunction<T> for PrintSink<T> {
    fn open(&mut self, ctx: &OperatorContext) -> Result<(), BoxError> {
        if ctx.parallelism() > 1 {
            self.prefix = format!("{}> ", ctx.subtask_index() + 1);
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: Records<T>) -> Result<(), BoxError> {
        use std::io::Write;
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        for record in batch.values() {
            writeln!(lock, "{}{record:?}", self.prefix)?;
        }
        Ok(())
    }
}

/// Calls a function for every record.
#[derive(Clone)]
pub(crate) struct ForEachSink<F> {
    pub(crate) f: F,
}

impl<T, F: FnMut(T) + Send + 'static> SinkFunction<T> for ForEachSink<F> {
    fn write_batch(&mut self, batch: Records<T>) -> Result<(), BoxError> {
        batch.into_values().into_iter().for_each(&mut self.f);
        Ok(())
    }
}
