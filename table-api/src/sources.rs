//! Table sources of the Table API: in-memory batches and streams of the same environment.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parking_lot::Mutex;
use rivulet_optimizer::source::{EventTimeSpec, Statistics, TableSource};
use rivulet_optimizer::{ChangelogMode, PlanError};
use rivulet_runtime::source::{CsvSource, ParquetSource, RecordBatchSource, Source};
use rivulet_runtime::{ChangelogBatch, Stream, StreamEnv};

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
        _env: &StreamEnv,
        _projection: Option<&[usize]>,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        Ok(self.stream.lock().clone())
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
