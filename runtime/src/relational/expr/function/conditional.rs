//! `COALESCE`, `NULLIF`, `GREATEST`, `LEAST`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, make_array, new_null_array};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::compute::kernels::{boolean, cmp, nullif as nullif_kernel, zip};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

/// `arg` in the call's type (a null-typed argument becomes nulls of it).
fn typed(arg: &ArrayRef, t: &DataType) -> Result<ArrayRef, ArrowError> {
    if arg.data_type() == t {
        Ok(Arc::clone(arg))
    } else {
        cast(arg, t)
    }
}

pub(super) fn coalesce(args: &[ArrayRef], t: &DataType) -> Result<ArrayRef, ArrowError> {
    let mut acc = typed(&args[0], t)?;
    for arg in &args[1..] {
        if acc.null_count() == 0 {
            break;
        }
        let present = boolean::is_not_null(&acc)?;
        acc = zip::zip(&present, &acc, &typed(arg, t)?)?;
    }
    Ok(acc)
}

pub(super) fn nullif(args: &[ArrayRef]) -> Result<ArrayRef, ArrowError> {
    let (a, b) = (&args[0], &args[1]);
    if a.data_type() == &DataType::Null || b.data_type() == &DataType::Null {
        return Ok(Arc::clone(a));
    }
    let equal = cmp::eq(a, b)?;
    nullif_kernel::nullif(a, &equal)
}

/// `GREATEST` (`greatest`) or `LEAST`: null when any argument is null.
pub(super) fn extreme(
    args: &[ArrayRef],
    t: &DataType,
    greatest: bool,
) -> Result<ArrayRef, ArrowError> {
    if *t == DataType::Null {
        return Ok(new_null_array(t, args[0].len()));
    }
    let mut acc = typed(&args[0], t)?;
    for arg in &args[1..] {
        let arg = typed(arg, t)?;
        let keep = if greatest {
            cmp::gt_eq(&acc, &arg)?
        } else {
            cmp::lt_eq(&acc, &arg)?
        };
        let picked = zip::zip(&keep, &acc, &arg)?;
        let nulls = NullBuffer::union(acc.logical_nulls().as_ref(), arg.logical_nulls().as_ref());
        acc = make_array(picked.to_data().into_builder().nulls(nulls).build()?);
    }
    Ok(acc)
}
