//! The batch join: build a hash table over the right input's keys, probe it with the left
//! input, and gather the output with `take`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::SchemaRef;
use hashbrown::HashTable;

use super::rows::{
    FixedHashMap, KeyEncoder, changelog_batch, decode_state, encode_state, key_group_of_key,
    put_section, state_schema, take_section,
};
use super::{JoinError, JoinOperator, JoinType, SideState};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::keys::{KeyGroup, hash_key_bytes};
use crate::relational::expr::evaluate_to_array;

/// Rows per output batch, and joined pairs per filter evaluation.
const CHUNK_ROWS: usize = 32 * 1024;

/// The end of a chain of build rows.
const END: u32 = u32::MAX;

/// The counter of a buffered row in a snapshot: its row kind.
const KIND_COUNTER: [&str; 1] = ["__row_kind"];

/// A hash table over the build side's encoded keys: for each distinct key its first row, and
/// for each row the next row with the same key, so a probe walks the matches in row order.
struct BuildTable {
    /// `(hash, first row)` per distinct key.
    heads: HashTable<(u64, u32)>,
    /// The next build row with the same key, or [`END`].
    next: Vec<u32>,
}

impl BuildTable {
    fn build(keys: &KeyEncoder, rows: usize, null_equals_null: bool) -> Self {
        let mut heads: HashTable<(u64, u32)> = HashTable::with_capacity(rows);
        let mut next = vec![END; rows];
        // Insert back to front so every chain runs in ascending row order.
        for row in (0..rows).rev() {
            if !null_equals_null && keys.has_null(row) {
                continue;
            }
            let key = keys.key(row);
            let hash = hash_key_bytes(key);
            match heads.find_mut(hash, |&(h, head)| {
                h == hash && keys.key(head as usize) == key
            }) {
                Some(head) => {
                    next[row] = head.1;
                    head.1 = row as u32;
                }
                None => {
                    heads.insert_unique(hash, (hash, row as u32), |&(h, _)| h);
                }
            }
        }
        BuildTable { heads, next }
    }

    /// Appends every (probe row, build row) pair with equal keys to `probe_rows` / `build_rows`.
    fn probe(
        &self,
        build_keys: &KeyEncoder,
        probe_keys: &KeyEncoder,
        rows: usize,
        null_equals_null: bool,
        probe_rows: &mut Vec<u32>,
        build_rows: &mut Vec<u32>,
    ) {
        for row in 0..rows {
            if !null_equals_null && probe_keys.has_null(row) {
                continue;
            }
            let key = probe_keys.key(row);
            let hash = hash_key_bytes(key);
            let Some(&(_, head)) = self.heads.find(hash, |&(h, head)| {
                h == hash && build_keys.key(head as usize) == key
            }) else {
                continue;
            };
            let mut build = head;
            while build != END {
                probe_rows.push(row as u32);
                build_rows.push(build);
                build = self.next[build as usize];
            }
        }
    }
}

/// Row indices into one input, `None` for a null-padded row.
struct Indices {
    values: Vec<u32>,
    /// Validity per row; `None` while every index is valid.
    valid: Option<Vec<bool>>,
}

impl Indices {
    fn all_valid(values: Vec<u32>) -> Self {
        Indices {
            values,
            valid: None,
        }
    }

    fn push(&mut self, index: Option<u32>) {
        if index.is_none() && self.valid.is_none() {
            self.valid = Some(vec![true; self.values.len()]);
        }
        self.values.push(index.unwrap_or(0));
        if let Some(valid) = &mut self.valid {
            valid.push(index.is_some());
        }
    }

    /// The indices of rows `start..start + len` as an Arrow array.
    fn slice(&self, start: usize, len: usize) -> UInt32Array {
        let values = ScalarBuffer::from(self.values[start..start + len].to_vec());
        let nulls = self
            .valid
            .as_ref()
            .map(|valid| NullBuffer::from(&valid[start..start + len]));
        UInt32Array::new(values, nulls)
    }
}

