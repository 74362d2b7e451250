//! [`Unnest`]: the built-in table function turning an array into rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, MapArray, OffsetSizeTrait, UInt32Array, UInt32Builder,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field};

use super::function::TableUdf;
use crate::error::BoxError;

/// `UNNEST(array)`: one output row per element of an array (`LIST`) column, in order, as
/// column `value`; `UNNEST(map)` gives one row per entry, as columns `key` and `value`. A null
/// or empty array gives no rows (a left lateral join keeps its row once, padded with nulls).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unnest;

impl TableUdf for Unnest {
    fn name(&self) -> &str {
        "UNNEST"
    }

    fn output_fields(&self, args: &[DataType]) -> Result<Vec<Field>, String> {
        match args {
            [DataType::List(item) | DataType::LargeList(item)] => {
                Ok(vec![Field::new("value", item.data_type().clone(), true)])
            }
            [DataType::Map(entries, _)] => match entries.data_type() {
                DataType::Struct(fields) if fields.len() == 2 => Ok(vec![
                    Field::new("key", fields[0].data_type().clone(), true),
                    Field::new("value", fields[1].data_type().clone(), true),
                ]),
                other => Err(format!("UNNEST cannot read map entries of type {other}")),
            },
            [other] => Err(format!(
                "UNNEST takes an array or a map, not {other}; wrap a single value in an array first"
            )),
            _ => Err(format!(
                "UNNEST takes one argument, an array or a map, not {}",
                args.len()
            )),
        }
    }

    fn invoke(
        &self,
        args: &[ArrayRef],
        rows: usize,
    ) -> Result<(UInt32Array, Vec<ArrayRef>), BoxError> {
        let [array] = args else {
            return Err("UNNEST takes one argument".into());
        };
        match array.data_type() {
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                let (rows, positions) = elements(list.offsets(), list.nulls(), rows);
                Ok((rows, vec![take(list.values().as_ref(), &positions, None)?]))
            }
            DataType::LargeList(_) => {
                let list = array.as_list::<i64>();
                let (rows, positions) = elements(list.offsets(), list.nulls(), rows);
                Ok((rows, vec![take(list.values().as_ref(), &positions, None)?]))
            }
            DataType::Map(_, _) => {
                let map: &MapArray = array.as_map();
                let (rows, positions) = elements(map.offsets(), map.nulls(), rows);
                Ok((
                    rows,
                    vec![
                        take(map.keys().as_ref(), &positions, None)?,
                        take(map.values().as_ref(), &positions, None)?,
                    ],
                ))
            }
            other => Err(format!("UNNEST takes an array or a map, not {other}").into()),
        }
    }
}

/// For each element of each valid row: the row's index and the element's position in the
/// values.
fn elements<O: OffsetSizeTrait>(
    offsets: &arrow::buffer::OffsetBuffer<O>,
    nulls: Option<&arrow::buffer::NullBuffer>,
    rows: usize,
) -> (UInt32Array, UInt32Array) {
    let mut from = UInt32Builder::new();
    let mut positions = UInt32Builder::new();
    for row in 0..rows {
        if nulls.is_some_and(|n| n.is_null(row)) {
            continue;
        }
        let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
        for position in start..end {
            from.append_value(row as u32);
            positions.append_value(position as u32);
        }
    }
    (from.finish(), positions.finish())
}

/// The shared [`Unnest`] function, as table functions are passed.
pub fn unnest() -> Arc<dyn TableUdf> {
    Arc::new(Unnest)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, ListArray};
    use arrow::datatypes::Int32Type;

    use super::*;

    #[test]
    fn each_element_becomes_a_row_of_its_array() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![None, Some(4)]),
        ]);
        let (rows, columns) = Unnest.invoke(&[Arc::new(list)], 4).unwrap();
        assert_eq!(rows.values().to_vec(), vec![0, 0, 3, 3]);
        let values = columns[0].as_primitive::<Int32Type>();
        assert_eq!(
            values,
            &Int32Array::from(vec![Some(1), Some(2), None, Some(4)])
        );
        assert!(Unnest.output_fields(&[DataType::Int32]).is_err());
    }
}
