//! Rows kept whole until their window fires: what window Top-N and window join buffer, grouped
//! by window end so a watermark takes every fired row in one split.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use super::{WindowColumns, WindowError, time_values};
use crate::keys::{EncodedKeys, KeyGroup, encode_arrow_keys, hash_key_bytes, key_group_for_hash};

/// Insert-only rows of one input, by the end of their window, in arrival order.
#[derive(Debug)]
pub(super) struct WindowBuffer {
    schema: SchemaRef,
    window: WindowColumns,
    /// The columns the input is hash-partitioned by: they decide a row's key group.
    key_columns: Vec<usize>,
    by_end: BTreeMap<i64, Vec<RecordBatch>>,
    rows: usize,
    /// The window ends the last insert added rows to.
    last_ends: Vec<i64>,
}

impl WindowBuffer {
    pub(super) fn new(schema: SchemaRef, window: WindowColumns, key_columns: Vec<usize>) -> Self {
        WindowBuffer {
            schema,
            window,
            key_columns,
            by_end: BTreeMap::new(),
            rows: 0,
            last_ends: Vec::new(),
        }
    }

    /// The number of rows kept.
    pub(super) fn len(&self) -> usize {
        self.rows
    }

    /// Keeps the rows of `data` whose window has not fired at `watermark`; returns how many
    /// were late.
    pub(super) fn insert(
        &mut self,
        data: &RecordBatch,
        watermark: i64,
    ) -> Result<u64, WindowError> {
        if data.num_rows() == 0 {
            return Ok(0);
        }
        // Window starts must be there too; checked here so a bad row fails on arrival.
        time_values(data, "window start", self.window.start)?;
        let ends = time_values(data, "window end", self.window.end)?;
        self.last_ends.clear();
        let mut late = 0;
        let mut groups: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (row, &end) in ends.iter().enumerate() {
            if end.saturating_sub(1) <= watermark {
                late += 1;
            } else {
                groups.entry(end).or_default().push(row as u32);
            }
        }
        for (end, rows) in groups {
            let batch = if rows.len() == data.num_rows() {
                data.clone()
            } else {
                take_record_batch(data, &UInt32Array::from(rows))
                    .map_err(WindowError::arrow("splitting rows by window"))?
            };
            self.rows += batch.num_rows();
            self.by_end.entry(end).or_default().push(batch);
            self.last_ends.push(end);
        }
        Ok(late)
    }

    /// The window ends the last [`WindowBuffer::insert`] added rows to.
    pub(super) fn last_ends(&self) -> &[i64] {
        &self.last_ends
    }

    /// The number of rows kept for windows ending at `end`.
    pub(super) fn rows_at(&self, end: i64) -> usize {
        self.by_end
            .get(&end)
            .map_or(0, |batches| batches.iter().map(RecordBatch::num_rows).sum())
    }

    /// The rows of windows ending at `end` as one batch, in arrival order.
    pub(super) fn concat_at(&self, end: i64) -> Result<Option<RecordBatch>, WindowError> {
        let Some(batches) = self.by_end.get(&end) else {
            return Ok(None);
        };
        concat_batches(&self.schema, batches)
            .map(Some)
            .map_err(WindowError::arrow("collecting the rows of a window"))
    }

    /// Replaces the rows of windows ending at `end`.
    pub(super) fn replace_at(&mut self, end: i64, data: RecordBatch) {
        self.rows -= self.rows_at(end);
        self.rows += data.num_rows();
        self.by_end.insert(end, vec![data]);
    }

    /// Takes every row whose window fired at `watermark`, as one batch in order of window end
    /// and then arrival; `None` when there is none.
    pub(super) fn take_due(&mut self, watermark: i64) -> Result<Option<RecordBatch>, WindowError> {
        // Windows ending after `watermark + 1` stay open.
        let open = if watermark >= i64::MAX - 1 {
            BTreeMap::new()
        } else {
            self.by_end.split_off(&(watermark + 2))
        };
        let due = std::mem::replace(&mut self.by_end, open);
        if due.is_empty() {
            return Ok(None);
        }
        let batches: Vec<RecordBatch> = due.into_values().flatten().collect();
        let data = concat_batches(&self.schema, &batches)
            .map_err(WindowError::arrow("collecting the rows of fired windows"))?;
        self.rows -= data.num_rows();
        Ok(Some(data))
    }

    /// Every kept row, split by key group: one Arrow IPC stream per key group.
    pub(super) fn snapshot(
        &self,
        max_parallelism: u16,
    ) -> Result<BTreeMap<KeyGroup, Vec<u8>>, WindowError> {
        let mut parts: BTreeMap<KeyGroup, Vec<RecordBatch>> = BTreeMap::new();
        let mut encoded = EncodedKeys::new();
        for batch in self.by_end.values().flatten() {
            let mut rows: BTreeMap<KeyGroup, Vec<u32>> = BTreeMap::new();
            if self.key_columns.is_empty() {
                let key_group = key_group_for_hash(hash_key_bytes(&[]), max_parallelism);
                rows.insert(key_group, (0..batch.num_rows() as u32).collect());
            } else {
                let columns: Vec<ArrayRef> = self
                    .key_columns
                    .iter()
                    .map(|&c| Arc::clone(batch.column(c)))
                    .collect();
                encode_arrow_keys(&columns, &mut encoded)?;
                for (row, key) in encoded.iter().enumerate() {
                    let key_group = key_group_for_hash(hash_key_bytes(key), max_parallelism);
                    rows.entry(key_group).or_default().push(row as u32);
                }
            }
            for (key_group, rows) in rows {
                let part = take_record_batch(batch, &UInt32Array::from(rows))
                    .map_err(WindowError::arrow("splitting window state by key group"))?;
                parts.entry(key_group).or_default().push(part);
            }
        }
        let mut blobs = BTreeMap::new();
        for (key_group, batches) in parts {
            let mut bytes = Vec::new();
            let mut writer = StreamWriter::try_new(&mut bytes, &self.schema)
                .map_err(WindowError::arrow("writing window state"))?;
            for batch in &batches {
                writer
                    .write(batch)
                    .map_err(WindowError::arrow("writing window state"))?;
            }
            writer
                .finish()
                .map_err(WindowError::arrow("writing window state"))?;
            drop(writer);
            blobs.insert(key_group, bytes);
        }
        Ok(blobs)
    }

    /// Adds the rows of a key group written by [`WindowBuffer::snapshot`].
    pub(super) fn restore(&mut self, key_group: KeyGroup, bytes: &[u8]) -> Result<(), WindowError> {
        let fail = |reason: String| WindowError::State { key_group, reason };
        let reader = StreamReader::try_new(bytes, None).map_err(|e| fail(e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| fail(e.to_string()))?;
            if batch.schema_ref().fields().len() != self.schema.fields().len() {
                return Err(fail(format!(
                    "{} columns saved, {} expected",
                    batch.num_columns(),
                    self.schema.fields().len()
                )));
            }
            let batch = batch
                .with_schema(Arc::clone(&self.schema))
                .map_err(|e| fail(e.to_string()))?;
            self.insert(&batch, i64::MIN)?;
        }
        Ok(())
    }
}
