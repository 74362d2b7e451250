//! CSV files as a bounded source of insert-only [`ChangelogBatch`]es: one split per file, the
//! position a byte offset and a line number, bad lines handled by a [`BadDataPolicy`].
//!
//! Records are split by the `csv` crate (RFC 4180 quoting: a quoted field may hold the delimiter,
//! line breaks and doubled quotes); each field is then parsed into its column's Arrow type here,
//! a batch at a time, so a bad field can be reported with its file, line and column.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, LargeStringBuilder, PrimitiveBuilder, RecordBatch,
    RecordBatchOptions, StringBuilder,
};
use arrow::compute::filter;
use arrow::compute::kernels::cast_utils::{Parser, parse_decimal};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::{FileError, Source, SourcePoll, SourceReader, TextFileSource};
use crate::batch::arrow::ChangelogBatch;
use crate::error::BoxError;
use crate::relational::{BadDataPolicy, BadRows};

/// Why a CSV file could not be read, naming the file, line and column.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// A field does not parse as its column's type (or is null in a non-nullable column) and
    /// the policy is to fail.
    #[error(
        "{path:?} line {line}, column {column:?}: {reason}; fix the file, or set the bad-data policy to null or skip such lines"
    )]
    BadField {
        /// The file.
        path: PathBuf,
        /// The line the record starts on, counting from 1 (a header is line 1).
        line: u64,
        /// The column's name.
        column: String,
        /// What is wrong, quoting the value.
        reason: String,
    },
    /// A line has more or fewer fields than the schema has columns and the policy is to fail.
    #[error(
        "{path:?} line {line}: expected {expected} fields but found {found}; fix the file, or set the bad-data policy to null (missing fields become null) or skip such lines"
    )]
    FieldCount {
        /// The file.
        path: PathBuf,
        /// The line the record starts on.
        line: u64,
        /// The number of columns of the schema.
        expected: usize,
        /// The number of fields on the line.
        found: usize,
    },
    /// Under the null policy, a bad field of a non-nullable column cannot become null.
    #[error(
        "{path:?} line {line}, column {column:?}: {reason}, and the column is not nullable, so the null policy cannot replace it; declare the column nullable or skip such lines"
    )]
    NotNullable {
        /// The file.
        path: PathBuf,
        /// The line the record starts on.
        line: u64,
        /// The column's name.
        column: String,
        /// What is wrong, quoting the value.
        reason: String,
    },
    /// The file could not be read or split into records.
    #[error("could not read {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the CSV reader said.
        #[source]
        source: csv::Error,
    },
    /// A column's type has no CSV parser.
    #[error(
        "column {column:?} has type {data_type}, which the CSV source cannot parse; declare it as a string, integer, float, boolean, date, timestamp or decimal and cast it after reading"
    )]
    UnsupportedType {
        /// The column's name.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// A projection names a column the schema does not have.
    #[error("projection index {index} is out of range: the schema has {columns} columns")]
    ProjectionOutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of columns.
        columns: usize,
    },
}

/// A CSV file to read, and the position of the next record in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvSplit {
    /// The file.
    pub path: PathBuf,
    /// The byte offset of the next record (0 at the start, before any header).
    pub offset: u64,
    /// The line the next record starts on, counting from 1.
    pub line: u64,
}

/// What every reader of a [`CsvSource`] shares.
#[derive(Debug)]
struct CsvConfig {
    schema: SchemaRef,
    /// The file columns to read, in output order.
    projection: Vec<usize>,
    output: SchemaRef,
    header: bool,
    delimiter: u8,
    quote: u8,
    null_string: String,
    timestamp_format: Option<String>,
    date_format: Option<String>,
    batch_size: Option<usize>,
    policy: BadDataPolicy,
    bad_rows: BadRows,
}

