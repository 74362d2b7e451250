//! Built-in sinks: collect results back to the caller, print them, or call a function.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::batch::Records;
use crate::error::BoxError;
use crate::operator::OperatorContext;
use crate::operator::typed::SinkFunction;

/// The records a [`collect`](crate::DataStream::collect) sink received, for the caller to read
/// after (or while) the job runs.
///
/// Records from one subtask keep their order; records from several subtasks interleave, so
/// compare sorted results ([`CollectHandle::take_sorted`]) when the parallelism is above one.
#[derive(Debug)]
pub struct CollectHandle<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for CollectHandle<T> {
    fn clone(&self) -> Self {
        CollectHandle {
            records: Arc::clone(&self.records),
        }
    }
}

impl<T> CollectHandle<T> {
    pub(crate) fn new() -> Self {
        CollectHandle {
            records: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Takes every record received so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.records.lock())
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
        self.records.lock().len()
    }

    /// Whether no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sink behind a [`CollectHandle`].
pub(crate) struct CollectSink<T> {
    pub(crate) handle: CollectHandle<T>,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink {
            handle: self.handle.clone(),
        }
    }
}

impl<T: Send + 'static> SinkFunction<T> for CollectSink<T> {
    fn write_batch(&mut self, batch: Records<T>) -> Result<(), BoxError> {
        self.handle.records.lock().extend(batch.into_values());
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
