//! Primary keys, upsert keys and upsert sinks; changelog streams in and out; event-time
//! columns with watermarks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use parking_lot::Mutex;
use proptest::prelude::*;
use rivulet_runtime::sink::UpsertCollectHandle;
use rivulet_runtime::{Operator, Output, TaskError};
use rivulet_table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sale {
    shop: i64,
    item: String,
    amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Price {
    item: String,
    price: i64,
}

fn sales(rows: &[(i64, &str, i64)]) -> Vec<Sale> {
    rows.iter()
        .map(|&(shop, item, amount)| Sale {
            shop,
            item: item.to_owned(),
            amount,
        })
        .collect()
}

fn int_column(batch: &RecordBatch, i: usize) -> Vec<i64> {
    batch
        .column(i)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[test]
fn an_updating_aggregate_upserts_into_a_sink_keyed_by_its_group() {
    let env = TableEnv::streaming(StreamEnv::new().with_parallelism(2));
    let table = env
        .from_records(sales(&[(1, "a", 5), (2, "b", 7), (1, "c", 1), (3, "a", 2)]))
        .unwrap()
        .group_by([col("shop")])
        .select([col("shop"), sum(col("amount")).alias("total")])
        .unwrap();
    let handle = UpsertCollectHandle::new();
    table
        .execute_insert(TableSinkTarget::upsert(["shop"], &handle))
        .unwrap();
    let rows = handle.rows().unwrap().unwrap();
    assert_eq!(int_column(&rows, 0), vec![1, 2, 3]);
    assert_eq!(int_column(&rows, 1), vec![6, 7, 2]);
}

#[test]
fn a_sink_key_that_does_not_identify_updating_rows_fails_at_planning() {
    let env = TableEnv::streaming(StreamEnv::new());
    let table = env
        .from_records(sales(&[(1, "a", 5)]))
        .unwrap()
        .group_by([col("shop"), col("item")])
        .select([col("shop"), col("item"), sum(col("amount")).alias("total")])
        .unwrap();
    let handle = UpsertCollectHandle::new();
    let err = env
        .statement_set()
        .add_insert(&table, TableSinkTarget::upsert(["shop"], &handle))
        .err()
        .expect("shop alone does not identify a (shop, item) group");
    assert!(matches!(err, PlanError::SinkKeyMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("upserts on (shop)") && message.contains("its keys: (shop, item)"),
        "{message}"
    );
    // The full group key, or a superset of it, identifies the rows.
    let mut set = env.statement_set();
    set.add_insert(&table, TableSinkTarget::upsert(["item", "shop"], &handle))
        .unwrap();
    set.add_insert(
        &table,
        TableSinkTarget::upsert(["shop", "item", "total"], &UpsertCollectHandle::new()),
    )
    .unwrap();
    // An unknown key column is named, with a suggestion.
    let err = env
        .statement_set()
        .add_insert(&table, TableSinkTarget::upsert(["shopp"], &handle))
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"shop\""), "{err}");
}

#[test]
fn a_declared_primary_key_flows_through_projections_and_filters() {
    let env = TableEnv::streaming(StreamEnv::new());
    let prices = env
        .from_records(vec![Price {
            item: "x".into(),
            price: 1,
        }])
        .unwrap()
        .with_primary_key(["item"])
        .unwrap();
    let view = prices
        .filter(col("price").gt(lit(0)))
        .unwrap()
        .select([col("price"), col("item").alias("name")])
        .unwrap();
    assert_eq!(
        rivulet_optimizer::keys::unique_keys(view.plan()),
        vec![vec![1]]
    );
    // A left join on the right side's key keeps the left side's key.
    let orders = env
        .from_records(sales(&[(1, "x", 2)]))
        .unwrap()
        .with_primary_key(["shop", "item"])
        .unwrap();
    let joined = orders
        .left_join(&view, col("item").eq(col("name")))
        .unwrap();
    assert_eq!(
        rivulet_optimizer::keys::unique_keys(joined.plan()),
        vec![vec![0, 1]]
    );
    // Declarations are only for tables read straight from a source.
    let err = view.with_primary_key(["name"]).err().unwrap();
    assert!(err.to_string().contains("straight from a source"), "{err}");
    let err = prices.with_primary_key(["prize"]).err().unwrap();
    assert!(err.to_string().contains("\"price\""), "{err}");
}

#[test]
fn typed_changelog_streams_go_in_and_out() {
    let env = TableEnv::streaming(StreamEnv::new());
    let changes = vec![
        (
            RowKind::Insert,
            Price {
                item: "a".into(),
                price: 3,
            },
        ),
        (
            RowKind::Insert,
            Price {
                item: "b".into(),
                price: 4,
            },
        ),
        (
            RowKind::UpdateBefore,
            Price {
                item: "a".into(),
                price: 3,
            },
        ),
        (
            RowKind::UpdateAfter,
            Price {
                item: "a".into(),
                price: 5,
            },
        ),
        (
            RowKind::Delete,
            Price {
                item: "b".into(),
                price: 4,
            },
        ),
    ];
    let stream = env.stream_env().from_iter(changes.clone());
    let table = env
        .from_changelog_stream(&stream, ChangelogFormat::Retract, true)
        .unwrap();
    assert_eq!(table.changelog_mode(), ChangelogMode::Retract);
    let out = table.to_changelog_stream_as::<Price>().unwrap().collect();
    env.stream_env().execute("changelog round trip").unwrap();
    assert_eq!(out.take(), changes);
}

#[test]
fn an_upsert_changelog_is_normalised_into_retractions() {
    let env = TableEnv::streaming(StreamEnv::new().with_parallelism(1));
    let upserts = vec![
        (
            RowKind::Insert,
            Price {
                item: "a".into(),
                price: 3,
            },
        ),
        (
            RowKind::UpdateAfter,
            Price {
                item: "a".into(),
                price: 5,
            },
        ),
        (
            RowKind::Insert,
            Price {
                item: "b".into(),
                price: 4,
            },
        ),
        (
            RowKind::UpdateAfter,
            Price {
                item: "b".into(),
                price: 4,
            },
        ),
        (
            RowKind::Delete,
            Price {
                item: "a".into(),
                price: 0,
            },
        ),
    ];
    let stream = env.stream_env().from_iter(upserts);
    let table = env
        .from_changelog_stream(&stream, ChangelogFormat::upsert(["item"]), true)
        .unwrap();
    assert_eq!(
        rivulet_optimizer::keys::unique_keys(table.plan()),
        vec![vec![0]]
    );
    let out = table.to_changelog_stream_as::<Price>().unwrap().collect();
    env.stream_env().execute("normalise").unwrap();
    let p = |item: &str, price| Price {
        item: item.into(),
        price,
    };
    assert_eq!(
        out.take(),
        vec![
            (RowKind::Insert, p("a", 3)),
            (RowKind::UpdateBefore, p("a", 3)),
            (RowKind::UpdateAfter, p("a", 5)),
            (RowKind::Insert, p("b", 4)),
            (RowKind::Delete, p("a", 5)),
        ]
    );
    let err = env
        .from_changelog_stream(
            &env.stream_env().from_iter(Vec::<(RowKind, Price)>::new()),
            ChangelogFormat::upsert(["itme"]),
            true,
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"item\""), "{err}");
}

