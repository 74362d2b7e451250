//! What the unbounded streaming operators ([`RankOperator`](super::RankOperator),
//! [`DeduplicateOperator`](super::DeduplicateOperator),
//! [`OverAggregateOperator`](super::OverAggregateOperator) and
//! [`IntervalJoinOperator`](super::IntervalJoinOperator)) share: their error type
//! [`StreamOpError`], reading event-time columns, the key of each row (the bytes the hash exchange
//! routes by) and rows kept in Arrow's row format, written to checkpoints as Arrow IPC.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, new_empty_array};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Field, FieldRef, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};

use super::aggregate::AggregateError;
use super::expr::EvalError;
use crate::batch::arrow::{ChangelogBatch, ChangelogError, RowKind};
use crate::error::BoxError;
use crate::keys::{
    EncodedKeys, KeyError, KeyGroup, encode_arrow_keys, hash_key_bytes, key_group_for_hash,
};

/// Why an unbounded streaming operator (Top-N, deduplication, OVER aggregation, interval join)
/// cannot be built or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamOpError {
    /// A column position beyond the input's columns.
    #[error(
        "{operator}: {role} column {column} does not exist; the input has columns {inputs:?}, use a position below {}",
        inputs.len()
    )]
    NoSuchColumn {
        /// The operator, e.g. `Rank`.
        operator: &'static str,
        /// What the column was for, e.g. `partition`.
        role: String,
        /// The position asked for.
        column: usize,
        /// The input's column names.
        inputs: Vec<String>,
    },
    /// A time column that is neither a millisecond timestamp nor `BIGINT` milliseconds.
    #[error(
        "{operator}: time column {column:?} has type {found}; it must be TIMESTAMP(3) (Arrow Timestamp(Millisecond)) or BIGINT milliseconds, so cast it first"
    )]
    TimeColumnType {
        /// The operator.
        operator: &'static str,
        /// The column's name.
        column: String,
        /// Its type.
        found: DataType,
    },
    /// A null event time.
    #[error(
        "{operator}: row {row} of an input batch has a null time in column {column:?}; event-time columns must not be null, filter such rows out first"
    )]
    NullTime {
        /// The operator.
        operator: &'static str,
        /// The time column's name.
        column: String,
        /// The row within its batch.
        row: usize,
    },
    /// A column whose type cannot be part of a key (or of Arrow's row format).
    #[error("{operator}: column {column:?} cannot be a {role} column: {source}")]
    UnsupportedColumn {
        /// The operator.
        operator: &'static str,
        /// What the column was for.
        role: &'static str,
        /// The column's name.
        column: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// An update or deletion reached an operator that takes insert-only input.
    #[error(
        "{operator} takes insert-only input but received a {kind} row; put it after operators that only insert, or normalise the changelog first"
    )]
    UpdatingInput {
        /// The operator.
        operator: &'static str,
        /// The row kind received.
        kind: RowKind,
    },
    /// A retraction of a row the operator never received.
    #[error(
        "{operator} was asked to retract row {row} that it never received; the input changelog retracts a row it did not insert"
    )]
    RetractedUnknownRow {
        /// The operator.
        operator: &'static str,
        /// The row's values.
        row: String,
    },
    /// The spec is inconsistent (e.g. an empty rank range).
    #[error("{operator}: {reason}")]
    InvalidSpec {
        /// The operator.
        operator: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The output schema differs from what the operator produces.
    #[error(
        "{operator}: the output schema has {found} at column {position} but the operator produces {expected}; {hint}"
    )]
    OutputSchema {
        /// The operator.
        operator: &'static str,
        /// The position in the output schema.
        position: usize,
        /// What the operator produces there (`name: type`), or `nothing`.
        expected: String,
        /// What the schema declares there, or `nothing`.
        found: String,
        /// What the output schema must list.
        hint: &'static str,
    },
    /// An input batch whose column differs from the input schema.
    #[error(
        "{operator}: input column {column} is {found:?} but the operator was planned for {expected}; the input does not match the plan"
    )]
    InputType {
        /// The operator.
        operator: &'static str,
        /// The column position.
        column: usize,
        /// The type in the input schema.
        expected: DataType,
        /// The type in the batch, `None` when the batch lacks the column.
        found: Option<DataType>,
    },
    /// A checkpoint could not be written or read back.
    #[error(
        "{operator}: the state of key group {key_group} cannot be written or read: {reason}; restore from a checkpoint taken by the same operator"
    )]
    State {
        /// The operator.
        operator: &'static str,
        /// The key group.
        key_group: KeyGroup,
        /// Why.
        reason: String,
    },
    /// A residual condition failed.
    #[error("{operator}: the join condition failed: {source}")]
    Filter {
        /// The operator.
        operator: &'static str,
        /// Why.
        #[source]
        source: EvalError,
    },
    /// A residual condition that does not produce booleans.
    #[error("{operator}: the join condition returns {found} values; give a boolean condition")]
    FilterNotBoolean {
        /// The operator.
        operator: &'static str,
        /// The condition's type.
        found: DataType,
    },
    /// An aggregate could not be built or failed.
    #[error("{operator}: {source}")]
    Aggregate {
        /// The operator.
        operator: &'static str,
        /// Why.
        #[source]
        source: AggregateError,
    },
    /// An Arrow kernel failed: an internal error.
    #[error("{operator}: internal error while {action}: {source}")]
    Arrow {
        /// The operator.
        operator: &'static str,
        /// What the operator was doing.
        action: &'static str,
        /// The kernel's error.
        #[source]
        source: ArrowError,
    },
    /// Encoding keys failed.
    #[error("{operator}: cannot encode keys: {source}")]
    Key {
        /// The operator.
        operator: &'static str,
        /// Why.
        #[source]
        source: KeyError,
    },
}

