//! [`RankOperator`]: streaming Top-N, Flink's `Rank` node (`ROW_NUMBER() OVER (PARTITION BY ..
//! ORDER BY ..)` filtered to a rank range).
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
//! use arrow::datatypes::{DataType, Field, Int64Type, Schema};
//! use rivulet_runtime::operator::testing::RecordingOutput;
//! use rivulet_runtime::relational::rank::{RankOperator, RankSpec, SortKey};
//! use rivulet_runtime::{ChangelogBatch, Operator, OperatorContext, RowKind};
//!
//! let input = Arc::new(Schema::new(vec![
//!     Field::new("shop", DataType::Utf8, false),
//!     Field::new("sales", DataType::Int64, false),
//! ]));
//! // The best seller per shop, with its rank.
//! let spec = RankSpec::new(Arc::clone(&input), [0], [SortKey::desc(1)], 1).with_rank_column(true);
//! let mut top = RankOperator::new(spec)?;
//! top.open(&OperatorContext::new("top", 0, 1, 128)).unwrap();
//! let mut out = RecordingOutput::default();
//! for sales in [3, 7] {
//!     let batch = RecordBatch::try_new(
//!         Arc::clone(&input),
//!         vec![
//!             Arc::new(StringArray::from(vec!["north"])),
//!             Arc::new(Int64Array::from(vec![sales])),
//!         ],
//!     )?;
//!     top.process_batch(ChangelogBatch::insert_only(batch), &mut out).unwrap();
//! }
//! // +I[north, 3, 1], then -U[north, 3, 1] +U[north, 7, 1]
//! let update = &out.batches[1];
//! assert_eq!(update.row_kind(0), RowKind::UpdateBefore);
//! assert_eq!(update.row_kind(1), RowKind::UpdateAfter);
//! assert_eq!(update.data().column(1).as_primitive::<Int64Type>().value(1), 7);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};

use super::join::rows::FixedHashMap;
use super::stream_op::{
    RowCodec, RowKeys, StreamOpError, arrow_err, check_input, check_output, describe_row, field_at,
    fields_of, key_group_of, output_batch, read_rows, write_rows,
};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroup, KeyGroupRange};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};

const OPERATOR: &str = "Rank";

/// One key of a [`RankSpec`]'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// Position of the column in the input.
    pub column: usize,
    /// Largest first.
    pub descending: bool,
    /// Nulls before all other values.
    pub nulls_first: bool,
}

impl SortKey {
    /// Ascending on `column`, nulls last (SQL's `ASC`).
    pub fn asc(column: usize) -> Self {
        SortKey {
            column,
            descending: false,
            nulls_first: false,
        }
    }

    /// Descending on `column`, nulls first (SQL's `DESC`).
    pub fn desc(column: usize) -> Self {
        SortKey {
            column,
            descending: true,
            nulls_first: true,
        }
    }
}

/// What a [`RankOperator`] computes: `ROW_NUMBER() OVER (PARTITION BY partition_columns ORDER BY
/// sort_keys)`, keeping the rows whose number lies in `start..=n`.
#[derive(Debug, Clone)]
pub struct RankSpec {
    /// Positions of the partition columns in the input. Empty for one global ranking (which
    /// then runs at parallelism 1).
    pub partition_columns: Vec<usize>,
    /// The order within a partition. Rows equal on all keys are ranked by arrival, earlier
    /// first.
    pub sort_keys: Vec<SortKey>,
    /// The first row number emitted (`WHERE rownum >= start`). Default: 1.
    pub start: u64,
    /// The last row number emitted (`WHERE rownum <= n`).
    pub n: u64,
    /// Whether the output has the row number as a last `BIGINT` column. Default: false (Flink's
    /// "no ranking output": only rows entering or leaving the range are emitted).
    pub rank_column: bool,
    /// Whether the input is insert-only, as the planner knows from its changelog mode. The
    /// operator then keeps only the rows that can still be in the range, and fails on a
    /// retraction. Default: false.
    pub insert_only_input: bool,
    /// The schema of the input.
    pub input_schema: SchemaRef,
    /// The output schema: the input's columns, then the row number if `rank_column`.
    pub output_schema: SchemaRef,
}

impl RankSpec {
    /// The top `n` rows of each partition of `input_schema` by `sort_keys`, without a rank
    /// column, over an updating input. The output schema is the input's.
    pub fn new(
        input_schema: SchemaRef,
        partition_columns: impl IntoIterator<Item = usize>,
        sort_keys: impl IntoIterator<Item = SortKey>,
        n: u64,
    ) -> Self {
        RankSpec {
            partition_columns: partition_columns.into_iter().collect(),
            sort_keys: sort_keys.into_iter().collect(),
            start: 1,
            n,
            rank_column: false,
            insert_only_input: false,
            output_schema: Arc::clone(&input_schema),
            input_schema,
        }
    }

