//! [`WindowRankOperator`]: window Top-N and window deduplication.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{SortOptions, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};

use super::buffer::WindowBuffer;
use super::{WindowColumns, WindowError, check_columns, check_insert_only, column_field};
use crate::batch::arrow::ChangelogBatch;
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroupRange};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};

const OPERATOR: &str = "a window Top-N";

/// At most this many rows per output batch.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// Windows ending at the same time are cut down to their top rows from this many rows on.
const COMPACT_ABOVE: usize = 4096;

/// One sort key of a window Top-N: a column and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankSortKey {
    /// Position of the column in the input.
    pub column: usize,
    /// Whether larger values rank first.
    pub descending: bool,
    /// Whether nulls rank before every value.
    pub nulls_first: bool,
}

impl RankSortKey {
    /// Ascending on `column`, nulls last.
    pub fn asc(column: usize) -> Self {
        RankSortKey {
            column,
            descending: false,
            nulls_first: false,
        }
    }

    /// Descending on `column`, nulls last.
    pub fn desc(column: usize) -> Self {
        RankSortKey {
            column,
            descending: true,
            nulls_first: false,
        }
    }

    /// The same key with nulls first.
    pub fn nulls_first(mut self) -> Self {
        self.nulls_first = true;
        self
    }
}

/// What a [`WindowRankOperator`] computes.
#[derive(Debug, Clone)]
pub struct WindowRankSpec {
    /// The schema of the input, a windowed table.
    pub input_schema: SchemaRef,
    /// Where the input's window columns are.
    pub window: WindowColumns,
    /// Positions of the `PARTITION BY` columns, besides the window. Empty for one partition
    /// per window.
    pub partition_columns: Vec<usize>,
    /// The `ORDER BY` of the ranking.
    pub sort_keys: Vec<RankSortKey>,
    /// How many rows each partition and window keeps.
    pub n: usize,
    /// When set, a non-null `Int64` column of this name is appended with each row's
    /// `ROW_NUMBER()` (1 ..= n).
    pub row_number: Option<String>,
    /// Whether, among rows equal on every sort key, the later arrival ranks first (what keeping
    /// the last row needs). Default: false, the earlier arrival ranks first.
    pub later_rows_first: bool,
}

impl WindowRankSpec {
    /// The `n` first rows per partition and window by `sort_keys`.
    pub fn top_n(
        input_schema: SchemaRef,
        window: WindowColumns,
        partition_columns: impl IntoIterator<Item = usize>,
        sort_keys: impl IntoIterator<Item = RankSortKey>,
        n: usize,
    ) -> Self {
        WindowRankSpec {
            input_schema,
            window,
            partition_columns: partition_columns.into_iter().collect(),
            sort_keys: sort_keys.into_iter().collect(),
            n,
            row_number: None,
            later_rows_first: false,
        }
    }

    /// Window deduplication: per partition and window, the row with the first (`keep_last ==
    /// false`) or last time in `time_column`; among equal times the first or last to arrive.
    pub fn deduplicate(
        input_schema: SchemaRef,
        window: WindowColumns,
        partition_columns: impl IntoIterator<Item = usize>,
        time_column: usize,
        keep_last: bool,
    ) -> Self {
        let key = RankSortKey {
            column: time_column,
            descending: keep_last,
            nulls_first: false,
        };
        let mut spec = Self::top_n(input_schema, window, partition_columns, [key], 1);
        spec.later_rows_first = keep_last;
        spec
    }

    /// Appends each row's `ROW_NUMBER()` as a column named `name`.
    pub fn with_row_number(mut self, name: impl Into<String>) -> Self {
        self.row_number = Some(name.into());
        self
    }
}

