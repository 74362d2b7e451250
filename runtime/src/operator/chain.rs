//! Linking the operators of one task: each operator's output is the next operator's input.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::OperatorState;
use super::{Operator, OperatorContext, Output, Snapshot, TwoInputOperator};
use crate::batch::Batch;
use crate::checkpoint::CheckpointAcks;
use crate::error::{JobError, TaskError, panic_message};
use crate::graph::{NodeId, TwoInputs};
use crate::message::Barrier;

/// Live record counts of one operator, summed over its subtasks.
#[derive(Debug, Default)]
pub(crate) struct OperatorMetrics {
    pub(crate) records_in: AtomicU64,
    pub(crate) records_out: AtomicU64,
    pub(crate) late_records: Arc<AtomicU64>,
}

/// Attributes an error or a panic raised while running `ctx`'s operator to it.
pub(crate) fn attribute(
    ctx: &OperatorContext,
    result: std::thread::Result<Result<(), TaskError>>,
) -> Result<(), TaskError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(TaskError::User(source))) => {
            Err(TaskError::Failed(Box::new(JobError::OperatorFailed {
                operator: ctx.name.clone(),
                subtask: ctx.subtask,
                parallelism: ctx.parallelism,
                source,
            })))
        }
        Ok(Err(other)) => Err(other),
        Err(payload) => Err(TaskError::Failed(Box::new(JobError::OperatorPanicked {
            operator: ctx.name.clone(),
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
            message: panic_message(payload.as_ref()),
        }))),
    }
}

/// Counts the records an operator emits on their way to its real output.
struct Counting<'a, B> {
    inner: &'a mut dyn Output<B>,
    counter: &'a AtomicU64,
}

impl<B: Batch> Output<B> for Counting<'_, B> {
    fn collect(&mut self, batch: B) -> Result<(), TaskError> {
        self.counter
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.inner.collect(batch)
    }

    fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
        self.inner.emit_watermark(watermark)
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        self.inner.flush()
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        self.inner.finish()
    }

    fn open(&mut self) -> Result<(), TaskError> {
        self.inner.open()
    }

    fn processing_time(&mut self, now_ms: i64) -> Result<(), TaskError> {
        self.inner.processing_time(now_ms)
    }

    fn emit_idle(&mut self, idle: bool) -> Result<(), TaskError> {
        self.inner.emit_idle(idle)
    }

    fn emit_barrier(&mut self, barrier: Barrier) -> Result<(), TaskError> {
        self.inner.emit_barrier(barrier)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
        self.inner.notify_checkpoint_complete(checkpoint_id)
    }

    fn has_room(&self) -> bool {
        self.inner.has_room()
    }
}

/// An operator's place in a running job: who it is, what it counts, where it reports
/// checkpoints, and what it restores.
pub(crate) struct Runtime {
    pub(crate) node: NodeId,
    pub(crate) metrics: Arc<OperatorMetrics>,
    pub(crate) checkpoints: Option<CheckpointAcks>,
    pub(crate) restore: Option<OperatorState>,
}

/// What a chain link needs from its operator, whatever the operator's inputs: the lifecycle
/// hooks of [`Operator`] and [`TwoInputOperator`] alike.
pub(crate) trait LinkOperator: Send + 'static {
    type Out: Batch;
    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError>;
    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError>;
    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError>;
    fn on_processing_time(
        &mut self,
        now_ms: i64,
        out: &mut dyn Output<Self::Out>,
    ) -> Result<(), TaskError>;
    fn finish(&mut self, out: &mut dyn Output<Self::Out>) -> Result<(), TaskError>;
    fn snapshot_state_async(&mut self, checkpoint_id: u64) -> Result<Snapshot, TaskError>;
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError>;
    fn close(&mut self);
}

/// How a link's operator takes a batch of input `C`: the one place one- and two-input
/// operators differ.
pub(crate) trait LinkInput<C>: LinkOperator {
    /// The number of records in `batch`, for the metrics.
    fn records(batch: &C) -> usize;
    fn process(&mut self, batch: C, out: &mut dyn Output<Self::Out>) -> Result<(), TaskError>;
}

/// A one-input operator as a chain link.
pub(crate) struct OneInput<O>(pub(crate) O);

/// A two-input operator as a chain link, reading [`TwoInputs`].
pub(crate) struct TwoInput<O>(pub(crate) O);