    /// Emits only row numbers from `start` on. Default: 1.
    pub fn with_start(mut self, start: u64) -> Self {
        self.start = start;
        self
    }

    /// Appends the row number as a `BIGINT` column named `rownum` (when `true`) to the output
    /// schema, or removes it. Default: false.
    pub fn with_rank_column(mut self, rank_column: bool) -> Self {
        let mut fields: Vec<Field> = self
            .input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if rank_column {
            fields.push(Field::new("rownum", DataType::Int64, false));
        }
        self.output_schema = Arc::new(Schema::new(fields));
        self.rank_column = rank_column;
        self
    }

    /// Declares the input insert-only. Default: false.
    pub fn with_insert_only_input(mut self, insert_only: bool) -> Self {
        self.insert_only_input = insert_only;
        self
    }

    /// Sets the output schema (names and nullability as the planner decided them).
    pub fn with_output_schema(mut self, output_schema: SchemaRef) -> Self {
        self.output_schema = output_schema;
        self
    }
}

/// A kept row: its place in the order (sort key in row format, then arrival number).
type Place = (Box<[u8]>, u64);

/// The kept rows of one partition.
#[derive(Debug)]
struct Partition {
    key_group: KeyGroup,
    /// Every kept row by its place: the whole row in row format.
    rows: BTreeMap<Place, Arc<[u8]>>,
    /// The rows in the rank range before the current batch touched the partition, by arrival
    /// number; `None` when the batch has not touched it.
    before: Option<Vec<(u64, Arc<[u8]>)>>,
}

impl Partition {
    /// The rows ranked `start..=n` (0-based `skip..skip + take`), with their arrival numbers.
    fn range(&self, skip: usize, take: usize) -> Vec<(u64, Arc<[u8]>)> {
        self.rows
            .iter()
            .skip(skip)
            .take(take)
            .map(|((_, seq), row)| (*seq, Arc::clone(row)))
            .collect()
    }
}

/// Streaming Top-N, as Flink's `Rank` with `ROW_NUMBER`: per partition, the rows numbered
/// `start..=n` in the order of the sort keys. Rows equal on every sort key are numbered by
/// arrival, earlier first (a retracted row leaves its place; a row inserted again arrives anew).
///
/// Takes insert-only or updating input: `+I`/`+U` add a row, `-U`/`-D` remove one equal row.
/// After every input batch it emits, per partition the batch touched, the difference between
/// the range before and after the batch, so that the consolidated output always equals the top
/// rows of the input so far:
///
/// - with the rank column, per row number whose row changed: `-U` old and `+U` new row, `+I` for
///   a number newly filled, `-D` for one left empty;
/// - without it, `-D` for each row that left the range and `+I` for each that entered it
///   (rows that only moved within the range are not emitted).
///
/// The partition columns should be the columns the hash exchange in front of it keys by, in the
/// same order.
///
/// # State
///
/// Per partition (keyed by the canonical encoding of the partition key): the kept rows in Arrow
/// row format, in a `BTreeMap` ordered by the sort key (row format) and the arrival number. With
/// updating input every live row is kept (a retraction of a top row pulls the next one in);
/// with `insert_only_input` only the first `n`. A partition is removed when its last row is
/// retracted. Checkpoints hold one blob per key group: the rows as Arrow IPC with their arrival
/// numbers, so they restore at another parallelism.
pub struct RankOperator {
    spec: RankSpec,
    keys: RowKeys,
    sort: RowConverter,
    codec: RowCodec,
    partitions: FixedHashMap<Box<[u8]>, Partition>,
    /// The next arrival number.
    next_seq: u64,
    max_parallelism: u16,
    owned: KeyGroupRange,
}

