//! [`ChangelogNormalizeOperator`]: an upsert changelog turned into the retraction changelog the
//! rest of a plan works with.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::RowConverter;

use super::join::JoinError;
use super::join::rows::{
    FixedHashMap, KeyEncoder, RowGather, changelog_batch, key_group_of_key, row_converter,
    state_schema,
};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::error::TaskError;
use crate::keys::{DEFAULT_MAX_PARALLELISM, KeyGroup, KeyGroupRange};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};

/// Normalises an upsert changelog on a key into a retraction changelog, as Flink's
/// `ChangelogNormalize`.
///
/// An upsert stream says only what a key's row is now (`+I` or `+U`) or that the key is gone
/// (`-D`, whose non-key columns may be anything); the operator keeps the current row of every
/// key and emits, per input row:
/// - `+I new` for a key it has not seen (or seen deleted),
/// - `-U old`, `+U new` for a key whose row changed, nothing when the row is the same,
/// - `-D old` (the stored row, not the input's) for a deleted key, nothing for an unknown key.
///
/// `-U` input rows carry nothing an upsert consumer needs and are ignored. The output is thus
/// a well-formed retraction changelog whose consolidation is the upsert stream's current table.
///
/// Run it behind a hash exchange on the key columns (in the same order): it computes a key's
/// key group the way that exchange does.
///
/// # State
///
/// The current row of each key; checkpoints write one Arrow IPC stream of rows per key group,
/// and restoring keeps the key groups the subtask owns.
pub struct ChangelogNormalizeOperator {
    schema: SchemaRef,
    keys: KeyEncoder,
    converter: RowConverter,
    /// Per key (canonical encoding): the current row in Arrow's row format.
    rows: FixedHashMap<Box<[u8]>, Box<[u8]>>,
    max_parallelism: u16,
    owned: Option<KeyGroupRange>,
}

impl std::fmt::Debug for ChangelogNormalizeOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogNormalizeOperator")
            .field("keys", &self.keys)
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl ChangelogNormalizeOperator {
    /// Normalises batches of `schema` upserted on the columns at `key_columns`.
    ///
    /// # Errors
    /// [`JoinError::KeyColumnOutOfRange`] for a key position beyond the schema's columns, and
    /// an error when the schema's types have no row format.
    pub fn new(schema: SchemaRef, key_columns: Vec<usize>) -> Result<Self, JoinError> {
        if let Some(&column) = key_columns.iter().find(|&&c| c >= schema.fields().len()) {
            return Err(JoinError::KeyColumnOutOfRange {
                side: "upsert",
                column,
                columns: schema.fields().len(),
            });
        }
        Ok(ChangelogNormalizeOperator {
            converter: row_converter(&schema)?,
            schema,
            keys: KeyEncoder::new(key_columns),
            rows: FixedHashMap::default(),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            owned: None,
        })
    }

    /// The number of keys with a current row.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no key has a current row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn arrow(action: &'static str) -> impl Fn(arrow::error::ArrowError) -> JoinError {
        move |source| JoinError::Arrow { action, source }
    }

    fn normalize(&mut self, batch: &ChangelogBatch) -> Result<Option<ChangelogBatch>, JoinError> {
        let columns = batch.data().columns();
        self.keys.encode(columns)?;
        let rows = self
            .converter
            .convert_columns(columns)
            .map_err(Self::arrow("encoding upsert rows"))?;
        let mut gather = RowGather::default();
        let mut kinds = Vec::new();
        for i in 0..batch.num_rows() {
            let key = self.keys.key(i);
            let row = rows.row(i);
            match batch.row_kind(i) {
                RowKind::Insert | RowKind::UpdateAfter => match self.rows.get_mut(key) {
                    Some(old) if old.as_ref() == row.as_ref() => {}
                    Some(old) => {
                        gather.push(old, 1);
                        kinds.push(RowKind::UpdateBefore);
                        gather.push(row.as_ref(), 1);
                        kinds.push(RowKind::UpdateAfter);
                        *old = row.as_ref().into();
                    }
                    None => {
                        gather.push(row.as_ref(), 1);
                        kinds.push(RowKind::Insert);
                        self.rows.insert(key.into(), row.as_ref().into());
                    }
                },
                RowKind::Delete => {
                    if let Some(old) = self.rows.remove(key) {
                        gather.push(&old, 1);
                        kinds.push(RowKind::Delete);
                    }
                }
                RowKind::UpdateBefore => {}
            }
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        let columns = gather
            .finish(&self.converter, self.schema.fields())
            .map_err(Self::arrow("gathering normalised rows"))?;
        changelog_batch(&self.schema, columns, &kinds).map(Some)
    }

    fn owns(&self, key_group: KeyGroup) -> bool {
        self.owned.is_none_or(|range| range.contains(key_group))
    }
}