fn upsert_op() -> impl Strategy<Value = (bool, u8, i64)> {
    (prop::bool::weighted(0.75), 0u8..6, -5i64..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// An upsert stream, normalised, aggregated per price band and written to an upsert sink,
    /// leaves the aggregate of the upserted table's final state, at parallelism 1 and 2.
    #[test]
    fn upserts_through_an_aggregate_into_an_upsert_sink(
        ops in prop::collection::vec(upsert_op(), 1..40),
        parallelism in 1usize..3,
    ) {
        let mut current: BTreeMap<String, i64> = BTreeMap::new();
        let mut changes = Vec::new();
        for (upsert, item, price) in ops {
            let item = format!("i{item}");
            if upsert {
                let kind = if current.contains_key(&item) { RowKind::UpdateAfter } else { RowKind::Insert };
                current.insert(item.clone(), price);
                changes.push((kind, Price { item, price }));
            } else {
                current.remove(&item);
                changes.push((RowKind::Delete, Price { item, price: 0 }));
            }
        }
        let mut expected: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for price in current.values() {
            let e = expected.entry(price.rem_euclid(3)).or_default();
            e.0 += 1;
            e.1 += price;
        }
        let env = TableEnv::streaming(StreamEnv::new().with_parallelism(parallelism));
        let stream = env.stream_env().from_iter(changes);
        let table = env
            .from_changelog_stream(&stream, ChangelogFormat::upsert(["item"]), true)
            .unwrap()
            .add_columns([((col("price") % lit(3i64) + lit(3i64)) % lit(3i64)).alias("band")])
            .unwrap()
            .group_by([col("band")])
            .select([col("band"), count_star().alias("n"), sum(col("price")).alias("total")])
            .unwrap();
        let handle = UpsertCollectHandle::new();
        table.execute_insert(TableSinkTarget::upsert(["band"], &handle)).unwrap();
        let got: BTreeMap<i64, (i64, i64)> = match handle.rows().unwrap() {
            None => BTreeMap::new(),
            Some(rows) => {
                let bands = int_column(&rows, 0);
                let counts = int_column(&rows, 1);
                let totals = int_column(&rows, 2);
                bands.into_iter().zip(counts.into_iter().zip(totals)).collect()
            }
        };
        prop_assert_eq!(got, expected);
    }
}

/// Records the watermarks that reach it.
struct Watermarks(Arc<Mutex<Vec<i64>>>);

impl Operator for Watermarks {
    type In = ChangelogBatch;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        out.collect(batch)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        self.0.lock().push(watermark);
        out.emit_watermark(watermark)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    at: i64,
    value: f64,
}

#[test]
fn a_declared_event_time_column_carries_watermarks() {
    let env = TableEnv::streaming(StreamEnv::new().with_batch_size(2));
    let readings: Vec<Reading> = [1_000, 3_000, 2_000, 10_000, 9_000]
        .into_iter()
        .map(|at| Reading {
            sensor: "s".into(),
            at,
            value: 1.0,
        })
        .collect();
    let table = env
        .from_records(readings)
        .unwrap()
        .with_watermark("at", Duration::from_secs(2))
        .unwrap();
    let at = table.schema().field(1);
    assert_eq!(
        at.data_type,
        arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None)
    );
    assert_eq!(at.time, Some(rivulet_optimizer::TimeAttribute::EventTime));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let handle = table
        .filter(col("value").gt(lit(0.0)))
        .unwrap()
        .to_changelog_stream()
        .unwrap()
        .transform("watermarks", move || Watermarks(Arc::clone(&sink)))
        .set_parallelism(1)
        .collect_table();
    env.stream_env().execute("watermarks").unwrap();
    let rows: usize = handle.take().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 5);
    // Batches of two rows: largest 3000, then 10000; the watermark trails by 2 s and 1 ms.
    assert_eq!(*seen.lock(), vec![999, 7_999, i64::MAX]);
}

#[test]
fn a_watermark_on_a_column_of_another_type_is_rejected() {
    let env = TableEnv::streaming(StreamEnv::new());
    let table = env.from_records(sales(&[(1, "a", 1)])).unwrap();
    let err = table
        .with_watermark("item", Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(matches!(err, PlanError::WrongType { .. }), "{err}");
    assert!(err.to_string().contains("TIMESTAMP(3)"), "{err}");
    let err = table
        .with_watermark("amout", Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"amount\""), "{err}");
    let err = table
        .select([col("shop")])
        .unwrap()
        .with_watermark("shop", Duration::ZERO)
        .err()
        .unwrap();
    assert!(err.to_string().contains("straight from a source"), "{err}");
}
