//! Table sinks: where a stream of [`ChangelogBatch`]es ends.
//!
//! - [`TableSink`]: the sink trait of the relational plane, run by
//!   [`Stream::sink_table`](crate::Stream::sink_table).
//! - [`TableFileSink`]: exactly-once CSV ([`CsvFormat`]) or Parquet ([`ParquetFormat`]) part
//!   files for insert-only streams, with the two-phase commit of the [`FileSink`](super::FileSink).
//! - [`TableCollectHandle`]: the changelog batches, with their row kinds, for the caller.
//! - [`Stream::print_changelog`](crate::Stream::print_changelog): rows printed as Flink prints
//!   them, `+I[alice, 3]`.
//! - [`pretty_format`]: a table of record batches, as text.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::CollectHandle;
use crate::batch::arrow::{ChangelogBatch, RowKind};
use crate::batch::{Batch, Records};
use crate::datastream::Stream;
use crate::error::{BoxError, TaskError};
use crate::operator::{Operator, OperatorContext, OperatorState, Output};
use crate::source::FileError;

/// Why a table sink could not write, naming the sink or the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableSinkError {
    /// An insert-only sink received an update or a delete.
    #[error(
        "the {sink} sink takes insert-only streams but received a {kind} row; write updating results to a collect or print sink, or materialise them first"
    )]
    NotInsertOnly {
        /// The sink, e.g. "CSV file".
        sink: &'static str,
        /// The row kind received.
        kind: RowKind,
    },
    /// A batch could not be encoded into a part file.
    #[error("could not write {path:?}: {source}")]
    Encode {
        /// The part file being written.
        path: PathBuf,
        /// What the encoder said.
        #[source]
        source: BoxError,
    },
    /// The sink's checkpointed state does not decode.
    #[error("the checkpointed state of the {sink} sink does not decode: {source}")]
    CorruptState {
        /// The sink.
        sink: &'static str,
        /// What the decoder said.
        #[source]
        source: BoxError,
    },
}

