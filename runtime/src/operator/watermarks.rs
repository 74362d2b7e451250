//! Assigning timestamps and generating watermarks in the middle of a stream.

use std::sync::Arc;

use super::{Operator, OperatorContext, Output};
use crate::batch::{Data, Records};
use crate::error::TaskError;
use crate::time::{Clock, WatermarkStrategy, WatermarkTracker, WatermarkUpdate};

/// Timestamps records and emits watermarks by a [`WatermarkStrategy`], once per subtask.
///
/// Watermarks from upstream are dropped, except the final one at the end of input, as Flink's
/// `assignTimestampsAndWatermarks` does.
pub(crate) struct TimestampsAndWatermarksOperator<T> {
    strategy: WatermarkStrategy<T>,
    tracker: Option<(WatermarkTracker<T>, Arc<dyn Clock>)>,
}

impl<T: 'static> TimestampsAndWatermarksOperator<T> {
    pub(crate) fn new(strategy: WatermarkStrategy<T>) -> Self {
        TimestampsAndWatermarksOperator {
            strategy,
            tracker: None,
        }
    }
}

fn emit<T>(update: WatermarkUpdate, out: &mut dyn Output<Records<T>>) -> Result<(), TaskError> {
    if update.idle == Some(false) {
        out.emit_idle(false)?;
    }
    if let Some(w) = update.watermark {
        out.emit_watermark(w)?;
    }
    if update.idle == Some(true) {
        out.emit_idle(true)?;
    }
    Ok(())
}

impl<T: Data> Operator for TimestampsAndWatermarksOperator<T> {
    type In = Records<T>;
    type Out = Records<T>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.tracker = Some((
            self.strategy.instance(ctx.processing_time()),
            Arc::clone(ctx.clock()),
        ));
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<Records<T>>,
    ) -> Result<(), TaskError> {
        let (tracker, clock) = self
            .tracker
            .as_mut()
            .ok_or("the watermark assigner processed a record before it was opened")?;
        let (batch, update) = tracker.on_batch(batch, clock.now_ms());
        if update.idle == Some(false) {
            out.emit_idle(false)?;
        }
        out.collect(batch)?;
        emit(
            WatermarkUpdate {
                idle: None,
                ..update
            },
            out,
        )
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<Records<T>>,
    ) -> Result<(), TaskError> {
        if watermark == i64::MAX {
            out.emit_watermark(watermark)?;
        }
        Ok(())
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        out: &mut dyn Output<Records<T>>,
    ) -> Result<(), TaskError> {
        match self.tracker.as_mut() {
            Some((tracker, _)) => emit(tracker.on_tick(now_ms), out),
            None => Ok(()),
        }
    }
}
