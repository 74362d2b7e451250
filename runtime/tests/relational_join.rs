//! The regular join and the set operations against plain-Rust references: batch results equal a
//! nested-loop join, streaming changelogs consolidate to it after every input batch, and a
//! snapshot restored into fresh operators (at parallelism 1 and 2) continues exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::kernels::cmp::lt_eq;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use proptest::prelude::*;
use rivulet_runtime::exchange::{ArrowKeySelector, BatchKeySelector};
use rivulet_runtime::keys::subtask_for_key_group;
use rivulet_runtime::operator::OperatorState;
use rivulet_runtime::operator::testing::RecordingOutput;
use rivulet_runtime::relational::{
    ColumnarValue, EvalContext, EvalError, JoinMode, JoinOperator, JoinSpec, JoinType,
    PhysicalExpr, SetOpOperator, SetOpType,
};
use rivulet_runtime::{ChangelogBatch, OperatorContext, RowKind, TwoInputOperator};

type Row = Vec<Option<i64>>;

const MAX_PARALLELISM: u16 = 128;

const JOIN_TYPES: [JoinType; 6] = [
    JoinType::Inner,
    JoinType::Left,
    JoinType::Right,
    JoinType::Full,
    JoinType::Semi,
    JoinType::Anti,
];

/// `column a <= column b` over the joined row.
#[derive(Debug)]
struct LessOrEqual(usize, usize);

impl fmt::Display for LessOrEqual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} <= #{}", self.0, self.1)
    }
}

impl PhysicalExpr for LessOrEqual {
    fn data_type(&self) -> DataType {
        DataType::Boolean
    }

    fn nullable(&self) -> bool {
        true
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        _ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let result = lt_eq(batch.column(self.0), batch.column(self.1))
            .map_err(|e| EvalError::arrow(self, e))?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

fn schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true))
            .collect::<Vec<_>>(),
    ))
}

fn batch(schema: &SchemaRef, rows: &[(RowKind, Row)]) -> ChangelogBatch {
    let columns: Vec<ArrayRef> = (0..schema.fields().len())
        .map(|c| Arc::new(Int64Array::from_iter(rows.iter().map(|(_, r)| r[c]))) as ArrayRef)
        .collect();
    let data = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let kinds: Vec<RowKind> = rows.iter().map(|(k, _)| *k).collect();
    ChangelogBatch::from_kinds(data, &kinds).unwrap()
}

fn rows_of(batch: &ChangelogBatch) -> Vec<(RowKind, Row)> {
    let data = batch.data();
    (0..data.num_rows())
        .map(|i| {
            let row = data
                .columns()
                .iter()
                .map(|c| {
                    let c = c.as_primitive::<Int64Type>();
                    c.is_valid(i).then(|| c.value(i))
                })
                .collect();
            (batch.row_kind(i), row)
        })
        .collect()
}

/// One input batch: which side (true = left) and its rows.
#[derive(Debug, Clone)]
struct Step {
    left: bool,
    rows: Vec<(RowKind, Row)>,
}

/// Raw generated input: per batch, the side and per row either a new row or a retraction of the
/// n-th live row of that side.
type RawSteps = Vec<(bool, Vec<(bool, u8, Row)>)>;

fn value() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 4 => (0i64..4).prop_map(Some)]
}

fn raw_steps(columns: usize) -> impl Strategy<Value = RawSteps> {
    let row = (
        any::<bool>(),
        any::<u8>(),
        prop::collection::vec(value(), columns),
    );
    prop::collection::vec((any::<bool>(), prop::collection::vec(row, 1..=7)), 1..=14)
}

/// Resolves retractions against the live rows, so every retraction withdraws an earlier row.
fn resolve(raw: RawSteps) -> Vec<Step> {
    let mut live: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
    raw.into_iter()
        .map(|(left, rows)| {
            let side = &mut live[usize::from(left)];
            let rows = rows
                .into_iter()
                .map(|(retract, pick, row)| {
                    if retract && !side.is_empty() {
                        let row = side.remove(usize::from(pick) % side.len());
                        let kind = if pick % 2 == 0 {
                            RowKind::Delete
                        } else {
                            RowKind::UpdateBefore
                        };
                        (kind, row)
                    } else {
                        side.push(row.clone());
                        let kind = if pick % 3 == 0 {
                            RowKind::UpdateAfter
                        } else {
                            RowKind::Insert
                        };
                        (kind, row)
                    }
                })
                .collect();
            Step { left, rows }
        })
        .collect()
}