/// A sink of [`ChangelogBatch`]es: the relational plane's counterpart of
/// [`SinkFunction`](crate::SinkFunction). All hooks but `write_batch` have defaults.
///
/// An exactly-once sink stages what it writes, pre-commits it in `snapshot_state` and publishes
/// it in `notify_checkpoint_complete` (and in `finish`, at the end of the input).
pub trait TableSink: Send + 'static {
    /// The operator name shown in job graphs.
    fn name(&self) -> String {
        "Sink: table".to_owned()
    }

    /// Called once on the subtask's thread before the first batch.
    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Writes a batch.
    fn write_batch(&mut self, batch: ChangelogBatch) -> Result<(), BoxError>;

    /// The input ended: publish whatever is staged.
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Captures the sink's state for checkpoint `checkpoint_id` (the pre-commit).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<u8>, BoxError> {
        Ok(Vec::new())
    }

    /// Restores what [`TableSink::snapshot_state`] captured, after `open`.
    fn restore_state(&mut self, _state: &[u8]) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` completed: publish what was written before it (the commit).
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The operator running a [`TableSink`].
struct TableSinkOperator<S> {
    sink: S,
}

impl<S: TableSink> Operator for TableSinkOperator<S> {
    type In = ChangelogBatch;
    type Out = Records<()>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), TaskError> {
        Ok(self.sink.open(ctx)?)
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        _out: &mut dyn Output<Records<()>>,
    ) -> Result<(), TaskError> {
        Ok(self.sink.write_batch(batch)?)
    }

    fn process_watermark(
        &mut self,
        _watermark: i64,
        _out: &mut dyn Output<Records<()>>,
    ) -> Result<(), TaskError> {
        Ok(())
    }

    fn finish(&mut self, _out: &mut dyn Output<Records<()>>) -> Result<(), TaskError> {
        Ok(self.sink.finish()?)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState {
            keyed: Default::default(),
            operator: self.sink.snapshot_state(checkpoint_id)?,
        })
    }

    fn restore_state(&mut self, state: &OperatorState) -> Result<(), TaskError> {
        Ok(self.sink.restore_state(&state.operator)?)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), TaskError> {
        Ok(self.sink.notify_checkpoint_complete(checkpoint_id)?)
    }
}

/// Sinks of the relational plane.
impl Stream<ChangelogBatch> {
    /// Sends every batch to `sink`, cloned per subtask. The returned stream is empty; use it to
    /// name the sink or set its parallelism.
    pub fn sink_table<S: TableSink + Clone>(&self, sink: S) -> Stream<Records<()>> {
        let name = sink.name();
        // At the input's parallelism, so the sink reads its input forward: spread over other
        // subtasks, a retraction could overtake the row it retracts.
        self.same_parallelism(
            self.transform(&name, move || TableSinkOperator { sink: sink.clone() }),
        )
    }

    /// Collects every batch, with its row kinds, for the caller; read them from the handle after
    /// `execute`. Exactly-once with checkpointing, as [`collect`](crate::DataStream::collect).
    pub fn collect_table(&self) -> TableCollectHandle {
        let handle = CollectHandle::new();
        self.sink_table(TableCollectSink::new(handle.clone()));
        handle
    }

    /// Prints every row to standard output as Flink does: its row kind, then its fields,
    /// `+I[alice, 3]`, prefixed by the subtask (`2> `) when the sink's parallelism is above one.
    pub fn print_changelog(&self) -> Stream<Records<()>> {
        self.sink_table(PrintChangelogSink {
            prefix: String::new(),
        })
    }
}

/// Formats every row of `batch` as Flink prints a row: `+I[alice, 3]`, nulls as `null`.
///
/// # Errors
/// When a column's type has no text form.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch, StringArray};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::{ChangelogBatch, RowKind};
/// use rivulet_runtime::sink::changelog_rows;
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("name", DataType::Utf8, true),
///     Field::new("n", DataType::Int64, false),
/// ]));
/// let data = RecordBatch::try_new(schema, vec![
///     Arc::new(StringArray::from(vec![Some("alice"), None])),
///     Arc::new(Int64Array::from(vec![3, 4])),
/// ]).unwrap();
/// let batch = ChangelogBatch::from_kinds(data, &[RowKind::UpdateBefore, RowKind::UpdateAfter]).unwrap();
/// assert_eq!(changelog_rows(&batch).unwrap(), vec!["-U[alice, 3]", "+U[null, 4]"]);
/// ```
pub fn changelog_rows(batch: &ChangelogBatch) -> Result<Vec<String>, ArrowError> {
    use std::fmt::Write as _;
    let options = FormatOptions::new().with_null("null");
    let data = batch.data();
    let formatters = data
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(data.num_rows());
    for row in 0..data.num_rows() {
        let mut line = String::new();
        line.push_str(batch.row_kind(row).short_string());
        line.push('[');
        for (i, formatter) in formatters.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            write!(line, "{}", formatter.value(row)).map_err(|_| {
                ArrowError::ComputeError(format!("could not format column {i} of row {row}"))
            })?;
        }
        line.push(']');
        rows.push(line);
    }
    Ok(rows)
}

/// Formats record batches as a table with a header, as Arrow's pretty printer does. A batch that
/// cannot be formatted (batches with different schemas, a type with no text form) gives the
/// reason instead of the table.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::sink::pretty_format;
///
/// let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
/// let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 22]))]).unwrap();
/// assert_eq!(pretty_format(&[batch]), "+----+\n| n  |\n+----+\n| 1  |\n| 22 |\n+----+");
/// ```
pub fn pretty_format(batches: &[RecordBatch]) -> String {
    match arrow::util::pretty::pretty_format_batches(batches) {
        Ok(table) => table.to_string(),
        Err(e) => format!("<the batches cannot be formatted: {e}>"),
    }
}