/// A bounded source of CSV files producing insert-only [`ChangelogBatch`]es of a given schema,
/// one split per file.
///
/// Paths are files or directories (standing for their visible files in name order, as for
/// [`TextFileSource`]). Every line holds one field per column of the schema, in order; a field
/// equal to the null string is null. Fields are parsed by column type:
///
/// | type | accepted text |
/// |---|---|
/// | `Utf8`, `LargeUtf8` | anything |
/// | integers, floats | decimal numbers (`Float*` also `1e3`, `NaN`, `inf`) |
/// | `Boolean` | `true`, `false`, `1`, `0` (any case) |
/// | `Date32`, `Date64` | `YYYY-MM-DD`, or the [date format](CsvSource::with_date_format) |
/// | `Timestamp(_, _)` | `YYYY-MM-DD HH:MM:SS[.fff]`, with `T` or a space, or a bare date; or the [timestamp format](CsvSource::with_timestamp_format) |
/// | `Decimal128(p, s)` | decimal numbers, rounded to the scale |
///
/// Timestamps without a zone are read as they are written (no zone conversion).
///
/// # Bad lines
///
/// A field that does not parse, a null (the null string) in a non-nullable column, or a line
/// with the wrong number of fields follows the [bad-data policy](CsvSource::with_bad_data_policy):
/// - [`BadDataPolicy::Fail`] fails the job with a [`CsvError`] naming the file, the line, the
///   column and what was wrong.
/// - [`BadDataPolicy::Null`] makes the bad field null; a short line's missing fields are null
///   and a long line's extra fields are ignored. A bad field in a **non-nullable** column cannot
///   be null, so it still fails the job ([`CsvError::NotNullable`]): the policy promises to keep
///   every line, and dropping one silently would break that promise.
/// - [`BadDataPolicy::Skip`] drops the line and records it in [`BadRows`] with a sample
///   `path:line: what was wrong`.
///
/// # Positions
///
/// A reader's snapshot is the byte offset and line number after the last record it returned,
/// so a restored job resumes at the next record: nothing is lost or read twice.
///
/// ```
/// use std::sync::Arc;
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::source::CsvSource;
///
/// let file = std::env::temp_dir().join(format!("rivulet-doc-csv-{}.csv", std::process::id()));
/// std::fs::write(&file, "name,score\nalice,3\n\"bob, jr\",\n").unwrap();
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("name", DataType::Utf8, false),
///     Field::new("score", DataType::Int64, true),
/// ]));
/// let env = StreamEnv::new().with_parallelism(1);
/// let rows = env.from_source(CsvSource::new([&file], schema).with_header(true)).collect_table();
/// env.execute("read csv").unwrap();
/// assert_eq!(rows.take_changelog(), vec!["+I[alice, 3]", "+I[bob, jr, null]"]);
/// std::fs::remove_file(&file).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CsvSource {
    paths: Vec<PathBuf>,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    header: bool,
    delimiter: u8,
    quote: u8,
    null_string: String,
    timestamp_format: Option<String>,
    date_format: Option<String>,
    batch_size: Option<usize>,
    policy: BadDataPolicy,
    bad_rows: BadRows,
}

impl CsvSource {
    /// A source reading `paths` (files, or directories of files) as rows of `schema`.
    pub fn new(paths: impl IntoIterator<Item = impl Into<PathBuf>>, schema: SchemaRef) -> Self {
        CsvSource {
            paths: paths.into_iter().map(Into::into).collect(),
            schema,
            projection: None,
            header: false,
            delimiter: b',',
            quote: b'"',
            null_string: String::new(),
            timestamp_format: None,
            date_format: None,
            batch_size: None,
            policy: BadDataPolicy::Fail,
            bad_rows: BadRows::new(),
        }
    }

    /// Sets whether each file starts with a header line, which is skipped.
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

    /// Sets the quote character; inside quotes it is escaped by doubling it.
    ///
    /// Default: `b'"'`.
    pub fn with_quote(mut self, quote: u8) -> Self {
        self.quote = quote;
        self
    }

    /// Sets the text that stands for null, in every column.
    ///
    /// Default: the empty string.
    pub fn with_null_string(mut self, null: impl Into<String>) -> Self {
        self.null_string = null.into();
        self
    }

    /// Sets a `chrono` format (such as `%d/%m/%Y %H:%M`) for timestamp columns.
    ///
    /// Default: `YYYY-MM-DD HH:MM:SS[.fff]`, also with a `T`, or a bare date.
    pub fn with_timestamp_format(mut self, format: impl Into<String>) -> Self {
        self.timestamp_format = Some(format.into());
        self
    }

    /// Sets a `chrono` format (such as `%d/%m/%Y`) for date columns.
    ///
    /// Default: `YYYY-MM-DD`.
    pub fn with_date_format(mut self, format: impl Into<String>) -> Self {
        self.date_format = Some(format.into());
        self
    }