macro_rules! link_operator {
    ($wrapper:ident, $bound:ident, $snapshot_async:expr) => {
        impl<O: $bound> LinkOperator for $wrapper<O> {
            type Out = O::Out;
            fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
                self.0.open(ctx)
            }
            fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
                self.0.restore_state(state)
            }
            fn process_watermark(
                &mut self,
                watermark: i64,
                out: &mut dyn Output<O::Out>,
            ) -> Result<(), TaskError> {
                self.0.process_watermark(watermark, out)
            }
            fn on_processing_time(
                &mut self,
                now_ms: i64,
                out: &mut dyn Output<O::Out>,
            ) -> Result<(), TaskError> {
                self.0.on_processing_time(now_ms, out)
            }
            fn finish(&mut self, out: &mut dyn Output<O::Out>) -> Result<(), TaskError> {
                self.0.finish(out)
            }
            fn snapshot_state_async(&mut self, checkpoint_id: u64) -> Result<Snapshot, TaskError> {
                let snapshot: fn(&mut O, u64) -> Result<Snapshot, TaskError> = $snapshot_async;
                snapshot(&mut self.0, checkpoint_id)
            }
            fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
                self.0.notify_checkpoint_complete(checkpoint_id)
            }
            fn close(&mut self) {
                self.0.close()
            }
        }
    };
}

link_operator!(OneInput, Operator, |op: &mut O, id| op
    .snapshot_state_async(id));
link_operator!(TwoInput, TwoInputOperator, |op: &mut O, id| Ok(
    Snapshot::Ready(op.snapshot_state(id)?)
));

impl<O: Operator> LinkInput<O::In> for OneInput<O> {
    fn records(batch: &O::In) -> usize {
        batch.len()
    }

    fn process(&mut self, batch: O::In, out: &mut dyn Output<O::Out>) -> Result<(), TaskError> {
        self.0.process_batch(batch, out)
    }
}

impl<O: TwoInputOperator> LinkInput<TwoInputs<O::In1, O::In2>> for TwoInput<O> {
    fn records(batch: &TwoInputs<O::In1, O::In2>) -> usize {
        match batch {
            TwoInputs::First(b) => b.len(),
            TwoInputs::Second(b) => b.len(),
        }
    }

    fn process(
        &mut self,
        batch: TwoInputs<O::In1, O::In2>,
        out: &mut dyn Output<O::Out>,
    ) -> Result<(), TaskError> {
        match batch {
            TwoInputs::First(batch) => self.0.process_batch1(batch, out),
            TwoInputs::Second(batch) => self.0.process_batch2(batch, out),
        }
    }
}

/// An operator together with everything downstream of it in its chain. As an [`Output`] it
/// takes the operator's input: it counts records, catches panics and attributes errors to the
/// operator, snapshots the operator at barriers, and passes control events on.
pub(crate) struct Chained<L: LinkOperator> {
    op: L,
    ctx: OperatorContext,
    out: Box<dyn Output<L::Out>>,
    runtime: Runtime,
}

impl<L: LinkOperator> Chained<L> {
    pub(crate) fn new(
        op: L,
        ctx: OperatorContext,
        out: Box<dyn Output<L::Out>>,
        runtime: Runtime,
    ) -> Self {
        Chained {
            op,
            ctx,
            out,
            runtime,
        }
    }

    fn run(
        &mut self,
        f: impl FnOnce(&mut L, &mut dyn Output<L::Out>) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        let Chained {
            op, out, runtime, ..
        } = self;
        let mut counting = Counting {
            inner: out.as_mut(),
            counter: &runtime.metrics.records_out,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(op, &mut counting)));
        attribute(&self.ctx, result)
    }
}

impl<C: Send, L: LinkInput<C>> Output<C> for Chained<L> {
    fn collect(&mut self, batch: C) -> Result<(), TaskError> {
        self.runtime
            .metrics
            .records_in
            .fetch_add(L::records(&batch) as u64, Ordering::Relaxed);
        self.run(|op, out| op.process(batch, out))
    }

    fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
        self.run(|op, out| op.process_watermark(watermark, out))
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        self.out.flush()
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        self.run(|op, out| op.finish(out))?;
        self.out.finish()
    }

    fn open(&mut self) -> Result<(), TaskError> {
        let ctx = self.ctx.clone();
        let restore = self.runtime.restore.take();
        self.run(|op, _| {
            op.open(&ctx)?;
            match &restore {
                Some(state) => op.restore_state(state),
                None => Ok(()),
            }
        })?;
        self.out.open()
    }

    fn processing_time(&mut self, now_ms: i64) -> Result<(), TaskError> {
        self.run(|op, out| op.on_processing_time(now_ms, out))?;
        self.out.processing_time(now_ms)
    }

    fn emit_idle(&mut self, idle: bool) -> Result<(), TaskError> {
        self.out.emit_idle(idle)
    }

    fn emit_barrier(&mut self, barrier: Barrier) -> Result<(), TaskError> {
        let id = barrier.checkpoint_id;
        let mut snapshot = None;
        let started = std::time::Instant::now();
        self.run(|op, _| {
            snapshot = Some(op.snapshot_state_async(id)?);
            Ok(())
        })?;
        if let (Some(snapshot), Some(coordinator)) = (snapshot, &self.runtime.checkpoints) {
            coordinator.record_pause(id, started.elapsed());
            let (node, subtask) = (self.runtime.node, self.ctx.subtask);
            match snapshot {
                Snapshot::Ready(state) => coordinator.ack(id, node, subtask, state),
                Snapshot::Deferred(serialize) => {
                    // Serialized off the task's thread; the checkpoint completes once it is.
                    let coordinator = Arc::clone(coordinator);
                    let operator = self.ctx.name.clone();
                    let write = move || {
                        match serialize() {
                        Ok(state) => coordinator.ack(id, node, subtask, state),
                        Err(error) => coordinator.decline(
                            id,
                            format!("operator {operator:?} (subtask {subtask}) could not serialize its state: {error}"),
                        ),
                    }
                    };
                    spawn_snapshot_writer(write);
                }
            }
        }
        self.out.emit_barrier(barrier)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
        self.run(|op, _| op.notify_checkpoint_complete(checkpoint_id))?;
        self.out.notify_checkpoint_complete(checkpoint_id)
    }

    fn has_room(&self) -> bool {
        self.out.has_room()
    }
}

impl<L: LinkOperator> Drop for Chained<L> {
    fn drop(&mut self) {
        let op = &mut self.op;
        // A panic in close must not abort the process while a failed task unwinds.
        let _ = catch_unwind(AssertUnwindSafe(|| op.close()));
    }
}

/// Runs a deferred snapshot's serialization on a thread of its own (at once on this thread if
/// none can be started).
fn spawn_snapshot_writer(write: impl FnOnce() + Send + 'static) {
    let write = std::sync::Mutex::new(Some(write));
    let shared = Arc::new(write);
    let on_thread = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name("snapshot writer".to_owned())
        .spawn(move || {
            let write = on_thread.lock().ok().and_then(|mut w| w.take());
            if let Some(write) = write {
                write();
            }
        });
    if spawned.is_err() {
        let write = shared.lock().ok().and_then(|mut w| w.take());
        if let Some(write) = write {
            write();
        }
    }
}

/// Sends every batch to several outputs (an operator with several consumers).
pub(crate) struct FanOut<B> {
    pub(crate) outputs: Vec<Box<dyn Output<B>>>,
}

impl<B: Batch> Output<B> for FanOut<B> {
    fn collect(&mut self, batch: B) -> Result<(), TaskError> {
        if let Some((last, rest)) = self.outputs.split_last_mut() {
            for out in rest {
                out.collect(batch.clone())?;
            }
            last.collect(batch)?;
        }
        Ok(())
    }

    fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.emit_watermark(watermark))
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        self.outputs.iter_mut().try_for_each(|o| o.flush())
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        self.outputs.iter_mut().try_for_each(|o| o.finish())
    }

    fn open(&mut self) -> Result<(), TaskError> {
        self.outputs.iter_mut().try_for_each(|o| o.open())
    }

    fn processing_time(&mut self, now_ms: i64) -> Result<(), TaskError> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.processing_time(now_ms))
    }

    fn emit_idle(&mut self, idle: bool) -> Result<(), TaskError> {
        self.outputs.iter_mut().try_for_each(|o| o.emit_idle(idle))
    }

    fn emit_barrier(&mut self, barrier: Barrier) -> Result<(), TaskError> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.emit_barrier(barrier))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.notify_checkpoint_complete(checkpoint_id))
    }

    fn has_room(&self) -> bool {
        self.outputs.iter().all(|o| o.has_room())
    }
}

/// The output of an operator nobody consumes (a sink).
pub(crate) struct Discard;

impl<B: Batch> Output<B> for Discard {
    fn collect(&mut self, _batch: B) -> Result<(), TaskError> {
        Ok(())
    }

    fn emit_watermark(&mut self, _watermark: i64) -> Result<(), TaskError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        Ok(())
    }
}