/// The changelog batches a [`collect_table`](crate::Stream::collect_table) sink received.
///
/// Batches from one subtask keep their order; with a parallelism above one, compare sorted rows
/// ([`take_changelog`](CollectHandle::take_changelog), then sort).
pub type TableCollectHandle = CollectHandle<ChangelogBatch>;

impl CollectHandle<ChangelogBatch> {
    /// Takes every row received so far, formatted as Flink prints it (`+I[alice, 3]`), in the
    /// order received. A batch whose columns have no text form gives the reason as its one line.
    pub fn take_changelog(&self) -> Vec<String> {
        self.take()
            .iter()
            .flat_map(|batch| {
                changelog_rows(batch)
                    .unwrap_or_else(|e| vec![format!("<the batch cannot be formatted: {e}>")])
            })
            .collect()
    }

    /// Takes every batch received so far as record batches, dropping the row kinds.
    pub fn take_record_batches(&self) -> Vec<RecordBatch> {
        self.take()
            .into_iter()
            .map(ChangelogBatch::into_data)
            .collect()
    }
}

/// The sink behind a [`TableCollectHandle`]: publishes at once, or, with checkpointing, stages
/// batches per checkpoint and publishes them when the checkpoint completes.
///
/// # State
///
/// Per subtask: the batches pre-committed at each checkpoint not yet known to be complete,
/// encoded as Arrow IPC. A restored subtask publishes them (their checkpoint completed); the
/// handle publishes each (subtask, checkpoint) once, however often it is committed.
pub struct TableCollectSink {
    handle: TableCollectHandle,
    transactional: bool,
    subtask: usize,
    staged: Vec<ChangelogBatch>,
    pending: Vec<(u64, Vec<ChangelogBatch>)>,
}

