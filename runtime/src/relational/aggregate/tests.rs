//! Tests of group aggregation against a plain-Rust reference.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int8Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, SchemaRef,
};
use proptest::prelude::*;

use super::*;
use crate::error::BoxError;
use crate::exchange::{ArrowKeySelector, BatchKeySelector};
use crate::keys::subtask_for_key_group;
use crate::operator::testing::RecordingOutput;
use crate::relational::function::Accumulator;
use crate::relational::scalar::ScalarValue;
use crate::{ChangelogBatch, Operator, OperatorContext, RowKind};

/// One cell of an output row, comparable and printable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Val {
    Null,
    Int(i64),
    Float(u64),
    Dec(i128),
    Str(String),
    Bool(bool),
}

fn cell(array: &ArrayRef, row: usize) -> Val {
    if array.is_null(row) {
        return Val::Null;
    }
    match array.data_type() {
        DataType::Int64 => Val::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Val::Float(array.as_primitive::<Float64Type>().value(row).to_bits()),
        DataType::Decimal128(..) => Val::Dec(array.as_primitive::<Decimal128Type>().value(row)),
        DataType::Utf8 => Val::Str(array.as_string::<i32>().value(row).to_owned()),
        DataType::Boolean => Val::Bool(array.as_boolean().value(row)),
        other => panic!("no test cell for {other}"),
    }
}

fn rows_of(batch: &ChangelogBatch) -> Vec<(RowKind, Vec<Val>)> {
    (0..batch.num_rows())
        .map(|row| {
            let values = batch
                .data()
                .columns()
                .iter()
                .map(|c| cell(c, row))
                .collect();
            (batch.row_kind(row), values)
        })
        .collect()
}

/// Applies a changelog to a consolidated table, checking it only retracts what it emitted.
fn consolidate(table: &mut BTreeMap<Vec<Val>, i64>, rows: &[(RowKind, Vec<Val>)]) {
    for (kind, row) in rows {
        let count = table.entry(row.clone()).or_insert(0);
        if kind.is_accumulate() {
            *count += 1;
        } else {
            assert!(*count > 0, "retracted {row:?}, which was not emitted");
            *count -= 1;
        }
        if *count == 0 {
            table.remove(row);
        }
    }
}

/// A user aggregate: the sum of squares of the non-null values, null without values.
#[derive(Debug)]
struct SumOfSquares;

#[derive(Debug, Default)]
struct SumOfSquaresAcc {
    sum: i64,
    count: i64,
}

impl AggregateUdf for SumOfSquares {
    fn name(&self) -> &str {
        "sum_of_squares"
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType, String> {
        Ok(DataType::Int64)
    }
    fn create_accumulator(&self, _args: &[DataType]) -> Box<dyn Accumulator> {
        Box::new(SumOfSquaresAcc::default())
    }
    fn supports_retract(&self) -> bool {
        true
    }
}

impl Accumulator for SumOfSquaresAcc {
    fn accumulate(&mut self, args: &[ScalarValue]) -> Result<(), BoxError> {
        if let ScalarValue::Int64(v) = args[0] {
            self.sum = self.sum.wrapping_add(v.wrapping_mul(v));
            self.count += 1;
        }
        Ok(())
    }
    fn retract(&mut self, args: &[ScalarValue]) -> Result<(), BoxError> {
        if let ScalarValue::Int64(v) = args[0] {
            self.sum = self.sum.wrapping_sub(v.wrapping_mul(v));
            self.count -= 1;
        }
        Ok(())
    }
    fn merge(&mut self, state: &[ScalarValue]) -> Result<(), BoxError> {
        match state {
            [ScalarValue::Int64(sum), ScalarValue::Int64(count)] => {
                self.sum += sum;
                self.count += count;
                Ok(())
            }
            other => Err(format!("bad state {other:?}").into()),
        }
    }
    fn state(&self) -> Vec<ScalarValue> {
        vec![ScalarValue::Int64(self.sum), ScalarValue::Int64(self.count)]
    }
    fn value(&self) -> Result<ScalarValue, BoxError> {
        Ok(if self.count == 0 {
            ScalarValue::Null(DataType::Int64)
        } else {
            ScalarValue::Int64(self.sum)
        })
    }
}

/// One input row: key, second key, value, flag, decimal.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    k: Option<i64>,
    tag: Option<String>,
    v: Option<i64>,
    flag: Option<bool>,
    dec: Option<i128>,
}

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("tag", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("dec", DataType::Decimal128(10, 2), true),
    ]))
}

