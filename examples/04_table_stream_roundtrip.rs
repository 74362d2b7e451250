//! Stream -> table -> stream with typed structs.
//!
//! A `DataStream` of sensor readings becomes a table, is filtered and projected with the Table
//! API, and comes back as a `DataStream` of another struct, which the DataStream API keys and
//! sums. The same table grouped by sensor is updating, so it comes back as a changelog instead.
//!
//! Run it with `cargo run --release --example 04_table_stream_roundtrip`.

use rivulet::prelude::*;
use rivulet::table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hot {
    sensor: String,
    fahrenheit: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stream_env = StreamEnv::new().with_parallelism(2);
    let readings: Vec<Reading> = (0..40)
        .map(|i| Reading {
            sensor: format!("s{}", i % 4),
            celsius: 15.0 + ((i * 7) % 20) as f64,
        })
        .collect();
    let stream = stream_env.from_vec(readings);

    let env = TableEnv::streaming(stream_env.clone());
    let table = env.from_data_stream(&stream, true)?;
    let hot = table.filter(col("celsius").gt(lit(28.0)))?.select([
        col("sensor"),
        (col("celsius") * lit(9.0) / lit(5.0) + lit(32.0)).alias("fahrenheit"),
    ])?;

    // Insert-only: back into typed structs, then the DataStream API.
    let counts = hot
        .to_data_stream::<Hot>()?
        .map(|h| (h.sensor, 1u64))
        .key_by(|(sensor, _)| sensor.clone())
        .sum(|pair| &mut pair.1)
        .collect();

    // Updating: a grouped table converts only as a changelog.
    let per_sensor = table
        .group_by([col("sensor")])
        .aggregate([max(col("celsius")).alias("max_celsius")])?;
    if let Err(e) = per_sensor.to_data_stream::<Reading>() {
        println!("as expected, an updating table is not a data stream:\n  {e}\n");
    }
    let changes = per_sensor.to_changelog_stream()?.collect_table();

    stream_env.execute("round trip")?;

    let mut finals = std::collections::BTreeMap::new();
    for (sensor, n) in counts.take() {
        let entry = finals.entry(sensor).or_insert(0);
        *entry = n.max(*entry);
    }
    println!("hot readings per sensor: {finals:?}");
    println!("the grouped table's changelog:");
    for line in changes.take_changelog() {
        println!("  {line}");
    }
    Ok(())
}