impl TableCollectSink {
    /// A sink publishing into `handle`.
    pub fn new(handle: TableCollectHandle) -> Self {
        TableCollectSink {
            handle,
            transactional: false,
            subtask: 0,
            staged: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn corrupt(source: impl Into<BoxError>) -> TableSinkError {
        TableSinkError::CorruptState {
            sink: "collect",
            source: source.into(),
        }
    }
}

impl Clone for TableCollectSink {
    fn clone(&self) -> Self {
        TableCollectSink::new(self.handle.clone())
    }
}

impl TableSink for TableCollectSink {
    fn name(&self) -> String {
        "Sink: collect".to_owned()
    }

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), BoxError> {
        self.transactional = ctx.checkpointing();
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn write_batch(&mut self, batch: ChangelogBatch) -> Result<(), BoxError> {
        if self.transactional {
            self.staged.push(batch);
        } else {
            self.handle.publish(vec![batch]);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        for (id, batches) in self.pending.drain(..) {
            self.handle.commit(self.subtask, id, batches);
        }
        // As the typed collect sink: the end of input publishes what came after the last barrier.
        self.handle.publish(std::mem::take(&mut self.staged));
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<u8>, BoxError> {
        let staged = std::mem::take(&mut self.staged);
        self.pending.push((checkpoint_id, staged));
        let mut encoded: Vec<(u64, Vec<Vec<u8>>)> = Vec::with_capacity(self.pending.len());
        for (id, batches) in &self.pending {
            let mut blobs = Vec::with_capacity(batches.len());
            for batch in batches {
                let mut blob = Vec::new();
                batch.encode(&mut blob)?;
                blobs.push(blob);
            }
            encoded.push((*id, blobs));
        }
        Ok(postcard::to_stdvec(&encoded)?)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), BoxError> {
        if state.is_empty() {
            return Ok(());
        }
        let encoded: Vec<(u64, Vec<Vec<u8>>)> =
            postcard::from_bytes(state).map_err(Self::corrupt)?;
        for (id, blobs) in encoded {
            let batches = blobs
                .iter()
                .map(|b| ChangelogBatch::decode(b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Self::corrupt)?;
            self.handle.commit(self.subtask, id, batches);
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(id, _)| *id <= checkpoint_id);
        self.pending = waiting;
        for (id, batches) in done {
            self.handle.commit(self.subtask, id, batches);
        }
        Ok(())
    }
}

/// Prints each row as Flink does.
#[derive(Clone)]
struct PrintChangelogSink {
    prefix: String,
}

impl TableSink for PrintChangelogSink {
    fn name(&self) -> String {
        "Sink: print".to_owned()
    }

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), BoxError> {
        if ctx.parallelism() > 1 {
            self.prefix = format!("{}> ", ctx.subtask_index() + 1);
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: ChangelogBatch) -> Result<(), BoxError> {
        let rows = changelog_rows(&batch)?;
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        for row in rows {
            writeln!(lock, "{}{row}", self.prefix)?;
        }
        Ok(())
    }
}

/// Fails on any row that is not an insert.
fn require_insert_only(batch: &ChangelogBatch, sink: &'static str) -> Result<(), TableSinkError> {
    let Some(kinds) = batch.row_kinds() else {
        return Ok(());
    };
    match kinds.values().iter().find(|k| **k != RowKind::Insert as i8) {
        Some(&code) => Err(TableSinkError::NotInsertOnly {
            sink,
            kind: RowKind::from_code(code).unwrap_or(RowKind::Delete),
        }),
        None => Ok(()),
    }
}

/// A file format for the part files of a [`TableFileSink`]: how to start a part file, append
/// a batch and finish it.
pub trait PartFormat: Clone + Send + 'static {
    /// An open part file being written.
    type Writer: Send;

    /// The format's name in messages, e.g. "CSV file".
    fn sink_name(&self) -> &'static str;

    /// What part file names end with unless set on the sink, e.g. `.csv`.
    fn default_suffix(&self) -> &'static str;

    /// Starts a part file of batches with `schema`.
    fn create(&self, file: File, schema: &SchemaRef) -> Result<Self::Writer, BoxError>;

    /// Appends a batch.
    fn write(&self, writer: &mut Self::Writer, batch: &RecordBatch) -> Result<(), BoxError>;

    /// Finishes the part file (e.g. writes a footer) and gives the file back to be synced.
    fn close(&self, writer: Self::Writer) -> Result<File, BoxError>;
}

/// CSV part files, written by Arrow's CSV writer: fields quoted when needed, nulls as the null
/// string, timestamps as `YYYY-MM-DD HH:MM:SS.fff`, so a [`CsvSource`](crate::source::CsvSource)
/// with the same options reads them back.
///
/// A null and an empty string are both written as the null string (by default, nothing), so
/// they read back alike.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    header: bool,
    delimiter: u8,
    quote: u8,
    null_string: String,
    timestamp_format: String,
    date_format: String,
}

impl Default for CsvFormat {
    fn default() -> Self {
        CsvFormat {
            header: false,
            delimiter: b',',
            quote: b'"',
            null_string: String::new(),
            timestamp_format: "%Y-%m-%d %H:%M:%S%.3f".to_owned(),
            date_format: "%Y-%m-%d".to_owned(),
        }
    }
}

impl CsvFormat {
    /// The default format: no header, `,` and `"`, nulls as nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether each part file starts with a header line of the column names.
    ///
    /// Default: `false`.
    pub fn with_header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    /// Sets the field delimiter.
    ///
    /// Default: `b','`.
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Sets the quote character.
    ///
    /// Default: `b'"'`.
    pub fn with_quote(mut self, quote: u8) -> Self {
        self.quote = quote;
        self
    }

    /// Sets the text written for null.
    ///
    /// Default: the empty string.
    pub fn with_null_string(mut self, null: impl Into<String>) -> Self {
        self.null_string = null.into();
        self
    }

    /// Sets the `chrono` format of timestamps.
    ///
    /// Default: `%Y-%m-%d %H:%M:%S%.3f`.
    pub fn with_timestamp_format(mut self, format: impl Into<String>) -> Self {
        self.timestamp_format = format.into();
        self
    }

    /// Sets the `chrono` format of dates.
    ///
    /// Default: `%Y-%m-%d`.
    pub fn with_date_format(mut self, format: impl Into<String>) -> Self {
        self.date_format = format.into();
        self
    }
}

impl PartFormat for CsvFormat {
    type Writer = arrow::csv::Writer<File>;

    fn sink_name(&self) -> &'static str {
        "CSV file"
    }

    fn default_suffix(&self) -> &'static str {
        ".csv"
    }

    fn create(&self, file: File, _schema: &SchemaRef) -> Result<Self::Writer, BoxError> {
        Ok(arrow::csv::WriterBuilder::new()
            .with_header(self.header)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote)
            .with_null(self.null_string.clone())
            .with_timestamp_format(self.timestamp_format.clone())
            .with_datetime_format(self.timestamp_format.clone())
            .with_date_format(self.date_format.clone())
            .build(file))
    }

