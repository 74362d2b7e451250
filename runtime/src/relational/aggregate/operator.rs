//! [`GroupAggregateOperator`]: group aggregation with retraction over changelog batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array,
    new_empty_array,
};
use arrow::compute::kernels::cmp::not_distinct;
use arrow::compute::{and, interleave, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, RowParser, SortField};
use arrow::util::display::array_value_to_string;
use serde::{Deserialize, Serialize};

use super::accumulator::{
    AccumulatorError, AccumulatorState, GroupsAccumulator, create_accumulator,
};
use super::groups::GroupTable;
use super::{AggregateCall, AggregateError, AggregateKind, EmitMode, GroupAggregateSpec};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::error::TaskError;
use crate::keys::{
    DEFAULT_MAX_PARALLELISM, EncodedKeys, KeyGroup, KeyGroupRange, encode_arrow_keys,
    hash_key_bytes, key_group_for_hash,
};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};

/// At most this many rows per batch of final results.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// Group aggregation with retraction, as Flink's `GroupAggregate`: the relational plane's
/// `GROUP BY`.
///
/// Each input row is accumulated into (`+I`, `+U`) or retracted from (`-U`, `-D`) the group of
/// its key. In [`EmitMode::Changelog`] the operator emits, after every input batch and for every
/// group the batch touched, `+I` for a new group, `-U old` / `+U new` for a changed result, `-D`
/// for a group left without rows, and nothing for an unchanged result; the consolidated output
/// then always equals the aggregate of the input so far. In [`EmitMode::Final`] it emits every
/// group's result once, insert-only, at the end of input. Nulls are skipped by every built-in
/// aggregate but `COUNT(*)`; null group keys group together.
///
/// Built-in aggregates are vectorised (one key encoding and one hash probe per row, then one
/// typed loop per aggregate per batch); user functions are called row by row.
///
/// The group columns should be the columns the hash exchange in front of it keys by, in the
/// same order (`ArrowKeySelector::new(group_columns)`): the operator computes a group's key
/// group the way that selector does. A global aggregate (no group columns) keeps its one group
/// under the key group of the empty key and must run with parallelism 1, as in Flink.
///
/// # State
///
/// Per group, keyed by the canonical encoding of its key values: the number of rows accumulated
/// minus retracted, and each aggregate's accumulator — a count; an exact (`i128`) or float sum
/// and count; for `MIN`/`MAX` the multiset of values (value -> count), so retracting the current
/// extreme finds the next; for `DISTINCT` the count of rows per distinct value besides the
/// wrapped accumulator; for user functions the accumulator's own state. The last emitted result
/// is not stored: results are emitted after every batch, so it is always the value of the
/// current state. A group's state is removed when its row count drops to 0. Checkpoints write
/// one blob per key group: the key values as an Arrow IPC stream and the groups' states with
/// postcard; restoring keeps the key groups the subtask owns.
pub struct GroupAggregateOperator {
    spec: GroupAggregateSpec,
    /// Per aggregate: how it is named in errors, e.g. `SUM(amount) AS total`.
    labels: Vec<String>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: GroupTable,
    /// Per group: rows accumulated minus rows retracted.
    row_counts: Vec<i64>,
    /// How key values are stored and rebuilt; `None` for a global aggregate.
    keys: Option<KeyValues>,
    max_parallelism: u16,
    owned: KeyGroupRange,
    scratch: Scratch,
}

/// The key values of groups in Arrow's row format, and the schema of the key columns.
pub(crate) struct KeyValues {
    pub(crate) converter: RowConverter,
    pub(crate) parser: RowParser,
    pub(crate) schema: SchemaRef,
}

/// Buffers reused from batch to batch.
#[derive(Default)]
struct Scratch {
    encoded: EncodedKeys,
    group_ids: Vec<u32>,
    signs: Vec<i8>,
    filtered: Vec<i8>,
    /// The groups the batch touched, in order of first touch, whether each is new, and the
    /// row of the batch that first touched it (where its key values are read for the output).
    touched: Vec<u32>,
    fresh: Vec<bool>,
    touched_rows: Vec<u32>,
    /// Per group index: whether it is in `touched`.
    marks: Vec<bool>,
    /// The rows that created a group.
    new_rows: Vec<u32>,
}

