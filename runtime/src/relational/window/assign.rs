//! [`WindowAssignOperator`]: the window table-valued function as an operator.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::{
    WindowError, WindowTvf, check_columns, check_insert_only, check_time_column, time_values,
    time_zone, timestamp_column,
};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::operator::{Operator, Output};

const OPERATOR: &str = "a window table function";

/// Flink's `TUMBLE` / `HOP` / `CUMULATE` table-valued functions: appends `window_start`,
/// `window_end` and `window_time` (`window_end - 1`, the rowtime of what is computed per
/// window) to each row, as `Timestamp(Millisecond, _)` columns in the time zone of the time
/// column (none for `Int64`).
///
/// A `TUMBLE` row comes out once; a `HOP` row once per window containing it (`size / slide`
/// times), a `CUMULATE` row once per growing window containing it. The operator keeps no state
/// and drops nothing: late rows are the business of the window operators after it. Input must
/// be insert-only and every row must have a time.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{AsArray, Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema, TimestampMillisecondType};
/// use rivulet_runtime::operator::testing::RecordingOutput;
/// use rivulet_runtime::relational::window::{WindowAssignOperator, WindowTvf};
/// use rivulet_runtime::{ChangelogBatch, Operator};
///
/// let input = Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, false)]));
/// let mut hop = WindowAssignOperator::new(Arc::clone(&input), 0, WindowTvf::hop(5, 10)?)?;
/// let batch = RecordBatch::try_new(input, vec![Arc::new(Int64Array::from(vec![7]))])?;
/// let mut out = RecordingOutput::default();
/// hop.process_batch(ChangelogBatch::insert_only(batch), &mut out).unwrap();
/// let starts = out.batches[0].data().column(1).as_primitive::<TimestampMillisecondType>();
/// assert_eq!(starts.values().to_vec(), vec![5, 0]);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Debug)]
pub struct WindowAssignOperator {
    window: WindowTvf,
    time_column: usize,
    input_schema: SchemaRef,
    output_schema: SchemaRef,
    time_zone: Option<Arc<str>>,
    windows: Vec<(i64, i64)>,
}

impl WindowAssignOperator {
    /// The window TVF `window` over the event-time column `time_column` of `input_schema`.
    ///
    /// # Errors
    ///
    /// When the window's durations are invalid, the window is a session (which only window
    /// aggregation takes), or the time column does not exist or is neither a millisecond
    /// timestamp nor `Int64`.
    pub fn new(
        input_schema: SchemaRef,
        time_column: usize,
        window: WindowTvf,
    ) -> Result<Self, WindowError> {
        window.validate()?;
        if window.is_merging() {
            return Err(WindowError::SessionNotSupported {
                operator: "the window table function",
            });
        }
        check_time_column(&input_schema, "time", time_column)?;
        let time_zone = time_zone(&input_schema, time_column);
        let timestamp = DataType::Timestamp(TimeUnit::Millisecond, time_zone.clone());
        let mut fields: Vec<Field> = input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for name in ["window_start", "window_end", "window_time"] {
            fields.push(Field::new(name, timestamp.clone(), false));
        }
        Ok(WindowAssignOperator {
            window,
            time_column,
            output_schema: Arc::new(Schema::new_with_metadata(
                fields,
                input_schema.metadata().clone(),
            )),
            input_schema,
            time_zone,
            windows: Vec::new(),
        })
    }

    /// The output schema: the input's columns, then `window_start`, `window_end` and
    /// `window_time`.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// The rows of `batch` with their windows.
    fn assign(&mut self, batch: &ChangelogBatch) -> Result<Option<ChangelogBatch>, WindowError> {
        check_insert_only(batch, OPERATOR)?;
        let data = batch.data();
        if data.num_rows() == 0 {
            return Ok(None);
        }
        check_columns(data, &self.input_schema, OPERATOR)?;
        let times = time_values(data, "time", self.time_column)?;
        let mut rows: Vec<u32> = Vec::with_capacity(times.len());
        let (mut starts, mut ends) = (Vec::with_capacity(times.len()), Vec::new());
        for (row, &time) in times.iter().enumerate() {
            self.windows.clear();
            self.window.assign(time, &mut self.windows);
            for &(start, end) in &self.windows {
                rows.push(row as u32);
                starts.push(start);
                ends.push(end);
            }
        }
        let mut columns: Vec<ArrayRef> = if rows.len() == data.num_rows() {
            data.columns().to_vec()
        } else {
            let indices = UInt32Array::from(rows);
            data.columns()
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<Result<_, _>>()
                .map_err(WindowError::arrow("repeating rows for their windows"))?
        };
        let len = starts.len();
        let tz = &self.time_zone;
        let window_times =
            timestamp_column(ends.iter().map(|end| end.saturating_sub(1)), tz.clone());
        columns.push(timestamp_column(starts, tz.clone()));
        columns.push(timestamp_column(ends, tz.clone()));
        columns.push(window_times);
        let options = RecordBatchOptions::new().with_row_count(Some(len));
        let data =
            RecordBatch::try_new_with_options(Arc::clone(&self.output_schema), columns, &options)
                .map_err(WindowError::arrow("appending window columns"))?;
        Ok(Some(ChangelogBatch::insert_only(data)))
    }
}

impl Operator for WindowAssignOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        match self.assign(&batch)? {
            Some(batch) => out.collect(batch),
            None => Ok(()),
        }
    }
}
