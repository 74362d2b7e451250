//! Writing tables into sinks: [`StatementSet`] runs several inserts as one job sharing one plan.

use std::path::PathBuf;

use rivulet_optimizer::PlanError;
use rivulet_optimizer::changelog::updating_producer;
use rivulet_optimizer::physical::PhysicalPlanner;
use rivulet_runtime::sink::{
    CsvFileSink, CsvFormat, ParquetFileSink, TableCollectHandle, TableCollectSink,
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
}

impl TableSinkTarget {
    fn accepts_updates(&self) -> bool {
        matches!(
            self,
            TableSinkTarget::PrintChangelog | TableSinkTarget::Collect(_)
        )
    }

    fn name(&self) -> &'static str {
        match self {
            TableSinkTarget::Csv(_) => "the CSV file sink",
            TableSinkTarget::Parquet(_) => "the Parquet file sink",
            TableSinkTarget::PrintChangelog => "the print sink",
            TableSinkTarget::Collect(_) => "the collect sink",
        }
    }

    fn attach(&self, stream: &Stream<ChangelogBatch>) {
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
        if !target.accepts_updates()
            && let Some(producer) = updating_producer(table.plan(), self.env.is_batch())
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
            target.attach(&stream);
        }
        Ok(self.env.stream_env().execute(name)?)
    }
}
