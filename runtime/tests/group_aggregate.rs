//! Group aggregation in a running job: an Arrow source, a hash exchange on the group column and
//! a `GroupAggregateOperator` at parallelism 2, in both emit modes, checked against plain Rust.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use rivulet_runtime::exchange::ArrowKeySelector;
use rivulet_runtime::relational::{
    AggregateCall, AggregateKind, EmitMode, GroupAggregateOperator, GroupAggregateSpec,
};
use rivulet_runtime::source::RecordBatchSource;
use rivulet_runtime::{ChangelogBatch, Operator, Output, Records, RowKind, StreamEnv, TaskError};

/// `(row-kind code, user, count, sum)`.
type Change = (i8, String, i64, Option<i64>);

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, true),
    ]))
}

/// Batches of `(user, amount)`; every seventh amount is null.
fn input() -> Vec<RecordBatch> {
    let mut n = 0u64;
    [50usize, 1, 300, 0, 77, 512]
        .into_iter()
        .map(|rows| {
            let mut users = Vec::new();
            let mut amounts = Vec::new();
            for _ in 0..rows {
                n += 1;
                let x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                users.push(format!("user-{}", x % 23));
                amounts.push((!n.is_multiple_of(7)).then_some((x % 100) as i64));
            }
            RecordBatch::try_new(
                input_schema(),
                vec![
                    Arc::new(StringArray::from(users)),
                    Arc::new(Int64Array::from(amounts)),
                ],
            )
            .expect("columns match the schema")
        })
        .collect()
}

fn spec(emit: EmitMode) -> GroupAggregateSpec {
    let count = Field::new("n", DataType::Int64, false);
    let sum = Field::new("total", DataType::Int64, true);
    GroupAggregateSpec {
        group_columns: vec![0],
        aggregates: vec![
            AggregateCall::new(AggregateKind::CountStar, [], count.clone()),
            AggregateCall::new(AggregateKind::Sum, [1], sum.clone()),
        ],
        input_schema: input_schema(),
        output_schema: Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, false),
            count,
            sum,
        ])),
        emit,
    }
}

/// Turns output rows into typed records.
struct ToRecords;

impl Operator for ToRecords {
    type In = ChangelogBatch;
    type Out = Records<Change>;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<Records<Change>>,
    ) -> Result<(), TaskError> {
        let users = batch.data().column(0).as_string::<i32>();
        let counts = batch.data().column(1).as_primitive::<Int64Type>();
        let sums = batch.data().column(2).as_primitive::<Int64Type>();
        let changes: Vec<Change> = (0..batch.num_rows())
            .map(|row| {
                (
                    batch.row_kind(row) as i8,
                    users.value(row).to_owned(),
                    counts.value(row),
                    sums.is_valid(row).then(|| sums.value(row)),
                )
            })
            .collect();
        out.collect(Records::from(changes))
    }
}

fn expected() -> BTreeMap<String, (i64, Option<i64>)> {
    let mut expected: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
    for batch in input() {
        let users = batch.column(0).as_string::<i32>();
        let amounts = batch.column(1).as_primitive::<Int64Type>();
        for (user, amount) in users.iter().zip(amounts.iter()) {
            let entry = expected.entry(user.unwrap().to_owned()).or_default();
            entry.0 += 1;
            if let Some(amount) = amount {
                entry.1 = Some(entry.1.unwrap_or(0) + amount);
            }
        }
    }
    expected
}

fn run(emit: EmitMode) -> Vec<Change> {
    let env = StreamEnv::new()
        .with_parallelism(2)
        .with_max_parallelism(128);
    let changes = env
        .from_source(RecordBatchSource::new(input()))
        .partition_by_key(ArrowKeySelector::new([0]))
        .transform("GroupAggregate", move || {
            GroupAggregateOperator::new(spec(emit)).expect("a valid aggregation")
        })
        .transform("ToRecords", || ToRecords)
        .collect();
    env.execute("group aggregate").expect("the job runs");
    changes.take()
}

#[test]
fn changelog_consolidates_to_the_totals() {
    let mut table: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
    let mut updates = 0;
    // Each user's changes come from one subtask, in order.
    for (code, user, count, sum) in run(EmitMode::Changelog) {
        match RowKind::from_code(code).expect("a valid row kind") {
            RowKind::Insert => assert!(table.insert(user, (count, sum)).is_none()),
            RowKind::UpdateBefore | RowKind::Delete => {
                assert_eq!(table.remove(&user), Some((count, sum)));
            }
            RowKind::UpdateAfter => {
                updates += 1;
                assert!(table.insert(user, (count, sum)).is_none());
            }
        }
    }
    assert!(updates > 0);
    assert_eq!(table, expected());
}

#[test]
fn final_mode_emits_each_total_once() {
    let mut table = BTreeMap::new();
    for (code, user, count, sum) in run(EmitMode::Final) {
        assert_eq!(code, RowKind::Insert as i8);
        assert!(table.insert(user, (count, sum)).is_none());
    }
    assert_eq!(table, expected());
}
