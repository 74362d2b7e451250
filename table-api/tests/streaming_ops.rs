//! Top-N, deduplication, OVER aggregation and interval joins through the Table API, against
//! plain-Rust references on random out-of-order input (within the watermark bound), at
//! parallelism 1 and 2.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use rivulet_table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Event {
    k: i64,
    v: i64,
    ts: i64,
}

/// Events whose times run forward by 10 ms a row, each up to 49 ms early: never behind a
/// watermark trailing the largest time by 100 ms.
fn events(max: usize) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..4, -5i64..5, 0i64..50), 0..max).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (k, v, early))| Event {
                k,
                v,
                ts: 1_000 + i as i64 * 10 - early,
            })
            .collect()
    })
}

fn env(parallelism: usize) -> TableEnv {
    TableEnv::streaming(
        StreamEnv::new()
            .with_parallelism(parallelism)
            .with_batch_size(3),
    )
}

fn table(env: &TableEnv, rows: &[Event]) -> Table {
    env.from_records(rows.to_vec())
        .unwrap()
        .with_watermark("ts", Duration::from_millis(100))
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Ranked {
    k: i64,
    v: i64,
    ts: i64,
    rn: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Summed {
    k: i64,
    v: i64,
    ts: i64,
    s: Option<i64>,
    n: i64,
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// The rows of each key in arrival order.
fn by_key(rows: &[Event]) -> BTreeMap<i64, Vec<Event>> {
    let mut keys: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    for r in rows {
        keys.entry(r.k).or_default().push(r.clone());
    }
    keys
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn top_n_per_key(rows in events(30), parallelism in 1usize..3) {
        let env = env(parallelism);
        let t = table(&env, &rows);
        let top = t.top_n([col("k")], [col("v").desc()], 2).unwrap();
        let numbered = t
            .top_n_with_row_number([col("k")], [col("v").desc()], 2, "rn")
            .unwrap();
        let mut expected = Vec::new();
        let mut expected_numbered = Vec::new();
        for (_, mut group) in by_key(&rows) {
            // Stable: equal values keep arrival order.
            group.sort_by_key(|r| std::cmp::Reverse(r.v));
            for (i, r) in group.into_iter().take(2).enumerate() {
                expected_numbered.push(Ranked { k: r.k, v: r.v, ts: r.ts, rn: i as i64 + 1 });
                expected.push(r);
            }
        }
        prop_assert_eq!(sorted(top.collect_as::<Event>().unwrap()), sorted(expected));
        prop_assert_eq!(sorted(numbered.collect_as::<Ranked>().unwrap()), sorted(expected_numbered));
    }

    #[test]
    fn deduplication_keeps_the_first_or_last_row(rows in events(30), parallelism in 1usize..3) {
        let env = env(parallelism);
        let t = table(&env, &rows);
        let first = t.deduplicate([col("k")], KeepRow::First, None).unwrap();
        let last = t.deduplicate([col("k")], KeepRow::Last, None).unwrap();
        let earliest = t.deduplicate([col("k")], KeepRow::First, Some(col("ts"))).unwrap();
        prop_assert_eq!(first.changelog_mode(), ChangelogMode::InsertOnly);
        prop_assert_eq!(earliest.changelog_mode(), ChangelogMode::InsertOnly);
        prop_assert_eq!(last.changelog_mode(), ChangelogMode::Retract);
        let groups = by_key(&rows);
        prop_assert_eq!(
            sorted(first.collect_as::<Event>().unwrap()),
            sorted(groups.values().map(|g| g[0].clone()).collect())
        );
        prop_assert_eq!(
            sorted(last.collect_as::<Event>().unwrap()),
            sorted(groups.values().map(|g| g[g.len() - 1].clone()).collect())
        );
        // The smallest time; equal times keep the first arrival.
        let mut want = Vec::new();
        for g in groups.values() {
            let mut best = &g[0];
            for r in g {
                if r.ts < best.ts {
                    best = r;
                }
            }
            want.push(best.clone());
        }
        prop_assert_eq!(sorted(earliest.to_data_stream_rows()), sorted(want));
    }

    #[test]
    fn over_rows_and_range_frames(rows in events(30), parallelism in 1usize..3) {
        let env = env(parallelism);
        let t = table(&env, &rows);
        let rows_frame = t
            .over([col("k")], col("ts"), OverWindow::Rows(Some(1)), [sum(col("v")).alias("s"), count_star().alias("n")])
            .unwrap()
            .select([col("k"), col("v"), col("ts").cast(arrow::datatypes::DataType::Int64).alias("ts"), col("s"), col("n")])
            .unwrap();
        let range_frame = t
            .over([col("k")], col("ts"), OverWindow::Range(Some(20)), [sum(col("v")).alias("s"), count_star().alias("n")])
            .unwrap()
            .select([col("k"), col("v"), col("ts").cast(arrow::datatypes::DataType::Int64).alias("ts"), col("s"), col("n")])
            .unwrap();
        let mut want_rows = Vec::new();
        let mut want_range = Vec::new();
        for (_, mut g) in by_key(&rows) {
            // Time order; equal times in arrival order.
            g.sort_by_key(|r| r.ts);
            for (i, r) in g.iter().enumerate() {
                let frame = &g[i.saturating_sub(1)..=i];
                want_rows.push(Summed { k: r.k, v: r.v, ts: r.ts, s: Some(frame.iter().map(|x| x.v).sum()), n: frame.len() as i64 });
                let range: Vec<&Event> = g.iter().filter(|x| x.ts >= r.ts - 20 && x.ts <= r.ts).collect();
                want_range.push(Summed { k: r.k, v: r.v, ts: r.ts, s: Some(range.iter().map(|x| x.v).sum()), n: range.len() as i64 });
            }
        }
        prop_assert_eq!(sorted(rows_frame.collect_as::<Summed>().unwrap()), sorted(want_rows));
        prop_assert_eq!(sorted(range_frame.collect_as::<Summed>().unwrap()), sorted(want_range));
    }

    #[test]
    fn interval_joins_match_a_nested_loop(left in events(20), right in events(20), parallelism in 1usize..3) {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        struct Pair {
            lk: i64,
            lts: i64,
            rk: Option<i64>,
            rts: Option<i64>,
        }
        let env = env(parallelism);
        let side = |rows: &[Event], p: &str| {
            table(&env, rows)
                .select([
                    col("k").alias(format!("{p}k")),
                    col("ts").alias(format!("{p}ts")),
                ])
                .unwrap()
        };
        // Selecting a time attribute keeps it one.
        let (l, r) = (side(&left, "l"), side(&right, "r"));
        let bounds = TimeBounds::between_ms(col("lts"), col("rts"), -30, 10);
        let as_ints = |t: Table| {
            t.select([
                col("lk"),
                col("lts").cast(arrow::datatypes::DataType::Int64).alias("lts"),
                col("rk"),
                col("rts").cast(arrow::datatypes::DataType::Int64).alias("rts"),
            ])
            .unwrap()
        };
        let inner = as_ints(l.interval_join(&r, JoinKind::Inner, col("lk").eq(col("rk")), bounds.clone()).unwrap());
        let outer = as_ints(l.interval_join(&r, JoinKind::Left, col("lk").eq(col("rk")), bounds).unwrap());
        prop_assert_eq!(inner.changelog_mode(), ChangelogMode::InsertOnly);
        let matches = |a: &Event, b: &Event| a.k == b.k && b.ts - 30 <= a.ts && a.ts <= b.ts + 10;
        let mut want = Vec::new();
        let mut want_outer = Vec::new();
        for a in &left {
            let mut any = false;
            for b in &right {
                if matches(a, b) {
                    any = true;
                    want.push(Pair { lk: a.k, lts: a.ts, rk: Some(b.k), rts: Some(b.ts) });
                }
            }
            if !any {
                want_outer.push(Pair { lk: a.k, lts: a.ts, rk: None, rts: None });
            }
        }
        want_outer.extend(want.iter().cloned());
        prop_assert_eq!(sorted(inner.collect_as::<Pair>().unwrap()), sorted(want));
        prop_assert_eq!(sorted(outer.collect_as::<Pair>().unwrap()), sorted(want_outer));
    }
}

trait Rows {
    fn to_data_stream_rows(&self) -> Vec<Event>;
}

impl Rows for Table {
    /// Through `to_data_stream`, which only insert-only tables allow.
    fn to_data_stream_rows(&self) -> Vec<Event> {
        let t = self
            .select([
                col("k"),
                col("v"),
                col("ts")
                    .cast(arrow::datatypes::DataType::Int64)
                    .alias("ts"),
            ])
            .unwrap();
        let out = t.to_data_stream::<Event>().unwrap().collect();
        t.env().stream_env().execute("rows").unwrap();
        out.take()
    }
}

#[test]
fn streaming_operators_reject_what_they_cannot_read() {
    let env = env(1);
    let rows = vec![Event { k: 1, v: 1, ts: 1 }];
    let t = table(&env, &rows);
    let counts = t
        .group_by([col("k")])
        .select([col("k"), count_star().alias("n")])
        .unwrap();
    let err = counts
        .deduplicate([col("k")], KeepRow::First, None)
        .err()
        .unwrap();
    assert!(matches!(err, PlanError::UpdatingInput { .. }), "{err}");
    // Arithmetic on a time attribute makes a plain timestamp.
    let shifted = t
        .select([col("k"), col("v"), (col("ts") + interval_ms(5)).alias("ts")])
        .unwrap();
    let err = shifted
        .over(
            [col("k")],
            col("ts"),
            OverWindow::Rows(None),
            [count_star()],
        )
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not an event-time attribute"),
        "{err}"
    );
    let plain = env.from_records(rows).unwrap();
    let err = t
        .interval_join(
            &plain
                .select([col("k").alias("k2"), col("ts").alias("ts2")])
                .unwrap(),
            JoinKind::Inner,
            col("k").eq(col("k2")),
            TimeBounds::between_ms(col("ts"), col("ts2"), 0, 10),
        )
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not an event-time attribute"),
        "{err}"
    );
    let err = t.top_n([col("k")], [col("v").desc()], 0).err().unwrap();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Windowed {
    k: i64,
    ws: i64,
    we: i64,
    n: i64,
    s: Option<i64>,
}

/// Counts and sums per key and window, from each row's windows.
fn windowed(rows: &[Event], windows: impl Fn(i64) -> Vec<(i64, i64)>) -> Vec<Windowed> {
    let mut acc: BTreeMap<(i64, i64, i64), (i64, i64)> = BTreeMap::new();
    for r in rows {
        for (s, e) in windows(r.ts) {
            let a = acc.entry((r.k, s, e)).or_default();
            a.0 += 1;
            a.1 += r.v;
        }
    }
    acc.into_iter()
        .map(|((k, ws, we), (n, s))| Windowed {
            k,
            ws,
            we,
            n,
            s: Some(s),
        })
        .collect()
}

/// Sessions per key: as Flink, windows that touch (a row exactly `gap` after the last) merge.
fn sessions(rows: &[Event], gap: i64) -> Vec<Windowed> {
    let mut out = Vec::new();
    for (k, mut g) in by_key(rows) {
        g.sort_by_key(|r| r.ts);
        let mut current: Option<(i64, i64, i64, i64)> = None;
        for r in g {
            current = match current {
                Some((start, last, n, s)) if r.ts - last <= gap => {
                    Some((start, r.ts, n + 1, s + r.v))
                }
                Some((start, last, n, s)) => {
                    out.push(Windowed {
                        k,
                        ws: start,
                        we: last + gap,
                        n,
                        s: Some(s),
                    });
                    Some((r.ts, r.ts, 1, r.v))
                }
                None => Some((r.ts, r.ts, 1, r.v)),
            };
        }
        if let Some((start, last, n, s)) = current {
            out.push(Windowed {
                k,
                ws: start,
                we: last + gap,
                n,
                s: Some(s),
            });
        }
    }
    out
}

fn window_counts(t: &Table, window: WindowTvf) -> Table {
    let ms = |c: &str| {
        col(c)
            .cast(arrow::datatypes::DataType::Int64)
            .alias(c.replace("window_start", "ws").replace("window_end", "we"))
    };
    t.window(col("ts"), window)
        .unwrap()
        .group_by([col("k"), col("window_start"), col("window_end")])
        .select([
            col("k"),
            col("window_start"),
            col("window_end"),
            count_star().alias("n"),
            sum(col("v")).alias("s"),
        ])
        .unwrap()
        .select([
            col("k"),
            ms("window_start"),
            ms("window_end"),
            col("n"),
            col("s"),
        ])
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Window aggregation over TUMBLE, HOP, CUMULATE and SESSION equals a per-window count of
    /// the rows, and is insert-only.
    #[test]
    fn window_aggregations(rows in events(40), parallelism in 1usize..3) {
        let env = env(parallelism);
        let t = table(&env, &rows);
        let start = |ts: i64, size: i64| ts - ts.rem_euclid(size);
        let tumbling = window_counts(&t, tumble(Duration::from_millis(50)));
        prop_assert_eq!(tumbling.changelog_mode(), ChangelogMode::InsertOnly);
        prop_assert!(tumbling.explain().contains("WindowAggregate"));
        prop_assert_eq!(
            sorted(tumbling.collect_as::<Windowed>().unwrap()),
            sorted(windowed(&rows, |ts| vec![(start(ts, 50), start(ts, 50) + 50)]))
        );
        let hopping = window_counts(&t, hop(Duration::from_millis(20), Duration::from_millis(60)));
        prop_assert_eq!(
            sorted(hopping.collect_as::<Windowed>().unwrap()),
            sorted(windowed(&rows, |ts| {
                let last = start(ts, 20);
                (0..3).map(|i| (last - i * 20, last - i * 20 + 60)).collect()
            }))
        );
        let cumulating = window_counts(&t, cumulate(Duration::from_millis(20), Duration::from_millis(60)));
        prop_assert_eq!(
            sorted(cumulating.collect_as::<Windowed>().unwrap()),
            sorted(windowed(&rows, |ts| {
                let s = start(ts, 60);
                (1..=3).map(|k| (s, s + k * 20)).filter(|&(_, e)| ts < e).collect()
            }))
        );
        let sessioned = window_counts(&t, session(Duration::from_millis(25)));
        prop_assert_eq!(sorted(sessioned.collect_as::<Windowed>().unwrap()), sorted(sessions(&rows, 25)));
    }
}

#[test]
fn the_window_table_function_adds_window_columns() {
    let env = env(1);
    let rows = vec![Event {
        k: 1,
        v: 2,
        ts: 1_234,
    }];
    let t = table(&env, &rows);
    let windows = t
        .window(
            col("ts"),
            hop(Duration::from_millis(500), Duration::from_millis(1_000)),
        )
        .unwrap();
    assert_eq!(
        windows.schema().names(),
        vec!["k", "v", "ts", "window_start", "window_end", "window_time"]
    );
    #[derive(Debug, PartialEq, Deserialize)]
    struct W {
        window_start: i64,
        window_end: i64,
    }
    let mut got = windows
        .select([col("window_start"), col("window_end")])
        .unwrap()
        .collect_as::<W>()
        .unwrap();
    got.sort_by_key(|w| w.window_start);
    assert_eq!(
        got,
        vec![
            W {
                window_start: 500,
                window_end: 1_500
            },
            W {
                window_start: 1_000,
                window_end: 2_000
            },
        ]
    );
    let err = t
        .window(
            col("ts"),
            hop(Duration::from_millis(300), Duration::from_millis(1_000)),
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("multiple"), "{err}");
    let err = t
        .window(col("v"), tumble(Duration::from_secs(1)))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not an event-time attribute"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A Top-N partitioned by the window of a window aggregation is a window Top-N: insert-only,
    /// each window's top rows once the watermark passes it.
    #[test]
    fn window_top_n_over_a_window_aggregation(rows in events(40), parallelism in 1usize..3) {
        let env = env(parallelism);
        let t = table(&env, &rows);
        let counts = t
            .window(col("ts"), tumble(Duration::from_millis(50)))
            .unwrap()
            .group_by([col("window_start"), col("window_end"), col("k")])
            .select([col("window_start"), col("window_end"), col("k"), count_star().alias("n"), sum(col("v")).alias("s")])
            .unwrap();
        let top = counts
            .top_n_with_row_number(
                [col("window_start"), col("window_end")],
                [col("n").desc(), col("k").asc()],
                2,
                "rn",
            )
            .unwrap();
        prop_assert_eq!(top.changelog_mode(), ChangelogMode::InsertOnly);
        prop_assert!(top.explain().contains("WindowRank"));
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        struct Top {
            ws: i64,
            k: i64,
            n: i64,
            rn: i64,
        }
        let got = top
            .select([
                col("window_start").cast(arrow::datatypes::DataType::Int64).alias("ws"),
                col("k"),
                col("n"),
                col("rn"),
            ])
            .unwrap()
            .collect_as::<Top>()
            .unwrap();
        let mut per_window: BTreeMap<i64, Vec<Windowed>> = BTreeMap::new();
        for w in windowed(&rows, |ts| vec![(ts - ts.rem_euclid(50), ts - ts.rem_euclid(50) + 50)]) {
            per_window.entry(w.ws).or_default().push(w);
        }
        let mut want = Vec::new();
        for (ws, mut ws_rows) in per_window {
            ws_rows.sort_by_key(|w| (std::cmp::Reverse(w.n), w.k));
            for (i, w) in ws_rows.into_iter().take(2).enumerate() {
                want.push(Top { ws, k: w.k, n: w.n, rn: i as i64 + 1 });
            }
        }
        prop_assert_eq!(sorted(got), sorted(want));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A join of two windowed tables on their window bounds is a window join, and a
    /// deduplication keyed by the window is a window deduplication: both insert-only and equal to
    /// a per-window computation.
    #[test]
    fn window_join_and_window_deduplication(
        left in events(30),
        right in events(30),
        parallelism in 1usize..3,
    ) {
        let env = env(parallelism);
        let size = Duration::from_millis(50);
        let counts = |rows: &[Event], p: &str| {
            table(&env, rows)
                .window(col("ts"), tumble(size))
                .unwrap()
                .group_by([col("window_start"), col("window_end"), col("k")])
                .select([
                    col("window_start"),
                    col("window_end"),
                    col("k").alias(format!("{p}k")),
                    count_star().alias(format!("{p}n")),
                ])
                .unwrap()
        };
        let (l, r) = (counts(&left, "l").alias("l"), counts(&right, "r").alias("r"));
        let joined = l
            .join(
                &r,
                col("lk")
                    .eq(col("rk"))
                    .and(col("l.window_start").eq(col("r.window_start")))
                    .and(col("l.window_end").eq(col("r.window_end"))),
            )
            .unwrap();
        prop_assert_eq!(joined.changelog_mode(), ChangelogMode::InsertOnly);
        prop_assert!(joined.explain().contains("WindowJoin(inner)"), "{}", joined.explain());
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        struct J {
            ws: i64,
            k: i64,
            ln: i64,
            rn: i64,
        }
        let got = joined
            .select([
                col("l.window_start").cast(arrow::datatypes::DataType::Int64).alias("ws"),
                col("lk").alias("k"),
                col("ln"),
                col("rn"),
            ])
            .unwrap()
            .collect_as::<J>()
            .unwrap();
        let start = |ts: i64| ts - ts.rem_euclid(50);
        let per = |rows: &[Event]| {
            let mut m: BTreeMap<(i64, i64), i64> = BTreeMap::new();
            for e in rows {
                *m.entry((start(e.ts), e.k)).or_default() += 1;
            }
            m
        };
        let (lm, rm) = (per(&left), per(&right));
        let want: Vec<J> = lm
            .iter()
            .filter_map(|(&(ws, k), &ln)| rm.get(&(ws, k)).map(|&rn| J { ws, k, ln, rn }))
            .collect();
        prop_assert_eq!(sorted(got), sorted(want));

        // The first click per key and window by time (equal times: the first to arrive).
        let firsts = table(&env, &left)
            .window(col("ts"), tumble(size))
            .unwrap()
            .deduplicate([col("window_start"), col("window_end"), col("k")], KeepRow::First, Some(col("ts")))
            .unwrap();
        prop_assert_eq!(firsts.changelog_mode(), ChangelogMode::InsertOnly);
        prop_assert!(firsts.explain().contains("WindowDeduplicate"));
        let got = firsts
            .select([col("k"), col("v"), col("ts").cast(arrow::datatypes::DataType::Int64).alias("ts")])
            .unwrap()
            .collect_as::<Event>()
            .unwrap();
        let mut best: BTreeMap<(i64, i64), Event> = BTreeMap::new();
        for e in &left {
            let entry = best.entry((start(e.ts), e.k)).or_insert_with(|| e.clone());
            if e.ts < entry.ts {
                *entry = e.clone();
            }
        }
        prop_assert_eq!(sorted(got), sorted(best.into_values().collect()));
    }
}

#[test]
fn windows_cascade_through_window_time() {
    let env = env(2);
    let rows: Vec<Event> = (0..40)
        .map(|i| Event {
            k: i % 3,
            v: 1,
            ts: 1_000 + i * 10,
        })
        .collect();
    // Counts per key in 50 ms windows, then the sum of those counts per 100 ms window.
    let fine = table(&env, &rows)
        .window(col("ts"), tumble(Duration::from_millis(50)))
        .unwrap()
        .group_by([
            col("k"),
            col("window_start"),
            col("window_end"),
            col("window_time"),
        ])
        .select([
            col("k"),
            col("window_time").alias("rowtime"),
            count_star().alias("n"),
        ])
        .unwrap();
    let coarse = fine
        .window(col("rowtime"), tumble(Duration::from_millis(100)))
        .unwrap()
        .group_by([col("window_start"), col("window_end")])
        .select([
            col("window_start")
                .cast(arrow::datatypes::DataType::Int64)
                .alias("ws"),
            sum(col("n")).alias("total"),
        ])
        .unwrap();
    assert_eq!(coarse.changelog_mode(), ChangelogMode::InsertOnly);
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
    struct Total {
        ws: i64,
        total: Option<i64>,
    }
    let got = sorted(coarse.collect_as::<Total>().unwrap());
    let mut want: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &rows {
        *want.entry(r.ts - r.ts.rem_euclid(100)).or_default() += 1;
    }
    let want: Vec<Total> = want
        .into_iter()
        .map(|(ws, total)| Total {
            ws,
            total: Some(total),
        })
        .collect();
    assert_eq!(got, want);
}