    /// Sets the largest number of rows per batch.
    ///
    /// Default: the environment's batch size.
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = Some(rows.max(1));
        self
    }

    /// Reads only the columns at `indices` of the schema, in that order.
    ///
    /// Default: every column.
    pub fn with_projection(mut self, indices: impl IntoIterator<Item = usize>) -> Self {
        self.projection = Some(indices.into_iter().collect());
        self
    }

    /// Sets what happens to bad lines, and where skipped lines are counted.
    ///
    /// Default: [`BadDataPolicy::Fail`].
    pub fn with_bad_data_policy(mut self, policy: BadDataPolicy, bad_rows: BadRows) -> Self {
        self.policy = policy;
        self.bad_rows = bad_rows;
        self
    }

    /// The schema of the batches produced: the schema, projected.
    ///
    /// # Errors
    /// When the projection names a column the schema does not have.
    pub fn output_schema(&self) -> Result<SchemaRef, CsvError> {
        Ok(self.config()?.output)
    }

    /// Checks the schema and projection, and gathers what readers share.
    fn config(&self) -> Result<CsvConfig, CsvError> {
        let columns = self.schema.fields().len();
        let projection = self
            .projection
            .clone()
            .unwrap_or_else(|| (0..columns).collect());
        if let Some(&index) = projection.iter().find(|&&i| i >= columns) {
            return Err(CsvError::ProjectionOutOfRange { index, columns });
        }
        for field in self.schema.fields() {
            if !is_supported(field.data_type()) {
                return Err(CsvError::UnsupportedType {
                    column: field.name().clone(),
                    data_type: field.data_type().clone(),
                });
            }
        }
        let output = Arc::new(Schema::new(
            projection
                .iter()
                .map(|&i| self.schema.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        Ok(CsvConfig {
            schema: Arc::clone(&self.schema),
            projection,
            output,
            header: self.header,
            delimiter: self.delimiter,
            quote: self.quote,
            null_string: self.null_string.clone(),
            timestamp_format: self.timestamp_format.clone(),
            date_format: self.date_format.clone(),
            batch_size: self.batch_size,
            policy: self.policy,
            bad_rows: self.bad_rows.clone(),
        })
    }
}

fn is_supported(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Utf8 | LargeUtf8
            | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Date32
            | Date64
            | Timestamp(_, _)
            | Decimal128(_, _)
    )
}

impl Source for CsvSource {
    type Batch = ChangelogBatch;
    type Split = CsvSplit;
    type Reader = CsvReader;

    fn splits(&self, parallelism: usize) -> Result<Vec<CsvSplit>, BoxError> {
        self.config()?;
        let files = TextFileSource::new(self.paths.clone()).splits(parallelism)?;
        Ok(files
            .into_iter()
            .map(|f| CsvSplit {
                path: f.path,
                offset: 0,
                line: 1,
            })
            .collect())
    }

    fn create_reader(&self, split: CsvSplit) -> Result<CsvReader, BoxError> {
        CsvReader::open(split, Arc::new(self.config()?))
    }

    fn name(&self) -> String {
        "Source: CSV files".to_owned()
    }
}

/// Reads the records of one [`CsvSplit`].
pub struct CsvReader {
    split: CsvSplit,
    reader: csv::Reader<File>,
    /// The byte offset and line where `reader` started: its positions are relative to them.
    base_offset: u64,
    base_line: u64,
    config: Arc<CsvConfig>,
    /// The records of the batch being built, reused from batch to batch.
    records: Vec<csv::ByteRecord>,
    /// The line each record of `records` starts on.
    lines: Vec<u64>,
    /// A malformed line found under the fail policy, reported once the records before it are
    /// parsed.
    deferred: Option<CsvError>,
}

impl std::fmt::Debug for CsvReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvReader")
            .field("split", &self.split)
            .finish_non_exhaustive()
    }
}

/// One field of one record, before parsing.
enum Cell<'a> {
    Null,
    Text(&'a str),
    NotUtf8,
}

