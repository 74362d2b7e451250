//! Table connectors: CSV and Parquet sources, CSV and Parquet part-file sinks, the collect sink.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use rivulet_runtime::checkpoint::{CheckpointConfig, RestartStrategy};
use rivulet_runtime::relational::{BadDataPolicy, BadRows};
use rivulet_runtime::sink::{CsvFormat, TableFileSink};
use rivulet_runtime::source::{
    CsvSource, ParquetSource, RecordBatchSource, Source, SourcePoll, SourceReader,
};
use rivulet_runtime::{ChangelogBatch, Operator, OperatorContext, Output, StreamEnv, TaskError};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rivulet-table-connectors-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Every column type the CSV source parses, with quoting and nulls.
fn sample() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, false),
        Field::new("ok", DataType::Boolean, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("day", DataType::Date32, false),
        Field::new("price", DataType::Decimal128(10, 2), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            Some("alice"),
            Some("bob, \"the builder\""),
            None,
            Some("two\nlines"),
        ])),
        Arc::new(Int64Array::from(vec![Some(1), None, Some(-3), Some(4)])),
        Arc::new(Float64Array::from(vec![0.5, 1e10, -2.25, 0.0])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_704_103_200_000),
            Some(1_704_103_200_250),
            None,
            Some(-86_400_001),
        ])),
        Arc::new(Date32Array::from(vec![19_723, 0, -1, 20_000])),
        Arc::new(
            Decimal128Array::from(vec![Some(12_345), None, Some(-1), Some(0)])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn concat(schema: &SchemaRef, batches: Vec<RecordBatch>) -> RecordBatch {
    concat_batches(schema, &batches).unwrap()
}

/// Reads a split to its end with `batch` rows per poll.
fn drain<R: SourceReader<Batch = ChangelogBatch>>(
    reader: &mut R,
    batch: usize,
) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    loop {
        match reader.poll(batch).unwrap() {
            SourcePoll::Ready(b) => out.push(b.into_data()),
            SourcePoll::Idle => {}
            SourcePoll::Finished => return out,
        }
    }
}

#[test]
fn csv_round_trips_through_the_sink_and_the_source() {
    let dir = TempDir::new("csv-round-trip");
    let batch = sample();
    let env = StreamEnv::new().with_parallelism(1);
    env.from_source(RecordBatchSource::new([batch.clone()]))
        .sink_table(TableFileSink::csv(
            dir.path(),
            CsvFormat::new().with_header(true),
        ));
    env.execute("write csv").unwrap();
    assert_eq!(files(dir.path()), vec!["part-0-0.csv"]);
    let text = std::fs::read_to_string(dir.path().join("part-0-0.csv")).unwrap();
    assert!(
        text.starts_with("name,n,x,ok,at,day,price\nalice,1,0.5,true,2024-01-01 10:00:00.000,"),
        "{text}"
    );
    assert!(text.contains("\"bob, \"\"the builder\"\"\""), "{text}");

    let env = StreamEnv::new().with_parallelism(2);
    let rows = env
        .from_source(CsvSource::new([dir.path()], batch.schema()).with_header(true))
        .collect_table();
    env.execute("read csv").unwrap();
    let read = concat(&batch.schema(), rows.take_record_batches());
    assert_eq!(read, batch);
}

#[test]
fn csv_projection_and_options() {
    let dir = TempDir::new("csv-options");
    let file = dir.path().join("semi.csv");
    std::fs::write(&file, "'a;b';1;NULL\nc;NULL;03/02/2024 10:30\n").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("n", DataType::Int32, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let source = CsvSource::new([&file], schema)
        .with_delimiter(b';')
        .with_quote(b'\'')
        .with_null_string("NULL")
        .with_timestamp_format("%d/%m/%Y %H:%M")
        .with_projection([2, 0]);
    let output = source.output_schema().unwrap();
    assert_eq!(output.field(0).name(), "at");
    let mut reader = source
        .create_reader(source.splits(1).unwrap().remove(0))
        .unwrap();
    let read = concat(&output, drain(&mut reader, 10));
    assert_eq!(read.num_columns(), 2);
    let expected = RecordBatch::try_new(
        output,
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![
                None,
                Some(1_706_956_200_000),
            ])),
            Arc::new(StringArray::from(vec!["a;b", "c"])),
        ],
    )
    .unwrap();
    assert_eq!(read, expected);
}

