//! Streaming tables on a clickstream: window aggregation, window Top-N, session windows and an
//! interval join, each an insert-only result emitted as the watermark passes its windows.
//!
//! Clicks of five users on four pages arrive up to three seconds out of order over two minutes;
//! a few of them lead to an order. The job runs four queries as one statement set:
//! - clicks per page in one-minute tumbling windows;
//! - the three most clicked pages of every 10-second window sliding by 2 seconds;
//! - each user's sessions (clicks less than 15 seconds apart) with their click counts;
//! - each order with the clicks of its user in the 30 seconds before it (an interval join).
//!
//! Run it with `cargo run --release --example 06_streaming_tables`.

use std::time::Duration;

use rivulet::table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Click {
    user: String,
    page: String,
    /// Event time, milliseconds since the start of the run.
    ts: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_user: String,
    amount: i64,
    order_ts: i64,
}

/// A deterministic clickstream: a click every 250 ms by a user and page picked from a simple
/// pseudo-random sequence, sent up to three seconds out of order, and users pausing now and
/// then so sessions end.
fn clickstream() -> (Vec<Click>, Vec<Order>) {
    let users = ["ada", "bob", "cyd", "dee", "eve"];
    let pages = ["/home", "/search", "/item", "/cart"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut clicks = Vec::new();
    let mut orders = Vec::new();
    for i in 0..480i64 {
        let ts = i * 250;
        let user = users[(next() % 5) as usize];
        // Each user is away for 20 seconds of every 50.
        let away = (ts / 1_000 + user.len() as i64 * 7) % 50 < 20;
        if away && user != "ada" {
            continue;
        }
        let page = pages[(next() % 4) as usize];
        let jitter = (next() % 3_000) as i64;
        clicks.push(Click {
            user: user.into(),
            page: page.into(),
            ts: ts - jitter,
        });
        if page == "/cart" && next() % 4 == 0 {
            orders.push(Order {
                order_user: user.into(),
                amount: 10 + (next() % 90) as i64,
                order_ts: ts + 1_000,
            });
        }
    }
    // Out of order within the bound: swap neighbours now and then.
    for i in (1..clicks.len()).step_by(3) {
        clicks.swap(i - 1, i);
    }
    (clicks, orders)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = TableEnv::streaming(StreamEnv::new().with_parallelism(2).with_batch_size(16));
    let (clicks, orders) = clickstream();
    println!("{} clicks, {} orders", clicks.len(), orders.len());
    let clicks = env
        .from_records(clicks)?
        .with_watermark("ts", Duration::from_secs(3))?;
    let orders = env
        .from_records(orders)?
        .with_watermark("order_ts", Duration::from_secs(3))?;

    let per_page = clicks
        .window(col("ts"), tumble(Duration::from_secs(60)))?
        .group_by([col("window_start"), col("window_end"), col("page")])
        .select([
            col("window_start"),
            col("window_end"),
            col("page"),
            count_star().alias("clicks"),
        ])?;

    let top_pages = clicks
        .window(
            col("ts"),
            hop(Duration::from_secs(2), Duration::from_secs(10)),
        )?
        .group_by([col("window_start"), col("window_end"), col("page")])
        .select([
            col("window_start"),
            col("window_end"),
            col("page"),
            count_star().alias("clicks"),
        ])?
        .top_n_with_row_number(
            [col("window_start"), col("window_end")],
            [col("clicks").desc(), col("page").asc()],
            3,
            "rank",
        )?;

    let sessions = clicks
        .window(col("ts"), session(Duration::from_secs(15)))?
        .group_by([col("user"), col("window_start"), col("window_end")])
        .select([
            col("user"),
            col("window_start"),
            col("window_end"),
            count_star().alias("clicks"),
        ])?;

    let before_order = orders
        .interval_join(
            &clicks,
            JoinKind::Inner,
            col("order_user").eq(col("user")),
            // The click came at most 30 s before the order: ts + 0 <= order_ts <= ts + 30 s.
            TimeBounds::between(
                col("order_ts"),
                col("ts"),
                Duration::ZERO,
                Duration::from_secs(30),
            ),
        )?
        .select([
            col("order_user"),
            col("order_ts"),
            col("amount"),
            col("page"),
            col("ts"),
        ])?;

    for (name, table) in [
        ("per_page", &per_page),
        ("top_pages", &top_pages),
        ("sessions", &sessions),
        ("before_order", &before_order),
    ] {
        println!("{name}: changelog {}", table.changelog_mode());
    }
    println!("{}", top_pages.explain());

    // One job, four inserts; window results print as `+I[..]` when the watermark passes them.
    let mut set = env.statement_set();
    set.add_insert(&per_page, TableSinkTarget::PrintChangelog)?
        .add_insert(&top_pages, TableSinkTarget::PrintChangelog)?
        .add_insert(&sessions, TableSinkTarget::PrintChangelog)?
        .add_insert(&before_order, TableSinkTarget::PrintChangelog)?;
    let result = set.execute("streaming tables")?;
    let late: u64 = result
        .operators
        .iter()
        .map(|o| o.late_records_dropped)
        .sum();
    println!("late records dropped: {late}");
    Ok(())
}
