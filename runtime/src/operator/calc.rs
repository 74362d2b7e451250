//! Calc: the fused filter and projection of the relational plane, vectorised over Arrow batches.
//!
//! As Flink's `Calc`, one operator evaluates a predicate on a batch, keeps the rows it accepts
//! (with their row kinds) and computes the output columns on the kept rows only. Every step is an
//! Arrow compute kernel over whole columns; nothing loops over rows in Rust.
//!
//! Until the physical expression layer exists, the predicate and the computed columns are
//! closures over a [`RecordBatch`] that call Arrow kernels (`arrow::compute::kernels::cmp`,
//! `arrow::compute::kernels::numeric`, ...).

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{FilterBuilder, FilterPredicate};
use arrow::datatypes::{Int8Type, SchemaRef};
use arrow::error::ArrowError;

use super::{Operator, OperatorContext, Output};
use crate::batch::arrow::{ChangelogBatch, ChangelogError};
use crate::error::TaskError;

/// A predicate over a whole batch: one boolean per row; a null counts as false.
pub type PredicateFn = Arc<dyn Fn(&RecordBatch) -> Result<BooleanArray, ArrowError> + Send + Sync>;

/// A computed column: one value per row of the batch it is given.
pub type ColumnFn = Arc<dyn Fn(&RecordBatch) -> Result<ArrayRef, ArrowError> + Send + Sync>;

/// One output column of a [`CalcOperator`]: an input column or a computed one.
#[derive(Clone)]
pub enum Projection {
    /// The input column at this zero-based index, unchanged.
    Column(usize),
    /// A column computed from the (filtered) input batch.
    Computed(ColumnFn),
}

impl Projection {
    /// The input column at `index`, unchanged.
    pub fn column(index: usize) -> Self {
        Projection::Column(index)
    }

    /// A column computed by `f` from the batch of kept rows.
    ///
    /// ```
    /// use arrow::array::Int64Array;
    /// use arrow::compute::kernels::numeric::mul;
    /// use rivulet_runtime::operator::calc::Projection;
    ///
    /// // amount * 2, where amount is column 1
    /// let doubled = Projection::computed(|batch| mul(batch.column(1), &Int64Array::new_scalar(2)));
    /// ```
    pub fn computed(
        f: impl Fn(&RecordBatch) -> Result<ArrayRef, ArrowError> + Send + Sync + 'static,
    ) -> Self {
        Projection::Computed(Arc::new(f))
    }
}

impl fmt::Debug for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Projection::Column(index) => f.debug_tuple("Column").field(index).finish(),
            Projection::Computed(_) => f.write_str("Computed(..)"),
        }
    }
}

impl From<usize> for Projection {
    fn from(index: usize) -> Self {
        Projection::Column(index)
    }
}