fn bad_file(dir: &Path) -> PathBuf {
    let file = dir.join("bad.csv");
    std::fs::write(
        &file,
        "name,score,at\n\
         alice,3,2024-01-01 10:00:00\n\
         bob,x,2024-01-01 10:00:01\n\
         carol,5\n\
         dave,6,2024-01-01 10:00:03.250\n",
    )
    .unwrap();
    file
}

fn bad_schema(name_nullable: bool) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, name_nullable),
        Field::new("score", DataType::Int64, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

fn read_bad(
    file: &Path,
    schema: SchemaRef,
    policy: BadDataPolicy,
    bad: &BadRows,
) -> Result<Vec<RecordBatch>, String> {
    let source = CsvSource::new([file], schema)
        .with_header(true)
        .with_bad_data_policy(policy, bad.clone());
    let mut reader = source
        .create_reader(source.splits(1).unwrap().remove(0))
        .unwrap();
    let mut out = Vec::new();
    loop {
        match reader.poll(100) {
            Ok(SourcePoll::Ready(b)) => out.push(b.into_data()),
            Ok(SourcePoll::Idle) => {}
            Ok(SourcePoll::Finished) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[test]
fn a_bad_field_fails_naming_the_file_line_and_column() {
    let dir = TempDir::new("bad-fail");
    let file = bad_file(dir.path());
    let error = read_bad(
        &file,
        bad_schema(true),
        BadDataPolicy::Fail,
        &BadRows::new(),
    )
    .unwrap_err();
    assert!(
        error.contains("bad.csv")
            && error.contains("line 3")
            && error.contains("\"score\"")
            && error.contains("\"x\" is not a valid Int64"),
        "{error}"
    );

    // A line with too few fields, when it is the first bad one.
    std::fs::write(&file, "name,score,at\nalice,3,2024-01-01\ncarol,5\n").unwrap();
    let error = read_bad(
        &file,
        bad_schema(true),
        BadDataPolicy::Fail,
        &BadRows::new(),
    )
    .unwrap_err();
    assert!(
        error.contains("bad.csv")
            && error.contains("line 3")
            && error.contains("expected 3 fields but found 2"),
        "{error}"
    );

    // Through a job, the failure carries the same message.
    let env = StreamEnv::new().with_parallelism(1);
    env.from_source(CsvSource::new([&file], bad_schema(true)).with_header(true))
        .collect_table();
    let error = env.execute("read bad csv").unwrap_err().to_string();
    assert!(error.contains("line 3"), "{error}");
}

#[test]
fn the_null_policy_nulls_bad_fields_and_missing_ones() {
    let dir = TempDir::new("bad-null");
    let file = bad_file(dir.path());
    let bad = BadRows::new();
    let read = read_bad(&file, bad_schema(true), BadDataPolicy::Null, &bad).unwrap();
    let read = concat(&bad_schema(true), read);
    assert_eq!(read.num_rows(), 4);
    let scores = read
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(
        scores.iter().collect::<Vec<_>>(),
        vec![Some(3), None, Some(5), Some(6)]
    );
    assert_eq!(read.column(2).null_count(), 1);
    assert_eq!(bad.count(), 0);

    // A non-nullable column cannot take the null: the job fails, saying why.
    std::fs::write(&file, "name,score,at\n,3,2024-01-01\n").unwrap();
    let error = read_bad(
        &file,
        bad_schema(false),
        BadDataPolicy::Null,
        &BadRows::new(),
    )
    .unwrap_err();
    assert!(
        error.contains("line 2") && error.contains("\"name\"") && error.contains("not nullable"),
        "{error}"
    );
}

#[test]
fn the_skip_policy_drops_bad_lines_and_counts_them() {
    let dir = TempDir::new("bad-skip");
    let file = bad_file(dir.path());
    let bad = BadRows::new();
    let env = StreamEnv::new().with_parallelism(1);
    let rows = env
        .from_source(
            CsvSource::new([&file], bad_schema(false))
                .with_header(true)
                .with_bad_data_policy(BadDataPolicy::Skip, bad.clone()),
        )
        .collect_table();
    env.execute("skip bad lines").unwrap();
    assert_eq!(
        rows.take_changelog(),
        vec![
            "+I[alice, 3, 2024-01-01T10:00:00]",
            "+I[dave, 6, 2024-01-01T10:00:03.250]"
        ]
    );
    assert_eq!(bad.count(), 2);
    let samples = bad.samples();
    let sample = |needle: &str| samples.iter().find(|s| s.contains(needle)).cloned();
    let field = sample("bad.csv:3").unwrap_or_default();
    assert!(
        field.contains("\"score\"") && field.contains("\"x\""),
        "{samples:?}"
    );
    let count = sample("bad.csv:4").unwrap_or_default();
    assert!(
        count.contains("expected 3 fields but found 2"),
        "{samples:?}"
    );
}

#[test]
fn a_restored_csv_reader_resumes_where_its_snapshot_was_taken() {
    let dir = TempDir::new("csv-resume");
    let file = dir.path().join("in.csv");
    let mut text = String::from("id,note\n");
    for i in 0..50 {
        if i % 7 == 0 {
            text.push_str(&format!("{i},\"multi\nline {i}\"\n"));
        } else {
            text.push_str(&format!("{i},plain {i}\n"));
        }
    }
    text.push_str("oops,bad\n");
    std::fs::write(&file, &text).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, false),
    ]));
    let source = CsvSource::new([&file], Arc::clone(&schema))
        .with_header(true)
        .with_bad_data_policy(BadDataPolicy::Skip, BadRows::new());
    let split = source.splits(1).unwrap().remove(0);
    let mut whole = source.create_reader(split.clone()).unwrap();
    let uninterrupted = concat(&schema, drain(&mut whole, 4));
    assert_eq!(uninterrupted.num_rows(), 50);

    for polls in [1, 3, 12] {
        let mut reader = source.create_reader(split.clone()).unwrap();
        let mut read = Vec::new();
        for _ in 0..polls {
            if let SourcePoll::Ready(b) = reader.poll(4).unwrap() {
                read.push(b.into_data());
            }
        }
        // The position survives the checkpoint's encoding.
        let snapshot = postcard::to_stdvec(&reader.snapshot()).unwrap();
        let mut resumed = source
            .create_reader(postcard::from_bytes(&snapshot).unwrap())
            .unwrap();
        read.extend(drain(&mut resumed, 4));
        assert_eq!(concat(&schema, read), uninterrupted, "after {polls} polls");
    }

    // Line numbers stay right after a restore past quoted line breaks.
    let failing = CsvSource::new([&file], schema).with_header(true);
    let mut reader = failing.create_reader(split).unwrap();
    let _ = reader.poll(30).unwrap();
    let mut resumed = failing.create_reader(reader.snapshot()).unwrap();
    let error = loop {
        match resumed.poll(4) {
            Ok(SourcePoll::Finished) => panic!("the bad line was not reported"),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    // 1 header line, 50 records of which 8 take two lines.
    assert!(error.contains("line 60"), "{error}");
}

fn write_parquet(file: &Path, rows: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Utf8, false),
        Field::new("c", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("b{i}")),
            )),
            Arc::new(Float64Array::from_iter(
                (0..rows).map(|i| (i % 3 != 0).then_some(i as f64)),
            )),
        ],
    )
    .unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(3))
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(file).unwrap(),
        schema,
        Some(properties),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    batch
}