/// The live rows of each side after `steps`.
fn live_rows(steps: &[Step]) -> (Vec<Row>, Vec<Row>) {
    let mut live: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
    for step in steps {
        let side = &mut live[usize::from(step.left)];
        for (kind, row) in &step.rows {
            if kind.is_accumulate() {
                side.push(row.clone());
            } else {
                let at = side
                    .iter()
                    .position(|r| r == row)
                    .expect("retracts a live row");
                side.remove(at);
            }
        }
    }
    let [right, left] = live;
    (left, right)
}

#[derive(Debug, Clone, Copy)]
struct Case {
    join_type: JoinType,
    filtered: bool,
    null_equals_null: bool,
}

/// The nested-loop join of `left (k, v)` and `right (k, w)` on `k`, with `v <= w` if filtered.
fn reference_join(case: Case, left: &[Row], right: &[Row]) -> Vec<Row> {
    let matches = |l: &Row, r: &Row| {
        let keys = match (l[0], r[0]) {
            (Some(a), Some(b)) => a == b,
            (None, None) => case.null_equals_null,
            _ => false,
        };
        let filter = !case.filtered || matches!((l[1], r[1]), (Some(v), Some(w)) if v <= w);
        keys && filter
    };
    let mut out = Vec::new();
    let pad = || vec![None, None];
    for l in left {
        let mut any = false;
        for r in right {
            if matches(l, r) {
                any = true;
                if !case.join_type.is_left_only() {
                    out.push([l.clone(), r.clone()].concat());
                }
            }
        }
        match case.join_type {
            JoinType::Semi if any => out.push(l.clone()),
            JoinType::Anti if !any => out.push(l.clone()),
            JoinType::Left | JoinType::Full if !any => out.push([l.clone(), pad()].concat()),
            _ => {}
        }
    }
    if matches!(case.join_type, JoinType::Right | JoinType::Full) {
        for r in right {
            if !left.iter().any(|l| matches(l, r)) {
                out.push([pad(), r.clone()].concat());
            }
        }
    }
    out.sort();
    out
}

fn join_operator(case: Case, mode: JoinMode) -> JoinOperator {
    let (left, right) = (schema(&["k", "v"]), schema(&["k2", "w"]));
    let output = if case.join_type.is_left_only() {
        left.clone()
    } else {
        schema(&["k", "v", "k2", "w"])
    };
    let mut spec = JoinSpec::new(case.join_type, left, right, output)
        .with_keys([0], [0])
        .with_mode(mode)
        .with_null_equals_null(case.null_equals_null);
    if case.filtered {
        spec = spec.with_filter(Arc::new(LessOrEqual(1, 3)));
    }
    JoinOperator::new(spec).unwrap()
}

fn opened<O: TwoInputOperator>(mut op: O, subtask: usize, parallelism: usize) -> O {
    op.open(&OperatorContext::new(
        "op",
        subtask,
        parallelism,
        MAX_PARALLELISM,
    ))
    .unwrap();
    op
}

/// Feeds one step and returns what the operator emitted for it.
fn feed<O>(op: &mut O, step: &Step, schemas: (&SchemaRef, &SchemaRef)) -> Vec<(RowKind, Row)>
where
    O: TwoInputOperator<In1 = ChangelogBatch, In2 = ChangelogBatch, Out = ChangelogBatch>,
{
    let mut out = RecordingOutput::default();
    if step.left {
        op.process_batch1(batch(schemas.0, &step.rows), &mut out)
            .unwrap();
    } else {
        op.process_batch2(batch(schemas.1, &step.rows), &mut out)
            .unwrap();
    }
    out.batches.iter().flat_map(rows_of).collect()
}

