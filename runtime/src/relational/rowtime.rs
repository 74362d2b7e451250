//! [`RowtimeWatermarkOperator`]: watermarks of a table's event-time column.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit, TimestampMillisecondType};

use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::operator::{Operator, OperatorState, Output};

/// Why a [`RowtimeWatermarkOperator`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowtimeError {
    /// The event-time column is beyond the schema's columns.
    #[error(
        "event-time column {column} does not exist: the input has {columns} columns; use an index below {columns}"
    )]
    ColumnOutOfRange {
        /// The requested index.
        column: usize,
        /// How many columns the input has.
        columns: usize,
    },
    /// The event-time column is not a millisecond timestamp.
    #[error(
        "event-time column {name:?} is {data_type}; it must be TIMESTAMP(3) (Arrow Timestamp(Millisecond)) or BIGINT milliseconds: cast it first"
    )]
    NotATimestamp {
        /// The column's name.
        name: String,
        /// Its type.
        data_type: DataType,
    },
}

/// Emits watermarks for a table's event-time column with bounded out-of-orderness: after each
/// batch that raised the largest timestamp seen, the watermark `largest - bound - 1`, so rows
/// up to `bound` milliseconds behind the largest one are still on time (as Flink's
/// `WATERMARK FOR ts AS ts - INTERVAL ..`).
///
/// Watermarks arriving from upstream are replaced, except the final one at the end of input,
/// which closes every event-time window. Rows pass through unchanged; null times do not move
/// the watermark. The largest timestamp is kept in checkpoints (as operator state), so a
/// restored job does not emit a smaller watermark than it already did.
#[derive(Debug)]
pub struct RowtimeWatermarkOperator {
    column: usize,
    bound_ms: i64,
    largest: Option<i64>,
    emitted: Option<i64>,
}

impl RowtimeWatermarkOperator {
    /// Watermarks for the column at `column` of `schema`, trailing the largest time seen by
    /// `bound_ms` milliseconds.
    ///
    /// # Errors
    /// When the column does not exist or is not a millisecond timestamp (or `BIGINT`).
    pub fn new(schema: &SchemaRef, column: usize, bound_ms: i64) -> Result<Self, RowtimeError> {
        let field = schema
            .fields()
            .get(column)
            .ok_or(RowtimeError::ColumnOutOfRange {
                column,
                columns: schema.fields().len(),
            })?;
        if !matches!(
            field.data_type(),
            DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64
        ) {
            return Err(RowtimeError::NotATimestamp {
                name: field.name().clone(),
                data_type: field.data_type().clone(),
            });
        }
        Ok(RowtimeWatermarkOperator {
            column,
            bound_ms: bound_ms.max(0),
            largest: None,
            emitted: None,
        })
    }

    fn batch_max(&self, batch: &ChangelogBatch) -> Option<i64> {
        let array = batch.data().column(self.column);
        match array.data_type() {
            DataType::Int64 => arrow::compute::max(array.as_primitive::<Int64Type>()),
            _ => arrow::compute::max(array.as_primitive::<TimestampMillisecondType>()),
        }
    }
}

impl Operator for RowtimeWatermarkOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        let max = self.batch_max(&batch);
        out.collect(batch)?;
        if let Some(max) = max
            && self.largest.is_none_or(|l| max > l)
        {
            self.largest = Some(max);
            let watermark = max.saturating_sub(self.bound_ms).saturating_sub(1);
            if self.emitted.is_none_or(|e| watermark > e) {
                self.emitted = Some(watermark);
                out.emit_watermark(watermark)?;
            }
        }
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if watermark == i64::MAX {
            self.emitted = Some(i64::MAX);
            out.emit_watermark(watermark)?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState {
            keyed: Default::default(),
            operator: self
                .largest
                .map(|l| l.to_le_bytes().to_vec())
                .unwrap_or_default(),
        })
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        if let Ok(bytes) = <[u8; 8]>::try_from(state.operator.as_slice()) {
            let largest = i64::from_le_bytes(bytes);
            self.largest = Some(largest);
            self.emitted = Some(largest.saturating_sub(self.bound_ms).saturating_sub(1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{RecordBatch, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::operator::testing::RecordingOutput;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]))
    }

    fn batch(times: &[Option<i64>]) -> ChangelogBatch {
        ChangelogBatch::insert_only(
            RecordBatch::try_new(
                schema(),
                vec![Arc::new(TimestampMillisecondArray::from(times.to_vec()))],
            )
            .unwrap(),
        )
    }

    #[test]
    fn watermark_trails_the_largest_time_by_the_bound() {
        let mut op = RowtimeWatermarkOperator::new(&schema(), 0, 5).unwrap();
        let mut out = RecordingOutput::default();
        op.process_batch(batch(&[Some(100), Some(90)]), &mut out)
            .unwrap();
        op.process_batch(batch(&[Some(95), None]), &mut out)
            .unwrap();
        op.process_watermark(50, &mut out).unwrap();
        op.process_batch(batch(&[Some(120)]), &mut out).unwrap();
        op.process_watermark(i64::MAX, &mut out).unwrap();
        assert_eq!(out.watermarks, vec![94, 114, i64::MAX]);
        assert_eq!(out.batches.len(), 3);
    }

    #[test]
    fn a_restored_operator_does_not_go_back() {
        let mut op = RowtimeWatermarkOperator::new(&schema(), 0, 0).unwrap();
        let mut out = RecordingOutput::default();
        op.process_batch(batch(&[Some(100)]), &mut out).unwrap();
        let state = op.snapshot_state(1).unwrap();
        let mut restored = RowtimeWatermarkOperator::new(&schema(), 0, 0).unwrap();
        restored.restore_state(&state).unwrap();
        let mut out = RecordingOutput::default();
        restored
            .process_batch(batch(&[Some(50)]), &mut out)
            .unwrap();
        restored
            .process_batch(batch(&[Some(101)]), &mut out)
            .unwrap();
        assert_eq!(out.watermarks, vec![100]);
    }

    #[test]
    fn a_column_that_is_not_a_timestamp_is_rejected() {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Utf8, true)]));
        let err = RowtimeWatermarkOperator::new(&schema, 0, 0).unwrap_err();
        assert!(err.to_string().contains("\"ts\" is Utf8"), "{err}");
    }
}
