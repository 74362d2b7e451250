//! The streaming join: both sides as multisets of rows per join key, each input row joined
//! against the other side's rows as it arrives.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Builder};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;

use super::rows::{
    FixedHashMap, KeyEncoder, RowGather, changelog_batch, decode_state, encode_state,
    key_group_of_key, put_section, state_schema, take_section,
};
use super::{JoinError, JoinOperator, JoinSide, JoinType, SideState};
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::keys::KeyGroup;
use crate::relational::expr::{EvalContext, PhysicalExprRef, evaluate_to_array};

/// The counters of a snapshot's rows.
const COUNTERS: [&str; 2] = ["__count", "__matches"];

/// The kept rows of one join key on one side.
#[derive(Debug)]
pub(super) struct KeyRows {
    key_group: KeyGroup,
    /// Each distinct row (Arrow row format) and its counters.
    rows: FixedHashMap<Box<[u8]>, RowCounts>,
}

/// How often a row is present, and how many rows of the other side (with multiplicity) it
/// matches, the filter applied.
#[derive(Debug, Clone, Copy, Default)]
struct RowCounts {
    count: u64,
    matches: u64,
}

/// The rows and row kinds one input batch produces.
struct Emitter {
    left_only: bool,
    kinds: Vec<RowKind>,
    left: RowGather,
    right: RowGather,
}

impl Emitter {
    /// Emits `times` copies of a joined row, given as the input side's and the other side's
    /// parts (`None` pads with nulls).
    fn pair(
        &mut self,
        kind: RowKind,
        side: JoinSide,
        this: Option<&[u8]>,
        other: Option<&[u8]>,
        times: u64,
    ) {
        let (left, right) = match side {
            JoinSide::Left => (this, other),
            JoinSide::Right => (other, this),
        };
        match left {
            Some(row) => self.left.push(row, times),
            None => self.left.push_null(times),
        }
        if !self.left_only {
            match right {
                Some(row) => self.right.push(row, times),
                None => self.right.push_null(times),
            }
        }
        self.kinds.extend(std::iter::repeat_n(kind, times as usize));
    }
}

