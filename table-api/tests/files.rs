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
