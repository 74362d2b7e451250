//! Typed rows: serde structs to Arrow record batches and back, through `serde_arrow`.
//!
//! A struct's schema is traced from its `Deserialize` implementation ([`fields_of`]): integers,
//! floats, `bool` and `String` become the matching Arrow types (strings as `Utf8`), `Option<_>`
//! makes a field nullable. Converting a batch back ([`from_record_batch`]) first checks the
//! batch's columns against the struct's fields and names the first column that differs.
//!
//! # Dates and times
//!
//! Schema tracing sees only what serde shows it, and `chrono` types show themselves as strings,
//! so their columns cannot be traced from the type. The convention is:
//! - a timestamp is an `i64` of milliseconds since the epoch (for a `chrono::NaiveDateTime`,
//!   `#[serde(with = "chrono::naive::serde::ts_milliseconds")]`), declared with
//!   [`fields_of_with_timestamps`], which makes those columns `Timestamp(Millisecond, None)`;
//! - a date is an `i32` of days since the epoch, in a `Date32` column.
//!
//! A `Timestamp(Millisecond, _)` column also converts into an `i64` field and a `Date32` column
//! into an `i32` field, so these struct fields read the columns the CSV and Parquet sources
//! produce.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use rivulet_table::{fields_of, from_record_batch, to_record_batch};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Order {
//!     user: String,
//!     amount: i64,
//!     note: Option<String>,
//! }
//!
//! let orders = vec![Order { user: "alice".into(), amount: 3, note: None }];
//! let fields = fields_of::<Order>()?;
//! let batch = to_record_batch(&orders, &fields)?;
//! assert_eq!(batch.schema().field(0).data_type(), &arrow::datatypes::DataType::Utf8);
//! assert_eq!(from_record_batch::<Order>(&batch)?, orders);
//! # Ok::<(), rivulet_table::ConvertError>(())
//! ```

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};

/// Why rows could not be converted between a serde type and Arrow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The type's schema could not be traced.
    #[error(
        "cannot derive an Arrow schema from {rust_type}: {message}; use integers, floats, bool, String, Option and nested structs, with timestamps as i64 milliseconds"
    )]
    Trace {
        /// The Rust type.
        rust_type: &'static str,
        /// What `serde_arrow` said.
        message: String,
    },
    /// A column of the batch has another type than the struct's field.
    #[error(
        "column {column:?} has type {batch_type} in the batch but the field of {rust_type} has type {struct_type}; change the field's type or cast the column"
    )]
    TypeMismatch {
        /// The column.
        column: String,
        /// The Rust type.
        rust_type: &'static str,
        /// The type traced from the struct.
        struct_type: DataType,
        /// The column's type in the batch.
        batch_type: DataType,
    },
    /// A field of the struct has no column in the batch.
    #[error(
        "{rust_type} has a field {column:?} but the batch has no such column (columns: {columns:?}); select it, or remove or rename the field"
    )]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The Rust type.
        rust_type: &'static str,
        /// The batch's columns.
        columns: Vec<String>,
    },
    /// The batch has a column that the struct has no field for.
    #[error(
        "the batch has a column {column:?} that {rust_type} has no field for; add the field or drop the column with a select"
    )]
    ExtraColumn {
        /// The extra column.
        column: String,
        /// The Rust type.
        rust_type: &'static str,
    },
    /// A column holds nulls but the struct's field is not an `Option`.
    #[error(
        "column {column:?} has {nulls} nulls but the field of {rust_type} is not an Option; make it an Option or filter out the nulls"
    )]
    UnexpectedNulls {
        /// The column.
        column: String,
        /// The Rust type.
        rust_type: &'static str,
        /// How many nulls the column has.
        nulls: usize,
    },
    /// A timestamp column named for [`fields_of_with_timestamps`] is not an `i64` field.
    #[error(
        "{column:?} cannot be a timestamp column of {rust_type}: it is {found}, not an i64 of milliseconds (or no such field exists)"
    )]
    NotATimestamp {
        /// The column.
        column: String,
        /// The Rust type.
        rust_type: &'static str,
        /// What the field is, or "missing".
        found: String,
    },
    /// `serde_arrow` failed to convert the rows.
    #[error("cannot convert rows of {rust_type}: {message}")]
    Convert {
        /// The Rust type.
        rust_type: &'static str,
        /// What `serde_arrow` said.
        message: String,
    },
}

fn trace_options() -> TracingOptions {
    TracingOptions::default()
        .strings_as_large_utf8(false)
        .sequence_as_large_list(false)
        .bytes_as_large_binary(false)
}

/// The Arrow fields of `T`, a struct, traced from its `Deserialize` implementation: strings as
/// `Utf8`, `Option`s nullable, timestamps (should a type trace as one) as
/// `Timestamp(Millisecond, None)`.
///
/// # Errors
/// When `T` is not a struct of supported fields (see the [module](self) docs).
///
/// ```
/// use arrow::datatypes::DataType;
/// use rivulet_table::fields_of;
///
/// #[derive(serde::Deserialize)]
/// struct Score { name: String, points: Option<f64> }
///
/// let fields = fields_of::<Score>()?;
/// assert_eq!(fields[0].data_type(), &DataType::Utf8);
/// assert!(fields[1].is_nullable());
/// # Ok::<(), rivulet_table::ConvertError>(())
/// ```
pub fn fields_of<T: DeserializeOwned>() -> Result<Vec<Field>, ConvertError> {
    let traced =
        Vec::<FieldRef>::from_type::<T>(trace_options()).map_err(|e| ConvertError::Trace {
            rust_type: std::any::type_name::<T>(),
            message: e.to_string(),
        })?;
    Ok(traced.iter().map(|f| normalise(f)).collect())
}

