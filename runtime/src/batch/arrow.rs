//! Arrow batches for the relational plane: a [`RecordBatch`] plus an optional row kind per row.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int8Array, RecordBatch, UInt32Array};
use arrow::compute::{concat, concat_batches, take, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use super::{Batch, BatchBuffer};
use crate::error::BoxError;

/// What a row of a changelog means, as Flink's `RowKind`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(i8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the old version of an updated row, retracted.
    UpdateBefore = 1,
    /// `+U`: the new version of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row.
    Delete = 3,
}

impl RowKind {
    /// The short form Flink prints: `+I`, `-U`, `+U` or `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// Whether the row adds to the result (`+I`, `+U`) rather than retracting from it.
    pub fn is_accumulate(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }

    /// The row kind stored as `code`, if it is one.
    pub fn from_code(code: i8) -> Option<RowKind> {
        match code {
            0 => Some(RowKind::Insert),
            1 => Some(RowKind::UpdateBefore),
            2 => Some(RowKind::UpdateAfter),
            3 => Some(RowKind::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_string())
    }
}

/// A batch of the relational plane: Arrow columns plus, for updating streams, a row kind per row.
///
/// The row kinds live outside the logical schema. An insert-only batch has none, which is the
/// common case and costs nothing.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::{ChangelogBatch, RowKind};
///
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
/// let data = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
/// let batch = ChangelogBatch::insert_only(data);
/// assert_eq!(batch.num_rows(), 2);
/// assert_eq!(batch.row_kind(1), RowKind::Insert);
/// ```
#[derive(Clone)]
pub struct ChangelogBatch {
    data: RecordBatch,
    row_kinds: Option<Int8Array>,
}

impl fmt::Debug for ChangelogBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangelogBatch")
            .field("rows", &self.data.num_rows())
            .field("schema", &self.data.schema())
            .field("has_row_kinds", &self.row_kinds.is_some())
            .finish()
    }
}

/// Why a changelog batch could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangelogError {
    /// The row-kind array does not have one entry per row.
    #[error(
        "the row-kind array has {kinds} entries but the batch has {rows} rows; give one row kind per row"
    )]
    LengthMismatch {
        /// Entries in the row-kind array.
        kinds: usize,
        /// Rows in the batch.
        rows: usize,
    },
    /// A row kind is null or outside 0..=3.
    #[error("row {row} has an invalid row kind {code:?}; use 0 (+I), 1 (-U), 2 (+U) or 3 (-D)")]
    InvalidRowKind {
        /// The row.
        row: usize,
        /// The stored code, `None` when null.
        code: Option<i8>,
    },
}

impl ChangelogBatch {
    /// A batch whose rows are all inserts.
    pub fn insert_only(data: RecordBatch) -> Self {
        ChangelogBatch {
            data,
            row_kinds: None,
        }
    }

    /// A batch with an explicit row kind per row.
    ///
    /// # Errors
    /// When the kinds do not match the rows in number or hold an invalid code.
    pub fn with_row_kinds(data: RecordBatch, row_kinds: Int8Array) -> Result<Self, ChangelogError> {
        if row_kinds.len() != data.num_rows() {
            return Err(ChangelogError::LengthMismatch {
                kinds: row_kinds.len(),
                rows: data.num_rows(),
            });
        }
        for row in 0..row_kinds.len() {
            let code = row_kinds.is_valid(row).then(|| row_kinds.value(row));
            if code.and_then(RowKind::from_code).is_none() {
                return Err(ChangelogError::InvalidRowKind { row, code });
            }
        }
        Ok(ChangelogBatch {
            data,
            row_kinds: Some(row_kinds),
        })
    }

    /// A batch from rows and their kinds.
    ///
    /// # Errors
    /// When the kinds do not match the rows in number.
    pub fn from_kinds(data: RecordBatch, kinds: &[RowKind]) -> Result<Self, ChangelogError> {
        if kinds.iter().all(|k| *k == RowKind::Insert) {
            if kinds.len() != data.num_rows() {
                return Err(ChangelogError::LengthMismatch {
                    kinds: kinds.len(),
                    rows: data.num_rows(),
                });
            }
            return Ok(Self::insert_only(data));
        }
        let codes = Int8Array::from_iter_values(kinds.iter().map(|k| *k as i8));
        Self::with_row_kinds(data, codes)
    }

    /// The Arrow columns.
    pub fn data(&self) -> &RecordBatch {
        &self.data
    }

    /// The Arrow columns, dropping the row kinds.
    pub fn into_data(self) -> RecordBatch {
        self.data
    }

    /// The schema of the columns.
    pub fn schema(&self) -> SchemaRef {
        self.data.schema()
    }

    /// The number of rows.
    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    /// Whether every row is an insert.
    pub fn is_insert_only(&self) -> bool {
        self.row_kinds.is_none()
    }

    /// The row kinds, when the batch has any other than inserts.
    pub fn row_kinds(&self) -> Option<&Int8Array> {
        self.row_kinds.as_ref()
    }

    /// The kind of row `row`.
    pub fn row_kind(&self, row: usize) -> RowKind {
        match &self.row_kinds {
            None => RowKind::Insert,
            Some(kinds) => RowKind::from_code(kinds.value(row)).unwrap_or(RowKind::Insert),
        }
    }

