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

// ---- aggregation ----

fn grouped(_: &TableEnv, t: Vec<Table>) -> Table {
    t[0].group_by([col("k")])
        .aggregate([
            count_star().alias("n"),
            count(col("v")).alias("nv"),
            sum(col("v")).alias("total"),
            min(col("v")).alias("lo"),
            max(col("s")).alias("hi"),
            count_distinct(col("s")).alias("kinds"),
            sum(col("v")).filter(col("s").eq(lit("a"))).alias("a_total"),
        ])
        .unwrap()
}

fn grouped_reference(rows: &[Row]) -> Vec<Vec<Cell>> {
    let mut groups: std::collections::BTreeMap<Option<i64>, Vec<&Row>> = Default::default();
    for r in rows {
        groups.entry(r.k).or_default().push(r);
    }
    let mut out: Vec<Vec<Cell>> = groups
        .into_iter()
        .map(|(k, rs)| {
            let vs: Vec<i64> = rs.iter().filter_map(|r| r.v).collect();
            let ss: std::collections::BTreeSet<&String> =
                rs.iter().filter_map(|r| r.s.as_ref()).collect();
            let a: Vec<i64> = rs
                .iter()
                .filter(|r| r.s.as_deref() == Some("a"))
                .filter_map(|r| r.v)
                .collect();
            vec![
                int(k),
                int(Some(rs.len() as i64)),
                int(Some(vs.len() as i64)),
                int((!vs.is_empty()).then(|| vs.iter().sum())),
                int(vs.iter().min().copied()),
                ss.iter().max().map(|s| s.to_string()),
                int(Some(ss.len() as i64)),
                int((!a.is_empty()).then(|| a.iter().sum())),
            ]
        })
        .collect();
    out.sort();
    out
}

fn distinct_pairs(_: &TableEnv, t: Vec<Table>) -> Table {
    t[0].select([col("k"), col("s")]).unwrap().distinct()
}

fn distinct_reference(rows: &[Row]) -> Vec<Vec<Cell>> {
    let set: std::collections::BTreeSet<Vec<Cell>> =
        rows.iter().map(|r| vec![int(r.k), text(&r.s)]).collect();
    set.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn group_by_aggregates(rows in rows(40), seed in any::<u64>(), parallelism in 1usize..=2) {
        let inputs = one_input(&rows, seed);
        prop_assert_eq!(run_batch(parallelism, &inputs, grouped), grouped_reference(&rows));
        check_streaming(parallelism, &inputs, grouped, |released| {
            grouped_reference(prefix(&rows, seed, released[0]))
        });
    }

    #[test]
    fn distinct_rows(rows in rows(40), seed in any::<u64>(), parallelism in 1usize..=2) {
        let inputs = one_input(&rows, seed);
        prop_assert_eq!(run_batch(parallelism, &inputs, distinct_pairs), distinct_reference(&rows));
        check_streaming(parallelism, &inputs, distinct_pairs, |released| {
            distinct_reference(prefix(&rows, seed, released[0]))
        });
    }
}

// ---- joins and set operations ----

fn two_inputs(left: &[Row], right: &[Row], seed: u64) -> Vec<Input> {
    let mut inputs = Vec::new();
    for (rows, prefix, seed) in [(left, "", seed), (right, "r", seed.rotate_left(17))] {
        let schema = schema(prefix);
        let mut batches = Vec::new();
        let mut at = 0;
        for size in cut(rows.len(), seed) {
            batches.push(batch(&schema, &rows[at..at + size]));
            at += size;
        }
        inputs.push(Input { schema, batches });
    }
    inputs
}

fn join_query(kind: &'static str) -> impl Fn(&TableEnv, Vec<Table>) -> Table {
    move |_, t| {
        let on = col("k")
            .eq(col("rk"))
            .and(col("v").lt_eq(col("rv")).or(col("rv").is_null()));
        match kind {
            "inner" => t[0].join(&t[1], on),
            "left" => t[0].left_join(&t[1], on),
            "right" => t[0].right_join(&t[1], on),
            "full" => t[0].full_join(&t[1], on),
            "semi" => t[0].semi_join(&t[1], on),
            _ => t[0].anti_join(&t[1], on),
        }
        .unwrap()
    }
}