fn batch_of(rows: &[(RowKind, Row)]) -> ChangelogBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|(_, r)| r.k).collect::<Int64Array>()),
        Arc::new(
            rows.iter()
                .map(|(_, r)| r.tag.clone())
                .collect::<StringArray>(),
        ),
        Arc::new(rows.iter().map(|(_, r)| r.v).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|(_, r)| r.flag).collect::<BooleanArray>()),
        Arc::new(
            rows.iter()
                .map(|(_, r)| r.dec)
                .collect::<Decimal128Array>()
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
    ];
    let data = RecordBatch::try_new(input_schema(), columns).unwrap();
    let kinds = Int8Array::from_iter_values(rows.iter().map(|(k, _)| *k as i8));
    ChangelogBatch::with_row_kinds(data, kinds).unwrap()
}

/// The aggregates under test, over group columns `groups`.
fn spec(groups: &[usize], emit: EmitMode) -> GroupAggregateSpec {
    let input = input_schema();
    let int = |name: &str| Field::new(name, DataType::Int64, true);
    let calls = vec![
        AggregateCall::new(
            AggregateKind::CountStar,
            [],
            Field::new("n", DataType::Int64, false),
        ),
        AggregateCall::new(
            AggregateKind::Count,
            [2],
            Field::new("nv", DataType::Int64, false),
        ),
        AggregateCall::new(AggregateKind::Sum, [2], int("sum")),
        AggregateCall::new(AggregateKind::Min, [2], int("min")),
        AggregateCall::new(AggregateKind::Max, [2], int("max")),
        AggregateCall::new(
            AggregateKind::Avg,
            [2],
            Field::new("avg", DataType::Float64, true),
        ),
        AggregateCall::new(
            AggregateKind::Count,
            [2],
            Field::new("nd", DataType::Int64, false),
        )
        .distinct(),
        AggregateCall::new(AggregateKind::Sum, [2], int("sd")).distinct(),
        AggregateCall::new(
            AggregateKind::CountStar,
            [],
            Field::new("nf", DataType::Int64, false),
        )
        .with_filter(3),
        AggregateCall::new(
            AggregateKind::Max,
            [1],
            Field::new("mt", DataType::Utf8, true),
        ),
        AggregateCall::new(AggregateKind::User(Arc::new(SumOfSquares)), [2], int("sq")),
        AggregateCall::new(
            AggregateKind::Avg,
            [4],
            Field::new("ad", DataType::Decimal128(14, 6), true),
        ),
        AggregateCall::new(
            AggregateKind::Min,
            [3],
            Field::new("mb", DataType::Boolean, true),
        )
        .with_filter(3),
    ];
    let mut fields: Vec<Field> = groups.iter().map(|&g| input.field(g).clone()).collect();
    fields.extend(calls.iter().map(|c| c.output.clone()));
    GroupAggregateSpec {
        group_columns: groups.to_vec(),
        aggregates: calls,
        input_schema: input,
        output_schema: Arc::new(Schema::new(fields)),
        emit,
    }
}