/// The input's buffered batches as one batch, retractions applied: each distinct row as often
/// as it is inserted minus retracted (a retraction of an absent row is ignored), in order of
/// first appearance.
fn consolidate(side: &mut SideState) -> Result<RecordBatch, JoinError> {
    let batches = std::mem::take(&mut side.buffered);
    let data = concat_batches(&side.schema, batches.iter().map(|b| b.data()))
        .map_err(JoinError::arrow("concatenating the buffered input"))?;
    if batches.iter().all(ChangelogBatch::is_insert_only) {
        return Ok(data);
    }
    let rows = side
        .converter
        .convert_columns(data.columns())
        .map_err(JoinError::arrow("encoding buffered rows"))?;
    let kinds = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| b.row_kind(i).is_accumulate()));
    let mut slots: FixedHashMap<&[u8], usize> = FixedHashMap::default();
    let mut counted: Vec<(u32, u64)> = Vec::new();
    for (i, accumulate) in kinds.enumerate() {
        let slot = *slots.entry(rows.row(i).data()).or_insert_with(|| {
            counted.push((i as u32, 0));
            counted.len() - 1
        });
        let count = &mut counted[slot].1;
        if accumulate {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
    }
    let indices: UInt32Array = counted
        .iter()
        .flat_map(|&(first, count)| std::iter::repeat_n(first, count as usize))
        .collect();
    arrow::compute::take_record_batch(&data, &indices)
        .map_err(JoinError::arrow("consolidating the buffered input"))
}

/// The rows of `batch` at `indices`; null indices give null rows.
fn take_columns(batch: &RecordBatch, indices: &UInt32Array) -> Result<Vec<ArrayRef>, JoinError> {
    if batch.num_rows() == 0 {
        // Only null indices can point into an empty input, and `take` cannot read them there.
        return Ok(batch
            .columns()
            .iter()
            .map(|c| new_null_array(c.data_type(), indices.len()))
            .collect());
    }
    batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), indices, None))
        .collect::<Result<_, _>>()
        .map_err(JoinError::arrow("gathering joined rows"))
}

impl JoinOperator {
    /// Joins the buffered inputs: the right side is the build side, the left side probes.
    pub(super) fn finish_batch(&mut self) -> Result<Vec<ChangelogBatch>, JoinError> {
        let left = consolidate(&mut self.left)?;
        let right = consolidate(&mut self.right)?;
        self.right.keys.encode(right.columns())?;
        self.left.keys.encode(left.columns())?;
        let table = BuildTable::build(&self.right.keys, right.num_rows(), self.null_equals_null);
        let mut probe_rows = Vec::new();
        let mut build_rows = Vec::new();
        table.probe(
            &self.right.keys,
            &self.left.keys,
            left.num_rows(),
            self.null_equals_null,
            &mut probe_rows,
            &mut build_rows,
        );
        drop(table);
        if let Some(filter) = &self.filter {
            let mut kept = 0;
            for start in (0..probe_rows.len()).step_by(CHUNK_ROWS) {
                let len = CHUNK_ROWS.min(probe_rows.len() - start);
                let l = UInt32Array::from(probe_rows[start..start + len].to_vec());
                let r = UInt32Array::from(build_rows[start..start + len].to_vec());
                let mut columns = take_columns(&left, &l)?;
                columns.extend(take_columns(&right, &r)?);
                let pairs = RecordBatch::try_new(Arc::clone(&self.pair_schema), columns).map_err(
                    JoinError::arrow("assembling joined rows for the join filter"),
                )?;
                let result = evaluate_to_array(filter.as_ref(), &pairs, &mut self.eval)?;
                self.eval.take_failed_rows();
                let result =
                    result
                        .as_boolean_opt()
                        .ok_or_else(|| JoinError::FilterNotBoolean {
                            found: result.data_type().clone(),
                        })?;
                for j in 0..len {
                    if result.is_valid(j) && result.value(j) {
                        probe_rows[kept] = probe_rows[start + j];
                        build_rows[kept] = build_rows[start + j];
                        kept += 1;
                    }
                }
            }
            probe_rows.truncate(kept);
            build_rows.truncate(kept);
        }

        let matched = |rows: &[u32], of: usize| {
            let mut matched = vec![false; of];
            for &row in rows {
                matched[row as usize] = true;
            }
            matched
        };
        let (left_indices, right_indices) = match self.join_type {
            JoinType::Semi | JoinType::Anti => {
                let want = self.join_type == JoinType::Semi;
                let matched = matched(&probe_rows, left.num_rows());
                let rows = (0..left.num_rows() as u32)
                    .filter(|&row| matched[row as usize] == want)
                    .collect();
                (Indices::all_valid(rows), None)
            }
            join_type => {
                let pad_left = join_type.preserves(super::JoinSide::Left);
                let pad_right = join_type.preserves(super::JoinSide::Right);
                let left_matched = pad_left.then(|| matched(&probe_rows, left.num_rows()));
                let right_matched = pad_right.then(|| matched(&build_rows, right.num_rows()));
                let mut l = Indices::all_valid(probe_rows);
                let mut r = Indices::all_valid(build_rows);
                if let Some(matched) = left_matched {
                    for row in (0..left.num_rows()).filter(|&row| !matched[row]) {
                        l.push(Some(row as u32));
                        r.push(None);
                    }
                }
                if let Some(matched) = right_matched {
                    for row in (0..right.num_rows()).filter(|&row| !matched[row]) {
                        l.push(None);
                        r.push(Some(row as u32));
                    }
                }
                (l, Some(r))
            }
        };

        let total = left_indices.values.len();
        let mut batches = Vec::with_capacity(total.div_ceil(CHUNK_ROWS));
        for start in (0..total).step_by(CHUNK_ROWS) {
            let len = CHUNK_ROWS.min(total - start);
            let mut columns = take_columns(&left, &left_indices.slice(start, len))?;
            if let Some(right_indices) = &right_indices {
                columns.extend(take_columns(&right, &right_indices.slice(start, len))?);
            }
            let kinds = vec![RowKind::Insert; len];
            batches.push(changelog_batch(&self.output_schema, columns, &kinds)?);
        }
        Ok(batches)
    }