impl CsvReader {
    fn open(split: CsvSplit, config: Arc<CsvConfig>) -> Result<Self, BoxError> {
        let path = &split.path;
        let mut file = File::open(path).map_err(FileError::io("open", path))?;
        let len = file.metadata().map_err(FileError::io("read", path))?.len();
        if split.offset > len {
            return Err(FileError::OffsetBeyondEnd {
                path: path.clone(),
                offset: split.offset,
                len,
            }
            .into());
        }
        if split.offset > 0 {
            file.seek(SeekFrom::Start(split.offset))
                .map_err(FileError::io("seek in", path))?;
        }
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(config.delimiter)
            .quote(config.quote)
            .double_quote(true)
            .from_reader(file);
        let mut this = CsvReader {
            base_offset: split.offset,
            base_line: split.line,
            split,
            reader,
            config,
            records: Vec::new(),
            lines: Vec::new(),
            deferred: None,
        };
        if this.split.offset == 0 && this.config.header {
            let mut header = csv::ByteRecord::new();
            this.reader
                .read_byte_record(&mut header)
                .map_err(|source| this.read_error(source))?;
            this.advance();
        }
        Ok(this)
    }

    fn read_error(&self, source: csv::Error) -> CsvError {
        CsvError::Read {
            path: self.split.path.clone(),
            source,
        }
    }

    /// Moves the split's position to where the CSV reader is.
    fn advance(&mut self) {
        let position = self.reader.position();
        self.split.offset = self.base_offset + position.byte();
        self.split.line = self.base_line + position.line() - 1;
    }

    /// Reads up to `limit` records with the right number of fields (or any number, under the
    /// null policy) into `self.records`; returns how many, and whether the file ended.
    fn read_records(&mut self, limit: usize) -> Result<(usize, bool), CsvError> {
        let expected = self.config.schema.fields().len();
        let mut n = 0;
        while n < limit {
            if self.records.len() <= n {
                self.records.push(csv::ByteRecord::new());
                self.lines.push(0);
            }
            let line = self.split.line;
            let more = self
                .reader
                .read_byte_record(&mut self.records[n])
                .map_err(|source| CsvError::Read {
                    path: self.split.path.clone(),
                    source,
                })?;
            if !more {
                return Ok((n, true));
            }
            // The record started where the previous one ended.
            let line = self.records[n]
                .position()
                .map_or(line, |p| self.base_line + p.line() - 1);
            self.advance();
            let found = self.records[n].len();
            if found != expected {
                let path = &self.split.path;
                match self.config.policy {
                    BadDataPolicy::Fail => {
                        // The records before it may hold an earlier bad field: they are
                        // parsed first, and this error is raised after them.
                        self.deferred = Some(CsvError::FieldCount {
                            path: path.clone(),
                            line,
                            expected,
                            found,
                        });
                        return Ok((n, false));
                    }
                    BadDataPolicy::Skip => {
                        self.config.bad_rows.record(|| {
                            format!(
                                "{}:{line}: expected {expected} fields but found {found}",
                                path.display()
                            )
                        });
                        continue;
                    }
                    BadDataPolicy::Null => {}
                }
            }
            self.lines[n] = line;
            n += 1;
        }
        Ok((n, false))
    }