/// The reference: the aggregates of `spec` over a multiset of rows, one output row per group.
fn reference(rows: &[Row], groups: &[usize], global_row: bool) -> BTreeMap<Vec<Val>, i64> {
    let key = |r: &Row| -> Vec<Val> {
        groups
            .iter()
            .map(|&g| match g {
                0 => r.k.map_or(Val::Null, Val::Int),
                1 => r.tag.clone().map_or(Val::Null, Val::Str),
                _ => unreachable!(),
            })
            .collect()
    };
    let mut by_key: BTreeMap<Vec<Val>, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_key.entry(key(r)).or_default().push(r);
    }
    if global_row && groups.is_empty() && by_key.is_empty() {
        by_key.insert(Vec::new(), Vec::new());
    }
    let opt = |v: Option<i64>| v.map_or(Val::Null, Val::Int);
    let mut out = BTreeMap::new();
    for (key, rows) in by_key {
        let vs: Vec<i64> = rows.iter().filter_map(|r| r.v).collect();
        let mut distinct = vs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let sum: i64 = vs.iter().sum();
        let decs: Vec<i128> = rows.iter().filter_map(|r| r.dec).collect();
        let avg_dec = (!decs.is_empty()).then(|| {
            let scaled = decs.iter().sum::<i128>() * 10_000;
            let n = decs.len() as i128;
            let (q, r) = (scaled / n, scaled % n);
            if r.abs() * 2 >= n {
                q + scaled.signum()
            } else {
                q
            }
        });
        let flagged: Vec<bool> = rows.iter().filter_map(|r| r.flag).filter(|f| *f).collect();
        let mut row = key;
        row.extend([
            Val::Int(rows.len() as i64),
            Val::Int(vs.len() as i64),
            opt((!vs.is_empty()).then_some(sum)),
            opt(vs.iter().min().copied()),
            opt(vs.iter().max().copied()),
            if vs.is_empty() {
                Val::Null
            } else {
                Val::Float((sum as f64 / vs.len() as f64).to_bits())
            },
            Val::Int(distinct.len() as i64),
            opt((!distinct.is_empty()).then(|| distinct.iter().sum())),
            Val::Int(rows.iter().filter(|r| r.flag == Some(true)).count() as i64),
            rows.iter()
                .filter_map(|r| r.tag.clone())
                .max()
                .map_or(Val::Null, Val::Str),
            opt((!vs.is_empty()).then(|| vs.iter().map(|v| v * v).sum())),
            avg_dec.map_or(Val::Null, Val::Dec),
            flagged.first().map_or(Val::Null, |_| Val::Bool(true)),
        ]);
        out.insert(row, 1);
    }
    out
}