/// One key group's part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct KeyGroupState {
    /// The groups' key values: the key columns as an Arrow IPC stream, one row per group;
    /// empty for a global aggregate.
    keys: Vec<u8>,
    groups: Vec<GroupState>,
}

#[derive(Serialize, Deserialize)]
struct GroupState {
    rows: i64,
    accumulators: Vec<AccumulatorState>,
}

impl std::fmt::Debug for GroupAggregateOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAggregateOperator")
            .field("group_columns", &self.spec.group_columns)
            .field("aggregates", &self.labels)
            .field("emit", &self.spec.emit)
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl GroupAggregateOperator {
    /// An operator computing `spec`.
    ///
    /// # Errors
    ///
    /// When a column position is out of range, a group column's type cannot be a key, an
    /// aggregate does not accept its arguments, a filter is not `BOOLEAN`, or a declared result
    /// type or the output schema differs from what the aggregation produces.
    pub fn new(spec: GroupAggregateSpec) -> Result<Self, AggregateError> {
        let input = Arc::clone(&spec.input_schema);
        let field = |role: &dyn Fn() -> String, column: usize| {
            input
                .fields()
                .get(column)
                .cloned()
                .ok_or_else(|| AggregateError::NoSuchColumn {
                    role: role(),
                    column,
                    inputs: input.fields().iter().map(|f| f.name().clone()).collect(),
                })
        };

        let mut key_fields = Vec::new();
        for &column in &spec.group_columns {
            key_fields.push(field(&|| "group".to_owned(), column)?);
        }
        let keys = if key_fields.is_empty() {
            None
        } else {
            Some(KeyValues::new(&key_fields)?)
        };

        let mut labels = Vec::new();
        let mut accumulators = Vec::new();
        for call in &spec.aggregates {
            let label = label(call, &input);
            let mut arg_types = Vec::new();
            for &column in &call.args {
                let role = || format!("argument of {label}");
                arg_types.push(field(&role, column)?.data_type().clone());
            }
            if let Some(column) = call.filter {
                let role = || format!("filter of {label}");
                let filter = field(&role, column)?;
                if filter.data_type() != &DataType::Boolean {
                    return Err(AggregateError::FilterNotBoolean {
                        aggregate: label,
                        data_type: filter.data_type().clone(),
                    });
                }
            }
            accumulators.push(create_accumulator(call, &label, &arg_types)?);
            labels.push(label);
        }

        let produced: Vec<(String, DataType)> = key_fields
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .chain(
                spec.aggregates
                    .iter()
                    .map(|c| (c.output.name().clone(), c.output.data_type().clone())),
            )
            .collect();
        let declared = spec.output_schema.fields();
        for position in 0..produced.len().max(declared.len()) {
            let expected = produced.get(position);
            let found = declared.get(position);
            if expected.map(|e| &e.1) != found.map(|f| f.data_type()) {
                return Err(AggregateError::OutputSchema {
                    position,
                    expected: expected.map_or("nothing".to_owned(), |(n, t)| format!("{n}: {t}")),
                    found: found.map_or("nothing".to_owned(), |f| {
                        format!("{}: {}", f.name(), f.data_type())
                    }),
                });
            }
        }

        Ok(GroupAggregateOperator {
            spec,
            labels,
            accumulators,
            groups: GroupTable::default(),
            row_counts: Vec::new(),
            keys,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM),
            scratch: Scratch::default(),
        })
    }

    /// The number of groups currently in state.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Applies one input batch; in changelog mode returns the changes it caused.
    pub(super) fn process(
        &mut self,
        batch: &ChangelogBatch,
    ) -> Result<Option<ChangelogBatch>, AggregateError> {
        let data = batch.data();
        let rows = data.num_rows();
        if rows == 0 {
            return Ok(None);
        }
        self.check_input(data)?;
        let signs = &mut self.scratch.signs;
        signs.clear();
        match batch.row_kinds() {
            None => signs.resize(rows, 1),
            Some(kinds) => signs.extend(kinds.values().iter().map(|&code| {
                if code == RowKind::Insert as i8 || code == RowKind::UpdateAfter as i8 {
                    1
                } else {
                    -1
                }
            })),
        }
        self.assign_groups(data)?;
        self.ensure_capacity();

        let changelog = self.spec.emit == EmitMode::Changelog;
        let before: Vec<u32> = self.previously_live().collect();
        let old = if changelog {
            self.evaluate(&before)?
        } else {
            Vec::new()
        };

        let Scratch {
            group_ids,
            signs,
            filtered,
            ..
        } = &mut self.scratch;
        let mut unknown_row = None;
        for (&g, &s) in group_ids.iter().zip(signs.iter()) {
            let count = &mut self.row_counts[g as usize];
            *count += i64::from(s);
            if *count < 0 {
                unknown_row = Some(g);
                break;
            }
        }
        if let Some(group) = unknown_row {
            return Err(AggregateError::RetractedUnknownRow {
                group: self.describe(group),
            });
        }

        for (i, call) in self.spec.aggregates.iter().enumerate() {
            let args: Vec<ArrayRef> = call
                .args
                .iter()
                .map(|&c| Arc::clone(data.column(c)))
                .collect();
            let row_signs: &[i8] = match call.filter {
                None => signs,
                Some(column) => {
                    let filter = data.column(column).as_boolean();
                    filtered.clear();
                    filtered.extend(signs.iter().enumerate().map(|(row, &s)| {
                        if filter.is_valid(row) && filter.value(row) {
                            s
                        } else {
                            0
                        }
                    }));
                    filtered
                }
            };
            if let Err(error) = self.accumulators[i].update(&args, group_ids, row_signs) {
                return Err(match error {
                    AccumulatorError::Failed(error) => error,
                    AccumulatorError::UnknownValue { group } => {
                        AggregateError::RetractedUnknownValue {
                            aggregate: self.labels[i].clone(),
                            group: self.describe(group),
                        }
                    }
                });
            }
        }

        let output = if changelog {
            self.changes(data, &old)?
        } else {
            None
        };
        for t in 0..self.scratch.touched.len() {
            let group = self.scratch.touched[t];
            if self.row_counts[group as usize] == 0 {
                self.remove_group(group);
            }
        }
        Ok(output)
    }

    /// Checks that the columns the aggregation reads have the types of the input schema.
    fn check_input(&self, data: &RecordBatch) -> Result<(), AggregateError> {
        let schema = data.schema_ref();
        let used = self.spec.group_columns.iter().chain(
            self.spec
                .aggregates
                .iter()
                .flat_map(|c| c.args.iter().chain(c.filter.iter())),
        );
        for &column in used {
            let expected = self.spec.input_schema.field(column).data_type();
            let found = schema.fields().get(column).map(|f| f.data_type());
            if found != Some(expected) {
                return Err(AggregateError::InputType {
                    column,
                    expected: expected.clone(),
                    found: found.cloned(),
                });
            }
        }
        Ok(())
    }

    /// Maps every row to its group (creating new ones) and lists the touched groups.
    fn assign_groups(&mut self, data: &RecordBatch) -> Result<(), AggregateError> {
        let rows = data.num_rows();
        let s = &mut self.scratch;
        s.group_ids.clear();
        s.touched.clear();
        s.fresh.clear();
        s.touched_rows.clear();
        s.new_rows.clear();
        let Some(keys) = &self.keys else {
            let (group, new) = self.groups.find_or_insert(hash_key_bytes(&[]), &[]);
            s.group_ids.resize(rows, group);
            s.touched.push(group);
            s.fresh.push(new);
            return Ok(());
        };
        let columns: Vec<ArrayRef> = self
            .spec
            .group_columns
            .iter()
            .map(|&c| Arc::clone(data.column(c)))
            .collect();
        encode_arrow_keys(&columns, &mut s.encoded)?;
        for (row, key) in s.encoded.iter().enumerate() {
            let (group, new) = self.groups.find_or_insert(hash_key_bytes(key), key);
            s.group_ids.push(group);
            if new {
                s.new_rows.push(row as u32);
            }
            let g = group as usize;
            if g >= s.marks.len() {
                s.marks.resize(g + 1, false);
            }
            if !s.marks[g] {
                s.marks[g] = true;
                s.touched.push(group);
                s.fresh.push(new);
                s.touched_rows.push(row as u32);
            }
        }
        for &group in &s.touched {
            s.marks[group as usize] = false;
        }
        if !s.new_rows.is_empty() {
            let indices = UInt32Array::from(s.new_rows.clone());
            let first_rows = columns
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<Result<Vec<_>, _>>()?;
            let encoded = keys.converter.convert_columns(&first_rows)?;
            for (i, &row) in s.new_rows.iter().enumerate() {
                self.groups
                    .set_row(s.group_ids[row as usize], encoded.row(i).as_ref());
            }
        }
        Ok(())
    }

    /// Grows per-group state to the group table's capacity.
    fn ensure_capacity(&mut self) {
        let capacity = self.groups.capacity();
        for accumulator in &mut self.accumulators {
            accumulator.resize(capacity);
        }
        if self.row_counts.len() < capacity {
            self.row_counts.resize(capacity, 0);
        }
    }

    /// The touched groups that existed before the current batch.
    fn previously_live(&self) -> impl Iterator<Item = u32> + '_ {
        self.scratch
            .touched
            .iter()
            .zip(&self.scratch.fresh)
            .filter(|(_, fresh)| !**fresh)
            .map(|(g, _)| *g)
    }

    /// Each aggregate's current result for `groups`.
    fn evaluate(&self, groups: &[u32]) -> Result<Vec<ArrayRef>, AggregateError> {
        self.accumulators
            .iter()
            .map(|a| a.evaluate(groups))
            .collect()
    }

    /// The key columns of `groups`, rebuilt from their stored key values.
    fn key_columns(&self, groups: &[u32]) -> Result<Vec<ArrayRef>, AggregateError> {
        let Some(keys) = &self.keys else {
            return Ok(Vec::new());
        };
        if groups.is_empty() {
            return Ok(keys
                .schema
                .fields()
                .iter()
                .map(|f| new_empty_array(f.data_type()))
                .collect());
        }
        Ok(keys.converter.convert_rows(
            groups
                .iter()
                .map(|&g| keys.parser.parse(self.groups.row(g))),
        )?)
    }

    /// The changes of the touched groups: `old` holds, from before the batch, the results of
    /// the touched groups that existed then.
    fn changes(
        &self,
        data: &RecordBatch,
        old: &[ArrayRef],
    ) -> Result<Option<ChangelogBatch>, AggregateError> {
        let touched = &self.scratch.touched;
        let fresh = &self.scratch.fresh;
        let live = |g: u32| self.row_counts[g as usize] > 0;
        let after: Vec<u32> = touched.iter().copied().filter(|&g| live(g)).collect();
        let new = self.evaluate(&after)?;

        // Which results of groups that existed before and after changed.
        let (mut old_at, mut new_at) = (Vec::new(), Vec::new());
        let (mut b, mut a) = (0u32, 0u32);
        for (&g, &is_new) in touched.iter().zip(fresh) {
            let (had, has) = (!is_new, live(g));
            if had && has {
                old_at.push(b);
                new_at.push(a);
            }
            b += u32::from(had);
            a += u32::from(has);
        }
        let mut same: Option<BooleanArray> = None;
        if !old_at.is_empty() {
            let (old_at, new_at) = (UInt32Array::from(old_at), UInt32Array::from(new_at));
            for (o, n) in old.iter().zip(&new) {
                let equal = not_distinct(&take(o, &old_at, None)?, &take(n, &new_at, None)?)?;
                same = Some(match same {
                    None => equal,
                    Some(previous) => and(&previous, &equal)?,
                });
            }
        }

        // Output rows: aggregates picked from (old, new), keys from the touched groups.
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut key_rows: Vec<u32> = Vec::new();
        let mut kinds: Vec<RowKind> = Vec::new();
        let (mut b, mut a, mut p) = (0usize, 0usize, 0usize);
        for (t, (&g, &is_new)) in touched.iter().zip(fresh).enumerate() {
            let (had, has) = (!is_new, live(g));
            match (had, has) {
                (true, true) => {
                    let unchanged = same.as_ref().is_none_or(|s| s.value(p));
                    p += 1;
                    if !unchanged {
                        picks.extend([(0, b), (1, a)]);
                        key_rows.extend([t as u32, t as u32]);
                        kinds.extend([RowKind::UpdateBefore, RowKind::UpdateAfter]);
                    }
                }
                (true, false) => {
                    picks.push((0, b));
                    key_rows.push(t as u32);
                    kinds.push(RowKind::Delete);
                }
                (false, true) => {
                    picks.push((1, a));
                    key_rows.push(t as u32);
                    kinds.push(RowKind::Insert);
                }
                (false, false) => {}
            }
            b += usize::from(had);
            a += usize::from(has);
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(self.spec.output_schema.fields().len());
        if self.keys.is_some() {
            // A touched group's key values are those of the batch row that first touched it.
            let rows = &self.scratch.touched_rows;
            let key_rows =
                UInt32Array::from_iter_values(key_rows.iter().map(|&t| rows[t as usize]));
            for &column in &self.spec.group_columns {
                columns.push(take(data.column(column), &key_rows, None)?);
            }
        }
        for (o, n) in old.iter().zip(&new) {
            columns.push(interleave(&[o.as_ref(), n.as_ref()], &picks)?);
        }
        let data = self.output_batch(columns, picks.len())?;
        Ok(Some(ChangelogBatch::from_kinds(data, &kinds)?))
    }

    fn output_batch(
        &self,
        columns: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch, AggregateError> {
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.spec.output_schema),
            columns,
            &options,
        )?)
    }

    /// Drops a group's state.
    fn remove_group(&mut self, group: u32) {
        for accumulator in &mut self.accumulators {
            accumulator.reset(group);
        }
        self.row_counts[group as usize] = 0;
        self.groups.remove(group);
    }

    /// The final results, for [`EmitMode::Final`].
    fn final_batches(&mut self) -> Result<Vec<ChangelogBatch>, AggregateError> {
        if self.spec.emit != EmitMode::Final {
            // A global aggregate's changelog ends with the row of an empty input when it has
            // no row then (no input, or all retracted), as the batch result has.
            if self.keys.is_some() || self.groups.live_groups().next().is_some() {
                return Ok(Vec::new());
            }
            let (group, _) = self.groups.find_or_insert(hash_key_bytes(&[]), &[]);
            self.ensure_capacity();
            let columns = self.evaluate(&[group])?;
            let data = self.output_batch(columns, 1)?;
            return Ok(vec![ChangelogBatch::insert_only(data)]);
        }
        let groups: Vec<u32> = if self.keys.is_none() {
            // SQL: a global aggregate has one result row, even over no rows.
            let (group, _) = self.groups.find_or_insert(hash_key_bytes(&[]), &[]);
            self.ensure_capacity();
            vec![group]
        } else {
            self.groups.live_groups().collect()
        };
        let mut batches = Vec::new();
        for chunk in groups.chunks(OUTPUT_BATCH_ROWS) {
            let mut columns = self.key_columns(chunk)?;
            columns.extend(self.evaluate(chunk)?);
            let data = self.output_batch(columns, chunk.len())?;
            batches.push(ChangelogBatch::insert_only(data));
        }
        Ok(batches)
    }

    /// A group's key values for an error message, e.g. `('ada', 3)`.
    fn describe(&self, group: u32) -> String {
        if self.keys.is_none() {
            return "() (the global group)".to_owned();
        }
        match self.key_columns(&[group]) {
            Ok(columns) => {
                let values: Vec<String> = columns
                    .iter()
                    .map(|c| array_value_to_string(c, 0).unwrap_or_else(|_| "?".to_owned()))
                    .collect();
                format!("({})", values.join(", "))
            }
            Err(_) => format!("#{group}"),
        }
    }

    /// Every group's state, one blob per key group.
    fn snapshot(&self) -> Result<OperatorState, AggregateError> {
        let mut by_key_group: BTreeMap<KeyGroup, Vec<u32>> = BTreeMap::new();
        for group in self.groups.live_groups() {
            let key_group = key_group_for_hash(self.groups.hash(group), self.max_parallelism);
            by_key_group.entry(key_group).or_default().push(group);
        }
        let mut state = OperatorState::default();
        for (key_group, groups) in by_key_group {
            let fail = |reason: String| AggregateError::State { key_group, reason };
            let keys = match &self.keys {
                None => Vec::new(),
                Some(keys) => {
                    let batch =
                        RecordBatch::try_new(Arc::clone(&keys.schema), self.key_columns(&groups)?)?;
                    let mut bytes = Vec::new();
                    let mut writer = StreamWriter::try_new(&mut bytes, &keys.schema)?;
                    writer.write(&batch)?;
                    writer.finish()?;
                    drop(writer);
                    bytes
                }
            };
            let mut states = Vec::with_capacity(groups.len());
            for &group in &groups {
                let accumulators = self
                    .accumulators
                    .iter()
                    .map(|a| a.save(group))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?;
                states.push(GroupState {
                    rows: self.row_counts[group as usize],
                    accumulators,
                });
            }
            let blob = postcard::to_allocvec(&KeyGroupState {
                keys,
                groups: states,
            })
            .map_err(|e| fail(e.to_string()))?;
            state.keyed.insert(key_group, blob);
        }
        Ok(state)
    }

    /// Restores the groups of the owned key groups from a snapshot.
    fn restore(&mut self, state: &OperatorState) -> Result<(), AggregateError> {
        for (&key_group, blob) in &state.keyed {
            if !self.owned.contains(key_group) {
                continue;
            }
            let fail = |reason: String| AggregateError::State { key_group, reason };
            let saved: KeyGroupState =
                postcard::from_bytes(blob).map_err(|e| fail(e.to_string()))?;
            let mut encoded = EncodedKeys::new();
            let rows = match &self.keys {
                None => None,
                Some(keys) => {
                    let mut reader = StreamReader::try_new(&saved.keys[..], None)?;
                    let batch = reader
                        .next()
                        .ok_or_else(|| fail("no key columns".to_owned()))??;
                    if batch.num_rows() != saved.groups.len() {
                        return Err(fail(format!(
                            "{} keys for {} groups",
                            batch.num_rows(),
                            saved.groups.len()
                        )));
                    }
                    encode_arrow_keys(batch.columns(), &mut encoded)?;
                    Some(keys.converter.convert_columns(batch.columns())?)
                }
            };
            for (i, group_state) in saved.groups.into_iter().enumerate() {
                if group_state.accumulators.len() != self.accumulators.len() {
                    return Err(fail(format!(
                        "{} accumulators saved, {} expected",
                        group_state.accumulators.len(),
                        self.accumulators.len()
                    )));
                }
                let key: &[u8] = if rows.is_some() { encoded.row(i) } else { &[] };
                let (group, _) = self.groups.find_or_insert(hash_key_bytes(key), key);
                if let Some(rows) = &rows {
                    self.groups.set_row(group, rows.row(i).as_ref());
                }
                self.ensure_capacity();
                self.row_counts[group as usize] = group_state.rows;
                for (accumulator, saved) in
                    self.accumulators.iter_mut().zip(group_state.accumulators)
                {
                    accumulator.load(group, saved).map_err(fail)?;
                }
            }
        }
        Ok(())
    }
}