    fn cell(&self, row: usize, column: usize) -> Cell<'_> {
        match self.records[row].get(column) {
            None => Cell::Null,
            Some(bytes) if bytes == self.config.null_string.as_bytes() => Cell::Null,
            Some(bytes) => std::str::from_utf8(bytes).map_or(Cell::NotUtf8, Cell::Text),
        }
    }

    /// Applies the policy to a bad field: an error to return, or `Ok` to write a null (and,
    /// when skipping, mark the row to be dropped).
    fn bad_field(
        &self,
        row: usize,
        column: usize,
        nullable: bool,
        reason: String,
        dropped: &mut [bool],
    ) -> Result<(), CsvError> {
        let path = &self.split.path;
        let line = self.lines[row];
        let name = self.config.schema.field(column).name();
        match self.config.policy {
            BadDataPolicy::Fail => Err(CsvError::BadField {
                path: path.clone(),
                line,
                column: name.clone(),
                reason,
            }),
            BadDataPolicy::Null if nullable => Ok(()),
            BadDataPolicy::Null => Err(CsvError::NotNullable {
                path: path.clone(),
                line,
                column: name.clone(),
                reason,
            }),
            BadDataPolicy::Skip => {
                if !dropped[row] {
                    dropped[row] = true;
                    self.config
                        .bad_rows
                        .record(|| format!("{}:{line}: column {name:?}: {reason}", path.display()));
                }
                Ok(())
            }
        }
    }

    /// Fills `builder` with column `column` of the first `rows` records: `append` parses and
    /// appends a field's text, `null` appends a null.
    fn fill<B>(
        &self,
        column: usize,
        rows: usize,
        dropped: &mut [bool],
        builder: &mut B,
        mut append: impl FnMut(&mut B, &str) -> Result<(), String>,
        mut null: impl FnMut(&mut B),
    ) -> Result<(), CsvError> {
        let field = self.config.schema.field(column);
        let nullable = field.is_nullable();
        for row in 0..rows {
            let (failure, is_null) = match self.cell(row, column) {
                Cell::Text(text) => (append(builder, text).err(), false),
                Cell::Null if nullable => (None, true),
                Cell::Null => (Some("no value in a non-nullable column".to_owned()), true),
                Cell::NotUtf8 => (Some("the field is not valid UTF-8".to_owned()), true),
            };
            if let Some(reason) = failure {
                self.bad_field(row, column, nullable, reason, dropped)?;
                null(builder);
            } else if is_null {
                null(builder);
            }
        }
        Ok(())
    }

    fn primitive<P: ArrowPrimitiveType>(
        &self,
        column: usize,
        rows: usize,
        dropped: &mut [bool],
        parse: impl Fn(&str) -> Option<P::Native>,
    ) -> Result<ArrayRef, CsvError> {
        let data_type = self.config.schema.field(column).data_type();
        let mut builder =
            PrimitiveBuilder::<P>::with_capacity(rows).with_data_type(data_type.clone());
        self.fill(
            column,
            rows,
            dropped,
            &mut builder,
            |b, text| match parse(text) {
                Some(value) => {
                    b.append_value(value);
                    Ok(())
                }
                None => Err(format!("{text:?} is not a valid {data_type}")),
            },
            |b| b.append_null(),
        )?;
        Ok(Arc::new(builder.finish()))
    }

    fn timestamp<P: ArrowPrimitiveType<Native = i64>>(
        &self,
        column: usize,
        rows: usize,
        dropped: &mut [bool],
        to_unit: fn(NaiveDateTime) -> Option<i64>,
    ) -> Result<ArrayRef, CsvError> {
        let format = self.config.timestamp_format.as_deref();
        self.primitive::<P>(column, rows, dropped, |text| {
            to_unit(parse_timestamp(text.trim(), format)?)
        })
    }

    fn column(
        &self,
        column: usize,
        rows: usize,
        dropped: &mut [bool],
    ) -> Result<ArrayRef, CsvError> {
        let field = self.config.schema.field(column);
        let date_format = self.config.date_format.as_deref();
        Ok(match field.data_type() {
            DataType::Utf8 => {
                let mut builder = StringBuilder::with_capacity(rows, rows * 8);
                let append = |b: &mut StringBuilder, text: &str| {
                    b.append_value(text);
                    Ok(())
                };
                self.fill(column, rows, dropped, &mut builder, append, |b| {
                    b.append_null()
                })?;
                Arc::new(builder.finish())
            }
            DataType::LargeUtf8 => {
                let mut builder = LargeStringBuilder::with_capacity(rows, rows * 8);
                let append = |b: &mut LargeStringBuilder, text: &str| {
                    b.append_value(text);
                    Ok(())
                };
                self.fill(column, rows, dropped, &mut builder, append, |b| {
                    b.append_null()
                })?;
                Arc::new(builder.finish())
            }
            DataType::Boolean => {
                let mut builder = BooleanBuilder::with_capacity(rows);
                let append = |b: &mut BooleanBuilder, text: &str| {
                    let value = match text.trim() {
                        t if t.eq_ignore_ascii_case("true") || t == "1" => true,
                        t if t.eq_ignore_ascii_case("false") || t == "0" => false,
                        _ => return Err(format!("{text:?} is not a boolean")),
                    };
                    b.append_value(value);
                    Ok(())
                };
                self.fill(column, rows, dropped, &mut builder, append, |b| {
                    b.append_null()
                })?;
                Arc::new(builder.finish())
            }
            DataType::Int8 => self.primitive::<Int8Type>(column, rows, dropped, Int8Type::parse)?,
            DataType::Int16 => {
                self.primitive::<Int16Type>(column, rows, dropped, Int16Type::parse)?
            }
            DataType::Int32 => {
                self.primitive::<Int32Type>(column, rows, dropped, Int32Type::parse)?
            }
            DataType::Int64 => {
                self.primitive::<Int64Type>(column, rows, dropped, Int64Type::parse)?
            }
            DataType::UInt8 => {
                self.primitive::<UInt8Type>(column, rows, dropped, UInt8Type::parse)?
            }
            DataType::UInt16 => {
                self.primitive::<UInt16Type>(column, rows, dropped, UInt16Type::parse)?
            }
            DataType::UInt32 => {
                self.primitive::<UInt32Type>(column, rows, dropped, UInt32Type::parse)?
            }
            DataType::UInt64 => {
                self.primitive::<UInt64Type>(column, rows, dropped, UInt64Type::parse)?
            }
            DataType::Float32 => {
                self.primitive::<Float32Type>(column, rows, dropped, Float32Type::parse)?
            }
            DataType::Float64 => {
                self.primitive::<Float64Type>(column, rows, dropped, Float64Type::parse)?
            }
            DataType::Date32 => self.primitive::<Date32Type>(column, rows, dropped, |text| {
                let days = parse_date(text.trim(), date_format)? - epoch();
                i32::try_from(days.num_days()).ok()
            })?,
            DataType::Date64 => self.primitive::<Date64Type>(column, rows, dropped, |text| {
                Some((parse_date(text.trim(), date_format)? - epoch()).num_milliseconds())
            })?,
            DataType::Timestamp(TimeUnit::Second, _) => {
                self.timestamp::<TimestampSecondType>(column, rows, dropped, |t| {
                    Some(t.and_utc().timestamp())
                })?
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => self
                .timestamp::<TimestampMillisecondType>(column, rows, dropped, |t| {
                    Some(t.and_utc().timestamp_millis())
                })?,
            DataType::Timestamp(TimeUnit::Microsecond, _) => self
                .timestamp::<TimestampMicrosecondType>(column, rows, dropped, |t| {
                    Some(t.and_utc().timestamp_micros())
                })?,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => self
                .timestamp::<TimestampNanosecondType>(column, rows, dropped, |t| {
                    t.and_utc().timestamp_nanos_opt()
                })?,
            DataType::Decimal128(precision, scale) => {
                let (precision, scale) = (*precision, *scale);
                self.primitive::<Decimal128Type>(column, rows, dropped, |text| {
                    parse_decimal::<Decimal128Type>(text.trim(), precision, scale).ok()
                })?
            }
            other => {
                return Err(CsvError::UnsupportedType {
                    column: field.name().clone(),
                    data_type: other.clone(),
                });
            }
        })
    }

    /// Parses the first `rows` records into a batch of the projected columns, without the
    /// rows dropped under the skip policy.
    fn build_batch(&self, rows: usize) -> Result<RecordBatch, BoxError> {
        let mut dropped = vec![false; rows];
        let mut columns = Vec::with_capacity(self.config.projection.len());
        for &column in &self.config.projection {
            columns.push(self.column(column, rows, &mut dropped)?);
        }
        let mut kept = rows;
        if dropped.iter().any(|d| *d) {
            let keep = BooleanArray::from_iter(dropped.iter().map(|d| Some(!d)));
            kept = keep.true_count();
            columns = columns
                .iter()
                .map(|c| filter(c, &keep))
                .collect::<Result<_, _>>()?;
        }
        let options = RecordBatchOptions::new().with_row_count(Some(kept));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.config.output),
            columns,
            &options,
        )?)
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::default()
}

