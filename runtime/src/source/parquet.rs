//! Parquet files as a bounded source of insert-only [`ChangelogBatch`]es: one split per file,
//! columns projected inside the Parquet reader, the position a row group and a row in it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::errors::ParquetError;
use serde::{Deserialize, Serialize};

use super::{FileError, Source, SourcePoll, SourceReader, TextFileSource};
use crate::batch::arrow::ChangelogBatch;
use crate::error::BoxError;

/// Why a Parquet file could not be read, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParquetReadError {
    /// The file is not valid Parquet, or its metadata or schema could not be read.
    #[error("could not read the Parquet file {path:?}: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader said.
        #[source]
        source: ParquetError,
    },
    /// A page of the file could not be decoded.
    #[error("could not decode rows of the Parquet file {path:?}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: ArrowError,
    },
    /// A projection names a column the file does not have.
    #[error("projection index {index} is out of range: {path:?} has {columns} top-level columns")]
    ProjectionOutOfRange {
        /// The file.
        path: PathBuf,
        /// The index asked for.
        index: usize,
        /// The number of top-level columns in the file.
        columns: usize,
    },
    /// A restored position lies beyond the file's rows: the file changed since the checkpoint.
    #[error(
        "cannot resume {path:?} at row group {row_group}: the file has only {row_groups} row groups; restore with the same input files"
    )]
    PositionBeyondEnd {
        /// The file.
        path: PathBuf,
        /// The checkpointed row group.
        row_group: usize,
        /// The number of row groups now.
        row_groups: usize,
    },
}

/// A Parquet file to read, and the position of the next row in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParquetSplit {
    /// The file.
    pub path: PathBuf,
    /// The row group of the next row.
    pub row_group: usize,
    /// The rows of that row group already read.
    pub row_offset: u64,
}

/// A bounded source of Parquet files producing insert-only [`ChangelogBatch`]es, one split per
/// file.
///
/// Paths are files or directories (standing for their visible files in name order, as for
/// [`TextFileSource`]). With a [projection](ParquetSource::with_projection) only the asked
/// columns are decoded: the projection is pushed into the Parquet reader. Every file must have
/// the same schema.
///
/// # Positions
///
/// A reader's snapshot is the row group and the row within it after the last row returned; a
/// restored job skips straight there.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch, StringArray};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use parquet::arrow::ArrowWriter;
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::source::ParquetSource;
///
/// let file = std::env::temp_dir().join(format!("rivulet-doc-parquet-{}.parquet", std::process::id()));
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("name", DataType::Utf8, false),
///     Field::new("score", DataType::Int64, false),
/// ]));
/// let batch = RecordBatch::try_new(Arc::clone(&schema), vec![
///     Arc::new(StringArray::from(vec!["alice", "bob"])),
///     Arc::new(Int64Array::from(vec![3, 5])),
/// ]).unwrap();
/// let mut writer = ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), schema, None).unwrap();
/// writer.write(&batch).unwrap();
/// writer.close().unwrap();
///
/// assert_eq!(ParquetSource::schema_of(&file).unwrap().field(1).name(), "score");
/// let env = StreamEnv::new().with_parallelism(1);
/// let scores = env.from_source(ParquetSource::new([&file]).with_projection([1])).collect_table();
/// env.execute("read parquet").unwrap();
/// assert_eq!(scores.take_changelog(), vec!["+I[3]", "+I[5]"]);
/// std::fs::remove_file(&file).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ParquetSource {
    paths: Vec<PathBuf>,
    projection: Option<Vec<usize>>,
    batch_size: Option<usize>,
}

impl ParquetSource {
    /// A source reading `paths`: files, or directories of files.
    pub fn new(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        ParquetSource {
            paths: paths.into_iter().map(Into::into).collect(),
            projection: None,
            batch_size: None,
        }
    }

    /// Reads only the top-level columns at `indices` of the file schema, in that order.
    ///
    /// Default: every column.
    pub fn with_projection(mut self, indices: impl IntoIterator<Item = usize>) -> Self {
        self.projection = Some(indices.into_iter().collect());
        self
    }