    fn write(&self, writer: &mut Self::Writer, batch: &RecordBatch) -> Result<(), BoxError> {
        Ok(writer.write(batch)?)
    }

    fn close(&self, writer: Self::Writer) -> Result<File, BoxError> {
        Ok(writer.into_inner())
    }
}

/// Parquet part files, one row group per batch size the writer chooses, with the footer
/// written when the part file is closed (at a checkpoint or the end of the input).
#[derive(Debug, Clone, Default)]
pub struct ParquetFormat {
    properties: Option<WriterProperties>,
}

impl ParquetFormat {
    /// Parquet with the writer's default properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the writer's properties (compression, row group size, ...).
    ///
    /// Default: `WriterProperties::default()`.
    pub fn with_properties(mut self, properties: WriterProperties) -> Self {
        self.properties = Some(properties);
        self
    }
}

impl PartFormat for ParquetFormat {
    type Writer = ArrowWriter<File>;

    fn sink_name(&self) -> &'static str {
        "Parquet file"
    }

    fn default_suffix(&self) -> &'static str {
        ".parquet"
    }

    fn create(&self, file: File, schema: &SchemaRef) -> Result<Self::Writer, BoxError> {
        Ok(ArrowWriter::try_new(
            file,
            Arc::clone(schema),
            self.properties.clone(),
        )?)
    }

    fn write(&self, writer: &mut Self::Writer, batch: &RecordBatch) -> Result<(), BoxError> {
        Ok(writer.write(batch)?)
    }

    fn close(&self, writer: Self::Writer) -> Result<File, BoxError> {
        Ok(writer.into_inner()?)
    }
}

/// A part file that was closed at checkpoint `checkpoint_id` and awaits its completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PendingPart {
    checkpoint_id: u64,
    name: String,
}

/// What a subtask of a [`TableFileSink`] checkpoints.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TableFileSinkState {
    next_part: u64,
    pending: Vec<PendingPart>,
}

/// Writes an insert-only stream into CSV or Parquet part files in a directory, exactly once
/// with checkpointing.
///
/// Part files move through the states of the [`FileSink`](super::FileSink):
/// `.part-<subtask>-<n>.csv.inprogress` while written, `.part-<subtask>-<n>.csv.pending` once
/// closed at a checkpoint, `part-<subtask>-<n>.csv` when that checkpoint completed. Without
/// checkpointing each subtask writes one part file and commits it when its input ends. Read the
/// output as the files of the directory whose names do not start with a dot. An update or a
/// delete in the input fails the job ([`TableSinkError::NotInsertOnly`]).
///
/// # State
///
/// Per subtask: the part files closed at a checkpoint and not yet committed, with that
/// checkpoint's id, and the number of the next part file. A restored subtask commits the
/// pending files of its state, deletes its in-progress and pending leftovers, and deletes its
/// committed files numbered from the state's next part on (written after the checkpoint, so
/// replayed by the restored job).
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::sink::{CsvFormat, TableFileSink};
/// use rivulet_runtime::source::RecordBatchSource;
///
/// let dir = std::env::temp_dir().join(format!("rivulet-doc-table-sink-{}", std::process::id()));
/// let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
/// let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
/// let env = StreamEnv::new().with_parallelism(1);
/// env.from_source(RecordBatchSource::new([batch]))
///     .sink_table(TableFileSink::csv(&dir, CsvFormat::new().with_header(true)));
/// env.execute("write csv").unwrap();
/// assert_eq!(std::fs::read_to_string(dir.join("part-0-0.csv")).unwrap(), "n\n1\n2\n");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct TableFileSink<F: PartFormat> {
    directory: PathBuf,
    format: F,
    prefix: String,
    suffix: String,
    transactional: bool,
    subtask: usize,
    initialized: bool,
    next_part: u64,
    /// The part file being written: its final name and its writer.
    in_progress: Option<(String, F::Writer)>,
    pending: Vec<PendingPart>,
}

