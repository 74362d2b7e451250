//! Typed conversions between serde structs and Arrow record batches (temporary minimal form).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, FieldRef, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};

/// Why rows could not be converted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(String);

/// The Arrow fields of `T`.
pub fn fields_of<T: DeserializeOwned>() -> Result<Vec<Field>, ConvertError> {
    let fields = Vec::<FieldRef>::from_type::<T>(TracingOptions::default())
        .map_err(|e| ConvertError(e.to_string()))?;
    Ok(fields.iter().map(|f| f.as_ref().clone()).collect())
}

/// `rows` as one record batch of `fields`.
pub fn to_record_batch<T: Serialize>(
    rows: &[T],
    fields: &[Field],
) -> Result<RecordBatch, ConvertError> {
    let refs: Vec<FieldRef> = fields.iter().cloned().map(Arc::new).collect();
    serde_arrow::to_record_batch(&refs, &rows).map_err(|e| ConvertError(e.to_string()))
}

/// The rows of `batch` as `T`s.
pub fn from_record_batch<T: DeserializeOwned>(batch: &RecordBatch) -> Result<Vec<T>, ConvertError> {
    let _ = Schema::empty();
    serde_arrow::from_record_batch(batch).map_err(|e| ConvertError(e.to_string()))
}