fn join_reference(kind: &str, left: &[Row], right: &[Row]) -> Vec<Vec<Cell>> {
    let matches = |l: &Row, r: &Row| {
        l.k.is_some()
            && l.k == r.k
            && match (l.v, r.v) {
                (_, None) => true,
                (Some(a), Some(b)) => a <= b,
                (None, Some(_)) => false,
            }
    };
    let cells_of = |r: &Row| vec![int(r.k), int(r.v), text(&r.s)];
    let nulls = vec![None, None, None];
    let mut out = Vec::new();
    for l in left {
        let hits: Vec<&Row> = right.iter().filter(|r| matches(l, r)).collect();
        match kind {
            "semi" => {
                if !hits.is_empty() {
                    out.push(cells_of(l));
                }
            }
            "anti" => {
                if hits.is_empty() {
                    out.push(cells_of(l));
                }
            }
            _ => {
                for r in &hits {
                    out.push([cells_of(l), cells_of(r)].concat());
                }
                if hits.is_empty() && matches!(kind, "left" | "full") {
                    out.push([cells_of(l), nulls.clone()].concat());
                }
            }
        }
    }
    if matches!(kind, "right" | "full") {
        for r in right {
            if !left.iter().any(|l| matches(l, r)) {
                out.push([nulls.clone(), cells_of(r)].concat());
            }
        }
    }
    out.sort();
    out
}

fn set_query(kind: &'static str) -> impl Fn(&TableEnv, Vec<Table>) -> Table {
    move |_, t| {
        let l = t[0].select([col("k"), col("s")]).unwrap();
        let r = t[1].select([col("rk"), col("rs")]).unwrap();
        match kind {
            "intersect" => l.intersect(&r),
            "intersect_all" => l.intersect_all(&r),
            "except" => l.except(&r),
            _ => l.except_all(&r),
        }
        .unwrap()
    }
}

fn set_reference(kind: &str, left: &[Row], right: &[Row]) -> Vec<Vec<Cell>> {
    let mut counts: std::collections::BTreeMap<Vec<Cell>, (usize, usize)> = Default::default();
    for r in left {
        counts.entry(vec![int(r.k), text(&r.s)]).or_default().0 += 1;
    }
    for r in right {
        counts.entry(vec![int(r.k), text(&r.s)]).or_default().1 += 1;
    }
    let mut out = Vec::new();
    for (row, (l, r)) in counts {
        let n = match kind {
            "intersect" => usize::from(l > 0 && r > 0),
            "intersect_all" => l.min(r),
            "except" => usize::from(l > 0 && r == 0),
            _ => l.saturating_sub(r),
        };
        out.extend(std::iter::repeat_n(row, n));
    }
    out
}

fn prefix_of(rows: &[Row], seed: u64, released: usize) -> &[Row] {
    prefix(rows, seed, released)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn joins_of_every_kind(
        left in rows(16),
        right in rows(16),
        seed in any::<u64>(),
        parallelism in 1usize..=2,
    ) {
        let inputs = two_inputs(&left, &right, seed);
        for kind in ["inner", "left", "right", "full", "semi", "anti"] {
            prop_assert_eq!(
                run_batch(parallelism, &inputs, join_query(kind)),
                join_reference(kind, &left, &right),
                "{} join in batch mode", kind
            );
            check_streaming(parallelism, &inputs, join_query(kind), |released| {
                join_reference(
                    kind,
                    prefix_of(&left, seed, released[0]),
                    prefix_of(&right, seed.rotate_left(17), released[1]),
                )
            });
        }
    }

    #[test]
    fn set_operations(
        left in rows(16),
        right in rows(16),
        seed in any::<u64>(),
        parallelism in 1usize..=2,
    ) {
        let inputs = two_inputs(&left, &right, seed);
        for kind in ["intersect", "intersect_all", "except", "except_all"] {
            prop_assert_eq!(
                run_batch(parallelism, &inputs, set_query(kind)),
                set_reference(kind, &left, &right),
                "{} in batch mode", kind
            );
            check_streaming(parallelism, &inputs, set_query(kind), |released| {
                set_reference(
                    kind,
                    prefix_of(&left, seed, released[0]),
                    prefix_of(&right, seed.rotate_left(17), released[1]),
                )
            });
        }
    }
}