impl std::fmt::Debug for RankOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RankOperator")
            .field("partition_columns", &self.spec.partition_columns)
            .field("sort_keys", &self.spec.sort_keys)
            .field("range", &(self.spec.start..=self.spec.n))
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl RankOperator {
    /// An operator computing `spec`.
    ///
    /// # Errors
    ///
    /// When a column position is out of range, a partition column cannot be a key, a sort
    /// column cannot be ordered, the rank range is empty, or the output schema is not the input
    /// columns (plus the rank column).
    pub fn new(spec: RankSpec) -> Result<Self, StreamOpError> {
        let input = Arc::clone(&spec.input_schema);
        if spec.start == 0 || spec.n < spec.start {
            return Err(StreamOpError::InvalidSpec {
                operator: OPERATOR,
                reason: format!(
                    "the rank range {}..={} is empty; row numbers start at 1, so give 1 <= start <= n",
                    spec.start, spec.n
                ),
            });
        }
        let keys = RowKeys::new(OPERATOR, "partition", &input, &spec.partition_columns)?;
        let mut sort_fields = Vec::new();
        for key in &spec.sort_keys {
            let field = field_at(OPERATOR, "sort", &input, key.column)?;
            sort_fields.push(SortField::new_with_options(
                field.data_type().clone(),
                SortOptions {
                    descending: key.descending,
                    nulls_first: key.nulls_first,
                },
            ));
        }
        let sort =
            RowConverter::new(sort_fields).map_err(|e| StreamOpError::UnsupportedColumn {
                operator: OPERATOR,
                role: "sort",
                column: format!("{:?}", spec.sort_keys),
                source: e.into(),
            })?;
        let codec = RowCodec::new(OPERATOR, &input)?;
        let mut produced = fields_of(&input);
        if spec.rank_column {
            produced.push(("rownum".to_owned(), DataType::Int64));
        }
        check_output(
            OPERATOR,
            &produced,
            &spec.output_schema,
            "list the input columns, then the BIGINT row number if the rank column is on",
        )?;
        Ok(RankOperator {
            spec,
            keys,
            sort,
            codec,
            partitions: FixedHashMap::default(),
            next_seq: 0,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
        })
    }

    /// The number of partitions in state.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// The number of rows in state, over all partitions.
    pub fn row_count(&self) -> usize {
        self.partitions.values().map(|p| p.rows.len()).sum()
    }

    /// The 0-based positions of the rank range: how many rows to skip, how many to take.
    fn window(&self) -> (usize, usize) {
        let skip = usize::try_from(self.spec.start - 1).unwrap_or(usize::MAX);
        let take = usize::try_from(self.spec.n - self.spec.start + 1).unwrap_or(usize::MAX);
        (skip, take)
    }

    /// Applies one batch and returns the changes of the rank range it caused.
    fn process(&mut self, batch: &ChangelogBatch) -> Result<Option<ChangelogBatch>, StreamOpError> {
        let data = batch.data();
        if data.num_rows() == 0 {
            return Ok(None);
        }
        let used = self
            .spec
            .partition_columns
            .iter()
            .copied()
            .chain(self.spec.sort_keys.iter().map(|k| k.column))
            .chain(0..self.spec.input_schema.fields().len());
        check_input(OPERATOR, &self.spec.input_schema, data, used)?;
        if self.spec.insert_only_input {
            super::stream_op::check_insert_only(OPERATOR, batch)?;
        }
        self.keys.encode(data)?;
        let sort_columns: Vec<ArrayRef> = self
            .spec
            .sort_keys
            .iter()
            .map(|k| Arc::clone(data.column(k.column)))
            .collect();
        let sort_rows = self
            .sort
            .convert_columns(&sort_columns)
            .map_err(arrow_err(OPERATOR, "encoding sort keys"))?;
        let rows = self.codec.encode(data)?;
        let (skip, take) = self.window();
        let limit = skip.saturating_add(take);
        let mut touched: Vec<Box<[u8]>> = Vec::new();

        for i in 0..data.num_rows() {
            let key = self.keys.key(i);
            let sort_key = sort_rows.row(i);
            let row = rows.row(i);
            let accumulate = batch.row_kind(i).is_accumulate();
            let partition = match self.partitions.get_mut(key) {
                Some(p) => p,
                None if accumulate => {
                    let key_group = key_group_of(key, self.max_parallelism);
                    self.partitions
                        .entry(key.into())
                        .or_insert_with(|| Partition {
                            key_group,
                            rows: BTreeMap::new(),
                            before: None,
                        })
                }
                None => {
                    return Err(StreamOpError::RetractedUnknownRow {
                        operator: OPERATOR,
                        row: describe_row(data, i),
                    });
                }
            };
            if partition.before.is_none() {
                partition.before = Some(partition.range(skip, take));
                touched.push(key.into());
            }
            if accumulate {
                // Insert-only input keeps `limit` rows; one that would land behind them is
                // never ranked.
                if self.spec.insert_only_input
                    && partition.rows.len() >= limit
                    && partition
                        .rows
                        .last_key_value()
                        .is_some_and(|((last, _), _)| sort_key.as_ref() >= &last[..])
                {
                    continue;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                partition
                    .rows
                    .insert((sort_key.as_ref().into(), seq), row.as_ref().into());
                if self.spec.insert_only_input && partition.rows.len() > limit {
                    partition.rows.pop_last();
                }
            } else {
                // Remove the latest-arrived equal row.
                let from: Place = (sort_key.as_ref().into(), 0);
                let to: Place = (sort_key.as_ref().into(), u64::MAX);
                let found = partition
                    .rows
                    .range(from..=to)
                    .rev()
                    .find(|(_, kept)| kept[..] == *row.as_ref())
                    .map(|(place, _)| place.clone());
                match found {
                    Some(place) => {
                        partition.rows.remove(&place);
                    }
                    None => {
                        return Err(StreamOpError::RetractedUnknownRow {
                            operator: OPERATOR,
                            row: describe_row(data, i),
                        });
                    }
                }
            }
        }

        let mut kinds = Vec::new();
        let mut out_rows: Vec<Arc<[u8]>> = Vec::new();
        let mut ranks: Vec<i64> = Vec::new();
        for key in touched {
            let Some(partition) = self.partitions.get_mut(&key) else {
                continue;
            };
            let before = partition.before.take().unwrap_or_default();
            let after = partition.range(skip, take);
            if self.spec.rank_column {
                let first_rank = i64::try_from(self.spec.start).unwrap_or(i64::MAX);
                for position in 0..before.len().max(after.len()) {
                    let rank = first_rank.saturating_add(position as i64);
                    match (before.get(position), after.get(position)) {
                        (Some(old), Some(new)) if old.0 != new.0 => {
                            kinds.extend([RowKind::UpdateBefore, RowKind::UpdateAfter]);
                            out_rows.extend([Arc::clone(&old.1), Arc::clone(&new.1)]);
                            ranks.extend([rank, rank]);
                        }
                        (Some(_), Some(_)) | (None, None) => {}
                        (Some(old), None) => {
                            kinds.push(RowKind::Delete);
                            out_rows.push(Arc::clone(&old.1));
                            ranks.push(rank);
                        }
                        (None, Some(new)) => {
                            kinds.push(RowKind::Insert);
                            out_rows.push(Arc::clone(&new.1));
                            ranks.push(rank);
                        }
                    }
                }
            } else {
                let mut left: Vec<Arc<[u8]>> = Vec::new();
                let mut entered: Vec<Arc<[u8]>> = Vec::new();
                let mut old: Vec<u64> = before.iter().map(|(s, _)| *s).collect();
                let mut new: Vec<u64> = after.iter().map(|(s, _)| *s).collect();
                old.sort_unstable();
                new.sort_unstable();
                for (seq, row) in &before {
                    if new.binary_search(seq).is_err() {
                        left.push(Arc::clone(row));
                    }
                }
                for (seq, row) in &after {
                    if old.binary_search(seq).is_err() {
                        entered.push(Arc::clone(row));
                    }
                }
                // A row equal to one that left replaces it: nothing visible changed.
                left.sort_unstable();
                entered.sort_unstable();
                let (mut l, mut e) = (0, 0);
                while l < left.len() || e < entered.len() {
                    match (left.get(l), entered.get(e)) {
                        (Some(a), Some(b)) if a == b => {
                            l += 1;
                            e += 1;
                        }
                        (Some(a), b) if b.is_none_or(|b| a < b) => {
                            kinds.push(RowKind::Delete);
                            out_rows.push(Arc::clone(a));
                            l += 1;
                        }
                        (_, Some(b)) => {
                            kinds.push(RowKind::Insert);
                            out_rows.push(Arc::clone(b));
                            e += 1;
                        }
                        _ => break,
                    }
                }
            }
            if partition.rows.is_empty() {
                self.partitions.remove(&key);
            }
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        let mut columns = self.codec.decode(out_rows.iter().map(|r| &r[..]))?;
        if self.spec.rank_column {
            columns.push(Arc::new(Int64Array::from(ranks)));
        }
        output_batch(OPERATOR, &self.spec.output_schema, columns, &kinds).map(Some)
    }

    /// Every partition's rows, one blob per key group.
    fn snapshot(&self) -> Result<OperatorState, StreamOpError> {
        let mut by_key_group: BTreeMap<KeyGroup, Vec<&Partition>> = BTreeMap::new();
        for partition in self.partitions.values() {
            by_key_group
                .entry(partition.key_group)
                .or_default()
                .push(partition);
        }
        let mut state = OperatorState::default();
        for (key_group, partitions) in by_key_group {
            let mut rows: Vec<&[u8]> = Vec::new();
            let mut seqs: Vec<i64> = Vec::new();
            for partition in partitions {
                for ((_, seq), row) in &partition.rows {
                    rows.push(row);
                    seqs.push(*seq as i64);
                }
            }
            let columns = self.codec.decode(rows)?;
            let blob = write_rows(
                OPERATOR,
                key_group,
                self.codec.schema(),
                columns,
                vec![("__arrival", seqs)],
            )?;
            state.keyed.insert(key_group, blob);
        }
        Ok(state)
    }

    /// Restores the partitions of the owned key groups.
    fn restore(&mut self, state: &OperatorState) -> Result<(), StreamOpError> {
        for (&key_group, blob) in &state.keyed {
            if !self.owned.contains(key_group) {
                continue;
            }
            let (data, extras) = read_rows(OPERATOR, key_group, self.codec.schema(), blob, 1)?;
            let seqs = &extras[0];
            self.keys.encode(&data)?;
            let sort_columns: Vec<ArrayRef> = self
                .spec
                .sort_keys
                .iter()
                .map(|k| Arc::clone(data.column(k.column)))
                .collect();
            let sort_rows = self
                .sort
                .convert_columns(&sort_columns)
                .map_err(arrow_err(OPERATOR, "encoding sort keys"))?;
            let rows = self.codec.encode(&data)?;
            for (i, &seq) in seqs.iter().enumerate() {
                let key = self.keys.key(i);
                let partition = self
                    .partitions
                    .entry(key.into())
                    .or_insert_with(|| Partition {
                        key_group,
                        rows: BTreeMap::new(),
                        before: None,
                    });
                partition.rows.insert(
                    (sort_rows.row(i).as_ref().into(), seq as u64),
                    rows.row(i).as_ref().into(),
                );
                self.next_seq = self.next_seq.max(seq as u64 + 1);
            }
        }
        Ok(())
    }
}

impl Operator for RankOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.max_parallelism = ctx.max_parallelism();
        self.owned = ctx.key_group_range();
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        match self.process(&batch)? {
            Some(changes) => out.collect(changes),
            None => Ok(()),
        }
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
    use super::*;
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::Int64Type;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(RowKind, i64, i64)]) -> ChangelogBatch {
        let data = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        let kinds: Vec<RowKind> = rows.iter().map(|r| r.0).collect();
        ChangelogBatch::from_kinds(data, &kinds).unwrap()
    }

    #[test]
    fn retracting_a_top_row_pulls_the_next_one_in() {
        let spec = RankSpec::new(schema(), [0], [SortKey::asc(1)], 2).with_rank_column(true);
        let mut op = RankOperator::new(spec).unwrap();
        let first = op
            .process(&batch(&[
                (RowKind::Insert, 1, 5),
                (RowKind::Insert, 1, 3),
                (RowKind::Insert, 1, 9),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(first.num_rows(), 2);
        let changes = op
            .process(&batch(&[(RowKind::Delete, 1, 3)]))
            .unwrap()
            .unwrap();
        let values = changes.data().column(1).as_primitive::<Int64Type>();
        let ranks = changes.data().column(2).as_primitive::<Int64Type>();
        let seen: Vec<(RowKind, i64, i64)> = (0..changes.num_rows())
            .map(|i| (changes.row_kind(i), values.value(i), ranks.value(i)))
            .collect();
        assert_eq!(
            seen,
            vec![
                (RowKind::UpdateBefore, 3, 1),
                (RowKind::UpdateAfter, 5, 1),
                (RowKind::UpdateBefore, 5, 2),
                (RowKind::UpdateAfter, 9, 2),
            ]
        );
    }

    #[test]
    fn bad_specs_and_unknown_retractions_are_errors() {
        let empty = RankSpec::new(schema(), [0], [SortKey::asc(1)], 2).with_start(3);
        assert!(matches!(
            RankOperator::new(empty),
            Err(StreamOpError::InvalidSpec { .. })
        ));
        let missing = RankSpec::new(schema(), [5], [SortKey::asc(1)], 2);
        assert!(matches!(
            RankOperator::new(missing),
            Err(StreamOpError::NoSuchColumn { .. })
        ));
        let mut op = RankOperator::new(RankSpec::new(schema(), [0], [SortKey::asc(1)], 2)).unwrap();
        let err = op.process(&batch(&[(RowKind::Delete, 1, 3)])).unwrap_err();
        assert!(err.to_string().contains("never received"), "{err}");
        let mut insert_only = RankOperator::new(
            RankSpec::new(schema(), [0], [SortKey::asc(1)], 2).with_insert_only_input(true),
        )
        .unwrap();
        assert!(matches!(
            insert_only.process(&batch(&[(RowKind::UpdateBefore, 1, 3)])),
            Err(StreamOpError::UpdatingInput { .. })
        ));
    }
}