#[test]
fn parquet_projection_reads_only_the_asked_columns_in_their_order() {
    let dir = TempDir::new("parquet-projection");
    let file = dir.path().join("t.parquet");
    let written = write_parquet(&file, 10);
    assert_eq!(ParquetSource::schema_of(&file).unwrap(), written.schema());
    let source = ParquetSource::new([dir.path()]).with_projection([2, 0]);
    let mut reader = source
        .create_reader(source.splits(1).unwrap().remove(0))
        .unwrap();
    let batches = drain(&mut reader, 4);
    let expected = written.project(&[2, 0]).unwrap();
    for batch in &batches {
        assert_eq!(batch.schema(), expected.schema());
    }
    assert_eq!(concat(&expected.schema(), batches), expected);
}

#[test]
fn a_restored_parquet_reader_resumes_across_row_groups() {
    let dir = TempDir::new("parquet-resume");
    let file = dir.path().join("t.parquet");
    let written = write_parquet(&file, 11);
    let source = ParquetSource::new([&file]).with_batch_size(2);
    let split = source.splits(1).unwrap().remove(0);
    for polls in 0..7 {
        let mut reader = source.create_reader(split.clone()).unwrap();
        let mut read = Vec::new();
        for _ in 0..polls {
            if let SourcePoll::Ready(b) = reader.poll(100).unwrap() {
                read.push(b.into_data());
            }
        }
        let mut resumed = source.create_reader(reader.snapshot()).unwrap();
        read.extend(drain(&mut resumed, 100));
        assert_eq!(
            concat(&written.schema(), read),
            written,
            "after {polls} polls"
        );
    }
}

