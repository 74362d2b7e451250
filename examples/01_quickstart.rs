//! Quickstart: a typed orders-and-customers pipeline on the Table API.
//!
//! Two tables of serde structs are joined, filtered and grouped; the result is printed as a
//! table and read back as typed structs. The same aggregate then runs in streaming mode, where
//! its changelog shows how each group's result is retracted (`-U`) and re-emitted (`+U`) as
//! orders arrive.
//!
//! Run it with `cargo run --release --example 01_quickstart`.

use rivulet::prelude::*;
use rivulet::table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Customer {
    id: i64,
    name: String,
    country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: i64,
    customer_id: i64,
    amount: f64,
    status: String,
}

/// One row of the result, read back as a typed struct.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revenue {
    country: String,
    orders: i64,
    revenue: f64,
}

fn customers() -> Vec<Customer> {
    let rows = [
        (1, "Ada", "UK"),
        (2, "Grace", "US"),
        (3, "Edsger", "NL"),
        (4, "Barbara", "US"),
        (5, "Tony", "UK"),
    ];
    rows.into_iter()
        .map(|(id, name, country)| Customer {
            id,
            name: name.into(),
            country: country.into(),
        })
        .collect()
}

fn orders() -> Vec<Order> {
    (0..24)
        .map(|i| Order {
            order_id: 1000 + i,
            customer_id: 1 + (i * 7 + 3) % 5,
            amount: 10.0 + ((i * 37) % 90) as f64,
            status: if i % 6 == 5 { "cancelled" } else { "paid" }.into(),
        })
        .collect()
}

/// Paid revenue per country, from orders joined with customers.
fn revenue_per_country(env: &TableEnv) -> Result<Table, Box<dyn std::error::Error>> {
    let customers = env.from_records(customers())?;
    let orders = env.from_records(orders())?;
    let revenue = orders
        .filter(col("status").eq(lit("paid")))?
        .join(&customers, col("customer_id").eq(col("id")))?
        .group_by([col("country")])
        .aggregate([
            count_star().alias("orders"),
            sum(col("amount")).alias("revenue"),
        ])?;
    Ok(revenue)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Batch mode: the result is final.
    let batch = TableEnv::batch(StreamEnv::new().with_parallelism(2));
    let revenue = revenue_per_country(&batch)?.order_by([col("revenue").desc()])?;
    println!("{}", revenue.explain());
    println!("Paid revenue per country:");
    revenue.print()?;
    for row in revenue.collect_as::<Revenue>()? {
        println!("{row:?}");
    }

    // Streaming mode: the same aggregate as a changelog of updates.
    let streaming = TableEnv::streaming(StreamEnv::new().with_parallelism(1).with_batch_size(4));
    let changelog = revenue_per_country(&streaming)?.collect_changelog()?;
    println!("\nThe changelog of the streaming aggregate:");
    for batch in &changelog {
        for row in 0..batch.num_rows() {
            let values: Vec<String> = batch
                .data()
                .columns()
                .iter()
                .map(|c| {
                    arrow::util::display::array_value_to_string(c, row)
                        .unwrap_or_else(|e| e.to_string())
                })
                .collect();
            println!("{}[{}]", batch.row_kind(row), values.join(", "));
        }
    }
    Ok(())
}