    /// One blob per key group: for each side (left, then right) a length-prefixed Arrow IPC
    /// stream of its buffered rows and their row kinds.
    pub(super) fn snapshot_buffered(&mut self) -> Result<BTreeMap<KeyGroup, Vec<u8>>, JoinError> {
        let max_parallelism = self.max_parallelism;
        let mut by_group: BTreeMap<KeyGroup, [Vec<u8>; 2]> = BTreeMap::new();
        for (slot, side) in [&mut self.left, &mut self.right].into_iter().enumerate() {
            if side.buffered.is_empty() {
                continue;
            }
            let data = concat_batches(&side.schema, side.buffered.iter().map(|b| b.data()))
                .map_err(JoinError::arrow("concatenating the buffered input"))?;
            let kinds: Vec<u64> = side
                .buffered
                .iter()
                .flat_map(|b| (0..b.num_rows()).map(move |i| b.row_kind(i) as u64))
                .collect();
            side.keys.encode(data.columns())?;
            let mut rows_of: BTreeMap<KeyGroup, Vec<u32>> = BTreeMap::new();
            for row in 0..data.num_rows() {
                let key_group = key_group_of_key(side.keys.key(row), max_parallelism);
                rows_of.entry(key_group).or_default().push(row as u32);
            }
            let schema = state_schema(&side.schema, &KIND_COUNTER);
            for (key_group, rows) in rows_of {
                let kinds = rows.iter().map(|&r| kinds[r as usize]).collect();
                let columns = take_columns(&data, &UInt32Array::from(rows))?;
                let section = &mut by_group.entry(key_group).or_default()[slot];
                encode_state(&schema, columns, vec![kinds], section)
                    .map_err(JoinError::arrow("writing the buffered join input"))?;
            }
        }
        Ok(by_group
            .into_iter()
            .map(|(key_group, sections)| {
                let mut blob = Vec::new();
                for section in &sections {
                    put_section(&mut blob, section);
                }
                (key_group, blob)
            })
            .collect())
    }

    /// Adds the buffered rows of one key group's blob.
    pub(super) fn restore_buffered(
        &mut self,
        key_group: KeyGroup,
        blob: &[u8],
    ) -> Result<(), JoinError> {
        let corrupt = |message: String| JoinError::CorruptState { key_group, message };
        let mut rest = blob;
        for side in [&mut self.left, &mut self.right] {
            let section = take_section(&mut rest)
                .ok_or_else(|| corrupt("the blob is truncated".to_owned()))?;
            if section.is_empty() {
                continue;
            }
            let (columns, counters) =
                decode_state(section, KIND_COUNTER.len()).map_err(|e| corrupt(e.to_string()))?;
            let schema: SchemaRef = Arc::clone(&side.schema);
            let data = RecordBatch::try_new(schema, columns).map_err(|e| corrupt(e.to_string()))?;
            let kinds = counters[0]
                .iter()
                .map(|&code| {
                    i8::try_from(code)
                        .ok()
                        .and_then(RowKind::from_code)
                        .ok_or_else(|| corrupt(format!("invalid row kind {code}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let batch =
                ChangelogBatch::from_kinds(data, &kinds).map_err(|e| corrupt(e.to_string()))?;
            side.buffered.push(batch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_pad_with_nulls_even_when_empty_before() {
        let mut indices = Indices::all_valid(Vec::new());
        indices.push(None);
        assert!(indices.slice(0, 1).is_null(0));
    }

    #[test]
    fn indices_pad_with_nulls_after_valid_rows() {
        let mut indices = Indices::all_valid(vec![3, 1]);
        indices.push(None);
        indices.push(Some(2));
        let array = indices.slice(1, 3);
        assert_eq!(array.len(), 3);
        assert_eq!(array.value(0), 1);
        assert!(array.is_null(1));
        assert_eq!(array.value(2), 2);
    }
}
