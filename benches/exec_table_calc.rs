//! Calc throughput: a filter and a projection of physical expressions lowered from the Table
//! API's expressions, driven by hand on one thread.
//!
//! - `exec/table_filter_project`: `SELECT k, amount * 2 + 1 WHERE amount > 500` over `(k, amount)`
//!   `BIGINT` rows, half of which pass.
//!
//! After criterion's runs, the case runs a few more seconds and reports rows per CPU-second.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use criterion::{Criterion, SamplingMode, Throughput};
use rivulet::optimizer::physical::create_physical_expr;
use rivulet::optimizer::{Column, Expr, PlanSchema, ScalarValue};
use rivulet::runtime::ChangelogBatch;
use rivulet::runtime::relational::calc::ExprCalcOperator;
use rivulet::runtime::relational::{BadDataPolicy, BadRows, EvalContext};
use support::process_cpu_time;

mod support;

/// Rows per run.
const N: usize = 4_000_000;
/// Rows per input batch.
const BATCH_ROWS: usize = 8192;
/// How long the rows-per-CPU-second report runs.
const REPORT_TIME: Duration = Duration::from_secs(3);

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("amount", DataType::Int64, false),
    ]))
}

fn input() -> Vec<ChangelogBatch> {
    let schema = schema();
    (0..N)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let rows = BATCH_ROWS.min(N - start) as i64;
            let start = start as i64;
            let k = Int64Array::from_iter_values((start..start + rows).map(|i| i % 1000));
            let amount =
                Int64Array::from_iter_values((start..start + rows).map(|i| (i * 7919) % 1000));
            ChangelogBatch::insert_only(
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(k), Arc::new(amount)])
                    .expect("columns fit"),
            )
        })
        .collect()
}

fn calc() -> ExprCalcOperator {
    let plan_schema = PlanSchema::from_arrow(&schema(), None);
    let column = |name: &str| Expr::Column(Column::new(name));
    let predicate = column("amount").gt(Expr::Literal(ScalarValue::Int64(500)));
    let doubled = column("amount") * Expr::Literal(ScalarValue::Int64(2))
        + Expr::Literal(ScalarValue::Int64(1));
    let projection = vec![
        create_physical_expr(&column("k"), &plan_schema).expect("k"),
        create_physical_expr(&doubled, &plan_schema).expect("amount * 2 + 1"),
    ];
    let output = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("doubled", DataType::Int64, true),
    ]));
    ExprCalcOperator::new(
        Some(create_physical_expr(&predicate, &plan_schema).expect("predicate")),
        Some(projection),
        output,
        EvalContext::new(BadDataPolicy::Fail, BadRows::new()),
    )
}

fn run(op: &mut ExprCalcOperator, input: &[ChangelogBatch]) -> usize {
    let mut kept = 0;
    for batch in input {
        if let Some(out) = op.evaluate(batch).expect("evaluates") {
            kept += out.num_rows();
            black_box(out);
        }
    }
    kept
}

fn main() {
    let input = input();
    let mut op = calc();
    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group("exec/table_filter_project");
        group
            .throughput(Throughput::Elements(N as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("calc", |b| b.iter(|| run(&mut op, &input)));
        group.finish();
    }
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        let (Some(cpu_before), started) = (process_cpu_time(), Instant::now()) else {
            eprintln!("cannot read /proc/self/stat; no CPU-time report");
            return;
        };
        let mut runs = 0u32;
        let mut kept = 0;
        while runs < 2 || started.elapsed() < REPORT_TIME {
            kept = run(&mut op, &input);
            runs += 1;
        }
        let cpu = process_cpu_time().unwrap_or(cpu_before) - cpu_before;
        let rows = f64::from(runs) * N as f64;
        eprintln!(
            "exec/table_filter_project: {:.1} M rows/CPU-s, {:.1} M rows/s ({kept} rows kept per run, {runs} runs)",
            rows / cpu.as_secs_f64().max(0.01) / 1e6,
            rows / started.elapsed().as_secs_f64() / 1e6,
        );
    }
}
