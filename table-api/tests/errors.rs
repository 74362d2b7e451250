//! Build-time errors: each names the operation and says what to do.

use rivulet_table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: i64,
    customer_id: i64,
    amount: f64,
    status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Customer {
    id: i64,
    customer_id: i64,
    name: String,
}

fn env() -> TableEnv {
    TableEnv::batch(StreamEnv::new().with_parallelism(1))
}

fn orders(env: &TableEnv) -> Table {
    env.from_records(vec![Order {
        order_id: 1,
        customer_id: 2,
        amount: 3.0,
        status: "paid".into(),
    }])
    .unwrap()
}

fn customers(env: &TableEnv) -> Table {
    env.from_records(vec![Customer {
        id: 2,
        customer_id: 2,
        name: "ada".into(),
    }])
    .unwrap()
}

#[test]
fn unknown_column_suggests_the_closest_name() {
    let env = env();
    let err = orders(&env).select([col("amout")]).unwrap_err();
    assert!(matches!(&err, PlanError::UnknownColumn { suggestion: Some(s), .. } if s == "amount"));
    let text = err.to_string();
    assert!(
        text.starts_with("select: unknown column \"amout\""),
        "{text}"
    );
    assert!(text.contains("did you mean \"amount\"?"), "{text}");
}

#[test]
fn ambiguous_column_after_a_join_lists_the_candidates() {
    let env = env();
    env.register("orders", &orders(&env)).unwrap();
    env.register("customers", &customers(&env)).unwrap();
    let o = env.table("orders").unwrap();
    let c = env.table("customers").unwrap();
    let joined = o
        .join(&c, col("orders.customer_id").eq(col("customers.id")))
        .unwrap();
    let err = joined.select([col("customer_id")]).unwrap_err();
    let PlanError::AmbiguousColumn { candidates, .. } = &err else {
        panic!("expected an ambiguity, got {err}");
    };
    assert_eq!(candidates, &["orders.customer_id", "customers.customer_id"]);
    assert!(err.to_string().contains("qualify it"), "{err}");
    // Qualified, it resolves.
    joined.select([col("customers.customer_id")]).unwrap();
}

#[test]
fn type_mismatch_names_both_types() {
    let env = env();
    let err = orders(&env).filter(col("status").gt(lit(3))).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("filter: type mismatch"), "{text}");
    assert!(text.contains("Utf8") && text.contains("Int32"), "{text}");
}

#[test]
fn a_filter_must_be_boolean() {
    let env = env();
    let err = orders(&env).filter(col("amount")).unwrap_err();
    assert!(matches!(err, PlanError::WrongType { .. }), "{err}");
}

#[test]
fn aggregates_are_rejected_where_none_is_allowed() {
    let env = env();
    let err = orders(&env)
        .filter(sum(col("amount")).gt(lit(3.0)))
        .unwrap_err();
    assert!(
        matches!(err, PlanError::AggregateNotAllowed { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("filter: aggregate `sum(amount)`"),
        "{err}"
    );
    let err = orders(&env)
        .group_by([col("customer_id")])
        .aggregate([sum(max(col("amount")))])
        .unwrap_err();
    assert!(
        matches!(err, PlanError::AggregateNotAllowed { .. }),
        "{err}"
    );
}

#[test]
fn selected_columns_must_be_grouped_or_aggregated() {
    let env = env();
    let err = orders(&env)
        .group_by([col("customer_id")])
        .select([col("customer_id"), col("status"), sum(col("amount"))])
        .unwrap_err();
    assert_eq!(
        err,
        PlanError::NotGroupedOrAggregated {
            operation: "select".into(),
            column: "status".into(),
        }
    );
    assert!(err.to_string().contains("add it to group_by"), "{err}");
}

#[test]
fn duplicate_output_names_are_rejected() {
    let env = env();
    let err = orders(&env)
        .select([col("amount"), col("order_id").alias("amount")])
        .unwrap_err();
    assert!(
        matches!(err, PlanError::DuplicateOutputName { ref name, .. } if name == "amount"),
        "{err}"
    );
}

#[test]
fn an_updating_table_cannot_become_a_data_stream() {
    let env = TableEnv::streaming(StreamEnv::new().with_parallelism(1));
    let totals = orders(&env)
        .group_by([col("customer_id")])
        .aggregate([sum(col("amount")).alias("total")])
        .unwrap()
        .filter(col("total").gt(lit(1.0)))
        .unwrap();
    #[derive(Clone, Serialize, Deserialize)]
    struct Total {
        customer_id: i64,
        total: f64,
    }
    let Err(err) = totals.to_data_stream::<Total>() else {
        panic!("an updating table became a data stream")
    };
    let text = err.to_string();
    assert!(
        text.starts_with("to_data_stream cannot consume updates, but Aggregate"),
        "{text}"
    );
    assert!(text.contains("to_changelog_stream"), "{text}");
}

#[test]
fn unknown_tables_suggest_the_closest_name() {
    let env = env();
    env.register("orders", &orders(&env)).unwrap();
    let err = env.table("order").unwrap_err();
    assert!(
        err.to_string().contains("did you mean \"orders\"?"),
        "{err}"
    );
    assert!(matches!(
        env.register("orders", &orders(&env)),
        Err(PlanError::TableExists { .. })
    ));
}

#[test]
fn typed_conversion_checks_the_struct() {
    let env = env();
    #[derive(Debug, Serialize, Deserialize)]
    struct Wrong {
        order_id: String,
    }
    let err = orders(&env)
        .select([col("order_id")])
        .unwrap()
        .collect_as::<Wrong>()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("order_id") && text.contains("Int64") && text.contains("Utf8"),
        "{text}"
    );
}
