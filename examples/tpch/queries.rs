//! TPC-H as rivulet Table API pipelines: the data from `tpchgen-arrow`, and the queries with
//! the specification's validation parameters.
//!
//! Shared by the `tpch` example (the runner) and the root package's `tests/tpch.rs`.

#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rivulet::table::prelude::*;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// One generated table: its name, schema and batches.
pub struct TpchTable {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Strings as `Utf8` (the generator writes `Utf8View`).
fn normalise(
    batches: impl Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>,
) -> (SchemaRef, Vec<RecordBatch>) {
    let mut schema = None;
    let mut out = Vec::new();
    for batch in batches {
        let batch = batch.expect("the generator makes valid batches");
        let target = schema
            .get_or_insert_with(|| {
                Arc::new(Schema::new(
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| match f.data_type() {
                            DataType::Utf8View => {
                                Field::new(f.name(), DataType::Utf8, f.is_nullable())
                            }
                            _ => f.as_ref().clone(),
                        })
                        .collect::<Vec<_>>(),
                ))
            })
            .clone();
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()).expect("strings cast"))
            .collect();
        out.push(RecordBatch::try_new(target, columns).expect("the columns fit"));
    }
    (schema.expect("every TPC-H table has rows"), out)
}

/// The eight tables at scale factor `sf`, in batches of `batch_size` rows.
pub fn generate(sf: f64, batch_size: usize) -> Vec<TpchTable> {
    let table = |name, (schema, batches)| TpchTable {
        name,
        schema,
        batches,
    };
    vec![
        table(
            "region",
            normalise(RegionArrow::new(RegionGenerator::new(sf, 1, 1)).with_batch_size(batch_size)),
        ),
        table(
            "nation",
            normalise(NationArrow::new(NationGenerator::new(sf, 1, 1)).with_batch_size(batch_size)),
        ),
        table(
            "supplier",
            normalise(
                SupplierArrow::new(SupplierGenerator::new(sf, 1, 1)).with_batch_size(batch_size),
            ),
        ),
        table(
            "customer",
            normalise(
                CustomerArrow::new(CustomerGenerator::new(sf, 1, 1)).with_batch_size(batch_size),
            ),
        ),
        table(
            "part",
            normalise(PartArrow::new(PartGenerator::new(sf, 1, 1)).with_batch_size(batch_size)),
        ),
        table(
            "partsupp",
            normalise(
                PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1)).with_batch_size(batch_size),
            ),
        ),
        table(
            "orders",
            normalise(OrderArrow::new(OrderGenerator::new(sf, 1, 1)).with_batch_size(batch_size)),
        ),
        table(
            "lineitem",
            normalise(
                LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(batch_size),
            ),
        ),
    ]
}

/// Registers the tables in `env` under their TPC-H names.
pub fn register(env: &TableEnv, tables: &[TpchTable]) -> Result<(), Box<dyn std::error::Error>> {
    for t in tables {
        let table = env.from_batches(Arc::clone(&t.schema), t.batches.clone())?;
        env.register(t.name, &table)?;
    }
    Ok(())
}

type Query = Result<Table, PlanError>;

/// Builds a query's table in an environment holding the TPC-H tables.
pub type QueryFn = fn(&TableEnv) -> Query;

/// The queries this module has, by number.
pub const QUERIES: &[(&str, QueryFn)] = &[
    ("q2", q2),
    ("q4", q4),
    ("q17", q17),
    ("q17b", q17b),
    ("q20", q20),
    ("q21", q21),
    ("q22", q22),
];

/// Suppliers of region EUROPE with their nation and region.
fn europe_suppliers(env: &TableEnv) -> Query {
    env.table("supplier")?
        .join(
            &env.table("nation")?,
            col("s_nationkey").eq(col("n_nationkey")),
        )?
        .join(
            &env.table("region")?
                .filter(col("r_name").eq(lit("EUROPE")))?,
            col("n_regionkey").eq(col("r_regionkey")),
        )
}