/// A random changelog history: batches of rows, where retractions only retract live rows.
fn history() -> impl Strategy<Value = Vec<Vec<(RowKind, Row)>>> {
    let row = (
        proptest::option::weighted(0.9, 0i64..4),
        proptest::option::weighted(0.8, "[ab]"),
        proptest::option::weighted(0.8, -4i64..5),
        proptest::option::weighted(0.8, any::<bool>()),
        proptest::option::weighted(0.8, -500i128..500),
    )
        .prop_map(|(k, tag, v, flag, dec)| Row {
            k,
            tag,
            v,
            flag,
            dec,
        });
    let action = (0u8..10, any::<bool>(), any::<prop::sample::Index>(), row);
    (
        proptest::collection::vec(action, 0..80),
        proptest::collection::vec(1usize..12, 1..20),
    )
        .prop_map(|(actions, sizes)| {
            let mut live: Vec<Row> = Vec::new();
            let mut changes = Vec::new();
            for (what, alt_kind, index, row) in actions {
                if what < 4 && !live.is_empty() {
                    let old = live.swap_remove(index.index(live.len()));
                    let kind = if alt_kind {
                        RowKind::Delete
                    } else {
                        RowKind::UpdateBefore
                    };
                    changes.push((kind, old));
                } else {
                    let kind = if alt_kind {
                        RowKind::Insert
                    } else {
                        RowKind::UpdateAfter
                    };
                    live.push(row.clone());
                    changes.push((kind, row));
                }
            }
            let mut batches = Vec::new();
            let mut rest = &changes[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let n = (*size).min(rest.len());
                batches.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            batches
        })
}

/// The live rows after applying `batches`.
fn live_rows(batches: &[Vec<(RowKind, Row)>]) -> Vec<Row> {
    let mut live: Vec<Row> = Vec::new();
    for (kind, row) in batches.iter().flatten() {
        if kind.is_accumulate() {
            live.push(row.clone());
        } else {
            let at = live
                .iter()
                .position(|r| r == row)
                .expect("retracts a live row");
            live.swap_remove(at);
        }
    }
    live
}

fn opened(spec: GroupAggregateSpec, subtask: usize, parallelism: usize) -> GroupAggregateOperator {
    let mut op = GroupAggregateOperator::new(spec).unwrap();
    op.open(&OperatorContext::new("agg", subtask, parallelism, 128))
        .unwrap();
    op
}

const GROUPINGS: [&[usize]; 3] = [&[0], &[0, 1], &[]];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Streaming: after every batch the consolidated changelog equals the reference.
    #[test]
    fn changelog_matches_reference_after_every_batch(batches in history(), grouping in 0usize..3) {
        let groups = GROUPINGS[grouping];
        let mut op = opened(spec(groups, EmitMode::Changelog), 0, 1);
        let mut out = RecordingOutput::default();
        let mut table = BTreeMap::new();
        for (i, batch) in batches.iter().enumerate() {
            let before = out.batches.len();
            op.process_batch(batch_of(batch), &mut out).unwrap();
            for emitted in &out.batches[before..] {
                consolidate(&mut table, &rows_of(emitted));
            }
            let expected = reference(&live_rows(&batches[..=i]), groups, false);
            prop_assert_eq!(&table, &expected, "after batch {}", i);
        }
        op.finish(&mut out).unwrap();
    }

    /// Batch: the final insert-only output equals the reference.
    #[test]
    fn final_output_matches_reference(batches in history(), grouping in 0usize..3) {
        let groups = GROUPINGS[grouping];
        let mut op = opened(spec(groups, EmitMode::Final), 0, 1);
        let mut out = RecordingOutput::default();
        for batch in &batches {
            op.process_batch(batch_of(batch), &mut out).unwrap();
        }
        prop_assert!(out.batches.is_empty());
        op.finish(&mut out).unwrap();
        let mut table = BTreeMap::new();
        for emitted in &out.batches {
            prop_assert!(emitted.is_insert_only());
            consolidate(&mut table, &rows_of(emitted));
        }
        prop_assert_eq!(table, reference(&live_rows(&batches), groups, true));
    }

    /// A snapshot after a prefix, restored into a fresh operator, continues exactly as the
    /// uninterrupted run.
    #[test]
    fn restore_continues_like_uninterrupted(batches in history(), cut in any::<prop::sample::Index>(), grouping in 0usize..3) {
        let groups = GROUPINGS[grouping];
        let cut = cut.index(batches.len() + 1);
        let run = |op: &mut GroupAggregateOperator, batches: &[Vec<(RowKind, Row)>]| {
            let mut out = RecordingOutput::default();
            for batch in batches {
                op.process_batch(batch_of(batch), &mut out).unwrap();
            }
            out.batches.iter().flat_map(rows_of).collect::<Vec<_>>()
        };
        let mut whole = opened(spec(groups, EmitMode::Changelog), 0, 1);
        run(&mut whole, &batches[..cut]);
        let expected = run(&mut whole, &batches[cut..]);

        let mut first = opened(spec(groups, EmitMode::Changelog), 0, 1);
        run(&mut first, &batches[..cut]);
        let state = first.snapshot_state(1).unwrap();
        let mut second = opened(spec(groups, EmitMode::Changelog), 0, 1);
        second.restore_state(&state).unwrap();
        prop_assert_eq!(second.group_count(), first.group_count());
        prop_assert_eq!(run(&mut second, &batches[cut..]), expected);
    }

    /// State snapshotted at parallelism 1 and restored at parallelism 2, with rows routed by
    /// the hash exchange, gives the same consolidated result.
    #[test]
    fn rescaled_restore_matches_reference(batches in history(), cut in any::<prop::sample::Index>()) {
        let groups: &[usize] = &[0, 1];
        let cut = cut.index(batches.len() + 1);
        let mut first = opened(spec(groups, EmitMode::Changelog), 0, 1);
        let mut table = BTreeMap::new();
        let mut out = RecordingOutput::default();
        for batch in &batches[..cut] {
            first.process_batch(batch_of(batch), &mut out).unwrap();
        }
        for emitted in &out.batches {
            consolidate(&mut table, &rows_of(emitted));
        }
        let state = first.snapshot_state(1).unwrap();
        let mut subtasks: Vec<GroupAggregateOperator> = (0..2)
            .map(|i| {
                let mut op = opened(spec(groups, EmitMode::Changelog), i, 2);
                op.restore_state(&state).unwrap();
                op
            })
            .collect();
        prop_assert_eq!(
            subtasks.iter().map(|s| s.group_count()).sum::<usize>(),
            first.group_count()
        );
        let mut selector = ArrowKeySelector::new(groups.iter().copied());
        for batch in &batches[cut..] {
            let batch = batch_of(batch);
            let mut key_groups = Vec::new();
            selector.key_groups(&batch, 128, &mut key_groups).unwrap();
            for (subtask, op) in subtasks.iter_mut().enumerate() {
                let rows: Vec<u32> = key_groups
                    .iter()
                    .enumerate()
                    .filter(|(_, kg)| subtask_for_key_group(128, 2, **kg) == subtask)
                    .map(|(row, _)| row as u32)
                    .collect();
                let part = batch.take(&rows.into()).unwrap();
                let mut out = RecordingOutput::default();
                op.process_batch(part, &mut out).unwrap();
                for emitted in &out.batches {
                    consolidate(&mut table, &rows_of(emitted));
                }
            }
        }
        prop_assert_eq!(table, reference(&live_rows(&batches), groups, false));
    }
}