/// Why a Calc could not process a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CalcError {
    /// The projection and the output schema differ in their number of columns.
    #[error(
        "the calc projection has {expressions} expressions but the output schema has {} fields {fields:?}; give one expression per output field",
        fields.len()
    )]
    ProjectionArity {
        /// Expressions in the projection.
        expressions: usize,
        /// The output schema's field names.
        fields: Vec<String>,
    },
    /// A projected column index is beyond the input's columns.
    #[error(
        "the calc projects input column {column}, but the input has {} columns {inputs:?}; project a column index below {}",
        inputs.len(),
        inputs.len()
    )]
    NoSuchColumn {
        /// The requested column.
        column: usize,
        /// The input's field names.
        inputs: Vec<String>,
    },
    /// The predicate did not return one value per row.
    #[error(
        "the calc predicate returned {found} values for a batch of {rows} rows; return one boolean per row"
    )]
    PredicateLength {
        /// Values returned.
        found: usize,
        /// Rows in the batch.
        rows: usize,
    },
    /// An Arrow kernel failed while evaluating the predicate.
    #[error("the calc predicate failed: {0}")]
    Predicate(#[source] ArrowError),
    /// An Arrow kernel failed while computing an output column.
    #[error("computing output column {field:?} of the calc failed: {source}")]
    Projection {
        /// The output field being computed.
        field: String,
        /// The kernel's error.
        #[source]
        source: ArrowError,
    },
    /// Filtering the kept rows out of a column failed.
    #[error("filtering the calc's rows failed: {0}")]
    Filter(#[source] ArrowError),
    /// The output columns do not fit the output schema (a type or length mismatch).
    #[error(
        "the calc's output columns do not match its output schema: {0}; make each expression return its field's type, one value per row"
    )]
    OutputSchema(#[source] ArrowError),
    /// The filtered row kinds do not fit the output rows (an internal bug).
    #[error("the calc could not attach row kinds to its output: {0}")]
    RowKinds(#[from] ChangelogError),
}

/// Filters and projects Arrow changelog batches in one step (Flink's `Calc`).
///
/// The predicate runs on the input batch; the kept rows (and their row kinds) go on to the
/// projection, which yields the columns of the output schema. Without a filter every row is
/// kept; without a projection the input columns pass through (and must fit the output schema).
/// A projection that only selects input columns selects them before filtering, so unused
/// columns are never copied.
///
/// # State
///
/// None: the operator is stateless.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch, StringArray};
/// use arrow::compute::kernels::{cmp::gt, numeric::mul};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::ChangelogBatch;
/// use rivulet_runtime::operator::calc::{CalcOperator, Projection};
///
/// let input = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::Utf8, false),
///     Field::new("amount", DataType::Int64, false),
/// ]));
/// let output = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::Utf8, false),
///     Field::new("doubled", DataType::Int64, false),
/// ]));
/// // SELECT user, amount * 2 AS doubled WHERE amount > 10
/// let calc = CalcOperator::new(Arc::clone(&output))
///     .with_filter(|b| gt(b.column(1), &Int64Array::new_scalar(10)))
///     .with_projection([
///         Projection::column(0),
///         Projection::computed(|b| mul(b.column(1), &Int64Array::new_scalar(2))),
///     ]);
///
/// let data = RecordBatch::try_new(input, vec![
///     Arc::new(StringArray::from(vec!["ada", "bob", "cy"])),
///     Arc::new(Int64Array::from(vec![5, 50, 500])),
/// ])?;
/// let result = calc.evaluate(&ChangelogBatch::insert_only(data))?.expect("two rows pass");
/// let expected = RecordBatch::try_new(output, vec![
///     Arc::new(StringArray::from(vec!["bob", "cy"])),
///     Arc::new(Int64Array::from(vec![100, 1000])),
/// ])?;
/// assert_eq!(result.data(), &expected);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
///
/// In a job, add it with `stream.transform("Calc", move || calc.clone())`.
#[derive(Clone)]
pub struct CalcOperator {
    output_schema: SchemaRef,
    filter: Option<PredicateFn>,
    projection: Plan,
}

/// How the output columns are made.
#[derive(Clone, Debug)]
enum Plan {
    /// The input columns, unchanged.
    PassThrough,
    /// Input columns only: selected before filtering.
    Select(Vec<usize>),
    /// At least one computed column: evaluated on the filtered batch.
    Compute(Vec<Projection>),
}

impl fmt::Debug for CalcOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CalcOperator")
            .field("output_schema", &self.output_schema)
            .field("filter", &self.filter.as_ref().map(|_| ".."))
            .field("projection", &self.projection)
            .finish()
    }
}

impl CalcOperator {
    /// A Calc producing batches of `output_schema`.
    ///
    /// Default: no filter, and the input columns pass through.
    pub fn new(output_schema: SchemaRef) -> Self {
        CalcOperator {
            output_schema,
            filter: None,
            projection: Plan::PassThrough,
        }
    }

    /// Keeps the rows for which `predicate` returns true; a null counts as false.
    ///
    /// Default: every row is kept.
    pub fn with_filter(
        mut self,
        predicate: impl Fn(&RecordBatch) -> Result<BooleanArray, ArrowError> + Send + Sync + 'static,
    ) -> Self {
        self.filter = Some(Arc::new(predicate));
        self
    }

    /// Computes the output columns: one expression per field of the output schema, in order.
    ///
    /// Default: the input columns pass through.
    pub fn with_projection(mut self, projection: impl IntoIterator<Item = Projection>) -> Self {
        let projection: Vec<Projection> = projection.into_iter().collect();
        let selection = projection
            .iter()
            .map(|p| match p {
                Projection::Column(index) => Some(*index),
                Projection::Computed(_) => None,
            })
            .collect::<Option<Vec<usize>>>();
        self.projection = match selection {
            Some(indices) => Plan::Select(indices),
            None => Plan::Compute(projection),
        };
        self
    }