impl KeyValues {
    /// The row format and IPC schema of key columns with `fields`.
    pub(crate) fn new(fields: &[Arc<Field>]) -> Result<Self, AggregateError> {
        let unsupported =
            |field: &Field, source: crate::error::BoxError| AggregateError::UnsupportedGroupKey {
                column: field.name().clone(),
                source,
            };
        for field in fields {
            encode_arrow_keys(
                &[new_empty_array(field.data_type())],
                &mut EncodedKeys::new(),
            )
            .map_err(|e| unsupported(field, e.into()))?;
        }
        let sort_fields: Vec<SortField> = fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter =
            RowConverter::new(sort_fields).map_err(|e| unsupported(&fields[0], e.into()))?;
        let parser = converter.parser();
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| Field::new(format!("key{i}"), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        Ok(KeyValues {
            converter,
            parser,
            schema,
        })
    }
}

/// How an aggregate call is named in errors: `SUM(DISTINCT amount) FILTER (WHERE big) AS total`.
pub(crate) fn label(call: &AggregateCall, input: &Schema) -> String {
    let name = |column: usize| {
        input
            .fields()
            .get(column)
            .map_or_else(|| format!("#{column}"), |f| f.name().clone())
    };
    let args = match call.kind {
        AggregateKind::CountStar => "*".to_owned(),
        _ => call
            .args
            .iter()
            .map(|&c| name(c))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let distinct = if call.distinct { "DISTINCT " } else { "" };
    let filter = call
        .filter
        .map(|c| format!(" FILTER (WHERE {})", name(c)))
        .unwrap_or_default();
    format!(
        "{}({distinct}{args}){filter} AS {}",
        call.kind,
        call.output.name()
    )
}

impl Operator for GroupAggregateOperator {
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

    fn finish(&mut self, out: &mut dyn Output<ChangelogBatch>) -> Result<(), TaskError> {
        for batch in self.final_batches()? {
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
