//! TPC-H queries as Table API pipelines at scale factor 0.01, against answers DuckDB computed on
//! the same generated data (`scripts/tpch_answers.py`, checked in under `tests/tpch/answers`).
//! Each query runs in batch mode and in streaming mode (whose consolidated result must be the
//! same rows), at parallelism 2.

#[path = "../examples/tpch/queries.rs"]
mod queries;

use std::path::Path;
use std::sync::OnceLock;

use arrow::array::{Array, RecordBatch};
use arrow::util::display::array_value_to_string;
use rivulet::table::prelude::*;

const SF: &str = "0.01";

fn tables() -> &'static [queries::TpchTable] {
    static TABLES: OnceLock<Vec<queries::TpchTable>> = OnceLock::new();
    TABLES.get_or_init(|| queries::generate(SF.parse().unwrap(), 4096))
}

/// The rows of `batches` as text cells, nulls as empty cells.
fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            String::new()
                        } else {
                            array_value_to_string(c, i).expect("displayable")
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

/// The checked-in answer: its header and rows.
fn answer(query: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tpch/answers")
        .join(format!("sf{SF}"))
        .join(format!("{query}.csv"));
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/tpch_answers.py", path.display()));
    let header = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("a row").iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// Two cells agree: the same text, or numbers within a relative 1e-9 (DuckDB prints averages
/// and quotients as doubles, rivulet as decimals).
fn same(ours: &str, theirs: &str) -> bool {
    if ours == theirs {
        return true;
    }
    match (ours.parse::<f64>(), theirs.parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

fn check(query: &str, build: fn(&TableEnv) -> Result<Table, PlanError>, streaming: bool) {
    let stream = StreamEnv::new().with_parallelism(2);
    let env = if streaming {
        TableEnv::streaming(stream)
    } else {
        TableEnv::batch(stream)
    };
    queries::register(&env, tables()).unwrap();
    let table = build(&env).unwrap_or_else(|e| panic!("{query} does not build: {e}"));
    let (header, expected) = answer(query);
    assert_eq!(table.schema().names(), header, "{query}: columns");
    let got = cells(
        &table
            .collect()
            .unwrap_or_else(|e| panic!("{query} fails: {e}")),
    );
    let mode = if streaming { "streaming" } else { "batch" };
    assert_eq!(
        got.len(),
        expected.len(),
        "{query} ({mode}): {got:?} vs {expected:?}"
    );
    for (row, (ours, theirs)) in got.iter().zip(&expected).enumerate() {
        assert!(
            ours.iter().zip(theirs).all(|(a, b)| same(a, b)),
            "{query} ({mode}) row {row}: {ours:?} vs {theirs:?}"
        );
    }
}

macro_rules! tpch {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            check(stringify!($name), queries::$name, false);
            check(stringify!($name), queries::$name, true);
        }
    )*};
}

tpch!(q2, q4, q17, q17b, q20, q21, q22);