    /// Sets the largest number of rows per batch.
    ///
    /// Default: the environment's batch size.
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = Some(rows.max(1));
        self
    }

    /// The Arrow schema of the Parquet file at `path`, for registering a table over it.
    ///
    /// # Errors
    /// When the file cannot be opened or is not Parquet.
    pub fn schema_of(path: impl AsRef<Path>) -> Result<SchemaRef, BoxError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(FileError::io("open", path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| {
            ParquetReadError::Metadata {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(Arc::clone(builder.schema()))
    }
}

impl Source for ParquetSource {
    type Batch = ChangelogBatch;
    type Split = ParquetSplit;
    type Reader = ParquetReader;

    fn splits(&self, parallelism: usize) -> Result<Vec<ParquetSplit>, BoxError> {
        let files = TextFileSource::new(self.paths.clone()).splits(parallelism)?;
        Ok(files
            .into_iter()
            .map(|f| ParquetSplit {
                path: f.path,
                row_group: 0,
                row_offset: 0,
            })
            .collect())
    }

    fn create_reader(&self, split: ParquetSplit) -> Result<ParquetReader, BoxError> {
        ParquetReader::open(split, self.projection.clone(), self.batch_size)
    }

    fn name(&self) -> String {
        "Source: Parquet files".to_owned()
    }
}

/// Reads the rows of one [`ParquetSplit`].
pub struct ParquetReader {
    split: ParquetSplit,
    /// Set up with everything but the batch size, which the first poll decides.
    builder: Option<ParquetRecordBatchReaderBuilder<File>>,
    reader: Option<ParquetRecordBatchReader>,
    batch_size: Option<usize>,
    /// The number of rows of each row group.
    row_group_rows: Vec<u64>,
    /// The positions, in the decoded columns (in file order), of the projected columns in the
    /// asked order; `None` when they already are in that order.
    reorder: Option<Vec<usize>>,
}

impl std::fmt::Debug for ParquetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetReader")
            .field("split", &self.split)
            .finish_non_exhaustive()
    }
}

impl ParquetReader {
    fn open(
        split: ParquetSplit,
        projection: Option<Vec<usize>>,
        batch_size: Option<usize>,
    ) -> Result<Self, BoxError> {
        let path = &split.path;
        let file = File::open(path).map_err(FileError::io("open", path))?;
        let metadata_error = |source| ParquetReadError::Metadata {
            path: path.clone(),
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(metadata_error)?;
        let row_group_rows: Vec<u64> = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| rg.num_rows().max(0) as u64)
            .collect();
        let row_groups = row_group_rows.len();
        let at_end = split.row_group == row_groups && split.row_offset == 0;
        if split.row_group > row_groups
            || (split.row_group < row_groups && split.row_offset > row_group_rows[split.row_group])
            || (split.row_group == row_groups && !at_end)
        {
            return Err(ParquetReadError::PositionBeyondEnd {
                path: path.clone(),
                row_group: split.row_group,
                row_groups,
            }
            .into());
        }
        let mut reorder = None;
        let mut builder = builder
            .with_row_groups((split.row_group..row_groups).collect())
            .with_offset(split.row_offset as usize);
        if let Some(indices) = projection {
            let columns = builder.schema().fields().len();
            if let Some(&index) = indices.iter().find(|&&i| i >= columns) {
                return Err(ParquetReadError::ProjectionOutOfRange {
                    path: path.clone(),
                    index,
                    columns,
                }
                .into());
            }
            let mut sorted = indices.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted != indices {
                reorder = Some(
                    indices
                        .iter()
                        .map(|i| sorted.binary_search(i).unwrap_or_default())
                        .collect(),
                );
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), sorted);
            builder = builder.with_projection(mask);
        }
        Ok(ParquetReader {
            builder: (!at_end).then_some(builder),
            split,
            reader: None,
            batch_size,
            row_group_rows,
            reorder,
        })
    }

    /// Moves the position `rows` rows on.
    fn advance(&mut self, rows: u64) {
        self.split.row_offset += rows;
        while let Some(&in_group) = self.row_group_rows.get(self.split.row_group) {
            if self.split.row_offset < in_group {
                break;
            }
            self.split.row_offset -= in_group;
            self.split.row_group += 1;
        }
    }
}

impl SourceReader for ParquetReader {
    type Batch = ChangelogBatch;
    type Split = ParquetSplit;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<ChangelogBatch>, BoxError> {
        if let Some(builder) = self.builder.take() {
            let size = self
                .batch_size
                .map_or(max_records, |b| b.min(max_records))
                .max(1);
            let reader = builder.with_batch_size(size).build().map_err(|source| {
                ParquetReadError::Metadata {
                    path: self.split.path.clone(),
                    source,
                }
            })?;
            self.reader = Some(reader);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(SourcePoll::Finished);
        };
        let batch = match reader.next() {
            None => {
                self.reader = None;
                return Ok(SourcePoll::Finished);
            }
            Some(batch) => batch.map_err(|source| ParquetReadError::Decode {
                path: self.split.path.clone(),
                source,
            })?,
        };
        self.advance(batch.num_rows() as u64);
        let batch = match &self.reorder {
            Some(positions) => batch.project(positions)?,
            None => batch,
        };
        Ok(SourcePoll::Ready(ChangelogBatch::insert_only(batch)))
    }

    fn snapshot(&self) -> ParquetSplit {
        self.split.clone()
    }
}