fn finish<O>(op: &mut O) -> Vec<(RowKind, Row)>
where
    O: TwoInputOperator<In1 = ChangelogBatch, In2 = ChangelogBatch, Out = ChangelogBatch>,
{
    let mut out = RecordingOutput::default();
    op.finish(&mut out).unwrap();
    out.batches.iter().flat_map(rows_of).collect()
}

/// A consolidated changelog: the count of each row, which must never go negative.
#[derive(Default)]
struct Consolidated(BTreeMap<Row, i64>);

impl Consolidated {
    fn apply(&mut self, changes: &[(RowKind, Row)]) -> Result<(), TestCaseError> {
        for (kind, row) in changes {
            let count = self.0.entry(row.clone()).or_default();
            *count += if kind.is_accumulate() { 1 } else { -1 };
            prop_assert!(
                *count >= 0,
                "{kind} {row:?} retracts a row that was not emitted"
            );
        }
        self.0.retain(|_, c| *c != 0);
        Ok(())
    }

    fn rows(&self) -> Vec<Row> {
        self.0
            .iter()
            .flat_map(|(row, count)| std::iter::repeat_n(row.clone(), *count as usize))
            .collect()
    }
}

fn sorted(mut changes: Vec<(RowKind, Row)>) -> Vec<(RowKind, Row)> {
    changes.sort();
    changes
}

fn cases(null_equals_null: bool) -> impl Iterator<Item = Case> {
    JOIN_TYPES.into_iter().flat_map(move |join_type| {
        [false, true].map(|filtered| Case {
            join_type,
            filtered,
            null_equals_null,
        })
    })
}

/// Routes a step's rows to the subtasks of `parallelism` by the key column, as the hash
/// exchange does.
fn route(step: &Step, schemas: (&SchemaRef, &SchemaRef), parallelism: usize) -> Vec<Step> {
    let schema = if step.left { schemas.0 } else { schemas.1 };
    let mut groups = Vec::new();
    ArrowKeySelector::new(key_columns(schema))
        .key_groups(&batch(schema, &step.rows), MAX_PARALLELISM, &mut groups)
        .unwrap();
    let mut parts = vec![
        Step {
            left: step.left,
            rows: Vec::new()
        };
        parallelism
    ];
    for (row, group) in step.rows.iter().zip(groups) {
        parts[subtask_for_key_group(MAX_PARALLELISM, parallelism, group)]
            .rows
            .push(row.clone());
    }
    parts
}

/// The join routes by column 0; set operations by every column.
fn key_columns(schema: &SchemaRef) -> Vec<usize> {
    if schema.field(0).name().starts_with('k') {
        vec![0]
    } else {
        (0..schema.fields().len()).collect()
    }
}

