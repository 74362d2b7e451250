//! [`TableEnv`]: the entry point of table programs, with its catalog and configuration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use parking_lot::Mutex;
use rivulet_optimizer::error::closest;
use rivulet_optimizer::plan::LogicalPlan;
use rivulet_optimizer::source::{TableSource, TableSourceRef};
use rivulet_optimizer::{ChangelogMode, PlanError, builder};
use rivulet_runtime::relational::{BadDataPolicy, BadRows};
use rivulet_runtime::{ChangelogBatch, Data, DataStream, RowKind, Stream, StreamEnv};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::convert;
use crate::error::TableError;
use crate::sources::{MemTable, StreamTable};
use crate::table::Table;

/// Settings of a table environment.
#[derive(Debug, Clone, Default)]
pub struct TableConfig {
    /// What to do with rows whose expressions fail (a failed cast, a division by zero).
    pub bad_data: BadDataPolicy,
}

/// The entry point of table programs: a [`StreamEnv`], a mode (streaming or batch) and a catalog
/// of named tables and views. Cheap to clone; clones share the catalog.
#[derive(Clone)]
pub struct TableEnv {
    inner: Arc<Inner>,
}

struct Inner {
    stream: StreamEnv,
    batch: bool,
    catalog: Mutex<BTreeMap<String, Arc<LogicalPlan>>>,
    config: Mutex<TableConfig>,
    bad_rows: BadRows,
    unnamed: AtomicUsize,
}

impl std::fmt::Debug for TableEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableEnv")
            .field("batch", &self.inner.batch)
            .field("tables", &self.table_names())
            .finish()
    }
}

impl TableEnv {
    fn with_mode(stream: StreamEnv, batch: bool) -> Self {
        TableEnv {
            inner: Arc::new(Inner {
                stream,
                batch,
                catalog: Mutex::new(BTreeMap::new()),
                config: Mutex::new(TableConfig::default()),
                bad_rows: BadRows::new(),
                unnamed: AtomicUsize::new(0),
            }),
        }
    }

    /// A streaming environment: results are changelogs that update as input arrives.
    pub fn streaming(stream: StreamEnv) -> Self {
        Self::with_mode(stream, false)
    }

    /// A batch environment: every source is bounded, and results are final and insert-only.
    pub fn batch(stream: StreamEnv) -> Self {
        Self::with_mode(stream, true)
    }

    /// Whether this is a batch environment.
    pub fn is_batch(&self) -> bool {
        self.inner.batch
    }

    /// The stream environment the tables run on.
    pub fn stream_env(&self) -> &StreamEnv {
        &self.inner.stream
    }

    /// Sets what happens to rows whose expressions fail.
    pub fn with_bad_data_policy(self, policy: BadDataPolicy) -> Self {
        self.inner.config.lock().bad_data = policy;
        self
    }

    /// The current configuration.
    pub fn config(&self) -> TableConfig {
        self.inner.config.lock().clone()
    }

    /// The rows skipped under [`BadDataPolicy::Skip`], counted across this environment's jobs.
    pub fn bad_rows(&self) -> BadRows {
        self.inner.bad_rows.clone()
    }

