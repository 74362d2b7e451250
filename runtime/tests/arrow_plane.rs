//! The Arrow plane end to end: an in-memory Arrow source, a vectorised Calc, a hash exchange on
//! an Arrow key column and a keyed sum, checked against plain Rust and against the typed plane's
//! routing of the same keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::kernels::{cmp::gt, numeric::mul};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use parking_lot::Mutex;
use rivulet_runtime::exchange::ArrowKeySelector;
use rivulet_runtime::keys::{key_group_of, subtask_for_key_group};
use rivulet_runtime::operator::calc::{CalcOperator, Projection};
use rivulet_runtime::source::RecordBatchSource;
use rivulet_runtime::{
    ChangelogBatch, Operator, OperatorContext, Output, Records, StreamEnv, TaskError,
};

const PARALLELISM: usize = 2;
const MAX_PARALLELISM: u16 = 128;
const THRESHOLD: i64 = 300;

/// A deterministic pseudo-random sequence (xorshift64*), so the test needs no extra crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Seven batches of `(user: Utf8, amount: Int64)` of uneven sizes.
fn input() -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
    ]));
    let mut rng = XorShift(0x5eed_1234_abcd_0042);
    [130, 1, 700, 64, 0, 333, 1024]
        .into_iter()
        .map(|rows| {
            let users: Vec<String> = (0..rows)
                .map(|_| format!("user-{}", rng.next() % 37))
                .collect();
            let amounts: Vec<i64> = (0..rows).map(|_| (rng.next() % 1000) as i64).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(users)),
                    Arc::new(Int64Array::from(amounts)),
                ],
            )
            .expect("columns match the schema")
        })
        .collect()
}

/// Sums the second column per user (first column) and emits the totals at the end of input,
/// recording which subtask saw each user.
struct SumPerUser {
    sums: BTreeMap<String, i64>,
    subtask: usize,
    seen_at: Arc<Mutex<BTreeMap<String, BTreeSet<usize>>>>,
}

impl Operator for SumPerUser {
    type In = ChangelogBatch;
    type Out = Records<(String, i64)>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<Records<(String, i64)>>,
    ) -> Result<(), TaskError> {
        assert!(batch.is_insert_only());
        let users = batch.data().column(0).as_string::<i32>();
        let amounts = batch.data().column(1).as_primitive::<Int64Type>();
        let mut seen_at = self.seen_at.lock();
        for (user, amount) in users.iter().zip(amounts.values()) {
            let user = user.ok_or("null user")?;
            *self.sums.entry(user.to_owned()).or_default() += amount;
            seen_at
                .entry(user.to_owned())
                .or_default()
                .insert(self.subtask);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Output<Records<(String, i64)>>) -> Result<(), TaskError> {
        out.collect(Records::from(
            std::mem::take(&mut self.sums)
                .into_iter()
                .collect::<Vec<_>>(),
        ))
    }
}

#[test]
fn calc_and_arrow_hash_exchange_match_plain_rust_and_typed_routing() {
    let batches = input();

    // The same query in plain Rust: SELECT user, SUM(amount * 2) WHERE amount > THRESHOLD GROUP BY user.
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for batch in &batches {
        let users = batch.column(0).as_string::<i32>();
        let amounts = batch.column(1).as_primitive::<Int64Type>();
        for (user, &amount) in users.iter().zip(amounts.values()) {
            if amount > THRESHOLD {
                *expected.entry(user.unwrap().to_owned()).or_default() += amount * 2;
            }
        }
    }
    assert!(expected.len() > 10, "the data should cover many users");

    let output = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("doubled", DataType::Int64, false),
    ]));
    let calc = CalcOperator::new(output)
        .with_filter(|b| gt(b.column(1), &Int64Array::new_scalar(THRESHOLD)))
        .with_projection([
            Projection::column(0),
            Projection::computed(|b| mul(b.column(1), &Int64Array::new_scalar(2))),
        ]);
    let seen_at = Arc::new(Mutex::new(BTreeMap::new()));
    let seen = Arc::clone(&seen_at);

    let env = StreamEnv::new()
        .with_parallelism(PARALLELISM)
        .with_max_parallelism(MAX_PARALLELISM);
    let totals = env
        .from_source(RecordBatchSource::new(batches))
        .transform("Calc", move || calc.clone())
        .partition_by_key(ArrowKeySelector::new([0]))
        .transform("Sum per user", move || SumPerUser {
            sums: BTreeMap::new(),
            subtask: usize::MAX,
            seen_at: Arc::clone(&seen),
        })
        .collect();
    let result = env.execute("arrow plane").expect("the job runs");

    let actual: BTreeMap<String, i64> = totals.take().into_iter().collect();
    assert_eq!(actual, expected);
    assert!(result.operator("Calc").is_some());

    let seen_at = seen_at.lock();
    assert_eq!(seen_at.len(), expected.len());
    let mut scratch = Vec::new();
    let mut subtasks_used = BTreeSet::new();
    for (user, subtasks) in seen_at.iter() {
        assert_eq!(subtasks.len(), 1, "{user:?} reached subtasks {subtasks:?}");
        let key_group = key_group_of(user, MAX_PARALLELISM, &mut scratch).unwrap();
        let typed = subtask_for_key_group(MAX_PARALLELISM, PARALLELISM, key_group);
        assert_eq!(
            subtasks.first(),
            Some(&typed),
            "{user:?} was routed unlike the typed key"
        );
        subtasks_used.insert(typed);
    }
    assert_eq!(
        subtasks_used.len(),
        PARALLELISM,
        "both subtasks should get keys"
    );
}