/// Flink's window Top-N (`ROW_NUMBER() OVER (PARTITION BY window_start, window_end, keys ORDER
/// BY ...) <= n` over a window TVF) and, as its `n = 1` case ordered by time, window
/// deduplication.
///
/// Rows are buffered until the watermark passes their window's end; then, per partition and
/// window, the first `n` rows by the sort keys are emitted once, insert-only, optionally with
/// their row number, and the window is purged. Among rows equal on every sort key the earlier
/// arrival ranks first, or the later one with [`WindowRankSpec::later_rows_first`]. Rows whose
/// window already fired are dropped and counted. The partition columns should be the hash
/// exchange's key; without them, run it at parallelism 1.
///
/// # State
///
/// The rows of every open window, kept as the Arrow batches they arrived in, grouped by window
/// end; once the windows ending at one time hold many rows, they are cut down to each
/// partition's current top `n` (in arrival order). A watermark takes the fired windows' rows
/// in one split, ranks them with one sort, and drops them. Checkpoints write one Arrow IPC stream per key group of the partition columns.
#[derive(Debug)]
pub struct WindowRankOperator {
    spec: WindowRankSpec,
    output_schema: SchemaRef,
    /// Row format of partition columns, window start and end: equal bytes, same ranking.
    partitions: RowConverter,
    /// Row format of the sort keys, in rank order; `None` without sort keys.
    order: Option<RowConverter>,
    buffer: WindowBuffer,
    /// Per window end: how many rows its last compaction kept.
    compacted: BTreeMap<i64, usize>,
    /// Windows ending at the same time are compacted from this many rows on.
    compact_above: usize,
    watermark: i64,
    ctx: OperatorContext,
    max_parallelism: u16,
    owned: KeyGroupRange,
}