#[test]
fn parquet_round_trips_through_the_sink() {
    let dir = TempDir::new("parquet-sink");
    let batch = sample();
    let env = StreamEnv::new().with_parallelism(1);
    env.from_source(RecordBatchSource::new([
        batch.slice(0, 2),
        batch.slice(2, 2),
    ]))
    .sink_table(TableFileSink::parquet(dir.path()));
    env.execute("write parquet").unwrap();
    assert_eq!(files(dir.path()), vec!["part-0-0.parquet"]);
    let env = StreamEnv::new().with_parallelism(1);
    let rows = env
        .from_source(ParquetSource::new([dir.path()]))
        .collect_table();
    env.execute("read parquet").unwrap();
    assert_eq!(concat(&batch.schema(), rows.take_record_batches()), batch);
}

/// Fails once, at the first batch after a checkpoint completed; slows down until then so a
/// checkpoint completes while the input is still being read.
struct FailOnceAfterCheckpoint {
    checkpointed: bool,
    armed: Arc<AtomicBool>,
}

impl Operator for FailOnceAfterCheckpoint {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), TaskError> {
        self.checkpointed = false;
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if !self.checkpointed {
            std::thread::sleep(Duration::from_millis(1));
        } else if self.armed.swap(false, Ordering::SeqCst) {
            panic!("injected failure");
        }
        out.collect(batch)
    }

    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), TaskError> {
        self.checkpointed = true;
        Ok(())
    }
}

#[test]
fn csv_to_csv_is_exactly_once_across_a_failure() {
    let input = TempDir::new("exactly-once-in");
    let output = TempDir::new("exactly-once-out");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let mut expected = Vec::new();
    for f in 0..2 {
        let mut text = String::new();
        for i in 0..400 {
            let id = f * 1000 + i;
            text.push_str(&format!("{id},\"row {id}, file {f}\"\n"));
            expected.push(format!("{id},\"row {id}, file {f}\""));
        }
        std::fs::write(input.path().join(format!("in-{f}.csv")), text).unwrap();
    }
    expected.sort();

    let armed = Arc::new(AtomicBool::new(true));
    let env = StreamEnv::new()
        .with_parallelism(2)
        .with_buffer_timeout(Duration::from_millis(1))
        .with_checkpointing(CheckpointConfig::every(Duration::from_millis(5)))
        .with_restart_strategy(RestartStrategy::fixed_delay(2, Duration::ZERO));
    let flag = Arc::clone(&armed);
    env.from_source(CsvSource::new([input.path()], schema).with_batch_size(10))
        .transform("fail once", move || FailOnceAfterCheckpoint {
            checkpointed: false,
            armed: Arc::clone(&flag),
        })
        .sink_table(TableFileSink::csv(output.path(), CsvFormat::new()));
    let result = env.execute("copy csv").unwrap();
    assert!(
        !armed.load(Ordering::SeqCst),
        "the failure was not injected"
    );
    assert_eq!(result.restarts, 1);

    let mut lines = Vec::new();
    for name in files(output.path()) {
        assert!(!name.starts_with('.'), "uncommitted file {name} left");
        let text = std::fs::read_to_string(output.path().join(&name)).unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    lines.sort();
    assert_eq!(lines, expected);
}