    /// Outputs the input columns at `indices`, in that order.
    pub fn with_projected_columns(mut self, indices: impl IntoIterator<Item = usize>) -> Self {
        self.projection = Plan::Select(indices.into_iter().collect());
        self
    }

    /// The schema of the batches the Calc produces.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// Checks that the projection has one expression per output field.
    ///
    /// # Errors
    /// [`CalcError::ProjectionArity`] when it has not.
    pub fn validate(&self) -> Result<(), CalcError> {
        let expressions = match &self.projection {
            Plan::PassThrough => return Ok(()),
            Plan::Select(indices) => indices.len(),
            Plan::Compute(projection) => projection.len(),
        };
        if expressions != self.output_schema.fields().len() {
            return Err(CalcError::ProjectionArity {
                expressions,
                fields: field_names(&self.output_schema),
            });
        }
        Ok(())
    }

    /// Filters and projects one batch; `None` when no row is kept.
    ///
    /// # Errors
    /// When the predicate or an expression fails, or the result does not fit the output schema.
    pub fn evaluate(&self, batch: &ChangelogBatch) -> Result<Option<ChangelogBatch>, CalcError> {
        let input = batch.data();
        let rows = input.num_rows();
        if rows == 0 {
            return Ok(None);
        }
        let filter = match &self.filter {
            None => None,
            Some(predicate) => {
                let mask = predicate(input).map_err(CalcError::Predicate)?;
                if mask.len() != rows {
                    return Err(CalcError::PredicateLength {
                        found: mask.len(),
                        rows,
                    });
                }
                match mask.true_count() {
                    0 => return Ok(None),
                    kept if kept == rows => None,
                    _ => Some(FilterBuilder::new(&mask).optimize().build()),
                }
            }
        };
        let kept = filter.as_ref().map_or(rows, FilterPredicate::count);

        let columns = match &self.projection {
            Plan::PassThrough => filter_columns(filter.as_ref(), input.columns().iter())?,
            Plan::Select(indices) => {
                let selected = indices
                    .iter()
                    .map(|&index| column(input, index))
                    .collect::<Result<Vec<_>, _>>()?;
                filter_columns(filter.as_ref(), selected.iter())?
            }
            Plan::Compute(projection) => {
                self.validate()?;
                let kept_rows = match &filter {
                    None => input.clone(),
                    Some(filter) => filter
                        .filter_record_batch(input)
                        .map_err(CalcError::Filter)?,
                };
                projection
                    .iter()
                    .zip(self.output_schema.fields())
                    .map(|(p, field)| match p {
                        Projection::Column(index) => column(&kept_rows, *index),
                        Projection::Computed(f) => {
                            f(&kept_rows).map_err(|source| CalcError::Projection {
                                field: field.name().clone(),
                                source,
                            })
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let options = RecordBatchOptions::new().with_row_count(Some(kept));
        let data =
            RecordBatch::try_new_with_options(Arc::clone(&self.output_schema), columns, &options)
                .map_err(CalcError::OutputSchema)?;

        let result = match (batch.row_kinds(), &filter) {
            (None, _) => ChangelogBatch::insert_only(data),
            (Some(_), None) => batch.with_data(data)?,
            (Some(kinds), Some(filter)) => {
                let kinds = filter.filter(kinds).map_err(CalcError::Filter)?;
                ChangelogBatch::with_row_kinds(data, kinds.as_primitive::<Int8Type>().clone())?
            }
        };
        Ok(Some(result))
    }
}

impl Operator for CalcOperator {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn open(&mut self, _ctx: &OperatorContext) -> Result<(), TaskError> {
        Ok(self.validate()?)
    }

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        match self.evaluate(&batch)? {
            Some(result) => out.collect(result),
            None => Ok(()),
        }
    }
}

/// The input column at `index`, or the error naming the input's columns.
fn column(input: &RecordBatch, index: usize) -> Result<ArrayRef, CalcError> {
    input
        .columns()
        .get(index)
        .cloned()
        .ok_or_else(|| CalcError::NoSuchColumn {
            column: index,
            inputs: field_names(input.schema_ref()),
        })
}

/// The columns with only the kept rows; unchanged without a filter.
fn filter_columns<'a>(
    filter: Option<&FilterPredicate>,
    columns: impl Iterator<Item = &'a ArrayRef>,
) -> Result<Vec<ArrayRef>, CalcError> {
    columns
        .map(|c| match filter {
            None => Ok(ArrayRef::clone(c)),
            Some(filter) => filter.filter(c.as_ref()).map_err(CalcError::Filter),
        })
        .collect()
}

fn field_names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int8Array, Int64Array, StringArray};
    use arrow::compute::kernels::cmp::gt;
    use arrow::compute::kernels::numeric::mul;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::batch::arrow::RowKind;

    fn input() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
                Arc::new(Int64Array::from(vec![Some(1), Some(20), None, Some(40)])),
            ],
        )
        .unwrap()
    }

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn amount_over(limit: i64) -> impl Fn(&RecordBatch) -> Result<BooleanArray, ArrowError> {
        move |b| gt(b.column(1), &Int64Array::new_scalar(limit))
    }

    #[test]
    fn filters_rows_and_their_kinds_then_computes_on_kept_rows() {
        let kinds = [
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::Insert,
            RowKind::Delete,
        ];
        let batch = ChangelogBatch::from_kinds(input(), &kinds).unwrap();
        let calc = CalcOperator::new(schema(&[
            ("doubled", DataType::Int64),
            ("user", DataType::Utf8),
        ]))
        .with_filter(amount_over(10))
        .with_projection([
            Projection::computed(|b| mul(b.column(1), &Int64Array::new_scalar(2))),
            Projection::column(0),
        ]);
        let out = calc.evaluate(&batch).unwrap().unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(
            out.data().column(0).as_ref(),
            &Int64Array::from(vec![40, 80]) as &dyn Array
        );
        assert_eq!(
            out.data().column(1).as_ref(),
            &StringArray::from(vec!["b", "d"]) as &dyn Array
        );
        assert_eq!(out.row_kinds(), Some(&Int8Array::from(vec![1, 3])));
    }

    #[test]
    fn column_selection_without_filter_keeps_row_kinds() {
        let batch = ChangelogBatch::from_kinds(input(), &[RowKind::Delete; 4]).unwrap();
        let calc =
            CalcOperator::new(schema(&[("user", DataType::Utf8)])).with_projected_columns([0]);
        let out = calc.evaluate(&batch).unwrap().unwrap();
        assert_eq!(out.data().num_columns(), 1);
        assert_eq!(out.row_kind(3), RowKind::Delete);
    }

    #[test]
    fn null_predicate_values_drop_the_row_and_empty_results_emit_nothing() {
        let batch = ChangelogBatch::insert_only(input());
        let calc = CalcOperator::new(input().schema()).with_filter(amount_over(0));
        let out = calc.evaluate(&batch).unwrap().unwrap();
        assert_eq!(out.num_rows(), 3);
        assert!(out.is_insert_only());
        let none = CalcOperator::new(input().schema()).with_filter(amount_over(1000));
        assert!(none.evaluate(&batch).unwrap().is_none());
    }

    #[test]
    fn mistakes_are_reported_with_names() {
        let batch = ChangelogBatch::insert_only(input());
        let arity =
            CalcOperator::new(schema(&[("a", DataType::Utf8)])).with_projected_columns([0, 1]);
        let message = arity.validate().unwrap_err().to_string();
        assert!(
            message.contains("2 expressions") && message.contains("\"a\""),
            "{message}"
        );
        let missing =
            CalcOperator::new(schema(&[("a", DataType::Utf8)])).with_projected_columns([5]);
        let message = missing.evaluate(&batch).unwrap_err().to_string();
        assert!(
            message.contains("column 5") && message.contains("\"amount\""),
            "{message}"
        );
        let wrong_type =
            CalcOperator::new(schema(&[("a", DataType::Int64)])).with_projected_columns([0]);
        assert!(matches!(
            wrong_type.evaluate(&batch),
            Err(CalcError::OutputSchema(_))
        ));
    }
}