/// Runs `make()` over `steps` uninterrupted, and again with a snapshot after `split` steps
/// restored into `parallelism` fresh subtasks fed by key group; the changes of every later step
/// (and of the finish) must be the same.
fn check_restore<O>(
    make: impl Fn() -> O,
    steps: &[Step],
    split: usize,
    schemas: (&SchemaRef, &SchemaRef),
    parallelism: usize,
) -> Result<(), TestCaseError>
where
    O: TwoInputOperator<In1 = ChangelogBatch, In2 = ChangelogBatch, Out = ChangelogBatch>,
{
    let mut whole = opened(make(), 0, 1);
    let mut first = opened(make(), 0, 1);
    for step in &steps[..split] {
        prop_assert_eq!(
            sorted(feed(&mut whole, step, schemas)),
            sorted(feed(&mut first, step, schemas))
        );
    }
    let state: OperatorState = first.snapshot_state(1).unwrap();
    let mut restored: Vec<O> = (0..parallelism)
        .map(|subtask| {
            let mut op = opened(make(), subtask, parallelism);
            op.restore_state(&state).unwrap();
            op
        })
        .collect();
    for step in &steps[split..] {
        let expected = sorted(feed(&mut whole, step, schemas));
        let mut found = Vec::new();
        for (op, part) in restored.iter_mut().zip(route(step, schemas, parallelism)) {
            if !part.rows.is_empty() {
                found.extend(feed(op, &part, schemas));
            }
        }
        prop_assert_eq!(expected, sorted(found));
    }
    let expected = sorted(finish(&mut whole));
    let found = sorted(restored.iter_mut().flat_map(|op| finish(op)).collect());
    prop_assert_eq!(expected, found);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batch_join_equals_nested_loop(raw in raw_steps(2), null_equals_null in any::<bool>()) {
        let steps = resolve(raw);
        let (left, right) = live_rows(&steps);
        let schemas = (&schema(&["k", "v"]), &schema(&["k2", "w"]));
        for case in cases(null_equals_null) {
            let mut op = opened(join_operator(case, JoinMode::Batch), 0, 1);
            for step in &steps {
                prop_assert!(feed(&mut op, step, schemas).is_empty());
            }
            let out = finish(&mut op);
            prop_assert!(out.iter().all(|(k, _)| *k == RowKind::Insert));
            let mut rows: Vec<Row> = out.into_iter().map(|(_, r)| r).collect();
            rows.sort();
            prop_assert_eq!(rows, reference_join(case, &left, &right), "{:?}", case);
        }
    }

    #[test]
    fn streaming_join_consolidates_to_nested_loop(raw in raw_steps(2), null_equals_null in any::<bool>()) {
        let steps = resolve(raw);
        let schemas = (&schema(&["k", "v"]), &schema(&["k2", "w"]));
        for case in cases(null_equals_null) {
            let mut op = opened(join_operator(case, JoinMode::Streaming), 0, 1);
            let mut changelog = Consolidated::default();
            for (n, step) in steps.iter().enumerate() {
                changelog.apply(&feed(&mut op, step, schemas))?;
                let (left, right) = live_rows(&steps[..=n]);
                prop_assert_eq!(changelog.rows(), reference_join(case, &left, &right), "{:?} after step {}", case, n);
            }
            prop_assert!(finish(&mut op).is_empty());
        }
    }

    #[test]
    fn join_restores_from_a_snapshot(
        raw in raw_steps(2),
        null_equals_null in any::<bool>(),
        split in any::<prop::sample::Index>(),
        parallelism in 1usize..=2,
        batch_mode in any::<bool>(),
    ) {
        let steps = resolve(raw);
        let split = split.index(steps.len() + 1);
        let schemas = (&schema(&["k", "v"]), &schema(&["k2", "w"]));
        let mode = if batch_mode { JoinMode::Batch } else { JoinMode::Streaming };
        for case in cases(null_equals_null) {
            check_restore(|| join_operator(case, mode), &steps, split, schemas, parallelism)?;
        }
    }

    #[test]
    fn set_operations_equal_the_multiset_reference(
        raw in raw_steps(2),
        split in any::<prop::sample::Index>(),
        parallelism in 1usize..=2,
    ) {
        let steps = resolve(raw);
        let split = split.index(steps.len() + 1);
        let row_schema = schema(&["a", "b"]);
        let schemas = (&row_schema, &row_schema);
        for kind in [SetOpType::Intersect, SetOpType::Except] {
            for all in [false, true] {
                let make = |mode| SetOpOperator::new(kind, all, row_schema.clone(), mode).unwrap();
                let reference = |steps: &[Step]| {
                    let (left, right) = live_rows(steps);
                    let mut counts: BTreeMap<Row, (u64, u64)> = BTreeMap::new();
                    left.into_iter().for_each(|r| counts.entry(r).or_default().0 += 1);
                    right.into_iter().for_each(|r| counts.entry(r).or_default().1 += 1);
                    counts
                        .into_iter()
                        .flat_map(|(row, (l, r))| {
                            let times = match (kind, all) {
                                (SetOpType::Intersect, true) => l.min(r),
                                (SetOpType::Intersect, false) => u64::from(l > 0 && r > 0),
                                (SetOpType::Except, true) => l.saturating_sub(r),
                                (SetOpType::Except, false) => u64::from(l > 0 && r == 0),
                            };
                            std::iter::repeat_n(row, times as usize)
                        })
                        .collect::<Vec<_>>()
                };

                let mut streaming = opened(make(JoinMode::Streaming), 0, 1);
                let mut batch = opened(make(JoinMode::Batch), 0, 1);
                let mut changelog = Consolidated::default();
                for (n, step) in steps.iter().enumerate() {
                    changelog.apply(&feed(&mut streaming, step, schemas))?;
                    prop_assert_eq!(changelog.rows(), reference(&steps[..=n]), "{:?} all={} after step {}", kind, all, n);
                    prop_assert!(feed(&mut batch, step, schemas).is_empty());
                }
                let mut rows: Vec<Row> = finish(&mut batch)
                    .into_iter()
                    .map(|(k, r)| { assert_eq!(k, RowKind::Insert); r })
                    .collect();
                rows.sort();
                prop_assert_eq!(rows, reference(&steps));

                for mode in [JoinMode::Streaming, JoinMode::Batch] {
                    check_restore(|| make(mode), &steps, split, schemas, parallelism)?;
                }
            }
        }
    }
}

