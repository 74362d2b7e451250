//! Consolidating a changelog into the rows it leaves.

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use hashbrown::HashMap;

use crate::batch::arrow::ChangelogBatch;
use crate::error::BoxError;

/// The rows that remain after applying `batches` in order: each retraction (`-U`, `-D`) cancels
/// one earlier accumulation (`+I`, `+U`) of an equal row. Rows keep the order of their
/// accumulation.
///
/// # Errors
/// When a row is retracted that is not present (a malformed changelog), naming the row.
pub fn consolidate(
    schema: &SchemaRef,
    batches: &[ChangelogBatch],
) -> Result<RecordBatch, BoxError> {
    let data: Vec<RecordBatch> = batches.iter().map(|b| b.data().clone()).collect();
    let all = concat_batches(schema, &data)?;
    if batches.iter().all(ChangelogBatch::is_insert_only) {
        return Ok(all);
    }
    let accumulate: Vec<bool> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| b.row_kind(i).is_accumulate()))
        .collect();
    let converter = RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(all.columns())?;
    let mut live: HashMap<&[u8], Vec<u32>> = HashMap::new();
    for (i, add) in accumulate.iter().enumerate() {
        let entry = live.entry(rows.row(i).data()).or_default();
        if *add {
            entry.push(i as u32);
        } else if entry.pop().is_none() {
            return Err(format!(
                "changelog row {i} retracts a row that is not present; the changelog is malformed"
            )
            .into());
        }
    }
    let mut keep: Vec<u32> = live.into_values().flatten().collect();
    keep.sort_unstable();
    Ok(take_record_batch(&all, &UInt32Array::from(keep))?)
}
