//! An upsert sink: a table's changelog applied to a keyed table the caller can read, as a
//! key-value store or a database table with a primary key would receive it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use parking_lot::Mutex;

use super::table::{TableCollectHandle, TableCollectSink};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::datastream::Stream;
use crate::sink::CollectHandle;

/// The current rows of a table written by [`Stream::upsert_collect`], keyed by its primary key.
///
/// `+I` and `+U` rows are upserted on their key; `-D` and `-U` rows delete their key's row when
/// it is the row retracted (so `-U old, +U new` works whether or not the key changed). Reading
/// applies the changes received since the last read; with checkpointing, only changes of
/// completed checkpoints arrive, so the table is exactly-once.
#[derive(Clone, Debug, Default)]
pub struct UpsertCollectHandle {
    inner: Arc<Mutex<Materialized>>,
}

#[derive(Debug, Default)]
struct Materialized {
    changes: Option<TableCollectHandle>,
    key: Vec<usize>,
    schema: Option<SchemaRef>,
    /// Key (row format of the key columns) -> the whole row (row format of every column).
    rows: BTreeMap<Box<[u8]>, Box<[u8]>>,
}

impl UpsertCollectHandle {
    /// A handle with no rows, to be bound to a stream by [`Stream::upsert_collect`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The current rows ordered by key, or `None` before any row arrived.
    ///
    /// # Errors
    /// When the rows cannot be encoded or decoded in Arrow's row format (a type without one).
    pub fn rows(&self) -> Result<Option<RecordBatch>, ArrowError> {
        let mut state = self.inner.lock();
        let Some(changes) = state.changes.clone() else {
            return Ok(None);
        };
        for batch in changes.take() {
            state.apply(&batch)?;
        }
        let Some(schema) = state.schema.clone() else {
            return Ok(None);
        };
        let converter = converter(&schema, None)?;
        let parser = converter.parser();
        let columns: Vec<ArrayRef> =
            converter.convert_rows(state.rows.values().map(|row| parser.parse(row)))?;
        RecordBatch::try_new(schema, columns).map(Some)
    }

    /// The number of keys with a row.
    ///
    /// # Errors
    /// As [`UpsertCollectHandle::rows`].
    pub fn len(&self) -> Result<usize, ArrowError> {
        Ok(self.rows()?.map_or(0, |b| b.num_rows()))
    }

    /// Whether no key has a row.
    ///
    /// # Errors
    /// As [`UpsertCollectHandle::rows`].
    pub fn is_empty(&self) -> Result<bool, ArrowError> {
        Ok(self.len()? == 0)
    }
}

fn converter(schema: &SchemaRef, columns: Option<&[usize]>) -> Result<RowConverter, ArrowError> {
    let fields = schema.fields();
    let sort = match columns {
        Some(columns) => columns
            .iter()
            .map(|&c| SortField::new(fields[c].data_type().clone()))
            .collect(),
        None => fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    };
    RowConverter::new(sort)
}

impl Materialized {
    fn apply(&mut self, batch: &ChangelogBatch) -> Result<(), ArrowError> {
        let schema = batch.schema();
        self.schema.get_or_insert_with(|| Arc::clone(&schema));
        let columns = batch.data().columns();
        let keys = converter(&schema, Some(&self.key))?.convert_columns(
            &self
                .key
                .iter()
                .map(|&c| Arc::clone(&columns[c]))
                .collect::<Vec<_>>(),
        )?;
        let rows = converter(&schema, None)?.convert_columns(columns)?;
        for i in 0..batch.num_rows() {
            let key = keys.row(i);
            let row = rows.row(i);
            match batch.row_kind(i) {
                RowKind::Insert | RowKind::UpdateAfter => {
                    self.rows.insert(key.as_ref().into(), row.as_ref().into());
                }
                RowKind::UpdateBefore | RowKind::Delete => {
                    if self
                        .rows
                        .get(key.as_ref())
                        .is_some_and(|stored| stored.as_ref() == row.as_ref())
                    {
                        self.rows.remove(key.as_ref());
                    }
                }
            }
        }
        Ok(())
    }
}

impl Stream<ChangelogBatch> {
    /// Writes the changelog into `handle` as upserts and deletes on the key columns at
    /// `key_columns`. Exactly-once with checkpointing, as
    /// [`collect_table`](Stream::collect_table).
    pub fn upsert_collect(&self, key_columns: Vec<usize>, handle: &UpsertCollectHandle) {
        let changes = CollectHandle::new();
        {
            let mut state = handle.inner.lock();
            state.key = key_columns;
            state.changes = Some(changes.clone());
            state.rows.clear();
        }
        self.sink_table(TableCollectSink::new(changes));
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::StreamEnv;
    use crate::source::RecordBatchSource;

    #[test]
    fn upserts_and_deletes_leave_the_current_rows() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = |rows: &[(RowKind, i64, &str)]| {
            let data = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                ],
            )
            .unwrap();
            let kinds: Vec<RowKind> = rows.iter().map(|r| r.0).collect();
            ChangelogBatch::from_kinds(data, &kinds).unwrap()
        };
        let env = StreamEnv::new();
        let handle = UpsertCollectHandle::new();
        env.from_source(RecordBatchSource::from_changelog(vec![
            batch(&[
                (RowKind::Insert, 2, "b"),
                (RowKind::Insert, 1, "a"),
                (RowKind::Insert, 3, "c"),
            ]),
            batch(&[
                (RowKind::UpdateBefore, 1, "a"),
                (RowKind::UpdateAfter, 1, "a2"),
                (RowKind::Delete, 3, "c"),
                (RowKind::Delete, 2, "stale"),
            ]),
        ]))
        .upsert_collect(vec![0], &handle);
        env.execute("upsert").unwrap();
        let rows = handle.rows().unwrap().unwrap();
        let ids: Vec<i64> = rows.column(0).as_primitive::<Int64Type>().values().to_vec();
        let names: Vec<&str> = rows.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(names, vec!["a2", "b"]);
    }
}