    /// Replaces the columns, keeping the row kinds (a projection).
    ///
    /// # Errors
    /// When `data` has another number of rows.
    pub fn with_data(&self, data: RecordBatch) -> Result<Self, ChangelogError> {
        if data.num_rows() != self.num_rows() {
            return Err(ChangelogError::LengthMismatch {
                kinds: self.num_rows(),
                rows: data.num_rows(),
            });
        }
        Ok(ChangelogBatch {
            data,
            row_kinds: self.row_kinds.clone(),
        })
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &UInt32Array) -> Result<Self, BoxError> {
        let data = take_record_batch(&self.data, indices)?;
        let row_kinds = match &self.row_kinds {
            None => None,
            Some(kinds) => {
                let taken = take(kinds, indices, None)?;
                Some(
                    taken
                        .as_any()
                        .downcast_ref::<Int8Array>()
                        .ok_or("take changed the row-kind array's type")?
                        .clone(),
                )
            }
        };
        Ok(ChangelogBatch { data, row_kinds })
    }
}

impl Batch for ChangelogBatch {
    type Buffer = ChangelogBuffer;

    fn len(&self) -> usize {
        self.data.num_rows()
    }

    fn scatter(self, targets: &[u32], buffers: &mut [ChangelogBuffer]) -> Result<(), BoxError> {
        debug_assert_eq!(targets.len(), self.num_rows());
        // Group row indices per target with a counting sort, then one `take` per target.
        let mut counts = vec![0usize; buffers.len() + 1];
        for &t in targets {
            counts[t as usize + 1] += 1;
        }
        if !targets.is_empty()
            && let Some(only) = counts.iter().position(|&c| c == targets.len())
        {
            return buffers[only - 1].push(self);
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let starts = counts.clone();
        let mut order = vec![0u32; targets.len()];
        for (row, &t) in targets.iter().enumerate() {
            let slot = &mut counts[t as usize];
            order[*slot] = row as u32;
            *slot += 1;
        }
        let order = UInt32Array::from(order);
        for (target, buffer) in buffers.iter_mut().enumerate() {
            let (start, end) = (starts[target], starts[target + 1]);
            if start == end {
                continue;
            }
            buffer.push(self.take(&order.slice(start, end - start))?)?;
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), BoxError> {
        // Layout: the row-kind count (u32 LE, 0 for an insert-only batch), one byte per row kind,
        // then the columns as one Arrow IPC stream.
        let kinds = self
            .row_kinds
            .as_ref()
            .map(|k| k.values().as_ref())
            .unwrap_or(&[]);
        out.extend_from_slice(&u32::try_from(kinds.len())?.to_le_bytes());
        out.extend(kinds.iter().map(|k| *k as u8));
        let mut writer = StreamWriter::try_new(&mut *out, &self.data.schema())?;
        writer.write(&self.data)?;
        writer.finish()?;
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Self, BoxError> {
        let count: [u8; 4] = bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or("a truncated encoded changelog batch")?;
        let count = u32::from_le_bytes(count) as usize;
        let kinds = bytes
            .get(4..4 + count)
            .ok_or("a truncated encoded changelog batch")?;
        let mut reader = StreamReader::try_new(&bytes[4 + count..], None)?;
        let data = reader
            .next()
            .ok_or("an encoded changelog batch without data")??;
        if count == 0 {
            return Ok(ChangelogBatch::insert_only(data));
        }
        let kinds = Int8Array::from_iter_values(kinds.iter().map(|b| *b as i8));
        Ok(ChangelogBatch::with_row_kinds(data, kinds)?)
    }
}

/// Buffered pieces of changelog batches, concatenated when taken.
#[derive(Default)]
pub struct ChangelogBuffer {
    pieces: Vec<ChangelogBatch>,
    rows: usize,
}

impl BatchBuffer<ChangelogBatch> for ChangelogBuffer {
    fn len(&self) -> usize {
        self.rows
    }

    fn push(&mut self, batch: ChangelogBatch) -> Result<(), BoxError> {
        self.rows += batch.num_rows();
        self.pieces.push(batch);
        Ok(())
    }

    fn take(&mut self) -> Result<Option<ChangelogBatch>, BoxError> {
        self.rows = 0;
        match self.pieces.len() {
            0 => Ok(None),
            1 => Ok(self.pieces.pop()),
            _ => {
                let pieces = std::mem::take(&mut self.pieces);
                let schema = pieces[0].schema();
                let data = concat_batches(&schema, pieces.iter().map(|p| &p.data))?;
                let row_kinds = if pieces.iter().all(|p| p.row_kinds.is_none()) {
                    None
                } else {
                    let arrays: Vec<ArrayRef> = pieces
                        .iter()
                        .map(|p| match &p.row_kinds {
                            Some(k) => Arc::new(k.clone()) as ArrayRef,
                            None => Arc::new(Int8Array::from(vec![0i8; p.num_rows()])),
                        })
                        .collect();
                    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
                    let all = concat(&refs)?;
                    Some(
                        all.as_any()
                            .downcast_ref::<Int8Array>()
                            .ok_or("concat changed the row-kind array's type")?
                            .clone(),
                    )
                };
                Ok(Some(ChangelogBatch { data, row_kinds }))
            }
        }
    }
}
