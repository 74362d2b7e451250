//! Table sources of the Table API: in-memory batches and streams of the same environment.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parking_lot::Mutex;
use rivulet_optimizer::source::{EventTimeSpec, Statistics, TableSource};
use rivulet_optimizer::{ChangelogMode, PlanError};
use rivulet_runtime::source::{CsvSource, ParquetSource, RecordBatchSource, Source};
use rivulet_runtime::{ChangelogBatch, Operator, Output, Stream, StreamEnv, TaskError};

/// Rows held in memory.
pub(crate) struct MemTable {
    pub schema: SchemaRef,
    pub batches: Vec<ChangelogBatch>,
    pub primary_key: Option<Vec<usize>>,
}

impl fmt::Debug for MemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemTable")
            .field("schema", &self.schema)
            .field("batches", &self.batches.len())
            .finish()
    }
}

impl TableSource for MemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn bounded(&self) -> bool {
        true
    }

    fn changelog_mode(&self) -> ChangelogMode {
        if self.batches.iter().all(ChangelogBatch::is_insert_only) {
            ChangelogMode::InsertOnly
        } else {
            ChangelogMode::Retract
        }
    }

    fn primary_key(&self) -> Option<Vec<usize>> {
        self.primary_key.clone()
    }

    fn statistics(&self) -> Statistics {
        Statistics {
            row_count: Some(self.batches.iter().map(|b| b.num_rows() as u64).sum()),
            distinct_counts: Vec::new(),
        }
    }

    fn create(
        &self,
        env: &StreamEnv,
        _projection: Option<&[usize]>,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        Ok(env
            .from_source(RecordBatchSource::from_changelog(self.batches.clone()))
            .set_parallelism(1)
            .name("Values"))
    }
}

/// A stream already in the environment (from a `DataStream` or a changelog stream).
pub(crate) struct StreamTable {
    pub schema: SchemaRef,
    /// Behind a lock only because a stream's pending exchange is not `Sync`.
    pub stream: Mutex<Stream<ChangelogBatch>>,
    pub mode: ChangelogMode,
    pub bounded: bool,
    pub event_time: Option<EventTimeSpec>,
    pub primary_key: Option<Vec<usize>>,
}

impl fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTable")
            .field("schema", &self.schema)
            .field("mode", &self.mode)
            .finish()
    }
}

impl TableSource for StreamTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn bounded(&self) -> bool {
        self.bounded
    }

    fn changelog_mode(&self) -> ChangelogMode {
        self.mode.clone()
    }

    fn primary_key(&self) -> Option<Vec<usize>> {
        self.primary_key.clone()
    }

    fn event_time(&self) -> Option<EventTimeSpec> {
        self.event_time.clone()
    }

    fn create(
        &self,
        env: &StreamEnv,
        _projection: Option<&[usize]>,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let stream = self.stream.lock().clone();
        if env.same(stream.env()) {
            return Ok(stream);
        }
        // Planned into another environment (an explained plan): an empty stand-in.
        let stand_in = env
            .from_source(RecordBatchSource::from_changelog(Vec::new()))
            .name("DataStream");
        Ok(match stream.explicit_parallelism() {
            Some(p) => stand_in.set_parallelism(p),
            None => stand_in,
        })
    }
}

/// A file source whose reader can read only some columns.
pub(crate) trait ProjectingSource:
    Source<Batch = ChangelogBatch> + Clone + fmt::Debug + Send + Sync + 'static
{
    /// The operator name in job graphs.
    const NAME: &'static str;

    /// The same source reading only the columns at `projection`.
    fn project(self, projection: &[usize]) -> Self;
}

impl ProjectingSource for CsvSource {
    const NAME: &'static str = "CsvSource";

    fn project(self, projection: &[usize]) -> Self {
        self.with_projection(projection.iter().copied())
    }
}

impl ProjectingSource for ParquetSource {
    const NAME: &'static str = "ParquetSource";

    fn project(self, projection: &[usize]) -> Self {
        self.with_projection(projection.iter().copied())
    }
}

/// Files (CSV, Parquet) read with projection pushed into the reader.
#[derive(Debug)]
pub(crate) struct FileTable<S> {
    pub source: S,
    pub schema: SchemaRef,
}

impl<S: ProjectingSource> TableSource for FileTable<S> {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn bounded(&self) -> bool {
        true
    }

    fn supports_projection(&self) -> bool {
        true
    }

    fn create(
        &self,
        env: &StreamEnv,
        projection: Option<&[usize]>,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let source = match projection {
            Some(p) => self.source.clone().project(p),
            None => self.source.clone(),
        };
        Ok(env.from_source(source).name(S::NAME))
    }
}

/// A source with a primary key or an event-time column declared on it by the Table API.
#[derive(Debug)]
pub(crate) struct Declared {
    pub inner: Arc<dyn TableSource>,
    pub primary_key: Option<Vec<usize>>,
    pub event_time: Option<EventTimeSpec>,
    /// A `BIGINT` column of epoch milliseconds read as `TIMESTAMP(3)` (the event-time column of
    /// typed records with an `i64` time field).
    pub retimed: Option<usize>,
}

impl Declared {
    /// `source` as it is, ready for declarations.
    pub fn of(source: &Arc<dyn TableSource>) -> Self {
        Declared {
            inner: Arc::clone(source),
            primary_key: source.primary_key(),
            event_time: source.event_time(),
            retimed: None,
        }
    }
}

const MILLIS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

impl TableSource for Declared {
    fn schema(&self) -> SchemaRef {
        let schema = self.inner.schema();
        match self.retimed {
            None => schema,
            Some(column) => {
                let mut fields: Vec<Field> =
                    schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields[column] = fields[column].clone().with_data_type(MILLIS);
                Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
            }
        }
    }

    fn bounded(&self) -> bool {
        self.inner.bounded()
    }

    fn changelog_mode(&self) -> ChangelogMode {
        self.inner.changelog_mode()
    }

    fn primary_key(&self) -> Option<Vec<usize>> {
        self.primary_key.clone()
    }

    fn event_time(&self) -> Option<EventTimeSpec> {
        self.event_time.clone()
    }

    fn statistics(&self) -> Statistics {
        self.inner.statistics()
    }

    fn supports_projection(&self) -> bool {
        self.retimed.is_none() && self.inner.supports_projection()
    }

    fn create(
        &self,
        env: &StreamEnv,
        projection: Option<&[usize]>,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let stream = self.inner.create(env, projection)?;
        let Some(column) = self.retimed else {
            return Ok(stream);
        };
        let schema = self.schema();
        Ok(
            stream.same_parallelism(stream.transform("ReadTimestamps", move || Retime {
                column,
                schema: Arc::clone(&schema),
            })),
        )
    }
}

/// Reads a `BIGINT` column of epoch milliseconds as `TIMESTAMP(3)`.
struct Retime {
    column: usize,
    schema: SchemaRef,
}

impl Operator for Retime {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        let mut columns = batch.data().columns().to_vec();
        columns[self.column] = arrow::compute::cast(&columns[self.column], &MILLIS)?;
        let data = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        out.collect(batch.with_data(data)?)
    }
}