/// Writes CSV part files.
pub type CsvFileSink = TableFileSink<CsvFormat>;

/// Writes Parquet part files.
pub type ParquetFileSink = TableFileSink<ParquetFormat>;

impl TableFileSink<CsvFormat> {
    /// A sink writing CSV part files (`part-<subtask>-<n>.csv`) into `directory`, created if
    /// needed.
    pub fn csv(directory: impl Into<PathBuf>, format: CsvFormat) -> Self {
        TableFileSink::new(directory, format)
    }
}

impl TableFileSink<ParquetFormat> {
    /// A sink writing Parquet part files (`part-<subtask>-<n>.parquet`) into `directory`,
    /// created if needed.
    pub fn parquet(directory: impl Into<PathBuf>) -> Self {
        TableFileSink::new(directory, ParquetFormat::new())
    }
}

impl<F: PartFormat> Clone for TableFileSink<F> {
    fn clone(&self) -> Self {
        TableFileSink {
            directory: self.directory.clone(),
            format: self.format.clone(),
            prefix: self.prefix.clone(),
            suffix: self.suffix.clone(),
            transactional: false,
            subtask: 0,
            initialized: false,
            next_part: 0,
            in_progress: None,
            pending: Vec::new(),
        }
    }
}

impl<F: PartFormat> TableFileSink<F> {
    /// A sink writing part files of `format` into `directory`, created if needed.
    pub fn new(directory: impl Into<PathBuf>, format: F) -> Self {
        TableFileSink {
            directory: directory.into(),
            suffix: format.default_suffix().to_owned(),
            format,
            prefix: "part".to_owned(),
            transactional: false,
            subtask: 0,
            initialized: false,
            next_part: 0,
            in_progress: None,
            pending: Vec::new(),
        }
    }

    /// Sets what part file names start with. Two sinks may share a directory only with
    /// different prefixes.
    ///
    /// Default: `part`.
    pub fn with_part_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets what part file names end with.
    ///
    /// Default: the format's suffix, `.csv` or `.parquet`.
    pub fn with_part_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    fn part_name(&self, n: u64) -> String {
        format!("{}-{}-{n}{}", self.prefix, self.subtask, self.suffix)
    }

    /// The subtask and number of one of this sink's part files, in any state.
    fn parse_part_name(&self, file_name: &str) -> Option<(usize, u64)> {
        let name = file_name.strip_prefix('.').unwrap_or(file_name);
        let name = name
            .strip_suffix(".inprogress")
            .or_else(|| name.strip_suffix(".pending"))
            .unwrap_or(name);
        let name = name
            .strip_suffix(self.suffix.as_str())?
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('-')?;
        let (subtask, n) = name.split_once('-')?;
        Some((subtask.parse().ok()?, n.parse().ok()?))
    }

    fn in_progress_path(&self, name: &str) -> PathBuf {
        self.directory.join(format!(".{name}.inprogress"))
    }