/// Q2, minimum cost supplier: size 15, type `%BRASS`, region EUROPE.
pub fn q2(env: &TableEnv) -> Query {
    let cheapest = env
        .table("partsupp")?
        .alias("ps2")
        .join(
            &europe_suppliers(env)?,
            col("s_suppkey").eq(col("ps2.ps_suppkey")),
        )?
        .filter(col("ps2.ps_partkey").eq(outer_col("p_partkey")))?
        .select([min(col("ps2.ps_supplycost"))])?;
    env.table("part")?
        .filter(
            col("p_size")
                .eq(lit(15))
                .and(col("p_type").like(lit("%BRASS"))),
        )?
        .join(
            &env.table("partsupp")?,
            col("p_partkey").eq(col("ps_partkey")),
        )?
        .join(
            &europe_suppliers(env)?,
            col("s_suppkey").eq(col("ps_suppkey")),
        )?
        .filter(col("ps_supplycost").eq(scalar_subquery(&cheapest)))?
        .select([
            col("s_acctbal"),
            col("s_name"),
            col("n_name"),
            col("p_partkey"),
            col("p_mfgr"),
            col("s_address"),
            col("s_phone"),
            col("s_comment"),
        ])?
        .order_by([
            col("s_acctbal").desc(),
            col("n_name").asc(),
            col("s_name").asc(),
            col("p_partkey").asc(),
        ])
        .map(|t| t.limit(100))
}

/// Q4, order priority checking: the quarter from 1993-07-01.
pub fn q4(env: &TableEnv) -> Query {
    let late = env.table("lineitem")?.filter(
        col("l_orderkey")
            .eq(outer_col("o_orderkey"))
            .and(col("l_commitdate").lt(col("l_receiptdate"))),
    )?;
    env.table("orders")?
        .filter(
            col("o_orderdate")
                .gt_eq(date("1993-07-01"))
                .and(col("o_orderdate").lt(date("1993-07-01") + interval_months(3)))
                .and(exists(&late)),
        )?
        .group_by([col("o_orderpriority")])
        .select([col("o_orderpriority"), count_star().alias("order_count")])?
        .order_by([col("o_orderpriority").asc()])
}

/// Q17, small-quantity-order revenue: Brand#23, MED BOX (no rows qualify at scale factor 0.01,
/// so the answer there is null).
pub fn q17(env: &TableEnv) -> Query {
    q17_with(env, "Brand#23", "MED BOX")
}

/// Q17 with other substitution parameters, Brand#44 and WRAP CAN, which have rows at every
/// scale factor.
pub fn q17b(env: &TableEnv) -> Query {
    q17_with(env, "Brand#44", "WRAP CAN")
}

fn q17_with(env: &TableEnv, brand: &str, container: &str) -> Query {
    let fifth = env
        .table("lineitem")?
        .alias("l2")
        .filter(col("l2.l_partkey").eq(outer_col("p_partkey")))?
        .select([(decimal(2, 2, 1) * avg(col("l2.l_quantity"))).alias("fifth")])?;
    env.table("lineitem")?
        .join(&env.table("part")?, col("p_partkey").eq(col("l_partkey")))?
        .filter(
            col("p_brand")
                .eq(lit(brand))
                .and(col("p_container").eq(lit(container)))
                .and(col("l_quantity").lt(scalar_subquery(&fifth))),
        )?
        .select([(sum(col("l_extendedprice")) / decimal(70, 2, 1)).alias("avg_yearly")])
}