impl WindowRankOperator {
    /// An operator computing `spec`.
    ///
    /// # Errors
    ///
    /// When `n` is 0, a column does not exist, a window column is not a millisecond time, or a
    /// partition or sort column has no row format.
    pub fn new(spec: WindowRankSpec) -> Result<Self, WindowError> {
        if spec.n == 0 {
            return Err(WindowError::ZeroRank);
        }
        let input = &spec.input_schema;
        spec.window.check(input)?;
        let mut partition_fields = Vec::new();
        for &column in &spec.partition_columns {
            let field = column_field(input, "partition", column)?;
            partition_fields.push(SortField::new(field.data_type().clone()));
        }
        for column in [spec.window.start, spec.window.end] {
            partition_fields.push(SortField::new(input.field(column).data_type().clone()));
        }
        let mut order_fields = Vec::new();
        for key in &spec.sort_keys {
            let field = column_field(input, "sort", key.column)?;
            order_fields.push(SortField::new_with_options(
                field.data_type().clone(),
                SortOptions {
                    descending: key.descending,
                    nulls_first: key.nulls_first,
                },
            ));
        }
        let partitions = RowConverter::new(partition_fields)
            .map_err(WindowError::arrow("preparing partition keys"))?;
        let order = if order_fields.is_empty() {
            None
        } else {
            Some(
                RowConverter::new(order_fields)
                    .map_err(WindowError::arrow("preparing sort keys"))?,
            )
        };
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        if let Some(name) = &spec.row_number {
            fields.push(Field::new(name, DataType::Int64, false));
        }
        let output_schema = Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()));
        let buffer = WindowBuffer::new(
            Arc::clone(input),
            spec.window,
            spec.partition_columns.clone(),
        );
        Ok(WindowRankOperator {
            spec,
            output_schema,
            partitions,
            order,
            buffer,
            compacted: BTreeMap::new(),
            compact_above: COMPACT_ABOVE,
            watermark: i64::MIN,
            ctx: OperatorContext::new("window rank", 0, 1, DEFAULT_MAX_PARALLELISM),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
        })
    }

    /// The output schema: the input's columns, then the row number if asked for.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// The number of rows buffered in open windows.
    pub fn buffered_rows(&self) -> usize {
        self.buffer.len()
    }

    fn process(&mut self, batch: &ChangelogBatch) -> Result<(), WindowError> {
        check_insert_only(batch, OPERATOR)?;
        check_columns(batch.data(), &self.spec.input_schema, OPERATOR)?;
        let late = self.buffer.insert(batch.data(), self.watermark)?;
        if late > 0 {
            self.ctx.count_late_records(late);
        }
        for end in self.buffer.last_ends().to_vec() {
            self.compact(end)?;
        }
        Ok(())
    }

    /// Ranks the rows of the windows fired at `watermark`.
    fn fire(&mut self, watermark: i64) -> Result<Vec<ChangelogBatch>, WindowError> {
        let Some(data) = self.buffer.take_due(watermark)? else {
            return Ok(Vec::new());
        };
        self.compacted
            .retain(|&end, _| end.saturating_sub(1) > watermark);
        let (kept, numbers) = self.rank(&data)?;
        let mut batches = Vec::new();
        for (rows, numbers) in kept
            .chunks(OUTPUT_BATCH_ROWS)
            .zip(numbers.chunks(OUTPUT_BATCH_ROWS))
        {
            let taken = take_record_batch(&data, &UInt32Array::from(rows.to_vec()))
                .map_err(WindowError::arrow("gathering the top rows"))?;
            let mut columns = taken.columns().to_vec();
            if self.spec.row_number.is_some() {
                columns.push(Arc::new(Int64Array::from(numbers.to_vec())));
            }
            let out = RecordBatch::try_new(Arc::clone(&self.output_schema), columns)
                .map_err(WindowError::arrow("assembling the top rows"))?;
            batches.push(ChangelogBatch::insert_only(out));
        }
        Ok(batches)
    }

    /// The rows of `data` that rank within the first `n` of their partition and window, in
    /// rank order, and their row numbers. Rows must be in arrival order within a partition.
    fn rank(&self, data: &RecordBatch) -> Result<(Vec<u32>, Vec<i64>), WindowError> {
        let column = |c: usize| Arc::clone(data.column(c));
        let mut partition_columns: Vec<ArrayRef> = self
            .spec
            .partition_columns
            .iter()
            .map(|&c| column(c))
            .collect();
        partition_columns.extend([column(self.spec.window.start), column(self.spec.window.end)]);
        let partitions = self
            .partitions
            .convert_columns(&partition_columns)
            .map_err(WindowError::arrow("encoding partition keys"))?;
        let order = match &self.order {
            None => None,
            Some(converter) => {
                let columns: Vec<ArrayRef> = self
                    .spec
                    .sort_keys
                    .iter()
                    .map(|k| column(k.column))
                    .collect();
                Some(
                    converter
                        .convert_columns(&columns)
                        .map_err(WindowError::arrow("encoding sort keys"))?,
                )
            }
        };
        // Rows are in arrival order within a partition, so the index breaks ties.
        let mut sorted: Vec<u32> = (0..data.num_rows() as u32).collect();
        let later_first = self.spec.later_rows_first;
        sorted.sort_unstable_by(|&a, &b| {
            let (a_, b_) = (a as usize, b as usize);
            partitions
                .row(a_)
                .cmp(&partitions.row(b_))
                .then_with(|| match &order {
                    Some(order) => order.row(a_).cmp(&order.row(b_)),
                    None => std::cmp::Ordering::Equal,
                })
                .then_with(|| if later_first { b.cmp(&a) } else { a.cmp(&b) })
        });
        let mut kept = Vec::new();
        let mut numbers = Vec::new();
        let mut number = 0i64;
        for (i, &row) in sorted.iter().enumerate() {
            let same =
                i > 0 && partitions.row(sorted[i - 1] as usize) == partitions.row(row as usize);
            number = if same { number + 1 } else { 1 };
            if number as usize <= self.spec.n {
                kept.push(row);
                numbers.push(number);
            }
        }
        Ok((kept, numbers))
    }

    /// Drops the rows of windows ending at `end` that can no longer make their top `n`, once
    /// the window holds twice as many rows as after its last compaction (and at least
    /// `compact_above`), so buffered rows stay within a constant factor of what the windows
    /// emit. The rows kept stay in arrival order, so ties still rank as they would have.
    fn compact(&mut self, end: i64) -> Result<(), WindowError> {
        let rows = self.buffer.rows_at(end);
        let floor = self.compacted.get(&end).map_or(0, |&kept| 2 * kept);
        if rows <= self.compact_above.max(floor) {
            return Ok(());
        }
        let Some(data) = self.buffer.concat_at(end)? else {
            return Ok(());
        };
        let (mut kept, _) = self.rank(&data)?;
        kept.sort_unstable();
        let kept_rows = kept.len();
        let data = take_record_batch(&data, &UInt32Array::from(kept))
            .map_err(WindowError::arrow("dropping rows outside the top n"))?;
        self.buffer.replace_at(end, data);
        self.compacted.insert(end, kept_rows);
        Ok(())
    }

    fn snapshot(&self) -> Result<OperatorState, WindowError> {
        Ok(OperatorState {
            keyed: self.buffer.snapshot(self.max_parallelism)?,
            operator: self.watermark.to_le_bytes().to_vec(),
        })
    }

    fn restore(&mut self, state: &OperatorState) -> Result<(), WindowError> {
        if let Ok(bytes) = <[u8; 8]>::try_from(state.operator.as_slice()) {
            self.watermark = self.watermark.max(i64::from_le_bytes(bytes));
        }
        for (&key_group, blob) in &state.keyed {
            if self.owned.contains(key_group) {
                self.buffer.restore(key_group, blob)?;
            }
        }
        Ok(())
    }
}

