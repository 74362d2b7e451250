//! Row plumbing shared by the join and set-operation operators: key encoding with a null mask,
//! gathering kept rows back into Arrow columns, and the Arrow IPC layout of state snapshots.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Builder, UInt64Array,
    new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, UInt64Type};
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, SortField};

use super::JoinError;
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::keys::{EncodedKeys, KeyGroup, encode_arrow_keys, hash_key_bytes, key_group_for_hash};

/// A hash map with a fixed hasher, so iteration order (and thus output order) is the same on
/// every run.
pub(crate) type FixedHashMap<K, V> = hashbrown::HashMap<K, V, FixedHasher>;

/// Hashes the byte strings the join state is keyed by with one-shot xxh3 calls, which is much
/// cheaper for short keys than xxh3's streaming state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedHasher;

impl std::hash::BuildHasher for FixedHasher {
    type Hasher = OneShotXxh3;

    fn build_hasher(&self) -> OneShotXxh3 {
        OneShotXxh3(0)
    }
}

/// A hasher that folds each write into its state with one xxh3 call seeded by the state.
pub(crate) struct OneShotXxh3(u64);

impl std::hash::Hasher for OneShotXxh3 {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Encodes the key columns of a batch with the runtime's canonical key encoding (the bytes the
/// hash exchange routes by), and remembers which rows have a null in any key column.
pub(crate) struct KeyEncoder {
    columns: Vec<usize>,
    encoded: EncodedKeys,
    nulls: Option<NullBuffer>,
    scratch: Vec<ArrayRef>,
}

impl std::fmt::Debug for KeyEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyEncoder").field(&self.columns).finish()
    }
}

impl KeyEncoder {
    /// An encoder of the columns at `columns`; with none, every row has the empty key.
    pub(crate) fn new(columns: Vec<usize>) -> Self {
        KeyEncoder {
            columns,
            encoded: EncodedKeys::new(),
            nulls: None,
            scratch: Vec::new(),
        }
    }

    /// Encodes the keys of every row of a batch with these columns.
    pub(crate) fn encode(&mut self, columns: &[ArrayRef]) -> Result<(), JoinError> {
        self.nulls = None;
        if self.columns.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        for &column in &self.columns {
            let array = columns.get(column).ok_or(JoinError::BatchColumnMissing {
                column,
                columns: columns.len(),
            })?;
            self.scratch.push(Arc::clone(array));
        }
        let encoded = encode_arrow_keys(&self.scratch, &mut self.encoded);
        for column in &self.scratch {
            self.nulls = NullBuffer::union(self.nulls.as_ref(), column.logical_nulls().as_ref());
        }
        self.scratch.clear();
        encoded?;
        Ok(())
    }

    /// The encoded key of row `i` of the last batch.
    #[inline]
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        if self.columns.is_empty() {
            &[]
        } else {
            self.encoded.row(i)
        }
    }

    /// Whether row `i` of the last batch has a null in any key column.
    #[inline]
    pub(crate) fn has_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }
}

/// The key group of an encoded key: what the hash exchange computes for the same key columns.
#[inline]
pub(crate) fn key_group_of_key(key: &[u8], max_parallelism: u16) -> KeyGroup {
    key_group_for_hash(hash_key_bytes(key), max_parallelism)
}

/// A row converter (Arrow's row format) over all columns of `schema`.
pub(crate) fn row_converter(schema: &Schema) -> Result<RowConverter, JoinError> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    RowConverter::new(fields).map_err(|source| JoinError::Arrow {
        action: "preparing the row format of the input columns",
        source,
    })
}

/// Collects rows in Arrow row format, each emitted some number of times or as all nulls, then
/// turns them into columns with one `take` per column.
#[derive(Debug, Default)]
pub(crate) struct RowGather {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    indices: UInt32Builder,
    len: usize,
}

impl RowGather {
    /// Emits the row `row` `times` times.
    pub(crate) fn push(&mut self, row: &[u8], times: u64) {
        self.bytes.extend_from_slice(row);
        self.ends.push(self.bytes.len());
        let id = (self.ends.len() - 1) as u32;
        for _ in 0..times {
            self.indices.append_value(id);
        }
        self.len += times as usize;
    }

    /// Emits an all-null row `times` times.
    pub(crate) fn push_null(&mut self, times: u64) {
        self.indices.append_nulls(times as usize);
        self.len += times as usize;
    }