/// Turns an Arrow error into a [`StreamOpError::Arrow`] of `operator` doing `action`.
pub(crate) fn arrow_err(
    operator: &'static str,
    action: &'static str,
) -> impl FnOnce(ArrowError) -> StreamOpError {
    move |source| StreamOpError::Arrow {
        operator,
        action,
        source,
    }
}

/// The field at `column` of `schema`, or a [`StreamOpError::NoSuchColumn`].
pub(crate) fn field_at(
    operator: &'static str,
    role: &str,
    schema: &Schema,
    column: usize,
) -> Result<FieldRef, StreamOpError> {
    schema
        .fields()
        .get(column)
        .cloned()
        .ok_or_else(|| StreamOpError::NoSuchColumn {
            operator,
            role: role.to_owned(),
            column,
            inputs: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
}

/// Checks that `column` of `schema` is an event-time column: `Timestamp(Millisecond, _)` or
/// `Int64` milliseconds.
pub(crate) fn check_time_column(
    operator: &'static str,
    role: &str,
    schema: &Schema,
    column: usize,
) -> Result<(), StreamOpError> {
    let field = field_at(operator, role, schema, column)?;
    match field.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => Ok(()),
        other => Err(StreamOpError::TimeColumnType {
            operator,
            column: field.name().clone(),
            found: other.clone(),
        }),
    }
}

/// The event times (ms) of a time column checked by [`check_time_column`]; a null is an error.
pub(crate) fn time_values(
    operator: &'static str,
    batch: &RecordBatch,
    column: usize,
) -> Result<ScalarBuffer<i64>, StreamOpError> {
    let array = batch.column(column);
    let name = || batch.schema_ref().field(column).name().clone();
    if let Some(nulls) = array.logical_nulls()
        && let Some(row) = (0..array.len()).find(|&i| nulls.is_null(i))
    {
        return Err(StreamOpError::NullTime {
            operator,
            column: name(),
            row,
        });
    }
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(array
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .clone()),
        DataType::Int64 => Ok(array.as_primitive::<Int64Type>().values().clone()),
        other => Err(StreamOpError::TimeColumnType {
            operator,
            column: name(),
            found: other.clone(),
        }),
    }
}

/// Checks that the columns `used` of a batch have the types of the planned input schema.
pub(crate) fn check_input(
    operator: &'static str,
    planned: &Schema,
    batch: &RecordBatch,
    used: impl IntoIterator<Item = usize>,
) -> Result<(), StreamOpError> {
    let schema = batch.schema_ref();
    for column in used {
        let expected = planned.field(column).data_type();
        let found = schema.fields().get(column).map(|f| f.data_type());
        if found != Some(expected) {
            return Err(StreamOpError::InputType {
                operator,
                column,
                expected: expected.clone(),
                found: found.cloned(),
            });
        }
    }
    Ok(())
}

