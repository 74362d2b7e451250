//! Tables over CSV and Parquet files, and the bad-data policy on a malformed CSV line.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use rivulet_table::prelude::*;

fn dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rivulet-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("city", DataType::Utf8, false),
        Field::new("temp", DataType::Int64, true),
    ]))
}

#[test]
fn a_csv_table_groups_and_sorts() {
    let dir = dir("csv");
    std::fs::write(dir.join("a.csv"), "city,temp\nOslo,3\nRome,18\nOslo,5\n").unwrap();
    std::fs::write(dir.join("b.csv"), "city,temp\nRome,20\nLima,\n").unwrap();
    let env = TableEnv::batch(StreamEnv::new().with_parallelism(2));
    let t = env
        .read_csv(&dir, schema(), true)
        .unwrap()
        .group_by([col("city")])
        .aggregate([max(col("temp")).alias("hottest"), count_star().alias("n")])
        .unwrap()
        .order_by([col("city").asc()])
        .unwrap();
    let text = t.to_pretty_string().unwrap();
    let expected = "\
+------+---------+---+
| city | hottest | n |
+------+---------+---+
| Lima |         | 1 |
| Oslo | 5       | 2 |
| Rome | 20      | 2 |
+------+---------+---+";
    assert_eq!(text, expected);
}

#[test]
fn a_bad_line_fails_naming_the_file_and_line_or_is_skipped_and_counted() {
    let dir = dir("bad");
    std::fs::write(dir.join("t.csv"), "city,temp\nOslo,3\nRome,warm\nLima,7\n").unwrap();
    let env = TableEnv::batch(StreamEnv::new().with_parallelism(1));
    let err = env
        .read_csv(&dir, schema(), true)
        .unwrap()
        .collect()
        .unwrap_err()
        .to_string();
    assert!(err.contains("t.csv") && err.contains('3'), "{err}");

    let env = TableEnv::batch(StreamEnv::new().with_parallelism(1))
        .with_bad_data_policy(BadDataPolicy::Skip);
    let rows = env
        .read_csv(&dir, schema(), true)
        .unwrap()
        .select([col("city")])
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    assert_eq!(env.bad_rows().count(), 1);
    assert!(
        env.bad_rows().samples()[0].contains("t.csv"),
        "{:?}",
        env.bad_rows().samples()
    );
}

#[test]
fn a_parquet_table_reads_what_a_query_selects() {
    let dir = dir("parquet");
    let batch = arrow::array::RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(arrow::array::StringArray::from(vec!["Oslo", "Rome"])),
            Arc::new(arrow::array::Int64Array::from(vec![Some(3), None])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join("t.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let env = TableEnv::batch(StreamEnv::new().with_parallelism(1));
    let t = env.read_parquet(dir.join("t.parquet")).unwrap();
    let rows = t
        .filter(col("temp").is_null())
        .unwrap()
        .select([col("city")])
        .unwrap();
    let got = rows.collect().unwrap();
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[test]
fn inserts_share_one_job_and_file_sinks_take_only_inserts() {
    let dir = dir("sinks");
    std::fs::write(dir.join("in.csv"), "Oslo,3\nRome,18\nOslo,5\n").unwrap();
    let out = dir.join("out");
    let env = TableEnv::streaming(StreamEnv::new().with_parallelism(2));
    let readings = env.read_csv(dir.join("in.csv"), schema(), false).unwrap();
    let warm = readings.filter(col("temp").gt(lit(4i64))).unwrap();
    let per_city = readings
        .group_by([col("city")])
        .aggregate([sum(col("temp")).alias("total")])
        .unwrap();

    // An updating table cannot go to a file sink: the error names the aggregate.
    let mut set = env.statement_set();
    let Err(err) = set.add_insert(&per_city, TableSinkTarget::Csv(out.clone())) else {
        panic!("an updating table was accepted by a file sink");
    };
    assert!(
        err.to_string()
            .starts_with("the CSV file sink cannot consume updates, but Aggregate"),
        "{err}"
    );

    let changes = rivulet_runtime::sink::TableCollectHandle::new();
    set.add_insert(&warm, TableSinkTarget::Csv(out.clone()))
        .unwrap();
    set.add_insert(&per_city, TableSinkTarget::Collect(changes.clone()))
        .unwrap();
    set.execute("two inserts").unwrap();

    let mut written = String::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            written.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort();
    assert_eq!(lines, ["Oslo,5", "Rome,18"]);
    let final_rows = rivulet_runtime::relational::changelog::consolidate(
        &per_city.schema().to_arrow(),
        &changes.take(),
    )
    .unwrap();
    assert_eq!(final_rows.num_rows(), 2);
}