fn insert(k: i64, v: Option<i64>) -> (RowKind, Row) {
    (
        RowKind::Insert,
        Row {
            k: Some(k),
            tag: None,
            v,
            flag: None,
            dec: None,
        },
    )
}

#[test]
fn emits_insert_update_and_delete() {
    let mut op = opened(spec(&[0], EmitMode::Changelog), 0, 1);
    let mut out = RecordingOutput::default();
    op.process_batch(
        batch_of(&[insert(1, Some(5)), insert(2, Some(7))]),
        &mut out,
    )
    .unwrap();
    let kinds: Vec<RowKind> = rows_of(&out.batches[0]).iter().map(|r| r.0).collect();
    assert_eq!(kinds, [RowKind::Insert, RowKind::Insert]);

    // Retract k=1's only row, change k=2.
    let (_, one) = insert(1, Some(5));
    op.process_batch(
        batch_of(&[(RowKind::Delete, one), insert(2, Some(1))]),
        &mut out,
    )
    .unwrap();
    let rows = rows_of(&out.batches[1]);
    let kinds: Vec<RowKind> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        kinds,
        [RowKind::Delete, RowKind::UpdateBefore, RowKind::UpdateAfter]
    );
    assert_eq!(rows[0].1[..3], [Val::Int(1), Val::Int(1), Val::Int(1)]);
    assert_eq!(
        rows[2].1[..4],
        [Val::Int(2), Val::Int(2), Val::Int(2), Val::Int(8)]
    );
    assert_eq!(op.group_count(), 1);
}

#[test]
fn unchanged_results_emit_nothing() {
    let input = input_schema();
    let spec = GroupAggregateSpec {
        group_columns: vec![0],
        aggregates: vec![AggregateCall::new(
            AggregateKind::Max,
            [2],
            Field::new("max", DataType::Int64, true),
        )],
        input_schema: Arc::clone(&input),
        output_schema: Arc::new(Schema::new(vec![
            input.field(0).clone(),
            Field::new("max", DataType::Int64, true),
        ])),
        emit: EmitMode::Changelog,
    };
    let mut op = opened(spec, 0, 1);
    let mut out = RecordingOutput::default();
    op.process_batch(batch_of(&[insert(1, Some(9))]), &mut out)
        .unwrap();
    op.process_batch(batch_of(&[insert(1, Some(3)), insert(1, None)]), &mut out)
        .unwrap();
    assert_eq!(out.batches.len(), 1);
}