    fn pending_path(&self, name: &str) -> PathBuf {
        self.directory.join(format!(".{name}.pending"))
    }

    /// Creates the directory, commits a restored state's pending files, deletes this subtask's
    /// leftovers (and committed files written after the restored checkpoint) and continues
    /// numbering after every part file of this subtask.
    fn initialize(&mut self, restored: Option<TableFileSinkState>) -> Result<(), FileError> {
        std::fs::create_dir_all(&self.directory)
            .map_err(FileError::io("create", &self.directory))?;
        let mut replayed_from = u64::MAX;
        if let Some(state) = restored {
            for part in &state.pending {
                self.commit(&part.name)?;
            }
            self.next_part = self.next_part.max(state.next_part);
            replayed_from = state.next_part;
        }
        let entries =
            std::fs::read_dir(&self.directory).map_err(FileError::io("list", &self.directory))?;
        for entry in entries {
            let entry = entry.map_err(FileError::io("list", &self.directory))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let Some((subtask, n)) = self.parse_part_name(file_name) else {
                continue;
            };
            if subtask != self.subtask {
                continue;
            }
            if file_name.starts_with('.') || n >= replayed_from {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(FileError::io("delete", &path))?;
            } else {
                self.next_part = self.next_part.max(n + 1);
            }
        }
        self.initialized = true;
        Ok(())
    }

    fn ensure_initialized(&mut self) -> Result<(), FileError> {
        if self.initialized {
            return Ok(());
        }
        self.initialize(None)
    }

    /// Renames pending file `name` to its final name; one already renamed counts as committed.
    fn commit(&self, name: &str) -> Result<(), FileError> {
        let pending = self.pending_path(name);
        let committed = self.directory.join(name);
        match std::fs::rename(&pending, &committed) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if committed.exists() {
                    Ok(())
                } else {
                    Err(FileError::MissingPending { pending, committed })
                }
            }
            Err(source) => Err(FileError::Io {
                action: "commit",
                path: pending,
                source,
            }),
        }
    }

    /// Finishes and syncs the in-progress file; returns its name and path.
    fn close_in_progress(&mut self) -> Result<Option<(String, PathBuf)>, BoxError> {
        let Some((name, writer)) = self.in_progress.take() else {
            return Ok(None);
        };
        let path = self.in_progress_path(&name);
        let file = self
            .format
            .close(writer)
            .map_err(|source| TableSinkError::Encode {
                path: path.clone(),
                source,
            })?;
        file.sync_all().map_err(FileError::io("sync", &path))?;
        Ok(Some((name, path)))
    }

    fn commit_up_to(&mut self, checkpoint_id: u64) -> Result<(), FileError> {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.checkpoint_id <= checkpoint_id);
        self.pending = waiting;
        for part in done {
            self.commit(&part.name)?;
        }
        Ok(())
    }
}

impl<F: PartFormat> TableSink for TableFileSink<F> {
    fn name(&self) -> String {
        format!("Sink: {}s", self.format.sink_name())
    }

