//! Event-time windows on out-of-order sensor readings.
//!
//! Three sensors report a temperature every second for five minutes. The readings arrive out
//! of order (up to four seconds), so the job declares event time with a watermark that trails
//! the largest timestamp by five seconds, and computes a one-minute tumbling average per
//! sensor. A few readings arrive far too late (more than a minute behind); they reach the late
//! side output instead of the results, and the job prints them.
//!
//! Run it with `cargo run --release --example 03_windows`.

use std::time::Duration;

use rivulet::prelude::*;
use rivulet::runtime::source::VecSource;
use rivulet::runtime::time::WatermarkStrategy;
use rivulet::runtime::window::{ProcessWindowFunction, TimeWindow, TumblingEventTimeWindows};
use serde::{Deserialize, Serialize};

/// One temperature reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    /// Event time, milliseconds since the start of the run.
    ts: i64,
    celsius: f64,
}

/// Sums and counts temperatures: the accumulator of an average.
#[derive(Clone)]
struct Average;

impl AggregateFunction<Reading> for Average {
    type Acc = (f64, u64);
    type Out = (f64, u64);

    fn create_accumulator(&self) -> (f64, u64) {
        (0.0, 0)
    }

    fn add(&self, acc: &mut (f64, u64), reading: Reading) {
        acc.0 += reading.celsius;
        acc.1 += 1;
    }

    fn get_result(&self, acc: &(f64, u64)) -> (f64, u64) {
        (acc.0 / acc.1 as f64, acc.1)
    }

    fn merge(&self, acc: &mut (f64, u64), other: (f64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
}

/// Labels each average with its sensor and window.
#[derive(Clone)]
struct Label;

/// Sensor, window start and end in seconds, average, readings.
type WindowAverage = (String, i64, i64, f64, u64);

impl ProcessWindowFunction<String, (f64, u64), TimeWindow> for Label {
    type Out = WindowAverage;

    fn process(
        &mut self,
        sensor: &String,
        window: &TimeWindow,
        averages: Vec<(f64, u64)>,
        out: &mut Collector<'_, WindowAverage>,
    ) -> Result<(), BoxError> {
        for (average, count) in averages {
            out.collect((
                sensor.clone(),
                window.start / 1000,
                window.end / 1000,
                average,
                count,
            ));
        }
        Ok(())
    }
}

/// Five minutes of readings from three sensors, shuffled by up to four seconds, with three
/// stragglers that arrive more than a minute late.
fn readings() -> Vec<Reading> {
    let sensors = ["boiler", "cellar", "roof"];
    let mut readings = Vec::new();
    for second in 0..300i64 {
        for (i, sensor) in sensors.iter().enumerate() {
            let base = [60.0, 12.0, 5.0][i];
            let wave = ((second as f64) / 30.0).sin() * 2.0;
            readings.push(Reading {
                sensor: (*sensor).to_owned(),
                ts: second * 1000 + i as i64 * 100,
                celsius: base + wave,
            });
        }
    }
    // Deterministic disorder: reverse every run of 12 readings (four seconds).
    for chunk in readings.chunks_mut(12) {
        chunk.reverse();
    }
    // Stragglers from the first minute, arriving at the end.
    for (i, sensor) in sensors.iter().enumerate() {
        readings.push(Reading {
            sensor: (*sensor).to_owned(),
            ts: 30_000 + i as i64,
            celsius: -40.0,
        });
    }
    readings
}

fn main() -> Result<(), JobError> {
    // Sources emit a watermark after every batch; small batches let event time advance through
    // this short input, as it would over a long-running stream.
    let env = StreamEnv::new().with_parallelism(1).with_batch_size(32);
    let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
        .with_timestamp_assigner(|r: &Reading, _| r.ts);
    let (averages, late) = env
        .from_source_with_watermarks(VecSource::new(readings()), strategy)
        .name("Source: sensors")
        .key_by(|r| r.sensor.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(60)))
        .side_output_late_data()
        .aggregate_with_window(Average, Label);
    let averages = averages.collect();
    let late = late.collect();
    println!("{}", env.job_graph("sensor averages")?);
    env.execute("sensor averages")?;

    println!("one-minute average temperature per sensor:");
    println!(
        "{:<8} {:>9} {:>9} {:>8}",
        "sensor", "window", "average", "readings"
    );
    let mut averages = averages.take();
    averages.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    for (sensor, start, end, average, count) in &averages {
        println!(
            "{sensor:<8} {:>9} {average:>9.2} {count:>8}",
            format!("{start}-{end}s")
        );
    }
    println!();
    println!("late readings (more than the 5 s bound behind, their window already closed):");
    for reading in late.take() {
        println!("  {reading:?}");
    }
    Ok(())
}
