//! Stateless operators over typed records: map, filter, flat-map, and the sink operator.
//!
//! Each works batch-at-a-time: one call of the operator per batch, the user function once per
//! record, timestamps carried along.

use std::marker::PhantomData;

use super::{Operator, OperatorContext, OperatorState, Output};
use crate::batch::{Data, Records};
use crate::error::{BoxError, TaskError};

/// Applies a function to every record.
pub struct MapOperator<T, U, F> {
    f: F,
    _types: PhantomData<fn(T) -> U>,
}

impl<T, U, F> MapOperator<T, U, F> {
    /// An operator applying `f`.
    pub fn new(f: F) -> Self {
        MapOperator {
            f,
            _types: PhantomData,
        }
    }
}

impl<T: Data, U: Data, F: FnMut(T) -> U + Send + 'static> Operator for MapOperator<T, U, F> {
    type In = Records<T>;
    type Out = Records<U>;

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<Records<U>>,
    ) -> Result<(), TaskError> {
        out.collect(batch.map(&mut self.f))
    }
}

/// Keeps the records a predicate accepts.
pub struct FilterOperator<T, F> {
    predicate: F,
    _types: PhantomData<fn(&T)>,
}

impl<T, F> FilterOperator<T, F> {
    /// An operator keeping the records for which `predicate` returns true.
    pub fn new(predicate: F) -> Self {
        FilterOperator {
            predicate,
            _types: PhantomData,
        }
    }
}

impl<T: Data, F: FnMut(&T) -> bool + Send + 'static> Operator for FilterOperator<T, F> {
    type In = Records<T>;
    type Out = Records<T>;

    fn process_batch(
        &mut self,
        mut batch: Records<T>,
        out: &mut dyn Output<Records<T>>,
    ) -> Result<(), TaskError> {
        batch.retain(&mut self.predicate);
        if batch.is_empty() {
            return Ok(());
        }
        out.collect(batch)
    }
}

/// Turns every record into zero or more records.
pub struct FlatMapOperator<T, U, F> {
    f: F,
    _types: PhantomData<fn(T) -> U>,
}

impl<T, U, F> FlatMapOperator<T, U, F> {
    /// An operator expanding each record with `f`.
    pub fn new(f: F) -> Self {
        FlatMapOperator {
            f,
            _types: PhantomData,
        }
    }
}

impl<T, U, I, F> Operator for FlatMapOperator<T, U, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    F: FnMut(T) -> I + Send + 'static,
{
    type In = Records<T>;
    type Out = Records<U>;

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<Records<U>>,
    ) -> Result<(), TaskError> {
        let mut result = Records::with_capacity(batch.len());
        if batch.has_timestamps() {
            let (values, timestamps) = batch.into_parts();
            for (value, ts) in values.into_iter().zip(timestamps) {
                for produced in (self.f)(value) {
                    result.push_with_timestamp(produced, ts);
                }
            }
        } else {
            for value in batch {
                for produced in (self.f)(value) {
                    result.push(produced);
                }
            }
        }
        if result.is_empty() {
            return Ok(());
        }
        out.collect(result)
    }
}

/// Where a typed stream ends: receives batches of records.
///
/// A sink is cloned for every subtask. Implement it for custom outputs; the built-in sinks are
/// [`collect`](crate::DataStream::collect), [`print`](crate::DataStream::print) and
/// [`for_each`](crate::DataStream::for_each).
///
/// ```
/// use rivulet_runtime::{BoxError, Records, SinkFunction, StreamEnv};
///
/// #[derive(Clone)]
/// struct CountingSink(std::sync::Arc<std::sync::atomic::AtomicUsize>);
///
/// impl SinkFunction<u32> for CountingSink {
///     fn write_batch(&mut self, batch: Records<u32>) -> Result<(), BoxError> {
///         self.0.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let env = StreamEnv::new().with_parallelism(2);
/// env.from_vec(vec![1u32, 2, 3]).sink(CountingSink(seen.clone()));
/// env.execute("count").unwrap();
/// assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 3);
/// ```
pub trait SinkFunction<T>: Send + 'static {
    /// Called once on the subtask's thread before the first batch.
    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Writes a batch of records.
    fn write_batch(&mut self, batch: Records<T>) -> Result<(), BoxError>;

    /// The input ended: flush whatever is buffered.
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Captures the sink's state for checkpoint `checkpoint_id`, e.g. what it wrote but has not
    /// published yet (the pre-commit of a two-phase commit).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<u8>, BoxError> {
        Ok(Vec::new())
    }

    /// Restores what [`SinkFunction::snapshot_state`] captured, after `open`.
    fn restore_state(&mut self, _state: &[u8]) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` completed: publish what was written before it (the commit).
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The operator running a [`SinkFunction`].
pub(crate) struct SinkOperator<T, S> {
    pub(crate) sink: S,
    pub(crate) _types: PhantomData<fn(T)>,
}

impl<T: Data, S: SinkFunction<T>> Operator for SinkOperator<T, S> {
    type In = Records<T>;
    type Out = Records<()>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        Ok(self.sink.open(ctx)?)
    }

    fn process_batch(
        &mut self,
        batch: Records<T>,
        _out: &mut dyn Output<Records<()>>,
    ) -> Result<(), TaskError> {
        Ok(self.sink.write_batch(batch)?)
    }

    fn process_watermark(
        &mut self,
        _watermark: i64,
        _out: &mut dyn Output<Records<()>>,
    ) -> Result<(), TaskError> {
        Ok(())
    }

    fn finish(&mut self, _out: &mut dyn Output<Records<()>>) -> Result<(), TaskError> {
        Ok(self.sink.finish()?)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState {
            keyed: Default::default(),
            operator: self.sink.snapshot_state(checkpoint_id)?,
        })
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.sink.restore_state(&state.operator)?)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
        Ok(self.sink.notify_checkpoint_complete(checkpoint_id)?)
    }
}