    fn open(&mut self, ctx: &OperatorContext) -> Result<(), BoxError> {
        self.transactional = ctx.checkpointing();
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn write_batch(&mut self, batch: ChangelogBatch) -> Result<(), BoxError> {
        self.ensure_initialized()?;
        require_insert_only(&batch, self.format.sink_name())?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.in_progress.is_none() {
            let name = self.part_name(self.next_part);
            self.next_part += 1;
            let path = self.in_progress_path(&name);
            let file = File::create(&path).map_err(FileError::io("create", &path))?;
            let writer = self
                .format
                .create(file, &batch.schema())
                .map_err(|source| TableSinkError::Encode {
                    path: path.clone(),
                    source,
                })?;
            self.in_progress = Some((name, writer));
        }
        if let Some((name, writer)) = self.in_progress.as_mut() {
            self.format
                .write(writer, batch.data())
                .map_err(|source| TableSinkError::Encode {
                    path: self.directory.join(format!(".{name}.inprogress")),
                    source,
                })?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.ensure_initialized()?;
        self.commit_up_to(u64::MAX)?;
        if let Some((name, path)) = self.close_in_progress()? {
            let committed = self.directory.join(&name);
            std::fs::rename(&path, &committed).map_err(FileError::io("commit", &path))?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<u8>, BoxError> {
        self.ensure_initialized()?;
        if let Some((name, path)) = self.close_in_progress()? {
            let pending = self.pending_path(&name);
            std::fs::rename(&path, &pending).map_err(FileError::io("rename", &path))?;
            self.pending.push(PendingPart {
                checkpoint_id,
                name,
            });
        }
        let state = TableFileSinkState {
            next_part: self.next_part,
            pending: self.pending.clone(),
        };
        Ok(postcard::to_stdvec(&state)?)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), BoxError> {
        let restored = if state.is_empty() {
            None
        } else {
            let state = postcard::from_bytes(state).map_err(|e| TableSinkError::CorruptState {
                sink: self.format.sink_name(),
                source: e.into(),
            })?;
            Some(state)
        };
        Ok(self.initialize(restored)?)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        if !self.transactional {
            return Ok(());
        }
        Ok(self.commit_up_to(checkpoint_id)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arrow::array::{Int8Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rivulet-table-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn batch(values: Vec<i64>) -> ChangelogBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        ChangelogBatch::insert_only(
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap(),
        )
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn open(dir: &Path, checkpointing: bool) -> CsvFileSink {
        let mut ctx = OperatorContext::new("Sink: CSV files", 0, 1, 128);
        ctx.checkpointing = checkpointing;
        let mut sink = TableFileSink::csv(dir, CsvFormat::new().with_header(true));
        sink.open(&ctx).unwrap();
        sink
    }

    #[test]
    fn part_files_are_committed_only_when_their_checkpoint_completes() {
        let dir = temp_dir("two-phase");
        let mut sink = open(&dir, true);
        sink.write_batch(batch(vec![1, 2])).unwrap();
        assert_eq!(files(&dir), vec![".part-0-0.csv.inprogress"]);
        let state = sink.snapshot_state(1).unwrap();
        sink.write_batch(batch(vec![3])).unwrap();
        assert_eq!(
            files(&dir),
            vec![".part-0-0.csv.pending", ".part-0-1.csv.inprogress"]
        );
        sink.notify_checkpoint_complete(1).unwrap();
        assert_eq!(
            files(&dir),
            vec![".part-0-1.csv.inprogress", "part-0-0.csv"]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("part-0-0.csv")).unwrap(),
            "n\n1\n2\n"
        );
        // A failure now: the restored subtask drops the in-progress file, whose rows replay.
        drop(sink);
        let mut restored = open(&dir, true);
        restored.restore_state(&state).unwrap();
        assert_eq!(files(&dir), vec!["part-0-0.csv"]);
        restored.write_batch(batch(vec![3])).unwrap();
        restored.finish().unwrap();
        assert_eq!(files(&dir), vec!["part-0-0.csv", "part-0-1.csv"]);
        assert_eq!(
            std::fs::read_to_string(dir.join("part-0-1.csv")).unwrap(),
            "n\n3\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn updates_are_rejected_by_file_sinks() {
        let dir = temp_dir("updates");
        let mut sink = open(&dir, false);
        let data = batch(vec![1]).into_data();
        let update = ChangelogBatch::with_row_kinds(data, Int8Array::from(vec![2])).unwrap();
        let error = sink.write_batch(update).unwrap_err().to_string();
        assert!(
            error.contains("insert-only") && error.contains("+U"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn changelog_rows_print_row_kinds_and_nulls() {
        let data = batch(vec![7]).into_data();
        let rows = changelog_rows(
            &ChangelogBatch::with_row_kinds(data, Int8Array::from(vec![3])).unwrap(),
        )
        .unwrap();
        assert_eq!(rows, vec!["-D[7]"]);
    }
}
