//! Test support: random tables with nulls and duplicates, a source the test releases batch by
//! batch, and a harness that checks a streaming query's consolidated changelog against a
//! reference after every batch.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use proptest::prelude::*;
use rivulet_runtime::source::{Source, SourcePoll, SourceReader, VecSplit};
use rivulet_runtime::{BoxError, ChangelogBatch, Stream};
use rivulet_table::prelude::*;

/// One input row: a small key, a value and a short string, each possibly null.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub k: Option<i64>,
    pub v: Option<i64>,
    pub s: Option<String>,
}

/// Rows with few distinct keys and strings, so groups and join matches repeat.
pub fn rows(max: usize) -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            proptest::option::weighted(0.85, 0i64..5),
            proptest::option::weighted(0.85, -20i64..20),
            proptest::option::weighted(0.85, prop::sample::select(vec!["a", "b", "c", "dd"])),
        )
            .prop_map(|(k, v, s)| Row {
                k,
                v,
                s: s.map(str::to_owned),
            }),
        0..max,
    )
}

/// Batch sizes of 1 to 7 rows covering `n` rows.
pub fn cut(n: usize, seed: u64) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = n;
    let mut state = seed | 1;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = (1 + (state % 7) as usize).min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

pub fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}v"), DataType::Int64, true),
        Field::new(format!("{prefix}s"), DataType::Utf8, true),
    ]))
}

pub fn batch(schema: &SchemaRef, rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.k).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.v).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.s.clone()).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("columns fit the schema")
}

/// A cell as the tests compare it.
pub type Cell = Option<String>;

/// Rows of `batches` as sorted cell vectors.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut out = Vec::new();
    for b in batches {
        for row in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(row) {
                            None
                        } else {
                            Some(array_value_to_string(c, row).expect("displayable"))
                        }
                    })
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

pub fn int(v: Option<i64>) -> Cell {
    v.map(|v| v.to_string())
}

pub fn text(v: &Option<String>) -> Cell {
    v.clone()
}

/// A single-split source that emits batch `i` only once the test released it.
#[derive(Clone)]
pub struct SteppedSource {
    batches: Arc<Vec<ChangelogBatch>>,
    released: Arc<AtomicUsize>,
    /// Whether the source stays open (idle) after its last batch instead of finishing.
    held_open: bool,
}

impl SteppedSource {
    /// A source of `batches`, emitting the first `released` of them.
    pub fn new(batches: Vec<ChangelogBatch>, released: Arc<AtomicUsize>) -> Self {
        SteppedSource {
            batches: Arc::new(batches),
            released,
            held_open: false,
        }
    }

    /// The same source, idle after its last batch instead of finished: a job reading it runs
    /// until it is stopped.
    pub fn held_open(mut self) -> Self {
        self.held_open = true;
        self
    }
}

pub struct SteppedReader {
    source: SteppedSource,
    split: VecSplit,
}

impl Source for SteppedSource {
    type Batch = ChangelogBatch;
    type Split = VecSplit;
    type Reader = SteppedReader;

    fn splits(&self, _parallelism: usize) -> Result<Vec<VecSplit>, BoxError> {
        Ok(vec![VecSplit {
            start: 0,
            end: self.batches.len() as u64,
            position: 0,
        }])
    }

    fn create_reader(&self, split: VecSplit) -> Result<SteppedReader, BoxError> {
        Ok(SteppedReader {
            source: self.clone(),
            split,
        })
    }
}

impl SourceReader for SteppedReader {
    type Batch = ChangelogBatch;
    type Split = VecSplit;

    fn poll(&mut self, _max: usize) -> Result<SourcePoll<ChangelogBatch>, BoxError> {
        let position = self.split.position;
        if position >= self.split.end {
            return Ok(if self.source.held_open {
                SourcePoll::Idle
            } else {
                SourcePoll::Finished
            });
        }
        if position as usize >= self.source.released.load(Ordering::SeqCst) {
            return Ok(SourcePoll::Idle);
        }
        self.split.position += 1;
        Ok(SourcePoll::Ready(
            self.source.batches[position as usize].clone(),
        ))
    }