impl Operator for ChangelogNormalizeOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.max_parallelism = ctx.max_parallelism();
        self.owned = Some(ctx.key_group_range());
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if let Some(changes) = self.normalize(&batch)? {
            out.collect(changes)?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        let mut by_group: BTreeMap<KeyGroup, Vec<&[u8]>> = BTreeMap::new();
        for (key, row) in &self.rows {
            by_group
                .entry(key_group_of_key(key, self.max_parallelism))
                .or_default()
                .push(row);
        }
        let schema = state_schema(&self.schema, &[]);
        let mut keyed = BTreeMap::new();
        for (key_group, rows) in by_group {
            let mut gather = RowGather::default();
            for row in rows {
                gather.push(row, 1);
            }
            let fail = |e: arrow::error::ArrowError| JoinError::CorruptState {
                key_group,
                message: e.to_string(),
            };
            let columns = gather
                .finish(&self.converter, self.schema.fields())
                .map_err(fail)?;
            let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(fail)?;
            let mut blob = Vec::new();
            let mut writer = StreamWriter::try_new(&mut blob, &schema).map_err(fail)?;
            writer.write(&batch).map_err(fail)?;
            writer.finish().map_err(fail)?;
            drop(writer);
            keyed.insert(key_group, blob);
        }
        Ok(OperatorState {
            keyed,
            operator: Vec::new(),
        })
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        for (&key_group, blob) in &state.keyed {
            if !self.owns(key_group) {
                continue;
            }
            let corrupt = |e: arrow::error::ArrowError| JoinError::CorruptState {
                key_group,
                message: e.to_string(),
            };
            for batch in StreamReader::try_new(blob.as_slice(), None).map_err(corrupt)? {
                let columns = batch.map_err(corrupt)?.columns().to_vec();
                self.keys.encode(&columns)?;
                let rows = self.converter.convert_columns(&columns).map_err(corrupt)?;
                for i in 0..rows.num_rows() {
                    self.rows
                        .insert(self.keys.key(i).into(), rows.row(i).as_ref().into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use proptest::prelude::*;

    use super::*;
    use crate::operator::testing::RecordingOutput;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(rows: &[(RowKind, i64, Option<&str>)]) -> ChangelogBatch {
        let data = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap();
        let kinds: Vec<RowKind> = rows.iter().map(|r| r.0).collect();
        ChangelogBatch::from_kinds(data, &kinds).unwrap()
    }

    type Row = (i64, Option<String>);

    fn rows_of(batch: &ChangelogBatch) -> Vec<(RowKind, Row)> {
        let ids = batch.data().column(0).as_primitive::<Int64Type>();
        let names = batch.data().column(1).as_string::<i32>();
        (0..batch.num_rows())
            .map(|i| {
                let name = (!names.is_null(i)).then(|| names.value(i).to_owned());
                (batch.row_kind(i), (ids.value(i), name))
            })
            .collect()
    }

    /// Applies a retraction changelog to a multiset, failing on a retraction of a row that is
    /// not there.
    fn apply(table: &mut HashMap<Row, i64>, changes: &[(RowKind, Row)]) {
        for (kind, row) in changes {
            let count = table.entry(row.clone()).or_default();
            if kind.is_accumulate() {
                *count += 1;
            } else {
                assert!(*count > 0, "retracted {row:?}, which is not in the table");
                *count -= 1;
            }
        }
        table.retain(|_, c| *c > 0);
    }

    fn run(op: &mut ChangelogNormalizeOperator, input: ChangelogBatch) -> Vec<(RowKind, Row)> {
        let mut out = RecordingOutput::default();
        op.process_batch(input, &mut out).unwrap();
        out.batches.iter().flat_map(rows_of).collect()
    }

    #[test]
    fn upserts_become_retractions() {
        let mut op = ChangelogNormalizeOperator::new(schema(), vec![0]).unwrap();
        let out = run(
            &mut op,
            batch(&[
                (RowKind::Insert, 1, Some("a")),
                (RowKind::UpdateAfter, 1, Some("b")),
                (RowKind::UpdateAfter, 1, Some("b")),
                (RowKind::Delete, 2, None),
                (RowKind::UpdateAfter, 2, Some("x")),
                (RowKind::Delete, 1, None),
            ]),
        );
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            out,
            vec![
                (RowKind::Insert, (1, s("a"))),
                (RowKind::UpdateBefore, (1, s("a"))),
                (RowKind::UpdateAfter, (1, s("b"))),
                (RowKind::Insert, (2, s("x"))),
                (RowKind::Delete, (1, s("b"))),
            ]
        );
        assert_eq!(op.len(), 1);
    }

    fn change() -> impl Strategy<Value = (RowKind, i64, Option<&'static str>)> {
        (
            prop_oneof![
                Just(RowKind::Insert),
                Just(RowKind::UpdateAfter),
                Just(RowKind::Delete),
                Just(RowKind::UpdateBefore)
            ],
            0i64..6,
            prop_oneof![
                Just(None),
                Just(Some("a")),
                Just(Some("b")),
                Just(Some("c"))
            ],
        )
    }

    proptest! {
        /// After every batch, the consolidated output equals the upsert stream's current table,
        /// also across a snapshot restored into a fresh operator.
        #[test]
        fn consolidated_output_is_the_current_table(
            batches in prop::collection::vec(prop::collection::vec(change(), 1..7), 1..12),
            restore_at in 0usize..12,
        ) {
            let mut op = ChangelogNormalizeOperator::new(schema(), vec![0]).unwrap();
            let mut expected: BTreeMap<i64, Option<String>> = BTreeMap::new();
            let mut table = HashMap::new();
            for (n, rows) in batches.iter().enumerate() {
                if n == restore_at {
                    let state = op.snapshot_state(1).unwrap();
                    op = ChangelogNormalizeOperator::new(schema(), vec![0]).unwrap();
                    op.restore_state(&state).unwrap();
                }
                for (kind, id, name) in rows {
                    match kind {
                        RowKind::Insert | RowKind::UpdateAfter => {
                            expected.insert(*id, name.map(str::to_owned));
                        }
                        RowKind::Delete => {
                            expected.remove(id);
                        }
                        RowKind::UpdateBefore => {}
                    }
                }
                apply(&mut table, &run(&mut op, batch(rows)));
                let mut current: Vec<Row> = table.keys().cloned().collect();
                current.sort();
                let want: Vec<Row> = expected.iter().map(|(k, v)| (*k, v.clone())).collect();
                prop_assert_eq!(current, want);
                prop_assert_eq!(op.len(), expected.len());
            }
        }
    }
}
