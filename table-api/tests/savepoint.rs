//! A Table API job stopped with a savepoint and restored into a new job of the same query (at
//! the same or another parallelism) produces, across both runs, the changelog of one
//! uninterrupted run: operator ids derived from the plan map the state back.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rivulet_runtime::checkpoint::SavepointRestore;
use rivulet_runtime::relational::changelog::consolidate;
use rivulet_runtime::{ChangelogBatch, Stream};
use rivulet_table::prelude::*;
use support::{Cell, Row, SteppedSource, batch, cells, int, rows, schema};

/// `l JOIN r ON lk = rk GROUP BY lk: count(*), sum(rv)`.
fn query(env: &TableEnv, l: Table, r: Table) -> Table {
    let _ = env;
    l.join(&r, col("lk").eq(col("rk")))
        .unwrap()
        .group_by([col("lk")])
        .select([
            col("lk"),
            count_star().alias("n"),
            sum(col("rv")).alias("total"),
        ])
        .unwrap()
}

fn reference(left: &[Row], right: &[Row]) -> Vec<Vec<Cell>> {
    let mut groups: BTreeMap<i64, (i64, Option<i64>)> = BTreeMap::new();
    for l in left {
        for r in right {
            if let (Some(a), Some(b)) = (l.k, r.k)
                && a == b
            {
                let g = groups.entry(a).or_insert((0, None));
                g.0 += 1;
                if let Some(v) = r.v {
                    g.1 = Some(g.1.unwrap_or(0) + v);
                }
            }
        }
    }
    let mut out: Vec<Vec<Cell>> = groups
        .into_iter()
        .map(|(k, (n, total))| vec![int(Some(k)), int(Some(n)), int(total)])
        .collect();
    out.sort();
    out
}

struct Run {
    env: TableEnv,
    gates: Vec<Arc<AtomicUsize>>,
    out: rivulet_runtime::sink::TableCollectHandle,
    schema: arrow::datatypes::SchemaRef,
}

fn start(
    parallelism: usize,
    inputs: &[Vec<ChangelogBatch>; 2],
    restore: Option<&std::path::Path>,
) -> Run {
    let mut stream_env = StreamEnv::new().with_parallelism(parallelism);
    if let Some(path) = restore {
        stream_env = stream_env.with_savepoint_restore(SavepointRestore::from(path));
    }
    let env = TableEnv::streaming(stream_env);
    let mut tables = Vec::new();
    let mut gates = Vec::new();
    for (input, prefix) in inputs.iter().zip(["l", "r"]) {
        let released = Arc::new(AtomicUsize::new(0));
        let mut source = SteppedSource::new(input.clone(), Arc::clone(&released));
        if restore.is_none() {
            // The first run is stopped by its savepoint, never by the end of its input.
            source = source.held_open();
        }
        let stream: Stream<ChangelogBatch> =
            env.stream_env().from_source(source).set_parallelism(1);
        tables.push(
            env.from_arrow_stream(stream, schema(prefix), ChangelogMode::InsertOnly, true)
                .unwrap(),
        );
        gates.push(released);
    }
    let r = tables.pop().unwrap();
    let l = tables.pop().unwrap();
    let result = query(&env, l, r);
    let schema = result.schema().to_arrow();
    let out = result.to_changelog_stream().unwrap().collect_table();
    Run {
        env,
        gates,
        out,
        schema,
    }
}

fn wait_for(
    run: &Run,
    collected: &mut Vec<ChangelogBatch>,
    expected: &[Vec<Cell>],
    handle: &rivulet_runtime::JobHandle,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        collected.extend(run.out.take());
        let got = cells(&[consolidate(&run.schema, collected).expect("well formed")]);
        if got == expected {
            return;
        }
        assert!(
            !handle.is_finished() && Instant::now() < deadline,
            "the output is {got:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn a_restored_table_job_continues_where_its_savepoint_left_off(
        left in rows(16),
        right in rows(16),
        cut_at in 0usize..16,
        before in 1usize..3,
        after in 1usize..3,
    ) {
        let chunks = |rows: &[Row], prefix: &str| -> Vec<ChangelogBatch> {
            rows.chunks(3)
                .map(|c| ChangelogBatch::insert_only(batch(&schema(prefix), c)))
                .collect()
        };
        let inputs = [chunks(&left, "l"), chunks(&right, "r")];
        let cut = [cut_at.min(inputs[0].len()), cut_at.min(inputs[1].len())];
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rivulet-table-savepoint-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

        // First run: the prefixes, then a savepoint and a stop.
        let first = start(before, &inputs, None);
        let handle = first.env.stream_env().execute_async("before").unwrap();
        for (gate, n) in first.gates.iter().zip(cut) {
            gate.store(n, Ordering::SeqCst);
        }
        let mut collected = Vec::new();
        wait_for(
            &first,
            &mut collected,
            &reference(&left[..(cut[0] * 3).min(left.len())], &right[..(cut[1] * 3).min(right.len())]),
            &handle,
        );
        let savepoint = tokio
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), handle.stop_with_savepoint(&dir)).await })
            .expect("the savepoint does not hang")
            .expect("the savepoint is taken");
        collected.extend(first.out.take());

        // Second run: the same query restored from the savepoint, then the rest of the input.
        let second = start(after, &inputs, Some(&savepoint));
        for (gate, input) in second.gates.iter().zip(&inputs) {
            gate.store(input.len(), Ordering::SeqCst);
        }
        second.env.stream_env().execute("after").unwrap();
        collected.extend(second.out.take());
        let got = cells(&[consolidate(&second.schema, &collected).expect("well formed")]);
        let _ = std::fs::remove_dir_all(&dir);
        prop_assert_eq!(got, reference(&left, &right));
    }
}