impl Operator for WindowRankOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.max_parallelism = ctx.max_parallelism();
        self.owned = ctx.key_group_range();
        self.ctx = ctx.clone();
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        Ok(self.process(&batch)?)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        self.watermark = self.watermark.max(watermark);
        for batch in self.fire(self.watermark)? {
            out.collect(batch)?;
        }
        out.emit_watermark(watermark)
    }

    /// Event time ends with the input: every window left fires.
    fn finish(&mut self, out: &mut dyn Output<ChangelogBatch>) -> Result<(), TaskError> {
        self.watermark = i64::MAX;
        for batch in self.fire(i64::MAX)? {
            out.collect(batch)?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(self.snapshot()?)
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.restore(state)?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use proptest::prelude::*;

    use super::*;
    use crate::operator::testing::RecordingOutput;

    type Row = (Option<i64>, Option<i64>, i64);

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("window_start", DataType::Int64, false),
            Field::new("window_end", DataType::Int64, false),
        ]))
    }

    fn batch(rows: &[Row]) -> ChangelogBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2 - 10))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ];
        ChangelogBatch::insert_only(RecordBatch::try_new(schema(), columns).unwrap())
    }

    fn run(op: &mut WindowRankOperator, batches: &[Vec<Row>]) -> (Vec<Vec<Option<i64>>>, usize) {
        op.open(&OperatorContext::new("rank", 0, 1, 128)).unwrap();
        let mut out = RecordingOutput::default();
        let mut most = 0;
        for rows in batches {
            op.process_batch(batch(rows), &mut out).unwrap();
            most = most.max(op.buffered_rows());
        }
        op.finish(&mut out).unwrap();
        let rows = out
            .batches
            .iter()
            .flat_map(|b| {
                let data = b.data().clone();
                (0..data.num_rows()).map(move |i| {
                    data.columns()
                        .iter()
                        .map(|c| {
                            let c = c.as_primitive::<Int64Type>();
                            c.is_valid(i).then(|| c.value(i))
                        })
                        .collect()
                })
            })
            .collect();
        (rows, most)
    }

    fn rows() -> impl Strategy<Value = Vec<Vec<Row>>> {
        let row = (
            prop::option::weighted(0.8, 0i64..3),
            prop::option::weighted(0.8, 0i64..4),
            (1i64..4).prop_map(|w| w * 10),
        );
        prop::collection::vec(prop::collection::vec(row, 1..12), 1..12)
    }

    proptest! {
        #[test]
        fn compaction_keeps_the_result(
            batches in rows(), n in 1usize..3, later_rows_first in any::<bool>(),
            descending in any::<bool>(),
        ) {
            let key = RankSortKey { column: 1, descending, nulls_first: false };
            let mut spec = WindowRankSpec::top_n(schema(), WindowColumns::new(2, 3), [0], [key], n)
                .with_row_number("rn");
            spec.later_rows_first = later_rows_first;
            let mut plain = WindowRankOperator::new(spec.clone()).unwrap();
            let mut compacting = WindowRankOperator::new(spec).unwrap();
            compacting.compact_above = 1;
            let (expected, _) = run(&mut plain, &batches);
            let (found, most) = run(&mut compacting, &batches);
            prop_assert_eq!(found, expected);
            // 4 keys (null included) x 3 windows x n, doubled before each compaction.
            prop_assert!(most <= 2 * 12 * n + 12, "{} rows buffered", most);
        }
    }
}
