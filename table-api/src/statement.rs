//! Writing tables into sinks: [`StatementSet`] runs several inserts as one job sharing one plan.

use std::path::PathBuf;

use rivulet_optimizer::changelog::updating_producer;
use rivulet_optimizer::keys::{has_key_within, unique_keys};
use rivulet_optimizer::physical::PhysicalPlanner;
use rivulet_optimizer::{Column, PlanError, PlanSchema};
use rivulet_runtime::sink::{
    CsvFileSink, CsvFormat, ParquetFileSink, TableCollectHandle, TableCollectSink,
    UpsertCollectHandle,
};
use rivulet_runtime::{ChangelogBatch, JobResult, Stream};

use crate::env::TableEnv;
use crate::error::TableError;
use crate::table::Table;

/// Where an insert writes.
#[derive(Debug, Clone)]
pub enum TableSinkTarget {
    /// CSV part files in a directory, committed exactly once (insert-only tables).
    Csv(PathBuf),
    /// Parquet part files in a directory, committed exactly once (insert-only tables).
    Parquet(PathBuf),
    /// Every change printed as `+I[..]`, `-U[..]`, ... (any table).
    PrintChangelog,
    /// Every change gathered in a handle (any table).
    Collect(TableCollectHandle),
    /// The rows applied to a keyed table in a handle: `+I`/`+U` upsert on `key`, `-U`/`-D`
    /// delete. Takes insert-only tables, and updating ones that have a unique key within `key`
    /// (a group-by on those columns, a declared primary key, ...).
    Upsert {
        /// The key columns' names.
        key: Vec<String>,
        /// Where the current rows are read.
        handle: UpsertCollectHandle,
    },
}

impl TableSinkTarget {
    fn accepts_updates(&self) -> bool {
        matches!(
            self,
            TableSinkTarget::PrintChangelog
                | TableSinkTarget::Collect(_)
                | TableSinkTarget::Upsert { .. }
        )
    }

    fn name(&self) -> &'static str {
        match self {
            TableSinkTarget::Csv(_) => "the CSV file sink",
            TableSinkTarget::Parquet(_) => "the Parquet file sink",
            TableSinkTarget::PrintChangelog => "the print sink",
            TableSinkTarget::Collect(_) => "the collect sink",
            TableSinkTarget::Upsert { .. } => "the upsert sink",
        }
    }

    /// Upserts on `key` into `handle`.
    pub fn upsert<'a>(
        key: impl IntoIterator<Item = &'a str>,
        handle: &UpsertCollectHandle,
    ) -> Self {
        TableSinkTarget::Upsert {
            key: key.into_iter().map(str::to_owned).collect(),
            handle: handle.clone(),
        }
    }

    fn attach(&self, stream: &Stream<ChangelogBatch>, schema: &PlanSchema) {
        match self {
            TableSinkTarget::Csv(dir) => {
                stream.sink_table(CsvFileSink::csv(dir.clone(), CsvFormat::default()));
            }
            TableSinkTarget::Parquet(dir) => {
                stream.sink_table(ParquetFileSink::parquet(dir.clone()));
            }
            TableSinkTarget::PrintChangelog => {
                stream.print_changelog();
            }
            TableSinkTarget::Collect(handle) => {
                stream.sink_table(TableCollectSink::new(handle.clone()));
            }
            TableSinkTarget::Upsert { key, handle } => {
                let key = key_positions(schema, key).expect("the key was checked when added");
                stream.upsert_collect(key, handle);
            }
        }
    }
}

/// Several inserts run as one job; subplans the inserts share are computed once.
pub struct StatementSet {
    env: TableEnv,
    inserts: Vec<(Table, TableSinkTarget)>,
}

impl StatementSet {
    pub(crate) fn new(env: TableEnv) -> Self {
        StatementSet {
            env,
            inserts: Vec::new(),
        }
    }

    /// Adds `table` written into `target`. A sink that takes only inserts rejects an updating
    /// table here, naming the node that produces the updates.
    pub fn add_insert(
        &mut self,
        table: &Table,
        target: TableSinkTarget,
    ) -> Result<&mut Self, PlanError> {
        if !table.env().same(&self.env) {
            return Err(PlanError::invalid(
                "add_insert",
                "the table belongs to another table environment",
            ));
        }
        let updating = updating_producer(table.plan(), self.env.is_batch());
        if let (TableSinkTarget::Upsert { key, .. }, Some(producer)) = (&target, &updating) {
            let positions = key_positions(table.schema(), key)?;
            if !has_key_within(table.plan(), &positions) {
                let names = table.schema().names();
                return Err(PlanError::SinkKeyMismatch {
                    sink: target.name().to_owned(),
                    key: key.clone(),
                    upsert_keys: unique_keys(table.plan())
                        .iter()
                        .map(|k| k.iter().map(|&c| names[c].clone()).collect())
                        .collect(),
                    producer: producer.clone(),
                });
            }
        } else if let TableSinkTarget::Upsert { key, .. } = &target {
            key_positions(table.schema(), key)?;
        }
        if !target.accepts_updates()
            && let Some(producer) = updating
        {
            return Err(PlanError::UpdatingInput {
                consumer: target.name().to_owned(),
                producer,
                hint: "write it to a sink that takes updates (print, collect), or make the query insert-only"
                    .into(),
            });
        }
        self.inserts.push((table.clone(), target));
        Ok(self)
    }

    /// Lowers every insert with one planner and runs them as one job.
    pub fn execute(&self, name: &str) -> Result<JobResult, TableError> {
        let mut planner = PhysicalPlanner::new(self.env.stream_env(), self.env.planner_config());
        for (table, target) in &self.inserts {
            let stream = planner.lower(table.plan())?;
            target.attach(&stream, table.schema());
        }
        Ok(self.env.stream_env().execute(name)?)
    }
}

/// The positions of the sink key columns `key` in `schema`.
fn key_positions(schema: &PlanSchema, key: &[String]) -> Result<Vec<usize>, PlanError> {
    if key.is_empty() {
        return Err(PlanError::invalid(
            "add_insert",
            "an upsert sink needs a key of at least one column",
        ));
    }
    key.iter()
        .map(|n| schema.index_of(&Column::new(n.as_str()), "add_insert"))
        .collect()
}