/// Evaluates the filter on every (input row, kept row of the other side with the same key)
/// pair, in the order the second pass visits them.
#[allow(clippy::too_many_arguments)]
fn filter_pairs(
    filter: &PhysicalExprRef,
    eval: &mut EvalContext,
    pair_schema: &SchemaRef,
    side: JoinSide,
    columns: &[ArrayRef],
    keys: &KeyEncoder,
    null_equals_null: bool,
    other: &SideState,
) -> Result<Vec<bool>, JoinError> {
    let mut probe = UInt32Builder::new();
    let mut gather = RowGather::default();
    for i in 0..columns.first().map_or(0, |c| c.len()) {
        if !null_equals_null && keys.has_null(i) {
            continue;
        }
        if let Some(entry) = other.table.get(keys.key(i)) {
            for row in entry.rows.keys() {
                probe.append_value(i as u32);
                gather.push(row, 1);
            }
        }
    }
    let pairs = gather.len();
    if pairs == 0 {
        return Ok(Vec::new());
    }
    let probe = probe.finish();
    let mut this_columns = columns
        .iter()
        .map(|c| take(c.as_ref(), &probe, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(JoinError::arrow("gathering rows for the join filter"))?;
    let mut other_columns = gather
        .finish(&other.converter, other.schema.fields())
        .map_err(JoinError::arrow("decoding kept rows for the join filter"))?;
    let joined = match side {
        JoinSide::Left => {
            this_columns.append(&mut other_columns);
            this_columns
        }
        JoinSide::Right => {
            other_columns.append(&mut this_columns);
            other_columns
        }
    };
    let batch = RecordBatch::try_new(Arc::clone(pair_schema), joined).map_err(JoinError::arrow(
        "assembling joined rows for the join filter",
    ))?;
    let result = evaluate_to_array(filter.as_ref(), &batch, eval)?;
    // Rows that failed under the skip policy evaluate to null, which does not match.
    eval.take_failed_rows();
    let result = result
        .as_boolean_opt()
        .ok_or_else(|| JoinError::FilterNotBoolean {
            found: result.data_type().clone(),
        })?;
    Ok((0..pairs)
        .map(|j| result.is_valid(j) && result.value(j))
        .collect())
}

impl JoinOperator {
    /// Joins one input batch against the other side's state, updates the state and returns
    /// the changes to the output.
    pub(super) fn process_streaming(
        &mut self,
        side: JoinSide,
        batch: ChangelogBatch,
    ) -> Result<Option<ChangelogBatch>, JoinError> {
        let JoinOperator {
            join_type,
            null_equals_null,
            filter,
            eval,
            output_schema,
            pair_schema,
            left,
            right,
            max_parallelism,
            ..
        } = self;
        let (join_type, null_equals_null) = (*join_type, *null_equals_null);
        let (this, other) = match side {
            JoinSide::Left => (&mut *left, &mut *right),
            JoinSide::Right => (&mut *right, &mut *left),
        };
        let other_side = side.other();
        let columns = batch.data().columns();
        this.keys.encode(columns)?;
        let rows = this
            .converter
            .convert_columns(columns)
            .map_err(JoinError::arrow("encoding input rows"))?;
        let passes = match filter {
            Some(filter) => Some(filter_pairs(
                filter,
                eval,
                pair_schema,
                side,
                columns,
                &this.keys,
                null_equals_null,
                other,
            )?),
            None => None,
        };

        let semi_like = join_type.is_left_only();
        let pad_this = join_type.preserves(side);
        let pad_other = join_type.preserves(other_side);
        let mut emit = Emitter {
            left_only: semi_like,
            kinds: Vec::new(),
            left: RowGather::default(),
            right: RowGather::default(),
        };
        let mut cursor = 0;
        for i in 0..batch.num_rows() {
            let accumulate = batch.row_kind(i).is_accumulate();
            let key = this.keys.key(i);
            let row = rows.row(i).data();
            let can_match = null_equals_null || !this.keys.has_null(i);
            let other_rows = if can_match {
                other.table.get_mut(key)
            } else {
                None
            };
            if !accumulate {
                let present = this
                    .table
                    .get(key)
                    .and_then(|entry| entry.rows.get(row))
                    .is_some_and(|c| c.count > 0);
                if !present {
                    // A retraction of a row that is not there: nothing to withdraw.
                    cursor += other_rows.map_or(0, |entry| entry.rows.len());
                    continue;
                }
            }
            let mut matched = 0u64;
            for (other_row, counts) in other_rows.into_iter().flat_map(|e| e.rows.iter_mut()) {
                let pass = passes.as_ref().is_none_or(|p| p[cursor]);
                cursor += 1;
                if !pass {
                    continue;
                }
                matched += counts.count;
                if semi_like {
                    if side == JoinSide::Right {
                        // `other_row` is a left row: it may gain its first or lose its last match.
                        let (gained, lost) = if join_type == JoinType::Semi {
                            (RowKind::Insert, RowKind::Delete)
                        } else {
                            (RowKind::Delete, RowKind::Insert)
                        };
                        if accumulate {
                            if counts.matches == 0 {
                                emit.pair(gained, other_side, Some(other_row), None, counts.count);
                            }
                            counts.matches += 1;
                        } else {
                            counts.matches = counts.matches.saturating_sub(1);
                            if counts.matches == 0 {
                                emit.pair(lost, other_side, Some(other_row), None, counts.count);
                            }
                        }
                    }
                } else if accumulate {
                    if pad_other && counts.matches == 0 {
                        emit.pair(RowKind::Delete, side, None, Some(other_row), counts.count);
                    }
                    emit.pair(
                        RowKind::Insert,
                        side,
                        Some(row),
                        Some(other_row),
                        counts.count,
                    );
                    counts.matches += 1;
                } else {
                    emit.pair(
                        RowKind::Delete,
                        side,
                        Some(row),
                        Some(other_row),
                        counts.count,
                    );
                    counts.matches = counts.matches.saturating_sub(1);
                    if pad_other && counts.matches == 0 {
                        emit.pair(RowKind::Insert, side, None, Some(other_row), counts.count);
                    }
                }
            }

            let kind = if accumulate {
                RowKind::Insert
            } else {
                RowKind::Delete
            };
            let emits_alone = if semi_like {
                side == JoinSide::Left && ((join_type == JoinType::Semi) == (matched > 0))
            } else {
                pad_this && matched == 0
            };
            if emits_alone {
                emit.pair(kind, side, Some(row), None, 1);
            }

            if accumulate {
                let entry = this.table.entry_ref(key).or_insert_with(|| KeyRows {
                    key_group: key_group_of_key(key, *max_parallelism),
                    rows: FixedHashMap::default(),
                });
                let counts = entry.rows.entry_ref(row).or_default();
                counts.count += 1;
                counts.matches = matched;
            } else if let Some(entry) = this.table.get_mut(key) {
                if let Some(counts) = entry.rows.get_mut(row) {
                    counts.count -= 1;
                    counts.matches = matched;
                    if counts.count == 0 {
                        entry.rows.remove(row);
                    }
                }
                if entry.rows.is_empty() {
                    this.table.remove(key);
                }
            }
        }

        if emit.kinds.is_empty() {
            return Ok(None);
        }
        let mut columns = emit
            .left
            .finish(&left.converter, left.schema.fields())
            .map_err(JoinError::arrow("decoding joined left rows"))?;
        if !semi_like {
            columns.extend(
                emit.right
                    .finish(&right.converter, right.schema.fields())
                    .map_err(JoinError::arrow("decoding joined right rows"))?,
            );
        }
        changelog_batch(output_schema, columns, &emit.kinds).map(Some)
    }

    /// One blob per key group: for each side (left, then right) a length-prefixed Arrow IPC
    /// stream of its rows with their count and match count (empty when the side has none).
    pub(super) fn snapshot_streaming(&mut self) -> Result<BTreeMap<KeyGroup, Vec<u8>>, JoinError> {
        type Kept<'a> = Vec<(&'a [u8], RowCounts)>;
        let mut by_group: BTreeMap<KeyGroup, [Kept<'_>; 2]> = BTreeMap::new();
        for (slot, side) in [&self.left, &self.right].into_iter().enumerate() {
            for entry in side.table.values() {
                let kept = &mut by_group.entry(entry.key_group).or_default()[slot];
                kept.extend(entry.rows.iter().map(|(row, c)| (row.as_ref(), *c)));
            }
        }
        let schemas = [
            state_schema(&self.left.schema, &COUNTERS),
            state_schema(&self.right.schema, &COUNTERS),
        ];
        let mut blobs = BTreeMap::new();
        for (key_group, sides) in by_group {
            let mut blob = Vec::new();
            for ((kept, side), schema) in sides.iter().zip([&self.left, &self.right]).zip(&schemas)
            {
                let mut section = Vec::new();
                if !kept.is_empty() {
                    let mut gather = RowGather::default();
                    for (row, _) in kept {
                        gather.push(row, 1);
                    }
                    let columns = gather
                        .finish(&side.converter, side.schema.fields())
                        .and_then(|columns| {
                            let counts = kept.iter().map(|(_, c)| c.count).collect();
                            let matches = kept.iter().map(|(_, c)| c.matches).collect();
                            encode_state(schema, columns, vec![counts, matches], &mut section)
                        });
                    columns.map_err(JoinError::arrow("writing the join state"))?;
                }
                put_section(&mut blob, &section);
            }
            blobs.insert(key_group, blob);
        }
        Ok(blobs)
    }

    /// Adds the rows of one key group's blob to the state.
    pub(super) fn restore_streaming(
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
                decode_state(section, COUNTERS.len()).map_err(|e| corrupt(e.to_string()))?;
            side.keys.encode(&columns)?;
            let rows = side
                .converter
                .convert_columns(&columns)
                .map_err(|e| corrupt(e.to_string()))?;
            for (i, (&count, &matches)) in counters[0].iter().zip(&counters[1]).enumerate() {
                let key = side.keys.key(i);
                let found = key_group_of_key(key, self.max_parallelism);
                if found != key_group {
                    return Err(corrupt(format!(
                        "a row of key group {found} was stored under this one; restore with the max parallelism the checkpoint was taken with"
                    )));
                }
                let entry = side.table.entry_ref(key).or_insert_with(|| KeyRows {
                    key_group,
                    rows: FixedHashMap::default(),
                });
                let counts = entry.rows.entry_ref(rows.row(i).data()).or_default();
                counts.count += count;
                counts.matches = matches;
            }
        }
        Ok(())
    }
}