/// Q20, potential part promotion: `forest%` parts, 1994, CANADA.
pub fn q20(env: &TableEnv) -> Query {
    let forest = env
        .table("part")?
        .filter(col("p_name").like(lit("forest%")))?
        .select([col("p_partkey")])?;
    let shipped = env
        .table("lineitem")?
        .filter(
            col("l_partkey")
                .eq(outer_col("ps_partkey"))
                .and(col("l_suppkey").eq(outer_col("ps_suppkey")))
                .and(col("l_shipdate").gt_eq(date("1994-01-01")))
                .and(col("l_shipdate").lt(date("1994-01-01") + interval_months(12))),
        )?
        .select([(decimal(5, 2, 1) * sum(col("l_quantity"))).alias("half")])?;
    let suppliers = env
        .table("partsupp")?
        .filter(
            in_table(col("ps_partkey"), &forest)
                .and(col("ps_availqty").gt(scalar_subquery(&shipped))),
        )?
        .select([col("ps_suppkey")])?;
    env.table("supplier")?
        .join(
            &env.table("nation")?,
            col("s_nationkey").eq(col("n_nationkey")),
        )?
        .filter(in_table(col("s_suppkey"), &suppliers).and(col("n_name").eq(lit("CANADA"))))?
        .select([col("s_name"), col("s_address")])?
        .order_by([col("s_name").asc()])
}

/// Q21, suppliers who kept orders waiting: SAUDI ARABIA.
pub fn q21(env: &TableEnv) -> Query {
    let others = env.table("lineitem")?.alias("l2").filter(
        col("l2.l_orderkey")
            .eq(outer_col("l1.l_orderkey"))
            .and(col("l2.l_suppkey").not_eq(outer_col("l1.l_suppkey"))),
    )?;
    let others_late = env.table("lineitem")?.alias("l3").filter(
        col("l3.l_orderkey")
            .eq(outer_col("l1.l_orderkey"))
            .and(col("l3.l_suppkey").not_eq(outer_col("l1.l_suppkey")))
            .and(col("l3.l_receiptdate").gt(col("l3.l_commitdate"))),
    )?;
    env.table("supplier")?
        .join(
            &env.table("lineitem")?.alias("l1"),
            col("s_suppkey").eq(col("l1.l_suppkey")),
        )?
        .join(
            &env.table("orders")?,
            col("o_orderkey").eq(col("l1.l_orderkey")),
        )?
        .join(
            &env.table("nation")?,
            col("s_nationkey").eq(col("n_nationkey")),
        )?
        .filter(
            col("o_orderstatus")
                .eq(lit("F"))
                .and(col("l1.l_receiptdate").gt(col("l1.l_commitdate")))
                .and(exists(&others))
                .and(not_exists(&others_late))
                .and(col("n_name").eq(lit("SAUDI ARABIA"))),
        )?
        .group_by([col("s_name")])
        .select([col("s_name"), count_star().alias("numwait")])?
        .order_by([col("numwait").desc(), col("s_name").asc()])
        .map(|t| t.limit(100))
}

/// Q22, global sales opportunity: country codes 13, 31, 23, 29, 30, 18, 17.
pub fn q22(env: &TableEnv) -> Query {
    let codes = ["13", "31", "23", "29", "30", "18", "17"].map(lit);
    let code = || substring(col("c_phone"), 1, Some(2));
    let average = env
        .table("customer")?
        .filter(
            col("c_acctbal")
                .gt(decimal(0, 15, 2))
                .and(code().in_list(codes.clone())),
        )?
        .select([avg(col("c_acctbal"))])?;
    let ordered = env
        .table("orders")?
        .filter(col("o_custkey").eq(outer_col("c_custkey")))?;
    env.table("customer")?
        .filter(
            code()
                .in_list(codes)
                .and(col("c_acctbal").gt(scalar_subquery(&average)))
                .and(not_exists(&ordered)),
        )?
        .select([code().alias("cntrycode"), col("c_acctbal")])?
        .group_by([col("cntrycode")])
        .select([
            col("cntrycode"),
            count_star().alias("numcust"),
            sum(col("c_acctbal")).alias("totacctbal"),
        ])?
        .order_by([col("cntrycode").asc()])
}