/// Rejects a batch holding anything but inserts.
pub(crate) fn check_insert_only(
    operator: &'static str,
    batch: &ChangelogBatch,
) -> Result<(), StreamOpError> {
    if let Some(kinds) = batch.row_kinds()
        && let Some(&code) = kinds.values().iter().find(|&&c| c != RowKind::Insert as i8)
    {
        return Err(StreamOpError::UpdatingInput {
            operator,
            kind: RowKind::from_code(code).unwrap_or(RowKind::Delete),
        });
    }
    Ok(())
}

/// Checks that `output` declares exactly the `(name, type)` columns the operator produces.
pub(crate) fn check_output(
    operator: &'static str,
    produced: &[(String, DataType)],
    output: &Schema,
    hint: &'static str,
) -> Result<(), StreamOpError> {
    let declared = output.fields();
    for position in 0..produced.len().max(declared.len()) {
        let expected = produced.get(position);
        let found = declared.get(position);
        if expected.map(|e| &e.1) != found.map(|f| f.data_type()) {
            return Err(StreamOpError::OutputSchema {
                operator,
                position,
                expected: expected.map_or("nothing".to_owned(), |(n, t)| format!("{n}: {t}")),
                found: found.map_or("nothing".to_owned(), |f| {
                    format!("{}: {}", f.name(), f.data_type())
                }),
                hint,
            });
        }
    }
    Ok(())
}

/// The `(name, type)` of every field of `schema`.
pub(crate) fn fields_of(schema: &Schema) -> Vec<(String, DataType)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

/// Encodes the key columns of each row with the runtime's canonical key encoding (the bytes
/// the hash exchange routes by) and remembers which rows have a null in a key column. With no
/// key columns every row has the empty key.
#[derive(Debug)]
pub(crate) struct RowKeys {
    operator: &'static str,
    columns: Vec<usize>,
    encoded: EncodedKeys,
    nulls: Option<NullBuffer>,
}

impl RowKeys {
    /// Keys over `columns` of `schema`, checking that each can be a key.
    pub(crate) fn new(
        operator: &'static str,
        role: &'static str,
        schema: &Schema,
        columns: &[usize],
    ) -> Result<Self, StreamOpError> {
        for &column in columns {
            let field = field_at(operator, role, schema, column)?;
            encode_arrow_keys(
                &[new_empty_array(field.data_type())],
                &mut EncodedKeys::new(),
            )
            .map_err(|e| StreamOpError::UnsupportedColumn {
                operator,
                role,
                column: field.name().clone(),
                source: e.into(),
            })?;
        }
        Ok(RowKeys {
            operator,
            columns: columns.to_vec(),
            encoded: EncodedKeys::new(),
            nulls: None,
        })
    }

    /// Encodes the keys of every row of `batch`.
    pub(crate) fn encode(&mut self, batch: &RecordBatch) -> Result<(), StreamOpError> {
        self.nulls = None;
        if self.columns.is_empty() {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&c| Arc::clone(batch.column(c)))
            .collect();
        for column in &columns {
            self.nulls = NullBuffer::union(self.nulls.as_ref(), column.logical_nulls().as_ref());
        }
        encode_arrow_keys(&columns, &mut self.encoded).map_err(|source| StreamOpError::Key {
            operator: self.operator,
            source,
        })
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

    /// Whether row `i` of the last batch has a null in a key column.
    #[inline]
    pub(crate) fn has_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }
}

/// The key group of an encoded key, as the hash exchange computes it.
#[inline]
pub(crate) fn key_group_of(key: &[u8], max_parallelism: u16) -> KeyGroup {
    key_group_for_hash(hash_key_bytes(key), max_parallelism)
}

/// Whole rows of a schema in Arrow's row format: how the operators keep rows in state.
#[derive(Debug)]
pub(crate) struct RowCodec {
    operator: &'static str,
    converter: RowConverter,
    schema: SchemaRef,
}

impl RowCodec {
    /// A codec over all columns of `schema`.
    pub(crate) fn new(operator: &'static str, schema: &SchemaRef) -> Result<Self, StreamOpError> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter =
            RowConverter::new(fields).map_err(|e| StreamOpError::UnsupportedColumn {
                operator,
                role: "input",
                column: schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source: e.into(),
            })?;
        Ok(RowCodec {
            operator,
            converter,
            schema: Arc::clone(schema),
        })
    }

    /// The rows of `batch` (which has this codec's columns).
    pub(crate) fn encode(&self, batch: &RecordBatch) -> Result<Rows, StreamOpError> {
        self.converter
            .convert_columns(batch.columns())
            .map_err(arrow_err(self.operator, "encoding rows"))
    }

