//! Where a plan's rows come from and where they go: table sources, sinks, and table functions.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use rivulet_runtime::relational::TableUdf;
use rivulet_runtime::{ChangelogBatch, Stream, StreamEnv};

use crate::changelog::ChangelogMode;
use crate::error::PlanError;

/// A shared table function.
pub type TableUdfRef = Arc<dyn TableUdf>;

/// An event-time column and its watermark: bounded out-of-orderness.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventTimeSpec {
    /// The column's position in the source schema (a `TIMESTAMP(3)` column).
    pub column: usize,
    /// How far behind the largest timestamp seen the watermark trails, in milliseconds.
    pub out_of_orderness_ms: i64,
}

/// What the planner knows about a source's size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Statistics {
    /// The number of rows, when known.
    pub row_count: Option<u64>,
    /// Distinct values per column, when known.
    pub distinct_counts: Vec<Option<u64>>,
}

/// A source of rows for a table: in-memory batches, files, a data stream, a changelog stream.
pub trait TableSource: Send + Sync + fmt::Debug {
    /// The columns it produces, before any projection.
    fn schema(&self) -> SchemaRef;

    /// Whether it ends (files, collections) or runs forever.
    fn bounded(&self) -> bool;

    /// The row kinds it produces.
    fn changelog_mode(&self) -> ChangelogMode {
        ChangelogMode::InsertOnly
    }

    /// The declared primary key, as column positions.
    fn primary_key(&self) -> Option<Vec<usize>> {
        None
    }

    /// The event-time column, when one is declared.
    fn event_time(&self) -> Option<EventTimeSpec> {
        None
    }

    /// Size estimates for the optimizer.
    fn statistics(&self) -> Statistics {
        Statistics::default()
    }

    /// Whether [`TableSource::create`] can read only some columns.
    fn supports_projection(&self) -> bool {
        false
    }

    /// Adds the source to `env` and returns its stream of batches. With a `projection`, the
    /// batches hold only those columns (positions in [`TableSource::schema`]), in that order;
    /// a source that does not support projection is given `None`.
    fn create(
        &self,
        env: &StreamEnv,
        projection: Option<&[usize]>,
    ) -> Result<Stream<ChangelogBatch>, PlanError>;
}

/// A shared table source.
pub type TableSourceRef = Arc<dyn TableSource>;