fn parse_date(text: &str, format: Option<&str>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, format.unwrap_or("%Y-%m-%d")).ok()
}

fn parse_timestamp(text: &str, format: Option<&str>) -> Option<NaiveDateTime> {
    if let Some(format) = format {
        return NaiveDateTime::parse_from_str(text, format).ok();
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .or_else(|| parse_date(text, None)?.and_hms_opt(0, 0, 0))
}

impl SourceReader for CsvReader {
    type Batch = ChangelogBatch;
    type Split = CsvSplit;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<ChangelogBatch>, BoxError> {
        let limit = self
            .config
            .batch_size
            .map_or(max_records, |b| b.min(max_records))
            .max(1);
        if let Some(error) = self.deferred.take() {
            return Err(error.into());
        }
        let (rows, ended) = self.read_records(limit)?;
        if rows == 0 {
            if let Some(error) = self.deferred.take() {
                return Err(error.into());
            }
            // Every line read was skipped; the next poll goes on from here.
            return Ok(if ended {
                SourcePoll::Finished
            } else {
                SourcePoll::Idle
            });
        }
        let batch = self.build_batch(rows)?;
        Ok(SourcePoll::Ready(ChangelogBatch::insert_only(batch)))
    }

    fn snapshot(&self) -> CsvSplit {
        self.split.clone()
    }
}