    pub(crate) fn same(&self, other: &TableEnv) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn unnamed(&self) -> String {
        format!(
            "unnamed_{}",
            self.inner.unnamed.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn table_of(&self, plan: LogicalPlan) -> Table {
        Table::new(self.clone(), Arc::new(plan))
    }

    /// A table over `source`, not registered (its columns are qualified by a generated name).
    pub fn from_source(&self, source: TableSourceRef) -> Result<Table, PlanError> {
        if self.is_batch() && !source.bounded() {
            return Err(PlanError::invalid(
                "from_source",
                "a batch environment reads only bounded sources; use TableEnv::streaming for unbounded ones",
            ));
        }
        Ok(self.table_of(builder::scan(&self.unnamed(), source)))
    }

    /// A table of typed records; the schema is derived from `T` (field names become columns).
    ///
    /// # Errors
    /// When `T`'s fields cannot be mapped to Arrow types.
    pub fn from_records<T: Serialize + DeserializeOwned>(
        &self,
        rows: Vec<T>,
    ) -> Result<Table, TableError> {
        let fields = convert::fields_of::<T>().map_err(|e| TableError::Convert(e.to_string()))?;
        let schema = Arc::new(Schema::new(fields.clone()));
        let mut batches = Vec::new();
        for chunk in rows.chunks(self.inner.stream.batch_size().max(1)) {
            let batch = convert::to_record_batch(chunk, &fields)
                .map_err(|e| TableError::Convert(e.to_string()))?;
            batches.push(ChangelogBatch::insert_only(
                batch.with_schema(Arc::clone(&schema))?,
            ));
        }
        Ok(self.from_source(Arc::new(MemTable {
            schema,
            batches,
            primary_key: None,
        }))?)
    }

    /// A table of record batches, all of `schema`.
    pub fn from_batches(
        &self,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Table, TableError> {
        let batches = batches
            .into_iter()
            .map(|b| {
                Ok(ChangelogBatch::insert_only(
                    b.with_schema(Arc::clone(&schema))?,
                ))
            })
            .collect::<Result<Vec<_>, TableError>>()?;
        Ok(self.from_source(Arc::new(MemTable {
            schema,
            batches,
            primary_key: None,
        }))?)
    }

    /// A table of changelog batches (rows with row kinds), all of `schema`, in retract form.
    pub fn from_changelog_batches(
        &self,
        schema: SchemaRef,
        batches: Vec<ChangelogBatch>,
    ) -> Result<Table, TableError> {
        Ok(self.from_source(Arc::new(MemTable {
            schema,
            batches,
            primary_key: None,
        }))?)
    }

    /// A table over a stream of Arrow batches of this environment.
    pub fn from_arrow_stream(
        &self,
        stream: Stream<ChangelogBatch>,
        schema: SchemaRef,
        mode: ChangelogMode,
        bounded: bool,
    ) -> Result<Table, PlanError> {
        let source = StreamTable {
            schema,
            stream: Mutex::new(stream),
            mode,
            bounded,
            event_time: None,
            primary_key: None,
        };
        Ok(self.table_of(builder::scan(&self.unnamed(), Arc::new(source))))
    }

    /// A table over a typed stream of this environment; the schema is derived from `T`.
    /// Whether it ends is taken from `bounded` (a collection source ends, a generator may not).
    pub fn from_data_stream<T: Data + DeserializeOwned>(
        &self,
        stream: &DataStream<T>,
        bounded: bool,
    ) -> Result<Table, TableError> {
        let fields = convert::fields_of::<T>().map_err(|e| TableError::Convert(e.to_string()))?;
        let schema = Arc::new(Schema::new(fields.clone()));
        let out_schema = Arc::clone(&schema);
        let arrow = stream.transform("ToTable", move || {
            crate::table::RecordsToArrow::<T>::new(fields.clone(), Arc::clone(&out_schema))
        });
        Ok(self.from_arrow_stream(arrow, schema, ChangelogMode::InsertOnly, bounded)?)
    }

    /// A table over a typed changelog stream of this environment: rows of `T` with their row
    /// kinds, in retract form (`+I`, `-U`, `+U`, `-D`) or in upsert form on a key (`+I`/`+U`
    /// replace the key's row, `-D` deletes it; the stream is normalised into retractions, and
    /// the key becomes the table's primary key). Whether it ends is taken from `bounded`.
    ///
    /// # Errors
    /// When `T`'s fields cannot be mapped to Arrow types, or a key column is unknown.
    pub fn from_changelog_stream<T: Data + DeserializeOwned>(
        &self,
        stream: &DataStream<(RowKind, T)>,
        format: ChangelogFormat,
        bounded: bool,
    ) -> Result<Table, TableError> {
        let fields = convert::fields_of::<T>().map_err(|e| TableError::Convert(e.to_string()))?;
        let schema = Arc::new(Schema::new(fields.clone()));
        let (mode, primary_key) = match format {
            ChangelogFormat::Retract => (ChangelogMode::Retract, None),
            ChangelogFormat::Upsert { key } => {
                let plan_schema = rivulet_optimizer::PlanSchema::from_arrow(&schema, None);
                let key = key
                    .iter()
                    .map(|n| {
                        plan_schema.index_of(
                            &rivulet_optimizer::Column::new(n.as_str()),
                            "from_changelog_stream",
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if key.is_empty() {
                    return Err(PlanError::invalid(
                        "from_changelog_stream",
                        "an upsert changelog needs a key of at least one column",
                    )
                    .into());
                }
                (ChangelogMode::Upsert { key: key.clone() }, Some(key))
            }
        };
        let out_schema = Arc::clone(&schema);
        let arrow = stream.transform("ToTable", move || {
            crate::table::ChangesToArrow::<T>::new(fields.clone(), Arc::clone(&out_schema))
        });
        let source = StreamTable {
            schema,
            stream: Mutex::new(arrow),
            mode,
            bounded,
            event_time: None,
            primary_key,
        };
        Ok(self.from_source(Arc::new(source))?)
    }

    /// A table over CSV files (a file, or every file of a directory) with this schema and a
    /// header line when `header`. Bad lines follow the environment's bad-data policy: the job
    /// fails naming the file and line, the field becomes null, or the line is skipped and
    /// counted in [`TableEnv::bad_rows`].
    pub fn read_csv(
        &self,
        path: impl Into<std::path::PathBuf>,
        schema: SchemaRef,
        header: bool,
    ) -> Result<Table, PlanError> {
        let path = path.into();
        let paths = files_of(&path).map_err(|e| PlanError::invalid("read_csv", e))?;
        let source = rivulet_runtime::source::CsvSource::new(paths, Arc::clone(&schema))
            .with_header(header)
            .with_bad_data_policy(self.config().bad_data, self.bad_rows());
        self.from_source(Arc::new(crate::sources::FileTable { source, schema }))
    }

    /// A table over Parquet files (a file, or every file of a directory); the schema is the
    /// first file's.
    pub fn read_parquet(&self, path: impl Into<std::path::PathBuf>) -> Result<Table, PlanError> {
        let path = path.into();
        let paths = files_of(&path).map_err(|e| PlanError::invalid("read_parquet", e))?;
        let first = paths.first().ok_or_else(|| {
            PlanError::invalid("read_parquet", format!("{} holds no files", path.display()))
        })?;
        let schema = rivulet_runtime::source::ParquetSource::schema_of(first)
            .map_err(|e| PlanError::invalid("read_parquet", format!("{}: {e}", first.display())))?;
        let source = rivulet_runtime::source::ParquetSource::new(paths);
        self.from_source(Arc::new(crate::sources::FileTable { source, schema }))
    }

    /// Registers `table` as a view under `name`; reading it later qualifies its columns by
    /// `name`.
    pub fn register(&self, name: &str, table: &Table) -> Result<(), PlanError> {
        let mut catalog = self.inner.catalog.lock();
        if catalog.contains_key(name) {
            return Err(PlanError::TableExists {
                name: name.to_owned(),
            });
        }
        catalog.insert(name.to_owned(), Arc::clone(table.plan()));
        Ok(())
    }

    /// Registers a source under `name`.
    pub fn register_source(
        &self,
        name: &str,
        source: Arc<dyn TableSource>,
    ) -> Result<(), PlanError> {
        let mut catalog = self.inner.catalog.lock();
        if catalog.contains_key(name) {
            return Err(PlanError::TableExists {
                name: name.to_owned(),
            });
        }
        catalog.insert(name.to_owned(), Arc::new(builder::scan(name, source)));
        Ok(())
    }

    /// A set of inserts to run as one job.
    pub fn statement_set(&self) -> crate::StatementSet {
        crate::StatementSet::new(self.clone())
    }

    pub(crate) fn planner_config(&self) -> rivulet_optimizer::physical::PlannerConfig {
        rivulet_optimizer::physical::PlannerConfig {
            batch: self.is_batch(),
            bad_data: self.config().bad_data,
            bad_rows: self.bad_rows(),
        }
    }

    /// Removes the table `name`; whether it existed.
    pub fn drop_table(&self, name: &str) -> bool {
        self.inner.catalog.lock().remove(name).is_some()
    }

    /// The registered table `name`.
    pub fn table(&self, name: &str) -> Result<Table, PlanError> {
        let catalog = self.inner.catalog.lock();
        match catalog.get(name) {
            Some(plan) => {
                let plan = match plan.as_ref() {
                    LogicalPlan::Scan(s) if s.table == name => Arc::clone(plan),
                    _ => Arc::new(builder::alias(Arc::clone(plan), name)),
                };
                Ok(Table::new(self.clone(), plan))
            }
            None => Err(PlanError::UnknownTable {
                name: name.to_owned(),
                suggestion: closest(name, catalog.keys().map(String::as_str)),
                available: catalog.keys().cloned().collect(),
            }),
        }
    }

    /// The names of the registered tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.inner.catalog.lock().keys().cloned().collect()
    }
}

/// `path` itself, or the files of the directory `path`, sorted.
fn files_of(path: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    if path.is_dir() {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Ok(files)
    } else if path.is_file() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(format!(
            "{} does not exist; give a file or a directory of files",
            path.display()
        ))
    }
}

/// How the rows of a changelog stream given to [`TableEnv::from_changelog_stream`] encode
/// updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangelogFormat {
    /// Updates are retraction pairs (`-U old`, `+U new`) and deletes carry the whole row.
    Retract,
    /// Each row is the current version of its key (`+I`/`+U`), or its deletion (`-D`).
    Upsert {
        /// The key columns' names.
        key: Vec<String>,
    },
}

impl ChangelogFormat {
    /// Upserts on the columns `key`.
    pub fn upsert<'a>(key: impl IntoIterator<Item = &'a str>) -> Self {
        ChangelogFormat::Upsert {
            key: key.into_iter().map(str::to_owned).collect(),
        }
    }
}