    /// Columns holding `rows`, in order.
    pub(crate) fn decode<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<ArrayRef>, StreamOpError> {
        let parser = self.converter.parser();
        let mut rows = rows.into_iter().peekable();
        if rows.peek().is_none() {
            return Ok(self
                .schema
                .fields()
                .iter()
                .map(|f| new_empty_array(f.data_type()))
                .collect());
        }
        self.converter
            .convert_rows(rows.map(|r| parser.parse(r)))
            .map_err(arrow_err(self.operator, "decoding kept rows"))
    }

    /// The row converter.
    pub(crate) fn converter(&self) -> &RowConverter {
        &self.converter
    }

    /// The schema of the rows.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// A changelog batch of `schema` from columns and one kind per row.
pub(crate) fn output_batch(
    operator: &'static str,
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    kinds: &[RowKind],
) -> Result<ChangelogBatch, StreamOpError> {
    let options = RecordBatchOptions::new().with_row_count(Some(kinds.len()));
    let data = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(arrow_err(operator, "assembling an output batch"))?;
    ChangelogBatch::from_kinds(data, kinds).map_err(|e: ChangelogError| StreamOpError::Arrow {
        operator,
        action: "attaching row kinds",
        source: ArrowError::InvalidArgumentError(e.to_string()),
    })
}

/// Writes kept rows (as columns of `schema`) and per-row `Int64` extras as one Arrow IPC stream.
pub(crate) fn write_rows(
    operator: &'static str,
    key_group: KeyGroup,
    schema: &Schema,
    mut columns: Vec<ArrayRef>,
    extras: Vec<(&'static str, Vec<i64>)>,
) -> Result<Vec<u8>, StreamOpError> {
    let fail = |e: ArrowError| StreamOpError::State {
        operator,
        key_group,
        reason: e.to_string(),
    };
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let rows = columns.first().map_or(0, |c| c.len());
    for (name, values) in extras {
        fields.push(Field::new(name, DataType::Int64, false));
        columns.push(Arc::new(arrow::array::Int64Array::from(values)));
    }
    let schema = Arc::new(Schema::new(fields));
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let batch =
        RecordBatch::try_new_with_options(Arc::clone(&schema), columns, &options).map_err(fail)?;
    let mut bytes = Vec::new();
    let mut writer =
        arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &schema).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.finish().map_err(fail)?;
    drop(writer);
    Ok(bytes)
}

/// Reads what [`write_rows`] wrote: the row columns (their first `columns` columns, as a batch
/// of `schema`) and the `extras` `Int64` columns that follow.
pub(crate) fn read_rows(
    operator: &'static str,
    key_group: KeyGroup,
    schema: &SchemaRef,
    bytes: &[u8],
    extras: usize,
) -> Result<(RecordBatch, Vec<Vec<i64>>), StreamOpError> {
    let fail = |reason: String| StreamOpError::State {
        operator,
        key_group,
        reason,
    };
    let reader =
        arrow::ipc::reader::StreamReader::try_new(bytes, None).map_err(|e| fail(e.to_string()))?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch.map_err(|e| fail(e.to_string()))?);
    }
    let Some(first) = batches.first() else {
        return Err(fail("no rows section".to_owned()));
    };
    let all = arrow::compute::concat_batches(first.schema_ref(), &batches)
        .map_err(|e| fail(e.to_string()))?;
    let width = schema.fields().len();
    if all.num_columns() != width + extras {
        return Err(fail(format!(
            "{} columns saved, {} expected",
            all.num_columns(),
            width + extras
        )));
    }
    let mut columns = all.columns().to_vec();
    let extra_columns = columns.split_off(width);
    let mut values = Vec::with_capacity(extras);
    for column in extra_columns {
        let column = column
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| fail("a counter column is not BIGINT".to_owned()))?;
        values.push(column.values().to_vec());
    }
    let options = RecordBatchOptions::new().with_row_count(Some(all.num_rows()));
    let rows = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(|e| fail(e.to_string()))?;
    Ok((rows, values))
}

/// Shows a row for an error message, e.g. `(ada, 3)`.
pub(crate) fn describe_row(batch: &RecordBatch, row: usize) -> String {
    let values: Vec<String> = batch
        .columns()
        .iter()
        .map(|c| {
            arrow::util::display::array_value_to_string(c, row).unwrap_or_else(|_| "?".to_owned())
        })
        .collect();
    format!("({})", values.join(", "))
}