#[test]
fn cross_join_with_a_filter_pairs_every_row() {
    let (left, right) = (schema(&["k", "v"]), schema(&["k2", "w"]));
    let spec = JoinSpec::new(
        JoinType::Inner,
        left.clone(),
        right.clone(),
        schema(&["k", "v", "k2", "w"]),
    )
    .with_filter(Arc::new(LessOrEqual(1, 3)))
    .with_mode(JoinMode::Batch);
    let mut op = opened(JoinOperator::new(spec).unwrap(), 0, 1);
    let schemas = (&left, &right);
    let ins = |rows: Vec<Row>| rows.into_iter().map(|r| (RowKind::Insert, r)).collect();
    feed(
        &mut op,
        &Step {
            left: true,
            rows: ins(vec![vec![Some(1), Some(1)], vec![None, Some(5)]]),
        },
        schemas,
    );
    feed(
        &mut op,
        &Step {
            left: false,
            rows: ins(vec![vec![Some(2), Some(3)], vec![Some(9), Some(9)]]),
        },
        schemas,
    );
    let rows: Vec<Row> = sorted(finish(&mut op))
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![None, Some(5), Some(9), Some(9)],
            vec![Some(1), Some(1), Some(2), Some(3)],
            vec![Some(1), Some(1), Some(9), Some(9)],
        ]
    );
}

#[test]
fn invalid_specs_are_rejected_with_a_reason() {
    let (left, right) = (schema(&["k", "v"]), schema(&["k2", "w"]));
    let out = schema(&["k", "v", "k2", "w"]);
    let spec = JoinSpec::new(JoinType::Inner, left.clone(), right.clone(), out.clone())
        .with_keys([0, 1], [0]);
    let error = JoinOperator::new(spec).unwrap_err().to_string();
    assert!(error.contains("2 left key columns but 1 right"), "{error}");

    let spec = JoinSpec::new(JoinType::Inner, left.clone(), right.clone(), out.clone())
        .with_keys([5], [0]);
    let error = JoinOperator::new(spec).unwrap_err().to_string();
    assert!(
        error.contains("join key column 5 does not exist"),
        "{error}"
    );

    let spec = JoinSpec::new(JoinType::Semi, left.clone(), right.clone(), out).with_keys([0], [0]);
    let error = JoinOperator::new(spec).unwrap_err().to_string();
    assert!(
        error.contains("produces 2 columns but the output schema has 4"),
        "{error}"
    );

    let non_nullable = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("k2", DataType::Int64, false),
        Field::new("w", DataType::Int64, true),
    ]));
    let spec = JoinSpec::new(JoinType::Left, left.clone(), right.clone(), non_nullable)
        .with_keys([0], [0]);
    let error = JoinOperator::new(spec).unwrap_err().to_string();
    assert!(error.contains("\"k2\" is not nullable"), "{error}");

    let strings = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let spec =
        JoinSpec::new(JoinType::Inner, left, strings, schema(&["k", "v", "s"])).with_keys([0], [0]);
    let error = JoinOperator::new(spec).unwrap_err().to_string();
    assert!(error.contains("cast one of them"), "{error}");
}
