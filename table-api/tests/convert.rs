//! Typed conversions: serde structs to record batches and back, and the column checks.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDateTime;
use proptest::prelude::*;
use rivulet_table::{
    ConvertError, fields_of, fields_of_with_timestamps, from_record_batch, to_record_batch,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    small: i8,
    id: i64,
    unsigned: u32,
    ratio: f64,
    single: f32,
    flag: bool,
    name: String,
    maybe_count: Option<i32>,
    maybe_name: Option<String>,
    maybe_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    user: String,
    amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Click {
    user: String,
    #[serde(with = "chrono::naive::serde::ts_milliseconds")]
    at: NaiveDateTime,
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

#[test]
fn traced_fields_use_utf8_and_nullable_options() {
    let fields = fields_of::<Everything>().unwrap();
    let types: Vec<(&str, &DataType, bool)> = fields
        .iter()
        .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("small", &DataType::Int8, false),
            ("id", &DataType::Int64, false),
            ("unsigned", &DataType::UInt32, false),
            ("ratio", &DataType::Float64, false),
            ("single", &DataType::Float32, false),
            ("flag", &DataType::Boolean, false),
            ("name", &DataType::Utf8, false),
            ("maybe_count", &DataType::Int32, true),
            ("maybe_name", &DataType::Utf8, true),
            ("maybe_ratio", &DataType::Float64, true),
        ]
    );
}

#[test]
fn every_supported_field_type_round_trips() {
    let rows = vec![
        Everything {
            small: -8,
            id: i64::MAX,
            unsigned: 7,
            ratio: 0.25,
            single: -1.5,
            flag: true,
            name: "alice".into(),
            maybe_count: Some(3),
            maybe_name: None,
            maybe_ratio: Some(1e300),
        },
        Everything {
            small: 0,
            id: i64::MIN,
            unsigned: u32::MAX,
            ratio: -0.0,
            single: 0.0,
            flag: false,
            name: String::new(),
            maybe_count: None,
            maybe_name: Some("bob".into()),
            maybe_ratio: None,
        },
    ];
    let fields = fields_of::<Everything>().unwrap();
    let batch = to_record_batch(&rows, &fields).unwrap();
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(batch.column(8).null_count(), 1);
    assert_eq!(from_record_batch::<Everything>(&batch).unwrap(), rows);
}

#[test]
fn timestamps_are_millisecond_columns_of_i64_fields() {
    let fields = fields_of_with_timestamps::<Click>(["at"]).unwrap();
    assert_eq!(
        fields[1].data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, None)
    );
    let at =
        NaiveDateTime::parse_from_str("2024-01-01 10:00:00.250", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let rows = vec![Click {
        user: "alice".into(),
        at,
    }];
    let batch = to_record_batch(&rows, &fields).unwrap();
    let column = batch
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(column.value(0), 1_704_103_200_250);
    assert_eq!(from_record_batch::<Click>(&batch).unwrap(), rows);

    let error = fields_of_with_timestamps::<Click>(["user"])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"user\"") && error.contains("Utf8"),
        "{error}"
    );
    let error = fields_of_with_timestamps::<Click>(["when"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing"), "{error}");
}

#[test]
fn a_column_of_another_type_is_named_with_both_types() {
    let wrong = batch(vec![
        (
            "user",
            Arc::new(StringArray::from(vec!["alice"])) as ArrayRef,
        ),
        ("amount", Arc::new(StringArray::from(vec!["3"])) as ArrayRef),
    ]);
    let error = from_record_batch::<Order>(&wrong).unwrap_err();
    assert!(
        matches!(error, ConvertError::TypeMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("\"amount\"")
            && message.contains("Order")
            && message.contains("Int64")
            && message.contains("Utf8"),
        "{message}"
    );
}

#[test]
fn missing_and_extra_columns_and_unexpected_nulls_are_errors() {
    let missing = batch(vec![(
        "user",
        Arc::new(StringArray::from(vec!["alice"])) as ArrayRef,
    )]);
    let message = from_record_batch::<Order>(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("field \"amount\"") && message.contains("no such column"),
        "{message}"
    );

    let extra = batch(vec![
        (
            "user",
            Arc::new(StringArray::from(vec!["alice"])) as ArrayRef,
        ),
        ("amount", Arc::new(Int64Array::from(vec![3])) as ArrayRef),
        (
            "region",
            Arc::new(StringArray::from(vec!["eu"])) as ArrayRef,
        ),
    ]);
    let message = from_record_batch::<Order>(&extra).unwrap_err().to_string();
    assert!(
        message.contains("\"region\"") && message.contains("Order"),
        "{message}"
    );

    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, true),
    ]));
    let nulls = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["alice", "bob"])),
            Arc::new(Int64Array::from(vec![Some(1), None])),
        ],
    )
    .unwrap();
    let message = from_record_batch::<Order>(&nulls).unwrap_err().to_string();
    assert!(
        message.contains("\"amount\"") && message.contains("1 nulls"),
        "{message}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sparse {
    id: i64,
    label: Option<String>,
    score: Option<f64>,
    count: Option<u16>,
    active: Option<bool>,
}

fn sparse() -> impl Strategy<Value = Sparse> {
    (
        any::<i64>(),
        proptest::option::of("\\PC{0,12}"),
        proptest::option::of(-1e12f64..1e12),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(id, label, score, count, active)| Sparse {
            id,
            label,
            score,
            count,
            active,
        })
}

proptest! {
    #[test]
    fn structs_with_options_round_trip(rows in proptest::collection::vec(sparse(), 0..40)) {
        let fields = fields_of::<Sparse>().unwrap();
        let batch = to_record_batch(&rows, &fields).unwrap();
        prop_assert_eq!(batch.num_rows(), rows.len());
        prop_assert_eq!(from_record_batch::<Sparse>(&batch).unwrap(), rows);
    }
}
