//! Subqueries decorrelated into joins (the shapes of TPC-H Q4, Q16, Q17, Q20, Q21, Q22) against
//! plain-Rust references on random data with nulls.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rivulet_table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    o_key: i64,
    o_cust: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    l_order: i64,
    l_part: i64,
    l_qty: i64,
    l_late: bool,
}

fn orders() -> impl Strategy<Value = Vec<Order>> {
    proptest::collection::vec(
        (0i64..12, proptest::option::weighted(0.8, 0i64..6))
            .prop_map(|(o_key, o_cust)| Order { o_key, o_cust }),
        0..14,
    )
}

fn items() -> impl Strategy<Value = Vec<Item>> {
    proptest::collection::vec(
        (0i64..12, 0i64..4, 1i64..20, any::<bool>()).prop_map(
            |(l_order, l_part, l_qty, l_late)| Item {
                l_order,
                l_part,
                l_qty,
                l_late,
            },
        ),
        0..24,
    )
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn keys(t: &Table) -> Vec<i64> {
    #[derive(Deserialize)]
    struct Key {
        o_key: i64,
    }
    sorted(
        t.collect_as::<Key>()
            .unwrap()
            .into_iter()
            .map(|k| k.o_key)
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn exists_and_not_exists(orders in orders(), items in items(), parallelism in 1usize..=2) {
        let env = TableEnv::batch(StreamEnv::new().with_parallelism(parallelism));
        let o = env.from_records(orders.clone()).unwrap();
        let l = env.from_records(items.clone()).unwrap();
        let late = l
            .filter(col("l_order").eq(outer_col("o_key")).and(col("l_late")))
            .unwrap();
        let with = o.filter(exists(&late)).unwrap().select([col("o_key")]).unwrap();
        let without = o.filter(not_exists(&late)).unwrap().select([col("o_key")]).unwrap();
        let has = |k: i64| items.iter().any(|i| i.l_order == k && i.l_late);
        prop_assert_eq!(keys(&with), sorted(orders.iter().filter(|x| has(x.o_key)).map(|x| x.o_key).collect()));
        prop_assert_eq!(keys(&without), sorted(orders.iter().filter(|x| !has(x.o_key)).map(|x| x.o_key).collect()));
    }

    #[test]
    fn in_and_null_aware_not_in(orders in orders(), items in items(), parallelism in 1usize..=2) {
        let env = TableEnv::batch(StreamEnv::new().with_parallelism(parallelism));
        let o = env.from_records(orders.clone()).unwrap();
        // The customers of late items' orders: nullable, so NOT IN must respect nulls.
        let custs = o.select([col("o_cust").alias("c"), col("o_key").alias("k")]).unwrap();
        let parts = env.from_records(items.clone()).unwrap()
            .filter(col("l_late")).unwrap()
            .select([col("l_part")]).unwrap();
        let inside = custs.filter(in_table(col("c"), &parts)).unwrap().select([col("k").alias("o_key")]).unwrap();
        let outside = custs.filter(not_in_table(col("c"), &parts)).unwrap().select([col("k").alias("o_key")]).unwrap();
        let list: Vec<i64> = items.iter().filter(|i| i.l_late).map(|i| i.l_part).collect();
        prop_assert_eq!(
            keys(&inside),
            sorted(orders.iter().filter(|x| x.o_cust.is_some_and(|c| list.contains(&c))).map(|x| x.o_key).collect())
        );
        // x NOT IN (list) is true only for a non-null x absent from the list (or an empty list).
        prop_assert_eq!(
            keys(&outside),
            sorted(orders.iter().filter(|x| list.is_empty() || x.o_cust.is_some_and(|c| !list.contains(&c))).map(|x| x.o_key).collect())
        );
    }

    #[test]
    fn correlated_scalar_subquery_over_an_aggregate(items in items(), parallelism in 1usize..=2) {
        // Q17's shape: items whose quantity is below half the average quantity of their part.
        let env = TableEnv::batch(StreamEnv::new().with_parallelism(parallelism));
        let l = env.from_records(items.clone()).unwrap().alias("l");
        let inner = env.from_records(items.clone()).unwrap()
            .filter(col("l_part").eq(outer_col("l.l_part"))).unwrap()
            .select([(avg(col("l_qty")) * lit(0.5)).alias("half")]).unwrap();
        let small = l
            .filter(col("l.l_qty").cast(arrow::datatypes::DataType::Float64).lt(scalar_subquery(&inner)))
            .unwrap()
            .select([col("l.l_order").alias("o_key")])
            .unwrap();
        let mut per_part: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for i in &items {
            per_part.entry(i.l_part).or_default().push(i.l_qty);
        }
        let expected: Vec<i64> = items
            .iter()
            .filter(|i| {
                let qs = &per_part[&i.l_part];
                (i.l_qty as f64) < 0.5 * qs.iter().sum::<i64>() as f64 / qs.len() as f64
            })
            .map(|i| i.l_order)
            .collect();
        prop_assert_eq!(keys(&small), sorted(expected));
    }

    #[test]
    fn uncorrelated_scalar_subquery(items in items(), parallelism in 1usize..=2) {
        // Q22's shape: rows above the average of a filtered set.
        let env = TableEnv::batch(StreamEnv::new().with_parallelism(parallelism));
        let l = env.from_records(items.clone()).unwrap();
        let average = l.filter(col("l_late")).unwrap().select([avg(col("l_qty")).alias("a")]).unwrap();
        let above = l
            .filter(col("l_qty").cast(arrow::datatypes::DataType::Float64).gt(scalar_subquery(&average)))
            .unwrap()
            .select([col("l_order").alias("o_key")])
            .unwrap();
        let late: Vec<i64> = items.iter().filter(|i| i.l_late).map(|i| i.l_qty).collect();
        let expected: Vec<i64> = if late.is_empty() {
            Vec::new()
        } else {
            let a = late.iter().sum::<i64>() as f64 / late.len() as f64;
            items.iter().filter(|i| i.l_qty as f64 > a).map(|i| i.l_order).collect()
        };
        prop_assert_eq!(keys(&above), sorted(expected));
    }
}

#[test]
fn a_decorrelated_plan_is_the_same_every_time() {
    let explain = || {
        let env = TableEnv::batch(StreamEnv::new().with_parallelism(1));
        let o = env
            .from_records(vec![Order {
                o_key: 1,
                o_cust: Some(2),
            }])
            .unwrap();
        let l = env
            .from_records(vec![Item {
                l_order: 1,
                l_part: 2,
                l_qty: 3,
                l_late: true,
            }])
            .unwrap();
        let late = l.filter(col("l_order").eq(outer_col("o_key"))).unwrap();
        o.filter(exists(&late).and(not_exists(&late)))
            .unwrap()
            .explain()
    };
    let first = explain();
    assert!(first.contains("$sq0") && first.contains("$sq1"), "{first}");
    assert_eq!(first, explain());
}