#[test]
fn empty_global_aggregate_emits_one_row_at_the_end_of_input() {
    let mut op = opened(spec(&[], EmitMode::Final), 0, 1);
    let mut out = RecordingOutput::default();
    op.finish(&mut out).unwrap();
    let rows: Vec<_> = out.batches.iter().flat_map(rows_of).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1[..3], [Val::Int(0), Val::Int(0), Val::Null]);

    let mut op = opened(spec(&[], EmitMode::Changelog), 0, 1);
    let mut out = RecordingOutput::default();
    op.process_batch(batch_of(&[]), &mut out).unwrap();
    assert!(out.batches.is_empty(), "nothing before the first row");
    op.finish(&mut out).unwrap();
    let rows: Vec<_> = out.batches.iter().flat_map(rows_of).collect();
    assert_eq!(
        rows.len(),
        1,
        "the empty input's row at the end, as in batch mode"
    );
    assert_eq!(rows[0].0, RowKind::Insert);
    assert_eq!(rows[0].1[..3], [Val::Int(0), Val::Int(0), Val::Null]);

    // A global aggregate that has its row at the end adds nothing.
    let mut op = opened(spec(&[], EmitMode::Changelog), 0, 1);
    let mut out = RecordingOutput::default();
    op.process_batch(batch_of(&[insert(1, Some(9))]), &mut out)
        .unwrap();
    op.finish(&mut out).unwrap();
    assert_eq!(out.batches.len(), 1);
}

#[test]
fn averages_decimals_rounding_half_up() {
    let rows: Vec<(RowKind, Row)> = [100, 200, 200]
        .into_iter()
        .map(|d| {
            (
                RowKind::Insert,
                Row {
                    k: Some(1),
                    tag: None,
                    v: None,
                    flag: None,
                    dec: Some(d),
                },
            )
        })
        .collect();
    let mut op = opened(spec(&[0], EmitMode::Final), 0, 1);
    let mut out = RecordingOutput::default();
    op.process_batch(batch_of(&rows), &mut out).unwrap();
    op.finish(&mut out).unwrap();
    let avg = out.batches[0].data().column(12);
    assert_eq!(avg.data_type(), &DataType::Decimal128(14, 6));
    // (1.00 + 2.00 + 2.00) / 3 = 1.666667
    assert_eq!(cell(avg, 0), Val::Dec(1_666_667));
}

#[test]
fn retracting_an_absent_row_names_the_group() {
    let mut op = opened(spec(&[0], EmitMode::Changelog), 0, 1);
    let (_, row) = insert(3, Some(1));
    let error = op
        .process(&batch_of(&[(RowKind::Delete, row)]))
        .unwrap_err();
    assert!(
        matches!(&error, AggregateError::RetractedUnknownRow { group } if group == "(3)"),
        "{error}"
    );
}

#[test]
fn retracting_a_value_never_accumulated_names_the_aggregate() {
    let mut op = opened(spec(&[0], EmitMode::Changelog), 0, 1);
    op.process(&batch_of(&[insert(3, Some(1))])).unwrap();
    let (_, other) = insert(3, Some(2));
    let error = op
        .process(&batch_of(&[(RowKind::Delete, other)]))
        .unwrap_err();
    let message = error.to_string();
    // The multiset of MIN's values is the first state that knows 2 was never there.
    assert!(message.contains("MIN(v) AS min"), "{message}");
    assert!(message.contains("(3)"), "{message}");
}

#[test]
fn integer_sum_overflow_is_an_error() {
    let mut op = opened(spec(&[0], EmitMode::Changelog), 0, 1);
    let error = op
        .process(&batch_of(&[insert(1, Some(i64::MAX)), insert(1, Some(1))]))
        .unwrap_err();
    assert!(
        matches!(&error, AggregateError::Overflow { aggregate, .. } if aggregate == "SUM(v) AS sum"),
        "{error}"
    );
}

#[test]
fn rejects_mismatched_result_types() {
    let mut wrong = spec(&[0], EmitMode::Final);
    wrong.aggregates[2].output = Field::new("sum", DataType::Int32, true);
    let error = GroupAggregateOperator::new(wrong).unwrap_err();
    assert!(
        matches!(
            &error,
            AggregateError::OutputType {
                expected: DataType::Int64,
                ..
            }
        ),
        "{error}"
    );
    let mut wrong = spec(&[0], EmitMode::Final);
    wrong.aggregates[0].filter = Some(2);
    assert!(matches!(
        GroupAggregateOperator::new(wrong).unwrap_err(),
        AggregateError::FilterNotBoolean { .. }
    ));
}