    /// The number of rows emitted so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The emitted rows as columns of `fields`; clears the gather.
    pub(crate) fn finish(
        &mut self,
        converter: &RowConverter,
        fields: &[FieldRef],
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let indices = self.indices.finish();
        let len = std::mem::take(&mut self.len);
        let columns = if self.ends.is_empty() {
            fields
                .iter()
                .map(|f| new_null_array(f.data_type(), len))
                .collect()
        } else {
            let parser = converter.parser();
            let mut start = 0;
            let rows = self.ends.iter().map(|&end| {
                let row = parser.parse(&self.bytes[start..end]);
                start = end;
                row
            });
            let distinct = converter.convert_rows(rows)?;
            let identity = indices.null_count() == 0
                && indices.len() == self.ends.len()
                && indices
                    .values()
                    .iter()
                    .enumerate()
                    .all(|(i, v)| *v as usize == i);
            if identity {
                distinct
            } else {
                distinct
                    .iter()
                    .map(|column| take(column.as_ref(), &indices, None))
                    .collect::<Result<_, _>>()?
            }
        };
        self.bytes.clear();
        self.ends.clear();
        Ok(columns)
    }
}

/// Builds a changelog batch of `schema` from columns and one row kind per row.
pub(crate) fn changelog_batch(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    kinds: &[RowKind],
) -> Result<ChangelogBatch, JoinError> {
    let options = RecordBatchOptions::new().with_row_count(Some(kinds.len()));
    let data = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options).map_err(
        |source| JoinError::Arrow {
            action: "assembling an output batch",
            source,
        },
    )?;
    ChangelogBatch::from_kinds(data, kinds).map_err(|e| JoinError::Arrow {
        action: "attaching row kinds to an output batch",
        source: ArrowError::InvalidArgumentError(e.to_string()),
    })
}

/// The schema of a state snapshot: the input's columns (all nullable) followed by one `UInt64`
/// column per counter.
pub(crate) fn state_schema(input: &Schema, counters: &[&str]) -> SchemaRef {
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.extend(
        counters
            .iter()
            .map(|name| Field::new(*name, DataType::UInt64, false)),
    );
    Arc::new(Schema::new(fields))
}

/// Writes kept rows and their counters as one Arrow IPC stream.
pub(crate) fn encode_state(
    schema: &SchemaRef,
    mut columns: Vec<ArrayRef>,
    counters: Vec<Vec<u64>>,
    out: &mut Vec<u8>,
) -> Result<(), ArrowError> {
    let rows = counters.first().map_or(0, Vec::len);
    columns.extend(
        counters
            .into_iter()
            .map(|c| Arc::new(UInt64Array::from(c)) as ArrayRef),
    );
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let batch = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?;
    let mut writer = StreamWriter::try_new(out, schema)?;
    writer.write(&batch)?;
    writer.finish()
}

/// Reads what [`encode_state`] wrote: the input's columns and the counters.
pub(crate) fn decode_state(
    bytes: &[u8],
    counters: usize,
) -> Result<(Vec<ArrayRef>, Vec<Vec<u64>>), ArrowError> {
    let mut columns = Vec::new();
    let mut counts: Vec<Vec<u64>> = vec![Vec::new(); counters];
    for batch in StreamReader::try_new(bytes, None)? {
        let batch = batch?;
        let split = batch.num_columns().checked_sub(counters).ok_or_else(|| {
            ArrowError::InvalidArgumentError("a state batch without its counters".into())
        })?;
        let mut batch_columns = batch.columns().to_vec();
        let counter_columns = batch_columns.split_off(split);
        for (into, column) in counts.iter_mut().zip(counter_columns) {
            let values = column.as_primitive_opt::<UInt64Type>().ok_or_else(|| {
                ArrowError::InvalidArgumentError("a state counter is not UInt64".into())
            })?;
            into.extend(values.values().iter().copied());
        }
        if columns.is_empty() {
            columns = batch_columns;
        } else {
            columns = columns
                .iter()
                .zip(&batch_columns)
                .map(|(a, b)| arrow::compute::concat(&[a.as_ref(), b.as_ref()]))
                .collect::<Result<_, _>>()?;
        }
    }
    Ok((columns, counts))
}

/// Appends a length-prefixed section to a state blob.
pub(crate) fn put_section(out: &mut Vec<u8>, section: &[u8]) {
    out.extend_from_slice(&(section.len() as u64).to_le_bytes());
    out.extend_from_slice(section);
}

/// Reads the next length-prefixed section of a state blob.
pub(crate) fn take_section<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let section = bytes.get(8..8 + len)?;
    *bytes = &bytes[8 + len..];
    Some(section)
}