/// The Arrow fields of `T` as [`fields_of`] traces them, with the `i64` fields named in
/// `timestamps` as `Timestamp(Millisecond, None)` columns.
///
/// # Errors
/// When `T` cannot be traced, or a named field is missing or not an `i64`.
///
/// ```
/// use arrow::datatypes::{DataType, TimeUnit};
/// use rivulet_table::fields_of_with_timestamps;
///
/// #[derive(serde::Deserialize)]
/// struct Click { user: String, at: i64 }
///
/// let fields = fields_of_with_timestamps::<Click>(["at"])?;
/// assert_eq!(fields[1].data_type(), &DataType::Timestamp(TimeUnit::Millisecond, None));
/// # Ok::<(), rivulet_table::ConvertError>(())
/// ```
pub fn fields_of_with_timestamps<T: DeserializeOwned>(
    timestamps: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<Vec<Field>, ConvertError> {
    let mut fields = fields_of::<T>()?;
    for name in timestamps {
        let name = name.as_ref();
        let field = fields.iter_mut().find(|f| f.name() == name);
        match field {
            Some(field) if field.data_type() == &DataType::Int64 => {
                *field = field
                    .clone()
                    .with_data_type(DataType::Timestamp(TimeUnit::Millisecond, None));
            }
            other => {
                return Err(ConvertError::NotATimestamp {
                    column: name.to_owned(),
                    rust_type: std::any::type_name::<T>(),
                    found: other.map_or("missing".to_owned(), |f| f.data_type().to_string()),
                });
            }
        }
    }
    Ok(fields)
}

/// Utf8 for every string flavour, millisecond timestamps without a zone, recursively.
fn normalise(field: &Field) -> Field {
    let data_type = match field.data_type() {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Timestamp(_, _) | DataType::Date64 => {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        DataType::Struct(children) => {
            DataType::Struct(children.iter().map(|c| Arc::new(normalise(c))).collect())
        }
        DataType::List(item) => DataType::List(Arc::new(normalise(item))),
        DataType::LargeList(item) => DataType::List(Arc::new(normalise(item))),
        other => other.clone(),
    };
    field.clone().with_data_type(data_type)
}

/// A record batch of `rows` with the columns `fields` (from [`fields_of`], or written by hand
/// with compatible types).
///
/// # Errors
/// When a row does not fit the fields.
pub fn to_record_batch<T: Serialize>(
    rows: &[T],
    fields: &[Field],
) -> Result<RecordBatch, ConvertError> {
    let fields: Vec<FieldRef> = fields.iter().map(|f| Arc::new(f.clone())).collect();
    serde_arrow::to_record_batch(&fields, &rows).map_err(|e| ConvertError::Convert {
        rust_type: std::any::type_name::<T>(),
        message: e.to_string(),
    })
}

/// The rows of `batch` as values of `T`, after checking the batch's columns against `T`'s
/// fields: every field needs a column of its type (see the [module](self) docs for the dates
/// and times that also match), no column may be left over, and a column with nulls needs an
/// `Option` field.
///
/// # Errors
/// The first column that does not match, naming it with both types; or a conversion failure.
pub fn from_record_batch<T: DeserializeOwned>(batch: &RecordBatch) -> Result<Vec<T>, ConvertError> {
    let rust_type = std::any::type_name::<T>();
    let expected = fields_of::<T>()?;
    let schema = batch.schema();
    for field in &expected {
        let Some((index, column)) = schema.column_with_name(field.name()) else {
            return Err(ConvertError::MissingColumn {
                column: field.name().clone(),
                rust_type,
                columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            });
        };
        if !compatible(field.data_type(), column.data_type()) {
            return Err(ConvertError::TypeMismatch {
                column: field.name().clone(),
                rust_type,
                struct_type: field.data_type().clone(),
                batch_type: column.data_type().clone(),
            });
        }
        let nulls = batch.column(index).null_count();
        if nulls > 0 && !field.is_nullable() {
            return Err(ConvertError::UnexpectedNulls {
                column: field.name().clone(),
                rust_type,
                nulls,
            });
        }
    }
    if let Some(extra) = schema
        .fields()
        .iter()
        .find(|c| !expected.iter().any(|f| f.name() == c.name()))
    {
        return Err(ConvertError::ExtraColumn {
            column: extra.name().clone(),
            rust_type,
        });
    }
    serde_arrow::from_record_batch(batch).map_err(|e| ConvertError::Convert {
        rust_type,
        message: e.to_string(),
    })
}

/// Whether a column of type `column` converts into a struct field traced as `field`.
fn compatible(field: &DataType, column: &DataType) -> bool {
    use DataType::*;
    match (field, column) {
        (Utf8, LargeUtf8 | Utf8View) => true,
        (Int64, Timestamp(TimeUnit::Millisecond, _) | Date64) => true,
        (Int32, Date32) => true,
        (Timestamp(TimeUnit::Millisecond, _), Timestamp(TimeUnit::Millisecond, _)) => true,
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter().all(|f| {
                    b.iter()
                        .any(|c| c.name() == f.name() && compatible(f.data_type(), c.data_type()))
                })
        }
        (List(a), List(b) | LargeList(b)) => compatible(a.data_type(), b.data_type()),
        (a, b) => a == b,
    }
}
