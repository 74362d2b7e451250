//! Linking the operators of one task: each operator's output is the next operator's input.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::OperatorState;
use super::{Operator, OperatorContext, Output, TwoInputOperator};
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
}

/// An operator's place in a running job: who it is, what it counts, where it reports
/// checkpoints, and what it restores.
pub(crate) struct Runtime {
    pub(crate) node: NodeId,
    pub(crate) metrics: Arc<OperatorMetrics>,
    pub(crate) checkpoints: Option<CheckpointAcks>,
    pub(crate) restore: Option<OperatorState>,
}

impl Runtime {
    /// Reports a snapshot to the coordinator.
    fn ack(&self, ctx: &OperatorContext, checkpoint_id: u64, state: OperatorState) {
        if let Some(coordinator) = &self.checkpoints {
            coordinator.ack(checkpoint_id, self.node, ctx.subtask, state);
        }
    }
}

/// An operator together with everything downstream of it in its chain.
pub(crate) struct Chained<O: Operator> {
    op: O,
    ctx: OperatorContext,
    out: Box<dyn Output<O::Out>>,
    runtime: Runtime,
    closed: bool,
}

impl<O: Operator> Chained<O> {
    pub(crate) fn new(
        op: O,
        ctx: OperatorContext,
        out: Box<dyn Output<O::Out>>,
        runtime: Runtime,
    ) -> Self {
        Chained {
            op,
            ctx,
            out,
            runtime,
            closed: false,
        }
    }

    fn run(
        &mut self,
        f: impl FnOnce(&mut O, &mut dyn Output<O::Out>) -> Result<(), TaskError>,
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

impl<O: Operator> Output<O::In> for Chained<O> {
    fn collect(&mut self, batch: O::In) -> Result<(), TaskError> {
        self.runtime
            .metrics
            .records_in
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.run(|op, out| op.process_batch(batch, out))
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
        let mut state = None;
        self.run(|op, _| {
            state = Some(op.snapshot_state(barrier.checkpoint_id)?);
            Ok(())
        })?;
        if let Some(state) = state {
            self.runtime.ack(&self.ctx, barrier.checkpoint_id, state);
        }
        self.out.emit_barrier(barrier)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
        self.run(|op, _| op.notify_checkpoint_complete(checkpoint_id))?;
        self.out.notify_checkpoint_complete(checkpoint_id)
    }
}

impl<O: Operator> Drop for Chained<O> {
    fn drop(&mut self) {
        if !self.closed {
            self.closed = true;
            let op = &mut self.op;
            // A panic in close must not abort the process while a failed task unwinds.
            let _ = catch_unwind(AssertUnwindSafe(|| op.close()));
        }
    }
}

/// A two-input operator at the head of its task, with everything downstream of it.
pub(crate) struct TwoInputChained<O: TwoInputOperator> {
    op: O,
    ctx: OperatorContext,
    out: Box<dyn Output<O::Out>>,
    runtime: Runtime,
}

impl<O: TwoInputOperator> TwoInputChained<O> {
    pub(crate) fn new(
        op: O,
        ctx: OperatorContext,
        out: Box<dyn Output<O::Out>>,
        runtime: Runtime,
    ) -> Self {
        TwoInputChained {
            op,
            ctx,
            out,
            runtime,
        }
    }

    fn run(
        &mut self,
        f: impl FnOnce(&mut O, &mut dyn Output<O::Out>) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        let TwoInputChained {
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

impl<O: TwoInputOperator> Output<TwoInputs<O::In1, O::In2>> for TwoInputChained<O> {
    fn collect(&mut self, batch: TwoInputs<O::In1, O::In2>) -> Result<(), TaskError> {
        match batch {
            TwoInputs::First(batch) => {
                self.runtime
                    .metrics
                    .records_in
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.run(|op, out| op.process_batch1(batch, out))
            }
            TwoInputs::Second(batch) => {
                self.runtime
                    .metrics
                    .records_in
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.run(|op, out| op.process_batch2(batch, out))
            }
        }
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
        let mut state = None;
        self.run(|op, _| {
            state = Some(op.snapshot_state(barrier.checkpoint_id)?);
            Ok(())
        })?;
        if let Some(state) = state {
            self.runtime.ack(&self.ctx, barrier.checkpoint_id, state);
        }
        self.out.emit_barrier(barrier)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
        self.run(|op, _| op.notify_checkpoint_complete(checkpoint_id))?;
        self.out.notify_checkpoint_complete(checkpoint_id)
    }
}

impl<O: TwoInputOperator> Drop for TwoInputChained<O> {
    fn drop(&mut self) {
        let op = &mut self.op;
        let _ = catch_unwind(AssertUnwindSafe(|| op.close()));
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
