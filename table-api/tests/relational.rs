//! Every table operation against a plain-Rust reference on random rows with nulls and
//! duplicates: in batch mode and, batch by batch, in streaming mode, at parallelism 1 and 2.

mod support;

use proptest::prelude::*;
use rivulet_table::prelude::*;
use support::*;

fn one_input(rows: &[Row], seed: u64) -> Vec<Input> {
    let schema = schema("");
    let mut batches = Vec::new();
    let mut at = 0;
    for size in cut(rows.len(), seed) {
        batches.push(batch(&schema, &rows[at..at + size]));
        at += size;
    }
    vec![Input { schema, batches }]
}

/// The rows of the first `released` batches of `cut(rows.len(), seed)`.
fn prefix(rows: &[Row], seed: u64, released: usize) -> &[Row] {
    let n: usize = cut(rows.len(), seed).iter().take(released).sum();
    &rows[..n]
}

fn filter_project(_: &TableEnv, t: Vec<Table>) -> Table {
    t[0].filter(col("v").gt(lit(0i64)).or(col("s").eq(lit("a"))))
        .unwrap()
        .select([col("k"), (col("v") * lit(2i64)).alias("v2"), col("s")])
        .unwrap()
}

fn filter_project_reference(rows: &[Row]) -> Vec<Vec<Cell>> {
    let mut out: Vec<Vec<Cell>> = rows
        .iter()
        .filter(|r| r.v.is_some_and(|v| v > 0) || r.s.as_deref() == Some("a"))
        .map(|r| vec![int(r.k), int(r.v.map(|v| v * 2)), text(&r.s)])
        .collect();
    out.sort();
    out
}

fn union_all(_: &TableEnv, t: Vec<Table>) -> Table {
    let small = t[0].filter(col("k").lt(lit(2i64))).unwrap();
    t[0].union_all(&small).unwrap()
}

fn union_all_reference(rows: &[Row]) -> Vec<Vec<Cell>> {
    let mut out: Vec<Vec<Cell>> = rows
        .iter()
        .chain(rows.iter().filter(|r| r.k.is_some_and(|k| k < 2)))
        .map(|r| vec![int(r.k), int(r.v), text(&r.s)])
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn filter_and_project(rows in rows(40), seed in any::<u64>(), parallelism in 1usize..=2) {
        let inputs = one_input(&rows, seed);
        prop_assert_eq!(run_batch(parallelism, &inputs, filter_project), filter_project_reference(&rows));
        check_streaming(parallelism, &inputs, filter_project, |released| {
            filter_project_reference(prefix(&rows, seed, released[0]))
        });
    }

    #[test]
    fn union_all_keeps_duplicates(rows in rows(30), seed in any::<u64>(), parallelism in 1usize..=2) {
        let inputs = one_input(&rows, seed);
        prop_assert_eq!(run_batch(parallelism, &inputs, union_all), union_all_reference(&rows));
        check_streaming(parallelism, &inputs, union_all, |released| {
            union_all_reference(prefix(&rows, seed, released[0]))
        });
    }

    #[test]
    fn order_by_with_offset_and_limit(rows in rows(40), seed in any::<u64>(), parallelism in 1usize..=2) {
        let inputs = one_input(&rows, seed);
        let env = TableEnv::batch(StreamEnv::new().with_parallelism(parallelism));
        let t = env.from_batches(inputs[0].schema.clone(), inputs[0].batches.clone()).unwrap();
        let sorted = t
            .order_by([col("v").desc(), col("k").asc(), col("s").asc()])
            .unwrap()
            .offset(2)
            .limit(5);
        let got: Vec<Vec<Cell>> = {
            let batches = sorted.collect().unwrap();
            // Keep the order: no re-sorting here.
            let mut out = Vec::new();
            for b in &batches {
                for row in 0..b.num_rows() {
                    out.push(cells(&[b.slice(row, 1)]).remove(0));
                }
            }
            out
        };
        let mut expected: Vec<&Row> = rows.iter().collect();
        // DESC puts nulls first; ASC puts them last.
        let desc = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Less,
            (_, None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
        };
        let asc = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Greater,
            (_, None) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) => x.cmp(y),
        };
        let asc_int = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Greater,
            (_, None) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) => x.cmp(&y),
        };
        expected.sort_by(|a, b| desc(a.v, b.v).then(asc_int(a.k, b.k)).then(asc(&a.s, &b.s)));
        let expected: Vec<Vec<Cell>> = expected
            .into_iter()
            .skip(2)
            .take(5)
            .map(|r| vec![int(r.k), int(r.v), text(&r.s)])
            .collect();
        prop_assert_eq!(got, expected);
    }
}