    fn snapshot(&self) -> VecSplit {
        self.split.clone()
    }
}

/// An input table of the stepped harness: its schema and its batches.
pub struct Input {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs `query` over `inputs` in streaming mode at `parallelism`, releasing one batch at a time
/// (round-robin over the inputs) and, after each, waiting until the consolidated changelog so
/// far equals `reference` of the released prefixes while the input is still open, so an
/// operator that holds results back until the end fails. The changelog must stay well formed.
pub fn check_streaming(
    parallelism: usize,
    inputs: &[Input],
    query: impl Fn(&TableEnv, Vec<Table>) -> Table,
    reference: impl Fn(&[usize]) -> Vec<Vec<Cell>>,
) {
    let env = TableEnv::streaming(StreamEnv::new().with_parallelism(parallelism));
    let mut tables = Vec::new();
    let mut gates = Vec::new();
    for input in inputs {
        let released = Arc::new(AtomicUsize::new(0));
        let source = SteppedSource {
            batches: Arc::new(
                input
                    .batches
                    .iter()
                    .cloned()
                    .map(ChangelogBatch::insert_only)
                    .collect(),
            ),
            released: Arc::clone(&released),
            held_open: false,
        };
        let stream: Stream<ChangelogBatch> =
            env.stream_env().from_source(source).set_parallelism(1);
        tables.push(
            env.from_arrow_stream(
                stream,
                Arc::clone(&input.schema),
                ChangelogMode::InsertOnly,
                true,
            )
            .expect("a stream table"),
        );
        gates.push(released);
    }
    let result = query(&env, tables);
    let schema = result.schema().to_arrow();
    let out = result
        .to_changelog_stream()
        .expect("the query lowers")
        .collect_table();
    let handle = env
        .stream_env()
        .execute_async("stepped")
        .expect("the job starts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let total: usize = inputs.iter().map(|i| i.batches.len()).sum();
    let mut released = vec![0usize; inputs.len()];
    let mut collected: Vec<ChangelogBatch> = Vec::new();
    let mut step = 0;
    while released.iter().sum::<usize>() < total {
        let i = step % inputs.len();
        step += 1;
        if released[i] == inputs[i].batches.len() {
            continue;
        }
        released[i] += 1;
        gates[i].store(released[i], Ordering::SeqCst);
        // Every operator must emit what this prefix implies while the input is still open:
        // wait until the consolidated output equals the reference, or fail showing both.
        let expected = reference(&released);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let changelog = out.take();
            collected.extend(changelog);
            let changelog = collected.clone();
            let consolidated =
                rivulet_runtime::relational::changelog::consolidate(&schema, &changelog)
                    .expect("the changelog is well formed");
            let got = cells(&[consolidated]);
            if got == expected {
                break;
            }
            if handle.is_finished() || std::time::Instant::now() > deadline {
                let outcome = runtime.block_on(async {
                    tokio::time::timeout(std::time::Duration::from_secs(5), handle.wait()).await
                });
                panic!(
                    "after releasing {released:?} batches the output is\n{got:?}\nbut should be\n{expected:?}\n(job: {outcome:?})"
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    runtime.block_on(handle.wait()).expect("the job finishes");
}

/// Runs `query` in batch mode at `parallelism` and returns its rows.
pub fn run_batch(
    parallelism: usize,
    inputs: &[Input],
    query: impl Fn(&TableEnv, Vec<Table>) -> Table,
) -> Vec<Vec<Cell>> {
    let env = TableEnv::batch(StreamEnv::new().with_parallelism(parallelism));
    let tables = inputs
        .iter()
        .map(|i| {
            env.from_batches(Arc::clone(&i.schema), i.batches.clone())
                .expect("a table")
        })
        .collect();
    let result = query(&env, tables);
    cells(&result.collect().expect("the query runs"))
}
